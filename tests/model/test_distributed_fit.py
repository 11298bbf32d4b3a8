"""`umrisk train --distributed` on a 2-worker Dask LocalCluster: LightGBM trained with ``lightgbm.dask`` on every
training point, parameters, rounds and calibration chosen by member-grouped cross-validation on a member sample.

A user checks that the version registers and serves like any other, predicts as well as the single-process
model on the same test points, says in the run where its rounds came from, and keeps the clinical directions.
"""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from tests.model.test_behaviour import added_encounters, assert_not_lowered, risk
from tests.specs import quick
from umrisk.features.distributed import dask_client
from umrisk.features.store import load_store
from umrisk.features.tasks import task_for
from umrisk.training import commands, registry
from umrisk.training.distributed_fit import ROUNDS_FROM, goes_distributed, member_sample
from umrisk.training.feature_cache import feature_table

MODEL = "admission_180d"
SAMPLE_POINTS = 12_000  # about half the small store's training points: a real sample, not all of them
AUROC_TOLERANCE = 0.02


@pytest.fixture(scope="module")
def on_dask(tracking, small_store, tmp_path_factory):
    """The admission model trained on the cluster and registered in a tracking store of its own (the
    session's challenger alias stays on the single-process version), beside that single-process version."""
    root = tmp_path_factory.mktemp("dask-fit")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    base = quick(MODEL)
    m = base.model
    spec = base.model_copy(update={"model": m.model_copy(update={
        "split": m.split.model_copy(update={"max_train_points": SAMPLE_POINTS})})})
    with dask_client(workers=2) as client:
        result = commands.train(MODEL, small_store, root / "reports", uri, spec=spec, client=client, distributed=True)
    registry.configure(uri)
    wrapped, mv = registry.load(MODEL, result["version"])  # refuses an artifact whose digest does not match
    table, _ = feature_table(small_store, spec)
    return {"result": result, "model": wrapped, "version": mv, "uri": uri, "spec": spec, "table": table,
            "single": tracking["first"]}


def test_the_distributed_version_loads_and_serves_like_any_other(on_dask):
    r, wrapped = on_dask["result"], on_dask["model"]
    assert r["distributed_fit"] and r["alias"] == "challenger"
    table = on_dask["table"]
    rows = table.frame.sample(300, random_state=0)
    p = wrapped.risk_model.predict_proba(rows)
    assert p.shape == (300,) and np.all((p >= 0) & (p <= 1)) and p.std() > 0
    served = wrapped.predict(None, rows)
    np.testing.assert_array_equal(served["probability"].to_numpy(), p)
    assert set(served["tier"]) <= {t.name for t in on_dask["spec"].model.tiers}
    _, contributions = wrapped.risk_model.predict_explained(rows)  # reasons: TreeSHAP of the cluster's booster
    assert list(contributions.columns[:-1]) == list(wrapped.risk_model.features)


def test_auroc_is_the_single_process_models_within_a_small_tolerance(on_dask):
    r, single = on_dask["result"], on_dask["single"]
    assert r["split"]["test"] == single["split"]["test"]  # the same test points
    table = on_dask["table"]
    rows = commands.held_out_rows(table, on_dask["spec"])
    y = table.frame["label"].iloc[rows].to_numpy()
    auroc = roc_auc_score(y, on_dask["model"].risk_model.predict_proba(table.frame.iloc[rows]))
    assert auroc == pytest.approx(r["test"]["auroc"])
    assert abs(auroc - single["test"]["auroc"]) <= AUROC_TOLERANCE, (auroc, single["test"]["auroc"])


def test_the_run_says_the_rounds_came_from_cross_validation_on_a_sample(on_dask):
    mv = on_dask["version"]
    registry.configure(on_dask["uri"])
    run = mlflow.get_run(mv.run_id)
    said = run.data.tags[ROUNDS_FROM]
    assert said == (mv.tags or {})[ROUNDS_FROM] and said.startswith("cross-validation on a sample of ")
    assert run.data.tags["fit"] == "lightgbm.dask"
    model = on_dask["model"].risk_model
    sample_points = len(model.oof_)  # the cross-validation (and calibration) saw the sample only
    assert sample_points <= SAMPLE_POINTS < on_dask["result"]["split"]["train"]  # the booster saw them all
    assert int(run.data.params["best_iteration"]) == model.best_iteration_ == model.cv_["rounds"]
    assert model.booster_.current_iteration() == model.best_iteration_


def test_a_prior_admission_does_not_lower_risk(on_dask, small_store):
    """The behavioural direction test of tests/model/test_behaviour.py, on the cluster's booster."""
    spec = on_dask["spec"]
    store = load_store(small_store)
    points, _ = task_for(spec).cohort(store, spec)
    points = points.drop_duplicates("member_id", keep="last").reset_index(drop=True)
    t = {"spec": spec, "model": on_dask["model"].risk_model, "points": points}
    before = risk(t, store)
    after = risk(t, added_encounters(store, spec, points, "inpatient", 90, 4))
    assert_not_lowered(before, after, "a prior admission")


def test_a_sample_keeps_whole_members_and_its_size():
    ids = pd.Series([f"m{i // 3}" for i in range(3000)])  # 1,000 members of 3 rows
    rows = member_sample(ids, 1000, seed=1)
    taken = ids.iloc[rows]
    assert 990 <= len(rows) <= 1000 and (taken.value_counts() == 3).all()
    np.testing.assert_array_equal(rows, member_sample(ids.sample(frac=1, random_state=0).sort_index(), 1000, seed=1))
    assert set(taken) != set(ids.iloc[member_sample(ids, 1000, seed=2)])


def test_a_distributed_fit_without_a_cluster_is_refused(small_store):
    with pytest.raises(ValueError, match="--workers N or --scheduler"):
        goes_distributed(None, quick(MODEL), None, distributed=True)
