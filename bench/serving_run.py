"""Serving benchmarks (issue 5), run by ``bench`` on a store: prints one JSON line.

Both models are trained with a small tuning budget and made champion in a temporary registry (speed of
serving does not depend on the budget), then:
- one member's score with reasons, in process, against raw ``Booster.predict`` plus ``pred_contrib`` on
  the same row with ``num_threads=1``: median and p99 of 2,000 calls each, and the ratio;
- a batch of 1,000 members: rows per second against raw predict plus contributions of the same rows;
- outreach over the whole population: the request (scores cached at start-up), and a full re-score of
  the population (predict, calibrate, rank, explain the top) against raw predict of the same matrix;
- HTTP over loopback against a real ``umrisk serve`` process, concurrency 1 and 16, 30 s each:
  p50, p99, requests per second, errors.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from tests.processes import free_port, wait_until_ready
from tests.specs import quick
from umrisk.serving.auth import create_token
from umrisk.serving.state import ServiceState, Settings
from umrisk.training import commands


def timed(f, n: int) -> np.ndarray:
    for _ in range(20):
        f()
    out = np.empty(n)
    for i in range(n):
        t = time.perf_counter()
        f()
        out[i] = time.perf_counter() - t
    return out


def in_process(state: ServiceState) -> dict:
    sc = state.scorer
    model = "admission_180d"
    c = sc.cache[model]
    rm = sc.models[model].wrapped.risk_model
    mid = str(c["member_id"][0])
    row = c["X"][:1]

    def raw() -> None:
        rm.booster_.predict(row, num_iteration=rm.best_iteration_, num_threads=1)
        rm.booster_.predict(row, num_iteration=rm.best_iteration_, pred_contrib=True, num_threads=1)

    ours = timed(lambda: sc.score(model, [mid]), 2000)
    base = timed(raw, 2000)
    ids = [str(m) for m in c["member_id"][:1000]]
    X = c["X"][:1000]
    batch = timed(lambda: sc.score(model, ids), 15)
    batch_raw = timed(lambda: (rm.booster_.predict(X, num_iteration=rm.best_iteration_),
                               rm.booster_.predict(X, num_iteration=rm.best_iteration_, pred_contrib=True)), 15)
    outreach = timed(lambda: sc.outreach(1000, None, set(), model), 10)
    full = c["X"]

    def rescore() -> None:
        p = sc._calibrated(model, full)
        top = np.argsort(-p, kind="stable")[:1000]
        sc._explain(model, full[top], p[top], c["member_id"][top], c["as_of"][top], 3)

    rescored = timed(rescore, 5)
    raw_full = timed(lambda: rm.booster_.predict(full, num_iteration=rm.best_iteration_), 5)
    return {
        "one_ms": [float(np.median(ours) * 1e3), float(np.percentile(ours, 99) * 1e3)],
        "raw_one_ms": [float(np.median(base) * 1e3), float(np.percentile(base, 99) * 1e3)],
        "batch_rows_per_s": 1000 / float(np.median(batch)), "raw_batch_rows_per_s": 1000 / float(np.median(batch_raw)),
        "outreach_s": float(np.median(outreach)), "rescore_s": float(np.median(rescored)),
        "raw_predict_population_s": float(np.median(raw_full)), "population": int(len(full)),
    }


async def load(url: str, token: str, ids: list[str], concurrency: int, seconds: float) -> dict:
    lat: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds
    headers = {"Authorization": f"Bearer {token}"}

    async def worker(k: int) -> None:
        nonlocal errors
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10) as client:
            i = k
            while time.perf_counter() < stop:
                body = {"model": "admission_180d", "member_ids": [ids[i % len(ids)]]}
                t = time.perf_counter()
                try:
                    r = await client.post("/v1/score", json=body)
                    ok = r.status_code == 200 and "probability" in r.json()["scores"][0]
                except httpx.HTTPError:
                    ok = False
                lat.append(time.perf_counter() - t)
                errors += not ok
                i += concurrency

    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    a = np.array(lat)
    return {"requests": int(len(a)), "errors": int(errors), "p50_ms": float(np.median(a) * 1e3),
            "p99_ms": float(np.percentile(a, 99) * 1e3), "rps": float(len(a) / seconds)}


def main(store: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        uri = f"sqlite:///{root / 'mlflow.db'}"
        for name in ("readmission_30d", "admission_180d"):
            commands.train(name, Path(store), root / "reports", uri, spec=quick(name))
            commands.promote(name, Path(store), force=True, reason="benchmark", tracking_uri=uri, spec=quick(name))
        token = create_token(root / "tokens.json", "reviewer")[1]
        settings = Settings(data=Path(store), tokens=root / "tokens.json", audit=root / "audit.jsonl", tracking_uri=uri)
        t = time.perf_counter()
        state = ServiceState.build(settings)
        res = {"startup_s": time.perf_counter() - t, **in_process(state)}
        ids = [str(m) for m in state.scorer.cache["admission_180d"]["member_id"][:5000]]
        del state
        port = free_port()
        exe = Path(sys.executable).with_name("umrisk")
        log = root / "server.log"
        proc = subprocess.Popen([str(exe), "serve", "--data", store, "--port", str(port), "--tokens",
                                 str(root / "tokens.json"), "--audit", str(root / "served.jsonl"), "--tracking-uri",
                                 uri, "--rate-limit", "10000000"],  # a load test, not a caller to slow down
                                stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_ready(f"{url}/readyz", proc, log, 300)
            for c in (1, 16):
                res[f"http_c{c}"] = asyncio.run(load(url, token, ids, c, 30.0))
        finally:
            os.killpg(proc.pid, 15)
            proc.wait(timeout=60)
    print(json.dumps(res))


if __name__ == "__main__":
    main(sys.argv[1])
