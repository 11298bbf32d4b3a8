"""The review workflow over HTTP (under ``/v1``): requests in (JSON and Da Vinci PAS), the live queue, work on a
case, the CMS-0057-F metrics, and outreach contacts. ``serving.api`` includes the router this module builds,
handing it its authentication dependency and its audit of scores served.

Every change to a case is written to the case store (with the case's event) and to the audit log (who, role,
what, which case and member, why). Determinations are made by people with reviewer roles; an ``admin`` or
``outreach`` token, a batch job or a model has no route to one. Application logs get counts, never member ids.
"""

# no ``from __future__ import annotations``: the routes are defined inside ``build_router`` and FastAPI reads
# their dependencies (``Depends(authorized(...))``) from the evaluated annotations
import datetime as dt
import logging
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse

from umrisk.serving import pas
from umrisk.serving.auth import Caller
from umrisk.serving.cases.metrics import review_metrics, risk_tier_mix
from umrisk.serving.cases.models import OPEN_STATUSES
from umrisk.serving.cases.queue import live_queue
from umrisk.serving.cases.repository import Actor, CaseError, NewCase, utcnow
from umrisk.serving.schemas import (
    AppealIn,
    CaseDetail,
    CaseOut,
    ContactIn,
    ContactOut,
    DeterminationIn,
    ErrorResponse,
    IntakeOut,
    LiveQueueResponse,
    NoteIn,
    ReleaseIn,
    ReviewMetrics,
    ReviewRequestIn,
    ServiceType,
    Urgency,
)

log = logging.getLogger("umrisk.serving")
FHIR_JSON = "application/fhir+json"
ERRORS = {code: {"model": ErrorResponse, "description": text} for code, text in {
    400: "Malformed JSON", 401: "Missing or invalid bearer token", 403: "The caller's role may not do this",
    404: "No such review request", 409: "The case is not in a state that allows this (held by someone else, "
    "decided ...)", 413: "Request body over the size limit", 422: "Invalid request: each detail names the field",
    429: "Too many requests (per token) or failed authentications (per address): see Retry-After",
    500: "Internal error, with a reference to the service's log"}.items()}
GET_ERRORS = {k: v for k, v in ERRORS.items() if k not in (400, 413)}
Authorized = Callable[[str], Callable[..., Caller]]
RequestId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")]


def _state(request: Request):
    return request.app.state.umrisk


def _cases(request: Request):
    s = _state(request)
    if getattr(s, "cases", None) is None:
        raise HTTPException(503, {"error": "the case store is not open", "details": []})
    return s.cases


def _actor(caller: Caller) -> Actor:
    return Actor(caller.name, caller.role, caller.token_id)


def _naive_utc(t: dt.datetime) -> dt.datetime:
    return t.astimezone(dt.UTC).replace(tzinfo=None) if t.tzinfo else t


def build_router(authorized: Authorized, audit_scores: Callable[[Any, Caller, str, list[dict]], None]) -> APIRouter:
    """The workflow's routes, authenticated by ``authorized(endpoint)`` (the API's dependency) and auditing the
    scores they show with ``audit_scores(state, caller, endpoint, scores)``."""
    router = APIRouter()

    def fail(request: Request, caller: Caller, endpoint: str, err: CaseError, member_id: str | None = None):
        """A refusal by the rules as the API's error shape; refusals of a role (403) are audited."""
        if err.status == 403:
            _state(request).audit.record(caller.token_id, caller.role, endpoint, "refused", member_id=member_id,
                                         outcome=err.message, status=403, caller_name=caller.name)
        details = [{"field": err.field, "message": err.message}] if err.field else []
        return HTTPException(err.status, {"error": err.message, "details": details})

    def changed(request: Request, caller: Caller, endpoint: str, action: str, case: dict, **details) -> None:
        _state(request).audit.record(caller.token_id, caller.role, endpoint, action, member_id=case["member_id"],
                                     caller_name=caller.name, request_id=case["request_id"],
                                     status_after=case["status"], **{k: v for k, v in details.items()
                                                                     if v is not None})

    # ------------------------------------------------------------------ intake
    @router.post("/review-requests", response_model=IntakeOut, status_code=201, responses=ERRORS)
    def create_review_request(body: ReviewRequestIn, request: Request,
                              caller: Annotated[Caller, Depends(authorized("review-intake"))]):
        """File a review request (JSON): a case with its decision deadline (72 hours expedited, 7 days standard).
        A member the history store does not know is filed without scores and flagged."""
        s, store = _state(request), _cases(request)
        received = _naive_utc(body.received_time)
        if received > utcnow() + dt.timedelta(minutes=5):
            raise HTTPException(422, {"error": "invalid request", "details": [
                {"field": "body.received_time", "message": "after now: a request is filed once received"}]})
        known = bool(s.scorer.index.known([body.member_id])[0])
        new = NewCase(member_id=body.member_id, service_type=body.service_type, urgency=body.urgency,
                      received_time=received, codes=[{"code": c, "system": None} for c in body.codes],
                      diagnoses=[{"code": c, "system": None} for c in body.diagnoses],
                      requesting_provider=body.requesting_provider, source="json", member_known=known,
                      request_id=body.request_id)
        try:
            case = store.create(new, _actor(caller))
        except CaseError as err:
            raise fail(request, caller, "review-intake", err) from None
        changed(request, caller, "review-intake", "created", case, source="json", member_known=known)
        log.info("review-requests: 1 case filed (%s)", body.urgency)
        return _intake(case)

    @router.post("/fhir/Claim/$submit", responses={
        200: {"description": "A PAS ClaimResponse Bundle: outcome queued, each item pended (X12 306 A4)",
              "content": {FHIR_JSON: {}}},
        400: {"description": "Not JSON: an OperationOutcome", "content": {FHIR_JSON: {}}},
        422: {"description": "Not a PAS request Bundle this service can queue: an OperationOutcome naming each "
                             "element path", "content": {FHIR_JSON: {}}},
        **{k: v for k, v in ERRORS.items() if k in (401, 403, 413, 429, 500)}},
        openapi_extra={"requestBody": {"required": True, "description": "A Da Vinci PAS request Bundle (FHIR R4 "
                                       "JSON) whose first entry is a Claim with use preauthorization",
                                       "content": {FHIR_JSON: {"schema": {"type": "object"}},
                                                   "application/json": {"schema": {"type": "object"}}}}})
    async def pas_submit(request: Request, caller: Annotated[Caller, Depends(authorized("review-intake"))]):
        """Da Vinci PAS ``Claim/$submit``: the request is queued for clinical review and answered with a
        ClaimResponse whose outcome is ``queued`` and whose items are pended, carrying the case's id. Never a
        decision: a clinician decides, later."""
        s, store = _state(request), _cases(request)
        try:
            req = pas.parse(await request.body())
        except pas.PasError as err:
            s.audit.record(caller.token_id, caller.role, "pas-submit", "refused", outcome="malformed Bundle",
                           status=err.status, caller_name=caller.name)
            return JSONResponse(pas.operation_outcome(err.problems), status_code=err.status, media_type=FHIR_JSON)
        member_id, known = pas.match_member(req, lambda ids: s.scorer.index.known(ids))
        now = utcnow()
        new = NewCase(member_id=member_id, service_type=req.service_type, urgency=req.urgency, received_time=now,
                      codes=req.codes, diagnoses=req.diagnoses, requesting_provider=req.requesting_provider,
                      source="pas", source_reference=req.claim_identifier, member_known=known)
        case = store.create(new, _actor(caller), now)
        changed(request, caller, "pas-submit", "created", case, source="pas", member_known=known)
        log.info("pas-submit: 1 case filed (%s)", req.urgency)
        return JSONResponse(pas.claim_response_bundle(req, case, now), media_type=FHIR_JSON)

    # ------------------------------------------------------------------ the live queue
    @router.get("/review-queue", response_model=LiveQueueResponse, responses=GET_ERRORS)  # assignee: null, not absent
    def live_review_queue(request: Request, caller: Annotated[Caller, Depends(authorized("review-queue"))],
                          status: Annotated[list[str] | None, Query(description="new, in_review, "
                                                                    "pended_for_information")] = None,
                          service_type: Annotated[ServiceType | None, Query()] = None,
                          urgency: Annotated[Urgency | None, Query()] = None,
                          assignee: Annotated[str | None, Query(max_length=128)] = None,
                          now: Annotated[dt.datetime | None, Query(description="ISO 8601; default: now")] = None,
                          minutes_per_case: Annotated[float, Query(gt=0, le=480)] = 30.0):
        """The open cases of the case store in working order (overdue and unreachable deadlines first, then
        deadline pressure first and risk second), each with the member's risks and reasons, deadline, hours
        left, status and who holds it."""
        s, store = _state(request), _cases(request)
        wanted = status or list(OPEN_STATUSES)
        bad = [x for x in wanted if x not in OPEN_STATUSES]
        if bad:
            raise HTTPException(422, {"error": "invalid request", "details": [
                {"field": "query.status", "message": f"{bad[0]!r}: the queue holds {', '.join(OPEN_STATUSES)}"}]})
        at = _naive_utc(now) if now else utcnow()
        queued = live_queue(store, s.scorer, wanted, service_type, urgency, assignee, at, minutes_per_case)
        for q in queued:
            q["flags"] = (([] if q["member_known"] else ["unknown member: no scores"])
                          + (["escalated to a physician"] if q["escalated"] else []))
        if queued:
            audit_scores(s, caller, "review-queue", [dict(r, member_id=q["member_id"], model=name)
                                                     for q in queued for name, r in q["risks"].items()])
        log.info("review-queue (live): %d case(s)", len(queued))
        return {"generated_at": at, "cases": queued}

    # ------------------------------------------------------------------ a case
    @router.get("/review-requests/{request_id}", response_model=CaseDetail, responses=GET_ERRORS)
    def get_review_request(request_id: RequestId, request: Request,
                           caller: Annotated[Caller, Depends(authorized("review-case"))]):
        """The case with its history: every change (who, when, what, why), notes, determinations, appeals and
        deadline extensions."""
        try:
            case = _cases(request).get(request_id)
        except CaseError as err:
            raise fail(request, caller, "review-case", err) from None
        _state(request).audit.record(caller.token_id, caller.role, "review-case", "lookup",
                                     member_id=case["member_id"], caller_name=caller.name, request_id=request_id)
        return case

    def work(endpoint: str, action: str, run: Callable[[Any, Actor], dict], request: Request, caller: Caller,
             request_id: str, **details) -> dict:
        try:
            case = run(_cases(request), _actor(caller))
        except CaseError as err:
            raise fail(request, caller, endpoint, err) from None
        changed(request, caller, endpoint, action, case, **details)
        return case

    @router.post("/review-requests/{request_id}/claim", response_model=CaseOut, responses=ERRORS)
    def claim(request_id: RequestId, request: Request, caller: Annotated[Caller, Depends(authorized("review-work"))]):
        """Take the case. Of two reviewers claiming at once, one gets it; the other gets 409 naming the holder."""
        return work("review-work", "claimed", lambda st, a: st.claim(request_id, a), request, caller, request_id)

    @router.post("/review-requests/{request_id}/release", response_model=CaseOut, responses=ERRORS)
    def release(request_id: RequestId, request: Request, caller: Annotated[Caller, Depends(authorized("review-case"))],
                body: Annotated[ReleaseIn | None, Body()] = None):
        """Give the case back to the queue (its holder; or an admin, for a holder who is away)."""
        reason = body.reason if body else None
        return work("review-case", "released", lambda st, a: st.release(request_id, a, reason), request, caller,
                    request_id, reason=reason)

    @router.post("/review-requests/{request_id}/notes", response_model=CaseOut, responses=ERRORS)
    def add_note(request_id: RequestId, body: NoteIn, request: Request,
                 caller: Annotated[Caller, Depends(authorized("review-work"))]):
        return work("review-work", "note", lambda st, a: st.add_note(request_id, a, body.text), request, caller,
                    request_id)

    @router.post("/review-requests/{request_id}/determination", response_model=CaseOut, responses=ERRORS)
    def determination(request_id: RequestId, body: DeterminationIn, request: Request,
                      caller: Annotated[Caller, Depends(authorized("review-work"))]):
        """A clinician's determination on a case they hold. A nurse reviewer may approve, pend for information
        (optionally extending the deadline, 14 days at most in all) or escalate to a physician; a physician
        reviewer may approve, deny or pend. A denial needs a reason code and a specific reason in words.
        After the deadline it is recorded and counted late."""
        return work("review-work", "determination",
                    lambda st, a: st.determine(request_id, a, body.decision, body.reason_code, body.reason,
                                               body.extend_days),
                    request, caller, request_id, decision=body.decision, reason_code=body.reason_code,
                    reason=body.reason, extend_days=body.extend_days)

    @router.post("/review-requests/{request_id}/appeal", response_model=CaseOut, responses=ERRORS)
    def appeal(request_id: RequestId, body: AppealIn, request: Request,
               caller: Annotated[Caller, Depends(authorized("review-case"))]):
        """Record an appeal of a decided case: it reopens, with the appeal's deadline (72 hours expedited, 30
        days standard); the next approval or denial, by another reviewer, is the appeal's outcome."""
        return work("review-case", "appealed", lambda st, a: st.appeal(request_id, a, body.reason), request,
                    caller, request_id, reason=body.reason)

    # ------------------------------------------------------------------ metrics
    @router.get("/review-metrics", response_model=ReviewMetrics, responses=GET_ERRORS)
    def metrics(request: Request, caller: Annotated[Caller, Depends(authorized("review-metrics"))],
                year: Annotated[int, Query(ge=2000, le=2100)]):
        """The CMS-0057-F figures of a calendar year for standard and expedited requests, deadline compliance,
        the backlog by age and the risk-tier mix of the open queue (by each model served)."""
        s, store = _state(request), _cases(request)
        now = utcnow()
        out = review_metrics(store, year, now)
        out["risk_tier_mix"] = risk_tier_mix(store, s.scorer)
        return out

    # ------------------------------------------------------------------ outreach contacts
    @router.post("/outreach/contacts", response_model=ContactOut, status_code=201, responses=ERRORS)
    def record_contact(body: ContactIn, request: Request,
                       caller: Annotated[Caller, Depends(authorized("outreach-contacts"))]):
        """Record a contact attempt with a member (channel and outcome). The outreach list's "contacted within N
        days" reads these, not the lists served."""
        try:
            row = _cases(request).record_contact(body.member_id, _actor(caller), _naive_utc(body.time), body.channel,
                                                 body.outcome, body.note)
        except CaseError as err:
            raise fail(request, caller, "outreach-contacts", err, body.member_id) from None
        _state(request).audit.record(caller.token_id, caller.role, "outreach-contacts", "contact",
                                     member_id=body.member_id, caller_name=caller.name, channel=body.channel,
                                     contact_outcome=body.outcome)
        return row

    return router


def _intake(case: dict) -> dict:
    flags = [] if case["member_known"] else ["unknown member: filed without scores"]
    return {**case, "flags": flags}

