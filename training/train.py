"""Training a spec's model end to end, and evaluating a model on a test set the same way every time.

``build_table`` turns a store into the spec's prediction points with labels and features;
``fit_model`` splits by time and member (the test set is a later period and other members), tunes by
member-grouped cross-validation within the budget, and fits the model on every training point (rounds
from cross-validation, calibration cross-fitted on the out-of-fold predictions, clinical directions as
monotone constraints); ``evaluate_model`` gives the full evaluation (metrics with bootstrap intervals,
calibration, usefulness at capacity, subgroups, clinical baselines and the lead over each with a paired
interval, the oracle on synthetic data).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from umrisk.features.build import build_features, feature_set
from umrisk.features.catalog import FeatureInfo, is_abnormal
from umrisk.features.cohorts import CohortReport
from umrisk.features.spec import ModelSpec
from umrisk.features.store import load_store
from umrisk.features.tasks import task_for
from umrisk.training.metrics import age_band, evaluate, net_benefit, paired_auroc_difference, subgroups
from umrisk.training.model import RiskModel
from umrisk.training.split import Split, time_member_split
from umrisk.training.tune import tune


@dataclass
class Table:
    """A spec's prediction points with labels and features, and where they came from."""

    frame: pd.DataFrame
    features: list[str]
    categorical: list[str]
    cohort: CohortReport
    data_dir: Path | None = None
    demographics: pd.DataFrame | None = None  # race_ethnicity etc. for subgroups, aligned with frame


def build_table(data_dir: Path | str, spec: ModelSpec, client=None, progress=None) -> Table:
    """The spec's table; with a Dask ``client``, built partition by partition (``features.distributed``, the
    same table; ``progress`` told each finished partition)."""
    if client is not None:
        from umrisk.features.distributed import build_table as build_partitioned

        fs = feature_set(spec)
        t = build_partitioned(data_dir, spec, client, ["race_ethnicity"], progress)
        return Table(t.frame, fs.names, fs.categorical, t.cohort, Path(data_dir), t.members)
    store = load_store(data_dir)
    points, report = task_for(spec).cohort(store, spec)
    frame = build_features(store, points, spec)
    fs = feature_set(spec)
    demo = store["members"].set_index("member_id").reindex(frame["member_id"].astype(str))[["race_ethnicity"]]
    return Table(frame, fs.names, fs.categorical, report, Path(data_dir), demo.reset_index(drop=True))


@dataclass
class Trained:
    """A fitted model, its split, its search and timings, and its cross-validation: ``cv`` holds the number
    of folds, the chosen rounds, the out-of-fold AUROC and log loss, the calibration method; ``oof`` the
    out-of-fold (uncalibrated) prediction of every training point, aligned with ``split.train``."""

    model: RiskModel
    split: Split
    tuning: dict
    seconds: dict = field(default_factory=dict)
    cv: dict = field(default_factory=dict)
    oof: np.ndarray | None = None


SIGN = {"increasing": 1, "decreasing": -1}


def monotone_directions(infos: Iterable[FeatureInfo]) -> dict[str, int]:
    """+1 or -1 per feature with a clinical direction in its catalog entry (categories never).

    The direction is the declared one, else the side of a one-sided abnormal rule: a lab abnormal below
    its limit (hemoglobin < 12, eGFR < 60) is riskier the lower it is, one abnormal above its limit (HbA1c
    >= 6.5, BNP > 100) the higher; a two-sided rule (sodium) gives none.
    """
    out = {}
    for i in infos:
        if i.kind == "category":
            continue
        if i.direction in SIGN:
            out[i.name] = SIGN[i.direction]
        elif i.abnormal:
            low, high = is_abnormal(-1e12, i.abnormal), is_abnormal(1e12, i.abnormal)
            if low != high:
                out[i.name] = -1 if low else 1
    return out


def model_directions(spec: ModelSpec) -> dict[str, int]:
    """The catalog's directions of the spec's features and the spec's own (``model.lightgbm.directions``)."""
    infos = feature_set(spec).infos
    out = monotone_directions(infos)
    names = {i.name for i in infos}
    for name, direction in spec.model.lightgbm.directions.items():
        if name not in names:
            raise ValueError(f"model.lightgbm.directions: {name!r} is not a feature of {spec.name}")
        if out.get(name, SIGN[direction]) != SIGN[direction]:
            raise ValueError(f"model.lightgbm.directions: {name} is {direction} here but not in the catalog")
        out[name] = SIGN[direction]
    return out


def checked_training_points(table: Table, split: Split) -> tuple[pd.DataFrame, np.ndarray]:
    """The training rows of ``split`` and their labels; ``ValueError`` for a split without training or test
    points, or training points with one outcome only."""
    if min(len(split.train), len(split.test)) == 0:
        raise ValueError(f"not enough prediction points to split: {split.sizes()}")
    f = table.frame.iloc[split.train]
    y = f["label"].to_numpy()
    if not 0 < y.sum() < len(y):
        raise ValueError(f"the training points need both outcomes: {int(y.sum())} events in {len(y)} points")
    return f, y


def fit_model(table: Table, spec: ModelSpec) -> Trained:
    """Tune and fit the spec's model on the training points of its time-and-member split."""
    m = spec.model
    split = time_member_split(table.frame, m.split)
    f, y = checked_training_points(table, split)
    X = f[table.features]
    groups = f["member_id"]
    monotone = model_directions(spec) if m.lightgbm.monotone else None
    timings = {}
    start = time.perf_counter()
    params, tuning = tune(X, y, groups, table.features, table.categorical, m.lightgbm, m.tuning,
                          cv_folds=m.split.cv_folds, seed=m.split.seed, monotone=monotone)
    timings["tuning"] = time.perf_counter() - start
    start = time.perf_counter()
    model = RiskModel(table.features, table.categorical, params, m.lightgbm.num_boost_round,
                      m.lightgbm.early_stopping_rounds, cv_folds=m.split.cv_folds,
                      calibration=m.calibration.method, monotone=monotone, seed=m.split.seed)
    model.fit(X, y, groups=groups)
    timings["fit"] = time.perf_counter() - start
    return Trained(model, split, tuning, timings, cv=dict(model.cv_), oof=model.oof_)


def baselines(table: Table, rows: np.ndarray, spec: ModelSpec) -> dict[str, float]:
    """AUROC of the scores people use today on the same test points (and of the oracle, if known)."""
    f = table.frame.iloc[rows]
    y = f["label"].to_numpy()
    out: dict[str, float] = {}
    if 0 < y.sum() < len(y):
        task = task_for(spec)
        for name, score in task.baselines(spec, f).items():
            out[name] = float(roc_auc_score(y, score))
        oracle = task.oracle(spec, table.data_dir, f) if table.data_dir is not None else None
        if oracle is not None and oracle.notna().all():
            out["oracle"] = float(roc_auc_score(y, oracle))
    return out


def leads(y: np.ndarray, p: np.ndarray, spec: ModelSpec, frame: pd.DataFrame, n_boot: int = 300) -> dict:
    """The model's AUROC minus each clinical baseline's on the same points, with a paired bootstrap 95 %
    interval: ``{name: {"diff", "lo", "hi"}}`` (empty without both outcomes)."""
    if not 0 < y.sum() < len(y):
        return {}
    out = {}
    for name, score in task_for(spec).baselines(spec, frame).items():
        diff, lo, hi = paired_auroc_difference(y, p, np.asarray(score, dtype=float), n_boot=n_boot)
        out[name] = {"diff": diff, "lo": lo, "hi": hi}
    return out


def evaluate_model(model: RiskModel, table: Table, rows: np.ndarray, spec: ModelSpec, n_boot: int = 300) -> dict:
    """Everything the report, the model card and the promotion gates read, for the points ``rows``."""
    f = table.frame.iloc[rows]
    y = f["label"].to_numpy()
    p = model.predict_proba(f)
    groups = {"age band": age_band(f["age"]), "sex": f["sex"].astype(str),
              "line of business": f["line_of_business"].astype(str)}
    if table.demographics is not None:
        race = table.demographics["race_ethnicity"].iloc[rows]
        if race.notna().any():
            groups["race and ethnicity"] = race.astype("str").fillna("unknown")
    return {
        "metrics": evaluate(y, p, spec.model.review_capacity, n_boot=n_boot),
        "subgroups": subgroups(y, p, groups, min_size=spec.model.gates.min_subgroup_size),
        "baselines": baselines(table, rows, spec),
        "leads": leads(y, p, spec, f, n_boot),
        "net_benefit": net_benefit(y, p),
        "y": y, "p": p,
        "period": (f["as_of"].min(), f["as_of"].max()),
    }
