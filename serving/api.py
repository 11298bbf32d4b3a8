"""The HTTP API (versioned under ``/v1``): scores with reasons, the review queue, outreach, models.

Every call is authenticated (bearer token with a role) and every score served is written to the audit
log. Request bodies are strict pydantic types with size limits; errors are 4xx with the field path.
Application logs carry counts and timings, never member identifiers or clinical values.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
import uuid
from typing import Annotated

import pandas as pd
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from umrisk.features.schema import TABLES, conform
from umrisk.serving.auth import ALLOWED, Caller
from umrisk.serving.schemas import (
    OutreachRequest,
    OutreachResponse,
    ReviewQueueRequest,
    ReviewQueueResponse,
    ScoreRequest,
    ScoreResponse,
)
from umrisk.serving.state import ServiceState

log = logging.getLogger("umrisk.serving")
SCORES = Counter("umrisk_scores_total", "Member scores served", ["endpoint", "model"])
LATENCY = Histogram("umrisk_request_seconds", "Time to answer a request", ["endpoint"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
DENIED = Counter("umrisk_auth_failures_total", "Requests refused by authentication or role", ["status"])


class BodyLimit:
    """Refuses request bodies over ``limit`` bytes with 413, counting what arrives (chunked bodies too)."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        served = getattr(scope["app"].state, "umrisk", None) if "app" in scope else None
        limit = served.settings.max_body_bytes if served else self.limit  # the configured limit, once started
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await _too_large(send, limit)
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await _too_large(send, limit)


class _TooLarge(Exception):
    pass


async def _too_large(send: Send, limit: int) -> None:
    body = f'{{"error":"request body over the limit of {limit} bytes"}}'.encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """Outermost: an unexpected error becomes a 500 with a reference, and the log gets the route and the
    exception type only, never its message (which could quote a member's data)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except Exception as exc:  # noqa: BLE001 - the point is to catch everything
            reference = uuid.uuid4().hex[:12]
            log.error("internal error %s on %s %s: %s", reference, scope.get("method"), scope.get("path"),
                      type(exc).__name__)
            if not started:
                body = json.dumps({"error": "internal error", "reference": reference}).encode()
                await send({"type": "http.response.start", "status": 500,
                            "headers": [(b"content-type", b"application/json")]})
                await send({"type": "http.response.body", "body": body})


app = FastAPI(title="umrisk", version="1", summary="Admission and readmission risk that ranks and explains; "
              "a clinician decides.", docs_url="/docs", openapi_url="/openapi.json")
app.add_middleware(BodyLimit, limit=2_000_000)
app.add_middleware(Guard)  # added last, so it wraps everything, Starlette's error middleware included


@app.exception_handler(RequestValidationError)
async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        e = next(e for e in errors if e.get("type") == "json_invalid")
        return JSONResponse({"error": "malformed JSON", "details": [
            {"field": "body", "message": f"{e.get('msg')} (at character {e.get('loc', [None, '?'])[-1]})"}]},
            status_code=400)
    details = [{"field": ".".join(str(p) for p in e.get("loc", ())), "message": e.get("msg", "")} for e in errors]
    return JSONResponse({"error": "invalid request", "details": details}, status_code=422)


@app.exception_handler(HTTPException)
async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    return JSONResponse(exc.detail if isinstance(exc.detail, dict) else {"error": exc.detail},
                        status_code=exc.status_code, headers=exc.headers)


def state(request: Request) -> ServiceState:
    return request.app.state.umrisk


def authorized(endpoint: str):
    """A dependency: 401 without a valid bearer token, 403 when the caller's role may not use ``endpoint``."""

    def check(request: Request) -> Caller:
        caller = state(request).tokens.check(request.headers.get("authorization"))
        if caller is None:
            DENIED.labels("401").inc()
            raise HTTPException(401, {"error": "missing or invalid bearer token"},
                                headers={"WWW-Authenticate": "Bearer"})
        if caller.role not in ALLOWED[endpoint]:
            DENIED.labels("403").inc()
            raise HTTPException(403, {"error": f"role {caller.role} may not use {endpoint}"})
        return caller

    return check


def _audit(s: ServiceState, caller: Caller, endpoint: str, scores: list[dict]) -> None:
    s.audit.append([{"caller": caller.token_id, "caller_name": caller.name, "role": caller.role,
                     "endpoint": endpoint, "member_id": r["member_id"], "model": r["model"],
                     "model_version": r["model_version"], "probability": r["probability"]}
                    for r in scores if r.get("probability") is not None])
    for r in scores:
        if r.get("probability") is not None:
            SCORES.labels(endpoint, r["model"]).inc()


def _history_store(history) -> dict[str, pd.DataFrame]:
    """An inline history as a store: every canonical table, conformed as a Parquet read would give it."""
    rows = history.model_dump()
    return {name: conform(pd.DataFrame(rows.get(name) or [], columns=TABLES[name].names), name)
            for name in TABLES}


@app.post("/score", response_model=ScoreResponse, response_model_exclude_none=True)
def score(body: ScoreRequest, request: Request, caller: Annotated[Caller, Depends(authorized("score"))]):
    """Calibrated probability, tier, percentile and top reasons for member ids (or one inline history).

    An unknown member is an error entry for that member, not a failure of the batch."""
    s = state(request)
    start = time.perf_counter()
    if body.member_ids is not None and len(body.member_ids) > s.settings.max_batch:
        raise HTTPException(422, {"error": "invalid request", "details": [
            {"field": "body.member_ids", "message": f"at most {s.settings.max_batch} member ids per request "
                                                    f"(got {len(body.member_ids)})"}]})
    as_of = pd.Timestamp(body.as_of) if body.as_of else None
    if body.history is not None:
        scores = s.scorer.score_history(body.model, _history_store(body.history), as_of, body.top_reasons)
    else:
        scores = s.scorer.score(body.model, body.member_ids, as_of, body.top_reasons)
    _audit(s, caller, "score", scores)
    LATENCY.labels("score").observe(time.perf_counter() - start)
    log.info("score: %d member(s), %d scored, model %s, %.1f ms", len(scores),
             sum(r.get("probability") is not None for r in scores), body.model, 1000 * (time.perf_counter() - start))
    return {"scores": scores}


@app.post("/review-queue", response_model=ReviewQueueResponse, response_model_exclude_none=True)
def review_queue(body: ReviewQueueRequest, request: Request,
                 caller: Annotated[Caller, Depends(authorized("review-queue"))]):
    """Open review requests (from the store, or in the body) in working order, each with its deadline,
    hours left, the member's risks with reasons and a suggested next step. Deadline pressure first, risk second."""
    s = state(request)
    start = time.perf_counter()
    now = pd.Timestamp(body.now) if body.now else pd.Timestamp.now(tz="UTC").tz_localize(None)
    if now.tzinfo is not None:
        now = now.tz_convert("UTC").tz_localize(None)
    if body.cases is not None:
        cases = pd.DataFrame([c.model_dump() for c in body.cases])
        cases["received_time"] = pd.to_datetime(cases["received_time"], utc=True).dt.tz_localize(None)
    else:
        cases = s.scorer.open_cases()
    queued = s.scorer.review_queue(cases, now, body.minutes_per_case) if len(cases) else []
    _audit(s, caller, "review-queue", [dict(r, member_id=q["member_id"], model=name)
                                       for q in queued for name, r in q["risks"].items()])
    LATENCY.labels("review-queue").observe(time.perf_counter() - start)
    log.info("review-queue: %d case(s), %.1f ms", len(queued), 1000 * (time.perf_counter() - start))
    return {"generated_at": now.to_pydatetime(), "cases": queued}


@app.post("/outreach", response_model=OutreachResponse, responses={200: {"content": {"text/csv": {}}}})
def outreach(body: OutreachRequest, request: Request, caller: Annotated[Caller, Depends(authorized("outreach"))]):
    """The top members by admission risk within capacity, leaving out members who died, are in hospice or in
    hospital, are no longer enrolled, or (optionally) were on an outreach list in the last N days.
    ``format: csv`` returns the same list as CSV for export."""
    s = state(request)
    start = time.perf_counter()
    contacted: set[str] = set()
    if body.exclude_contacted_within_days:
        since = pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=body.exclude_contacted_within_days)
        contacted = {e["member_id"] for e in s.audit.entries("outreach") if pd.Timestamp(e["time"]) >= since}
    result = s.scorer.outreach(body.capacity, body.line_of_business, contacted)
    _audit(s, caller, "outreach", result["members"])
    LATENCY.labels("outreach").observe(time.perf_counter() - start)
    log.info("outreach: capacity %d, %d listed, %.1f ms", body.capacity, len(result["members"]),
             1000 * (time.perf_counter() - start))
    if body.format == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["rank", "member_id", "line_of_business", "probability", "tier", "percentile", "reasons"])
        for m in result["members"]:
            w.writerow([m["rank"], m["member_id"], m["line_of_business"], m["probability"], m["tier"],
                        m["percentile"], "; ".join(r["text"] for r in m["reasons"])])
        return Response(buf.getvalue(), media_type="text/csv",
                        headers={"Content-Disposition": 'attachment; filename="outreach.csv"'})
    return result


@app.get("/models")
def models(request: Request, caller: Annotated[Caller, Depends(authorized("models"))]):
    """The models served: name, pinned version, training period, test metrics."""
    s = state(request)
    return {"scoring_date": s.scorer.as_of.date().isoformat(), "models": [
        {"name": n, "registered_model": f"umrisk-{n}", "version": m.version, "alias": "champion",
         "trained_from": m.trained_from, "trained_to": m.trained_to, "test_metrics": m.metrics,
         "tiers": m.spec.model.model_dump()["tiers"]} for n, m in s.models.items()]}
