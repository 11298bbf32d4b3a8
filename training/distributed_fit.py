"""Fitting a spec's model past one machine: LightGBM trained on the Dask cluster (``lightgbm.dask``).

``lightgbm.dask`` has no early stopping and no cross-validation, so the choices the single-process fit makes
by member-grouped cross-validation (``training.train.fit_model``) are made the same way on a sample of
members that fits one process, and only the final booster is trained on the whole table across the cluster:

1. a seeded sample of the training members, every row of each (``member_sample``), at most ``SAMPLE_ROWS``
   rows (or the spec's ``max_train_points`` if smaller);
2. on the sample, the usual search (``tune``) and the usual ``RiskModel.fit``: the number of rounds of
   lowest member-grouped cross-validated log loss, the out-of-fold predictions and the calibrator
   cross-fitted on them (the same calibrator code; the sample's booster is discarded);
3. ``DaskLGBMClassifier`` with those parameters, rounds and monotone constraints on every training point,
   each worker encoding its own rows with the model's ``prepare`` and the category levels of the whole table;
4. the sample's ``RiskModel`` with the cluster's booster (``to_local().booster_``), so registration, the
   artifact digest, evaluation, reports and serving see an ordinary fitted ``RiskModel``.

The run says where the rounds came from (``ROUNDS_FROM`` in ``Trained.tuning``, logged as a tag). Two
differences from the single-process fit, both LightGBM's: in distributed (``tree_learner=data``) training it
enforces monotone constraints with the ``basic`` method rather than ``intermediate`` (still monotone, a
little more restrictive), and bins are found from the workers' own rows, so the booster is not identical to
one trained in one process on the same rows.

Where the single process stops, measured on a 2-core, 24 GiB machine shared with other jobs (load 8-12),
the member-month admission model shipped in models/ on a generated 100,000-member store (1,242,226 points,
665,787 of them training points; ``fit_model`` with the spec's tuning budget of 10 trials in 180 s, training
points sampled down to N):

    training points   fit_model wall   search trials   peak RSS (table held: 1.8 GiB)   test AUROC
          100,000          223 s              7                 1.9 GiB                    0.733
          300,000          590 s              1                 3.7 GiB                    0.733
          665,787          421 s              1                 6.8 GiB                    0.733

The fit costs about 8.7 KiB per training point on top of the table (about 2.7 KiB more per training point
as the store grows), so on 24 GiB one process runs out of memory near 2 million training points; from 1
million (about 10 GiB) it goes to the cluster. Past 100,000 points the 180-second search runs one trial:
the sample below keeps the search. On the same 665,787 training points, ``fit_model_distributed`` on a
2-worker ``LocalCluster`` (sample of 8,627 members, 99,999 points): 90 s (search 62 s with 10 trials,
cross-validation 12 s, the cluster's 151 rounds on every point 14 s), driver 2.4 GiB with the table, each
worker 1.2 GiB, test AUROC 0.734.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from umrisk.features.spec import ModelSpec
from umrisk.training.model import RiskModel, lgb_params
from umrisk.training.split import Split, member_hash, time_member_split
from umrisk.training.train import Table, Trained, checked_training_points, model_directions
from umrisk.training.tune import tune

# Training points above which `umrisk train` fits on the cluster when it has one: about 10 GiB for one process,
# half this 24 GiB machine, which runs out near 2 million (measured and extrapolated: the module docstring).
DISTRIBUTED_FROM_ROWS = 1_000_000
# The most rows of the member sample that parameters, rounds and calibration are chosen on (the spec's
# max_train_points if smaller): at 100,000 points the 180-second search still ran 7 to 10 trials.
SAMPLE_ROWS = 100_000
ROUNDS_FROM = "rounds_from"  # the tag that says where the number of boosting rounds came from


def member_sample(member_ids: pd.Series, max_rows: int, seed: int = 1) -> np.ndarray:
    """Sorted row positions of a seeded sample of members, all of each member's rows, at most ``max_rows``
    rows: members are taken in the order of a stable hash of their id (so a member's inclusion does not
    depend on the others) until the next one would not fit.

    >>> member_sample(pd.Series(list("aabbbc")), 6).tolist()
    [0, 1, 2, 3, 4, 5]
    >>> len(member_sample(pd.Series(list("aabbbc")), 3)) <= 3
    True
    """
    ids = pd.Series(member_ids).astype(str).reset_index(drop=True)
    counts = ids.value_counts(sort=False)
    order = np.argsort(member_hash(pd.Series(counts.index), f"sample{seed}"), kind="stable")
    taken = counts.iloc[order]
    keep = taken.index[np.cumsum(taken.to_numpy()) <= max_rows]
    return np.flatnonzero(ids.isin(set(keep)).to_numpy())


def category_levels(train, categorical: Sequence[str]) -> dict[str, list[str]]:
    """The sorted levels of each categorical column over every partition of the Dask DataFrame ``train``
    (what ``RiskModel.fit`` reads from its own rows), computed on the workers."""
    if not categorical:
        return {}

    def part_levels(part: pd.DataFrame) -> pd.DataFrame:
        rows = [(c, v) for c in categorical for v in pd.Series(part[c]).dropna().astype(str).unique()]
        return pd.DataFrame(rows, columns=["column", "level"], dtype=object)

    meta = pd.DataFrame({"column": pd.Series(dtype=object), "level": pd.Series(dtype=object)})
    found = train[list(categorical)].map_partitions(part_levels, meta=meta).compute()
    return {c: sorted(set(found.loc[found["column"] == c, "level"])) for c in categorical}


def cluster_params(model: RiskModel, rows: int) -> dict:
    """The LightGBM parameters of ``model`` as its own fit uses them (``lgb_params``), for
    ``DaskLGBMClassifier``: the seed as ``random_state``, the thread count left to ``lightgbm.dask`` (one
    process per Dask worker thread), and the Dataset kept unfiltered as ``RiskModel.dataset`` keeps it."""
    params = lgb_params(model.params or {}, model.seed, model.monotone_constraints(), rows=rows)
    params.pop("num_threads", None)
    return {**params, "random_state": params.pop("seed"), "feature_pre_filter": False}


def train_booster(client, X, y, params: Mapping, rounds: int, categorical: Sequence[str]):
    """A LightGBM booster of ``rounds`` trees trained across the cluster on the Dask collections ``X``
    (prepared features) and ``y``; every worker holding a part of ``X`` takes part."""
    from lightgbm.dask import DaskLGBMClassifier

    clf = DaskLGBMClassifier(client=client, n_estimators=rounds, **params)
    clf.fit(X, y, categorical_feature=list(categorical))
    return clf.to_local().booster_


def fit_distributed(client, train, sample: pd.DataFrame, spec: ModelSpec, features: Sequence[str],
                    categorical: Sequence[str]) -> tuple[RiskModel, dict, dict]:
    """A fitted ``RiskModel``: parameters, rounds and calibration by member-grouped cross-validation on the
    in-process ``sample`` (every row of its members), the booster trained on the Dask DataFrame ``train``
    (every training point, features and ``label``) across ``client``'s cluster.

    Returns the model, the search summary (with ``ROUNDS_FROM``) and the seconds of each step."""
    m = spec.model
    features, categorical = list(features), list(categorical)
    monotone = model_directions(spec) if m.lightgbm.monotone else None
    X, y, groups = sample[features], sample["label"].to_numpy(), sample["member_id"]
    seconds = {}
    t0 = time.perf_counter()
    params, tuning = tune(X, y, groups, features, categorical, m.lightgbm, m.tuning, cv_folds=m.split.cv_folds,
                          seed=m.split.seed, monotone=monotone)
    seconds["tuning"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = RiskModel(features, categorical, params, m.lightgbm.num_boost_round, m.lightgbm.early_stopping_rounds,
                      cv_folds=m.split.cv_folds, calibration=m.calibration.method, monotone=monotone,
                      seed=m.split.seed)
    model.fit(X, y, groups=groups)  # rounds, out-of-fold predictions, calibrator (its refit is replaced below)
    seconds["cross_validation"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    model.with_levels(category_levels(train, categorical))
    meta = model.prepare(sample[features].head(0))
    X_all = train[features].map_partitions(model.prepare, meta=meta)
    rows = int(train.map_partitions(len).sum().compute())
    booster = train_booster(client, X_all, train["label"], cluster_params(model, rows), model.best_iteration_,
                            categorical)
    model.with_booster(booster)
    seconds["fit"] = time.perf_counter() - t0
    members = sample["member_id"].nunique()
    tuning = {**tuning, ROUNDS_FROM: f"cross-validation on a sample of {members} members ({len(sample)} points)",
              "sample_members": members, "sample_points": len(sample), "cluster_points": rows,
              "cluster_workers": len(client.ncores())}
    return model, tuning, seconds


def on_workers(client, frame: pd.DataFrame):
    """``frame`` as a Dask DataFrame of one contiguous part per worker, each part scattered to its worker
    (so ``lightgbm.dask`` trains on every worker)."""
    import dask.dataframe as dd

    workers = sorted(client.ncores())  # every worker of the cluster
    bounds = np.linspace(0, len(frame), len(workers) + 1).astype(int)
    parts = [client.scatter(frame.iloc[a:b], workers=[w]) for a, b, w in zip(bounds[:-1], bounds[1:], workers,
                                                                           strict=True) if b > a]
    return dd.from_delayed(parts, meta=frame.head(0), verify_meta=False)


def training_split(table: Table, spec: ModelSpec) -> Split:
    """The spec's time-and-member split with every training point: ``max_train_points`` bounds what one
    process fits within its time budget, and here bounds the cross-validation sample instead."""
    m = spec.model
    return time_member_split(table.frame, m.split.model_copy(update={"max_train_points": None}))


def fit_model_distributed(table: Table, spec: ModelSpec, client, sample_rows: int | None = None) -> Trained:
    """``fit_model`` on the cluster: the same split (its test points unchanged) with every training point,
    parameters, rounds and calibration chosen on a member sample of at most ``sample_rows`` rows (default:
    ``SAMPLE_ROWS``, or the spec's ``max_train_points`` if smaller), the booster trained on all training points with
    ``lightgbm.dask``. ``Trained.oof`` is None: the out-of-fold predictions are the sample's
    (``model.oof_``)."""
    m = spec.model
    split = training_split(table, spec)
    train, _ = checked_training_points(table, split)
    limit = sample_rows or min(SAMPLE_ROWS, m.split.max_train_points or SAMPLE_ROWS)
    sample = train.iloc[member_sample(train["member_id"], limit, m.split.seed)]
    t0 = time.perf_counter()
    on_cluster = on_workers(client, train[[*table.features, "label"]])
    seconds = {"scatter": time.perf_counter() - t0}
    model, tuning, fit_seconds = fit_distributed(client, on_cluster, sample, spec, table.features, table.categorical)
    seconds.update(fit_seconds)
    return Trained(model, split, tuning, seconds, cv=dict(model.cv_), oof=None)


def goes_distributed(table: Table, spec: ModelSpec, client, distributed: bool | None = None) -> bool:
    """Whether ``umrisk train`` fits on the cluster: when asked (``distributed=True``; refused without a
    cluster), never when told not to (False), else (None) when there is a cluster and the training points
    number more than ``DISTRIBUTED_FROM_ROWS``."""
    if distributed and client is None:
        raise ValueError("a distributed fit needs a Dask cluster: give --workers N or --scheduler ADDRESS")
    if distributed is not None:
        return distributed
    return client is not None and len(training_split(table, spec).train) > DISTRIBUTED_FROM_ROWS
