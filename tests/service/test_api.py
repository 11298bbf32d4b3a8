"""The HTTP surface in process: roles, scores with reasons, queue, outreach, errors, audit, OpenAPI."""

import json

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.service.conftest import auth
from umrisk.features.store import load_store
from umrisk.serving.api import app
from umrisk.serving.audit import verify
from umrisk.serving.ratelimit import FailedAuthThrottle, RateLimiter
from umrisk.serving.schemas import NextStep

ENDPOINTS = {
    "score": ("post", "/v1/score", {"model": "admission_180d", "member_ids": ["M00000001"]}),
    "review-queue": ("post", "/v1/review-queue", {"now": "2026-01-01T00:00:00"}),
    "outreach": ("post", "/v1/outreach", {"capacity": 5}),
    "models": ("get", "/v1/models", None),
}
EXPECTED = {"reviewer": {"score": 200, "review-queue": 200, "outreach": 403, "models": 200},
            "outreach": {"score": 200, "review-queue": 403, "outreach": 200, "models": 200},
            "admin": {"score": 200, "review-queue": 200, "outreach": 200, "models": 200}}


@pytest.fixture(autouse=True)
def fresh_limits(client):
    """Each test starts with no failed authentications counted and full rate buckets (all requests of the
    in-process client come from one address)."""
    s = app.state.umrisk
    s.auth_throttle, s.rate_limiter = FailedAuthThrottle(), RateLimiter(s.settings.rate_limit)
    yield


def _call(client, endpoint, headers):
    method, path, body = ENDPOINTS[endpoint]
    return client.request(method, path, json=body, headers=headers)


@pytest.mark.parametrize("role", list(EXPECTED))
@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_role_matrix(client, served, role, endpoint):
    assert _call(client, endpoint, auth(served["tokens"][role])).status_code == EXPECTED[role][endpoint]


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_missing_or_bad_token_is_401(client, endpoint):
    assert _call(client, endpoint, {}).status_code == 401
    r = _call(client, endpoint, {"Authorization": "Bearer not-a-token"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"


def _members(client, served, n):
    store = load_store(served["store"])
    alive = store["members"][store["members"]["death_date"].isna()]["member_id"].astype(str)
    return list(alive.iloc[:n])


def test_score_batch_with_reasons_and_an_unknown_member(client, served):
    ids = _members(client, served, 5) + ["NOBODY"]
    r = client.post("/v1/score", json={"model": "admission_180d", "member_ids": ids},
                    headers=auth(served["tokens"]["reviewer"]))
    assert r.status_code == 200
    scores = r.json()["scores"]
    assert [s["member_id"] for s in scores] == ids
    assert scores[-1]["error"] == "unknown member" and "probability" not in scores[-1]
    good = [s for s in scores if "probability" in s]
    assert good and all(0 <= s["probability"] <= 1 and 0 <= s["percentile"] <= 100 for s in good)
    assert all(s["tier"] in ("high", "elevated", "low") and s["model_version"] for s in good)
    reasons = [x for s in good for x in s["reasons"]]
    assert reasons and all(x["contribution"] > 0 and x["text"] for x in reasons)


def test_inline_history_scores_as_the_store_does(client, served):
    """One code path: a member's rows sent inline score exactly as the member looked up in the store."""
    store = load_store(served["store"])
    token = auth(served["tokens"]["reviewer"])
    as_of = "2025-06-01"
    for mid in _members(client, served, 60)[20:]:  # a member the task can score at that date
        by_id = client.post("/v1/score", json={"model": "admission_180d", "member_ids": [mid], "as_of": as_of},
                            headers=token).json()["scores"][0]
        if "probability" in by_id:
            break
    history = {}
    for name in ("members", "enrollment", "encounters", "diagnoses", "procedures", "medications", "labs"):
        df = store[name][store[name]["member_id"].astype(str) == mid].copy()
        for c in df.columns:
            if isinstance(df[c].dtype, pd.CategoricalDtype):
                df[c] = df[c].astype(str)
        rows = json.loads(df.to_json(orient="records", date_format="iso"))
        keep = {"members": ["member_id", "birth_date", "sex", "race_ethnicity", "state", "death_date"]}.get(name)
        history[name] = [{k: v for k, v in row.items() if keep is None or k in keep} for row in rows]
    for m in history["members"]:
        m["birth_date"] = m["birth_date"][:10]
        m["death_date"] = m["death_date"][:10] if m["death_date"] else None
    for e in history["enrollment"]:
        e["start_date"], e["end_date"] = e["start_date"][:10], e["end_date"][:10]
    inline = client.post("/v1/score", json={"model": "admission_180d", "history": history, "as_of": as_of},
                         headers=token)
    assert inline.status_code == 200, inline.text
    assert inline.json()["scores"][0]["probability"] == pytest.approx(by_id["probability"], abs=1e-9)


def test_review_queue_has_deadlines_and_fixed_next_steps(client, served):
    r = client.post("/v1/review-queue", json={"now": "2026-01-01T00:00:00"}, headers=auth(served["tokens"]["reviewer"]))
    cases = r.json()["cases"]
    assert cases and [c["position"] for c in cases] == list(range(1, len(cases) + 1))
    allowed = set(NextStep.__args__)
    for c in cases:
        received, deadline = pd.Timestamp(c["received_time"]), pd.Timestamp(c["deadline"])
        assert deadline - received == pd.Timedelta(hours=72 if c["urgency"] == "expedited" else 168)
        assert c["suggested_next_step"] in allowed
        assert set(c["risks"]) == {"readmission_30d", "admission_180d"}
    text = r.text.lower()
    assert "approved" not in text and "denied" not in text


def test_review_queue_from_the_body(client, served):
    ids = _members(client, served, 3)
    cases = [{"request_id": f"R{i}", "member_id": m, "received_time": "2025-12-30T08:00:00", "service_type": "imaging",
              "code": "70553", "urgency": "expedited" if i == 0 else "standard"} for i, m in enumerate(ids)]
    r = client.post("/v1/review-queue", json={"cases": cases, "now": "2025-12-31T00:00:00"},
                    headers=auth(served["tokens"]["admin"]))
    assert r.status_code == 200 and {c["request_id"] for c in r.json()["cases"]} == {"R0", "R1", "R2"}


def test_outreach_excludes_and_exports_csv(client, served):
    token = auth(served["tokens"]["outreach"])
    r = client.post("/v1/outreach", json={"capacity": 10, "line_of_business": "medicare"}, headers=token).json()
    assert len(r["members"]) == 10 and [m["rank"] for m in r["members"]] == list(range(1, 11))
    probs = [m["probability"] for m in r["members"]]
    assert probs == sorted(probs, reverse=True) and all(m["line_of_business"] == "medicare" for m in r["members"])
    assert r["excluded"]["deceased"] > 0 and r["excluded"]["not enrolled"] > 0
    store = load_store(served["store"])
    dead = set(store["members"].loc[store["members"]["death_date"].notna(), "member_id"].astype(str))
    assert not dead & {m["member_id"] for m in r["members"]}
    _contacted(client, token, [m["member_id"] for m in r["members"]])
    again = client.post("/v1/outreach", json={"capacity": 10, "line_of_business": "medicare",
                                              "exclude_contacted_within_days": 7}, headers=token).json()
    assert not {m["member_id"] for m in again["members"]} & {m["member_id"] for m in r["members"]}
    csv = client.post("/v1/outreach", json={"capacity": 3, "format": "csv"}, headers=token)
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines()[0].startswith("rank,member_id") and len(csv.text.splitlines()) == 4


def _contacted(client, token, member_ids):
    """Record a contact with each member now (what "contacted within N days" reads)."""
    now = pd.Timestamp.now(tz="UTC").tz_localize(None).isoformat(timespec="seconds")
    for mid in member_ids:
        r = client.post("/v1/outreach/contacts", json={"member_id": mid, "time": now, "channel": "phone",
                                                       "outcome": "reached"}, headers=token)
        assert r.status_code == 201, r.text


def test_models_reports_pinned_versions(client, served):
    m = client.get("/v1/models", headers=auth(served["tokens"]["reviewer"])).json()["models"]
    assert {x["name"] for x in m} == {"readmission_30d", "admission_180d"}
    assert all(x["version"] and x["alias"] == "champion" and "auroc" in x["test_metrics"] for x in m)


def test_models_show_the_registered_spec_features_and_monitoring_status(client, served):
    """The contract the service scores with (the spec and features registered with the version) and what the
    monitor last recorded on the version, in the answer and in a Prometheus gauge."""
    from mlflow.tracking import MlflowClient
    from prometheus_client import REGISTRY

    from umrisk.training.registry import configure

    m = {x["name"]: x for x in client.get("/v1/models", headers=auth(served["tokens"]["reviewer"])).json()["models"]}
    adm = m["admission_180d"]
    assert adm["spec"]["name"] == "admission_180d" and adm["task"] == "member_month" == adm["spec"]["task"]
    assert {"age", "n_inpatient_365d"} <= {f["name"] for f in adm["features"]}
    assert all(f.get("description") for f in adm["features"])
    assert adm["monitoring"]["status"] == "not monitored yet"
    configure(served["uri"])
    MlflowClient().set_model_version_tag("umrisk-admission_180d", adm["version"], "monitoring_status", "alert")
    try:
        again = {x["name"]: x for x in client.get("/v1/models", headers=auth(served["tokens"]["reviewer"])).json()[
            "models"]}
        assert again["admission_180d"]["monitoring"]["status"] == "alert"
        value = REGISTRY.get_sample_value("umrisk_model_monitoring_alert",
                                          {"model": "admission_180d", "version": adm["version"]})
        assert value == 1
    finally:
        MlflowClient().delete_model_version_tag("umrisk-admission_180d", adm["version"], "monitoring_status")


@pytest.mark.parametrize(("body", "status", "field"), [
    ('{"model": "admission_180d", "member_ids": ["a"', 400, "body"),
    ('{"model": "nope", "member_ids": ["a"]}', 422, "body.model"),
    ('{"model": "admission_180d", "member_ids": ["a"], "file": "/etc/passwd"}', 422, "body.file"),
    ('{"model": "admission_180d", "member_ids": "M1"}', 422, "body.member_ids"),
    ('{"model": "admission_180d"}', 422, "body"),
    ('{"model": "admission_180d", "member_ids": ["../x y"]}', 422, "body.member_ids.0"),
    ('{"model": "admission_180d", "member_ids": ' + json.dumps([f"M{i}" for i in range(51)]) + "}", 422,
     "body.member_ids"),
    ('{"capacity": 0}', 422, "body.capacity"),
])
def test_bad_input_is_a_4xx_with_the_field(client, served, body, status, field):
    path = "/v1/outreach" if "capacity" in body else "/v1/score"
    token = served["tokens"]["admin"]
    r = client.post(path, content=body, headers={**auth(token), "content-type": "application/json"})
    assert r.status_code == status, r.text
    assert any(d["field"] == field for d in r.json()["details"]), r.json()


def test_body_over_the_limit_is_413(client, served):
    r = client.post("/v1/score", content=b'{"model": "admission_180d", "member_ids": ["' + b"x" * 300_000 + b'"]}',
                    headers={**auth(served["tokens"]["admin"]), "content-type": "application/json"})
    assert r.status_code == 413


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                    | st.text(max_size=20),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.sampled_from(
                        ["model", "member_ids", "history", "as_of", "capacity", "cases", "now", "x"]), c, max_size=5),
                    max_leaves=12))
def test_no_bad_input_gives_a_500(client, served, body):
    for path in ("/v1/score", "/v1/review-queue", "/v1/outreach"):
        r = client.post(path, json=body, headers=auth(served["tokens"]["admin"]))
        assert r.status_code < 500, (path, body, r.text)


def test_every_score_is_audited_and_the_chain_verifies(client, served):
    log = served["settings"].audit
    before = len(log.read_text().splitlines())
    ids = _members(client, served, 7)
    r = client.post("/v1/score", json={"model": "admission_180d", "member_ids": ids},
                    headers=auth(served["tokens"]["reviewer"]))
    scored = [s for s in r.json()["scores"] if "probability" in s]
    refused = [s for s in r.json()["scores"] if "probability" not in s]
    lines = log.read_text().splitlines()
    assert len(lines) - before == len(scored) + len(refused)
    new = [json.loads(x) for x in lines[before:]]
    served_entries = [e for e in new if e["event"] == "served"]
    assert [e["member_id"] for e in served_entries] == [s["member_id"] for s in scored]
    assert all(e["caller"] and e["role"] and e["endpoint"] == "score" and e["model_version"] for e in served_entries)
    # a member not scored still discloses something (unknown, dead, not enrolled ...): a look-up is audited
    assert sorted(e["member_id"] for e in new if e["event"] == "lookup") == sorted(s["member_id"] for s in refused)
    ok, n, _ = verify(log)
    assert ok and n == len(lines)  # tampering is tests/service/test_security.py's


def _enums(node, out):
    if isinstance(node, dict):
        if "enum" in node:
            out.extend(node["enum"])
        for v in node.values():
            _enums(v, out)
    elif isinstance(node, list):
        for v in node:
            _enums(v, out)
    return out


def _refs(node, out):
    if isinstance(node, dict):
        if "$ref" in node:
            out.append(node["$ref"])
        for v in node.values():
            _refs(v, out)
    elif isinstance(node, list):
        for v in node:
            _refs(v, out)
    return out


def _closure(doc, names):
    """The schemas named and every schema they refer to."""
    todo, seen = list(names), set()
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += [r.split("/")[-1] for r in _refs(doc["components"]["schemas"][name], [])]
    return seen


def test_openapi_document(client):
    doc = client.get("/v1/openapi.json").json()
    assert {"/score", "/review-queue", "/outreach", "/models"} <= set(doc["paths"])
    schemas = doc["components"]["schemas"]
    assert schemas["ScoreRequest"]["additionalProperties"] is False
    # the scoring operations never offer a decision (determinations are recorded by people, elsewhere)
    scoring = [doc["paths"][p]["post"] for p in ("/score", "/review-queue", "/outreach")]
    names = {r.split("/")[-1] for op in scoring for r in _refs(op, [])}
    values = {str(v).lower() for name in _closure(doc, names) for v in _enums(schemas[name], [])}
    assert values and not values & {"approve", "approved", "deny", "denied", "approval", "denial"}
    for path in doc["paths"].values():
        for op in path.values():
            params = [p["name"].lower() for p in op.get("parameters", [])]
            assert not {"path", "url", "file", "filename"} & set(params)


# ------------------------------------------------------------------ strict types (issue #6)
@pytest.mark.parametrize(("path", "body", "field"), [
    ("/v1/outreach", {"capacity": "10"}, "body.capacity"),
    ("/v1/outreach", {"capacity": True}, "body.capacity"),
    ("/v1/outreach", {"capacity": 10.0}, "body.capacity"),
    ("/v1/outreach", {"capacity": 5, "exclude_contacted_within_days": "7"}, "body.exclude_contacted_within_days"),
    ("/v1/review-queue", {"now": 0}, "body.now"),
    ("/v1/review-queue", {"now": "0"}, "body.now"),
    ("/v1/review-queue", {"now": "1700000000"}, "body.now"),
    ("/v1/review-queue", {"now": "01/01/2026"}, "body.now"),
    ("/v1/review-queue", {"now": "2026-01-01T00:00:00", "minutes_per_case": "30"}, "body.minutes_per_case"),
    ("/v1/score", {"model": "admission_180d", "member_ids": ["M1"], "top_reasons": "3"}, "body.top_reasons"),
    ("/v1/score", {"model": "admission_180d", "member_ids": ["M1"], "as_of": 20250601}, "body.as_of"),
    ("/v1/score", {"model": "admission_180d", "member_ids": [1]}, "body.member_ids.0"),
])
def test_types_are_strict(client, served, path, body, field):
    r = client.post(path, json=body, headers=auth(served["tokens"]["admin"]))
    assert r.status_code == 422, r.text
    assert field in [d["field"] for d in r.json()["details"]], r.json()


def test_the_model_is_one_the_service_loaded(client, served):
    r = client.post("/v1/score", json={"model": "readmission_90d", "member_ids": ["M1"]},
                    headers=auth(served["tokens"]["admin"]))
    assert r.status_code == 422
    [detail] = r.json()["details"]
    assert detail["field"] == "body.model" and "admission_180d" in detail["message"] \
        and "readmission_30d" in detail["message"]
    doc = client.get("/v1/openapi.json").json()
    model = doc["components"]["schemas"]["ScoreRequest"]["properties"]["model"]
    assert set(model["enum"]) == set(app.state.umrisk.models)


# ------------------------------------------------------------------ inline histories (issue #6)
def _history(**changes) -> dict:
    h = {"members": [{"member_id": "H1", "birth_date": "1950-03-01", "sex": "F"}],
         "enrollment": [{"member_id": "H1", "start_date": "2020-01-01", "end_date": "2025-12-31",
                         "line_of_business": "medicare"}],
         "encounters": [{"encounter_id": "E1", "member_id": "H1", "setting": "inpatient",
                         "admit_time": "2025-03-01T10:00:00", "discharge_time": "2025-03-05T12:00:00",
                         "admission_type": "emergency", "discharge_disposition": "home"}],
         "diagnoses": [{"member_id": "H1", "encounter_id": "E1", "time": "2025-03-01T10:00:00", "code": "I50.9",
                        "code_system": "ICD10CM", "is_principal": True}],
         "labs": [{"member_id": "H1", "time": "2025-03-02T08:00:00", "code": "2951-2", "value": 138.0,
                   "unit": "mmol/L"}]}
    for path, value in changes.items():
        table, i, column = path.split("__")
        if column == "-":
            h[table] = value
        else:
            h[table][int(i)][column] = value
    return h


@pytest.mark.parametrize(("changes", "field"), [
    ({"encounters__0__discharge_time": "2025-02-27T10:00:00"}, "body.history.encounters.0.discharge_time"),
    ({"labs__0__value": 900000}, "body.history.labs.0.value"),
    ({"members__0__birth_date": "2090-01-01"}, "body.history.members.0.birth_date"),
    ({"members__0__death_date": "1940-01-01"}, "body.history.members.0.death_date"),
    ({"enrollment__-__-": []}, "body.history.enrollment"),
    ({"enrollment__0__end_date": "2019-01-01"}, "body.history.enrollment.0.end_date"),
    ({"encounters__0__setting": "spa"}, "body.history.encounters.0.setting"),
    ({"encounters__0__paid_amount": -5}, "body.history.encounters.0.paid_amount"),
    ({"encounters__0__admit_time": "1066-10-14T09:00:00"}, "body.history.encounters.0.admit_time"),
    ({"diagnoses__0__is_principal": "true"}, "body.history.diagnoses.0.is_principal"),
    ({"diagnoses__0__encounter_id": "E9"}, "body.history.diagnoses.0.encounter_id"),
    ({"labs__0__member_id": "H2"}, "body.history.labs.0.member_id"),
])
def test_inline_histories_are_held_to_the_store_schema(client, served, changes, field):
    r = client.post("/v1/score", json={"model": "admission_180d", "history": _history(**changes)},
                    headers=auth(served["tokens"]["admin"]))
    assert r.status_code == 422, r.text
    assert field in [d["field"] for d in r.json()["details"]], r.json()


def test_a_valid_inline_history_is_answered(client, served):
    r = client.post("/v1/score", json={"model": "admission_180d", "history": _history()},
                    headers=auth(served["tokens"]["admin"]))
    assert r.status_code == 200, r.text
    assert r.json()["scores"][0]["member_id"] == "H1"


# ------------------------------------------------------------------ review queue (issue #6)
def _case(i, member, received, urgency="standard"):
    return {"request_id": f"R{i}", "member_id": member, "received_time": received, "service_type": "imaging",
            "code": "70553", "urgency": urgency}


def test_queue_puts_cases_that_cannot_make_it_first_and_says_why(client, served):
    """The report's queue: overdue cases, then a case with 0.66 h left and an expedited one with 1.07 h left,
    and riskier cases with days of slack that used to go between them."""
    now = pd.Timestamp("2026-01-01T08:00:00")
    ids = _members(client, served, 40)
    cases = [_case(i, ids[i], (now - pd.Timedelta(hours=168 + 1 + i)).isoformat()) for i in range(6)]  # overdue
    cases.append(_case(6, ids[6], (now - pd.Timedelta(hours=168 - 0.66)).isoformat()))
    cases.append(_case(7, ids[7], (now - pd.Timedelta(hours=72 - 1.07)).isoformat(), "expedited"))
    cases += [_case(8 + i, ids[8 + i], (now - pd.Timedelta(hours=120 - i)).isoformat()) for i in range(30)]
    r = client.post("/v1/review-queue", json={"cases": cases, "now": now.isoformat()},
                    headers=auth(served["tokens"]["reviewer"]))
    assert r.status_code == 200, r.text
    queue = r.json()["cases"]
    order = [c["request_id"] for c in queue]
    assert set(order[:6]) == {f"R{i}" for i in range(6)} and order[6:8] == ["R6", "R7"]
    assert all(c["why"].startswith("overdue by ") for c in queue[:6])
    assert queue[6]["why"] == "cannot meet its deadline (0.66 h left, 3 h of work ahead)"
    assert queue[7]["why"] == "cannot meet its deadline (1.07 h left, 3.5 h of work ahead)"
    assert all(c["why"] for c in queue)


def test_queue_refuses_cases_received_after_now_and_repeated_ids(client, served):
    token = auth(served["tokens"]["reviewer"])
    ids = _members(client, served, 5)
    cases = [_case(i, m, "2025-12-30T08:00:00") for i, m in enumerate(ids)]
    late = [dict(c) for c in cases]
    late[3]["received_time"] = "2026-01-02T00:00:00"
    r = client.post("/v1/review-queue", json={"cases": late, "now": "2026-01-01T00:00:00"}, headers=token)
    assert r.status_code == 422 and r.json()["details"][0]["field"] == "body.cases.3.received_time"
    twice = [dict(c) for c in cases]
    twice[4]["request_id"] = twice[1]["request_id"]
    r = client.post("/v1/review-queue", json={"cases": twice, "now": "2026-01-01T00:00:00"}, headers=token)
    assert r.status_code == 422
    assert r.json()["details"] == [{"field": "body.cases.4.request_id",
                                    "message": "request id repeats body.cases.1.request_id"}]


@pytest.mark.parametrize("body", [
    {"cases": [_case(0, "M00000001", "9999-12-31T23:00:00")], "now": "2026-01-01T00:00:00"},
    {"cases": [_case(0, "M00000001", "9999-12-31T23:00:00")]},
    {"now": "9999-12-31T23:59:59"},
    {"cases": [_case(0, "M00000001", "0001-01-01T00:00:00")], "now": "2026-01-01T00:00:00"},
])
def test_times_at_the_ends_of_the_calendar_are_422_not_500(client, served, body):
    r = client.post("/v1/review-queue", json=body, headers=auth(served["tokens"]["reviewer"]))
    assert r.status_code == 422, r.text
    assert r.json()["details"][0]["field"] in ("body.cases.0.received_time", "body.now")


# ------------------------------------------------------------------ errors, limits, headers (issue #6)
@pytest.mark.parametrize(("method", "path", "status"), [
    ("get", "/v1/nowhere", 404), ("post", "/v1/score/extra", 404), ("get", "/v1/score", 405),
    ("delete", "/v1/models", 405),
])
def test_404_and_405_are_json_in_the_one_error_shape(client, served, method, path, status):
    r = client.request(method, path, headers=auth(served["tokens"]["admin"]))
    assert r.status_code == status and r.headers["content-type"] == "application/json"
    body = r.json()
    assert set(body) == {"error", "details"} and body["error"] and all(set(d) == {"field", "message"}
                                                                       for d in body["details"])


def test_every_error_has_the_one_shape(client, served):
    answers = [client.post("/v1/score", json={"model": "admission_180d", "member_ids": ["M1"]}),
               client.post("/v1/outreach", json={"capacity": 3}, headers=auth(served["tokens"]["reviewer"])),
               client.post("/v1/outreach", json={"capacity": "3"}, headers=auth(served["tokens"]["admin"])),
               client.post("/v1/score", content=b"{", headers={**auth(served["tokens"]["admin"]),
                                                               "content-type": "application/json"})]
    assert [a.status_code for a in answers] == [401, 403, 422, 400]
    for a in answers:
        assert set(a.json()) == {"error", "details"}, a.json()


def test_a_chunked_body_over_the_limit_is_413(client, served):
    def chunks():
        yield b'{"model": "admission_180d", "member_ids": ["'
        for _ in range(30):
            yield b"x" * 10_000
        yield b'"]}'

    r = client.post("/v1/score", content=chunks(), headers={**auth(served["tokens"]["admin"]),
                                                            "content-type": "application/json"})
    assert r.status_code == 413, r.text
    assert r.json()["error"].startswith("request body over the limit")


def test_a_chunked_body_under_the_limit_is_read(client, served):
    def chunks():
        yield b'{"model": "admission_180d", '
        yield b'"member_ids": ["M00000001"]}'

    r = client.post("/v1/score", content=chunks(), headers={**auth(served["tokens"]["admin"]),
                                                            "content-type": "application/json"})
    assert r.status_code == 200, r.text


def test_an_empty_outreach_list_is_200(client, served):
    """Nobody left after the filters: LightGBM's contributions on zero rows used to be a 500."""
    token = auth(served["tokens"]["outreach"])
    first = client.post("/v1/outreach", json={"capacity": 5000, "line_of_business": "dual"}, headers=token)
    assert first.status_code == 200 and first.json()["members"]
    _contacted(client, token, [m["member_id"] for m in first.json()["members"]])
    r = client.post("/v1/outreach", json={"capacity": 5000, "line_of_business": "dual",
                                          "exclude_contacted_within_days": 1}, headers=token)
    assert r.status_code == 200, r.text
    assert r.json()["members"] == [] and r.json()["excluded"]["contacted recently"] == len(first.json()["members"])


@pytest.mark.parametrize(("method", "path", "body", "role"), [
    ("post", "/v1/score", {"model": "admission_180d", "member_ids": ["M00000001"]}, "admin"),
    ("post", "/v1/outreach", {"capacity": 2}, "admin"),
    ("post", "/v1/outreach", {"capacity": 2, "format": "csv"}, "admin"),
    ("post", "/v1/review-queue", {"now": "2026-01-01T00:00:00"}, "admin"),
    ("get", "/v1/models", None, "admin"),
    ("post", "/v1/score", {"model": "admission_180d", "member_ids": ["M00000001"]}, None),
    ("get", "/v1/nowhere", None, "admin"),
    ("post", "/v1/outreach", {"capacity": "2"}, "admin"),
])
def test_no_store_and_nosniff_on_every_answer(client, served, method, path, body, role):
    r = client.request(method, path, json=body, headers=auth(served["tokens"][role]) if role else {})
    assert r.headers["cache-control"] == "no-store" and r.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer", "bEaReR"])
def test_the_bearer_scheme_is_case_insensitive(client, served, scheme):
    r = client.get("/v1/models", headers={"Authorization": f"{scheme} {served['tokens']['reviewer']}"})
    assert r.status_code == 200


def _label_values() -> set:
    from prometheus_client import REGISTRY

    return {(m.name, tuple(sorted(s.labels.items()))) for m in REGISTRY.collect() if m.name.startswith("umrisk")
            for s in m.samples}


def test_random_urls_do_not_grow_the_metrics(client, served):
    import secrets

    client.get("/v1/warm-up-404")
    client.get("/v1/warm-up-404", headers={"Authorization": "Bearer nope"})
    before = _label_values()
    for _ in range(200):
        assert client.get(f"/v1/{secrets.token_hex(8)}/{secrets.token_hex(4)}").status_code == 404
    assert _label_values() == before
    client.post("/v1/score", json={"model": "admission_180d", "member_ids": ["M00000001"]},
                headers=auth(served["tokens"]["admin"]))
    routes = {dict(labels).get("route") for name, labels in _label_values() if name == "umrisk_http_requests"}
    assert {"/score", "/{path:path}"} <= routes, routes  # templates: the catch-all answers every unknown path


# ------------------------------------------------------------------ rate limits and throttling (issue #6)
def test_a_token_over_its_rate_gets_429_with_retry_after(client, served):
    s = app.state.umrisk
    s.rate_limiter = RateLimiter(per_minute=1, burst=2)
    token = auth(served["tokens"]["reviewer"])
    before = len(s.audit.entries())
    codes = [client.get("/v1/models", headers=token).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    r = client.get("/v1/models", headers=token)
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1 and set(r.json()) == {"error", "details"}
    refused = [e for e in s.audit.entries()[before:] if e.get("event") == "refused"]
    assert [e["status"] for e in refused] == [429, 429] and refused[0]["caller"]


def test_repeated_failed_authentications_are_slowed_and_audited(client, served):
    s = app.state.umrisk
    before = len(s.audit.entries())
    codes = [client.get("/v1/models", headers={"Authorization": "Bearer guess"}).status_code for _ in range(8)]
    assert codes[:5] == [401] * 5 and codes[-1] == 429
    r = client.get("/v1/models", headers=auth(served["tokens"]["reviewer"]))
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1  # the address waits, whatever it sends
    refused = [e for e in s.audit.entries()[before:] if e.get("event") == "refused"]
    assert len(refused) == 9 and {e["status"] for e in refused} == {401, 429}
    assert all(e["caller"] is None and "member_id" not in e for e in refused)


# ------------------------------------------------------------------ OpenAPI and /docs offline (issue #6)
def test_docs_use_only_local_assets(client):
    import re

    r = client.get("/v1/docs")
    assert r.status_code == 200 and "swagger" in r.text.lower()
    urls = re.findall(r"""(?:src|href|url)\s*[:=]\s*['"]([^'"]+)['"]""", r.text)
    assert urls and all(u.startswith("/v1/") for u in urls), urls
    assert not re.search(r"https?://", r.text)
    for u in urls:
        asset = client.get(u)
        assert asset.status_code == 200, u
    js = client.get("/v1/static/swagger-ui-bundle.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"] and len(js.content) > 100_000


def test_openapi_has_a_bearer_scheme_and_every_status(client):
    doc = client.get("/v1/openapi.json").json()
    schemes = doc["components"]["securitySchemes"]
    assert any(s["type"] == "http" and s["scheme"].lower() == "bearer" for s in schemes.values())
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert op.get("security"), (method, path)
            statuses = set(op["responses"])
            want = {"401", "403", "429", "500"} | ({"400", "413", "422"} if method == "post" else set())
            assert want <= statuses, (method, path, statuses)
            for code in want:
                content = op["responses"][code]["content"]
                if "application/json" in content:
                    assert content["application/json"]["schema"]["$ref"].endswith("/ErrorResponse"), (path, code)
                else:  # the FHIR operation answers its errors as an OperationOutcome
                    assert set(content) == {"application/fhir+json"}, (path, code)


def test_an_unexpected_error_is_a_500_with_a_reference_and_a_logged_code_location(client, served, monkeypatch, caplog):
    """The caller gets the one error shape with a reference; the log gets the reference, the exception type and
    where in umrisk's code it was raised, and no member identifier."""
    scorer = app.state.umrisk.scorer

    def broken(*args, **kwargs):
        raise AttributeError("'NoneType' object has no attribute 'x'")

    monkeypatch.setattr(scorer, "score", broken)
    mid = "M-SECRET-42"
    with caplog.at_level("ERROR", logger="umrisk.serving"):
        r = client.post("/v1/score", json={"model": "admission_180d", "member_ids": [mid]},
                        headers=auth(served["tokens"]["reviewer"]))
    assert r.status_code == 500 and r.json()["error"] == "internal error"
    reference = r.json()["details"]["reference"] if isinstance(r.json()["details"], dict) else None
    line = next(m for m in caplog.messages if "internal error" in m)
    assert "AttributeError at test_api.py:" in line and "broken" in line and mid not in line
    assert reference is None or reference in line


@pytest.mark.parametrize("model", ["admission_180d", "readmission_30d"])
def test_an_inline_history_without_encounters_is_answered_not_a_500(client, served, model):
    """Found by the fuzzer: the end of a history without encounters was read from a missing admission time."""
    h = {"members": [{"member_id": "X1", "birth_date": "1950-01-01", "sex": "F"}],
         "enrollment": [{"member_id": "X1", "start_date": "1999-01-01", "end_date": "2000-01-01",
                         "line_of_business": "medicare"}]}
    r = client.post("/v1/score", json={"model": model, "history": h}, headers=auth(served["tokens"]["admin"]))
    assert r.status_code == 200, r.text
    (entry,) = r.json()["scores"]
    assert entry["member_id"] == "X1" and ("probability" in entry or "not scorable on 2000-01-01" in entry["error"])
    h["enrollment"] = []
    r = client.post("/v1/score", json={"model": model, "history": h}, headers=auth(served["tokens"]["admin"]))
    assert r.status_code == 422, r.text
    assert r.json()["details"][0]["field"].startswith("body.history")
