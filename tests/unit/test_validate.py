"""The validator names table, file, row and column of each problem."""

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from umrisk.cli import app
from umrisk.features.schema import TABLES, read_table, write_table
from umrisk.features.validate import validate_dataset


def _members(**over):
    df = pd.DataFrame({"member_id": ["a", "b"], "birth_date": ["1950-01-01", "1960-05-01"], "sex": ["F", "M"],
                       "race_ethnicity": [None, "white"], "state": ["NE", None], "death_date": [None, None]})
    for k, v in over.items():
        df[k] = v
    return df


def _encounters(**over):
    df = pd.DataFrame({"encounter_id": ["e1", "e2"], "member_id": ["a", "b"], "setting": ["inpatient", "office"],
                       "admit_time": ["2024-01-05 10:00", "2024-02-01 09:00"],
                       "discharge_time": ["2024-01-09 12:00", None], "admission_type": ["emergency", "unknown"],
                       "discharge_disposition": ["home", "unknown"], "principal_dx": ["I5023", "Z0000"],
                       "facility_id": ["F1", None], "paid_amount": [9000.0, 100.0]})
    for k, v in over.items():
        df[k] = v
    return df


@pytest.fixture
def store(tmp_path):
    """A tiny valid store with every table."""
    write_table(_members(), tmp_path, "members")
    write_table(_encounters(), tmp_path, "encounters")
    for name in TABLES:
        if name not in ("members", "encounters"):
            write_table(pd.DataFrame({c.name: pd.Series([], dtype="object") for c in TABLES[name].columns}),
                        tmp_path, name)
    return tmp_path


def _problems(path):
    return [(p.table, p.row, p.column, p.check) for p in validate_dataset(path).problems]


def test_tiny_store_is_valid(store):
    assert validate_dataset(store).ok


def test_bad_value_names_file_row_and_column(store):
    write_table(_members(sex=["F", "X"]), store, "members")
    [p] = validate_dataset(store).problems
    assert (p.table, p.file, p.row, p.column, p.value) == ("members", "members/part-00000.parquet", 2, "sex", "X")


def test_discharge_before_admission_is_reported_once(store):
    write_table(_encounters(discharge_time=["2024-01-01 00:00", None]), store, "encounters")
    assert _problems(store) == [("encounters", 1, "discharge_time", "discharge_time before admit_time")]


def test_duplicate_key_across_parts(store):
    write_table(_encounters(), store, "encounters", part=1)
    probs = _problems(store)
    assert ("encounters", 1, "encounter_id", "duplicate key") in probs
    assert ("encounters", 2, "encounter_id", "duplicate key") in probs


def test_foreign_key_and_missing_value(store):
    write_table(_encounters(member_id=["a", "zz"], setting=["inpatient", None]), store, "encounters")
    probs = _problems(store)
    assert ("encounters", 2, "member_id", "not found in members.member_id") in probs
    assert ("encounters", 2, "setting", "missing value") in probs


def test_implausible_date_and_negative_amount(store):
    write_table(_members(birth_date=["1850-01-01", "1960-05-01"]), store, "members")
    write_table(_encounters(paid_amount=[-1.0, 5.0]), store, "encounters")
    probs = _problems(store)
    assert any(p[:3] == ("members", 1, "birth_date") and "implausible" in p[3] for p in probs)
    assert ("encounters", 1, "paid_amount", "below 0") in probs


def test_missing_column_wrong_type_and_aware_times(store):
    df = read_table(store, "members").drop(columns=["sex"])
    df["birth_date"] = df["birth_date"].dt.tz_localize("UTC").array
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), store / "members" / "part-00000.parquet")
    enc = read_table(store, "encounters")
    enc["paid_amount"] = enc["paid_amount"].astype(str)
    pq.write_table(pa.Table.from_pandas(enc, preserve_index=False), store / "encounters" / "part-00000.parquet")
    checks = {(p.table, p.column): p.check for p in validate_dataset(store).problems}
    assert checks[("members", "sex")] == "required column missing"
    assert "time-zone-aware" in checks[("members", "birth_date")]
    assert checks[("encounters", "paid_amount")].endswith("expected float")


def test_missing_table_and_unreadable_file(store):
    (store / "labs" / "part-00000.parquet").unlink()
    (store / "procedures" / "part-00000.parquet").write_bytes(b"not parquet")
    checks = {(p.table, p.check.split(":")[0]) for p in validate_dataset(store).problems}
    assert ("labs", "table missing") in checks
    assert ("procedures", "unreadable Parquet file") in checks


def test_cli_exit_status(store):
    runner = CliRunner()
    assert runner.invoke(app, ["data", "validate", str(store)]).exit_code == 0
    write_table(_members(sex=["F", "X"]), store, "members")
    res = runner.invoke(app, ["data", "validate", str(store)])
    assert res.exit_code == 1
    assert "members/part-00000.parquet, row 2, column sex" in res.output
