"""Training a spec's model end to end, and evaluating a model on a test set the same way every time.

``build_table`` turns a store into the spec's prediction points with labels and features;
``fit_model`` splits by time and member, tunes within the budget, fits with early stopping and
calibrates; ``evaluate_model`` gives the full evaluation (metrics with intervals, calibration,
usefulness at capacity, subgroups, clinical baselines, the oracle on synthetic data).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from umrisk.features.build import build_features, feature_set
from umrisk.features.cohorts import CohortReport
from umrisk.features.spec import ModelSpec
from umrisk.features.store import load_store
from umrisk.features.tasks import task_for
from umrisk.training.metrics import age_band, evaluate, net_benefit, subgroups
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


def build_table(data_dir: Path | str, spec: ModelSpec) -> Table:
    store = load_store(data_dir)
    points, report = task_for(spec).cohort(store, spec)
    frame = build_features(store, points, spec)
    fs = feature_set(spec)
    demo = store["members"].set_index("member_id").reindex(frame["member_id"].astype(str))[["race_ethnicity"]]
    return Table(frame, fs.names, fs.categorical, report, Path(data_dir), demo.reset_index(drop=True))


@dataclass
class Trained:
    model: RiskModel
    split: Split
    tuning: dict
    seconds: dict = field(default_factory=dict)


def fit_model(table: Table, spec: ModelSpec) -> Trained:
    m = spec.model
    split = time_member_split(table.frame, m.split)
    if min(len(split.train), len(split.valid), len(split.calib), len(split.test)) == 0:
        raise ValueError(f"not enough prediction points to split: {split.sizes()}")
    f = table.frame
    y = f["label"].to_numpy()
    X = f[table.features]
    timings = {}
    start = time.perf_counter()
    params, tuning = tune(X.iloc[split.train], y[split.train], X.iloc[split.valid], y[split.valid],
                          table.features, table.categorical, m.lightgbm, m.tuning, seed=m.split.seed)
    timings["tuning"] = time.perf_counter() - start
    start = time.perf_counter()
    model = RiskModel(table.features, table.categorical, params, m.lightgbm.num_boost_round,
                      m.lightgbm.early_stopping_rounds)
    model.fit(X.iloc[split.train], y[split.train], X.iloc[split.valid], y[split.valid],
              X.iloc[split.calib], y[split.calib], calibration=m.calibration.method)
    timings["fit"] = time.perf_counter() - start
    return Trained(model, split, tuning, timings)


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
        "net_benefit": net_benefit(y, p),
        "y": y, "p": p,
        "period": (f["as_of"].min(), f["as_of"].max()),
    }
