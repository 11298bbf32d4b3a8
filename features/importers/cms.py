"""Import the CMS 2008–2010 Data Entrepreneurs' Synthetic Public Use Files (DE-SynPUF) into the history store.

SRC holds the DE-SynPUF CSV files under their CMS names (any sample number, any case):
``*_Beneficiary_Summary_File_*.csv`` (one per year, required), ``*_Inpatient_Claims_*.csv``,
``*_Outpatient_Claims_*.csv``, ``*_Carrier_Claims_*.csv`` (A and B) and ``*_Prescription_Drug_Events_*.csv``.
Dates are ``YYYYMMDD``; codes ICD-9-CM, ICD-9 procedure codes and HCPCS.

Mapping decisions
- members: one per ``DESYNPUF_ID``, from its latest yearly summary (earlier years are counted as merged);
  death_date is the earliest ``BENE_DEATH_DT`` of any year. Sex 1 → M, 2 → F; race (``BENE_RACE_CD``) 1 white,
  2 black, 3 other, 4 asian, 5 hispanic, 6 native; ``state`` is the SSA state code ``SP_STATE_CODE`` as given.
- enrollment: one span per beneficiary and year with coverage. The months covered are the largest of Part A
  (``BENE_HI_CVRAGE_TOT_MONS``), Part B (``BENE_SMI_...``), HMO (``BENE_HMO_...``) and Part D
  (``PLAN_CVRG_MOS_NUM``) months; the span runs to 31 December (or to the death date, in the year of death)
  and starts that many months earlier. line_of_business is medicare for all: DE-SynPUF has no dual-status field.
- encounters: one per claim, ids prefixed by claim type (``ip-``, ``op-``, ``car-``; a segment other than 1 is
  appended) so that ids are unique across files. Inpatient: admission ``CLM_ADMSN_DT`` (else ``CLM_FROM_DT``),
  discharge ``NCH_BENE_DSCHRG_DT`` (else ``CLM_THRU_DT``), ``CLM_DRG_CD`` kept as ``drg``. Outpatient claims
  with an emergency-department E/M code (HCPCS 99281–99285) are emergency encounters, the others outpatient;
  carrier claims are office encounters. paid_amount = ``CLM_PMT_AMT`` (carrier: the sum of
  ``LINE_NCH_PMT_AMT_*``); negative payments are left empty (counted in a warning). facility_id =
  ``PRVDR_NUM`` (carrier: ``TAX_NUM_1``). principal_dx = ``ICD9_DGNS_CD_1``. admission_type: emergency for
  ED encounters and for inpatient stays admitted on the day of, or the day after, an ED claim
  (``features.importers.stays``), else unknown. discharge_disposition: expired when the death date falls
  within the stay, else unknown (DE-SynPUF has no discharge status).
- diagnoses: every non-empty ICD-9-CM code of a claim (``ADMTNG_ICD9_DGNS_CD``, ``ICD9_DGNS_CD_*``,
  carrier ``LINE_ICD9_DGNS_CD_*``) at the claim's start; principal = ``ICD9_DGNS_CD_1``; a code repeated
  on the same claim is kept once. procedures: ``ICD9_PRCDR_CD_*`` (ICD9PCS) and ``HCPCS_CD_*`` (HCPCS).
  A malformed code rejects that code (rejects show the claim, the column and the value), not the claim.
- medications: prescription drug events, ``PROD_SRVC_ID`` as NDC (11 digits), ``SRVC_DT``,
  ``DAYS_SUPLY_NUM`` (capped at 365).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from umrisk.features.importers.checks import RowChecks
from umrisk.features.importers.report import ImportReport
from umrisk.features.importers.source import SourceSpec, find_files, read_source
from umrisk.features.importers.staging import Staging
from umrisk.features.importers.stays import died_during, visit_before
from umrisk.features.importers.vocab import SHAPES, ndc11, normalise_code

SEXES = {"1": "M", "2": "F"}
RACES = {"1": "white", "2": "black", "3": "other", "4": "asian", "5": "hispanic", "6": "native"}
ED_VISIT_CODES = ("99281", "99282", "99283", "99284", "99285")  # CPT emergency department E/M visits
ED_WINDOW = pd.Timedelta(days=1)
COVERAGE = ("BENE_HI_CVRAGE_TOT_MONS", "BENE_SMI_CVRAGE_TOT_MONS", "BENE_HMO_CVRAGE_TOT_MONS", "PLAN_CVRG_MOS_NUM")

BENEFICIARY = SourceSpec("beneficiary summary", required=("DESYNPUF_ID", "BENE_BIRTH_DT", "BENE_SEX_IDENT_CD"),
                         optional=("BENE_DEATH_DT", "BENE_RACE_CD", "SP_STATE_CODE", *COVERAGE),
                         ignored=("BENE_ESRD_IND", "BENE_COUNTY_CD"),
                         ignored_patterns=(r"SP_[A-Z_]+", r"(MEDREIMB|BENRES|PPPYMT)_(IP|OP|CAR)"))
_CLAIM_IGNORED = ("NCH_PRMRY_PYR_CLM_PD_AMT", "AT_PHYSN_NPI", "OP_PHYSN_NPI", "OT_PHYSN_NPI",
                  "CLM_PASS_THRU_PER_DIEM_AMT", "NCH_BENE_IP_DDCTBL_AMT", "NCH_BENE_PTA_COINSRNC_LBLTY_AM",
                  "NCH_BENE_BLOOD_DDCTBL_LBLTY_AM", "CLM_UTLZTN_DAY_CNT", "NCH_BENE_PTB_DDCTBL_AMT",
                  "NCH_BENE_PTB_COINSRNC_AMT")
INPATIENT = SourceSpec("inpatient claims", required=("DESYNPUF_ID", "CLM_ID", "CLM_FROM_DT"),
                       optional=("SEGMENT", "CLM_THRU_DT", "PRVDR_NUM", "CLM_PMT_AMT", "CLM_ADMSN_DT",
                                 "NCH_BENE_DSCHRG_DT", "CLM_DRG_CD", "ADMTNG_ICD9_DGNS_CD"),
                       optional_patterns=(r"ICD9_DGNS_CD_\d+", r"ICD9_PRCDR_CD_\d+", r"HCPCS_CD_\d+"),
                       ignored=_CLAIM_IGNORED)
OUTPATIENT = SourceSpec("outpatient claims", required=("DESYNPUF_ID", "CLM_ID", "CLM_FROM_DT"),
                        optional=("SEGMENT", "CLM_THRU_DT", "PRVDR_NUM", "CLM_PMT_AMT", "ADMTNG_ICD9_DGNS_CD"),
                        optional_patterns=(r"ICD9_DGNS_CD_\d+", r"ICD9_PRCDR_CD_\d+", r"HCPCS_CD_\d+"),
                        ignored=_CLAIM_IGNORED)
CARRIER = SourceSpec("carrier claims", required=("DESYNPUF_ID", "CLM_ID", "CLM_FROM_DT"),
                     optional=("CLM_THRU_DT", "TAX_NUM_1"),
                     optional_patterns=(r"ICD9_DGNS_CD_\d+", r"LINE_ICD9_DGNS_CD_\d+", r"HCPCS_CD_\d+",
                                        r"LINE_NCH_PMT_AMT_\d+"),
                     ignored_patterns=(r"PRF_PHYSN_NPI_\d+", r"TAX_NUM_\d+", r"LINE_BENE_[A-Z_]+_\d+",
                                       r"LINE_COINSRNC_AMT_\d+", r"LINE_ALOWD_CHRG_AMT_\d+",
                                       r"LINE_PRCSG_IND_CD_\d+"))
DRUG_EVENTS = SourceSpec("prescription drug events", required=("DESYNPUF_ID", "SRVC_DT", "PROD_SRVC_ID"),
                         optional=("DAYS_SUPLY_NUM",),
                         ignored=("PDE_ID", "QTY_DSPNSD_NUM", "PTNT_PAY_AMT", "TOT_RX_CST_AMT"))

FILES = {  # name pattern, spec
    "beneficiary": (r".*beneficiary_summary.*\.csv", BENEFICIARY),
    "inpatient": (r".*inpatient_claims.*\.csv", INPATIENT),
    "outpatient": (r".*outpatient_claims.*\.csv", OUTPATIENT),
    "carrier": (r".*carrier_claims.*\.csv", CARRIER),
    "drug_events": (r".*prescription_drug_events.*\.csv", DRUG_EVENTS),
}
_KEYS = ["source_file", "source_row", "DESYNPUF_ID", "CLM_ID", "encounter_id", "member_id", "time"]


def import_cms(src: Path, report: ImportReport) -> Staging | None:
    """Read the DE-SynPUF files in ``src`` and stage the canonical tables; None after a fatal error."""
    frames: dict[str, pd.DataFrame | None] = {}
    for kind, (pattern, spec) in FILES.items():
        parts = []
        for path in find_files(src, pattern):
            frame = read_source(path, spec, report)
            if frame is not None and kind == "beneficiary":
                year = re.search(r"(\d{4})_beneficiary_summary", path.name, re.IGNORECASE)
                if year is None:
                    report.error(f"{path.name}: cannot tell the year from the file name "
                                 "(expected …_<year>_Beneficiary_Summary_File_…)")
                    continue
                frame["year"] = int(year.group(1))
            if frame is not None:
                parts.append(frame)
        frames[kind] = pd.concat(parts, ignore_index=True) if parts else None
    if frames["beneficiary"] is None and not report.errors:
        report.error(f"no beneficiary summary file (…_Beneficiary_Summary_File_….csv) found in {src}")
    if report.errors:
        return None
    if all(frames[k] is None for k in ("inpatient", "outpatient", "carrier", "drug_events")):
        report.warn(f"no claim or drug event files found in {src}")
    staging = Staging(report)
    members = _members(frames["beneficiary"], staging)
    ed_visits = pd.DataFrame({"member_id": pd.Series(dtype="str"), "time": pd.Series(dtype="datetime64[us]")})
    if frames["outpatient"] is not None:
        outpatient = _claims(frames["outpatient"], "op", members, staging)
        ed = outpatient[outpatient["setting"] == "emergency"]
        ed_visits = ed[["member_id", "admit_time"]].rename(columns={"admit_time": "time"})
    if frames["inpatient"] is not None:
        _claims(frames["inpatient"], "ip", members, staging, ed_visits)
    if frames["carrier"] is not None:
        _claims(frames["carrier"], "car", members, staging)
    if frames["drug_events"] is not None:
        _medications(frames["drug_events"], members, staging)
    return staging


def _members(df: pd.DataFrame, staging: Staging) -> pd.DataFrame:
    checks = RowChecks(df)
    member_id = checks.text("DESYNPUF_ID", required=True)
    birth = checks.date("BENE_BIRTH_DT", "yyyymmdd")
    death = checks.date("BENE_DEATH_DT", "yyyymmdd", required=False)
    checks.order(birth, death, "BENE_BIRTH_DT", "BENE_DEATH_DT")
    if not any(col in df for col in COVERAGE):
        staging.report.warn(f"beneficiary summaries: none of {', '.join(COVERAGE)} present; no enrollment imported")
    months = pd.concat([_months(checks, col) for col in COVERAGE], axis=1).max(axis=1).fillna(0)
    race = checks.column("BENE_RACE_CD").map(RACES)
    race = race.where(race.notna() | checks.column("BENE_RACE_CD").isin(["", "0"]), "other")
    state = checks.text("SP_STATE_CODE")
    rows = pd.DataFrame({
        "member_id": member_id, "birth_date": birth,
        "sex": checks.column("BENE_SEX_IDENT_CD").map(SEXES).fillna("U"),
        "race_ethnicity": race, "state": state.str.zfill(2).where(state.notna(), None), "death_date": death,
        "year": df["year"], "months": months,
    })[checks.ok]
    earliest_death = rows.groupby("member_id")["death_date"].min()
    latest = rows.sort_values("year", kind="stable").drop_duplicates("member_id", keep="last")
    latest = latest.assign(death_date=latest["member_id"].map(earliest_death).astype("datetime64[us]"))
    inconsistent = latest["death_date"] < latest["birth_date"]
    if inconsistent.any():
        staging.report.warn(f"beneficiary summaries: {int(inconsistent.sum())} beneficiary(ies) with a death date "
                            "before the birth date of a later year; death_date left empty")
        latest = latest.assign(death_date=latest["death_date"].where(~inconsistent))
    staging.add("members", latest.drop(columns=["year", "months"]), checks)
    staging.skip("members", "beneficiary summary of an earlier year (merged)", len(rows) - len(latest))
    _enrollment(rows, latest, staging)
    return latest


def _months(checks: RowChecks, col: str) -> pd.Series:
    value = checks.number(col)
    checks.fail(value.notna() & ~value.isin(np.arange(13)), f"{col}: not a month count (0-12)", checks.column(col))
    return value


def _enrollment(years: pd.DataFrame, members: pd.DataFrame, staging: Staging) -> None:
    """One Medicare span per beneficiary-year with coverage (see the module doc)."""
    death = years["member_id"].map(members.set_index("member_id")["death_date"])
    year_start = pd.to_datetime(years["year"].astype("str") + "-01-01").astype("datetime64[us]")
    year_end = pd.to_datetime(years["year"].astype("str") + "-12-31").astype("datetime64[us]")
    none = years["months"] == 0
    dead_before = ~none & (death < year_start)
    staging.skip("enrollment", "no months of coverage in the year", int(none.sum()))
    staging.skip("enrollment", "beneficiary died before the year", int(dead_before.sum()))
    months = years["months"].clip(1, 12).astype("int64").to_numpy()
    from_months = (year_start.to_numpy().astype("datetime64[M]") + (12 - months)).astype("datetime64[us]")
    died_in_year = (death >= year_start) & (death <= year_end)
    from_death = (death.to_numpy().astype("datetime64[M]") - (months - 1)).astype("datetime64[us]")
    start = pd.Series(np.where(died_in_year, np.maximum(from_death, year_start.to_numpy()), from_months),
                      index=years.index).astype("datetime64[us]")
    end = year_end.where(~died_in_year, death)
    keep = ~none & ~dead_before
    rows = pd.DataFrame({"member_id": years["member_id"], "start_date": start, "end_date": end,
                         "line_of_business": "medicare", "coverage_months": years["months"]})[keep]
    for file in pd.unique(years.get("source_file", pd.Series(dtype="str"))):
        staging.report.add_source("enrollment", str(file))
    staging.add("enrollment", rows, read=len(years))


def _claims(df: pd.DataFrame, prefix: str, members: pd.DataFrame, staging: Staging,
            ed_visits: pd.DataFrame | None = None) -> pd.DataFrame:
    """Stage the encounters, diagnoses and procedures of one claim type; return its encounters."""
    checks = RowChecks(df)
    member_id = checks.text("DESYNPUF_ID", required=True)
    checks.known("DESYNPUF_ID", member_id, pd.Index(members["member_id"]), "beneficiary")
    claim = checks.text("CLM_ID", required=True)
    segment = checks.column("SEGMENT")
    encounter_id = prefix + "-" + claim + ("-s" + segment).where(~segment.isin(["", "1"]), "")
    start = checks.date("CLM_FROM_DT", "yyyymmdd")
    end = checks.date("CLM_THRU_DT", "yyyymmdd", required=False)
    if prefix == "ip":
        start = checks.date("CLM_ADMSN_DT", "yyyymmdd", required=False).fillna(start)
        end = checks.date("NCH_BENE_DSCHRG_DT", "yyyymmdd", required=False).fillna(end)
    checks.order(start, end, "CLM_FROM_DT", "CLM_THRU_DT")
    if prefix == "car":
        lines = [checks.number(c) for c in df.columns if re.fullmatch(r"LINE_NCH_PMT_AMT_\d+", c)]
        paid = pd.concat(lines, axis=1).sum(axis=1, min_count=1) if lines else pd.Series(np.nan, index=df.index)
        facility = checks.text("TAX_NUM_1")
    else:
        paid = checks.number("CLM_PMT_AMT")
        facility = checks.text("PRVDR_NUM")
    checks.unique("CLM_ID", encounter_id)
    negative = checks.ok & (paid < 0)
    if negative.any():
        staging.report.warn(f"{prefix} claims: {int(negative.sum())} negative payment(s); paid_amount left empty")
    hcpcs_cols = [c for c in df.columns if re.fullmatch(r"HCPCS_CD_\d+", c)]
    ed = pd.Series(False, index=df.index)
    for col in hcpcs_cols:
        ed |= checks.column(col).isin(ED_VISIT_CODES)
    setting = {"ip": "inpatient", "op": "outpatient", "car": "office"}[prefix]
    principal = normalise_code(checks.column("ICD9_DGNS_CD_1"))
    principal = principal.where(principal.str.fullmatch(SHAPES["ICD9CM"]).fillna(False).astype(bool), None)
    rows = pd.DataFrame({
        "encounter_id": encounter_id, "member_id": member_id,
        "setting": pd.Series(setting, index=df.index).where(~(ed & (prefix == "op")), "emergency"),
        "admit_time": start, "discharge_time": end, "admission_type": "unknown",
        "discharge_disposition": "unknown", "principal_dx": principal, "facility_id": facility,
        "paid_amount": paid.where(paid >= 0), "drg": checks.text("CLM_DRG_CD"),
    })[checks.ok]
    emergency = rows["setting"] == "emergency"
    if prefix == "ip" and ed_visits is not None:
        emergency = visit_before(rows, ed_visits, ED_WINDOW)
    death = rows["member_id"].map(members.set_index("member_id")["death_date"])
    died = rows["setting"].isin(["inpatient", "emergency"]) & died_during(rows["admit_time"], rows["discharge_time"],
                                                                         death)
    rows = rows.assign(admission_type=rows["admission_type"].where(~emergency, "emergency"),
                       discharge_disposition=rows["discharge_disposition"].where(~died, "expired"))
    staging.add("encounters", rows, checks)

    accepted = df[checks.ok].assign(encounter_id=rows["encounter_id"], member_id=rows["member_id"],
                                    time=rows["admit_time"])
    dx_cols = [c for c in df.columns if c == "ADMTNG_ICD9_DGNS_CD" or re.fullmatch(r"(LINE_)?ICD9_DGNS_CD_\d+", c)]
    _codes(accepted, dx_cols, "ICD9CM", "diagnoses", staging)
    _codes(accepted, [c for c in df.columns if re.fullmatch(r"ICD9_PRCDR_CD_\d+", c)], "ICD9PCS", "procedures",
           staging)
    _codes(accepted, hcpcs_cols, "HCPCS", "procedures", staging)
    return rows


def _codes(claims: pd.DataFrame, columns: list[str], system: str, table: str, staging: Staging) -> None:
    """Stage one row per non-empty code cell of ``columns`` (the wide claim layout made long)."""
    if not columns or claims.empty:
        return
    parts = []
    for col in columns:
        values = claims[col].fillna("").str.strip()
        present = values != ""
        if present.any():
            parts.append(claims.loc[present, _KEYS].assign(column=col, value=values[present]))
    if not parts:
        return
    long = pd.concat(parts, ignore_index=True)
    checks = RowChecks(long)
    codes = normalise_code(long["value"])
    bad = ~codes.str.fullmatch(SHAPES[system]).fillna(False).astype(bool)
    label = "diagnosis" if table == "diagnoses" else "procedure"
    checks.fail(bad, f"{label} code: unparseable {system} code", long["column"] + " " + long["value"])
    rows = pd.DataFrame({"member_id": long["member_id"], "encounter_id": long["encounter_id"], "time": long["time"],
                         "code": codes, "code_system": system})
    if table == "diagnoses":
        rows["is_principal"] = long["column"] == "ICD9_DGNS_CD_1"
    rows = rows[checks.ok]
    order = rows.sort_values("is_principal", ascending=False, kind="stable") if table == "diagnoses" else rows
    unique = order.drop_duplicates(["encounter_id", "code", "code_system"]).sort_index()
    staging.add(table, unique, checks, reject_columns=["DESYNPUF_ID", "CLM_ID", "column", "value"])
    staging.skip(table, "same code repeated on a claim", len(rows) - len(unique))


def _medications(df: pd.DataFrame, members: pd.DataFrame, staging: Staging) -> None:
    checks = RowChecks(df)
    member_id = checks.text("DESYNPUF_ID", required=True)
    checks.known("DESYNPUF_ID", member_id, pd.Index(members["member_id"]), "beneficiary")
    time = checks.date("SRVC_DT", "yyyymmdd")
    ndc = ndc11(checks.column("PROD_SRVC_ID"))
    checks.fail(ndc.isna(), "PROD_SRVC_ID: unparseable NDC", checks.column("PROD_SRVC_ID"))
    days = checks.number("DAYS_SUPLY_NUM")
    checks.fail(days < 0, "DAYS_SUPLY_NUM: negative", checks.column("DAYS_SUPLY_NUM"))
    rows = pd.DataFrame({"member_id": member_id, "time": time, "code": ndc, "code_system": "NDC",
                         "drug_class": pd.Series(None, index=df.index, dtype="str"),
                         "days_supply": days.clip(upper=365)})[checks.ok]
    staging.add("medications", rows, checks)
