"""Against a real `umrisk serve` (BentoML) process on loopback, over HTTP."""

import json
import re
import secrets

import httpx
import pytest

from tests.service.conftest import auth
from umrisk.serving.audit import verify


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
    metrics = _metrics(http)
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
    assert set(scored) <= {e.get("member_id") for e in entries if e["endpoint"] == "score"}
    assert set(listed) <= {e.get("member_id") for e in entries if e["endpoint"] == "outreach"}
    assert verify(server["audit"])[0]
    log = server["log"].read_text()
    assert "umrisk" in log and "/v1/score" in log  # the log is there and is the service's
    leaked = [m for m in set(scored) | set(listed) | {e["member_id"] for e in entries if "member_id" in e} if m in log]
    assert not leaked, f"member ids in the application log: {leaked[:5]}"
    for value in {f"{e['probability']}" for e in entries if e.get("probability") is not None}:
        assert value not in log


def _metrics(http) -> str:
    r = http.get("/metrics", follow_redirects=True)  # BentoML's, or the API's mounted at /metrics/
    assert r.status_code == 200
    return r.text


def _endpoint_labels(http) -> set[str]:
    text = _metrics(http)
    return set(re.findall(r'endpoint="([^"]*)"', text)) | set(re.findall(r'route="([^"]*)"', text))


def test_random_urls_do_not_grow_the_metrics(http, served):
    """6,000 unauthenticated 404s grew the worker by 125 MiB: every label value of /metrics must come from a
    route, never from the raw path (BentoML 1.4 labels its own HTTP metrics with the raw path)."""
    http.get(f"/v1/{secrets.token_hex(6)}")
    http.get(f"/{secrets.token_hex(6)}")
    before = _endpoint_labels(http)
    for _ in range(100):
        assert http.get(f"/v1/{secrets.token_hex(8)}").status_code == 404
        assert http.get(f"/{secrets.token_hex(8)}").status_code == 404
    grown = _endpoint_labels(http) - before
    assert len(grown) <= 2, sorted(grown)[:10]


def test_errors_headers_and_docs_over_http(http, served):
    r = http.get(f"/v1/{secrets.token_hex(8)}")
    assert r.status_code == 404 and set(r.json()) == {"error", "details"}
    assert r.headers["cache-control"] == "no-store" and r.headers["x-content-type-options"] == "nosniff"
    docs = http.get("/v1/docs")
    assert docs.status_code == 200 and not re.search(r"https?://", docs.text)
    assert http.get("/v1/static/swagger-ui-bundle.js").status_code == 200
    lower = http.get("/v1/models", headers={"Authorization": f"bearer {served['tokens']['reviewer']}"})
    assert lower.status_code == 200


def test_a_chunked_body_over_the_limit_is_413_over_http(http, served):
    def chunks():
        yield b'{"model": "admission_180d", "member_ids": ["'
        for _ in range(250):
            yield b"x" * 10_000
        yield b'"]}'

    r = http.post("/v1/score", content=chunks(), headers={**auth(served["tokens"]["admin"]),
                                                          "content-type": "application/json"})
    assert r.status_code == 413
