"""umrisk score-batch on Dask: a 2-worker LocalCluster scoring a store partition by partition gives the rows,
counts and percentiles of the single process, and lands in the case store the same way."""

import pandas as pd
import pytest
from typer.testing import CliRunner

from umrisk.cli import app
from umrisk.features.partition import partitions, repartition
from umrisk.serving.cases import batch
from umrisk.serving.cases.repository import CaseStore
from umrisk.training.score_batch import score_batch

runner = CliRunner()


@pytest.fixture(scope="module")
def four_partitions(served, tmp_path_factory):
    """The service's store written again in 4 member partitions."""
    out = tmp_path_factory.mktemp("store-4") / "store"
    repartition(served["store"], out, n=4)
    assert partitions(out) == [0, 1, 2, 3]
    return out


@pytest.mark.parametrize("model", ["admission_180d", "readmission_30d"])
def test_two_dask_workers_give_the_single_process_result(served, four_partitions, tmp_path, model):
    url = f"sqlite:///{tmp_path / 'cases.db'}"
    kw = {"database": url, "tracking_uri": served["uri"]}
    single = score_batch(model, four_partitions, out=tmp_path / "single.parquet", **kw)
    on_dask = score_batch(model, four_partitions, out=tmp_path / "dask.parquet", workers=2, **kw)
    a, b = pd.read_parquet(tmp_path / "single.parquet"), pd.read_parquet(tmp_path / "dask.parquet")
    pd.testing.assert_frame_equal(a, b)
    assert on_dask["rows"] == single["rows"] > 0 and on_dask["not_scorable"] == single["not_scorable"]
    assert on_dask["executor"] == "dask LocalCluster, 2 workers" and single["executor"] == "single process"
    cases = CaseStore.open(url)
    try:
        # the Dask run replaced the single-process run of the same model and date, row for row
        runs = batch.runs(cases, model)
        assert [r["status"] for r in runs] == ["current", "superseded"]
        assert runs[0]["executor"] == on_dask["executor"]
        stored = batch.run_scores(cases, on_dask["run_id"])
        assert stored["probability"].tolist() == b["probability"].tolist()
    finally:
        cases.dispose()


def test_the_command_on_an_existing_cluster_and_its_errors(served, four_partitions, tmp_path):
    import dask
    from distributed import LocalCluster

    base = ["score-batch", "admission_180d", "--tracking-uri", served["uri"], "--database-url",
            f"sqlite:///{tmp_path / 'cases.db'}"]
    single = runner.invoke(app, [*base, "--data", str(four_partitions), "--out", str(tmp_path / "single.parquet")])
    assert single.exit_code == 0 and "(single process)" in single.output, single.output
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        ok = runner.invoke(app, [*base, "--data", str(four_partitions), "--scheduler", cluster.scheduler_address,
                                 "--out", str(tmp_path / "cluster.parquet")])
    assert ok.exit_code == 0 and f"(dask scheduler {cluster.scheduler_address})" in ok.output, ok.output
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "single.parquet"),
                                  pd.read_parquet(tmp_path / "cluster.parquet"))
    both = runner.invoke(app, [*base, "--data", str(four_partitions), "--workers", "2", "--scheduler",
                               "tcp://127.0.0.1:1"])
    assert both.exit_code == 2 and "not both" in both.output
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        gone = runner.invoke(app, [*base, "--data", str(four_partitions), "--scheduler", "tcp://127.0.0.1:1"])
    assert gone.exit_code == 2 and len(gone.output.strip().splitlines()) == 1, gone.output
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:1" in gone.output
    old = tmp_path / "old-layout"
    old.mkdir()
    for entry in served["store"].iterdir():
        if entry.name != "_partitions.json":
            (old / entry.name).symlink_to(entry)
    r = runner.invoke(app, [*base, "--data", str(old), "--workers", "2"])
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1 and "repartition" in r.output, r.output
