"""Import an OMOP CDM v5.4 extract (CSV or Parquet) into the history store.

SRC holds one file per CDM table, named ``<table>.csv`` or ``<table>.parquet`` (case-insensitive; Parquet is
preferred when both exist). ``person`` is required; ``death``, ``location``, ``observation_period``,
``payer_plan_period``, ``visit_occurrence``, ``condition_occurrence``, ``procedure_occurrence``,
``drug_exposure`` and ``measurement`` are imported when present. Column names match case-insensitively; the
v5.3 names ``admitting_source_concept_id`` and ``discharge_to_concept_id`` are read too. No vocabulary
tables are needed: codes come from the ``*_source_value`` columns, concept ids are read for the few
concepts listed here (OMOP standard Visit, Place of Service, Gender, Race, Ethnicity and Condition Status
concepts, as listed on athena.ohdsi.org).

Mapping decisions
- Times: OMOP dates and date-times carry no zone; they are taken as UTC. A ``*_datetime`` is used when
  present, else the date (midnight). A visit whose end is a bare date on its start day ends at its start.
- members: gender 8507 → M, 8532 → F, else U; birth from ``birth_datetime`` or year/month/day (month and day
  default to 1); race 8527 white, 8516 black, 8515 asian, 8657 native, 8557 pacific_islander, other
  non-zero → other; ethnicity 38003563 → hispanic; ``state`` from ``location`` when that file is present;
  ``death_date`` from ``death`` (the earliest record per person).
- enrollment: ``payer_plan_period`` spans with line_of_business by keyword in the payer and plan source
  values (``vocab.line_of_business``); persons without any payer plan period get their
  ``observation_period`` spans as ``unknown``.
- encounters: ``visit_concept_id`` → setting (``VISIT_SETTINGS``); pharmacy, laboratory, ambulance and
  case-management visits are skipped (``NOT_CARE_SETTINGS``). admission_type: emergency for ER visits, for
  262 (ER and inpatient), when admitted from the ER, or when an ER visit of the person began in the 24 hours
  before an inpatient admission; else unknown. discharge_disposition from ``discharged_to_concept_id``
  (``DISPOSITIONS``; other non-zero concepts → other), else expired when the person's death date falls
  within the stay, else unknown. facility_id = ``care_site_id``; paid_amount is empty (the cost table is not read).
- Links: a condition or procedure whose ``visit_occurrence_id`` names a visit that was not imported
  (rejected, skipped or absent) is rejected; ``0`` or empty means no visit.
- diagnoses: the code is ``condition_source_value`` when it has an ICD shape (ICD-9-CM vs ICD-10-CM by
  shape, and by date for codes that fit both; ``vocab.classify_icd_diagnosis``) or is a SNOMED CT id;
  otherwise the ``condition_concept_id`` is stored under SNOMED (a warning counts these: it is an OMOP
  concept id, not a SNOMED code). is_principal for condition status 32902, 32901 or 32903 (primary
  diagnosis, primary admission diagnosis, primary discharge diagnosis); an encounter's principal_dx is
  its first principal diagnosis.
- procedures: ``procedure_source_value`` as CPT, HCPCS, ICD-10-PCS, ICD-9-PCS or SNOMED by shape
  (``vocab.classify_procedure``), else the concept id under SNOMED (counted in a warning).
- medications: ``drug_source_value`` as NDC (11 digits, or hyphenated), an RxNorm RXCUI (up to 8 digits) or
  ATC; else the ``drug_concept_id`` under RXNORM (counted in a warning). days_supply from ``days_supply``,
  else end − start + 1 days, capped at 365. drug_class is left empty.
- labs: measurements with a ``value_as_number`` and a LOINC-shaped ``measurement_source_value``; others
  are skipped and counted. unit = ``unit_source_value``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from umrisk.features.importers.checks import RowChecks
from umrisk.features.importers.report import ImportReport
from umrisk.features.importers.source import SourceSpec, find_file, read_source
from umrisk.features.importers.staging import Staging
from umrisk.features.importers.stays import STAY_SETTINGS, died_during, visit_before
from umrisk.features.importers.vocab import (
    SHAPES,
    classify_icd_diagnosis,
    classify_procedure,
    has_shape,
    line_of_business,
    ndc11,
    normalise_code,
    race_ethnicity,
)

VISIT_SETTINGS = {
    "9201": "inpatient",  # Inpatient Visit
    "262": "inpatient",  # Emergency Room and Inpatient Visit
    "8717": "inpatient",  # Inpatient Hospital (place of service)
    "9203": "emergency",  # Emergency Room Visit
    "8870": "emergency",  # Emergency Room - Hospital (place of service)
    "581385": "observation",  # Observation Room
    "9202": "outpatient",  # Outpatient Visit
    "8756": "outpatient",  # Outpatient Hospital (place of service)
    "581477": "office",  # Office Visit
    "8940": "office",  # Office (place of service)
    "581476": "home_health",  # Home Visit
    "8546": "hospice",  # Hospice
    "8863": "snf",  # Skilled Nursing Facility
    "8676": "snf",  # Nursing Facility
    "42898160": "snf",  # Non-hospital institution Visit
    "5083": "telehealth",  # Telehealth Visit
}
NOT_CARE_SETTINGS = {"581458": "pharmacy", "32036": "laboratory", "581478": "ambulance",
                     "38004193": "case management"}
DISPOSITIONS = {
    "8536": "home",  # Home
    "581476": "home_health",  # Home Visit
    "38004195": "home_health",  # Home Health Agency
    "8863": "snf",  # Skilled Nursing Facility
    "8676": "snf",  # Nursing Facility
    "8920": "rehab",  # Comprehensive Inpatient Rehabilitation Facility
    "8546": "hospice",  # Hospice
    "4216643": "expired",  # Patient died
    "4021968": "ama",  # Patient self-discharge against medical advice
    "8717": "transfer_acute",  # Inpatient Hospital
    "9201": "transfer_acute",  # Inpatient Visit
    "38004279": "transfer_acute",  # General Acute Care Hospital
}
ADMITTED_FROM_ER = ("8870", "9203", "262")
GENDERS = {"8507": "M", "8532": "F"}
RACES = {"8527": "white", "8516": "black", "8515": "asian", "8657": "native", "8557": "pacific_islander"}
HISPANIC = "38003563"
PRINCIPAL_STATUS = ("32902", "32901", "32903")
ED_WINDOW = pd.Timedelta(hours=24)

PERSON = SourceSpec("person", required=("person_id", "gender_concept_id", "year_of_birth"),
                    optional=("month_of_birth", "day_of_birth", "birth_datetime", "race_concept_id",
                              "ethnicity_concept_id", "location_id"),
                    ignored=("provider_id", "care_site_id", "person_source_value", "gender_source_value",
                             "gender_source_concept_id", "race_source_value", "race_source_concept_id",
                             "ethnicity_source_value", "ethnicity_source_concept_id"))
LOCATION = SourceSpec("location", required=("location_id",), optional=("state",),
                      ignored=("address_1", "address_2", "city", "zip", "county", "location_source_value",
                               "country_concept_id", "country_source_value", "latitude", "longitude"))
DEATH = SourceSpec("death", required=("person_id", "death_date"), optional=("death_datetime",),
                   ignored=("death_type_concept_id", "cause_concept_id", "cause_source_value",
                            "cause_source_concept_id"))
OBSERVATION_PERIOD = SourceSpec("observation_period", required=(
    "person_id", "observation_period_start_date", "observation_period_end_date"),
    ignored=("observation_period_id", "period_type_concept_id"))
PAYER_PLAN_PERIOD = SourceSpec("payer_plan_period", required=(
    "person_id", "payer_plan_period_start_date", "payer_plan_period_end_date"),
    optional=("payer_source_value", "plan_source_value"),
    ignored=("payer_plan_period_id", "payer_concept_id", "payer_source_concept_id", "plan_concept_id",
             "plan_source_concept_id", "sponsor_concept_id", "sponsor_source_value", "sponsor_source_concept_id",
             "family_source_value", "stop_reason_concept_id", "stop_reason_source_value",
             "stop_reason_source_concept_id"))
VISIT_OCCURRENCE = SourceSpec("visit_occurrence", required=(
    "visit_occurrence_id", "person_id", "visit_concept_id", "visit_start_date"),
    optional=("visit_start_datetime", "visit_end_date", "visit_end_datetime", "care_site_id",
              "admitted_from_concept_id", "admitting_source_concept_id", "discharged_to_concept_id",
              "discharge_to_concept_id"),
    ignored=("visit_type_concept_id", "provider_id", "visit_source_value", "visit_source_concept_id",
             "admitted_from_source_value", "admitting_source_value", "discharged_to_source_value",
             "discharge_to_source_value", "preceding_visit_occurrence_id"))
CONDITION_OCCURRENCE = SourceSpec("condition_occurrence", required=(
    "person_id", "condition_concept_id", "condition_start_date"),
    optional=("condition_start_datetime", "condition_source_value", "visit_occurrence_id",
              "condition_status_concept_id"),
    ignored=("condition_occurrence_id", "condition_end_date", "condition_end_datetime", "condition_type_concept_id",
             "stop_reason", "provider_id", "visit_detail_id", "condition_source_concept_id",
             "condition_status_source_value"))
PROCEDURE_OCCURRENCE = SourceSpec("procedure_occurrence", required=(
    "person_id", "procedure_concept_id", "procedure_date"),
    optional=("procedure_datetime", "procedure_source_value", "visit_occurrence_id"),
    ignored=("procedure_occurrence_id", "procedure_end_date", "procedure_end_datetime", "procedure_type_concept_id",
             "modifier_concept_id", "quantity", "provider_id", "visit_detail_id", "procedure_source_concept_id",
             "modifier_source_value"))
DRUG_EXPOSURE = SourceSpec("drug_exposure", required=("person_id", "drug_concept_id", "drug_exposure_start_date"),
                           optional=("drug_exposure_start_datetime", "drug_exposure_end_date", "days_supply",
                                     "drug_source_value"),
                           ignored=("drug_exposure_id", "drug_exposure_end_datetime", "verbatim_end_date",
                                    "drug_type_concept_id", "stop_reason", "refills", "quantity", "sig",
                                    "route_concept_id", "lot_number", "provider_id", "visit_occurrence_id",
                                    "visit_detail_id", "drug_source_concept_id", "route_source_value",
                                    "dose_unit_source_value"))
MEASUREMENT = SourceSpec("measurement", required=("person_id", "measurement_concept_id", "measurement_date"),
                         optional=("measurement_datetime", "value_as_number", "unit_source_value",
                                   "measurement_source_value"),
                         ignored=("measurement_id", "measurement_time", "measurement_type_concept_id",
                                  "operator_concept_id", "value_as_concept_id", "unit_concept_id", "range_low",
                                  "range_high", "provider_id", "visit_occurrence_id", "visit_detail_id",
                                  "measurement_source_concept_id", "unit_source_concept_id", "value_source_value",
                                  "measurement_event_id", "meas_event_field_concept_id"))

OPTIONAL = (LOCATION, DEATH, OBSERVATION_PERIOD, PAYER_PLAN_PERIOD, VISIT_OCCURRENCE, CONDITION_OCCURRENCE,
            PROCEDURE_OCCURRENCE, DRUG_EXPOSURE, MEASUREMENT)


def import_omop(src: Path, report: ImportReport) -> Staging | None:
    """Read the OMOP extract in ``src`` and stage the canonical tables; None after a fatal error."""
    frames: dict[str, pd.DataFrame | None] = {}
    for spec in (PERSON, *OPTIONAL):
        path = find_file(src, spec.name, (".parquet", ".csv"))
        if path is None:
            if spec is PERSON:
                report.error(f"person.csv or person.parquet: required file not found in {src}")
            frames[spec.name] = None
            continue
        if path.suffix.lower() == ".parquet" and find_file(src, spec.name, (".csv",)) is not None:
            report.warn(f"{spec.name}: both .parquet and .csv present; read {path.name}")
        frames[spec.name] = read_source(path, spec, report)
    if report.errors:
        return None
    staging = Staging(report)
    members = _members(frames["person"], frames["death"], frames["location"], staging)
    _enrollment(frames["payer_plan_period"], frames["observation_period"], members, staging)
    encounters = _encounters(frames["visit_occurrence"], members, staging)
    if frames["condition_occurrence"] is not None:
        _diagnoses(frames["condition_occurrence"], members, encounters, staging)
    if frames["procedure_occurrence"] is not None:
        _procedures(frames["procedure_occurrence"], members, encounters, staging)
    if frames["drug_exposure"] is not None:
        _medications(frames["drug_exposure"], members, staging)
    if frames["measurement"] is not None:
        _labs(frames["measurement"], members, staging)
    return staging


def _concept(checks: RowChecks, col: str) -> pd.Series:
    """Concept ids as digit strings ("8507.0" from float exports becomes "8507"); None for empty."""
    s = checks.column(col).str.replace(r"\.0+$", "", regex=True)
    checks.fail((s != "") & ~s.str.fullmatch(r"\d+").fillna(False).astype(bool), f"{col}: unparseable concept id",
                checks.column(col))
    return s.where(s != "", None)


def _when(checks: RowChecks, date_col: str, datetime_col: str, required: bool = True) -> tuple[pd.Series, pd.Series]:
    """The date-time when given, else the date; and whether it came from a bare date."""
    date = checks.date(date_col, required=required)
    if datetime_col in checks.frame:
        moment = checks.date(datetime_col, required=False)
        return moment.fillna(date), moment.isna()
    return date, pd.Series(True, index=date.index)


def _members(df: pd.DataFrame, deaths: pd.DataFrame | None, location: pd.DataFrame | None,
             staging: Staging) -> pd.DataFrame:
    checks = RowChecks(df)
    person_id = checks.text("person_id", required=True)
    gender = _concept(checks, "gender_concept_id")
    birth = _birth_date(checks)
    checks.unique("person_id", person_id)
    race_concept = _concept(checks, "race_concept_id")
    race = race_concept.map(RACES).where(race_concept.isin(list(RACES)) | race_concept.isin(["0"]) |
                                         race_concept.isna(), "other")
    hispanic = _concept(checks, "ethnicity_concept_id") == HISPANIC
    state = pd.Series(None, index=df.index, dtype="object")
    if location is not None and "state" in location:
        states = location.drop_duplicates("location_id").set_index("location_id")["state"].str.strip()
        state = checks.column("location_id").map(states[states != ""])
    rows = pd.DataFrame({"member_id": person_id, "birth_date": birth, "sex": gender.map(GENDERS).fillna("U"),
                         "race_ethnicity": race_ethnicity(race, hispanic), "state": state,
                         "death_date": pd.Series(pd.NaT, index=df.index, dtype="datetime64[us]")})[checks.ok]
    if deaths is not None:
        rows = _deaths(deaths, rows, staging)
    staging.add("members", rows, checks)
    return rows


def _birth_date(checks: RowChecks) -> pd.Series:
    moment = checks.date("birth_datetime", required=False).dt.floor("D")
    year = checks.column("year_of_birth")
    month = checks.column("month_of_birth").str.replace(r"\.0+$", "", regex=True).replace("", "1")
    day = checks.column("day_of_birth").str.replace(r"\.0+$", "", regex=True).replace("", "1")
    year = year.str.replace(r"\.0+$", "", regex=True)
    text = year + "-" + month.str.zfill(2) + "-" + day.str.zfill(2)
    parts = pd.to_datetime(text.where(text.str.fullmatch(r"\d{4}-\d{2}-\d{2}").fillna(False).astype(bool)),
                           format="%Y-%m-%d", errors="coerce").astype("datetime64[us]")
    birth = moment.fillna(parts)
    checks.fail(birth.isna(), "year_of_birth: unparseable birth date", text)
    return checks.plausible(birth, "year_of_birth", text)


def _deaths(df: pd.DataFrame, members: pd.DataFrame, staging: Staging) -> pd.DataFrame:
    """Set members' death_date from the death table (earliest record per person)."""
    checks = RowChecks(df)
    person_id = checks.text("person_id", required=True)
    checks.known("person_id", person_id, pd.Index(members["member_id"]), "person")
    death, _ = _when(checks, "death_date", "death_datetime")
    death = death.dt.floor("D")
    birth = person_id.map(members.set_index("member_id")["birth_date"])
    checks.order(birth, death, "birth", "death_date")
    ok = pd.DataFrame({"member_id": person_id, "death_date": death})[checks.ok]
    earliest = ok.groupby("member_id")["death_date"].min()
    staging.add("members", ok.iloc[0:0], checks)
    staging.skip("members", "death: record merged into members.death_date", len(ok))
    return members.assign(death_date=members["member_id"].map(earliest).astype("datetime64[us]"))


def _enrollment(plans: pd.DataFrame | None, periods: pd.DataFrame | None, members: pd.DataFrame,
                staging: Staging) -> None:
    known = pd.Index(members["member_id"])
    covered = pd.Index([])
    if plans is not None:
        checks = RowChecks(plans)
        person_id = checks.text("person_id", required=True)
        checks.known("person_id", person_id, known, "person")
        start = checks.date("payer_plan_period_start_date")
        end = checks.date("payer_plan_period_end_date")
        checks.order(start, end, "payer_plan_period_start_date", "payer_plan_period_end_date")
        lob = line_of_business(checks.column("payer_source_value") + " " + checks.column("plan_source_value"))
        uninsured = checks.ok & (lob == "none")
        staging.skip("enrollment", "payer_plan_period: uninsured or self-pay", int(uninsured.sum()))
        keep = checks.ok & ~uninsured
        rows = pd.DataFrame({"member_id": person_id, "start_date": start, "end_date": end,
                             "line_of_business": lob})[keep]
        staging.add("enrollment", rows, checks)
        covered = pd.Index(person_id[checks.ok].unique())
    if periods is not None:
        checks = RowChecks(periods)
        person_id = checks.text("person_id", required=True)
        checks.known("person_id", person_id, known, "person")
        start = checks.date("observation_period_start_date")
        end = checks.date("observation_period_end_date")
        checks.order(start, end, "observation_period_start_date", "observation_period_end_date")
        has_plan = checks.ok & person_id.isin(covered)
        staging.skip("enrollment", "observation_period: person has payer plan periods (used instead)",
                     int(has_plan.sum()))
        rows = pd.DataFrame({"member_id": person_id, "start_date": start, "end_date": end,
                             "line_of_business": "unknown"})[checks.ok & ~has_plan]
        staging.add("enrollment", rows, checks)


def _encounters(df: pd.DataFrame | None, members: pd.DataFrame, staging: Staging) -> pd.DataFrame:
    if df is None:
        return pd.DataFrame({"encounter_id": pd.Series(dtype="str"), "principal_dx": pd.Series(dtype="str")})
    checks = RowChecks(df)
    visit_id = checks.text("visit_occurrence_id", required=True)
    person_id = checks.text("person_id", required=True)
    checks.known("person_id", person_id, pd.Index(members["member_id"]), "person")
    concept = _concept(checks, "visit_concept_id")
    setting = concept.map(VISIT_SETTINGS)
    not_care = concept.isin(list(NOT_CARE_SETTINGS))
    checks.fail(setting.isna() & ~not_care, "visit_concept_id: unmapped visit concept",
                checks.column("visit_concept_id"))
    admit, _ = _when(checks, "visit_start_date", "visit_start_datetime")
    end, end_is_date = _when(checks, "visit_end_date", "visit_end_datetime", required=False)
    same_day = end_is_date & (end < admit) & (end.dt.floor("D") == admit.dt.floor("D"))
    end = end.where(~same_day, admit)
    checks.order(admit, end, "visit_start_date", "visit_end_date")
    checks.unique("visit_occurrence_id", visit_id)
    skipped = checks.ok & not_care
    for code, label in NOT_CARE_SETTINGS.items():
        staging.skip("encounters", f"visit_concept_id: {label} visit (not a care setting)",
                     int((skipped & (concept == code)).sum()))
    admitted_from = _concept(checks, "admitted_from_concept_id" if "admitted_from_concept_id" in df
                             else "admitting_source_concept_id")
    discharged_to = _concept(checks, "discharged_to_concept_id" if "discharged_to_concept_id" in df
                             else "discharge_to_concept_id")
    rows = pd.DataFrame({
        "encounter_id": visit_id, "member_id": person_id, "setting": setting, "admit_time": admit,
        "discharge_time": end, "admission_type": "unknown", "discharge_disposition": "unknown",
        "principal_dx": pd.Series(None, index=df.index, dtype="str"), "facility_id": checks.text("care_site_id"),
        "paid_amount": float("nan"), "_concept": concept, "_from": admitted_from, "_to": discharged_to,
    })[checks.ok & ~not_care]
    rows = _admission_and_discharge(rows, members)
    staging.add("encounters", rows, checks)
    return rows


def _admission_and_discharge(rows: pd.DataFrame, members: pd.DataFrame) -> pd.DataFrame:
    inpatient = rows["setting"] == "inpatient"
    er_visits = rows.loc[rows["setting"] == "emergency", ["member_id", "admit_time"]].rename(
        columns={"admit_time": "time"})
    via_er = visit_before(rows.loc[inpatient], er_visits, ED_WINDOW).reindex(rows.index, fill_value=False)
    emergency = (rows["setting"] == "emergency") | (inpatient & (
        (rows["_concept"] == "262") | rows["_from"].isin(ADMITTED_FROM_ER) | via_er))
    admission = pd.Series("unknown", index=rows.index, dtype="object").where(~emergency, "emergency")
    to = rows["_to"]
    disposition = to.map(DISPOSITIONS).where(to.notna() & (to != "0"))
    disposition = disposition.where(disposition.notna() | to.isna() | (to == "0"), "other")
    death = rows["member_id"].map(members.set_index("member_id")["death_date"])
    died = rows["setting"].isin(STAY_SETTINGS) & died_during(rows["admit_time"], rows["discharge_time"], death)
    disposition = disposition.where(disposition.notna() | ~died, "expired").fillna("unknown")
    return rows.assign(admission_type=admission, discharge_disposition=disposition).drop(
        columns=["_concept", "_from", "_to"])


def _linked(checks: RowChecks, members: pd.DataFrame, encounters: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    person_id = checks.text("person_id", required=True)
    checks.known("person_id", person_id, pd.Index(members["member_id"]), "person")
    visit_id = checks.text("visit_occurrence_id").replace("0", None)
    checks.known("visit_occurrence_id", visit_id, pd.Index(encounters["encounter_id"]), "visit")
    return person_id, visit_id


def _fallback_to_concept(checks: RowChecks, codes: pd.Series, system: pd.Series, concept_col: str,
                         source_col: str, fallback_system: str, staging: Staging) -> tuple[pd.Series, pd.Series]:
    """Where the source value gives no code, use the concept id (counted in a warning), or reject the row."""
    concept = _concept(checks, concept_col)
    use_concept = system.isna() & concept.notna() & (concept != "0")
    checks.fail(system.isna() & ~use_concept, f"{source_col}: no recognisable code and {concept_col} is 0",
                checks.column(source_col))
    n = int((use_concept & checks.ok).sum())
    if n:
        staging.report.warn(f"{checks.frame['source_file'].iat[0]}: {n} row(s) without a usable {source_col}; "
                            f"stored the OMOP {concept_col} under {fallback_system}")
    return codes.where(~use_concept, concept), system.where(~use_concept, fallback_system)


def _diagnoses(df: pd.DataFrame, members: pd.DataFrame, encounters: pd.DataFrame, staging: Staging) -> None:
    checks = RowChecks(df)
    person_id, visit_id = _linked(checks, members, encounters)
    time, _ = _when(checks, "condition_start_date", "condition_start_datetime")
    codes = normalise_code(checks.column("condition_source_value"))
    system = classify_icd_diagnosis(codes, time)
    system = system.where(system.notna() | ~has_shape(codes, "SNOMED"), "SNOMED")
    codes, system = _fallback_to_concept(checks, codes, system, "condition_concept_id", "condition_source_value",
                                         "SNOMED", staging)
    principal = _concept(checks, "condition_status_concept_id").isin(PRINCIPAL_STATUS)
    rows = pd.DataFrame({"member_id": person_id, "encounter_id": visit_id, "time": time, "code": codes,
                         "code_system": system, "is_principal": principal})[checks.ok]
    staging.add("diagnoses", rows, checks)
    firsts = rows[rows["is_principal"] & rows["encounter_id"].notna()].drop_duplicates("encounter_id")
    if len(firsts):
        visits = staging.table("encounters")
        principal_dx = visits["encounter_id"].map(firsts.set_index("encounter_id")["code"])
        staging.replace("encounters", visits.assign(principal_dx=principal_dx.astype("str").where(
            principal_dx.notna(), None)))


def _procedures(df: pd.DataFrame, members: pd.DataFrame, encounters: pd.DataFrame, staging: Staging) -> None:
    checks = RowChecks(df)
    person_id, visit_id = _linked(checks, members, encounters)
    time, _ = _when(checks, "procedure_date", "procedure_datetime")
    codes = normalise_code(checks.column("procedure_source_value"))
    codes, system = _fallback_to_concept(checks, codes, classify_procedure(codes), "procedure_concept_id",
                                         "procedure_source_value", "SNOMED", staging)
    rows = pd.DataFrame({"member_id": person_id, "encounter_id": visit_id, "time": time, "code": codes,
                         "code_system": system})[checks.ok]
    staging.add("procedures", rows, checks)


def _medications(df: pd.DataFrame, members: pd.DataFrame, staging: Staging) -> None:
    checks = RowChecks(df)
    person_id = checks.text("person_id", required=True)
    checks.known("person_id", person_id, pd.Index(members["member_id"]), "person")
    start, _ = _when(checks, "drug_exposure_start_date", "drug_exposure_start_datetime")
    end = checks.date("drug_exposure_end_date", required=False)
    source = checks.column("drug_source_value")
    ndc = ndc11(source)
    normalised = normalise_code(source)
    rxnorm = has_shape(normalised, "RXNORM")
    atc = has_shape(normalised, "ATC") & normalised.str.fullmatch(r"[A-Z].*").fillna(False).astype(bool)
    codes = ndc.fillna(normalised.where(rxnorm | atc))
    system = pd.Series(None, index=df.index, dtype="object")
    system = system.where(~atc, "ATC").where(~rxnorm, "RXNORM").where(ndc.isna(), "NDC")
    codes, system = _fallback_to_concept(checks, codes, system, "drug_concept_id", "drug_source_value",
                                         "RXNORM", staging)
    supply = checks.number("days_supply")
    derived = (end.dt.floor("D") - start.dt.floor("D")) / pd.Timedelta(days=1) + 1
    days = supply.fillna(derived.where(end >= start)).clip(lower=0, upper=365)
    rows = pd.DataFrame({"member_id": person_id, "time": start, "code": codes, "code_system": system,
                         "drug_class": pd.Series(None, index=df.index, dtype="str"), "days_supply": days})[checks.ok]
    staging.add("medications", rows, checks)


def _labs(df: pd.DataFrame, members: pd.DataFrame, staging: Staging) -> None:
    checks = RowChecks(df)
    person_id = checks.text("person_id", required=True)
    checks.known("person_id", person_id, pd.Index(members["member_id"]), "person")
    time, _ = _when(checks, "measurement_date", "measurement_datetime")
    value = checks.number("value_as_number")
    code = checks.column("measurement_source_value").str.upper()
    loinc = code.str.fullmatch(SHAPES["LOINC"]).fillna(False).astype(bool)
    no_value = checks.ok & value.isna()
    no_loinc = checks.ok & value.notna() & ~loinc
    staging.skip("labs", "measurement: no value_as_number", int(no_value.sum()))
    staging.skip("labs", "measurement_source_value: not a LOINC code", int(no_loinc.sum()))
    rows = pd.DataFrame({"member_id": person_id, "time": time, "code": code, "value": value,
                         "unit": checks.text("unit_source_value")})[checks.ok & value.notna() & loinc]
    staging.add("labs", rows, checks)
