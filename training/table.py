"""Train on a feature table a data scientist already has (``umrisk train-table``).

The table (CSV or Parquet) is typed on its own: missing markers (``?``, ``NA``, empty, ...) become
missing; a column is numeric when nearly all its present values parse as numbers, else categorical;
categorical columns with very many levels (diagnosis codes) keep their most frequent levels and pool the
rest. The split is by group and time when given, then the same tuning, calibration, evaluation, MLflow
logging, registration, report and model card as ``umrisk train`` (``training.pipeline``).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter

import numpy as np
import pandas as pd
from umrisk.features.spec import ModelTraining, SplitSpec
from umrisk.training import registry
from umrisk.training.lineage import hash_file
from umrisk.training.metrics import evaluate
from umrisk.training.model import RiskModel
from umrisk.training.pipeline import Fitted, evaluation, register_and_report
from umrisk.training.report import INTENDED
from umrisk.training.split import member_hash, time_member_split
from umrisk.training.tune import tune

MISSING = ("", "?", "NA", "N/A", "na", "n/a", "NULL", "null", "None", "NaN", "nan", "-", ".")
MAX_LEVELS = 200
OTHER = "__other__"
POSITIVE = ("1", "1.0", "true", "yes", "y", "t", "positive", "pos")
NEGATIVE = ("0", "0.0", "false", "no", "n", "f", "negative", "neg")


class TableError(ValueError):
    """A table that cannot be trained on, with what is wrong and where."""


def read_any(path: Path) -> pd.DataFrame:
    """A CSV (delimiter sniffed) or Parquet file, every value as text or missing."""
    if not path.exists():
        raise TableError(f"{path}: no such file")
    if path.suffix.lower() in (".parquet", ".pq"):
        df = pd.read_parquet(path)
        return df.astype("str").where(df.notna())
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            sample = fh.read(65536)
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
        sep = dialect.delimiter
    except (csv.Error, UnicodeDecodeError):
        sep = ","
    try:
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except UnicodeDecodeError:
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, encoding="latin-1")
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise TableError(f"{path}: cannot read the table: {err}") from None


@dataclass
class TypedTable:
    X: pd.DataFrame
    y: np.ndarray
    features: list[str]
    categorical: list[str]
    groups: pd.Series | None
    times: pd.Series | None
    notes: list[str]


def type_table(df: pd.DataFrame, label: str, group: str | None = None, time: str | None = None,
               exclude: list[str] | None = None, positive: str | None = None) -> TypedTable:
    """Numbers, categories and the label, with a note for every decision a user would want to know."""
    for col in [label, group, time, *(exclude or [])]:
        if col is not None and col not in df.columns:
            raise TableError(f"column {col!r} not in the table (columns: {', '.join(map(str, df.columns[:30]))})")
    clean = df.apply(lambda s: s.where(~s.astype(str).str.strip().isin(MISSING)))
    y_raw = clean[label]
    if y_raw.isna().any():
        raise TableError(f"label column {label!r}: {int(y_raw.isna().sum())} row(s) without a value "
                         f"(first at data row {int(np.flatnonzero(y_raw.isna())[0]) + 1})")
    levels = sorted(y_raw.astype(str).str.strip().unique())
    if positive is not None:
        if positive not in levels:
            raise TableError(f"--positive {positive!r} is not a value of {label!r} (values: {', '.join(levels[:10])})")
        y = (y_raw.astype(str).str.strip() == positive).to_numpy().astype(int)
    elif len(levels) == 2 and {v.lower() for v in levels} <= set(POSITIVE) | set(NEGATIVE):
        y = y_raw.astype(str).str.strip().str.lower().isin(POSITIVE).to_numpy().astype(int)
    else:
        raise TableError(f"label column {label!r} has values {', '.join(levels[:10])}: name the event with "
                         "--positive VALUE")
    if not 0 < y.sum() < len(y):
        raise TableError(f"label column {label!r}: every row has the same outcome")
    skip = {label, group, time, *(exclude or [])}
    notes, features, categorical = [], [], []
    X = pd.DataFrame(index=clean.index)
    for col in clean.columns:
        if col in skip:
            continue
        s = clean[col]
        present = s.dropna()
        if present.empty:
            notes.append(f"{col}: empty, left out")
            continue
        num = pd.to_numeric(present, errors="coerce")
        if num.notna().mean() >= 0.98:
            X[col] = pd.to_numeric(s, errors="coerce")
            features.append(col)
            continue
        if present.nunique() == len(present) and len(present) > 50:
            notes.append(f"{col}: a distinct value on every row (an identifier?), left out")
            continue
        counts = present.value_counts()
        if len(counts) > MAX_LEVELS:
            keep = set(counts.index[:MAX_LEVELS])
            s = s.where(s.isna() | s.isin(keep), OTHER)
            notes.append(f"{col}: {len(counts):,} levels, the {MAX_LEVELS} most frequent kept, the rest pooled")
        X[col] = s.astype("str").where(s.notna())
        features.append(col)
        categorical.append(col)
    if not features:
        raise TableError("no usable feature columns")
    times = pd.to_datetime(clean[time], errors="coerce", format="mixed") if time else None
    if times is not None and times.isna().any():
        bad = int(np.flatnonzero(times.isna())[0]) + 1
        raise TableError(f"time column {time!r}: {int(times.isna().sum())} value(s) are not dates "
                         f"(first at data row {bad}: {df[time].iloc[bad - 1]!r})")
    return TypedTable(X, y, features, categorical, clean[group].astype(str) if group else None, times, notes)


def split_table(t: TypedTable, spec: SplitSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train, valid, calib, test) rows: by time and group when given, else by group, else by row."""
    n = len(t.y)
    groups = t.groups if t.groups is not None else pd.Series(np.arange(n).astype(str))
    if t.times is not None:
        s = time_member_split(pd.DataFrame({"member_id": groups.to_numpy(), "as_of": t.times.to_numpy()}),
                              spec.model_copy(update={"test_member_fraction": 1.0}))
        return s.train, s.valid, s.calib, s.test
    u = member_hash(groups, f"table{spec.seed}")
    test = u < spec.test_fraction
    v = (u - spec.test_fraction) / (1 - spec.test_fraction)
    valid = ~test & (v < spec.validation_fraction)
    calib = ~test & (v >= spec.validation_fraction) & (v < spec.validation_fraction + spec.calibration_fraction)
    train = ~test & ~valid & ~calib
    return tuple(np.flatnonzero(m) for m in (train, valid, calib, test))  # type: ignore[return-value]


def train_table(path: Path, label: str, name: str | None = None, group: str | None = None, time: str | None = None,
                exclude: list[str] | None = None, positive: str | None = None, reports: Path = Path("reports"),
                tracking_uri: str | None = None, settings: ModelTraining | None = None) -> dict:
    """Type the table, split it, then the same tuning, fit, calibration, evaluation, registration and report
    as ``umrisk train`` (``pipeline.register_and_report``)."""
    registry.configure(tracking_uri)
    settings = settings or ModelTraining()
    name = name or path.stem.replace(" ", "_")
    t = type_table(read_any(path), label, group, time, exclude, positive)
    train, valid, calib, test = split_table(t, settings.split)
    if min(len(train), len(valid), len(calib), len(test)) == 0 or t.y[test].sum() == 0:
        raise TableError(f"too few rows or events to split (train {len(train)}, valid {len(valid)}, "
                         f"calibration {len(calib)}, test {len(test)})")
    X, y = t.X, t.y
    seconds = {}
    start = perf_counter()
    params, tuning = tune(X.iloc[train], y[train], X.iloc[valid], y[valid], t.features, t.categorical,
                          settings.lightgbm, settings.tuning, seed=settings.split.seed)
    seconds["tuning"] = perf_counter() - start
    start = perf_counter()
    model = RiskModel(t.features, t.categorical, params, settings.lightgbm.num_boost_round,
                      settings.lightgbm.early_stopping_rounds)
    model.fit(X.iloc[train], y[train], X.iloc[valid], y[valid], X.iloc[calib], y[calib], settings.calibration.method)
    seconds["fit"] = perf_counter() - start
    start = perf_counter()
    groups = {c: X[c].iloc[test].astype("str").fillna("missing") for c in t.categorical[:3]
              if X[c].iloc[test].nunique() <= 12}
    ev = evaluation(y[test], model.predict_proba(X.iloc[test]), groups=groups, capacity=settings.review_capacity,
                    min_subgroup_size=settings.gates.min_subgroup_size, period=_period(t, test))
    valid_metrics = evaluate(y[valid], model.predict_proba(X.iloc[valid]), settings.review_capacity, n_boot=0)
    seconds["evaluation"] = perf_counter() - start
    sizes = {"train": len(train), "valid": len(valid), "calib": len(calib), "test": len(test)}
    fitted = Fitted(model, ev, valid_metrics, sizes, _period(t, train), X.iloc[test], {}, tuning, seconds)
    spec = {"name": name, "task": "table", "source": str(path), "label": label, "positive": positive,
            "group": group, "time": time, "exclude": exclude or [], "model": settings.model_dump(mode="json")}
    catalog = [{"name": c, "description": f"column {c} of {path.name}", "unit": "", "group": "table",
                "kind": "category" if c in t.categorical else "number", "reason": f"{c} {{value}}"}
               for c in t.features]
    about = {"name": name, "task": "table", "description": f"{label} = {positive or 'yes'} in {path.name}",
             "intended_use": f"{INTENDED} Outcome: {label} = {positive or 'yes'}, as recorded in {path.name}.",
             "label_definition": {"source": path.name, "label": label, "positive": positive, "group": group,
                                  "time": time, "excluded_columns": exclude or []},
             "notes": t.notes}
    cohort = {"task": "table", "steps": [{"step": f"rows of {path.name}", "count": len(y)}],
              "notes": [{"what": n, "count": 0} for n in t.notes], "label_rate": float(y.mean())}
    r = register_and_report(fitted, about=about, spec=spec, catalog=catalog,
                            fingerprint={"sha256": hash_file(path).hexdigest(), "rows": {"table": len(y)}},
                            tags={"source": str(path.resolve()), "label": label}, cohort=cohort, reports=reports,
                            data_label=str(path.resolve()))
    return {**r, "notes": t.notes}


def _period(t: TypedTable, rows: np.ndarray) -> tuple:
    """First and last prediction time of the rows, when the table has a time column."""
    if t.times is None:
        return ("not given", "not given")
    return (t.times.iloc[rows].min(), t.times.iloc[rows].max())
