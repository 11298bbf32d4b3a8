"""The tables of the case store (SQLAlchemy 2 declarative models).

Times are naive UTC, the store's convention (``umrisk.features.schema``): the API converts aware times to UTC
and drops the zone before they reach these tables. The schema changes only through the Alembic migrations
beside this module (``migrations/versions``); a test checks that the models and the migrations agree.

A case's ``status`` is one of ``STATUSES``; ``assignee`` is the user holding it (None: nobody), set only by
the conditional update of :meth:`umrisk.serving.cases.repository.CaseStore.claim`. Every change to a case
is an ``events`` row (who, when, what, why); determinations, notes, appeals and deadline extensions also
have rows of their own.

Batch scores (``umrisk score-batch``) are ``batch_scores`` rows of a ``batch_runs`` row. A run is written in
chunks while its status is ``writing`` and published by one short transaction that makes it ``current`` and
the run it replaces (same model and scoring date) ``superseded``; readers only read ``current`` runs, so they
never see half a run (``umrisk.serving.cases.batch``).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

STATUSES = ("new", "in_review", "pended_for_information", "decided")
OPEN_STATUSES = ("new", "in_review", "pended_for_information")
DECISIONS = ("approved", "denied", "pended_for_information", "escalated")
FINAL_DECISIONS = ("approved", "denied")
CHANNELS = ("phone", "sms", "email", "mail", "in_person", "portal")
CONTACT_OUTCOMES = ("reached", "no_answer", "declined", "enrolled")
RUN_STATUSES = ("writing", "current", "superseded", "retired", "failed")

# constraint names that Alembic and every database agree on
NAMING = {"ix": "ix_%(column_0_label)s", "uq": "uq_%(table_name)s_%(column_0_name)s",
          "ck": "ck_%(table_name)s_%(constraint_name)s",
          "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s", "pk": "pk_%(table_name)s"}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class User(Base):
    """A person who works cases or records contacts: the name and role of their token, kept as first seen
    and updated when the role changes."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    role: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    last_seen: Mapped[dt.datetime] = mapped_column(DateTime)
    # an argon2 hash for signing in to the pages (migration 0002; written by umrisk.serving.ui.users); None: the
    # user signs in with a token only
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)


class Case(Base):
    """A review request and where it stands."""

    __tablename__ = "cases"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64), unique=True)
    member_id: Mapped[str] = mapped_column(String(64), index=True)
    member_known: Mapped[bool] = mapped_column(Boolean, default=True)
    service_type: Mapped[str] = mapped_column(String(32))
    codes: Mapped[list] = mapped_column(JSON, default=list)  # [{"code": ..., "system": ...}]
    diagnoses: Mapped[list] = mapped_column(JSON, default=list)  # [{"code": ..., "system": ...}]
    urgency: Mapped[str] = mapped_column(String(16))
    received_time: Mapped[dt.datetime] = mapped_column(DateTime)
    deadline: Mapped[dt.datetime] = mapped_column(DateTime)  # the deadline in force (after any extension)
    original_deadline: Mapped[dt.datetime] = mapped_column(DateTime)
    requesting_provider: Mapped[str | None] = mapped_column(String(128), nullable=True)
    source: Mapped[str] = mapped_column(String(16))  # json, pas, store
    source_reference: Mapped[str | None] = mapped_column(String(128), nullable=True)  # e.g. the Claim's identifier
    status: Mapped[str] = mapped_column(String(32), index=True)
    assignee: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    assigned_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    escalated: Mapped[bool] = mapped_column(Boolean, default=False)  # waiting for a physician
    decision: Mapped[str | None] = mapped_column(String(32), nullable=True)  # the final decision in force
    decided_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime)

    events: Mapped[list[Event]] = relationship(back_populates="case", order_by="Event.id")
    notes: Mapped[list[Note]] = relationship(back_populates="case", order_by="Note.id")
    determinations: Mapped[list[Determination]] = relationship(back_populates="case", order_by="Determination.id")
    appeals: Mapped[list[Appeal]] = relationship(back_populates="case", order_by="Appeal.id")
    extensions: Mapped[list[Extension]] = relationship(back_populates="case", order_by="Extension.id")


class Event(Base):
    """One change to a case: who (user and token), when, what (``action``, the status before and after) and
    why (``reason``); ``detail`` holds the action's own fields."""

    __tablename__ = "case_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    time: Mapped[dt.datetime] = mapped_column(DateTime)
    actor: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(32))
    token_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    to_status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    detail: Mapped[dict] = mapped_column(JSON, default=dict)
    case: Mapped[Case] = relationship(back_populates="events")


class Note(Base):
    __tablename__ = "case_notes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    time: Mapped[dt.datetime] = mapped_column(DateTime)
    author: Mapped[str] = mapped_column(String(128))
    text: Mapped[str] = mapped_column(Text)
    case: Mapped[Case] = relationship(back_populates="notes")


class Determination(Base):
    """A clinician's determination (one of ``DECISIONS``), with its reason code and reason in words; ``late``
    when made after the deadline in force; ``appeal_id`` when it decides an appeal."""

    __tablename__ = "determinations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    time: Mapped[dt.datetime] = mapped_column(DateTime)
    reviewer: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(32))
    decision: Mapped[str] = mapped_column(String(32))
    reason_code: Mapped[str | None] = mapped_column(String(32), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    deadline: Mapped[dt.datetime] = mapped_column(DateTime)
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    appeal_id: Mapped[int | None] = mapped_column(ForeignKey("appeals.id"), nullable=True)
    case: Mapped[Case] = relationship(back_populates="determinations")


class Appeal(Base):
    """An appeal of a decided case: it reopens the case; its ``outcome`` is the final decision that closes it."""

    __tablename__ = "appeals"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    filed_at: Mapped[dt.datetime] = mapped_column(DateTime)
    recorded_by: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)
    appealed_decision: Mapped[str] = mapped_column(String(32))
    appealed_reviewer: Mapped[str] = mapped_column(String(128))
    deadline: Mapped[dt.datetime] = mapped_column(DateTime)
    outcome: Mapped[str | None] = mapped_column(String(32), nullable=True)
    decided_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    case: Mapped[Case] = relationship(back_populates="appeals")


class Extension(Base):
    """A deadline extension granted while a case is pended for information, within the rule's limit."""

    __tablename__ = "deadline_extensions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    time: Mapped[dt.datetime] = mapped_column(DateTime)
    granted_by: Mapped[str] = mapped_column(String(128))
    days: Mapped[int] = mapped_column(Integer)
    old_deadline: Mapped[dt.datetime] = mapped_column(DateTime)
    new_deadline: Mapped[dt.datetime] = mapped_column(DateTime)
    reason: Mapped[str] = mapped_column(Text)
    case: Mapped[Case] = relationship(back_populates="extensions")


class OutreachContact(Base):
    """A contact attempt with a member, as recorded by a care team: listing a member is not contacting them."""

    __tablename__ = "outreach_contacts"
    __table_args__ = (Index("ix_outreach_contacts_member_time", "member_id", "time"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    member_id: Mapped[str] = mapped_column(String(64))
    time: Mapped[dt.datetime] = mapped_column(DateTime)
    channel: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(16))
    recorded_by: Mapped[str] = mapped_column(String(128))
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)


class BatchRun(Base):
    """One run of ``umrisk score-batch``: the model version, the store it read (``data_sha256``, the training
    lineage's fingerprint), the scoring date, when and by whom (``ran_by``) and how (``executor``) it ran, the
    members scored and those not scorable counted by reason. ``status`` is one of ``RUN_STATUSES``."""

    __tablename__ = "batch_runs"
    __table_args__ = (Index("ix_batch_runs_model_status_as_of", "model", "status", "as_of"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(32))
    data_sha256: Mapped[str] = mapped_column(String(64))
    as_of: Mapped[dt.datetime] = mapped_column(DateTime)  # the scoring date
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[dt.datetime] = mapped_column(DateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)  # when it was published
    rows: Mapped[int] = mapped_column(Integer, default=0)
    not_scorable: Mapped[dict] = mapped_column(JSON, default=dict)  # {reason category: members}
    ran_by: Mapped[str] = mapped_column(String(128))
    executor: Mapped[str] = mapped_column(String(128))  # "single process", "dask LocalCluster, 2 workers", ...
    code_version: Mapped[str] = mapped_column(String(64))
    superseded_by: Mapped[int | None] = mapped_column(ForeignKey("batch_runs.id"), nullable=True)


class BatchScore(Base):
    """A member's score in a batch run, as the service returns it: the calibrated probability, the risk tier,
    the percentile among the run's members and the top reasons (``[{"feature", "text", "value",
    "contribution"}]``). ``as_of`` is the point scored: the run's date, or for a discharge model the index
    discharge. ``model`` repeats the run's so one member's latest score is one index look-up. For a model whose
    task ranks members for outreach, ``hospice`` and ``line_of_business`` are what the outreach list filters on
    at the run's date (None for other models)."""

    __tablename__ = "batch_scores"
    __table_args__ = (Index("ix_batch_scores_model_member", "model", "member_id"),
                      Index("ix_batch_scores_run_probability", "run_id", "probability"))
    run_id: Mapped[int] = mapped_column(ForeignKey("batch_runs.id"), primary_key=True)
    member_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    model: Mapped[str] = mapped_column(String(64))
    as_of: Mapped[dt.datetime] = mapped_column(DateTime)
    probability: Mapped[float] = mapped_column(Float)
    tier: Mapped[str] = mapped_column(String(32))
    percentile: Mapped[float] = mapped_column(Float)
    reasons: Mapped[list] = mapped_column(JSON, default=list)
    hospice: Mapped[bool | None] = mapped_column(Boolean, nullable=True)  # with line_of_business: migration 0004
    line_of_business: Mapped[str | None] = mapped_column(String(16), nullable=True)
