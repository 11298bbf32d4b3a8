"""Train on a feature table a data scientist already has (``umrisk train-table``), and score or evaluate
other tables with the model (``umrisk evaluate-table``, ``umrisk score-table``).

Typing (every decision is written in the typing notes, shown by the CLI and kept in the model card):

- Missing markers (``?``, ``NA``, empty, ...) become missing.
- Code columns (``training.codes``: ICD-9-CM, ICD-10-CM, CPT/HCPCS, recognised from their values) become
  three categorical features: the code, its 3-character category and its chapter.
- Other columns are numeric when nearly all their present values parse as numbers, else categorical; a
  column with a distinct value on every row (an identifier) is left out.
- High-cardinality categories: levels seen on fewer than ``min_level_rows`` training rows (25, or one row in
  400) are pooled into one level (for codes, their category and chapter still tell them apart), counted on
  the training rows only; no target encoding, so nothing about the outcome leaks into the encoding.
  LightGBM's categorical splits are regularised (``categorical_params``: smoothing, L2, at most 16 split
  points, and at least 50 rows or one row in 100 per category group).
- With a group (``--group``) and an order (a time column, or an order column such as an encounter number),
  ``<group> earlier rows`` counts the group's rows before this one: the number of earlier encounters of a
  patient, known at prediction time.

The schema (the column kinds, kept levels and roll-ups) is registered with the model in its spec, so a
table scored or evaluated later is typed exactly as at training. Training splits by group (and time when
given), then fits through the same grouped cross-validation, cross-fitted calibration and refit as
``umrisk train`` and registers and reports through ``training.pipeline``.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, field
from pathlib import Path
from time import perf_counter

import numpy as np
import pandas as pd

from umrisk.features.spec import ModelTraining, SplitSpec
from umrisk.training import codes, registry
from umrisk.training.lineage import hash_file
from umrisk.training.model import RiskModel
from umrisk.training.pipeline import Fitted, cv_metrics, evaluation, register_and_report
from umrisk.training.report import INTENDED
from umrisk.training.split import member_hash, time_member_split
from umrisk.training.tune import tune

MISSING = ("", "?", "NA", "N/A", "na", "n/a", "NULL", "null", "None", "NaN", "nan", "-", ".")
MAX_LEVELS = 200
MIN_LEVEL_ROWS = 25  # at least; one row in 400 on larger tables
OTHER = "__other__"
POSITIVE = ("1", "1.0", "true", "yes", "y", "t", "positive", "pos")
NEGATIVE = ("0", "0.0", "false", "no", "n", "f", "negative", "neg")
CATEGORICAL_PARAMS = {"cat_smooth": 50.0, "cat_l2": 10.0, "max_cat_threshold": 16, "max_cat_to_onehot": 4}
MIN_DATA_PER_GROUP = 50  # at least; one row in 100 on larger tables


def min_level_rows(n: int) -> int:
    """Rows a category level needs in training to keep its own level: 25, or one row in 400.

    >>> min_level_rows(4000), min_level_rows(40000)
    (25, 100)
    """
    return max(MIN_LEVEL_ROWS, round(n / 400))


def categorical_params(n: int) -> dict:
    """LightGBM's categorical regularisation for ``n`` training rows: smoothing, L2, at most 16 split points,
    and a category group of at least 50 rows or one row in 100 (measured on UCI development splits: weaker
    settings let diagnosis codes overfit within a few dozen rounds)."""
    return {**CATEGORICAL_PARAMS, "min_data_per_group": max(MIN_DATA_PER_GROUP, round(n / 100))}
ROLLUPS = ("category", "chapter")


class TableError(ValueError):
    """A table that cannot be trained on or scored, with what is wrong and where."""


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


def clean(df: pd.DataFrame) -> pd.DataFrame:
    """Missing markers as missing, the rest as stripped text."""
    return df.apply(lambda s: s.astype("object").where(~s.astype(str).str.strip().isin(MISSING) & s.notna())
                    .map(lambda v: v.strip() if isinstance(v, str) else v))


def label_values(frame: pd.DataFrame, label: str, positive: str | None) -> np.ndarray:
    """The label as 0/1; a missing label or an unnamed event is an error naming the column and row."""
    if label not in frame.columns:
        raise TableError(f"column {label!r} not in the table (columns: {', '.join(map(str, frame.columns[:30]))})")
    y_raw = frame[label]
    if y_raw.isna().any():
        raise TableError(f"label column {label!r}: {int(y_raw.isna().sum())} row(s) without a value "
                         f"(first at data row {int(np.flatnonzero(y_raw.isna())[0]) + 1})")
    text = y_raw.astype(str).str.strip()
    levels = sorted(text.unique())
    if positive is not None:
        if positive not in levels:
            raise TableError(f"--positive {positive!r} is not a value of {label!r} (values: {', '.join(levels[:10])})")
        return (text == positive).to_numpy().astype(int)
    if len(levels) <= 2 and {v.lower() for v in levels} <= set(POSITIVE) | set(NEGATIVE):
        return text.str.lower().isin(POSITIVE).to_numpy().astype(int)
    raise TableError(f"label column {label!r} has values {', '.join(levels[:10])}: name the event with "
                     "--positive VALUE")


@dataclass
class TableSchema:
    """How a table's columns become features; registered with the model so other tables are typed alike."""

    label: str
    positive: str | None = None
    group: str | None = None
    time: str | None = None
    order: str | None = None
    exclude: list[str] = field(default_factory=list)
    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    codes: dict[str, str] = field(default_factory=dict)  # column -> code system
    levels: dict[str, list[str]] = field(default_factory=dict)  # categorical feature -> levels kept
    notes: list[str] = field(default_factory=list)

    @property
    def order_feature(self) -> str | None:
        return f"{self.group} earlier rows" if self.group and (self.order or self.time) else None

    @property
    def categorical_features(self) -> list[str]:
        return [*self.categorical, *(f"{c} {r}" for c in self.codes for r in ("code", *ROLLUPS))]

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categorical_features, *([self.order_feature] if self.order_feature else [])]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TableSchema:
        return cls(**d)


def infer_schema(frame: pd.DataFrame, label: str, group: str | None = None, time: str | None = None,
                 order: str | None = None, exclude: list[str] | None = None,
                 positive: str | None = None) -> TableSchema:
    """The kind of every column of a cleaned table, with a note for every decision a user would want to know."""
    for col in [label, group, time, order, *(exclude or [])]:
        if col is not None and col not in frame.columns:
            raise TableError(f"column {col!r} not in the table (columns: {', '.join(map(str, frame.columns[:30]))})")
    s = TableSchema(label, positive, group, time, order, list(exclude or []))
    skip = {label, group, time, order, *(exclude or [])}
    for col in frame.columns:
        if col in skip:
            continue
        present = frame[col].dropna()
        if present.empty:
            s.notes.append(f"{col}: empty, left out")
            continue
        system = codes.detect(present)
        if system is not None:
            s.codes[col] = system
            s.notes.append(f"{col}: {system} codes ({present.nunique():,} distinct), as the code, its "
                           "3-character category and its chapter")
            continue
        if pd.to_numeric(present, errors="coerce").notna().mean() >= 0.98:
            s.numeric.append(col)
            continue
        if present.nunique() == len(present) and len(present) > 50:
            s.notes.append(f"{col}: a distinct value on every row (an identifier?), left out")
            continue
        s.categorical.append(col)
    if not (s.numeric or s.categorical or s.codes):
        raise TableError("no usable feature columns")
    if s.order_feature:
        s.notes.append(f"{s.order_feature}: the number of rows of the same {group} before this one "
                       f"(ordered by {order or time})")
    return s


def _raw_features(frame: pd.DataFrame, s: TableSchema) -> pd.DataFrame:
    """The feature columns before pooling: numbers, category text, codes and their roll-ups, the order."""
    ordering = [s.group, s.order or s.time] if s.order_feature else []
    missing = [c for c in [*s.numeric, *s.categorical, *s.codes, *ordering] if c not in frame.columns]
    if missing:
        raise TableError(f"the table lacks column(s) the model uses: {', '.join(missing[:10])}")
    X = pd.DataFrame(index=frame.index)
    for c in s.numeric:
        X[c] = pd.to_numeric(frame[c], errors="coerce")
    for c in s.categorical:
        X[c] = frame[c].astype("object")
    for c, system in s.codes.items():
        code = codes.normalize(frame[c], system)
        X[f"{c} code"] = code
        X[f"{c} category"] = codes.category(code, system)
        X[f"{c} chapter"] = codes.chapter(code, system)
    if s.order_feature:
        X[s.order_feature] = earlier_rows(frame, s)
    return X


def earlier_rows(frame: pd.DataFrame, s: TableSchema) -> np.ndarray:
    """How many rows of the same group come before each row (by the order or time column)."""
    raw = frame[s.order or s.time]
    key = pd.to_numeric(raw, errors="coerce")
    if key.isna().mean() > 0.5:  # dates, not numbers
        key = pd.to_datetime(raw, errors="coerce", format="mixed")
    order = pd.DataFrame({"g": frame[s.group].astype(str).to_numpy(), "k": key.to_numpy()})
    return order.groupby("g")["k"].rank(method="first").sub(1).to_numpy()


def fit_levels(s: TableSchema, X_train: pd.DataFrame) -> None:
    """Keep the levels of each categorical feature seen on at least ``min_level_rows`` training rows."""
    least = min_level_rows(len(X_train))
    params = categorical_params(len(X_train))
    s.notes.append(f"categories: levels on fewer than {least} training rows (25, or one in 400) pooled into one "
                   f"level (at most {MAX_LEVELS} kept), counted on the training rows only; no target encoding; "
                   "LightGBM categorical splits regularised (" + ", ".join(f"{k} {v}" for k, v in params.items())
                   + ")")
    for c in s.categorical_features:
        counts = X_train[c].dropna().astype(str).value_counts()
        kept = counts[counts >= least].index[:MAX_LEVELS]
        s.levels[c] = sorted(map(str, kept))
        pooled = len(counts) - len(kept)
        if pooled and c in s.categorical and len(counts) > 30:
            s.notes.append(f"{c}: {len(counts):,} levels, {pooled:,} rare ones pooled")


def encode(frame: pd.DataFrame, s: TableSchema) -> pd.DataFrame:
    """The model's feature frame for a cleaned table, with the schema's kept levels (others pooled)."""
    X = _raw_features(frame, s)
    for c in s.categorical_features:
        v = X[c].astype("object")
        known = v.isna() | v.astype(str).isin(set(s.levels.get(c, [])))
        X[c] = v.where(known, OTHER)
    return X[s.features]


@dataclass
class TypedTable:
    X: pd.DataFrame
    y: np.ndarray
    schema: TableSchema
    groups: pd.Series | None
    times: pd.Series | None

    @property
    def notes(self) -> list[str]:
        return self.schema.notes


def _times(frame: pd.DataFrame, time: str | None) -> pd.Series | None:
    if time is None:
        return None
    times = pd.to_datetime(frame[time], errors="coerce", format="mixed")
    if times.isna().any():
        bad = int(np.flatnonzero(times.isna())[0]) + 1
        raise TableError(f"time column {time!r}: {int(times.isna().sum())} value(s) are not dates "
                         f"(first at data row {bad})")
    return times


def split_table(y: np.ndarray, groups: pd.Series | None, times: pd.Series | None,
                spec: SplitSpec) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) rows: the later rows of held-out groups when there is a time, else held-out groups (each
    row its own group without one). Validation and calibration happen inside the training rows."""
    n = len(y)
    groups = groups if groups is not None else pd.Series(np.arange(n).astype(str))
    if times is not None:
        s = time_member_split(pd.DataFrame({"member_id": groups.to_numpy(), "as_of": times.to_numpy()}),
                              spec.model_copy(update={"test_member_fraction": 1.0}))
        return s.train, s.test
    test = member_hash(groups, f"table{spec.seed}") < spec.test_fraction
    return np.flatnonzero(~test), np.flatnonzero(test)


def fit_rows(X: pd.DataFrame, y: np.ndarray, groups: pd.Series | None, s: TableSchema,
             settings: ModelTraining) -> tuple[RiskModel, dict, dict[str, float]]:
    """Tune on the grouped cross-validated loss, then fit with cross-fitted calibration and a refit on every
    row (``RiskModel.fit``), as ``umrisk train`` does."""
    base = settings.lightgbm
    if s.categorical_features:
        base = base.model_copy(update={"params": {**categorical_params(len(X)), **base.params}})
    g = groups.to_numpy() if groups is not None else None
    seconds = {}
    t0 = perf_counter()
    params, tuning = tune(X, y, g, s.features, s.categorical_features, base, settings.tuning,
                          cv_folds=settings.split.cv_folds, seed=settings.split.seed)
    seconds["tuning"] = perf_counter() - t0
    t0 = perf_counter()
    model = RiskModel(s.features, s.categorical_features, params, base.num_boost_round, base.early_stopping_rounds,
                      cv_folds=settings.split.cv_folds, calibration=settings.calibration.method,
                      seed=settings.split.seed)
    model.fit(X, y, g)
    seconds["fit"] = perf_counter() - t0
    return model, tuning, seconds


def table_baselines(X: pd.DataFrame, s: TableSchema) -> dict[str, np.ndarray]:
    """The simple score a table offers to beat: the number of earlier rows of the group (prior encounters),
    when the schema has an order."""
    return {s.order_feature: X[s.order_feature].fillna(0).to_numpy(dtype=float)} if s.order_feature else {}


def subgroup_columns(X: pd.DataFrame, s: TableSchema) -> dict[str, pd.Series]:
    """Categorical columns of few levels (at most 12) to report subgroups on: the first three of them."""
    out = {}
    for c in [*s.categorical, *(f"{c} chapter" for c in s.codes)]:
        if X[c].nunique() <= 12 and len(out) < 3:
            out[c] = X[c].astype("str").where(X[c].notna(), "missing")
    return out


def train_table(path: Path, label: str, name: str | None = None, group: str | None = None, time: str | None = None,
                exclude: list[str] | None = None, positive: str | None = None, reports: Path = Path("reports"),
                tracking_uri: str | None = None, settings: ModelTraining | None = None,
                order: str | None = None) -> dict:
    """Type the table, split it, then the same tuning, cross-validated fit, calibration, evaluation,
    registration and report as ``umrisk train`` (``pipeline.register_and_report``)."""
    registry.configure(tracking_uri)
    settings = settings or ModelTraining()
    name = name or path.stem.replace(" ", "_")
    frame = clean(read_any(path))
    y = label_values(frame, label, positive)
    if not 0 < y.sum() < len(y):
        raise TableError(f"label column {label!r}: every row has the same outcome")
    s = infer_schema(frame, label, group, time, order, exclude, positive)
    groups = frame[group].astype(str) if group else None
    times = _times(frame, time)
    train, test = split_table(y, groups, times, settings.split)
    if min(len(train), len(test)) == 0 or not 0 < y[test].sum() < len(test) or y[train].sum() == 0:
        raise TableError(f"too few rows or events to split (training {len(train)} rows with {int(y[train].sum())} "
                         f"events, test {len(test)} rows with {int(y[test].sum())} events)")
    raw = _raw_features(frame, s)
    fit_levels(s, raw.iloc[train])
    X = encode(frame, s)
    g_train = groups.iloc[train] if groups is not None else None
    model, tuning, seconds = fit_rows(X.iloc[train], y[train], g_train, s, settings)
    t0 = perf_counter()
    ev = evaluation(y[test], model.predict_proba(X.iloc[test]), groups=subgroup_columns(X.iloc[test], s),
                    capacity=settings.review_capacity, min_subgroup_size=settings.gates.min_subgroup_size,
                    baseline_scores=table_baselines(X.iloc[test], s), period=_period(times, test))
    seconds["evaluation"] = perf_counter() - t0
    sizes = {"train": len(train), "test": len(test)}
    fitted = Fitted(model, ev, {}, sizes, _period(times, train), X.iloc[test], table_baselines(X.iloc[test], s),
                    tuning, seconds, cv_metrics(model))
    spec = {"name": name, "task": "table", "source": str(path), "label": label, "positive": positive,
            "group": group, "time": time, "order": order, "exclude": exclude or [],
            "model": settings.model_dump(mode="json"), "schema": s.to_dict()}
    about = about_table(name, s, path.name)
    cohort = {"task": "table", "steps": [{"step": f"rows of {path.name}", "count": len(y)}],
              "notes": [{"what": n, "count": 0} for n in s.notes], "label_rate": float(y.mean())}
    r = register_and_report(fitted, about=about, spec=spec, catalog=catalog(s, path.name),
                            fingerprint={"sha256": hash_file(path).hexdigest(), "rows": {"table": len(y)}},
                            tags={"source": str(path.resolve()), "label": label}, cohort=cohort, reports=reports,
                            data_label=str(path.resolve()),
                            score_champion=lambda champion: champion.risk_model.predict_proba(
                                encode(frame.iloc[test], TableSchema.from_dict(champion.spec["schema"]))))
    return {**r, "notes": s.notes}


def about_table(name: str, s: TableSchema, source: str) -> dict:
    """What the model card says about a table's model."""
    event = f"{s.label} = {s.positive or 'yes'}"
    return {"name": name, "task": "table", "description": f"{event} in {source}",
            "intended_use": f"{INTENDED} Outcome: {event}, as recorded in {source}.",
            "label_definition": {"source": source, "label": s.label, "positive": s.positive, "group": s.group,
                                 "time": s.time, "order": s.order, "excluded_columns": s.exclude},
            "notes": s.notes}


def catalog(s: TableSchema, source: str) -> list[dict]:
    """One catalog entry per feature, worded for reasons."""
    out = []
    for c in s.features:
        kind = "category" if c in s.categorical_features else "number"
        out.append({"name": c, "description": f"{c} (from {source})", "unit": "", "group": "table", "kind": kind,
                    "reason": f"{c} {{value}}"})
    return out


def _period(times: pd.Series | None, rows: np.ndarray) -> tuple:
    """First and last prediction time of the rows, when the table has a time column."""
    if times is None:
        return ("not given", "not given")
    return (times.iloc[rows].min(), times.iloc[rows].max())
