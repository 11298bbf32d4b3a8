"""Prior-authorization figures of a calendar year, as CMS-0057-F asks payers to publish them, for standard
and expedited requests apart; plus deadline compliance and the backlog by age.

Definitions (one per figure, stated here because the rule leaves the denominators to the payer):

- A request counts in year Y when its *initial* determination (its first approval or denial, not on appeal)
  was made in Y. Pends and escalations are steps, not determinations.
- ``pct_approved``, ``pct_denied``: initial approvals and denials, over the requests decided.
- ``pct_approved_after_appeal``: requests decided in Y whose appeal (any time since) ended in approval, over
  the requests decided.
- ``pct_approved_after_extension``: requests approved at their initial determination after their time frame
  was extended (a recorded extension), over the requests decided.
- ``avg_hours_to_decision``, ``median_hours_to_decision``: from receipt to the initial determination.
- ``pct_on_time``: initial determinations made by the deadline in force (the extended one where the rule
  allowed an extension), over the requests decided; ``late`` counts the others.

The backlog is the open cases at ``now``, by hours since receipt, with those past their deadline counted.
"""

from __future__ import annotations

import datetime as dt
import statistics

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from umrisk.serving.cases.models import FINAL_DECISIONS, OPEN_STATUSES, Case
from umrisk.serving.cases.repository import CaseStore

URGENCIES = ("standard", "expedited")
AGE_BANDS = ((24, "under 24 h"), (72, "24 to 72 h"), (168, "72 h to 7 days"), (None, "over 7 days"))


DEFINITIONS = {
    "requests_decided": "requests whose initial determination (first approval or denial, not on appeal) was "
                        "made in the year",
    "pct_approved": "initial approvals over requests decided",
    "pct_denied": "initial denials over requests decided",
    "pct_approved_after_appeal": "requests decided in the year whose appeal ended in approval, over requests "
                                 "decided",
    "pct_approved_after_extension": "initial approvals made after a recorded extension of the time frame, over "
                                    "requests decided",
    "avg_hours_to_decision": "mean hours from receipt to the initial determination",
    "median_hours_to_decision": "median hours from receipt to the initial determination",
    "pct_on_time": "initial determinations made by the deadline in force (extended where the rule allowed), over "
                   "requests decided",
    "backlog": "open cases now, by hours since receipt; overdue: past their deadline",
}


def _pct(k: int, n: int) -> float | None:
    return round(100.0 * k / n, 1) if n else None


def _figures(rows: list[dict]) -> dict:
    n = len(rows)
    hours = [r["hours"] for r in rows]
    approved = sum(r["decision"] == "approved" for r in rows)
    denied = sum(r["decision"] == "denied" for r in rows)
    after_appeal = sum(r["appeal_approved"] for r in rows)
    after_extension = sum(r["decision"] == "approved" and r["extended"] for r in rows)
    on_time = sum(not r["late"] for r in rows)
    return {"requests_decided": n, "approved": approved, "denied": denied,
            "pct_approved": _pct(approved, n), "pct_denied": _pct(denied, n),
            "approved_after_appeal": after_appeal, "pct_approved_after_appeal": _pct(after_appeal, n),
            "approved_after_extension": after_extension,
            "pct_approved_after_extension": _pct(after_extension, n),
            "avg_hours_to_decision": round(statistics.fmean(hours), 2) if hours else None,
            "median_hours_to_decision": round(statistics.median(hours), 2) if hours else None,
            "on_time": on_time, "late": n - on_time, "pct_on_time": _pct(on_time, n)}


def _band(hours: float) -> str:
    return next(label for limit, label in AGE_BANDS if limit is None or hours < limit)


def review_metrics(store: CaseStore, year: int, now: dt.datetime) -> dict:
    """The year's figures by urgency (and for all requests), and the backlog at ``now`` (naive UTC)."""
    decided: list[dict] = []
    backlog = {u: {"open": 0, "overdue": 0, "on_appeal": 0} | {label: 0 for _, label in AGE_BANDS}
               for u in URGENCIES}
    with store.session() as s:
        q = select(Case).options(selectinload(Case.determinations), selectinload(Case.appeals),
                                 selectinload(Case.extensions))
        for c in s.scalars(q):
            if c.status in OPEN_STATUSES:
                b = backlog[c.urgency]
                b["open"] += 1
                b["on_appeal"] += int(any(a.outcome is None for a in c.appeals))
                b[_band((now - c.received_time) / dt.timedelta(hours=1))] += 1
                b["overdue"] += int(c.deadline < now)
            first = next((d for d in c.determinations if d.decision in FINAL_DECISIONS and d.appeal_id is None), None)
            if first is None or first.time.year != year:
                continue
            decided.append({
                "urgency": c.urgency, "decision": first.decision, "late": first.late,
                "hours": (first.time - c.received_time) / dt.timedelta(hours=1),
                "extended": any(x.time <= first.time for x in c.extensions),
                "appeal_approved": any(a.outcome == "approved" for a in c.appeals),
            })
    by_urgency = {u: _figures([r for r in decided if r["urgency"] == u]) for u in URGENCIES}
    return {"year": year, "as_of": now, "definitions": DEFINITIONS,
            "standard": by_urgency["standard"], "expedited": by_urgency["expedited"], "all": _figures(decided),
            "backlog": backlog}


def risk_tier_mix(store: CaseStore, scorer) -> dict[str, dict[str, int]]:
    """How many open cases' members fall in each risk tier, by each model the scorer serves ("not scored" for a
    member a model cannot score at its date)."""
    from collections import Counter

    ids = [c["member_id"] for c in store.cases(OPEN_STATUSES)]
    if not ids:
        return {name: {} for name in scorer.models}
    return {name: dict(Counter(r.get("tier") or "not scored" for r in scorer.score(name, ids, top=0)))
            for name in scorer.models}
