"""The OMOP CDM v5.4 importer: the hand-made fixture as CSV and as Parquet, and broken files."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pandas as pd
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from tests.importing import assert_valid_import, counts_add_up, output_text
from umrisk.features.importers import run_import
from umrisk.features.schema import read_table
from umrisk.features.validate import validate_dataset

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "omop"






@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    out = tmp_path_factory.mktemp("omop") / "store"
    return run_import("omop", FIXTURE, out), out


def test_fixture_imports_into_a_valid_store(imported):
    report, out = imported
    assert_valid_import(report, out)
    assert {t: c["written"] for t, c in report.tables.items()} == {
        "members": 8, "enrollment": 7, "encounters": 14, "diagnoses": 9, "procedures": 5, "medications": 5,
        "labs": 4, "review_requests": 0}


def test_members_and_enrollment(imported):
    _, out = imported
    members = read_table(out, "members").set_index("member_id")
    assert members["sex"].to_dict() == {"1": "M", "2": "F", "3": "F", "4": "M", "5": "F", "6": "U", "7": "M", "8": "F"}
    assert members.loc["2", "birth_date"] == pd.Timestamp("1948-01-01")  # month and day default to 1
    assert members.loc["3", "race_ethnicity"] == "hispanic" and members.loc["8", "race_ethnicity"] == "native"
    assert pd.isna(members.loc["5", "race_ethnicity"])
    assert members.loc["1", "state"] == "MA" and pd.isna(members.loc["5", "state"])
    assert members.loc["4", "death_date"] == pd.Timestamp("2021-06-12")
    enrollment = read_table(out, "enrollment").set_index("member_id")["line_of_business"]
    assert enrollment.to_dict() == {"1": "medicare", "2": "medicaid", "3": "commercial", "4": "medicare",
                                    "6": "commercial", "7": "dual", "8": "unknown"}  # 5 is self-pay; 8 has no plan


def test_visits_map_to_settings_admission_and_disposition(imported):
    report, out = imported
    enc = read_table(out, "encounters").set_index("encounter_id")
    expected = {
        "103": ("inpatient", "emergency", "home"),  # ER visit 102 began 9 hours before
        "104": ("inpatient", "unknown", "snf"),
        "105": ("inpatient", "emergency", "hospice"),  # 262: ER and inpatient
        "108": ("inpatient", "unknown", "expired"),
        "109": ("observation", "unknown", "unknown"),
        "111": ("snf", "unknown", "home"),
        "112": ("inpatient", "emergency", "ama"),  # admitted from the ER
        "115": ("snf", "unknown", "rehab"),
        "107": ("telehealth", "unknown", "unknown"),
        "110": ("home_health", "unknown", "unknown"),
    }
    for visit, values in expected.items():
        assert tuple(enc.loc[visit, ["setting", "admission_type", "discharge_disposition"]]) == values, visit
    assert "113" not in enc.index  # laboratory visit
    assert report.tables["encounters"]["skipped"] == {"visit_concept_id: laboratory visit (not a care setting)": 1}
    assert enc.loc["103", "admit_time"] == pd.Timestamp("2020-03-01 19:00")
    assert enc.loc["106", "discharge_time"] == enc.loc["106", "admit_time"]  # bare end date on the start day
    assert enc.loc["103", "principal_dx"] == "I509" and enc.loc["105", "principal_dx"] == "4280"
    assert enc.loc["103", "facility_id"] == "500"


def test_codes_keep_their_source_vocabulary(imported):
    report, out = imported
    dx = read_table(out, "diagnoses")
    systems = dict(zip(dx["code"], dx["code_system"], strict=True))
    assert systems == {"I509": "ICD10CM", "E119": "ICD10CM", "4280": "ICD9CM", "V5861": "ICD9CM",
                       "44054006": "SNOMED", "201826": "SNOMED", "J441": "ICD10CM", "Z0000": "ICD10CM"}
    assert any("condition_concept_id under SNOMED" in w for w in report.warnings)
    px = read_table(out, "procedures")
    assert dict(zip(px["code"], px["code_system"], strict=True)) == {
        "99213": "CPT", "02HV33Z": "ICD10PCS", "3995": "ICD9PCS", "G0438": "HCPCS", "4163872": "SNOMED"}
    meds = read_table(out, "medications")
    # a store's rows are in member order within a partition, so compare them as a set
    assert sorted(meds[["code", "code_system", "days_supply"]].values.tolist()) == sorted([
        ["00093721401", "NDC", 30.0], ["197361", "RXNORM", 30.0], ["00781150610", "NDC", 30.0],
        ["C09AA03", "ATC", 90.0], ["19078461", "RXNORM", 9.0]])
    labs = read_table(out, "labs").set_index("code")
    assert labs.loc["718-7", "value"] == 11.2 and labs.loc["718-7", "unit"] == "g/dL"
    assert labs.loc["718-7", "time"] == pd.Timestamp("2020-03-02 06:00")
    assert report.tables["labs"]["skipped"] == {"measurement: no value_as_number": 1,
                                                "measurement_source_value: not a LOINC code": 1}


def test_no_addresses_or_source_ids_reach_the_output(imported):
    _, out = imported
    text = output_text(out)
    with (FIXTURE / "location.csv").open(newline="") as fh:
        secrets = [r[c] for r in csv.DictReader(fh) for c in ("address_1", "city", "zip", "county")]
    with (FIXTURE / "person.csv").open(newline="") as fh:
        secrets += [r["person_source_value"] for r in csv.DictReader(fh)]
    assert [s for s in secrets if s in text] == []


def _to_parquet(src: Path, dst: Path) -> Path:
    """The fixture as typed Parquet files (Arrow infers integers, dates and timestamps), names upper-cased."""
    dst.mkdir(parents=True)
    for f in src.glob("*.csv"):
        table = pcsv.read_csv(f)
        pq.write_table(table, dst / f"{f.stem.upper()}.parquet")
    return dst


def test_parquet_extract_imports_the_same(imported, tmp_path):
    report_csv, out_csv = imported
    src = _to_parquet(FIXTURE, tmp_path / "parquet")
    report = run_import("omop", src, tmp_path / "out")
    assert report.ok, report.render()
    assert validate_dataset(tmp_path / "out").ok
    assert {t: c["written"] for t, c in report.tables.items()} == {
        t: c["written"] for t, c in report_csv.tables.items()}
    for table in ("members", "enrollment", "encounters", "diagnoses", "procedures", "medications", "labs"):
        a = read_table(out_csv, table)
        b = read_table(tmp_path / "out", table)
        pd.testing.assert_frame_equal(a, b, check_dtype=False, obj=table)


def test_upper_case_csv_names_and_columns(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for f in FIXTURE.glob("*.csv"):
        lines = f.read_text().splitlines()
        (src / f.name.upper()).write_text("\n".join([lines[0].upper(), *lines[1:]]) + "\n")
    report = run_import("omop", src, tmp_path / "out")
    assert report.ok, report.render()
    assert report.tables["encounters"]["written"] == 14


def _copy(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    shutil.copytree(FIXTURE, src)
    return src


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_missing_person_file_or_column_is_an_error(tmp_path):
    src = _copy(tmp_path)
    _edit(src / "person.csv", "person_id,gender_concept_id,", "person_id,sex,")
    report = run_import("omop", src, tmp_path / "out")
    assert "person.csv: missing required column(s) gender_concept_id" in report.errors
    (src / "person.csv").unlink()
    report = run_import("omop", src, tmp_path / "out")
    assert not report.ok and "required file not found" in report.errors[0]


def test_bad_rows_are_rejected_with_reasons(tmp_path):
    src = _copy(tmp_path)
    _edit(src / "visit_occurrence.csv", "107,3,5083,2021-02-02,", "107,3,5083,02/02/2021,")
    _edit(src / "visit_occurrence.csv", "110,5,581476,", "110,5,99999,")
    _edit(src / "condition_occurrence.csv", ",J44.1,", ",not a code,")
    _edit(src / "condition_occurrence.csv", "8,7,255573,", "8,7,0,")
    _edit(src / "measurement.csv", ",0,131,0,", ",0,one-thirty,0,")
    report = run_import("omop", src, tmp_path / "out")
    assert not report.errors, report.render()
    assert validate_dataset(tmp_path / "out").ok
    counts_add_up(report)
    # the rows of the rejected visit 107 are lost with it: written, but not ok
    assert not report.ok and [m.split(":")[0] for m in report.lost] == ["condition_occurrence.csv",
                                                                        "procedure_occurrence.csv"]
    assert report.tables["encounters"]["rejected"] == {"visit_start_date: unparseable date": 1,
                                                       "visit_concept_id: unmapped visit concept": 1}
    # the telehealth visit's condition and procedure pointed at the rejected visit 107
    assert report.tables["diagnoses"]["rejected"] == {
        "visit_occurrence_id: unknown visit": 1,
        "condition_source_value: no recognisable code and condition_concept_id is 0": 1}
    assert report.tables["labs"]["rejected"] == {"value_as_number: unparseable number": 1}
    rejects = pd.read_csv(tmp_path / "out" / "rejects" / "encounters.csv", dtype=str)
    assert rejects[["source_row", "reason"]].values.tolist() == [
        ["8", "visit_start_date: unparseable date '02/02/2021'"],
        ["11", "visit_concept_id: unmapped visit concept '99999'"]]


def test_truncated_and_semicolon_files(tmp_path):
    src = _copy(tmp_path)
    text = (src / "drug_exposure.csv").read_text()
    (src / "drug_exposure.csv").write_text(text[: text.rindex("0,,")])  # last row cut short
    report = run_import("omop", src, tmp_path / "out")
    assert report.lost == ["drug_exposure.csv: line 6 is cut short (the file may be truncated)"]
    assert not report.ok and report.tables["medications"]["rejected"] == {"malformed row": 1}
    (src / "measurement.csv").write_text((src / "measurement.csv").read_text().replace(",", ";"))
    report = run_import("omop", src, tmp_path / "out")
    assert not report.ok and "semicolons" in report.errors[0]


def test_unreadable_parquet_is_an_error(tmp_path):
    src = _copy(tmp_path)
    (src / "death.parquet").write_bytes(b"not parquet at all")
    report = run_import("omop", src, tmp_path / "out")
    assert report.errors == ["death.parquet: unreadable Parquet file (ArrowInvalid)"]
