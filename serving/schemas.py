"""Request and response types of the HTTP API: strict (unknown fields are errors) and size-limited.

No response type has an approve or deny value: the service ranks and explains; a clinician decides.
Nothing here takes a file path or a URL.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ModelName = Literal["readmission_30d", "admission_180d"]
Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")]
Code = Annotated[str, Field(min_length=1, max_length=32)]
NextStep = Literal["expedite clinical review", "refer to care management", "plan transitional care at discharge",
                   "routine review"]
MAX_ROWS = 2000  # per inline table


class Strict(BaseModel):
    """Requests: an unknown field is an error."""

    model_config = ConfigDict(extra="forbid")


class Out(BaseModel):
    """Responses: only the declared fields are sent."""

    model_config = ConfigDict(extra="ignore")


# ------------------------------------------------------------------ an inline history (canonical rows)
class MemberRow(Strict):
    member_id: Id
    birth_date: dt.date
    sex: Literal["F", "M", "U"]
    race_ethnicity: Annotated[str, Field(max_length=40)] | None = None
    state: Annotated[str, Field(max_length=40)] | None = None
    death_date: dt.date | None = None


class EnrollmentRow(Strict):
    member_id: Id
    start_date: dt.date
    end_date: dt.date
    line_of_business: Literal["medicare", "medicaid", "commercial", "dual", "unknown"]


class EncounterRow(Strict):
    encounter_id: Id
    member_id: Id
    setting: Literal["inpatient", "emergency", "observation", "outpatient", "office", "snf", "home_health",
                     "hospice", "telehealth"]
    admit_time: dt.datetime
    discharge_time: dt.datetime | None = None
    admission_type: Literal["emergency", "urgent", "elective", "unknown"] = "unknown"
    discharge_disposition: Literal["home", "home_health", "snf", "rehab", "transfer_acute", "ama", "expired",
                                   "hospice", "other", "unknown"] = "unknown"
    principal_dx: Code | None = None
    facility_id: Id | None = None
    paid_amount: Annotated[float, Field(ge=0, le=1e8)] | None = None


class DiagnosisRow(Strict):
    member_id: Id
    encounter_id: Id | None = None
    time: dt.datetime
    code: Code
    code_system: Literal["ICD10CM", "ICD9CM", "SNOMED"]
    is_principal: bool = False


class ProcedureRow(Strict):
    member_id: Id
    encounter_id: Id | None = None
    time: dt.datetime
    code: Code
    code_system: Literal["CPT", "HCPCS", "ICD10PCS", "ICD9PCS", "SNOMED"]


class MedicationRow(Strict):
    member_id: Id
    time: dt.datetime
    code: Code
    code_system: Literal["NDC", "RXNORM", "ATC"] = "RXNORM"
    drug_class: Annotated[str, Field(max_length=60)] | None = None
    days_supply: Annotated[float, Field(ge=0, le=400)] | None = None


class LabRow(Strict):
    member_id: Id
    time: dt.datetime
    code: Code
    value: Annotated[float, Field(ge=-1e6, le=1e6)] | None = None
    unit: Annotated[str, Field(max_length=20)] | None = None


def _rows(t):
    return Annotated[list[t], Field(max_length=MAX_ROWS)]


class History(Strict):
    """One member's history as rows of the canonical tables."""

    members: Annotated[list[MemberRow], Field(min_length=1, max_length=1)]
    enrollment: _rows(EnrollmentRow) = []
    encounters: _rows(EncounterRow) = []
    diagnoses: _rows(DiagnosisRow) = []
    procedures: _rows(ProcedureRow) = []
    medications: _rows(MedicationRow) = []
    labs: _rows(LabRow) = []

    @model_validator(mode="after")
    def _one_member(self) -> History:
        mid = self.members[0].member_id
        for name in ("enrollment", "encounters", "diagnoses", "procedures", "medications", "labs"):
            for i, row in enumerate(getattr(self, name)):
                if row.member_id != mid:
                    raise ValueError(f"{name}[{i}].member_id is not the member of the history ({name} rows "
                                     "must all belong to members[0])")
        return self


# ------------------------------------------------------------------ /v1/score
class ScoreRequest(Strict):
    model: ModelName
    member_ids: Annotated[list[Id], Field(min_length=1)] | None = None
    history: History | None = None
    as_of: dt.date | None = None
    top_reasons: Annotated[int, Field(ge=0, le=10)] = 3

    @model_validator(mode="after")
    def _one_source(self) -> ScoreRequest:
        if (self.member_ids is None) == (self.history is None):
            raise ValueError("give either member_ids or history, not both")
        return self


class Reason(Out):
    feature: str
    text: str
    value: int | float | str | None
    contribution: float


class Score(Out):
    member_id: str
    model: ModelName | None = None
    model_version: str | None = None
    as_of: dt.datetime | None = None
    probability: float | None = None
    tier: str | None = None
    percentile: float | None = None
    reasons: list[Reason] = []
    error: str | None = None


class ScoreResponse(Out):
    scores: list[Score]
    note: str = "Risk ranks and explains; it does not decide coverage or care. A clinician decides."


# ------------------------------------------------------------------ /v1/review-queue
class ReviewCase(Strict):
    request_id: Id
    member_id: Id
    received_time: dt.datetime
    service_type: Literal["inpatient_admission", "procedure", "imaging", "dme", "drug", "other"]
    code: Code | None = None
    urgency: Literal["expedited", "standard"]


class ReviewQueueRequest(Strict):
    cases: Annotated[list[ReviewCase], Field(min_length=1, max_length=2000)] | None = None
    now: dt.datetime | None = None
    minutes_per_case: Annotated[float, Field(gt=0, le=480)] = 30.0


class Risk(Out):
    model_version: str | None
    probability: float | None
    tier: str | None
    percentile: float | None
    reasons: list[Reason] = []
    error: str | None = None


class QueuedCase(Out):
    position: int
    request_id: str
    member_id: str
    service_type: str
    code: str | None
    urgency: str
    received_time: dt.datetime
    deadline: dt.datetime
    hours_left: float
    overdue: bool
    why: str
    suggested_next_step: NextStep
    risks: dict[str, Risk]


class ReviewQueueResponse(Out):
    generated_at: dt.datetime
    ordering: str = ("Overdue cases and cases that can no longer meet their deadline first, by deadline; then "
                     "deadline pressure first, risk second: a riskier case goes ahead only while every earlier "
                     "deadline keeps at least one case's slack. Each case says why it is where it is.")
    cases: list[QueuedCase]
    note: str = "Suggested next steps route the case; they never approve or deny it. A clinician decides."


# ------------------------------------------------------------------ /v1/outreach
class OutreachRequest(Strict):
    capacity: Annotated[int, Field(ge=1, le=5000)]
    line_of_business: Literal["medicare", "medicaid", "commercial", "dual"] | None = None
    exclude_contacted_within_days: Annotated[int, Field(ge=1, le=365)] | None = None
    format: Literal["json", "csv"] = "json"


class OutreachMember(Out):
    rank: int
    member_id: str
    line_of_business: str
    probability: float
    tier: str
    percentile: float
    reasons: list[Reason]


class OutreachResponse(Out):
    model_version: str
    as_of: dt.datetime
    eligible: int
    excluded: dict[str, int]
    members: list[OutreachMember]
