"""Member partitions: a stable hash, the layout every writer produces, the validator's check, repartition and
reading one member."""

import json
import shutil

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from umrisk.features import partition
from umrisk.features.importers import run_import
from umrisk.features.partition import (
    load_partition,
    partition_of,
    partitions,
    read_manifest,
    read_member,
    repartition,
)
from umrisk.features.schema import TABLES, read_table, table_files
from umrisk.features.store import load_store
from umrisk.features.synthetic.generate import GenerateConfig, generate
from umrisk.features.validate import validate_dataset
from umrisk.training.lineage import data_fingerprint


@pytest.fixture(scope="module")
def partitioned(small_store, tmp_path_factory):
    """The session's small store repartitioned into four member partitions."""
    out = tmp_path_factory.mktemp("partitioned") / "p4"
    repartition(small_store, out, 4)
    return out


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(list(df.columns)).reset_index(drop=True)


def test_the_hash_is_fixed_whatever_the_input_type():
    ids = ["M00000001", "M00000002", "M00000003", "P-17"]
    assert partition_of(ids, 8).tolist() == [1, 3, 0, 0]  # fixed forever: stores written today depend on it
    assert partition_of(pd.Series(ids, dtype="category"), 8).tolist() == [1, 3, 0, 0]
    assert partition_of(pd.Series(ids, dtype="str"), 8).tolist() == [1, 3, 0, 0]
    assert partition_of(ids * 2, 1).tolist() == [0] * 8
    with pytest.raises(ValueError):
        partition_of(ids, 0)


def test_generated_partitions_hold_the_same_data_as_one_partition(tmp_path):
    one, three = tmp_path / "one", tmp_path / "three"
    generate(GenerateConfig(members=400, years=2, seed=2, block=150), one)
    generate(GenerateConfig(members=400, years=2, seed=2, block=150, partitions=3), three)
    assert read_manifest(three).partitions == 3 and read_manifest(one).partitions == 1
    for name in TABLES:
        pd.testing.assert_frame_equal(_sorted(read_table(one, name)), _sorted(read_table(three, name)))
    assert validate_dataset(three).ok
    for k in range(3):  # every table's part k holds only members of the members table's part k
        store = load_partition(three, k, compact=False)
        members = set(store["members"]["member_id"])
        for name, df in store.items():
            assert set(df["member_id"]) <= members, name


def test_repartition_keeps_every_row_and_leaves_the_source_alone(small_store, partitioned):
    assert partitions(partitioned) == [0, 1, 2, 3]
    for name in TABLES:
        before, after = read_table(small_store, name), read_table(partitioned, name)
        assert after.dtypes.equals(before.dtypes)
        pd.testing.assert_frame_equal(_sorted(before), _sorted(after))
        assert len(table_files(partitioned, name)) == 4
    assert (partitioned / "truth" / "readmission").is_dir()
    fingerprint = data_fingerprint(small_store)
    with pytest.raises(FileExistsError, match="not empty"):
        repartition(small_store, partitioned)
    assert data_fingerprint(small_store) == fingerprint


def test_load_partition_reads_the_frames_of_load_store(partitioned):
    whole = load_store(partitioned)
    parts = [load_partition(partitioned, k) for k in partitions(partitioned)]
    for name in TABLES:
        kinds = whole[name].dtypes.astype(str)  # categories differ by partition; the kinds do not
        assert all(p[name].dtypes.astype(str).equals(kinds) for p in parts), name
        assert sum(len(p[name]) for p in parts) == len(whole[name])
    with pytest.raises(ValueError, match="no partition 4"):
        load_partition(partitioned, 4)


def test_read_member_reads_only_its_partition(partitioned, tmp_path):
    store = tmp_path / "one-file-left"
    shutil.copytree(partitioned, store)
    member = read_table(store, "encounters")["member_id"].value_counts().index[0]
    expected = read_table(store, "encounters").query("member_id == @member").reset_index(drop=True)
    mine = int(partition_of([member], 4)[0])
    for f in table_files(store, "encounters"):
        if f.name != f"part-{mine:05d}.parquet":
            f.unlink()
    got = read_member(store, "encounters", member)
    pd.testing.assert_frame_equal(got, expected)
    assert read_member(store, "encounters", "nobody", columns=["member_id", "admit_time"]).empty


def test_a_partition_is_written_in_member_order_in_small_row_groups(tmp_path, monkeypatch):
    """Rows are sorted by member within each flush (a member's rows keep the order they were added in) and
    written in row groups of ROW_GROUP_ROWS, so a member's read is pruned to the groups that can hold it."""
    monkeypatch.setattr(partition, "ROW_GROUP_ROWS", 50)
    ids = [f"M{i:08d}" for i in range(400)]
    rows = pd.DataFrame({"member_id": [ids[(7 * j) % 400] for j in range(2_000)],
                         "birth_date": pd.Timestamp("1950-01-01"), "sex": "F", "race_ethnicity": None,
                         "state": [f"{j:04d}" for j in range(2_000)],  # state: the order rows were added in
                         "death_date": pd.NaT})
    partition.write_partitioned(rows, tmp_path, "members", 2)
    for k in range(2):
        meta = pq.ParquetFile(tmp_path / "members" / f"part-{k:05d}.parquet").metadata
        assert meta.num_row_groups > 1 and max(meta.row_group(g).num_rows for g in range(meta.num_row_groups)) <= 50
        stored = pq.read_table(tmp_path / "members" / f"part-{k:05d}.parquet").to_pandas()
        assert stored["member_id"].is_monotonic_increasing
        mine = rows[partition_of(rows["member_id"], 2) == k]
        assert stored.groupby("member_id")["state"].agg(list).to_dict() == \
            mine.groupby("member_id")["state"].agg(list).to_dict()
        ranges = [(meta.row_group(g).column(0).statistics.min, meta.row_group(g).column(0).statistics.max)
                  for g in range(meta.num_row_groups)]
        member = stored["member_id"].iloc[len(stored) // 2]
        assert sum(lo <= member <= hi for lo, hi in ranges) <= 2  # the groups a filtered read decodes
    member = ids[123]
    got = read_member(tmp_path, "members", member, columns=["member_id", "state"])
    assert got["state"].tolist() == rows.loc[rows["member_id"] == member, "state"].tolist()


def test_validator_names_a_row_in_the_wrong_partition(partitioned, tmp_path):
    store = tmp_path / "moved"
    shutil.copytree(partitioned, store)
    p0, p1 = store / "encounters" / "part-00000.parquet", store / "encounters" / "part-00001.parquet"
    first, second = pq.read_table(p0), pq.read_table(p1)
    stray = second.slice(0, 1)
    pq.write_table(pa.concat_tables([first, stray]), p0)
    report = validate_dataset(store)
    wrong = [p for p in report.problems if p.column == "member_id" and "partition" in p.check]
    assert len(wrong) == 1
    p = wrong[0]
    assert (p.table, p.file, p.row) == ("encounters", "encounters/part-00000.parquet", first.num_rows + 1)
    assert p.value == stray.column("member_id")[0].as_py() and "partition 1, not 0" in p.check


def test_validator_checks_the_manifest_and_warns_on_the_old_layout(partitioned, tmp_path):
    store = tmp_path / "five"
    shutil.copytree(partitioned, store)
    (store / "_partitions.json").write_text(json.dumps({"partitions": 5, "hash": "blake2b-64", "key": "member_id"}))
    report = validate_dataset(store)
    assert any(p.file == "members/part-00004.parquet" and p.check == "partition file missing" for p in report.problems)
    (store / "_partitions.json").unlink()
    report = validate_dataset(store)
    assert report.ok and "run umrisk data repartition" in report.render()
    with pytest.raises(ValueError, match="not partitioned by member"):
        partitions(store)


def test_an_import_is_written_in_member_partitions(tmp_path):
    out = tmp_path / "synthea"
    report = run_import("synthea", "tests/fixtures/synthea-sample", out, partitions=2)
    assert report.ok, report.render()
    assert read_manifest(out).partitions == 2
    assert all(len(table_files(out, name)) == 2 for name in TABLES)
    assert not [p for p in validate_dataset(out).problems if "partition" in p.check]
