"""Feature tables built on a 2-worker Dask LocalCluster, partition by partition, are the single-process ones."""

import pandas as pd
import pytest

from umrisk.features.build import build_features
from umrisk.features.distributed import build_table, dask_client, merge_reports
from umrisk.features.partition import repartition
from umrisk.features.spec import load_spec
from umrisk.features.store import load_store
from umrisk.features.tasks import task_for

MODELS = ("readmission_30d", "admission_180d", "ed_visit_90d")


@pytest.fixture(scope="module")
def store(small_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("dask") / "p4"
    repartition(small_store, out, 4)
    return out


@pytest.fixture(scope="module")
def client():
    with dask_client(workers=2) as c:
        yield c


@pytest.mark.parametrize("model", MODELS)
def test_dask_build_is_the_single_process_build(store, client, model):
    spec = load_spec(model)
    whole = load_store(store)
    points, report = task_for(spec).cohort(whole, spec)
    single = build_features(whole, points, spec)
    finished = []
    t = build_table(store, spec, client, ["race_ethnicity"], progress=finished.append)
    pd.testing.assert_frame_equal(t.frame, single, check_exact=True)  # rows, order, values, dtypes, categories
    assert t.cohort.to_dict() == report.to_dict()
    demo = whole["members"].set_index("member_id").reindex(single["member_id"].astype(str))[["race_ethnicity"]]
    pd.testing.assert_frame_equal(t.members, demo.reset_index(drop=True))
    assert sum(finished) == 4


def test_report_steps_add_up_except_the_shared_calendar():
    from umrisk.features.cohorts import CohortReport

    a, b = CohortReport("member_month"), CohortReport("member_month")
    for r, n in ((a, 10), (b, 5)):
        r.add("scoring dates (25)", 25)
        r.add("members", n)
        r.note("died", 1)
    merged = merge_reports([a, b], pd.Series([1, 0, 0, 0], dtype="int8"))
    assert merged.steps == [("scoring dates (25)", 25), ("members", 15)]
    assert merged.notes == [("died", 2)] and merged.label_rate == 0.25


def test_train_on_two_dask_workers_registers_the_single_process_model(store, client, tmp_path):
    """`umrisk train --workers 2`: the features built on the cluster, then the same fit, so the same model."""
    import shutil

    import numpy as np

    from tests.specs import quick
    from umrisk.training import commands, registry

    other = tmp_path / "copy"
    shutil.copytree(store, other, ignore=shutil.ignore_patterns("features"))  # no cached table to reuse
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec = quick("readmission_30d")
    single = commands.train("readmission_30d", store, tmp_path / "r1", uri, spec=spec)
    on_dask = commands.train("readmission_30d", other, tmp_path / "r2", uri, spec=spec, client=client)
    assert not single["features_cached"] and not on_dask["features_cached"]
    assert on_dask["test"] == single["test"] and on_dask["split"] == single["split"]
    a = registry.load("readmission_30d", single["version"])[0]
    b = registry.load("readmission_30d", on_dask["version"])[0]
    frame = load_store(store)
    points, _ = task_for(spec).cohort(frame, spec)
    X = build_features(frame, points, spec)
    np.testing.assert_array_equal(a.risk_model.predict_proba(X), b.risk_model.predict_proba(X))


def _slow_block(k: int) -> bytes:
    import time

    time.sleep(0.05 * (5 - k))  # the later partitions finish first
    return bytes([k]) * 1_000_000


def test_results_come_back_in_order_and_leave_the_workers_as_they_finish(client):
    """A worker holds a finished partition only until the client has it, so its memory is bounded by the
    partitions it works on, not by its share of the store (the 5,000,000-member run peaked at 2.2 GiB per
    worker when every result waited on its worker for the last one)."""
    import time

    from umrisk.features.distributed import gather_as_done

    def held() -> int:
        return sum(client.run(lambda dask_worker: len(dask_worker.data)).values())

    futures = client.map(_slow_block, range(6), pure=False)
    seen = []
    results = gather_as_done(futures, progress=seen.append)
    assert [r[0] for r in results] == list(range(6)) and seen == [1] * 6
    deadline = time.monotonic() + 10  # releases reach the scheduler, then the workers, asynchronously
    while held() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert held() == 0  # with `futures` still referenced: each was released once fetched
