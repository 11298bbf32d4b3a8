"""Against a real `umrisk serve` (BentoML) process on loopback, over HTTP."""

import json

import httpx
import pytest
from umrisk.serving.audit import verify

from tests.service.conftest import auth


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server["url"], timeout=30) as c:
        yield c


def test_health_ready_and_metrics(http):
    assert http.get("/healthz").status_code == 200
    assert http.get("/readyz").status_code == 200
    assert http.get("/livez").status_code == 200


def test_scores_over_http_match_in_process(http, client, served):
    token = auth(served["tokens"]["reviewer"])
    ids = ["M00000003", "M00000010", "M00000011", "NOBODY"]
    body = {"model": "admission_180d", "member_ids": ids}
    remote = http.post("/v1/score", json=body, headers=token)
    local = client.post("/v1/score", json=body, headers=token)
    assert remote.status_code == 200
    assert remote.json() == local.json()
    metrics = http.get("/metrics").text
    assert 'umrisk_scores_total{endpoint="score",model="admission_180d"}' in metrics


def test_auth_over_http(http, served):
    assert http.post("/v1/outreach", json={"capacity": 3}).status_code == 401
    body = {"capacity": 3}
    assert http.post("/v1/outreach", json=body, headers=auth(served["tokens"]["reviewer"])).status_code == 403
    assert http.post("/v1/outreach", json=body, headers=auth(served["tokens"]["outreach"])).status_code == 200


def test_audit_complete_and_logs_free_of_member_data(http, server, served):
    token = auth(served["tokens"]["admin"])
    ids = [f"M{n:08d}" for n in range(100, 140)]
    scored = [s["member_id"] for s in http.post("/v1/score", json={"model": "admission_180d", "member_ids": ids},
                                                 headers=token).json()["scores"] if "probability" in s]
    listed = [m["member_id"] for m in http.post("/v1/outreach", json={"capacity": 25}, headers=token).json()["members"]]
    http.post("/v1/review-queue", json={"now": "2026-01-01T00:00:00"}, headers=token)
    http.post("/v1/score", content=b'{"model": "admission_180d", "member_ids": ["M00000100"', headers=token)
    entries = [json.loads(x) for x in server["audit"].read_text().splitlines()]
    assert set(scored) <= {e["member_id"] for e in entries if e["endpoint"] == "score"}
    assert set(listed) <= {e["member_id"] for e in entries if e["endpoint"] == "outreach"}
    assert verify(server["audit"])[0]
    log = server["log"].read_text()
    assert "umrisk" in log and "/v1/score" in log  # the log is there and is the service's
    leaked = [m for m in set(scored) | set(listed) | {e["member_id"] for e in entries} if m in log]
    assert not leaked, f"member ids in the application log: {leaked[:5]}"
    for value in {f"{e['probability']}" for e in entries if e.get("probability") is not None}:
        assert value not in log
