"""Import a Synthea CSV export (https://github.com/synthetichealth/synthea) into the history store.

SRC is the folder of CSV files (or its parent holding ``csv/``). ``patients.csv`` and ``encounters.csv``
are required; ``payer_transitions.csv`` (+ ``payers.csv``), ``conditions.csv``, ``procedures.csv``,
``medications.csv`` and ``observations.csv`` are imported when present. Column layouts of Synthea 2.x and
3.x are both read (payer transitions with ``START_YEAR/END_YEAR`` or ``START_DATE/END_DATE``; procedures
with ``DATE`` or ``START``; an optional ``SYSTEM`` column on conditions and procedures).

Mapping decisions
- Times: Synthea writes ISO timestamps in UTC (``...Z``) and plain dates; both become naive UTC.
- members: ``GENDER`` F/M, anything else U; ``race_ethnicity`` is ``hispanic`` when ``ETHNICITY`` is
  hispanic, else ``RACE`` (``hawaiian`` → pacific_islander); ``STATE`` as written (full state name).
- enrollment: one span per payer transition. Payer names: Medicare → medicare, Medicaid → medicaid,
  Dual Eligible → dual, NO_INSURANCE → no span (counted as skipped), any other → commercial; Medicare with
  Medicaid as secondary payer (or the reverse) → dual. ``END_DATE`` equals the next span's start, so the
  last covered day is the day before it; years span 1 January to 31 December.
- encounters: ``ENCOUNTERCLASS`` → setting (see ``SETTINGS``); ``ORGANIZATION`` → facility_id (``PROVIDER`` kept
  as ``provider_id``); ``PAYER_COVERAGE`` (what the payer paid) → paid_amount, ``TOTAL_CLAIM_COST`` kept as
  ``total_cost`` and used when ``PAYER_COVERAGE`` is absent; ``REASONCODE`` (SNOMED) → principal_dx.
  admission_type: emergency class → emergency, urgent care → urgent; an inpatient stay is emergency when
  coded "Emergency hospital admission" or when an emergency or urgent-care visit of the patient began in the
  24 hours before it, elective when coded "Non-urgent ... admission", else unknown (``features.importers.stays``).
  discharge_disposition: expired when the patient's death date falls within a stay (inpatient, emergency,
  snf, hospice); for inpatient stays,
  snf or hospice when such a stay begins within 24 hours of discharge; else unknown.
- diagnoses: conditions (SNOMED) at ``START``; is_principal when the code is the encounter's ``REASONCODE``.
- procedures: SNOMED at ``START`` (or ``DATE``). medications: RxNorm at ``START``; days_supply = ``STOP`` −
  ``START`` in days, capped at 365, null when ongoing; drug_class from the description by keyword
  (``vocab.DRUG_CLASS_KEYWORDS``). labs: observations with ``TYPE`` numeric and a LOINC code; other
  observations (text, QALY-style codes) are skipped and counted.
- review_requests: Synthea has none; the table is written empty.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from umrisk.features.importers.checks import RowChecks
from umrisk.features.importers.report import ImportReport
from umrisk.features.importers.source import SourceSpec, find_file, read_source
from umrisk.features.importers.staging import Staging
from umrisk.features.importers.stays import STAY_SETTINGS, died_during, next_setting, visit_before
from umrisk.features.importers.vocab import drug_class, has_shape, line_of_business, normalise_code, race_ethnicity

SETTINGS = {
    "inpatient": "inpatient", "emergency": "emergency", "urgentcare": "outpatient", "ambulatory": "office",
    "outpatient": "outpatient", "wellness": "office", "home": "home_health", "hospice": "hospice",
    "snf": "snf", "virtual": "telehealth", "other": "outpatient",
}
RACES = {"white": "white", "black": "black", "asian": "asian", "native": "native",
         "hawaiian": "pacific_islander", "other": "other"}
SYSTEMS = {"SNOMED-CT": "SNOMED", "SNOMED": "SNOMED", "SNOMEDCT": "SNOMED", "HTTP://SNOMED.INFO/SCT": "SNOMED",
           "ICD10CM": "ICD10CM", "ICD-10-CM": "ICD10CM", "ICD10": "ICD10CM", "CPT": "CPT", "HCPCS": "HCPCS"}
EMERGENCY_ADMISSION = "183452005"  # SNOMED CT: Emergency hospital admission (procedure)
NON_URGENT_ADMISSIONS = ("183495009",)  # SNOMED CT: Non-urgent orthopedic admission
ED_WINDOW = pd.Timedelta(hours=24)

_IDENTIFYING = ("SSN", "DRIVERS", "PASSPORT", "PREFIX", "FIRST", "MIDDLE", "LAST", "SUFFIX", "MAIDEN",
                "BIRTHPLACE", "ADDRESS", "CITY", "COUNTY", "FIPS", "ZIP", "LAT", "LON")

PATIENTS = SourceSpec("patients", required=("Id", "BIRTHDATE", "GENDER"),
                      optional=("DEATHDATE", "RACE", "ETHNICITY", "STATE"),
                      ignored=(*_IDENTIFYING, "MARITAL", "HEALTHCARE_EXPENSES", "HEALTHCARE_COVERAGE", "INCOME"))
ENCOUNTERS = SourceSpec("encounters", required=("Id", "START", "PATIENT", "ENCOUNTERCLASS"),
                        optional=("STOP", "ORGANIZATION", "PROVIDER", "CODE", "TOTAL_CLAIM_COST",
                                  "PAYER_COVERAGE", "REASONCODE"),
                        ignored=("PAYER", "DESCRIPTION", "BASE_ENCOUNTER_COST", "REASONDESCRIPTION"))
PAYER_TRANSITIONS = SourceSpec("payer_transitions", required=("PATIENT", "PAYER"),
                               one_of=(("START_DATE", "START_YEAR"), ("END_DATE", "END_YEAR")),
                               optional=("SECONDARY_PAYER",),
                               ignored=("MEMBERID", "OWNERSHIP", "PLAN_OWNERSHIP", "OWNER_NAME"))
PAYERS = SourceSpec("payers", required=("Id", "NAME"), warn_unknown=False)
CONDITIONS = SourceSpec("conditions", required=("START", "PATIENT", "CODE"), optional=("ENCOUNTER", "SYSTEM"),
                        ignored=("STOP", "DESCRIPTION"))
PROCEDURES = SourceSpec("procedures", required=("PATIENT", "CODE"), one_of=(("START", "DATE"),),
                        optional=("ENCOUNTER", "SYSTEM"),
                        ignored=("STOP", "DESCRIPTION", "BASE_COST", "REASONCODE", "REASONDESCRIPTION"))
MEDICATIONS = SourceSpec("medications", required=("START", "PATIENT", "CODE"), optional=("STOP", "DESCRIPTION"),
                         ignored=("PAYER", "ENCOUNTER", "BASE_COST", "PAYER_COVERAGE", "DISPENSES", "TOTALCOST",
                                  "REASONCODE", "REASONDESCRIPTION"))
OBSERVATIONS = SourceSpec("observations", required=("DATE", "PATIENT", "CODE", "VALUE"), optional=("UNITS", "TYPE"),
                          ignored=("ENCOUNTER", "CATEGORY", "DESCRIPTION"))

OPTIONAL = (PAYER_TRANSITIONS, PAYERS, CONDITIONS, PROCEDURES, MEDICATIONS, OBSERVATIONS)


def import_synthea(src: Path, report: ImportReport) -> Staging | None:
    """Read the Synthea export in ``src`` and stage the canonical tables; None after a fatal error."""
    folder = src if find_file(src, "patients") or not (src / "csv").is_dir() else src / "csv"
    frames: dict[str, pd.DataFrame | None] = {}
    for spec in (PATIENTS, ENCOUNTERS):
        path = find_file(folder, spec.name)
        if path is None:
            report.error(f"{spec.name}.csv: required file not found in {folder}")
            continue
        frames[spec.name] = read_source(path, spec, report)
    for spec in OPTIONAL:
        path = find_file(folder, spec.name)
        frames[spec.name] = read_source(path, spec, report) if path is not None else None
    if report.errors:
        return None
    if frames["payer_transitions"] is None:
        report.warn("payer_transitions.csv not found: no enrollment imported")

    staging = Staging(report)
    members = _members(frames["patients"], staging)
    if frames["payer_transitions"] is not None:
        _enrollment(frames["payer_transitions"], frames["payers"], members, staging)
    encounters = _encounters(frames["encounters"], members, staging)
    if frames["conditions"] is not None:
        _diagnoses(frames["conditions"], members, encounters, staging)
    if frames["procedures"] is not None:
        _procedures(frames["procedures"], members, encounters, staging)
    if frames["medications"] is not None:
        _medications(frames["medications"], members, staging)
    if frames["observations"] is not None:
        _labs(frames["observations"], members, staging)
    return staging


def _members(df: pd.DataFrame, staging: Staging) -> pd.DataFrame:
    checks = RowChecks(df)
    member_id = checks.text("Id", required=True)
    birth = checks.date("BIRTHDATE")
    death = checks.date("DEATHDATE", required=False)
    checks.order(birth, death, "BIRTHDATE", "DEATHDATE")
    checks.unique("Id", member_id)
    race = checks.column("RACE").str.lower().map(RACES)
    race = race.where(race.notna() | (checks.column("RACE") == ""), "other")
    hispanic = checks.column("ETHNICITY").str.lower() == "hispanic"
    rows = pd.DataFrame({
        "member_id": member_id,
        "birth_date": birth,
        "sex": checks.column("GENDER").str.upper().map({"F": "F", "M": "M"}).fillna("U"),
        "race_ethnicity": race_ethnicity(race, hispanic),
        "state": checks.text("STATE"),
        "death_date": death,
    })[checks.ok]
    staging.add("members", rows, checks)
    return rows


def _enrollment(df: pd.DataFrame, payers: pd.DataFrame | None, members: pd.DataFrame, staging: Staging) -> None:
    checks = RowChecks(df)
    member_id = checks.text("PATIENT", required=True)
    checks.known("PATIENT", member_id, pd.Index(members["member_id"]), "patient")
    start_col = "START_DATE" if "START_DATE" in df else "START_YEAR"
    end_col = "END_DATE" if "END_DATE" in df else "END_YEAR"
    start = checks.date(start_col).dt.floor("D") if start_col == "START_DATE" else checks.year(start_col, "01-01")
    if end_col == "END_DATE":
        end = checks.date(end_col).dt.floor("D") - pd.Timedelta(days=1)
        end = end.where(end >= start, start)
    else:
        end = checks.year(end_col, "12-31")
    checks.order(start, end, start_col, end_col)
    lob = pd.Series("unknown", index=df.index, dtype="object")
    if payers is None:
        staging.report.warn("payers.csv not found: line_of_business is unknown for every enrollment span")
    else:
        names = payers.drop_duplicates("Id").set_index("Id")["NAME"]
        payer_names = checks.column("PAYER").map(names)
        lob = line_of_business(payer_names)
        secondary = line_of_business(checks.column("SECONDARY_PAYER").map(names))
        dual = ((lob == "medicare") & (secondary == "medicaid")) | ((lob == "medicaid") & (secondary == "medicare"))
        lob = lob.where(~dual, "dual")
        unknown = payer_names.isna() & checks.ok
        if unknown.any():
            staging.report.warn(f"payer_transitions.csv: {int(unknown.sum())} span(s) name a payer missing from "
                                "payers.csv; their line_of_business is unknown")
    uninsured = checks.ok & (lob == "none")
    staging.skip("enrollment", "payer NO_INSURANCE (uninsured span)", int(uninsured.sum()))
    keep = checks.ok & ~uninsured
    rows = pd.DataFrame({"member_id": member_id, "start_date": start, "end_date": end, "line_of_business": lob})[keep]
    staging.add("enrollment", rows, checks)


def _encounters(df: pd.DataFrame, members: pd.DataFrame, staging: Staging) -> pd.DataFrame:
    checks = RowChecks(df)
    encounter_id = checks.text("Id", required=True)
    member_id = checks.text("PATIENT", required=True)
    checks.known("PATIENT", member_id, pd.Index(members["member_id"]), "patient")
    klass = checks.text("ENCOUNTERCLASS", required=True).str.lower()
    setting = klass.map(SETTINGS)
    checks.fail(klass.notna() & setting.isna(), "ENCOUNTERCLASS: unknown encounter class", klass)
    admit = checks.date("START")
    discharge = checks.date("STOP", required=False)
    checks.order(admit, discharge, "START", "STOP")
    reason = checks.code("REASONCODE", "SNOMED", required=False)
    coverage = checks.number("PAYER_COVERAGE")
    total = checks.number("TOTAL_CLAIM_COST")
    checks.unique("Id", encounter_id)
    paid = coverage if "PAYER_COVERAGE" in df else total
    negative = checks.ok & (paid < 0)
    if negative.any():
        staging.report.warn(f"encounters.csv: {int(negative.sum())} negative payment(s); paid_amount left empty")
    rows = pd.DataFrame({
        "encounter_id": encounter_id,
        "member_id": member_id,
        "setting": setting,
        "admit_time": admit,
        "discharge_time": discharge,
        "admission_type": "unknown",
        "discharge_disposition": "unknown",
        "principal_dx": reason,
        "facility_id": checks.text("ORGANIZATION"),
        "paid_amount": paid.where(paid >= 0),
        "provider_id": checks.text("PROVIDER"),
        "total_cost": total,
        "_class": klass,
        "_code": checks.column("CODE"),
    })[checks.ok]
    rows = _admission_and_discharge(rows, members)
    staging.add("encounters", rows.drop(columns=["_class", "_code"]), checks)
    return rows


def _admission_and_discharge(rows: pd.DataFrame, members: pd.DataFrame) -> pd.DataFrame:
    """Fill admission_type and discharge_disposition by the rules in the module doc."""
    klass, code = rows["_class"], rows["_code"]
    inpatient = rows["setting"] == "inpatient"
    ed_visits = rows.loc[klass.isin(["emergency", "urgentcare"]), ["member_id", "admit_time"]].rename(
        columns={"admit_time": "time"})
    via_ed = visit_before(rows.loc[inpatient], ed_visits, ED_WINDOW).reindex(rows.index, fill_value=False)
    admission = pd.Series("unknown", index=rows.index, dtype="object")
    admission = admission.where(~(klass == "urgentcare"), "urgent")
    admission = admission.where(~(klass == "emergency"), "emergency")
    admission = admission.where(~(inpatient & code.isin(NON_URGENT_ADMISSIONS)), "elective")
    admission = admission.where(~(inpatient & ((code == EMERGENCY_ADMISSION) | via_ed)), "emergency")

    post_acute = rows.loc[rows["setting"].isin(["snf", "hospice"]), ["member_id", "admit_time", "setting"]].rename(
        columns={"admit_time": "time"})
    following = next_setting(rows.loc[inpatient], post_acute, ED_WINDOW).reindex(rows.index)
    death = rows["member_id"].map(members.set_index("member_id")["death_date"])
    disposition = pd.Series("unknown", index=rows.index, dtype="object")
    disposition = disposition.where(~(inpatient & following.isin(["snf", "hospice"])), following)
    died = rows["setting"].isin(STAY_SETTINGS) & died_during(rows["admit_time"], rows["discharge_time"], death)
    disposition = disposition.where(~died, "expired")
    return rows.assign(admission_type=admission, discharge_disposition=disposition)


def _coded(checks: RowChecks, default: str) -> tuple[pd.Series, pd.Series]:
    """Codes and their systems: ``default`` unless a ``SYSTEM`` column names another (see ``SYSTEMS``)."""
    raw_system = checks.column("SYSTEM").str.upper()
    system = raw_system.map(SYSTEMS).where(raw_system != "", default)
    checks.fail(system.isna(), "SYSTEM: unsupported code system", raw_system)
    codes = normalise_code(checks.column("CODE"))
    checks.fail(codes == "", "CODE: missing code")
    shaped = pd.Series(False, index=codes.index)
    for name in system.dropna().unique():
        shaped |= (system == name) & has_shape(codes, name)
    checks.fail((codes != "") & system.notna() & ~shaped, "CODE: unparseable code", checks.column("CODE"))
    return codes, system


def _linked(checks: RowChecks, members: pd.DataFrame, encounters: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    member_id = checks.text("PATIENT", required=True)
    checks.known("PATIENT", member_id, pd.Index(members["member_id"]), "patient")
    encounter_id = checks.text("ENCOUNTER")
    checks.known("ENCOUNTER", encounter_id, pd.Index(encounters["encounter_id"]), "encounter")
    return member_id, encounter_id


def _diagnoses(df: pd.DataFrame, members: pd.DataFrame, encounters: pd.DataFrame, staging: Staging) -> None:
    checks = RowChecks(df)
    member_id, encounter_id = _linked(checks, members, encounters)
    time = checks.date("START")
    codes, system = _coded(checks, "SNOMED")
    reasons = encounters.set_index("encounter_id")["principal_dx"]
    principal = (encounter_id.map(reasons) == codes).fillna(False).astype(bool)
    rows = pd.DataFrame({"member_id": member_id, "encounter_id": encounter_id, "time": time, "code": codes,
                         "code_system": system, "is_principal": principal})[checks.ok]
    staging.add("diagnoses", rows, checks)


def _procedures(df: pd.DataFrame, members: pd.DataFrame, encounters: pd.DataFrame, staging: Staging) -> None:
    checks = RowChecks(df)
    member_id, encounter_id = _linked(checks, members, encounters)
    time = checks.date("START" if "START" in df else "DATE")
    codes, system = _coded(checks, "SNOMED")
    rows = pd.DataFrame({"member_id": member_id, "encounter_id": encounter_id, "time": time, "code": codes,
                         "code_system": system})[checks.ok]
    staging.add("procedures", rows, checks)


def _medications(df: pd.DataFrame, members: pd.DataFrame, staging: Staging) -> None:
    checks = RowChecks(df)
    member_id = checks.text("PATIENT", required=True)
    checks.known("PATIENT", member_id, pd.Index(members["member_id"]), "patient")
    start = checks.date("START")
    stop = checks.date("STOP", required=False)
    checks.order(start, stop, "START", "STOP")
    codes = checks.code("CODE", "RXNORM")
    days = ((stop - start) / pd.Timedelta(days=1)).clip(lower=0, upper=365)
    rows = pd.DataFrame({"member_id": member_id, "time": start, "code": codes, "code_system": "RXNORM",
                         "drug_class": drug_class(checks.column("DESCRIPTION")), "days_supply": days})[checks.ok]
    staging.add("medications", rows, checks)


def _labs(df: pd.DataFrame, members: pd.DataFrame, staging: Staging) -> None:
    checks = RowChecks(df)
    member_id = checks.text("PATIENT", required=True)
    checks.known("PATIENT", member_id, pd.Index(members["member_id"]), "patient")
    time = checks.date("DATE")
    loinc = has_shape(checks.column("CODE"), "LOINC")
    kind = checks.column("TYPE").str.lower()
    numeric = (kind == "numeric") if "TYPE" in df else checks.column("VALUE").str.fullmatch(
        r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?").fillna(False).astype(bool)
    not_numeric = checks.ok & ~numeric
    not_loinc = checks.ok & numeric & ~loinc
    value = checks.number("VALUE", required=True, where=numeric & loinc)
    staging.skip("labs", "TYPE: not a numeric observation", int(not_numeric.sum()))
    staging.skip("labs", "CODE: not a LOINC code", int(not_loinc.sum()))
    keep = checks.ok & numeric & loinc
    rows = pd.DataFrame({"member_id": member_id, "time": time, "code": checks.column("CODE"), "value": value,
                         "unit": checks.text("UNITS")})[keep]
    staging.add("labs", rows, checks)
