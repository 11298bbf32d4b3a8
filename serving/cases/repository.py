"""Working review cases in the case store: intake, claim and release, notes, determinations, appeals, deadline
extensions, outreach contacts. Every change is one transaction that also writes the case's event (who,
when, what, why); the HTTP layer writes the same change to the audit log.

Two reviewers can never hold one case: a claim is one conditional ``UPDATE ... WHERE assignee IS NULL``,
which the database applies to one claimant only (PostgreSQL re-checks the condition after the row lock;
SQLite transactions here begin ``IMMEDIATE``, one writer at a time).

The store never decides: a determination needs a person (an ``Actor`` with a reviewer role), and the
rules of ``umrisk.serving.cases.rules`` say which decisions each role may make.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import pandas as pd
from sqlalchemy import Engine, event, select, update
from sqlalchemy.orm import Session, selectinload, sessionmaker

from umrisk.serving.cases import db, rules
from umrisk.serving.cases.models import (
    CHANNELS,
    CONTACT_OUTCOMES,
    DECISIONS,
    FINAL_DECISIONS,
    OPEN_STATUSES,
    STATUSES,
    Appeal,
    Case,
    Determination,
    Event,
    Extension,
    Note,
    OutreachContact,
    User,
)
from umrisk.serving.prioritize import deadlines

# statuses of the synthetic generator's review_requests that are still to be worked, and what they become
STORE_STATUSES = {"open": "new", "in_review": "new", "pended": "pended_for_information"}


def utcnow() -> dt.datetime:
    """Now as naive UTC, the store's convention."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


@dataclass(frozen=True)
class Actor:
    """Who makes a change: the user name and role of their token (and the token's id, for the record)."""

    name: str
    role: str
    token_id: str | None = None


class CaseError(Exception):
    """A change the rules refuse; ``status`` is the HTTP status it maps to, ``field`` where the problem is."""

    status = 400

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message, self.field = message, field


class NotFound(CaseError):
    status = 404


class Forbidden(CaseError):
    status = 403


class Conflict(CaseError):
    status = 409


class Invalid(CaseError):
    status = 422


@dataclass
class NewCase:
    """A review request as it arrives (JSON or PAS) or as the store holds it."""

    member_id: str
    service_type: str
    urgency: str
    received_time: dt.datetime
    codes: list[dict] = field(default_factory=list)  # [{"code": ..., "system": ... or None}]
    diagnoses: list[dict] = field(default_factory=list)
    requesting_provider: str | None = None
    source: str = "json"
    source_reference: str | None = None
    member_known: bool = True
    request_id: str | None = None


def _iso(t: dt.datetime | None) -> str | None:
    return None if t is None else t.isoformat()


def case_dict(c: Case, now: dt.datetime | None = None) -> dict:
    """A case as the API shows it (times naive UTC, ISO 8601)."""
    out = {"request_id": c.request_id, "member_id": c.member_id, "member_known": c.member_known,
           "service_type": c.service_type, "codes": c.codes or [], "diagnoses": c.diagnoses or [],
           "urgency": c.urgency, "received_time": c.received_time, "deadline": c.deadline,
           "original_deadline": c.original_deadline, "requesting_provider": c.requesting_provider,
           "source": c.source, "status": c.status, "assignee": c.assignee, "assigned_at": c.assigned_at,
           "escalated": c.escalated, "decision": c.decision, "decided_at": c.decided_at}
    if now is not None:
        out["hours_left"] = round((c.deadline - now) / dt.timedelta(hours=1), 2)
    return out


def history_dict(c: Case) -> dict:
    return {
        "events": [{"time": e.time, "actor": e.actor, "role": e.role, "action": e.action, "from_status": e.from_status,
                    "to_status": e.to_status, "reason": e.reason, "detail": e.detail or {}} for e in c.events],
        "notes": [{"time": n.time, "author": n.author, "text": n.text} for n in c.notes],
        "determinations": [{"time": d.time, "reviewer": d.reviewer, "role": d.role, "decision": d.decision,
                            "reason_code": d.reason_code, "reason": d.reason, "deadline": d.deadline, "late": d.late,
                            "on_appeal": d.appeal_id is not None} for d in c.determinations],
        "appeals": [{"filed_at": a.filed_at, "recorded_by": a.recorded_by, "reason": a.reason,
                     "appealed_decision": a.appealed_decision, "deadline": a.deadline, "outcome": a.outcome,
                     "decided_at": a.decided_at} for a in c.appeals],
        "extensions": [{"time": x.time, "granted_by": x.granted_by, "days": x.days, "old_deadline": x.old_deadline,
                        "new_deadline": x.new_deadline, "reason": x.reason} for x in c.extensions],
    }


READ_ONLY = "umrisk_read_only"  # execution option of a connection that only reads (``CaseStore.reading``)


def _immediate_sqlite(engine: Engine) -> None:
    """SQLite: begin every transaction IMMEDIATE (take the write lock at BEGIN), so a transaction that reads
    and then writes never meets a writer that came between (SQLAlchemy's documented pysqlite recipe). A
    connection marked read-only begins DEFERRED: in WAL mode it reads a snapshot without the write lock, so
    it neither waits for a writer (a batch run being written) nor holds one up."""

    @event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn) -> None:
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")


class CaseStore:
    """The case store of one database."""

    def __init__(self, engine: Engine):
        self.engine = engine
        if engine.dialect.name == "sqlite":
            _immediate_sqlite(engine)
        self.session = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def open(cls, url: str, upgrade: bool = True) -> CaseStore:
        """Open the database at ``url``, upgrading its schema in place first (``DatabaseError`` otherwise)."""
        engine = db.engine_for(url)
        if upgrade:
            db.upgrade(engine)
        return cls(engine)

    def dispose(self) -> None:
        self.engine.dispose()

    @contextlib.contextmanager
    def reading(self) -> Iterator[Session]:
        """A session that only reads (one snapshot, no write lock on SQLite): for look-ups on the hot path, such
        as a member's batch score, which must not queue behind a batch run being written or behind each other."""
        with self.engine.connect() as conn:
            conn.execution_options(**{READ_ONLY: True})
            with Session(bind=conn) as s:
                yield s

    @property
    def url(self) -> str:
        return db.shown(str(self.engine.url))

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _user(s: Session, actor: Actor, now: dt.datetime) -> None:
        u = s.scalar(select(User).where(User.name == actor.name))
        if u is None:
            s.add(User(name=actor.name, role=actor.role, created_at=now, last_seen=now))
        else:
            u.role, u.last_seen = actor.role, now

    @staticmethod
    def _case(s: Session, request_id: str, history: bool = False) -> Case:
        q = select(Case).where(Case.request_id == request_id)
        if history:
            q = q.options(selectinload(Case.events), selectinload(Case.notes), selectinload(Case.determinations),
                          selectinload(Case.appeals), selectinload(Case.extensions))
        c = s.scalar(q)
        if c is None:
            raise NotFound(f"no review request {request_id}", "path.request_id")
        return c

    @staticmethod
    def _event(s: Session, c: Case, actor: Actor, now: dt.datetime, action: str, before: str | None,
               reason: str | None = None, **detail) -> None:
        s.add(Event(case_id=c.id, time=now, actor=actor.name, role=actor.role, token_id=actor.token_id,
                    action=action, from_status=before, to_status=c.status, reason=reason, detail=detail))

    @staticmethod
    def _reviewer(actor: Actor, what: str) -> None:
        if actor.role not in rules.REVIEWER_ROLES:
            raise Forbidden(f"role {actor.role} may not {what}: only {' and '.join(rules.REVIEWER_ROLES)} work cases")

    @staticmethod
    def _open_appeal(c: Case) -> Appeal | None:
        return next((a for a in c.appeals if a.outcome is None), None)

    # ------------------------------------------------------------------ intake
    def create(self, new: NewCase, actor: Actor, now: dt.datetime | None = None) -> dict:
        """A new case, status ``new``, with its decision deadline from its urgency; ``Conflict`` when its
        request id is already taken."""
        now = now or utcnow()
        due = deadlines(pd.Series([pd.Timestamp(new.received_time)]), pd.Series([new.urgency])).iloc[0]
        due = due.to_pydatetime()
        request_id = new.request_id or f"RQ{now:%y%m%d}{secrets.token_hex(4).upper()}"
        with self.session.begin() as s:
            if s.scalar(select(Case.id).where(Case.request_id == request_id)) is not None:
                raise Conflict(f"review request {request_id} already exists", "body.request_id")
            c = Case(request_id=request_id, member_id=new.member_id, member_known=new.member_known,
                     service_type=new.service_type, codes=new.codes, diagnoses=new.diagnoses, urgency=new.urgency,
                     received_time=new.received_time, deadline=due, original_deadline=due,
                     requesting_provider=new.requesting_provider, source=new.source,
                     source_reference=new.source_reference, status="new", escalated=False, created_at=now,
                     updated_at=now)
            s.add(c)
            s.flush()
            self._user(s, actor, now)
            self._event(s, c, actor, now, "created", None, source=new.source, member_known=new.member_known)
            return case_dict(c, now)

    def load_backlog(self, requests: pd.DataFrame, actor: Actor, now: dt.datetime | None = None) -> dict[str, int]:
        """Load a store's ``review_requests`` rows still to be worked (open, in review, pended) as cases; rows
        already loaded are left as they are; closed and withdrawn rows (their decisions unknown) are counted,
        not loaded. Return the counts."""
        now = now or utcnow()
        todo = requests[requests["status"].astype(str).isin(list(STORE_STATUSES))].copy()
        counts = {"rows": len(requests), "closed_or_withdrawn": len(requests) - len(todo), "loaded": 0, "already": 0}
        if not len(todo):
            return counts
        todo["received_time"] = pd.to_datetime(todo["received_time"])
        todo["deadline"] = deadlines(todo["received_time"], todo["urgency"].astype(str))
        with self.session.begin() as s:
            have = set(s.scalars(select(Case.request_id)))
            self._user(s, actor, now)
            for r in todo.itertuples(index=False):
                rid = str(r.request_id)
                if rid in have:
                    counts["already"] += 1
                    continue
                have.add(rid)
                code = None if pd.isna(r.code) else str(r.code)
                c = Case(request_id=rid, member_id=str(r.member_id), member_known=True,
                         service_type=str(r.service_type), codes=[{"code": code, "system": None}] if code else [],
                         diagnoses=[], urgency=str(r.urgency), received_time=r.received_time.to_pydatetime(),
                         deadline=r.deadline.to_pydatetime(), original_deadline=r.deadline.to_pydatetime(),
                         source="store", status=STORE_STATUSES[str(r.status)], escalated=False, created_at=now,
                         updated_at=now)
                s.add(c)
                s.flush()
                self._event(s, c, actor, now, "created", None, source="store", store_status=str(r.status))
                counts["loaded"] += 1
        return counts

    # ------------------------------------------------------------------ reading
    def get(self, request_id: str, now: dt.datetime | None = None) -> dict:
        """The case with its history (events, notes, determinations, appeals, extensions)."""
        with self.session() as s:
            c = self._case(s, request_id, history=True)
            return {**case_dict(c, now or utcnow()), "on_appeal": self._open_appeal(c) is not None,
                    "history": history_dict(c)}

    def cases(self, statuses: Iterable[str] = OPEN_STATUSES, service_type: str | None = None,
              urgency: str | None = None, assignee: str | None = None) -> list[dict]:
        """Cases with one of ``statuses`` (by default the open ones), filtered; oldest first."""
        q = select(Case).where(Case.status.in_(list(statuses)))
        if service_type:
            q = q.where(Case.service_type == service_type)
        if urgency:
            q = q.where(Case.urgency == urgency)
        if assignee:
            q = q.where(Case.assignee == assignee)
        with self.session() as s:
            return [case_dict(c) for c in s.scalars(q.order_by(Case.received_time, Case.id))]

    # ------------------------------------------------------------------ working a case
    def claim(self, request_id: str, actor: Actor, now: dt.datetime | None = None) -> dict:
        """Take the case: one conditional UPDATE, so of two reviewers claiming at once exactly one gets it
        (the other gets ``Conflict`` naming who holds it). An escalated case goes to a physician."""
        self._reviewer(actor, "claim a case")
        now = now or utcnow()
        with self.session.begin() as s:
            before = s.scalar(select(Case.status).where(Case.request_id == request_id))
            if before is None:
                raise NotFound(f"no review request {request_id}", "path.request_id")
            cond = [Case.request_id == request_id, Case.assignee.is_(None), Case.status.in_(OPEN_STATUSES)]
            if actor.role != "physician_reviewer":
                cond.append(Case.escalated.is_(False))
            taken = s.execute(update(Case).where(*cond).values(assignee=actor.name, assigned_at=now,
                                                                 status="in_review", updated_at=now)
                              .execution_options(synchronize_session=False))
            c = s.scalar(select(Case).where(Case.request_id == request_id).execution_options(populate_existing=True))
            if taken.rowcount != 1:
                if c.status == "decided":
                    raise Conflict(f"review request {request_id} is decided ({c.decision}); an appeal reopens it")
                if c.assignee == actor.name:
                    raise Conflict(f"review request {request_id} is already yours")
                if c.assignee is not None:
                    raise Conflict(f"review request {request_id} is held by {c.assignee}")
                raise Forbidden(f"review request {request_id} was escalated to a physician reviewer")
            self._user(s, actor, now)
            self._event(s, c, actor, now, "claimed", before)
            return case_dict(c, now)

    def _held(self, s: Session, request_id: str, actor: Actor, what: str) -> Case:
        c = self._case(s, request_id)
        if c.assignee != actor.name:
            holder = f"held by {c.assignee}" if c.assignee else "held by nobody"
            raise Conflict(f"review request {request_id} is {holder}: claim it before you {what}")
        return c

    def release(self, request_id: str, actor: Actor, reason: str | None = None, now: dt.datetime | None = None) -> dict:
        """Give the case back to the queue (its holder, or an admin for a holder who is away)."""
        now = now or utcnow()
        with self.session.begin() as s:
            if actor.role == "admin":
                c = self._case(s, request_id)
                if c.assignee is None:
                    raise Conflict(f"review request {request_id} is held by nobody")
            else:
                self._reviewer(actor, "release a case")
                c = self._held(s, request_id, actor, "release it")
            before, holder = c.status, c.assignee
            c.assignee, c.assigned_at, c.updated_at = None, None, now
            if c.status == "in_review":
                c.status = "new"
            self._user(s, actor, now)
            self._event(s, c, actor, now, "released", before, reason, holder=holder)
            return case_dict(c, now)

    def add_note(self, request_id: str, actor: Actor, text: str, now: dt.datetime | None = None) -> dict:
        self._reviewer(actor, "write case notes")
        now = now or utcnow()
        with self.session.begin() as s:
            c = self._case(s, request_id)
            s.add(Note(case_id=c.id, time=now, author=actor.name, text=text))
            c.updated_at = now
            self._user(s, actor, now)
            self._event(s, c, actor, now, "note", c.status)
            return case_dict(c, now)

    def determine(self, request_id: str, actor: Actor, decision: str, reason_code: str | None = None,
                  reason: str | None = None, extend_days: int | None = None, now: dt.datetime | None = None) -> dict:
        """Record a clinician's determination. Refused: a role that may not make it (``Forbidden``), a denial
        without a reason code and a specific reason, a pend, escalation or denial without a reason, an extension
        beyond the rule (``Invalid``), a case the caller does not hold or that is decided (``Conflict``). After
        the deadline it is recorded and counted late."""
        if decision not in DECISIONS:
            raise Invalid(f"decision must be one of {', '.join(DECISIONS)}", "body.decision")
        if actor.role not in rules.DECISIONS_BY_ROLE:
            raise Forbidden(f"role {actor.role} may not make determinations: a clinician decides (roles "
                            f"{', '.join(rules.DECISIONS_BY_ROLE)})")
        allowed = rules.DECISIONS_BY_ROLE[actor.role]
        if decision not in allowed:
            raise Forbidden(f"a {actor.role} may not make the determination {decision!r} (may: {', '.join(allowed)})")
        if decision == "denied" and not reason_code:
            raise Invalid("a denial needs a reason code", "body.reason_code")
        if decision == "denied" and not rules.specific(reason):
            raise Invalid(f"a denial needs a specific reason in words (at least {rules.DENIAL_REASON_MIN_WORDS} "
                          "words saying why)", "body.reason")
        if decision in rules.NEEDS_REASON and not (reason and reason.strip()):
            raise Invalid(f"{decision} needs a reason: what is missing, or why", "body.reason")
        if extend_days is not None and decision != "pended_for_information":
            raise Invalid("a deadline is extended only when pending for information", "body.extend_days")
        now = now or utcnow()
        with self.session.begin() as s:
            c = self._held(s, request_id, actor, "decide it")
            if c.status not in ("in_review", "pended_for_information"):
                raise Conflict(f"review request {request_id} is {c.status}")
            appeal = self._open_appeal(c)
            if appeal is not None and decision in FINAL_DECISIONS and actor.name == appeal.appealed_reviewer:
                raise Forbidden(f"{actor.name} made the decision appealed: another reviewer decides the appeal")
            deadline = c.deadline
            before = c.status
            if extend_days is not None:
                self._extend(s, c, actor, extend_days, reason or "", now)
            d = Determination(case_id=c.id, time=now, reviewer=actor.name, role=actor.role, decision=decision,
                              reason_code=reason_code, reason=reason, deadline=deadline, late=now > deadline,
                              appeal_id=appeal.id if appeal is not None else None)
            s.add(d)
            if decision in FINAL_DECISIONS:
                c.status, c.decision, c.decided_at = "decided", decision, now
                c.assignee, c.assigned_at, c.escalated = None, None, False
                if appeal is not None:
                    appeal.outcome, appeal.decided_at = decision, now
            elif decision == "pended_for_information":
                c.status = "pended_for_information"
            else:  # escalated: back to the queue, for a physician
                c.status, c.assignee, c.assigned_at, c.escalated = "new", None, None, True
            c.updated_at = now
            self._user(s, actor, now)
            self._event(s, c, actor, now, "determination", before, reason, decision=decision,
                        reason_code=reason_code, late=d.late, on_appeal=appeal is not None,
                        extend_days=extend_days)
            return {**case_dict(c, now), "late": d.late}

    @staticmethod
    def _extend(s: Session, c: Case, actor: Actor, days: int, reason: str, now: dt.datetime) -> None:
        used = sum(x.days for x in c.extensions)
        if days < 1 or used + days > rules.EXTENSION_MAX_DAYS:
            raise Invalid(f"an extension is 1 to {rules.EXTENSION_MAX_DAYS} calendar days in all per case "
                          f"({used} already taken)", "body.extend_days")
        if now > c.deadline:
            raise Invalid("the deadline has passed: an extension is taken before the time frame ends",
                          "body.extend_days")
        new = c.deadline + dt.timedelta(days=days)
        s.add(Extension(case_id=c.id, time=now, granted_by=actor.name, days=days, old_deadline=c.deadline,
                        new_deadline=new, reason=reason))
        c.deadline = new

    def appeal(self, request_id: str, actor: Actor, reason: str, now: dt.datetime | None = None) -> dict:
        """Record an appeal of a decided case: the case reopens (status ``new``, nobody holding it) with the
        appeal's own deadline; the next final determination is the appeal's outcome."""
        if actor.role not in (*rules.REVIEWER_ROLES, "admin"):
            raise Forbidden(f"role {actor.role} may not record appeals")
        now = now or utcnow()
        with self.session.begin() as s:
            c = self._case(s, request_id)
            if c.status != "decided":
                raise Conflict(f"review request {request_id} is {c.status}: only a decided case can be appealed")
            last = s.scalar(select(Determination).where(Determination.case_id == c.id,
                                                        Determination.decision.in_(FINAL_DECISIONS))
                            .order_by(Determination.id.desc()))
            due = now + dt.timedelta(hours=rules.APPEAL_HOURS[c.urgency])
            s.add(Appeal(case_id=c.id, filed_at=now, recorded_by=actor.name, reason=reason,
                         appealed_decision=c.decision, appealed_reviewer=last.reviewer if last else "", deadline=due))
            before = c.status
            c.status, c.deadline, c.updated_at = "new", due, now
            self._user(s, actor, now)
            self._event(s, c, actor, now, "appealed", before, reason, appealed_decision=c.decision)
            return {**case_dict(c, now), "on_appeal": True}

    # ------------------------------------------------------------------ outreach contacts
    def record_contact(self, member_id: str, actor: Actor, time: dt.datetime, channel: str, outcome: str,
                       note: str | None = None, now: dt.datetime | None = None) -> dict:
        if channel not in CHANNELS:
            raise Invalid(f"channel must be one of {', '.join(CHANNELS)}", "body.channel")
        if outcome not in CONTACT_OUTCOMES:
            raise Invalid(f"outcome must be one of {', '.join(CONTACT_OUTCOMES)}", "body.outcome")
        now = now or utcnow()
        if time > now + dt.timedelta(minutes=5):
            raise Invalid("a contact is recorded once made: its time is after now", "body.time")
        with self.session.begin() as s:
            row = OutreachContact(member_id=member_id, time=time, channel=channel, outcome=outcome,
                                  recorded_by=actor.name, recorded_at=now, note=note)
            s.add(row)
            self._user(s, actor, now)
            s.flush()
            return {"id": row.id, "member_id": member_id, "time": time, "channel": channel, "outcome": outcome,
                    "recorded_by": actor.name}

    def contacted_since(self, since: dt.datetime) -> set[str]:
        """Members with a recorded contact attempt at or after ``since`` (naive UTC)."""
        with self.session() as s:
            return set(s.scalars(select(OutreachContact.member_id).where(OutreachContact.time >= since).distinct()))


__all__ = ["STATUSES", "Actor", "CaseError", "CaseStore", "Conflict", "Forbidden", "Invalid", "NewCase", "NotFound"]
