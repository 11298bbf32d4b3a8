"""The HTTP API (versioned under ``/v1``): scores with reasons, the review queue, outreach, models.

Every call is authenticated (bearer token with a role), rate-limited per token, and audited: every score
served, every look-up that discloses whether a member exists or can be scored, and every refused call.
Request bodies are strict pydantic types with size limits; every error, 404 and 405 included, is one JSON
shape (``ErrorResponse``) with the field path. Responses are never cached and never sniffed. Application
logs carry counts and timings, never member identifiers or clinical values. ``/docs`` serves Swagger UI
from assets shipped in a Python package, so it works on a closed network.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import time
import traceback
import uuid
from pathlib import Path
from typing import Annotated

import pandas as pd
from fastapi import Depends, FastAPI, HTTPException, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPBearer
from fastapi.staticfiles import StaticFiles
from prometheus_client import Counter, Gauge, Histogram
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from umrisk.features.cohorts import NoDates
from umrisk.features.schema import TABLES, conform
from umrisk.serving.auth import ALLOWED, Caller
from umrisk.serving.review_api import build_router
from umrisk.serving.schemas import (
    ErrorResponse,
    OutreachRequest,
    OutreachResponse,
    ReviewQueueRequest,
    ReviewQueueResponse,
    ScoreRequest,
    ScoreResponse,
)
from umrisk.serving.scoring import OutOfRange
from umrisk.serving.state import ServiceState

log = logging.getLogger("umrisk.serving")
SCORES = Counter("umrisk_scores_total", "Member scores served", ["endpoint", "model"])
LATENCY = Histogram("umrisk_request_seconds", "Time to answer a request", ["endpoint"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
DENIED = Counter("umrisk_auth_failures_total", "Requests refused by authentication, role or rate", ["status"])
MONITORING = Gauge("umrisk_model_monitoring_alert", "1 while umrisk monitor has an alert open on the version served, "
                   "0 when it found none, -1 before it has run", ["model", "version"])
# Labelled by route template (``/score``), never by the raw path: a flood of random URLs is one label value.
REQUESTS = Counter("umrisk_http_requests_total", "HTTP requests answered by the API", ["route", "method", "status"])
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
UNMATCHED = "(no route)"
STATIC = "/static"
NO_STORE = [(b"cache-control", b"no-store"), (b"x-content-type-options", b"nosniff")]


def _error(status: int, error: str, details: list[dict] | None = None, headers: dict | None = None) -> HTTPException:
    return HTTPException(status, {"error": error, "details": details or []}, headers=headers)


def _invalid(details: list[dict]) -> HTTPException:
    return _error(422, "invalid request", details)


async def _send_error(send: Send, status: int, error: str, extra: dict | None = None) -> None:
    body = json.dumps({"error": error, "details": [], **(extra or {})}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """Refuses request bodies over ``limit`` bytes with 413, declared (content-length) or not (chunked).

    The body is read here, before the app sees it, so a chunked body over the limit is a 413 from this
    middleware rather than an error inside the framework's body parsing (which FastAPI reports as 400)."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        served = getattr(scope["app"].state, "umrisk", None) if "app" in scope else None
        limit = served.settings.max_body_bytes if served else self.limit  # the configured limit, once started
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await _send_error(send, 413, f"request body over the limit of {limit} bytes")
        chunks, seen = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > limit:
                return await _send_error(send, 413, f"request body over the limit of {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class Guard:
    """Outermost: headers that keep member data out of caches and sniffers on every answer; requests counted
    by route template; an unexpected error becomes a 500 with a reference, and the log gets the route and the
    exception type only, never its message (which could quote a member's data)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = False, 500
        static = _relative(scope).startswith(STATIC + "/")
        outer = scope.get("route")

        async def tracking(message: Message) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started, status = True, message["status"]
                extra = NO_STORE[1:] if static else NO_STORE  # static assets may be cached; nothing else
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except Exception as exc:  # noqa: BLE001 - the point is to catch everything
            reference = uuid.uuid4().hex[:12]
            log.error("internal error %s on %s %s: %s at %s", reference, scope.get("method"), _route(scope, outer),
                      type(exc).__name__, _where(exc))
            if not started:
                await _send_error(tracking, 500, "internal error", {"reference": reference})
        finally:
            method = scope.get("method", "")
            REQUESTS.labels(_route(scope, outer), method if method in METHODS else "other", str(status)).inc()


def _relative(scope: Scope) -> str:
    """The request path below the mount point (``/score`` for ``/v1/score``)."""
    path, root = scope.get("path", ""), scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


def _route(scope: Scope, outer: object = None) -> str:
    """The template of this API's route that answered (``/score``), never the raw path. ``outer`` is the route
    that was in the scope before the API saw it (the mount in front of the API): if the API's router matched
    nothing, that is what is still there, and the request counts as one value, ``(no route)``."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if route is not None and route is not outer and isinstance(path, str) else UNMATCHED


ERRORS = {code: {"model": ErrorResponse, "description": text} for code, text in {
    400: "Malformed JSON", 401: "Missing or invalid bearer token", 403: "The caller's role may not use this endpoint",
    413: "Request body over the size limit", 422: "Invalid request: each detail names the field",
    429: "Too many requests (per token) or too many failed authentications (per address): see Retry-After",
    500: "Internal error, with a reference to the service's log"}.items()}
GET_ERRORS = {k: v for k, v in ERRORS.items() if k in (401, 403, 429, 500)}

app = FastAPI(title="umrisk", version="1", summary="Admission and readmission risk that ranks and explains; "
              "a clinician decides.", docs_url=None, redoc_url=None, openapi_url="/openapi.json")
app.add_middleware(BodyLimit, limit=2_000_000)
app.add_middleware(Guard)  # added last, so it wraps everything, Starlette's error middleware included
# Swagger UI's JavaScript and CSS from the fastapi-swagger package: no CDN, so /docs works offline
app.mount(STATIC, StaticFiles(packages=[("fastapi_swagger", "resources")]), name="static")
bearer_scheme = HTTPBearer(auto_error=False, description="A token made with `umrisk token create --role ROLE`")


@app.exception_handler(RequestValidationError)
async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        e = next(e for e in errors if e.get("type") == "json_invalid")
        return JSONResponse({"error": "malformed JSON", "details": [
            {"field": "body", "message": f"{e.get('msg')} (at character {e.get('loc', [None, '?'])[-1]})"}]},
            status_code=400)
    details = [{"field": ".".join(str(p) for p in e.get("loc", ())),
                "message": str(e.get("msg", "")).removeprefix("Value error, ")} for e in errors]
    return JSONResponse({"error": "invalid request", "details": details}, status_code=422)


@app.exception_handler(StarletteHTTPException)
async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Every HTTP error in one shape, Starlette's own 404 and 405 included."""
    if isinstance(exc.detail, dict):
        body = {"details": [], **exc.detail}
    elif exc.status_code == 404:
        body = {"error": "not found", "details": [{"field": "path", "message": "no such route: see /v1/docs"}]}
    elif exc.status_code == 405:
        body = {"error": "method not allowed", "details": [
            {"field": "method", "message": f"{request.method} is not allowed here"}]}
    else:
        body = {"error": str(exc.detail), "details": []}
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


def state(request: Request) -> ServiceState:
    return request.app.state.umrisk


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def authorized(endpoint: str):
    """A dependency: 429 while the caller's address is slowed after failed authentications or its token is
    over its rate, 401 without a valid bearer token, 403 when the caller's role may not use ``endpoint``.
    Every refusal is audited. It runs on the event loop (a token look-up in memory; a refusal's audit entry is
    awaited, not waited for), so an endpoint that needs no thread does not take one for its caller."""

    async def check(request: Request, _: Annotated[object, Security(bearer_scheme)] = None) -> Caller:
        s = state(request)
        client = _client(request)

        async def refuse(status: int, message: str, caller: Caller | None = None, headers: dict | None = None):
            DENIED.labels(str(status)).inc()
            await s.audit.append_async([s.audit.event(caller.token_id if caller else None,
                                                      caller.role if caller else None, endpoint, "refused",
                                                      outcome=message, status=status, client=client)])
            return _error(status, message, headers=headers)

        wait = s.auth_throttle.delay(client)
        if wait > 0:
            raise await refuse(429, "too many failed authentications from this address: wait before trying again",
                               headers={"Retry-After": str(max(1, math.ceil(wait)))})
        caller = s.tokens.check(request.headers.get("authorization"))
        if caller is None:
            s.auth_throttle.record_failure(client)
            raise await refuse(401, "missing or invalid bearer token", headers={"WWW-Authenticate": "Bearer"})
        allowed, retry_after = s.rate_limiter.allow(caller.token_id)
        if not allowed:
            raise await refuse(429, "rate limit of this token exceeded", caller,
                               headers={"Retry-After": str(retry_after)})
        if caller.role not in ALLOWED[endpoint]:
            raise await refuse(403, f"role {caller.role} may not use {endpoint}", caller)
        return caller

    return check


def _audit_entries(s: ServiceState, caller: Caller, endpoint: str, scores: list[dict]) -> list[dict]:
    """Scores served (one entry each), and look-ups that disclosed something without a score: that a member
    is unknown, or known but not scorable (deceased, not enrolled ...)."""
    entries = []
    for r in scores:
        if r.get("probability") is not None:
            entries.append({"caller": caller.token_id, "caller_name": caller.name, "role": caller.role,
                            "endpoint": endpoint, "event": "served", "member_id": r["member_id"],
                            "model": r["model"], "model_version": r["model_version"], "probability": r["probability"]})
            SCORES.labels(endpoint, r["model"]).inc()
        elif r.get("error"):
            entries.append(s.audit.event(caller.token_id, caller.role, endpoint, "lookup", member_id=r["member_id"],
                                         outcome=r.get("not_scorable") or r["error"], model=r.get("model")))
    return entries


def _audit(s: ServiceState, caller: Caller, endpoint: str, scores: list[dict]) -> None:
    """``_audit_entries`` appended in one write, on disk before the answer."""
    s.audit.append(_audit_entries(s, caller, endpoint, scores), checkpointed=False)


def _known_model(s: ServiceState, model: str | None, field: str = "body.model") -> None:
    if model is not None and model not in s.models:
        raise _invalid([{"field": field, "message": f"unknown model {model!r}: this service serves "
                                                    f"{', '.join(sorted(s.models))}"}])


def _where(exc: BaseException) -> str:
    """Where an unexpected error was raised: the innermost frame of umrisk's own code and the innermost frame
    overall, as ``file:line function`` (code locations only, never values, so the log stays free of member
    data)."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "site-packages" not in f.filename and any(
        f"/{d}/" in f.filename for d in ("serving", "features", "training", "umrisk"))]
    shown = [f for f in (ours[-1] if ours else None, frames[-1] if frames else None) if f is not None]
    return " < ".join(dict.fromkeys(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(shown))) or "?"


def _history_store(history) -> dict[str, pd.DataFrame]:
    """An inline history as a store: every canonical table, conformed as a Parquet read would give it."""
    problems = history.problems()
    if problems:
        raise _invalid([{"field": f"body.history.{path}", "message": message} for path, message in problems])
    rows = history.model_dump()
    return {name: conform(pd.DataFrame(rows.get(name) or [], columns=TABLES[name].names), name)
            for name in TABLES}


QUICK_MEMBERS = 20  # members a request may ask for and still be answered on the event loop (a look-up each)


def _scores(s: ServiceState, body: ScoreRequest, as_of: pd.Timestamp | None, quick: bool) -> list[dict] | None:
    """The scores of ``body``; with ``quick``, only when the scorer answers without reading a history
    (``Scorer.answered``), else None. A date outside the data or a history without dates is a 422."""
    try:
        if body.history is not None:
            return None if quick else s.scorer.score_history(body.model, _history_store(body.history), as_of,
                                                             body.top_reasons)
        if quick:
            return s.scorer.answered(body.model, body.member_ids, as_of, body.top_reasons)
        return s.scorer.score(body.model, body.member_ids, as_of, body.top_reasons)
    except OutOfRange as err:
        raise _invalid([{"field": "body.as_of", "message": str(err)}]) from None
    except NoDates as err:
        raise _invalid([{"field": "body.history", "message": str(err)}]) from None


@app.post("/score", response_model=ScoreResponse, response_model_exclude_none=True, responses=ERRORS)
async def score(body: ScoreRequest, request: Request, caller: Annotated[Caller, Depends(authorized("score"))]):
    """Calibrated probability, tier, percentile and top reasons for member ids (or one inline history).

    An unknown member, or one the model's task cannot score at the date, is an error entry for that member
    with the reason, not a failure of the batch."""
    s = state(request)
    start = time.perf_counter()
    _known_model(s, body.model)
    if body.member_ids is not None and len(body.member_ids) > s.settings.max_batch:
        raise _invalid([{"field": "body.member_ids", "message": f"at most {s.settings.max_batch} member ids per "
                                                                f"request (got {len(body.member_ids)})"}])
    as_of = pd.Timestamp(body.as_of) if body.as_of else None
    # the batch run's rows (or the population scored at start-up) on the event loop; anything that reads a
    # history (another date, a member the run left out, an inline history) in a thread, so the loop goes on
    quick = body.history is None and len(body.member_ids or ()) <= QUICK_MEMBERS
    scores = _scores(s, body, as_of, quick=True) if quick else None
    if scores is None:
        scores = await run_in_threadpool(_scores, s, body, as_of, False)
    for r in scores:
        r.setdefault("model", body.model)
    await s.audit.append_async(_audit_entries(s, caller, "score", scores))  # on disk before the answer
    LATENCY.labels("score").observe(time.perf_counter() - start)
    log.debug("score: %d member(s), %d scored, %.1f ms", len(scores),
              sum(r.get("probability") is not None for r in scores), 1000 * (time.perf_counter() - start))
    return {"scores": scores}


def _queue_cases(body: ReviewQueueRequest, now: pd.Timestamp) -> pd.DataFrame:
    """The cases of the body as a frame; 422 for a case received after ``now`` or a request id given twice."""
    problems, first = [], {}
    for i, c in enumerate(body.cases):
        if pd.Timestamp(c.received_time) > now:
            problems.append({"field": f"body.cases.{i}.received_time",
                             "message": f"received after now ({now.isoformat()}): a case is queued once received"})
        if c.request_id in first:
            problems.append({"field": f"body.cases.{i}.request_id",
                             "message": f"request id repeats body.cases.{first[c.request_id]}.request_id"})
        first.setdefault(c.request_id, i)
    if problems:
        raise _invalid(problems)
    cases = pd.DataFrame([c.model_dump() for c in body.cases])
    cases["received_time"] = pd.to_datetime(cases["received_time"])
    return cases


@app.post("/review-queue", response_model=ReviewQueueResponse, response_model_exclude_none=True,
          responses=ERRORS)
def review_queue(body: ReviewQueueRequest, request: Request,
                 caller: Annotated[Caller, Depends(authorized("review-queue"))]):
    """Open review requests (from the store, or in the body) in working order, each with its deadline, hours
    left, why it is where it is, the member's risks with reasons and a suggested next step. Cases that can no
    longer meet their deadline first; then deadline pressure first, risk second."""
    s = state(request)
    start = time.perf_counter()
    now = pd.Timestamp(body.now) if body.now else pd.Timestamp.now(tz="UTC").tz_localize(None)
    if body.cases is not None:
        cases = _queue_cases(body, now)
    else:
        cases = s.scorer.open_cases()
        cases = cases[cases["received_time"] <= now]  # not yet received at `now`
    queued = s.scorer.review_queue(cases, now, body.minutes_per_case) if len(cases) else []
    _audit(s, caller, "review-queue", [dict(r, member_id=q["member_id"], model=name)
                                       for q in queued for name, r in q["risks"].items()])
    LATENCY.labels("review-queue").observe(time.perf_counter() - start)
    log.info("review-queue: %d case(s), %.1f ms", len(queued), 1000 * (time.perf_counter() - start))
    return {"generated_at": now.to_pydatetime(), "cases": queued}


@app.post("/outreach", response_model=OutreachResponse, responses={**ERRORS, 200: {"content": {"text/csv": {}}}})
def outreach(body: OutreachRequest, request: Request, caller: Annotated[Caller, Depends(authorized("outreach"))]):
    """The top members by risk within capacity, leaving out members the model cannot score today (died, not
    enrolled, in hospital), in hospice or (optionally) on an outreach list in the last N days. An empty list
    is an answer, not an error. ``format: csv`` returns the same list as CSV for export."""
    s = state(request)
    start = time.perf_counter()
    _known_model(s, body.model)
    contacted: set[str] = set()
    if body.exclude_contacted_within_days:
        since = pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=body.exclude_contacted_within_days)
        contacted = s.cases.contacted_since(since.tz_localize(None).to_pydatetime())  # recorded contacts, not lists
    try:
        result = s.scorer.outreach(body.capacity, body.line_of_business, contacted, body.model)
    except ValueError as err:  # the model asked for does not rank members at a date
        raise _invalid([{"field": "body.model", "message": str(err)}]) from None
    _audit(s, caller, "outreach", [dict(m, model=result["model"]) for m in result["members"]])
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


def monitoring_status(name: str, version: str) -> dict:
    """What ``umrisk monitor`` last recorded on the version (its tags), read now: the monitor runs while the
    service does. Sets the Prometheus gauge."""
    from mlflow.tracking import MlflowClient

    from umrisk.training.registry import registered_name

    try:
        tags = MlflowClient().get_model_version(registered_name(name), version).tags or {}
    except Exception:  # noqa: BLE001 - the registry may be unreachable; the scores still serve
        tags = {}
    status = tags.get("monitoring_status", "not monitored yet")
    MONITORING.labels(name, version).set({"alert": 1, "ok": 0}.get(status, -1))
    return {"status": status, "alerts": tags.get("monitoring_alerts", ""), "checked": tags.get("monitoring_checked"),
            "run_id": tags.get("monitoring_run_id")}


@app.get("/models", responses=GET_ERRORS)
def models(request: Request, caller: Annotated[Caller, Depends(authorized("models"))]):
    """The models served: name, pinned version, training period, test metrics, the spec registered with the
    version (the one the service scores with), its features with their catalog entries, and the monitoring
    status."""
    s = state(request)
    return {"scoring_date": s.scorer.as_of.date().isoformat(), "models": [
        {"name": n, "registered_model": f"umrisk-{n}", "version": m.version, "alias": "champion",
         "trained_from": m.trained_from, "trained_to": m.trained_to, "test_metrics": m.metrics,
         "tiers": m.spec.model.model_dump()["tiers"], "task": m.spec.task, "spec": m.spec.model_dump(mode="json"),
         "features": [m.catalog.get(f, {"name": f}) for f in m.wrapped.risk_model.features],
         "monitoring": monitoring_status(n, m.version)} for n, m in s.models.items()]}


# The review workflow (intake, the live queue, work on a case, metrics, outreach contacts), before the catch-all.
# Its routes become this app's own (FastAPI's include_router would nest them in one entry, and _route() labels
# metrics by this app's routes).
app.router.routes.extend(build_router(authorized, _audit).routes)


@app.get("/docs", include_in_schema=False)
def docs(request: Request) -> HTMLResponse:
    """Swagger UI from the service's own static files (no CDN)."""
    root = request.scope.get("root_path", "")
    return get_swagger_ui_html(openapi_url=f"{root}{app.openapi_url}", title="umrisk API",
                               swagger_js_url=f"{root}{STATIC}/swagger-ui-bundle.js",
                               swagger_css_url=f"{root}{STATIC}/swagger-ui.css",
                               swagger_favicon_url=f"{root}{STATIC}/favicon-32x32.png")


@app.api_route("/{path:path}", methods=sorted(METHODS), include_in_schema=False)
def no_route(request: Request) -> None:
    """Last route: any other path is this API's 404 (or 405 where another route has the path), in the one
    error shape. BentoML hands a mounted app only the paths one of its routes matches and answers the rest
    itself in plain text; with this route every path under /v1 is the API's to answer."""
    allowed = sorted({m for r in app.router.routes if r is not request.scope.get("route")
                      and r.matches(request.scope)[0] == Match.PARTIAL for m in getattr(r, "methods", None) or ()})
    if allowed:
        raise StarletteHTTPException(405, headers={"Allow": ", ".join(allowed)})
    raise StarletteHTTPException(404)


def openapi() -> dict:
    """The OpenAPI document, with the models this service loaded as the allowed values of ``model``."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
    _common_errors(doc)
    served = getattr(app.state, "umrisk", None)
    if served is None:
        return doc  # not started: no models to name yet, nothing cached
    names = sorted(served.models)
    for schema in ("ScoreRequest", "OutreachRequest"):
        prop = doc.get("components", {}).get("schemas", {}).get(schema, {}).get("properties", {}).get("model")
        if prop is None:
            continue
        target = next((a for a in prop.get("anyOf", []) if a.get("type") == "string"), prop)
        target["enum"] = names
    score = doc.get("components", {}).get("schemas", {}).get("ScoreRequest")
    if score is not None and names:
        score["examples"] = [{"model": names[0], "member_ids": ["M00000001", "M00000002"], "top_reasons": 3}]
    app.openapi_schema = doc
    return doc


app.openapi = openapi


def _common_errors(doc: dict) -> None:
    """Every operation documents the errors the machinery shared by all routes answers, whoever wrote the
    route: 401, 403 and 429 from the bearer-token dependency, 400, 413 and 422 for a request body, 500."""
    ref = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}}
    for item in doc.get("paths", {}).values():
        for op in item.values():
            codes = {500}
            if op.get("security"):
                codes |= {401, 403, 429}
            if op.get("requestBody"):
                codes |= {400, 413, 422}
            for code in sorted(codes):
                op["responses"].setdefault(str(code), {"description": ERRORS[code]["description"], **ref})


def metrics_app() -> ASGIApp:
    """The Prometheus exposition of the service's metrics (every worker's when prometheus_client runs in
    multiprocess mode), for the service to mount at ``/metrics`` in place of BentoML's: BentoML 1.4 labels
    its HTTP metrics with the raw request path (``scope["path"]`` in its traffic-metrics middleware), so
    every random URL would add label values; the metrics here are labelled by route template."""
    from prometheus_client import REGISTRY, CollectorRegistry, make_asgi_app, values
    from prometheus_client.multiprocess import MultiProcessCollector

    if values.ValueClass is values.MutexValue:  # values held in this process (set when prometheus_client loaded)
        return make_asgi_app(REGISTRY)
    registry = CollectorRegistry()  # values in the files of PROMETHEUS_MULTIPROC_DIR, one per worker
    MultiProcessCollector(registry)
    return make_asgi_app(registry)
