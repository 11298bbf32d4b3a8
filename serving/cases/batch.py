"""Batch scores in the case store: writing a run of ``umrisk score-batch`` and reading what it scored.

A run is written in chunks (each one short transaction, so the service's own writes go on between them) while
its status is ``writing``, then published by one transaction that makes it ``current`` and the current run of
the same model and scoring date ``superseded``. Readers only read ``current`` runs, so they see the old run or
the new one, never half of one. The superseded run's rows are then deleted in chunks; its ``batch_runs`` row
stays as the record of what ran. A run that fails while writing is marked ``failed`` and its rows deleted; one
killed midway is found still ``writing`` by the model's next run a day or more later, and treated alike.

A model's latest run is its current run with the latest scoring date (the newest of two published at once).
A model keeps its ``keep`` latest current runs (one per scoring date: ``KEEP_RUNS`` unless told, a month of
nightly runs); publishing a run ``retires`` the older ones (status ``retired``) and deletes their rows, so a
nightly job does not grow the case store without end. Their ``batch_runs`` rows stay.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field

import pandas as pd
from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from umrisk.serving.cases.db import DatabaseError
from umrisk.serving.cases.models import BatchRun, BatchScore
from umrisk.serving.cases.repository import CaseStore, utcnow

CHUNK = 5000
KEEP_RUNS = 31  # current runs (scoring dates) kept per model: a month of nightly runs
ABANDONED_AFTER = dt.timedelta(days=1)  # a run still writing after this long was killed midway
SCORE_COLUMNS = ("member_id", "as_of", "probability", "tier", "percentile", "reasons", "hospice", "line_of_business")


@dataclass(frozen=True)
class RunInfo:
    """What describes a run: the model version, the store it read (its fingerprint), the scoring date, who or
    what ran it and how, and the members not scorable counted by reason."""

    model: str
    model_version: str
    data_sha256: str
    as_of: dt.datetime
    started_at: dt.datetime
    ran_by: str
    executor: str
    code_version: str
    not_scorable: dict[str, int] = field(default_factory=dict)


def _records(scores: pd.DataFrame, run_id: int, model: str) -> Iterator[dict]:
    for r in scores.reindex(columns=list(SCORE_COLUMNS)).itertuples(index=False):
        yield {"run_id": run_id, "model": model, "member_id": str(r.member_id),
               "as_of": pd.Timestamp(r.as_of).to_pydatetime(), "probability": float(r.probability),
               "tier": str(r.tier), "percentile": float(r.percentile), "reasons": list(r.reasons),
               "hospice": None if pd.isna(r.hospice) else bool(r.hospice),
               "line_of_business": None if pd.isna(r.line_of_business) else str(r.line_of_business)}


def _chunks(records: Iterator[dict], size: int) -> Iterator[list[dict]]:
    batch: list[dict] = []
    for rec in records:
        batch.append(rec)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _delete_rows(engine: Engine, run_id: int, chunk: int) -> None:
    """Delete a run's score rows, ``chunk`` at a time (each its own transaction)."""
    while True:
        with engine.begin() as conn:
            some = select(BatchScore.member_id).where(BatchScore.run_id == run_id).limit(chunk).scalar_subquery()
            gone = conn.execute(delete(BatchScore).where(BatchScore.run_id == run_id,
                                                         BatchScore.member_id.in_(some))).rowcount
        if not gone:
            return


def _publish(conn: Connection, run_id: int, info: RunInfo, rows: int) -> list[int]:
    """Make the run current and the current runs of its model and date superseded; return those."""
    old = conn.scalars(select(BatchRun.id).where(
        BatchRun.model == info.model, BatchRun.as_of == info.as_of, BatchRun.status == "current",
        BatchRun.id != run_id).with_for_update()).all()
    if old:
        conn.execute(update(BatchRun).where(BatchRun.id.in_(old)).values(status="superseded", superseded_by=run_id))
    conn.execute(update(BatchRun).where(BatchRun.id == run_id).values(status="current", finished_at=utcnow(),
                                                                       rows=rows))
    return list(old)


def _retire(conn: Connection, model: str, keep: int) -> list[int]:
    """Mark ``retired`` the model's current runs older than its ``keep`` latest (by scoring date, then id), in
    the publishing transaction; return them, for their rows to be deleted."""
    kept = (select(BatchRun.id).where(BatchRun.model == model, BatchRun.status == "current")
            .order_by(BatchRun.as_of.desc(), BatchRun.id.desc()).limit(keep))
    old = conn.scalars(select(BatchRun.id).where(BatchRun.model == model, BatchRun.status == "current",
                                                 BatchRun.id.not_in(kept.scalar_subquery()))).all()
    if old:
        conn.execute(update(BatchRun).where(BatchRun.id.in_(old)).values(status="retired"))
    return list(old)


def write_run(cases: CaseStore, info: RunInfo, scores: pd.DataFrame, chunk: int = CHUNK,
              keep: int = KEEP_RUNS) -> int:
    """Write a run's scores (one row per member: ``SCORE_COLUMNS``; ``hospice`` and ``line_of_business`` may be
    missing) and publish it, superseding the current run of the same model and scoring date and retiring the
    model's current runs beyond its ``keep`` latest; return the run's id.

    A database error becomes ``DatabaseError`` naming the database and the driver's first line, never the rows
    (SQLAlchemy's own message lists the statement's parameters: member ids and reasons)."""
    if keep < 1:
        raise ValueError(f"keep must be at least 1 (the run being published), not {keep}")
    try:
        return _write_run(cases.engine, info, scores, chunk, keep)
    except SQLAlchemyError as err:
        cause = getattr(err, "orig", None) or err
        first = (str(cause).splitlines() or [""])[0][:300]
        raise DatabaseError(f"case store {cases.url}: cannot write the batch run of {info.model} "
                            f"({cause.__class__.__name__}: {first})") from None


def _write_run(engine: Engine, info: RunInfo, scores: pd.DataFrame, chunk: int, keep: int) -> int:
    with engine.begin() as conn:
        run_id = conn.execute(insert(BatchRun).values(
            model=info.model, model_version=info.model_version, data_sha256=info.data_sha256, as_of=info.as_of,
            status="writing", started_at=info.started_at, rows=0, not_scorable=dict(info.not_scorable),
            ran_by=info.ran_by, executor=info.executor, code_version=info.code_version)).inserted_primary_key[0]
    try:
        for batch in _chunks(_records(scores, run_id, info.model), chunk):
            with engine.begin() as conn:
                conn.execute(insert(BatchScore), batch)
        with engine.begin() as conn:
            old = _publish(conn, run_id, info, len(scores))
            old += _retire(conn, info.model, keep)
    except BaseException:
        with engine.begin() as conn:
            conn.execute(update(BatchRun).where(BatchRun.id == run_id).values(status="failed", finished_at=utcnow()))
        _delete_rows(engine, run_id, chunk)
        raise
    for gone in old + _abandon(engine, info.model, info.started_at - ABANDONED_AFTER):
        _delete_rows(engine, gone, chunk)
    return run_id


def _abandon(engine: Engine, model: str, before: dt.datetime) -> list[int]:
    """Mark ``failed`` the model's runs still ``writing`` that started before ``before`` (a job killed midway
    leaves one; readers never saw it) and return them, for their rows to be deleted."""
    with engine.begin() as conn:
        stale = conn.scalars(select(BatchRun.id).where(BatchRun.model == model, BatchRun.status == "writing",
                                                       BatchRun.started_at < before)).all()
        if stale:
            conn.execute(update(BatchRun).where(BatchRun.id.in_(stale)).values(status="failed"))
    return list(stale)


def _run_dict(r: BatchRun) -> dict:
    return {"run_id": r.id, "model": r.model, "model_version": r.model_version, "data_sha256": r.data_sha256,
            "as_of": r.as_of, "status": r.status, "started_at": r.started_at, "finished_at": r.finished_at,
            "rows": r.rows, "not_scorable": r.not_scorable or {}, "ran_by": r.ran_by, "executor": r.executor,
            "code_version": r.code_version, "superseded_by": r.superseded_by}


def _score_dict(s: BatchScore, r: BatchRun) -> dict:
    """A batch score in the service's shape, with the run's version and store fingerprint."""
    return {"member_id": s.member_id, "model": s.model, "model_version": r.model_version, "as_of": s.as_of,
            "probability": s.probability, "tier": s.tier, "percentile": s.percentile, "reasons": s.reasons or [],
            "hospice": s.hospice, "line_of_business": s.line_of_business, "run_id": r.id, "run_as_of": r.as_of,
            "data_sha256": r.data_sha256}


def _latest_run_id(model: str):
    """The id of the model's latest run, as a subquery: a reader asks for it and the rows in one statement,
    so it reads one snapshot (PostgreSQL's read committed gives each statement its own), never a run whose rows
    are being deleted after it was superseded."""
    return (select(BatchRun.id).where(BatchRun.model == model, BatchRun.status == "current")
            .order_by(BatchRun.as_of.desc(), BatchRun.id.desc()).limit(1).scalar_subquery())


def latest_run(cases: CaseStore, model: str) -> dict | None:
    """The model's latest published run (None: never scored in batch)."""
    with cases.reading() as s:
        r = s.scalar(select(BatchRun).where(BatchRun.id == _latest_run_id(model)))
        return None if r is None else _run_dict(r)


def runs(cases: CaseStore, model: str | None = None) -> list[dict]:
    """Every run (of one model), newest first, whatever its status."""
    q = select(BatchRun).order_by(BatchRun.id.desc())
    if model is not None:
        q = q.where(BatchRun.model == model)
    with cases.reading() as s:
        return [_run_dict(r) for r in s.scalars(q)]


def _scores_of_latest_run(model: str):
    return (select(BatchScore, BatchRun).join(BatchRun, BatchScore.run_id == BatchRun.id)
            .where(BatchScore.run_id == _latest_run_id(model)))


def latest_score(cases: CaseStore, model: str, member_id: str) -> dict | None:
    """The member's score in the model's latest run; None when that run did not score them (not scorable on its
    date, or not in the store it read) or the model has no run. An older run's score is never served for a
    member the latest run left out."""
    with cases.reading() as s:
        hit = s.execute(_scores_of_latest_run(model).where(BatchScore.member_id == member_id)).first()
        return None if hit is None else _score_dict(*hit)


def member_scores(cases: CaseStore, model: str, member_id: str) -> list[dict]:
    """The member's scores in every current run of the model (one per scoring date), latest date first."""
    q = (select(BatchScore, BatchRun).join(BatchRun, BatchScore.run_id == BatchRun.id)
         .where(BatchScore.model == model, BatchScore.member_id == member_id, BatchRun.status == "current")
         .order_by(BatchRun.as_of.desc(), BatchRun.id.desc()))
    with cases.reading() as s:
        return [_score_dict(row, r) for row, r in s.execute(q)]


def top(cases: CaseStore, model: str, n: int) -> list[dict]:
    """The ``n`` highest scores of the model's latest run, highest first (ties by member id)."""
    q = _scores_of_latest_run(model).order_by(BatchScore.probability.desc(), BatchScore.member_id).limit(n)
    with cases.reading() as s:
        return [_score_dict(row, r) for row, r in s.execute(q)]


def run_scores(cases: CaseStore, run_id: int) -> pd.DataFrame:
    """Every row of one run as a frame (``SCORE_COLUMNS``), by member id."""
    q = select(*(getattr(BatchScore, c) for c in SCORE_COLUMNS)).where(BatchScore.run_id == run_id)
    with cases.reading() as s:
        rows = pd.DataFrame(s.execute(q).all(), columns=list(SCORE_COLUMNS))
    return rows.sort_values("member_id", ignore_index=True)
