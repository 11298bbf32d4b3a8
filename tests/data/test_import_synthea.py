"""The Synthea importer: the sample in tests/fixtures, another export of another shape, and broken files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest

from tests.importing import FIXTURES, assert_valid_import, counts_add_up, output_text
from umrisk.features.importers import run_import
from umrisk.features.schema import read_table
from umrisk.features.validate import validate_dataset

SAMPLE = FIXTURES / "synthea-sample"
IDENTIFYING = ("SSN", "DRIVERS", "PASSPORT", "FIRST", "LAST", "MAIDEN", "ADDRESS")



def _csv_rows(name: str, folder: Path = SAMPLE) -> list[dict[str, str]]:
    with (folder / name).open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))






@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthea") / "store"
    return run_import("synthea", SAMPLE, out), out


def test_sample_imports_into_a_valid_store(sample):
    report, out = sample
    assert_valid_import(report, out)
    saved = json.loads((out / "import_report.json").read_text())
    assert saved["ok"] is True and saved["tables"] == report.tables
    counts_add_up(report)
    assert report.tables["review_requests"]["written"] == 0


def test_sample_rows_land_where_expected(sample):
    _, out = sample
    patients = _csv_rows("patients.csv")
    encounters_csv = _csv_rows("encounters.csv")
    members = read_table(out, "members").set_index("member_id")
    assert len(members) == len(patients) == 111
    assert members.loc["982192b6-6843-4011-ef46-32caaf87d8a9", "sex"] == "F"
    assert members.loc["2de0b259-6c63-700d-9ac4-edcabff0861a", "sex"] == "M"
    assert members.loc["2de0b259-6c63-700d-9ac4-edcabff0861a", "birth_date"] == pd.Timestamp("2017-11-15")
    assert members["death_date"].notna().sum() == sum(1 for p in patients if p["DEATHDATE"])

    encounters = read_table(out, "encounters").set_index("encounter_id")
    assert len(encounters) == len(encounters_csv)
    by_class = pd.Series([e["ENCOUNTERCLASS"] for e in encounters_csv]).value_counts()
    assert (encounters["setting"] == "inpatient").sum() == by_class["inpatient"] == 49
    assert (encounters["setting"] == "emergency").sum() == by_class["emergency"] == 250
    first = encounters.loc["3c1c5636-2c43-bd4b-6eab-9eabf5929c55"]
    assert first["setting"] == "office"  # wellness visit
    assert first["admit_time"] == pd.Timestamp("2022-07-20 07:13:55")  # ...Z, stored as naive UTC
    assert first["paid_amount"] == 0.0 and first["facility_id"] == "ef1f19e7-b08a-3a0d-bdd1-4020f5c1a62f"
    assert encounters.loc[encounters["setting"] == "inpatient", "admission_type"].isin(
        ["emergency", "elective", "unknown"]).all()
    assert (encounters["discharge_disposition"] == "expired").sum() >= 1

    diagnoses = read_table(out, "diagnoses")
    assert len(diagnoses) == len(_csv_rows("conditions.csv"))
    assert (diagnoses["code_system"] == "SNOMED").all()
    principal = diagnoses[diagnoses["is_principal"]]
    assert (principal["code"].to_numpy() == encounters.loc[principal["encounter_id"], "principal_dx"].to_numpy()).all()

    enrollment = read_table(out, "enrollment")
    uninsured = sum(1 for t in _csv_rows("payer_transitions.csv")
                    if t["PAYER"] == "e03e23c9-4df1-3eb6-a62d-f70f02301496")  # NO_INSURANCE in payers.csv
    assert uninsured > 0
    assert len(enrollment) == len(_csv_rows("payer_transitions.csv")) - uninsured
    assert set(enrollment["line_of_business"]) <= {"medicare", "medicaid", "dual", "commercial"}


def test_sample_rejects_name_their_source_rows(sample):
    report, out = sample
    meds = _csv_rows("medications.csv")
    backwards = [i + 2 for i, m in enumerate(meds) if m["STOP"] and m["STOP"] < m["START"]]
    assert backwards, "the sample has medications that stop before they start"
    assert report.tables["medications"]["rejected"] == {"STOP: before START": len(backwards)}
    rejects = pd.read_csv(out / "rejects" / "medications.csv", dtype=str)
    assert list(rejects.columns[:3]) == ["source_file", "source_row", "reason"]
    assert rejects["source_row"].astype(int).tolist() == backwards
    assert rejects["reason"].str.startswith("STOP: before START '").all()


def test_no_patient_identifiers_reach_the_output(sample):
    _, out = sample
    text = output_text(out)
    identifiers = {p[c] for p in _csv_rows("patients.csv") for c in IDENTIFYING if len(p.get(c, "")) >= 5}
    assert len(identifiers) > 300
    leaked = sorted(i for i in identifiers if i in text)
    assert leaked == []


# --- another Synthea export, of another population and another shape --------------------------------------

PATIENTS_3X = [
    "Id,BIRTHDATE,DEATHDATE,SSN,DRIVERS,PASSPORT,PREFIX,FIRST,MIDDLE,LAST,SUFFIX,MAIDEN,MARITAL,RACE,ETHNICITY,"
    "GENDER,BIRTHPLACE,ADDRESS,CITY,STATE,COUNTY,FIPS,ZIP,LAT,LON,HEALTHCARE_EXPENSES,HEALTHCARE_COVERAGE,INCOME,"
    "FAVOURITE_COLOUR",
    "p-1,1940-02-03,2021-05-06,999-11-2222,S999,X123,Mr.,Quintus771,Q,Orbweaver88,,,M,white,nonhispanic,M,"
    "Springfield,1 Zephyr Way,Springfield,Massachusetts,Hampden County,25013,01101,42.1,-72.5,10.0,20.0,50000,teal",
    "p-2,1990-12-24,,999-33-4444,,,Ms.,Rosalind412,,Underhill93,,,S,hawaiian,hispanic,F,"
    "Boston,2 Yarrow Street,Boston,Massachusetts,Suffolk County,25025,02108,42.3,-71.0,1.0,2.0,40000,plum",
]
ENCOUNTERS_3X = [
    "Id,START,STOP,PATIENT,ORGANIZATION,PROVIDER,PAYER,ENCOUNTERCLASS,CODE,DESCRIPTION,BASE_ENCOUNTER_COST,"
    "TOTAL_CLAIM_COST,PAYER_COVERAGE,REASONCODE,REASONDESCRIPTION,BILLING_NOTE",
    "e-1,2021-04-30T22:00:00Z,2021-05-01T02:00:00Z,p-1,o-1,pr-1,pay-mc,emergency,50849002,ER,100,500,400,"
    "84114007,Heart failure,n1",
    "e-2,2021-05-01T03:00:00Z,2021-05-06T10:00:00Z,p-1,o-1,pr-1,pay-mc,inpatient,32485007,Admission,1000,9000,"
    "8000,84114007,Heart failure,n2",
    "e-3,2020-01-01T09:00:00+01:00,2020-01-01T09:30:00+01:00,p-2,o-2,pr-2,pay-com,virtual,185347001,Telehealth,50,"
    "60,50,,,n3",
]
PAYERS_3X = ["Id,NAME,OWNERSHIP,ADDRESS", "pay-mc,Medicare,GOVERNMENT,", "pay-md,Medicaid,GOVERNMENT,",
             "pay-com,Acme Health,PRIVATE,", "pay-no,NO_INSURANCE,NO_INSURANCE,"]
TRANSITIONS_3X = ["PATIENT,MEMBERID,START_DATE,END_DATE,PAYER,SECONDARY_PAYER,PLAN_OWNERSHIP,OWNER_NAME",
                  "p-1,m1,2019-01-01T00:00:00Z,2021-05-06T00:00:00Z,pay-mc,pay-md,Self,Quintus771 Orbweaver88",
                  "p-2,m2,2015-01-01T00:00:00Z,2019-01-01T00:00:00Z,pay-no,,,",
                  "p-2,m3,2019-01-01T00:00:00Z,2022-01-01T00:00:00Z,pay-com,,Guardian,Someone Else"]
CONDITIONS_3X = ["START,STOP,PATIENT,ENCOUNTER,SYSTEM,CODE,DESCRIPTION",
                 "2021-04-30,,p-1,e-1,SNOMED-CT,84114007,Heart failure",
                 "2021-05-01,,p-1,e-2,SNOMED-CT,84114007,Heart failure",
                 "2021-05-01,,p-1,e-2,SNOMED-CT,44054006,Diabetes"]
OBSERVATIONS_3X = ["DATE,PATIENT,ENCOUNTER,CATEGORY,CODE,DESCRIPTION,VALUE,UNITS,TYPE",
                   "2021-05-02T06:00:00Z,p-1,e-2,laboratory,718-7,Hemoglobin,10.4,g/dL,numeric",
                   "2021-05-02T06:00:00Z,p-1,e-2,laboratory,2160-0,Creatinine,1.9,mg/dL,numeric",
                   "2021-05-02T06:00:00Z,p-1,e-2,survey,72166-2,Tobacco smoking status,Never smoked,,text",
                   "2021-05-02T06:00:00Z,p-1,,,QALY,Quality adjusted life years,55.2,a,numeric"]

# Synthea 2.x layout: payer transitions by year, procedures with DATE, no OWNERSHIP in payers.
TRANSITIONS_2X = ["PATIENT,START_YEAR,END_YEAR,PAYER,OWNERSHIP", "p-1,2018,2020,pay-md,Self",
                  "p-2,2016,2021,pay-com,Guardian"]
PAYERS_2X = ["Id,NAME,ADDRESS,CITY,STATE_HEADQUARTERED,ZIP,PHONE,AMOUNT_COVERED",
             "pay-md,Medicaid,,,,,,1.0", "pay-com,Acme Health,,,,,,1.0"]
PROCEDURES_2X = ["DATE,PATIENT,ENCOUNTER,CODE,DESCRIPTION,BASE_COST,REASONCODE,REASONDESCRIPTION",
                 "2021-05-02T09:00:00Z,p-1,e-2,232717009,Coronary artery bypass,10000,,"]


def _write(folder: Path, name: str, lines: list[str], encoding: str = "utf-8") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def _export(folder: Path, layout: str) -> Path:
    _write(folder, "patients.csv", PATIENTS_3X)
    _write(folder, "encounters.csv", ENCOUNTERS_3X)
    if layout == "3.x":
        _write(folder, "payers.csv", PAYERS_3X)
        _write(folder, "payer_transitions.csv", TRANSITIONS_3X)
        _write(folder, "conditions.csv", CONDITIONS_3X)
        _write(folder, "observations.csv", OBSERVATIONS_3X)
    else:
        _write(folder, "payers.csv", PAYERS_2X)
        _write(folder, "payer_transitions.csv", TRANSITIONS_2X)
        _write(folder, "procedures.csv", PROCEDURES_2X)
    return folder


def test_another_export_in_the_3x_layout_imports_as_well(tmp_path):
    report = run_import("synthea", _export(tmp_path / "src", "3.x"), tmp_path / "out")
    assert report.ok, report.render()
    assert validate_dataset(tmp_path / "out").ok
    counts_add_up(report)
    assert any("FAVOURITE_COLOUR" in w for w in report.warnings)
    assert any("BILLING_NOTE" in w for w in report.warnings)

    members = read_table(tmp_path / "out", "members").set_index("member_id")
    assert members.loc["p-2", "race_ethnicity"] == "hispanic" and members.loc["p-1", "race_ethnicity"] == "white"
    assert members.loc["p-1", "death_date"] == pd.Timestamp("2021-05-06")

    encounters = read_table(tmp_path / "out", "encounters").set_index("encounter_id")
    stay = encounters.loc["e-2"]
    assert stay["admission_type"] == "emergency"  # came through the ED visit e-1 an hour earlier
    assert stay["discharge_disposition"] == "expired"  # died on the day of discharge
    assert stay["paid_amount"] == 8000.0 and stay["principal_dx"] == "84114007"
    assert encounters.loc["e-3", "setting"] == "telehealth"
    assert encounters.loc["e-3", "admit_time"] == pd.Timestamp("2020-01-01 08:00:00")  # +01:00 → UTC

    enrollment = read_table(tmp_path / "out", "enrollment").set_index("member_id")
    assert enrollment.loc["p-1", "line_of_business"] == "dual"  # Medicare with Medicaid secondary
    assert enrollment.loc["p-1", "end_date"] == pd.Timestamp("2021-05-05")
    assert enrollment.loc["p-2", "line_of_business"] == "commercial"
    assert report.tables["enrollment"]["skipped"] == {"payer NO_INSURANCE (uninsured span)": 1}

    diagnoses = read_table(tmp_path / "out", "diagnoses")
    assert diagnoses.loc[diagnoses["code"] == "44054006", "is_principal"].tolist() == [False]
    assert diagnoses.loc[diagnoses["code"] == "84114007", "is_principal"].tolist() == [True, True]

    labs = read_table(tmp_path / "out", "labs").set_index("code")
    assert labs.loc["718-7", "value"] == 10.4 and labs.loc["718-7", "unit"] == "g/dL"
    assert set(labs.index) == {"718-7", "2160-0"}
    assert sum(report.tables["labs"]["skipped"].values()) == 2  # a text observation and a QALY

    text = output_text(tmp_path / "out")
    for secret in ("Quintus771", "Orbweaver88", "999-11-2222", "1 Zephyr Way", "Rosalind412", "Someone Else"):
        assert secret not in text


def test_another_export_in_the_2x_layout_imports_as_well(tmp_path):
    report = run_import("synthea", _export(tmp_path / "src", "2.x"), tmp_path / "out")
    assert report.ok, report.render()
    assert validate_dataset(tmp_path / "out").ok
    enrollment = read_table(tmp_path / "out", "enrollment").set_index("member_id")
    assert enrollment.loc["p-1", "start_date"] == pd.Timestamp("2018-01-01")
    assert enrollment.loc["p-1", "end_date"] == pd.Timestamp("2020-12-31")
    assert enrollment.loc["p-1", "line_of_business"] == "medicaid"
    procedures = read_table(tmp_path / "out", "procedures")
    assert procedures[["code", "code_system", "encounter_id"]].values.tolist() == [["232717009", "SNOMED", "e-2"]]
    assert read_table(tmp_path / "out", "labs").empty


# --- broken files: a clear error or rejected rows, never a traceback --------------------------------------


def _minimal(folder: Path) -> Path:
    _write(folder, "patients.csv", PATIENTS_3X)
    _write(folder, "encounters.csv", ENCOUNTERS_3X)
    _write(folder, "conditions.csv", CONDITIONS_3X)
    return folder


def test_missing_required_columns_are_named(tmp_path):
    src = _minimal(tmp_path / "src")
    header, *rows = PATIENTS_3X
    cols = header.split(",")
    keep = [i for i, c in enumerate(cols) if c not in ("BIRTHDATE", "GENDER")]
    _write(src, "patients.csv", [",".join(r.split(",")[i] for i in keep) for r in (header, *rows)])
    report = run_import("synthea", src, tmp_path / "out")
    assert not report.ok
    assert "patients.csv: missing required column(s) BIRTHDATE, GENDER" in report.errors
    assert not (tmp_path / "out" / "members").exists()
    assert json.loads((tmp_path / "out" / "import_report.json").read_text())["ok"] is False
    assert "missing required column(s) BIRTHDATE, GENDER" in report.render()


def test_unparseable_date_rejects_the_row_with_its_line_number(tmp_path):
    src = _minimal(tmp_path / "src")
    lines = list(ENCOUNTERS_3X)
    lines[3] = lines[3].replace("2020-01-01T09:00:00+01:00", "abc")  # e-3, line 4 of the file
    _write(src, "encounters.csv", lines)
    report = run_import("synthea", src, tmp_path / "out")
    assert report.ok, report.render()
    assert report.tables["encounters"]["rejected"] == {"START: unparseable date": 1}
    assert report.tables["encounters"]["written"] == 2
    rejects = pd.read_csv(tmp_path / "out" / "rejects" / "encounters.csv", dtype=str)
    assert rejects[["source_file", "source_row", "reason"]].values.tolist() == [
        ["encounters.csv", "4", "START: unparseable date 'abc'"]]
    assert rejects.loc[0, "Id"] == "e-3"
    assert validate_dataset(tmp_path / "out").ok


def test_rows_pointing_at_rejected_rows_are_rejected_too(tmp_path):
    src = _minimal(tmp_path / "src")
    lines = list(ENCOUNTERS_3X)
    lines[2] = lines[2].replace("2021-05-01T03:00:00Z", "2021-13-01T03:00:00Z")  # e-2
    _write(src, "encounters.csv", lines)
    report = run_import("synthea", src, tmp_path / "out")
    assert report.tables["diagnoses"]["rejected"] == {"ENCOUNTER: unknown encounter": 2}
    # the store is written and valid, but the import lost two diagnoses to their rejected encounter: not ok
    assert not report.ok and not report.errors
    assert report.lost == ["conditions.csv: 2 row(s) lost from diagnoses because their encounter is not in the "
                           "store, absent from the source or rejected (ENCOUNTER: unknown encounter)"]
    assert validate_dataset(tmp_path / "out").ok


def test_unknown_columns_are_ignored_with_a_warning(tmp_path):
    report = run_import("synthea", _minimal(tmp_path / "src"), tmp_path / "out")
    assert report.ok
    assert "patients.csv: unknown column(s) FAVOURITE_COLOUR ignored" in report.warnings
    assert "FAVOURITE_COLOUR" in report.render()


def test_empty_file_is_a_clear_error(tmp_path):
    src = _minimal(tmp_path / "src")
    (src / "encounters.csv").write_bytes(b"")
    report = run_import("synthea", src, tmp_path / "out")
    assert report.errors == ["encounters.csv: empty file (no header row)"]


def test_header_only_file_imports_nothing_from_it(tmp_path):
    src = _minimal(tmp_path / "src")
    _write(src, "conditions.csv", CONDITIONS_3X[:1])
    report = run_import("synthea", src, tmp_path / "out")
    assert report.ok and report.tables["diagnoses"]["read"] == 0
    assert validate_dataset(tmp_path / "out").ok


def test_semicolon_file_is_a_clear_error(tmp_path):
    src = _minimal(tmp_path / "src")
    _write(src, "patients.csv", [line.replace(",", ";") for line in PATIENTS_3X])
    report = run_import("synthea", src, tmp_path / "out")
    assert not report.ok
    assert any(e.startswith("patients.csv: columns are separated by semicolons") for e in report.errors)


def test_latin1_file_is_read_with_a_warning(tmp_path):
    src = _minimal(tmp_path / "src")
    _write(src, "patients.csv", [line.replace("Massachusetts", "Québec") for line in PATIENTS_3X], "latin-1")
    report = run_import("synthea", src, tmp_path / "out")
    assert report.ok, report.render()
    assert "patients.csv: not valid UTF-8; read as Latin-1" in report.warnings
    assert set(read_table(tmp_path / "out", "members")["state"]) == {"Québec"}


def test_latin1_bytes_in_unread_columns_do_not_matter(tmp_path):
    src = _minimal(tmp_path / "src")
    _write(src, "patients.csv", [line.replace("Rosalind412", "Ros\u00e9lind412") for line in PATIENTS_3X], "latin-1")
    report = run_import("synthea", src, tmp_path / "out")
    assert report.ok and report.tables["members"]["written"] == 2


def test_truncated_file_rejects_the_cut_row(tmp_path):
    src = _minimal(tmp_path / "src")
    text = "\n".join(PATIENTS_3X)
    (src / "patients.csv").write_text(text[: text.index("Ms.,Rosalind412")], encoding="utf-8")  # cut mid-row
    report = run_import("synthea", src, tmp_path / "out")
    assert not report.ok and not report.errors, report.render()
    assert report.lost[0] == "patients.csv: line 3 is cut short (the file may be truncated)"
    assert report.lost[1].startswith("encounters.csv: 1 row(s) lost from encounters because their patient")
    assert report.tables["members"]["written"] == 1
    reasons = report.tables["members"]["rejected"]
    assert list(reasons) == ["malformed row"]
    rejects = pd.read_csv(tmp_path / "out" / "rejects" / "members.csv", dtype=str)
    assert rejects.loc[0, "source_row"] == "3"
    assert rejects.loc[0, "reason"] == "malformed row: cut short, the file may be truncated: row has 7 of 29 fields"
    assert validate_dataset(tmp_path / "out").ok  # p-2's encounter was rejected as an unknown patient


def test_row_with_too_many_fields_is_rejected(tmp_path):
    src = _minimal(tmp_path / "src")
    lines = list(ENCOUNTERS_3X)
    lines[1] += ",surplus"
    _write(src, "encounters.csv", lines)
    report = run_import("synthea", src, tmp_path / "out")
    rejects = pd.read_csv(tmp_path / "out" / "rejects" / "encounters.csv", dtype=str)
    assert rejects[["source_row", "Id"]].values.tolist() == [["2", "e-1"]]
    assert "17 fields" in rejects.loc[0, "reason"]
    assert report.tables["diagnoses"]["rejected"] == {"ENCOUNTER: unknown encounter": 1}
    assert not report.complete and validate_dataset(tmp_path / "out").ok  # e-1's diagnosis was lost with it


def test_implausible_years_are_rejected(tmp_path):
    src = _export(tmp_path / "src", "2.x")
    _write(src, "payer_transitions.csv", [*TRANSITIONS_2X, "p-2,1776,1777,pay-com,Self", "p-2,20X1,2021,pay-md,Self"])
    report = run_import("synthea", src, tmp_path / "out")
    assert report.tables["enrollment"]["rejected"] == {"START_YEAR: implausible date": 1,
                                                       "START_YEAR: unparseable year": 1}
    assert validate_dataset(tmp_path / "out").ok


def test_missing_files_and_folders_are_errors(tmp_path):
    report = run_import("synthea", tmp_path / "nowhere", tmp_path / "out")
    assert report.errors == [f"{tmp_path / 'nowhere'}: source folder not found"]
    (tmp_path / "empty").mkdir()
    report = run_import("synthea", tmp_path / "empty", tmp_path / "out")
    assert len(report.errors) == 2 and all("required file not found" in e for e in report.errors)
    assert not run_import("fhir", tmp_path / "empty", tmp_path / "out").ok


def test_reimport_replaces_the_previous_store(tmp_path):
    src = _minimal(tmp_path / "src")
    run_import("synthea", src, tmp_path / "out")
    lines = list(ENCOUNTERS_3X)
    lines[3] = lines[3].replace("2020-01-01T09:00:00+01:00", "abc")
    _write(src, "encounters.csv", lines)
    run_import("synthea", src, tmp_path / "out")
    _write(src, "encounters.csv", ENCOUNTERS_3X)
    report = run_import("synthea", src, tmp_path / "out")
    assert report.ok and not (tmp_path / "out" / "rejects" / "encounters.csv").exists()
    assert len(read_table(tmp_path / "out", "encounters")) == 3
