"""The case store against SQLite and PostgreSQL: migrations, claims under contention, the rules of a
determination, appeals, extensions, contacts, and loading a store's backlog."""

import datetime as dt
import threading

import pandas as pd
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from tests.service import casedb
from umrisk.serving.cases import db
from umrisk.serving.cases.models import Base
from umrisk.serving.cases.repository import Actor, CaseStore, Conflict, Forbidden, Invalid, NewCase, utcnow

# the fixtures of casedb, by name: every test runs on SQLite and on PostgreSQL
postgres_url, sqlite_url = casedb.postgres_url, casedb.sqlite_url
case_url, case_store = casedb.case_url, casedb.case_store

NINA, NORA = Actor("nina", "nurse_reviewer", "t1"), Actor("nora", "nurse_reviewer", "t2")
PHIL, PIA = Actor("phil", "physician_reviewer", "t3"), Actor("pia", "physician_reviewer", "t4")
DENIAL = "No trial of conservative therapy documented in the last six weeks"


def new_case(store: CaseStore, urgency: str = "standard", hours_ago: float = 1.0) -> str:
    received = utcnow() - dt.timedelta(hours=hours_ago)
    return store.create(NewCase("M00000001", "procedure", urgency, received, [{"code": "27447", "system": None}]),
                        NINA)["request_id"]


def test_the_migrations_build_the_models_schema(case_store):
    with case_store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        assert MigrationContext.configure(conn).get_current_revision() == db.head()


def test_opening_again_upgrades_in_place_and_keeps_the_cases(case_url):
    first = CaseStore.open(case_url)
    rid = new_case(first)
    first.dispose()
    again = CaseStore.open(case_url)
    assert again.get(rid)["status"] == "new"
    assert db.upgrade(again.engine) == (db.head(), db.head())
    again.dispose()


def test_deadlines_from_urgency(case_store):
    for urgency, hours in (("expedited", 72), ("standard", 168)):
        c = case_store.get(new_case(case_store, urgency, hours_ago=0))
        assert c["deadline"] - c["received_time"] == dt.timedelta(hours=hours)


def test_concurrent_claims_give_one_case_to_one_reviewer(case_store):
    reviewers = [Actor(f"rev{i}", "physician_reviewer" if i % 2 else "nurse_reviewer") for i in range(8)]
    for _ in range(10):
        rid = new_case(case_store)
        start = threading.Barrier(len(reviewers))
        won, lost, errors = [], [], []

        def claim(actor, rid=rid, start=start, won=won, lost=lost, errors=errors):
            start.wait()
            try:
                case_store.claim(rid, actor)
                won.append(actor.name)
            except Conflict:
                lost.append(actor.name)
            except Exception as err:  # noqa: BLE001 - any other outcome fails the test below
                errors.append(repr(err))

        threads = [threading.Thread(target=claim, args=(a,)) for a in reviewers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == [] and len(won) == 1 and len(lost) == len(reviewers) - 1
        case = case_store.get(rid)
        assert case["assignee"] == won[0] and case["status"] == "in_review"
        assert [e["actor"] for e in case["history"]["events"] if e["action"] == "claimed"] == won


def test_a_held_case_is_worked_only_by_its_holder(case_store):
    rid = new_case(case_store)
    case_store.claim(rid, NINA)
    with pytest.raises(Conflict, match="held by nina"):
        case_store.claim(rid, NORA)
    with pytest.raises(Conflict, match="claim it"):
        case_store.determine(rid, NORA, "approved")
    with pytest.raises(Conflict, match="claim it"):
        case_store.release(rid, NORA)
    assert case_store.release(rid, NINA, "end of shift")["status"] == "new"
    assert case_store.claim(rid, NORA)["assignee"] == "nora"


def test_role_rules_of_a_determination(case_store):
    rid = new_case(case_store)
    case_store.claim(rid, NINA)
    with pytest.raises(Forbidden, match="may not make the determination 'denied'"):
        case_store.determine(rid, NINA, "denied", "N1", DENIAL)
    for role in ("admin", "outreach"):
        with pytest.raises(Forbidden, match="a clinician decides"):
            case_store.determine(rid, Actor("nina", role), "approved")
    escalated = case_store.determine(rid, NINA, "escalated", reason="Experimental device: needs a physician")
    assert escalated["status"] == "new" and escalated["escalated"] and escalated["assignee"] is None
    with pytest.raises(Forbidden, match="escalated to a physician"):
        case_store.claim(rid, NORA)
    case_store.claim(rid, PHIL)
    with pytest.raises(Invalid) as no_code:
        case_store.determine(rid, PHIL, "denied", None, DENIAL)
    assert no_code.value.field == "body.reason_code"
    with pytest.raises(Invalid) as vague:
        case_store.determine(rid, PHIL, "denied", "N1", "not necessary")
    assert vague.value.field == "body.reason"
    denied = case_store.determine(rid, PHIL, "denied", "N1", DENIAL)
    assert denied["status"] == "decided" and denied["decision"] == "denied" and not denied["late"]
    with pytest.raises(Conflict, match="decided"):
        case_store.claim(rid, PIA)
    d = case_store.get(rid)["history"]["determinations"]
    assert [(x["reviewer"], x["decision"]) for x in d] == [("nina", "escalated"), ("phil", "denied")]
    assert d[1]["reason_code"] == "N1" and d[1]["reason"] == DENIAL


def test_an_extension_only_as_the_rule_allows_and_recorded(case_store):
    rid = new_case(case_store)
    before = case_store.claim(rid, NINA)["deadline"]
    with pytest.raises(Invalid, match="only when pending"):
        case_store.determine(rid, NINA, "approved", extend_days=3)
    pended = case_store.determine(rid, NINA, "pended_for_information", reason="Operative report missing",
                                  extend_days=10)
    assert pended["status"] == "pended_for_information" and pended["deadline"] == before + dt.timedelta(days=10)
    with pytest.raises(Invalid, match="14 calendar days in all"):
        case_store.determine(rid, NINA, "pended_for_information", reason="Still missing", extend_days=5)
    [x] = case_store.get(rid)["history"]["extensions"]
    assert (x["days"], x["granted_by"], x["old_deadline"], x["reason"]) == (10, "nina", before,
                                                                            "Operative report missing")


def test_no_extension_after_the_deadline_and_a_late_decision_counts_late(case_store):
    rid = new_case(case_store, "expedited", hours_ago=80)
    case_store.claim(rid, NINA)
    with pytest.raises(Invalid, match="deadline has passed"):
        case_store.determine(rid, NINA, "pended_for_information", reason="Labs missing", extend_days=2)
    approved = case_store.determine(rid, NINA, "approved")
    assert approved["late"] and approved["status"] == "decided"
    assert case_store.get(rid)["history"]["determinations"][-1]["late"]


def test_an_appeal_reopens_and_is_tracked_to_its_outcome(case_store):
    rid = new_case(case_store)
    case_store.claim(rid, PHIL)
    case_store.determine(rid, PHIL, "denied", "N1", DENIAL)
    with pytest.raises(Conflict, match="only a decided case"):
        case_store.appeal(new_case(case_store), NINA, "too early")
    reopened = case_store.appeal(rid, Actor("ops", "admin"), "Member sent the physical therapy notes")
    assert reopened["status"] == "new" and reopened["on_appeal"] and reopened["decision"] == "denied"
    case_store.claim(rid, PHIL)
    with pytest.raises(Forbidden, match="another reviewer decides the appeal"):
        case_store.determine(rid, PHIL, "approved")
    case_store.release(rid, PHIL)
    case_store.claim(rid, PIA)
    assert case_store.determine(rid, PIA, "approved")["decision"] == "approved"
    c = case_store.get(rid)
    [a] = c["history"]["appeals"]
    assert a["outcome"] == "approved" and a["appealed_decision"] == "denied" and not c["on_appeal"]
    assert [e["action"] for e in c["history"]["events"]] == [
        "created", "claimed", "determination", "appealed", "claimed", "released", "claimed", "determination"]
    assert all(e["actor"] and e["time"] for e in c["history"]["events"])


def test_contacts_are_what_counts_as_contacted(case_store):
    now = utcnow()
    carla = Actor("carla", "outreach")
    case_store.record_contact("M00000007", carla, now - dt.timedelta(days=3), "phone", "no_answer")
    case_store.record_contact("M00000008", carla, now - dt.timedelta(days=40), "phone", "reached")
    assert {"M00000007"} <= case_store.contacted_since(now - dt.timedelta(days=30))
    assert "M00000008" not in case_store.contacted_since(now - dt.timedelta(days=30))
    with pytest.raises(Invalid, match="after now"):
        case_store.record_contact("M00000007", carla, now + dt.timedelta(days=1), "phone", "reached")


def test_loading_a_backlog_takes_the_open_requests_once(case_store):
    tag = utcnow().strftime("%H%M%S%f")
    rows = pd.DataFrame({"request_id": [f"L{tag}{i}" for i in range(5)], "member_id": "M00000003",
                         "received_time": pd.Timestamp("2025-12-30 10:00"), "service_type": "imaging",
                         "code": ["70551", None, "70551", "70551", "70551"],
                         "urgency": ["expedited", "standard", "standard", "standard", "standard"],
                         "status": ["open", "in_review", "pended", "closed", "withdrawn"]})
    admin = Actor("loader", "admin")
    assert case_store.load_backlog(rows, admin) == {"rows": 5, "closed_or_withdrawn": 2, "loaded": 3, "already": 0}
    assert case_store.load_backlog(rows, admin)["already"] == 3
    loaded = {c["request_id"]: c for c in case_store.cases() if c["request_id"].startswith(f"L{tag}")}
    assert {c["status"] for c in loaded.values()} == {"new", "pended_for_information"}
    assert loaded[f"L{tag}0"]["deadline"] == pd.Timestamp("2026-01-02 10:00").to_pydatetime()  # +72 h
    assert loaded[f"L{tag}1"]["codes"] == []
