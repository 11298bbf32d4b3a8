"""The commands of member partitions: umrisk data repartition, and umrisk features build on Dask."""

import shutil

import pandas as pd
from typer.testing import CliRunner

from umrisk.cli import app
from umrisk.features.partition import read_manifest

runner = CliRunner()


def test_repartition_then_build_on_two_workers_gives_the_single_process_file(small_store, tmp_path):
    store = tmp_path / "p3"
    r = runner.invoke(app, ["data", "repartition", str(small_store), "--out", str(store), "--partitions", "3"])
    assert r.exit_code == 0, r.output
    assert read_manifest(store).partitions == 3
    again = runner.invoke(app, ["data", "repartition", str(small_store), "--out", str(store)])
    assert again.exit_code == 2 and "not empty" in again.output and len(again.output.strip().splitlines()) == 1

    single, dask = tmp_path / "single.parquet", tmp_path / "dask.parquet"
    r = runner.invoke(app, ["features", "build", "readmission_30d", "--data", str(store), "--out", str(single)])
    assert r.exit_code == 0, r.output
    for cached in store.glob("features/cache/*"):  # build again, not from the cache
        cached.unlink()
    r = runner.invoke(app, ["features", "build", "readmission_30d", "--data", str(store), "--out", str(dask),
                            "--workers", "2"])
    assert r.exit_code == 0, r.output
    assert "(built;" in r.output
    pd.testing.assert_frame_equal(pd.read_parquet(dask), pd.read_parquet(single), check_exact=True)


def test_dask_build_refuses_a_store_in_the_old_layout(small_store, tmp_path):
    store = tmp_path / "old"
    shutil.copytree(small_store, store)
    (store / "_partitions.json").unlink()
    r = runner.invoke(app, ["features", "build", "readmission_30d", "--data", str(store), "--workers", "2"])
    assert r.exit_code == 2 and "run umrisk data repartition" in r.output
