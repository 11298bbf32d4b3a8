"""The contract of the canonical tables, checked on a generated store."""

import pandas as pd
import pyarrow.parquet as pq
import pytest

from umrisk.features.schema import ARROW_TYPES, TABLES, read_table, table_files
from umrisk.features.validate import validate_dataset


def test_generated_store_validates(small_store):
    report = validate_dataset(small_store)
    assert report.ok, report.render()


@pytest.mark.parametrize("name", list(TABLES))
def test_every_table_has_its_key_columns_and_types(small_store, name):
    files = table_files(small_store, name)
    assert files, f"{name} missing"
    schema = pq.read_schema(files[0])
    for col in TABLES[name].columns:
        assert col.name in schema.names, f"{name}.{col.name}"
        assert schema.field(col.name).type == ARROW_TYPES[col.kind], f"{name}.{col.name}"


@pytest.mark.parametrize("name", list(TABLES))
def test_allowed_values_hold_and_tables_are_not_empty(small_store, name):
    df = read_table(small_store, name)
    assert len(df) > 0
    for col in TABLES[name].columns:
        if col.allowed:
            assert set(df[col.name].dropna().unique()) <= set(col.allowed), f"{name}.{col.name}"


def test_times_are_naive(small_store):
    enc = read_table(small_store, "encounters")
    assert enc["admit_time"].dt.tz is None


def test_every_setting_and_disposition_occurs(small_store):
    enc = read_table(small_store, "encounters")
    assert set(enc["setting"]) == set(TABLES["encounters"].column("setting").allowed)
    inp = enc[enc["setting"] == "inpatient"]
    for disp in ["home", "home_health", "snf", "transfer_acute", "ama", "expired", "hospice"]:
        assert (inp["discharge_disposition"] == disp).any(), disp
    assert (inp["admission_type"] == "elective").any()


def test_labs_cover_the_named_loinc_codes(small_store):
    labs = read_table(small_store, "labs")
    assert {"718-7", "2951-2", "2160-0", "33914-3", "4548-4", "30934-4"} <= set(labs["code"])
    assert labs["value"].notna().all()


def test_planned_readmissions_exist(small_store):
    dx = read_table(small_store, "diagnoses")
    principal = set(dx.loc[dx["is_principal"], "code"])
    assert {"Z5111", "Z5189"} & principal  # maintenance chemotherapy, rehabilitation


def test_truth_sits_beside_the_store(small_store):
    readm = pd.read_parquet(small_store / "truth" / "readmission")
    adm = pd.read_parquet(small_store / "truth" / "admission")
    enc = read_table(small_store, "encounters")
    assert set(readm["encounter_id"]) == set(enc.loc[enc["setting"] == "inpatient", "encounter_id"])
    final = readm["chain_final"] & (readm["discharge_disposition"] != "expired")
    assert readm.loc[final, "p_readmit_30d"].between(0, 1).all()
    assert readm.loc[~final, "p_readmit_30d"].isna().all()
    assert adm["p_admit_180d"].between(0, 1).all()
    assert (adm["as_of"].dt.day == 1).all()
