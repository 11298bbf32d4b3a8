"""Request and response types of the HTTP API: strict (unknown fields are errors, no type coercion) and
size-limited.

Strict means a number is a JSON number (``"10"`` and ``true`` are not a capacity), a time is an ISO 8601
string (``0`` is not 1970), and a model is one of the models the service loaded (checked by the API, which
knows them: no model name is written here). Inline histories are held to the canonical schema of the store
(``umrisk.features.schema.TABLES``: allowed values, bounds, plausible dates, time order within a row), so a
history that the store validator would reject is a 422 naming the field.

No response type has an approve or deny value: the service ranks and explains; a clinician decides.
Nothing here takes a file path or a URL.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from umrisk.features.schema import EARLIEST_PLAUSIBLE, TABLES, latest_plausible

Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")]
Code = Annotated[str, Field(min_length=1, max_length=32)]
ModelName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$",
                                 description="One of the models the service loaded (GET /v1/models)")]
NextStep = Literal["expedite clinical review", "plan transitional care at discharge", "refer to care management",
                   "routine review"]  # the routing suggestions of serving.scoring.STEPS; never approve or deny
MAX_ROWS = 2000  # per inline table
# No lab of the canonical schema has bounds (each lab has its own unit); this plausibility bound for any lab
# value in any unit is the serving layer's own, wide enough for the extremes of real labs (creatine kinase
# in rhabdomyolysis, BNP in heart failure) and refusing the absurd (a sodium of 900000).
PLAUSIBLE_LAB_VALUE = 1e5
# A paid amount has only a lower bound in the schema; over a hundred million dollars is not one encounter.
PLAUSIBLE_PAID = 1e8

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ISO_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)?(?:Z|[+-]\d{2}:?\d{2})?")


def _plausible(value: dt.datetime) -> None:
    """The store validator's rule for every date: not before 1890, not more than a year ahead of today."""
    latest = latest_plausible().to_pydatetime()
    if not EARLIEST_PLAUSIBLE.to_pydatetime() <= value <= latest:
        raise ValueError(f"implausible date {value.date().isoformat()}: expected between "
                         f"{EARLIEST_PLAUSIBLE.date().isoformat()} and {latest.date().isoformat()}")


def _iso_datetime(value: Any) -> dt.datetime:
    """An ISO 8601 date-time string (or a datetime from Python callers) as naive UTC, the store's convention."""
    if isinstance(value, str) and _ISO_DATETIME.fullmatch(value):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as err:
            raise ValueError(f"not a valid date-time: {err}") from None
    if not isinstance(value, dt.datetime):
        raise ValueError("expected an ISO 8601 date-time string such as 2026-01-01T08:00:00 or "
                         "2026-01-01T08:00:00Z (naive times are read as UTC)")
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    _plausible(value)
    return value


def _iso_date(value: Any) -> dt.date:
    """An ISO 8601 date string (``YYYY-MM-DD``), or a date from Python callers."""
    if isinstance(value, str) and _ISO_DATE.fullmatch(value):
        try:
            value = dt.date.fromisoformat(value)
        except ValueError as err:
            raise ValueError(f"not a valid date: {err}") from None
    if not isinstance(value, dt.date) or isinstance(value, dt.datetime):
        raise ValueError("expected an ISO 8601 date string such as 2025-06-01")
    _plausible(dt.datetime.combine(value, dt.time()))
    return value


Time = Annotated[dt.datetime, BeforeValidator(_iso_datetime)]
Date = Annotated[dt.date, BeforeValidator(_iso_date)]


class Strict(BaseModel):
    """Requests: an unknown field is an error."""

    model_config = ConfigDict(extra="forbid")


class Out(BaseModel):
    """Responses: only the declared fields are sent."""

    model_config = ConfigDict(extra="ignore")


# ------------------------------------------------------------------ an inline history (canonical rows)
def _allowed(table: str, column: str) -> Any:
    """The allowed values of a column of the canonical schema, as a Literal type (an enum in OpenAPI)."""
    return Literal[TABLES[table].column(column).allowed]  # a tuple of values unpacks into the Literal


def _number(table: str, column: str, plausible: float) -> Any:
    """A JSON number within the schema's bounds of a column (and a plausible bound where it has none)."""
    col = TABLES[table].column(column)
    low = col.min_value if col.min_value is not None else -plausible
    high = col.max_value if col.max_value is not None else plausible
    return Annotated[float, Field(ge=low, le=high, strict=True, allow_inf_nan=False)]


class _Row(Strict):
    """A row of a canonical table: its times plausible and in the order the schema requires."""

    table: ClassVar[str]

    @field_validator("*")
    @classmethod
    def _in_order(cls, value: Any, info: ValidationInfo) -> Any:
        for earlier, later in TABLES[cls.table].ordered_times:
            before = info.data.get(earlier)
            if info.field_name == later and value is not None and before is not None and value < before:
                raise ValueError(f"{later} {value.isoformat()} is before {earlier} {before.isoformat()}")
        return value


class MemberRow(_Row):
    table: ClassVar[str] = "members"
    member_id: Id
    birth_date: Date
    sex: _allowed("members", "sex")
    race_ethnicity: Annotated[str, Field(max_length=40)] | None = None
    state: Annotated[str, Field(max_length=40)] | None = None
    death_date: Date | None = None


class EnrollmentRow(_Row):
    table: ClassVar[str] = "enrollment"
    member_id: Id
    start_date: Date
    end_date: Date
    line_of_business: _allowed("enrollment", "line_of_business")


class EncounterRow(_Row):
    table: ClassVar[str] = "encounters"
    encounter_id: Id
    member_id: Id
    setting: _allowed("encounters", "setting")
    admit_time: Time
    discharge_time: Time | None = None
    admission_type: _allowed("encounters", "admission_type") = "unknown"
    discharge_disposition: _allowed("encounters", "discharge_disposition") = "unknown"
    principal_dx: Code | None = None
    facility_id: Id | None = None
    paid_amount: _number("encounters", "paid_amount", PLAUSIBLE_PAID) | None = None


class DiagnosisRow(_Row):
    table: ClassVar[str] = "diagnoses"
    member_id: Id
    encounter_id: Id | None = None
    time: Time
    code: Code
    code_system: _allowed("diagnoses", "code_system")
    is_principal: Annotated[bool, Field(strict=True)] = False


class ProcedureRow(_Row):
    table: ClassVar[str] = "procedures"
    member_id: Id
    encounter_id: Id | None = None
    time: Time
    code: Code
    code_system: _allowed("procedures", "code_system")


class MedicationRow(_Row):
    table: ClassVar[str] = "medications"
    member_id: Id
    time: Time
    code: Code
    code_system: _allowed("medications", "code_system") = "RXNORM"
    drug_class: Annotated[str, Field(max_length=60)] | None = None
    days_supply: _number("medications", "days_supply", 400) | None = None


class LabRow(_Row):
    table: ClassVar[str] = "labs"
    member_id: Id
    time: Time
    code: Code
    value: _number("labs", "value", PLAUSIBLE_LAB_VALUE) | None = None
    unit: Annotated[str, Field(max_length=20)] | None = None


def _rows(t):
    return Annotated[list[t], Field(max_length=MAX_ROWS)]


class History(Strict):
    """One member's history as rows of the canonical tables. A member is scored only while enrolled, so at
    least one enrollment period is required. Cross-row rules (every row of this member, encounter ids
    unique and known) are in :meth:`problems`, which names the field of each."""

    members: Annotated[list[MemberRow], Field(min_length=1, max_length=1)]
    enrollment: Annotated[list[EnrollmentRow], Field(min_length=1, max_length=MAX_ROWS)]
    encounters: _rows(EncounterRow) = []
    diagnoses: _rows(DiagnosisRow) = []
    procedures: _rows(ProcedureRow) = []
    medications: _rows(MedicationRow) = []
    labs: _rows(LabRow) = []

    def problems(self) -> list[tuple[str, str]]:
        """``(field path within the history, message)`` for each row that breaks a rule across rows: a row of
        another member, a repeated encounter id, an encounter id that is not one of the history's encounters
        (the store's key and foreign keys)."""
        out = []
        mid = self.members[0].member_id
        for name in ("enrollment", "encounters", "diagnoses", "procedures", "medications", "labs"):
            for i, row in enumerate(getattr(self, name)):
                if row.member_id != mid:
                    out.append((f"{name}.{i}.member_id", "not the member of the history (members.0.member_id): "
                                                         "every row must belong to that member"))
        seen: dict[str, int] = {}
        for i, e in enumerate(self.encounters):
            if e.encounter_id in seen:
                out.append((f"encounters.{i}.encounter_id", f"repeats encounters.{seen[e.encounter_id]}"))
            seen.setdefault(e.encounter_id, i)
        for name in ("diagnoses", "procedures"):
            for i, row in enumerate(getattr(self, name)):
                if row.encounter_id is not None and row.encounter_id not in seen:
                    out.append((f"{name}.{i}.encounter_id", "not one of the history's encounters"))
        return out


# ------------------------------------------------------------------ /v1/score
class ScoreRequest(Strict):
    model: ModelName
    member_ids: Annotated[list[Id], Field(min_length=1)] | None = None
    history: History | None = None
    as_of: Date | None = None
    top_reasons: Annotated[int, Field(ge=0, le=10, strict=True)] = 3

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
    model: str | None = None
    model_version: str | None = None
    as_of: dt.datetime | None = None
    probability: float | None = None
    tier: str | None = None
    percentile: float | None = None
    reasons: list[Reason] = []
    error: str | None = None
    not_scorable: str | None = None


class ScoreResponse(Out):
    scores: list[Score]
    note: str = "Risk ranks and explains; it does not decide coverage or care. A clinician decides."


# ------------------------------------------------------------------ /v1/review-queue
class ReviewCase(Strict):
    request_id: Id
    member_id: Id
    received_time: Time
    service_type: _allowed("review_requests", "service_type")
    code: Code | None = None
    urgency: _allowed("review_requests", "urgency")


class ReviewQueueRequest(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"now": "2026-01-01T08:00:00", "minutes_per_case": 30},
        {"now": "2026-01-01T08:00:00Z", "cases": [{"request_id": "PA-1001", "member_id": "M00000001",
                                                   "received_time": "2025-12-30T09:15:00", "service_type": "imaging",
                                                   "code": "70553", "urgency": "expedited"}]}]})
    cases: Annotated[list[ReviewCase], Field(min_length=1, max_length=2000)] | None = None
    now: Time | None = None
    minutes_per_case: Annotated[float, Field(gt=0, le=480, strict=True, allow_inf_nan=False)] = 30.0


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
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"capacity": 25, "line_of_business": "medicare", "exclude_contacted_within_days": 30}]})
    model: ModelName | None = None
    capacity: Annotated[int, Field(ge=1, le=5000, strict=True)]
    line_of_business: Literal["medicare", "medicaid", "commercial", "dual"] | None = None
    exclude_contacted_within_days: Annotated[int, Field(ge=1, le=365, strict=True)] | None = None
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
    model: str
    model_version: str
    as_of: dt.datetime
    eligible: int
    excluded: dict[str, int]
    members: list[OutreachMember]


# ------------------------------------------------------------------ errors (every status but 200)
class ErrorDetail(Out):
    field: str = Field(description="Where: body.cases.3.received_time, path, header.authorization ...")
    message: str


class ErrorResponse(Out):
    """The one shape of every error answer (400, 401, 403, 404, 405, 413, 422, 429, 500)."""

    error: str
    details: list[ErrorDetail] = []
    reference: str | None = Field(None, description="For a 500: the reference in the service's log")


# ------------------------------------------------------------------ the case store: intake, work, metrics
# A case shows the determination a clinician recorded (``decision``); nothing here lets the service make one.
ServiceType = _allowed("review_requests", "service_type")
Urgency = _allowed("review_requests", "urgency")
Text = Annotated[str, Field(min_length=1, max_length=4000)]
ReasonCode = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.:\-]+$")]


class ReviewRequestIn(Strict):
    """A prior-authorization or admission-review request, as JSON."""

    request_id: Id | None = Field(None, description="The sender's id for the request (default: one is made)")
    member_id: Id
    service_type: ServiceType
    codes: Annotated[list[Code], Field(max_length=50)] = []
    diagnoses: Annotated[list[Code], Field(max_length=50)] = []
    urgency: Urgency
    received_time: Time
    requesting_provider: Annotated[str, Field(min_length=1, max_length=128)] | None = None


class ReleaseIn(Strict):
    reason: Text | None = None


class NoteIn(Strict):
    text: Text


class DeterminationIn(Strict):
    decision: Literal["approved", "denied", "pended_for_information", "escalated"]
    reason_code: ReasonCode | None = None
    reason: Text | None = Field(None, description="In words; a denial needs a specific reason")
    extend_days: Annotated[int, Field(ge=1, le=14, strict=True)] | None = Field(
        None, description="With pended_for_information only: extend the deadline (14 days at most in all)")


class AppealIn(Strict):
    reason: Text


class ContactIn(Strict):
    member_id: Id
    time: Time
    channel: Literal["phone", "sms", "email", "mail", "in_person", "portal"]
    outcome: Literal["reached", "no_answer", "declined", "enrolled"]
    note: Annotated[str, Field(max_length=1000)] | None = None


class CodeOut(Out):
    code: str
    system: str | None = None


class CaseOut(Out):
    request_id: str
    member_id: str
    member_known: bool
    service_type: str
    codes: list[CodeOut] = []
    diagnoses: list[CodeOut] = []
    urgency: str
    received_time: dt.datetime
    deadline: dt.datetime
    original_deadline: dt.datetime
    requesting_provider: str | None = None
    source: str
    status: Literal["new", "in_review", "pended_for_information", "decided"]
    assignee: str | None = None
    assigned_at: dt.datetime | None = None
    escalated: bool
    decision: str | None = Field(None, description="The clinician's determination in force, once decided")
    decided_at: dt.datetime | None = None
    hours_left: float | None = None
    on_appeal: bool | None = None
    late: bool | None = Field(None, description="After a determination: made after its deadline")


class CaseEvent(Out):
    time: dt.datetime
    actor: str
    role: str
    action: str
    from_status: str | None
    to_status: str | None
    reason: str | None
    detail: dict[str, Any] = {}


class CaseHistory(Out):
    events: list[CaseEvent]
    notes: list[dict[str, Any]]
    determinations: list[dict[str, Any]]
    appeals: list[dict[str, Any]]
    extensions: list[dict[str, Any]]


class CaseDetail(CaseOut):
    history: CaseHistory


class IntakeOut(Out):
    request_id: str
    status: str
    urgency: str
    received_time: dt.datetime
    deadline: dt.datetime
    member_known: bool
    flags: list[str] = []
    note: str = "Queued for clinical review: a clinician decides."


class LiveQueuedCase(QueuedCase):
    status: str
    assignee: str | None
    escalated: bool
    member_known: bool
    flags: list[str] = []


class LiveQueueResponse(ReviewQueueResponse):
    cases: list[LiveQueuedCase]


class ContactOut(Out):
    id: int
    member_id: str
    time: dt.datetime
    channel: str
    outcome: str
    recorded_by: str


class ReviewMetrics(Out):
    year: int
    as_of: dt.datetime
    standard: dict[str, Any]
    expedited: dict[str, Any]
    all: dict[str, Any]
    backlog: dict[str, dict[str, int]]
    risk_tier_mix: dict[str, dict[str, int]]
    definitions: dict[str, str]
