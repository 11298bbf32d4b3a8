"""The pages under ``/ui`` (``serving.service`` mounts ``ui_app`` beside the API; both read one service state).

Server-rendered Jinja2 pages with plain forms; the one script (``static/ui.js``) only ticks the deadline
clocks. Every asset is a file of this package, and the Content-Security-Policy lets a page load nothing from
another host. Sign-in is by user name and password (``umrisk user create``) or by an API token; either gives
a session cookie (``serving.ui.sessions``), and every form carries the session's CSRF token. Roles decide
what each page shows and allows, with the API's permissions (``serving.auth.ALLOWED``) and the case store's
rules. Each page that shows member data is written to the audit log like the API call it stands for (the
same endpoint name, ``via: ui``); application logs get counts, never member ids.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from pathlib import Path
from typing import Annotated
from urllib.parse import quote, urlencode

import pandas as pd
from fastapi import FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from umrisk.serving.auth import ALLOWED, list_tokens
from umrisk.serving.cases.metrics import DEFINITIONS, URGENCIES, review_metrics
from umrisk.serving.cases.models import CHANNELS, CONTACT_OUTCOMES, OPEN_STATUSES
from umrisk.serving.cases.repository import Actor, CaseError, utcnow
from umrisk.serving.cases.rules import DECISIONS_BY_ROLE
from umrisk.serving.schemas import ContactIn, DeterminationIn, NoteIn
from umrisk.serving.ui import charts, pages, users
from umrisk.serving.ui.sessions import COOKIE, LOGIN_COOKIE, SESSION_SECONDS, Session, Signer, key_file, load_key, same
from umrisk.serving.utilization import FIGURES, readmission_spec, records, reference_bands

log = logging.getLogger("umrisk.serving")
HERE = Path(__file__).parent
SERVICE_TYPES = ("inpatient_admission", "procedure", "imaging", "dme", "drug", "other")
LINES_OF_BUSINESS = ("medicare", "medicaid", "commercial", "dual")
DECISION_WORDS = {"approved": "Approve", "pended_for_information": "Pend for information",
                  "escalated": "Escalate to a physician", "denied": "Deny"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")

ui_app = FastAPI(title="umrisk pages", docs_url=None, redoc_url=None, openapi_url=None)
ui_app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters["pct"] = pages.percent
templates.env.filters["words"] = lambda s: str(s or "").replace("_", " ")
templates.env.filters["when"] = lambda t: "" if t is None else f"{t:%Y-%m-%d %H:%M}"
templates.env.filters["day"] = lambda t: "" if t is None else f"{t:%Y-%m-%d}"
templates.env.filters["num"] = lambda v, d=1: "–" if v is None or (isinstance(v, float) and math.isnan(v)) \
    else f"{v:,.{d}f}"


class Headers:
    """Every page: not cached, not sniffed, not framed, nothing loaded from elsewhere (static files may be
    cached)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        static = scope.get("path", "").removeprefix(scope.get("root_path", "")).startswith("/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [(b"x-content-type-options", b"nosniff"), (b"content-security-policy", CSP.encode()),
                         (b"referrer-policy", b"same-origin"), (b"x-frame-options", b"DENY")]
                if not static:
                    extra.append((b"cache-control", b"no-store"))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)


ui_app.add_middleware(Headers)


class SignIn(Exception):
    """No valid session: go to the sign-in page."""


class Refused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


# ---------------------------------------------------------------------- state, sessions, roles
def _state(request: Request):
    return request.app.state.umrisk


def _signer(request: Request) -> Signer:
    signer = getattr(request.app.state, "ui_signer", None)
    if signer is None:
        signer = request.app.state.ui_signer = Signer(load_key(key_file(_state(request).settings.tokens)))
    return signer


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _secure(request: Request) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto", "") == "https"


def _still_valid(request: Request, s: Session) -> bool:
    """The way in still holds: the token exists, unexpired, with the role; or the password and role unchanged."""
    state = _state(request)
    if s.via.startswith("token:"):
        tid = s.via.removeprefix("token:")
        return any(t["id"] == tid and t["role"] == s.role and not t["expired"] for t in list_tokens(
            state.settings.tokens))
    u = users.current(state.cases, s.name)
    return u is not None and u.role == s.role and u.stamp == s.stamp


def _session(request: Request) -> Session | None:
    s = _signer(request).read_session(request.cookies.get(COOKIE))
    return s if s is not None and _still_valid(request, s) else None


def _audit(request: Request, s: Session, endpoint: str, event: str, member_id: str | None = None,
           status: int = 200, outcome: str = "ok", **details) -> None:
    _state(request).audit.record(s.token_id, s.role, endpoint, event, member_id=member_id, status=status,
                                 outcome=outcome, caller_name=s.name, via="ui",
                                 **{k: v for k, v in details.items() if v is not None})


def allowed(role: str, endpoint: str) -> bool:
    return role in ALLOWED[endpoint]


def who(request: Request, endpoint: str) -> Session:
    """The signed-in user if their role may use ``endpoint``; ``SignIn`` or ``Refused`` (audited) otherwise."""
    s = _session(request)
    if s is None:
        raise SignIn()
    if not allowed(s.role, endpoint):
        _audit(request, s, endpoint, "refused", status=403, outcome=f"role {s.role} may not use {endpoint}")
        raise Refused(403, f"Your role ({s.role.replace('_', ' ')}) may not use this page.")
    return s


def checked(request: Request, endpoint: str, csrf: str) -> Session:
    """``who`` for a form: the form's CSRF token must be the session's."""
    s = who(request, endpoint)
    if not same(csrf, s.csrf):
        _audit(request, s, endpoint, "refused", status=403, outcome="CSRF token missing or wrong")
        raise Refused(403, "This form has expired or did not come from this site: reload the page and try again.")
    return s


def _actor(s: Session) -> Actor:
    return Actor(s.name, s.role, s.token_id)


def _nav(s: Session) -> list[tuple[str, str]]:
    items = [("queue", "Review queue", "review-queue"), ("outreach", "Outreach", "outreach"),
             ("dashboard", "Dashboard", "models"), ("models", "Models", "models")]
    return [(path, label) for path, label, endpoint in items if allowed(s.role, endpoint)]


def render(request: Request, name: str, s: Session | None, status: int = 200, **context) -> HTMLResponse:
    return templates.TemplateResponse(request, name, {"session": s, "nav": _nav(s) if s else [],
                                                      "root": request.scope.get("root_path", ""), **context},
                                      status_code=status)


def _go(request: Request, path: str, **query) -> RedirectResponse:
    q = urlencode({k: v for k, v in query.items() if v})
    return RedirectResponse(f"{request.scope.get('root_path', '')}/{path}" + (f"?{q}" if q else ""), 303)


@ui_app.exception_handler(SignIn)
async def _sign_in(request: Request, _exc: SignIn):
    here = request.url.path.removeprefix(request.scope.get("root_path", ""))
    if request.method != "GET":
        return _go(request, "login")
    return _go(request, "login", next=here + (f"?{request.url.query}" if request.url.query else ""))


@ui_app.exception_handler(Refused)
async def _refused(request: Request, exc: Refused):
    return render(request, "error.html", _session(request), status=exc.status, message=exc.message)


# ---------------------------------------------------------------------- sign-in
def _safe_next(nxt: str | None) -> str:
    """Only a path of these pages (never another host)."""
    return nxt if nxt and nxt.startswith("/") and not nxt.startswith("//") and "\\" not in nxt else "/"


@ui_app.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: Annotated[str | None, Query(max_length=500)] = None,
               error: str | None = None, status: int = 200):
    cookie, csrf = _signer(request).login_token()
    resp = render(request, "login.html", None, status=status, csrf=csrf, next=_safe_next(next), error=error)
    resp.set_cookie(LOGIN_COOKIE, cookie, max_age=1800, httponly=True, samesite="strict", secure=_secure(request),
                    path=request.scope.get("root_path", "") or "/")
    return resp


@ui_app.post("/login")
def login(request: Request, csrf: Annotated[str, Form(max_length=200)] = "",
          name: Annotated[str, Form(max_length=128)] = "", password: Annotated[str, Form(max_length=1000)] = "",
          token: Annotated[str, Form(max_length=1000)] = "", next: Annotated[str, Form(max_length=500)] = "/"):
    state, client = _state(request), _client(request)
    vouched = _signer(request).loads(request.cookies.get(LOGIN_COOKIE))
    if vouched is None or not same(csrf, vouched.get("c")):
        return login_page(request, next, "The sign-in form expired: try again.", 403)
    wait = state.auth_throttle.delay(client)
    if wait > 0:
        state.audit.record(None, None, "ui-sign-in", "refused", outcome="throttled", status=429, client=client,
                           via="ui")
        return login_page(request, next, f"Too many failed sign-ins: wait {math.ceil(wait)} s and try again.", 429)
    signer = _signer(request)
    if token.strip():
        caller = state.tokens.check(f"Bearer {token.strip()}")
        made = signer.session(caller.name, caller.role, f"token:{caller.token_id}") if caller else None
    else:
        user = users.check_password(state.cases, name.strip(), password) if name.strip() and password else None
        made = signer.session(user.name, user.role, "password", user.stamp) if user else None
    if made is None:
        state.auth_throttle.record_failure(client)
        state.audit.record(None, None, "ui-sign-in", "refused", outcome="wrong user name, password or token",
                           status=401, client=client, via="ui")
        return login_page(request, next, "Wrong user name and password, or token.", 401)
    cookie, s = made
    _audit(request, s, "ui-sign-in", "signed-in", client=client)
    log.info("ui: a %s signed in", s.role)
    target = _safe_next(next)
    resp = RedirectResponse(request.scope.get("root_path", "") + (target if target != "/" else "/"), 303)
    resp.set_cookie(COOKIE, cookie, max_age=SESSION_SECONDS, httponly=True, samesite="strict",
                    secure=_secure(request), path=request.scope.get("root_path", "") or "/")
    resp.delete_cookie(LOGIN_COOKIE, path=request.scope.get("root_path", "") or "/")
    return resp


@ui_app.post("/logout")
def logout(request: Request, csrf: Annotated[str, Form(max_length=200)] = ""):
    s = _session(request)
    if s is not None and same(csrf, s.csrf):
        _audit(request, s, "ui-sign-in", "signed-out")
    resp = _go(request, "login")
    resp.delete_cookie(COOKIE, path=request.scope.get("root_path", "") or "/")
    return resp


@ui_app.get("/")
def home(request: Request):
    s = _session(request)
    if s is None:
        raise SignIn()
    return _go(request, _nav(s)[0][0] if _nav(s) else "models")


# ---------------------------------------------------------------------- the review queue
@ui_app.get("/queue", response_class=HTMLResponse)
def queue(request: Request, status: Annotated[str | None, Query(max_length=32)] = None,
          service_type: Annotated[str | None, Query(max_length=32)] = None,
          urgency: Annotated[str | None, Query(max_length=16)] = None,
          mine: Annotated[str | None, Query(max_length=4)] = None):
    s = who(request, "review-queue")
    state = _state(request)
    statuses = [status] if status in OPEN_STATUSES else list(OPEN_STATUSES)
    service_type = service_type if service_type in SERVICE_TYPES else None
    urgency = urgency if urgency in URGENCIES else None
    now = utcnow()
    queued = pages.live_queue(state, statuses, service_type, urgency, s.name if mine else None, now)
    shown = pages.scores_shown(queued)
    state.audit.append([{"caller": s.token_id, "caller_name": s.name, "role": s.role, "endpoint": "review-queue",
                         "event": "served", "member_id": r["member_id"], "model": r["model"],
                         "model_version": r["model_version"], "probability": r["probability"], "via": "ui"}
                        for r in shown if r.get("probability") is not None])
    log.info("ui queue: %d case(s)", len(queued))
    return render(request, "queue.html", s, cases=queued, models=list(state.models), now=now,
                  filters={"status": status or "", "service_type": service_type or "", "urgency": urgency or "",
                           "mine": bool(mine)},
                  statuses=OPEN_STATUSES, service_types=SERVICE_TYPES, urgencies=URGENCIES,
                  can_claim=allowed(s.role, "review-work"), message=request.query_params.get("msg"))


def _work(request: Request, s: Session, endpoint: str, action: str, run, **details) -> dict:
    try:
        case = run(_state(request).cases, _actor(s))
    except CaseError as err:
        if err.status == 403:
            _audit(request, s, endpoint, "refused", status=403, outcome=err.message)
        raise Refused(err.status, err.message) from None
    _audit(request, s, endpoint, action, member_id=case["member_id"], request_id=case["request_id"],
           status_after=case["status"], **details)
    return case


def _rid(request_id: str) -> str:
    if not (0 < len(request_id) <= 64) or not all(c.isalnum() or c in "_.:-" for c in request_id):
        raise Refused(404, "No such review request.")
    return request_id


@ui_app.post("/cases/{request_id}/claim")
def claim(request: Request, request_id: str, csrf: Annotated[str, Form(max_length=200)] = "",
          back: Annotated[str, Form(max_length=16)] = "case"):
    s = checked(request, "review-work", csrf)
    rid = _rid(request_id)
    _work(request, s, "review-work", "claimed", lambda st, a: st.claim(rid, a))
    return _go(request, f"cases/{quote(rid)}", msg="claimed") if back == "case" else _go(request, "queue",
                                                                                          msg="claimed")


@ui_app.post("/cases/{request_id}/release")
def release(request: Request, request_id: str, csrf: Annotated[str, Form(max_length=200)] = ""):
    s = checked(request, "review-case", csrf)
    rid = _rid(request_id)
    _work(request, s, "review-case", "released", lambda st, a: st.release(rid, a, None))
    return _go(request, "queue", msg="released")


@ui_app.post("/cases/{request_id}/notes")
def note(request: Request, request_id: str, csrf: Annotated[str, Form(max_length=200)] = "",
         text: Annotated[str, Form(max_length=4000)] = ""):
    s = checked(request, "review-work", csrf)
    rid = _rid(request_id)
    try:
        body = NoteIn(text=text)
    except ValidationError:
        return case_page(request, rid, error="A note needs some text.", status=422)
    _work(request, s, "review-work", "note", lambda st, a: st.add_note(rid, a, body.text))
    return _go(request, f"cases/{quote(rid)}", msg="noted")


@ui_app.post("/cases/{request_id}/determination")
def determination(request: Request, request_id: str, csrf: Annotated[str, Form(max_length=200)] = "",
                  decision: Annotated[str, Form(max_length=32)] = "",
                  reason_code: Annotated[str, Form(max_length=32)] = "",
                  reason: Annotated[str, Form(max_length=4000)] = "",
                  extend_days: Annotated[str, Form(max_length=4)] = ""):
    s = checked(request, "review-work", csrf)
    rid = _rid(request_id)
    try:
        body = DeterminationIn(decision=decision, reason_code=reason_code.strip() or None,
                               reason=reason.strip() or None,
                               extend_days=int(extend_days) if extend_days.strip().isdigit() else None)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors())
        return case_page(request, rid, error=f"Not recorded: {problems}", status=422)
    try:
        _work(request, s, "review-work", "determination",
              lambda st, a: st.determine(rid, a, body.decision, body.reason_code, body.reason, body.extend_days),
              decision=body.decision, reason_code=body.reason_code, reason=body.reason, extend_days=body.extend_days)
    except Refused as err:
        return case_page(request, rid, error=f"Not recorded: {err.message}", status=err.status)
    return _go(request, "queue", msg=f"recorded: {DECISION_WORDS[body.decision].lower()} ({rid})")


# ---------------------------------------------------------------------- a case
@ui_app.get("/cases/{request_id}", response_class=HTMLResponse)
def case_page(request: Request, request_id: str, error: str | None = None, status: int = 200):
    s = who(request, "review-case")
    state = _state(request)
    rid = _rid(request_id)
    try:
        case = state.cases.get(rid)
    except CaseError as err:
        raise Refused(err.status, err.message) from None
    member = case["member_id"]
    _audit(request, s, "review-case", "lookup", member_id=member, request_id=rid)
    risks = {}
    if case["member_known"]:
        for name in state.models:
            risks[name] = state.scorer.score(name, [member], top=10)[0]
        state.audit.append([{"caller": s.token_id, "caller_name": s.name, "role": s.role, "endpoint": "review-case",
                             "event": "served", "member_id": member, "model": name,
                             "model_version": r["model_version"], "probability": r["probability"], "via": "ui"}
                            for name, r in risks.items() if r.get("probability") is not None])
    history = state.scorer.index.subset([member]) if case["member_known"] else None
    tl = pages.timeline(history, state.scorer.as_of + pd.Timedelta(days=1)) if history else None
    mine = case["assignee"] == s.name
    decisions = DECISIONS_BY_ROLE.get(s.role, ())
    return render(request, "case.html", s, status=status, case=case, risks=risks, models=state.models,
                  codes=pages.described(case["codes"]), diagnoses=pages.described(case["diagnoses"]),
                  timeline=tl, timeline_svg=charts.timeline(tl) if tl else "",
                  earlier=pages.member_cases(state, member, rid),
                  store_requests=pages.store_requests(history) if history else [],
                  hours_left=pages.hours_left(case["deadline"]), now=utcnow(), mine=mine,
                  can_work=allowed(s.role, "review-work"), decisions=[(d, DECISION_WORDS[d]) for d in decisions],
                  open=case["status"] in OPEN_STATUSES, error=error, message=request.query_params.get("msg"),
                  scoring_date=state.scorer.as_of)


# ---------------------------------------------------------------------- outreach
def _outreach(request: Request, s: Session, model: str | None, lob: str | None, capacity: int) -> dict:
    state = _state(request)
    able = pages.outreach_models(state)
    if not able:
        raise Refused(404, "No model served here ranks members for outreach.")
    model = model if model in able else able[0]
    lob = lob if lob in LINES_OF_BUSINESS else None
    result = state.scorer.outreach(capacity, lob, set(), model)
    state.audit.append([{"caller": s.token_id, "caller_name": s.name, "role": s.role, "endpoint": "outreach",
                         "event": "served", "member_id": m["member_id"], "model": model,
                         "model_version": m["model_version"], "probability": m["probability"], "via": "ui"}
                        for m in result["members"]])
    contacts = pages.last_contacts(state, [m["member_id"] for m in result["members"]])
    for m in result["members"]:
        m["last_contact"] = contacts.get(m["member_id"])
    log.info("ui outreach: capacity %d, %d listed", capacity, len(result["members"]))
    return {**result, "models": able, "lob": lob or "", "capacity": capacity}


Capacity = Annotated[int, Query(ge=1, le=1000)]


@ui_app.get("/outreach", response_class=HTMLResponse)
def outreach(request: Request, model: Annotated[str | None, Query(max_length=64)] = None,
             lob: Annotated[str | None, Query(max_length=16)] = None, capacity: Capacity = 25):
    s = who(request, "outreach")
    plan = _outreach(request, s, model, lob, capacity)
    return render(request, "outreach.html", s, plan=plan, lines=LINES_OF_BUSINESS, channels=CHANNELS,
                  outcomes=CONTACT_OUTCOMES, can_contact=allowed(s.role, "outreach-contacts"),
                  query=urlencode({"model": plan["model"], "lob": plan["lob"], "capacity": capacity}),
                  message=request.query_params.get("msg"))


@ui_app.get("/outreach.csv")
def outreach_csv(request: Request, model: Annotated[str | None, Query(max_length=64)] = None,
                 lob: Annotated[str | None, Query(max_length=16)] = None, capacity: Capacity = 25):
    s = who(request, "outreach")
    plan = _outreach(request, s, model, lob, capacity)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["rank", "member_id", "line_of_business", "probability", "tier", "percentile", "reasons",
                "last_contact", "last_contact_outcome"])
    for m in plan["members"]:
        c = m["last_contact"] or {}
        w.writerow([m["rank"], m["member_id"], m["line_of_business"], m["probability"], m["tier"], m["percentile"],
                    "; ".join(r["text"] for r in m["reasons"]), c.get("time", ""), c.get("outcome", "")])
    return Response(buf.getvalue(), media_type="text/csv", headers={
        "Content-Disposition": f'attachment; filename="outreach-{plan["model"]}-{plan["as_of"]:%Y-%m-%d}.csv"'})


@ui_app.post("/outreach/contacts")
def record_contact(request: Request, csrf: Annotated[str, Form(max_length=200)] = "",
                   member_id: Annotated[str, Form(max_length=64)] = "",
                   channel: Annotated[str, Form(max_length=16)] = "",
                   outcome: Annotated[str, Form(max_length=16)] = "", note: Annotated[str, Form(max_length=1000)] = "",
                   back: Annotated[str, Form(max_length=300)] = ""):
    s = checked(request, "outreach-contacts", csrf)
    try:
        body = ContactIn(member_id=member_id, time=utcnow().isoformat(), channel=channel, outcome=outcome,
                         note=note.strip() or None)
    except ValidationError as err:
        raise Refused(422, "Not recorded: " + "; ".join(f"{e['loc'][-1]}: {e['msg']}" for e in err.errors())) \
            from None
    try:
        _state(request).cases.record_contact(body.member_id, _actor(s), body.time.replace(tzinfo=None), body.channel,
                                             body.outcome, body.note)
    except CaseError as err:
        raise Refused(err.status, err.message) from None
    _audit(request, s, "outreach-contacts", "contact", member_id=body.member_id, channel=body.channel,
           contact_outcome=body.outcome)
    query = back if back.startswith("model=") else ""
    return RedirectResponse(f"{request.scope.get('root_path', '')}/outreach?{query}&msg=contact+recorded", 303)


# ---------------------------------------------------------------------- the dashboard
def utilization_table(request: Request) -> list[dict]:
    """The utilization figures, computed once per service (the history store does not change while it runs)."""
    cached = getattr(request.app.state, "ui_utilization", None)
    if cached is None:
        state = _state(request)
        spec = readmission_spec([m.spec for m in state.models.values()])
        cached = request.app.state.ui_utilization = records(state.scorer.utilization(spec))
    return cached


@ui_app.get("/dashboard", response_class=HTMLResponse)
def dashboard(request: Request, lob: Annotated[str | None, Query(max_length=16)] = None,
              year: Annotated[int | None, Query(ge=2000, le=2100)] = None):
    s = who(request, "models")
    state = _state(request)
    rows = utilization_table(request)
    lob = lob if lob in LINES_OF_BUSINESS else "all"
    mine = [r for r in rows if r["line_of_business"] == lob]
    months = [r["month"] for r in mine]
    bands = reference_bands()
    charts_ = [{"key": k, "label": label, "unit": unit, "band": bands.get((k, lob)),
                "svg": charts.line(label + (f" ({unit})" if unit else ""), months, [r[k] for r in mine],
                                   bands.get((k, lob)))}
               for k, (label, unit, _) in FIGURES.items() if k != "member_months"]
    now = utcnow()
    year = year or now.year
    metrics = review_metrics(state.cases, year, now) if allowed(s.role, "review-metrics") else None
    if metrics is not None:
        _audit(request, s, "review-metrics", "served-metrics", year=year)
    return render(request, "dashboard.html", s, rows=mine, charts=charts_, figures=FIGURES, lob=lob,
                  lines=LINES_OF_BUSINESS, metrics=metrics, year=year, urgencies=(*URGENCIES, "all"),
                  definitions=DEFINITIONS, scoring_date=state.scorer.as_of)


# ---------------------------------------------------------------------- models
@ui_app.get("/models", response_class=HTMLResponse)
def models_page(request: Request):
    s = who(request, "models")
    state = _state(request)
    served = []
    for name, m in state.models.items():
        try:
            info = pages.model_card(name, m.version)
        except Exception as err:  # noqa: BLE001 - the page still shows what the service loaded
            log.warning("ui models: no card for %s v%s (%s)", name, m.version, type(err).__name__)
            info = {"card": {}, "fingerprint": {}, "tags": {}, "run_id": None}
        served.append({"name": name, "version": m.version, "trained_from": m.trained_from,
                       "trained_to": m.trained_to, "metrics": m.metrics,
                       "tiers": m.spec.model.model_dump()["tiers"], **info})
    return render(request, "models.html", s, served=served, scoring_date=state.scorer.as_of)
