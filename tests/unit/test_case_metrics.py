"""CMS-0057-F figures on a small scenario whose every figure is computed by hand below."""

import datetime as dt

import pytest

from umrisk.serving.cases.metrics import review_metrics
from umrisk.serving.cases.repository import Actor, CaseStore, NewCase

NURSE = Actor("nina", "nurse_reviewer")
DR_A = Actor("dr-a", "physician_reviewer")
DR_B = Actor("dr-b", "physician_reviewer")


def t(month: int, day: int, hour: int = 0, year: int = 2026) -> dt.datetime:
    """A time as naive UTC, the case store's convention."""
    return dt.datetime(year, month, day, hour, tzinfo=dt.UTC).replace(tzinfo=None)


def case(store: CaseStore, received: dt.datetime, urgency: str) -> str:
    return store.create(NewCase("M1", "procedure", urgency, received), NURSE, received)["request_id"]


def decide(store, rid, who, decision, when, **kw):
    store.claim(rid, who, when)
    denial = "Conservative therapy not tried for six weeks"
    reason = kw.pop("reason", None) or (denial if decision == "denied" else None)
    return store.determine(rid, who, decision, kw.pop("reason_code", "N1" if decision == "denied" else None), reason,
                           now=when, **kw)


@pytest.fixture
def scenario(tmp_path):
    s = CaseStore.open(f"sqlite:///{tmp_path / 'cases.db'}")
    # standard, decided in 2026
    decide(s, case(s, t(2, 1), "standard"), NURSE, "approved", t(2, 2))  # 24 h, on time
    s2 = case(s, t(2, 1), "standard")
    decide(s, s2, DR_A, "denied", t(2, 9))  # 192 h: 24 h past the 7-day deadline
    s.appeal(s2, NURSE, "the member sent the physical therapy notes", t(2, 10))
    decide(s, s2, DR_B, "approved", t(2, 12))  # approved after appeal
    s3 = case(s, t(3, 1), "standard")  # deadline 3-08, extended by 7 days to 3-15
    decide(s, s3, NURSE, "pended_for_information", t(3, 3), reason="imaging report missing", extend_days=7)
    s.determine(s3, NURSE, "approved", now=t(3, 10))  # 216 h, on time by the extended deadline
    decide(s, case(s, t(12, 30, year=2025), "standard"), NURSE, "approved", t(1, 2))  # 72 h, counts in 2026
    decide(s, case(s, t(12, 1, year=2025), "standard"), NURSE, "approved", t(12, 2, year=2025))  # 2025: not counted
    # expedited
    decide(s, case(s, t(4, 1), "expedited"), NURSE, "approved", t(4, 1, 12))  # 12 h
    e2 = case(s, t(4, 1), "expedited")
    decide(s, e2, NURSE, "escalated", t(4, 2), reason="needs a physician")  # a step, not a determination
    decide(s, e2, DR_A, "denied", t(4, 5))  # 96 h: late
    # open at 2026-06-04 00:00
    case(s, t(6, 1), "standard")  # 72 h old, due 6-08
    case(s, t(5, 1), "standard")  # over 7 days, overdue
    case(s, t(6, 3), "expedited")  # 24 h old, due 6-06
    yield s
    s.dispose()


def test_cms_figures_standard(scenario):
    m = review_metrics(scenario, 2026, t(6, 4))["standard"]
    assert m["requests_decided"] == 4
    assert (m["pct_approved"], m["pct_denied"]) == (75.0, 25.0)
    assert m["pct_approved_after_appeal"] == 25.0
    assert m["pct_approved_after_extension"] == 25.0
    assert m["avg_hours_to_decision"] == 126.0  # (24 + 192 + 216 + 72) / 4
    assert m["median_hours_to_decision"] == 132.0  # (72 + 192) / 2
    assert (m["on_time"], m["late"], m["pct_on_time"]) == (3, 1, 75.0)


def test_cms_figures_expedited_and_all(scenario):
    m = review_metrics(scenario, 2026, t(6, 4))
    e = m["expedited"]
    assert (e["requests_decided"], e["pct_approved"], e["pct_denied"]) == (2, 50.0, 50.0)
    assert (e["pct_approved_after_appeal"], e["pct_approved_after_extension"]) == (0.0, 0.0)
    assert (e["avg_hours_to_decision"], e["median_hours_to_decision"]) == (54.0, 54.0)  # 12 and 96 h
    assert (e["late"], e["pct_on_time"]) == (1, 50.0)
    a = m["all"]
    assert (a["requests_decided"], a["approved"], a["denied"]) == (6, 4, 2)
    assert a["avg_hours_to_decision"] == 102.0  # (504 + 108) / 6
    assert a["median_hours_to_decision"] == 84.0  # (72 + 96) / 2


def test_backlog_by_age(scenario):
    b = review_metrics(scenario, 2026, t(6, 4))["backlog"]
    assert b["standard"] == {"open": 2, "overdue": 1, "on_appeal": 0, "under 24 h": 0, "24 to 72 h": 0,
                             "72 h to 7 days": 1, "over 7 days": 1}
    assert b["expedited"]["open"] == 1 and b["expedited"]["24 to 72 h"] == 1 and b["expedited"]["overdue"] == 0


def test_a_year_without_decisions_has_no_percentages(scenario):
    m = review_metrics(scenario, 2024, t(6, 4))["standard"]
    assert m["requests_decided"] == 0 and m["pct_approved"] is None and m["median_hours_to_decision"] is None
