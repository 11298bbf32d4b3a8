"""The HTTP surface in process: roles, scores with reasons, queue, outreach, errors, audit, OpenAPI."""

import json

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from umrisk.features.store import load_store
from umrisk.serving.audit import verify
from umrisk.serving.schemas import NextStep

from tests.service.conftest import auth

ENDPOINTS = {
    "score": ("post", "/v1/score", {"model": "admission_180d", "member_ids": ["M00000001"]}),
    "review-queue": ("post", "/v1/review-queue", {"now": "2026-01-01T00:00:00"}),
    "outreach": ("post", "/v1/outreach", {"capacity": 5}),
    "models": ("get", "/v1/models", None),
}
EXPECTED = {"reviewer": {"score": 200, "review-queue": 200, "outreach": 403, "models": 200},
            "outreach": {"score": 200, "review-queue": 403, "outreach": 200, "models": 200},
            "admin": {"score": 200, "review-queue": 200, "outreach": 200, "models": 200}}


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
    mid = _members(client, served, 40)[-1]
    as_of = "2025-06-01"
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
    by_id = client.post("/v1/score", json={"model": "admission_180d", "member_ids": [mid], "as_of": as_of},
                        headers=token).json()["scores"][0]
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
    again = client.post("/v1/outreach", json={"capacity": 10, "line_of_business": "medicare",
                                              "exclude_contacted_within_days": 7}, headers=token).json()
    assert not {m["member_id"] for m in again["members"]} & {m["member_id"] for m in r["members"]}
    csv = client.post("/v1/outreach", json={"capacity": 3, "format": "csv"}, headers=token)
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines()[0].startswith("rank,member_id") and len(csv.text.splitlines()) == 4


def test_models_reports_pinned_versions(client, served):
    m = client.get("/v1/models", headers=auth(served["tokens"]["reviewer"])).json()["models"]
    assert {x["name"] for x in m} == {"readmission_30d", "admission_180d"}
    assert all(x["version"] and x["alias"] == "champion" and "auroc" in x["test_metrics"] for x in m)


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


def test_every_score_is_audited_and_the_chain_verifies(client, served, tmp_path):
    log = served["settings"].audit
    before = len(log.read_text().splitlines())
    ids = _members(client, served, 7)
    r = client.post("/v1/score", json={"model": "admission_180d", "member_ids": ids},
                    headers=auth(served["tokens"]["reviewer"]))
    scored = [s for s in r.json()["scores"] if "probability" in s]
    lines = log.read_text().splitlines()
    assert len(lines) - before == len(scored)
    new = [json.loads(x) for x in lines[before:]]
    assert [e["member_id"] for e in new] == [s["member_id"] for s in scored]
    assert all(e["role"] == "reviewer" and e["endpoint"] == "score" and e["model_version"] for e in new)
    ok, n, _ = verify(log)
    assert ok and n == len(lines)
    tampered = tmp_path / "audit.jsonl"
    entries = [json.loads(x) for x in lines]
    entries[2]["probability"] = 0.0
    tampered.write_text("\n".join(json.dumps(e, sort_keys=True, separators=(",", ":")) for e in entries) + "\n")
    ok, n, message = verify(tampered)
    assert not ok and n == 2 and message.startswith("line 3")
    removed = tmp_path / "removed.jsonl"
    removed.write_text("\n".join(lines[:1] + lines[2:]) + "\n")
    assert verify(removed)[2].startswith("line 2")


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


def test_openapi_document(client):
    doc = client.get("/v1/openapi.json").json()
    assert {"/score", "/review-queue", "/outreach", "/models"} <= set(doc["paths"])
    schemas = doc["components"]["schemas"]
    assert schemas["ScoreRequest"]["additionalProperties"] is False
    values = {str(v).lower() for v in _enums(doc, [])}
    assert not values & {"approve", "approved", "deny", "denied", "approval", "denial"}
    for path in doc["paths"].values():
        for op in path.values():
            params = [p["name"].lower() for p in op.get("parameters", [])]
            assert not {"path", "url", "file", "filename"} & set(params)
