"""The CMS DE-SynPUF importer: the sample in tests/fixtures with its real headers, and broken files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from tests.importing import FIXTURES, assert_valid_import, counts_add_up
from umrisk.features.importers import run_import
from umrisk.features.schema import read_table
from umrisk.features.validate import validate_dataset

SAMPLE = FIXTURES / "cms-synpuf-sample"
BENE_2008 = "DE1_0_2008_Beneficiary_Summary_File_Sample_0.csv"
INPATIENT = "DE1_0_2008_to_2010_Inpatient_Claims_Sample_0.csv"
OUTPATIENT = "DE1_0_2008_to_2010_Outpatient_Claims_Sample_0.csv"
CARRIER_A = "DE1_0_2008_to_2010_Carrier_Claims_Sample_0A.csv"
CARRIER_B = "DE1_0_2008_to_2010_Carrier_Claims_Sample_0B.csv"





@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("cms") / "store"
    return run_import("cms", SAMPLE, out), out


def test_sample_imports_into_a_valid_store(sample):
    report, out = sample
    assert_valid_import(report, out)
    assert report.warnings == []


def test_beneficiaries_become_members_with_yearly_medicare_spans(sample):
    report, out = sample
    members = read_table(out, "members").set_index("member_id")
    assert members["sex"].to_dict() == {"0002056B40CEE448": "F", "0004D03F1BD5E607": "M"}
    assert members.loc["0002056B40CEE448", "birth_date"] == pd.Timestamp("1920-10-01")
    assert members.loc["0004D03F1BD5E607", "race_ethnicity"] == "other"  # BENE_RACE_CD 3
    assert members.loc["0002056B40CEE448", "state"] == "15"
    assert report.tables["members"]["skipped"] == {"beneficiary summary of an earlier year (merged)": 4}
    enrollment = read_table(out, "enrollment")
    assert len(enrollment) == 6 and set(enrollment["line_of_business"]) == {"medicare"}
    spans = enrollment[enrollment["member_id"] == "0002056B40CEE448"].sort_values("start_date")
    assert spans["start_date"].dt.year.tolist() == [2008, 2009, 2010]
    assert (spans["end_date"] - spans["start_date"]).dt.days.tolist() == [365, 364, 364]  # 2008 is a leap year


def test_claims_become_encounters_with_unique_ids(sample):
    _, out = sample
    enc = read_table(out, "encounters").set_index("encounter_id")
    assert enc.index.is_unique
    assert sorted(enc.index) == sorted([
        "ip-744651196200598", "ip-744861196237234", "op-90322200093989", "op-90182200681875",
        "car-436313306961904", "car-436463304724170"])
    stay = enc.loc["ip-744651196200598"]
    assert stay["setting"] == "inpatient" and stay["drg"] == "494" and stay["facility_id"] == "1513QQ"
    assert stay["admit_time"] == pd.Timestamp("2009-02-08") and stay["discharge_time"] == pd.Timestamp("2009-02-10")
    assert stay["paid_amount"] == 13000.0 and stay["principal_dx"] == "71537"
    assert enc.loc["op-90322200093989", "setting"] == "emergency"  # HCPCS 99282, an ED visit
    assert enc.loc["op-90322200093989", "admission_type"] == "emergency"
    assert enc.loc["op-90182200681875", "setting"] == "outpatient"
    assert enc.loc["car-436463304724170", "setting"] == "office"
    assert enc.loc["car-436463304724170", "paid_amount"] == 80.0  # 50 + 10 + 20 over the claim lines


def test_claim_codes_become_diagnoses_and_procedures(sample):
    report, out = sample
    dx = read_table(out, "diagnoses")
    assert set(dx["code_system"]) == {"ICD9CM"}
    stay = dx[dx["encounter_id"] == "ip-744651196200598"]
    assert stay.loc[stay["is_principal"], "code"].tolist() == ["71537"]
    assert set(stay["code"]) == {"7295", "71537", "49390", "2875", "4254", "2720", "0416", "4280", "2811", "4019"}
    assert "E8889" in set(dx["code"]) and "V0751" in set(dx["code"])
    assert report.tables["diagnoses"]["skipped"] == {"same code repeated on a claim": 1}  # V0481 on two lines
    assert dx.groupby("encounter_id")["is_principal"].sum().eq(1).all()
    px = read_table(out, "procedures")
    assert px.loc[px["encounter_id"] == "ip-744651196200598", ["code", "code_system"]].values.tolist() == [
        ["7869", "ICD9PCS"]]
    assert set(px.loc[px["encounter_id"] == "car-436463304724170", "code"]) == {"99337", "90775", "17003"}
    assert set(px.loc[px["encounter_id"] != "ip-744651196200598", "code_system"]) == {"HCPCS"}


def test_drug_events_become_medications(sample):
    _, out = sample
    meds = read_table(out, "medications").sort_values("time")
    assert meds[["member_id", "code", "code_system", "days_supply"]].values.tolist() == [
        ["0004D03F1BD5E607", "53746022010", "NDC", 90.0], ["0002056B40CEE448", "61392018345", "NDC", 30.0]]
    assert meds["time"].tolist() == [pd.Timestamp("2008-04-07"), pd.Timestamp("2010-03-30")]


def _copy(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    shutil.copytree(SAMPLE, src, ignore=shutil.ignore_patterns("LICENSE*"))
    for f in src.iterdir():
        f.chmod(0o644)
    return src


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_bad_claims_and_codes_are_rejected(tmp_path):
    src = _copy(tmp_path)
    _edit(src / INPATIENT, "744861196237234,1,20100807,", "744861196237234,1,2010087,")
    _edit(src / OUTPATIENT, ",73603,72402,V1588,", ",73603,7240X2,V1588,")
    shutil.copy(src / CARRIER_A, src / "DE1_0_2008_to_2010_Carrier_Claims_Sample_0C.csv")  # the same claim again
    report = run_import("cms", src, tmp_path / "out")
    assert report.ok, report.render()
    assert validate_dataset(tmp_path / "out").ok
    counts_add_up(report)
    assert report.tables["encounters"]["rejected"] == {"CLM_FROM_DT: unparseable date": 1, "CLM_ID: duplicate key": 1}
    assert report.tables["diagnoses"]["rejected"] == {"diagnosis code: unparseable ICD9CM code": 1}
    rejects = pd.read_csv(tmp_path / "out" / "rejects" / "diagnoses.csv", dtype=str)
    assert rejects[["source_file", "source_row", "CLM_ID", "column", "value"]].values.tolist() == [
        [OUTPATIENT, "2", "90322200093989", "ICD9_DGNS_CD_2", "7240X2"]]
    enc_rejects = pd.read_csv(tmp_path / "out" / "rejects" / "encounters.csv", dtype=str)
    assert enc_rejects[["source_file", "source_row"]].values.tolist() == [
        [INPATIENT, "3"], ["DE1_0_2008_to_2010_Carrier_Claims_Sample_0C.csv", "2"]]


def test_death_within_the_year_ends_the_span_and_the_stay(tmp_path):
    src = _copy(tmp_path)
    bene_2010 = src / "DE1_0_2010_Beneficiary_Summary_File_Sample_0.csv"
    _edit(bene_2010, "0004D03F1BD5E607,19430701,,1,3,0,5,200,12,12,12,12,",
          "0004D03F1BD5E607,19430701,20100810,1,3,0,5,200,8,8,8,8,")
    report = run_import("cms", src, tmp_path / "out")
    assert report.ok
    enrollment = read_table(tmp_path / "out", "enrollment")
    last = enrollment[(enrollment["member_id"] == "0004D03F1BD5E607")].sort_values("start_date").iloc[-1]
    assert (last["start_date"], last["end_date"]) == (pd.Timestamp("2010-01-01"), pd.Timestamp("2010-08-10"))
    enc = read_table(tmp_path / "out", "encounters").set_index("encounter_id")
    assert enc.loc["ip-744861196237234", "discharge_disposition"] == "expired"
    assert read_table(tmp_path / "out", "members").set_index("member_id").loc[
        "0004D03F1BD5E607", "death_date"] == pd.Timestamp("2010-08-10")


def test_broken_beneficiary_files_are_errors(tmp_path):
    src = _copy(tmp_path)
    for f in src.glob("*Beneficiary*"):
        f.unlink()
    report = run_import("cms", src, tmp_path / "out")
    assert not report.ok and report.errors[0].startswith("no beneficiary summary file")
    src = _copy(tmp_path / "again")
    _edit(src / BENE_2008, '"BENE_SEX_IDENT_CD"', '"SEX"')
    report = run_import("cms", src, tmp_path / "out")
    assert f"{BENE_2008}: missing required column(s) BENE_SEX_IDENT_CD" in report.errors
    assert f"{BENE_2008}: unknown column(s) SEX ignored" in report.warnings


def test_truncated_claims_file_rejects_the_cut_row(tmp_path):
    src = _copy(tmp_path)
    text = (src / INPATIENT).read_text()
    (src / INPATIENT).write_text(text[: text.index("20100810,922")])
    report = run_import("cms", src, tmp_path / "out")
    assert not report.ok and not report.complete and not report.errors  # written, but a loss
    assert report.lost == [f"{INPATIENT}: line 3 is cut short (the file may be truncated)"]
    assert report.tables["encounters"]["rejected"] == {"malformed row": 1}
    assert validate_dataset(tmp_path / "out").ok
