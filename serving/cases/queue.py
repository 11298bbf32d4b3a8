"""The live review queue: the case store's open cases with the deadline in force, in working order with the
members' risks (``Scorer.review_queue``), each with its status and holder. The API and the pages both show it."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from umrisk.serving.cases.repository import CaseStore


def live_queue(cases: CaseStore, scorer, statuses: list[str], service_type: str | None, urgency: str | None,
               assignee: str | None, now: dt.datetime, minutes_per_case: float = 30.0) -> list[dict]:
    """The cases of ``statuses`` (and the filters given) in working order at ``now``: each queued case of
    ``scorer.review_queue`` with ``status``, ``assignee``, ``escalated``, ``member_known`` and ``codes``."""
    rows = cases.cases(statuses, service_type, urgency, assignee)
    if not rows:
        return []
    frame = pd.DataFrame([{**r, "code": r["codes"][0]["code"] if r["codes"] else None} for r in rows])
    queued = scorer.review_queue(frame, pd.Timestamp(now), minutes_per_case)
    by_id = {r["request_id"]: r for r in rows}
    for q in queued:
        r = by_id[q["request_id"]]
        q.update(status=r["status"], assignee=r["assignee"], escalated=r["escalated"], member_known=r["member_known"],
                 codes=r["codes"])
    return queued
