"""umrisk's HTTP path side by side with a minimal BentoML service (issue 13), in one run on one store.

``python -m bench.http_run STORE`` trains both models quickly and promotes them in a temporary registry (as
``bench/serving_run.py`` does), scores both with ``umrisk score-batch`` into a temporary case store, then starts
- a minimal BentoML service (``bench/minimal_service.py``): for a member id, predict and ``pred_contrib`` of the
  member's cached feature row with the champion's booster, the top three reasons; nothing else;
- ``umrisk serve --scores batch`` with 1 worker, and with 2 workers: authentication, rate limit, validation, the
  batch score look-up, the audit entry fsync'd before the answer, metrics.
Each is loaded with the same requests (one member per request, the same member order) at concurrency 1 and 16,
``BENCH_HTTP_SECONDS`` (default 25) each, the three services taking turns at each concurrency. Printed: p50,
p99, requests per second and errors of each, then the ratios beside the targets (umrisk's p50 at most 1.3x the
minimal service's at concurrency 1; its throughput at least 0.75x at concurrency 16), and a last line of JSON.
The load generator shares the machine with the servers, so figures are for comparing within one run.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import numpy as np

from tests.processes import free_port, wait_until_ready
from tests.specs import quick
from umrisk.serving.audit import verify
from umrisk.serving.auth import create_token
from umrisk.serving.state import scorer_for
from umrisk.training import commands
from umrisk.training.score_batch import score_batch

ROOT = Path(__file__).resolve().parents[1]  # the minimal service is imported as bench.minimal_service from here
MODEL = "admission_180d"
MODELS = ("readmission_30d", MODEL)
P50_TARGET, RPS_TARGET = 1.3, 0.75


def prepare(store: Path, root: Path) -> dict:
    """Both models trained and promoted in ``root``'s registry, scored in batch into ``root``'s case store; the
    champion's booster and the population's feature rows written for the minimal service; a token."""
    uri = f"sqlite:///{root / 'mlflow.db'}"
    database = f"sqlite:///{root / 'cases.db'}"
    for name in MODELS:
        commands.train(name, store, root / "reports", uri, spec=quick(name))
        commands.promote(name, store, force=True, reason="benchmark", tracking_uri=uri, spec=quick(name))
        score_batch(name, store, database=database, tracking_uri=uri)
    scorer = scorer_for(store, uri)
    c = scorer.cache[MODEL]
    rm = scorer.models[MODEL].wrapped.risk_model
    minimal = root / "minimal"
    minimal.mkdir()
    rm.booster_.save_model(str(minimal / "booster.txt"))
    np.savez(minimal / "rows.npz", X=np.ascontiguousarray(c["X"], dtype=np.float64),
             member_id=np.asarray(c["member_id"]).astype(str), features=np.asarray(rm.features, dtype=str),
             best_iteration=np.int64(rm.best_iteration_ or 0))
    token = create_token(root / "tokens.json", "reviewer")[1]
    rng = np.random.default_rng(1)
    ids = [str(m) for m in rng.permutation(np.asarray(c["member_id"]).astype(str))[:5000]]
    return {"uri": uri, "database": database, "token": token, "ids": ids, "minimal": minimal}


def start(cmd: list[str], log: Path, url: str, env: dict | None = None) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT,
                            env={**os.environ, **(env or {})})
    try:
        wait_until_ready(f"{url}/readyz", proc, log, 300)
    except RuntimeError:
        stop(proc)
        raise
    return proc


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=60)


def serve_umrisk(store: Path, root: Path, prep: dict, workers: int) -> tuple[subprocess.Popen, str, Path]:
    port = free_port()
    audit = root / f"audit-w{workers}.jsonl"
    exe = str(Path(sys.executable).with_name("umrisk"))
    cmd = [exe, "serve", "--data", str(store), "--port", str(port), "--tokens", str(root / "tokens.json"),
           "--audit", str(audit), "--tracking-uri", prep["uri"], "--database-url", prep["database"],
           "--scores", "batch", "--workers", str(workers), "--model", MODEL,
           "--rate-limit", "10000000"]  # a load test, not a caller to slow down
    url = f"http://127.0.0.1:{port}"
    return start(cmd, root / f"umrisk-w{workers}.log", url), url, audit


def serve_minimal(root: Path, prep: dict) -> tuple[subprocess.Popen, str]:
    port = free_port()
    exe = str(Path(sys.executable).with_name("bentoml"))
    url = f"http://127.0.0.1:{port}"
    proc = start([exe, "serve", "bench.minimal_service:Minimal", "--host", "127.0.0.1", "--port", str(port)],
                 root / "minimal.log", url, {"UMRISK_MINIMAL_DIR": str(prep["minimal"])})
    return proc, url


async def load(url: str, path: str, body: Callable[[str], dict], ok: Callable[[dict], bool], headers: dict,
               ids: list[str], concurrency: int, seconds: float) -> dict:
    """``concurrency`` clients, each with one kept-alive connection, posting one member per request for
    ``seconds``: p50, p99, requests per second and errors (an answer that is not 200 with a probability)."""
    lat: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds

    async def client(k: int) -> None:
        nonlocal errors
        conn = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(url, headers=headers, connector=conn,
                                         timeout=aiohttp.ClientTimeout(total=10)) as session:
            i = k
            while time.perf_counter() < stop_at:
                t = time.perf_counter()
                try:
                    async with session.post(path, json=body(ids[i % len(ids)])) as r:
                        good = r.status == 200 and ok(await r.json())
                except (TimeoutError, aiohttp.ClientError, ValueError):
                    good = False
                lat.append(time.perf_counter() - t)
                errors += not good
                i += concurrency

    started = time.perf_counter()
    await asyncio.gather(*(client(k) for k in range(concurrency)))
    elapsed = time.perf_counter() - started
    a = np.array(lat)
    return {"requests": int(len(a)), "errors": int(errors), "p50_ms": float(np.median(a) * 1e3),
            "p99_ms": float(np.percentile(a, 99) * 1e3), "rps": float(len(a) / elapsed)}


def umrisk_load(url: str, token: str, ids: list[str], concurrency: int, seconds: float) -> dict:
    return asyncio.run(load(url, "/v1/score", lambda m: {"model": MODEL, "member_ids": [m]},
                            lambda j: j["scores"][0].get("probability") is not None,
                            {"Authorization": f"Bearer {token}"}, ids, concurrency, seconds))


def minimal_load(url: str, ids: list[str], concurrency: int, seconds: float) -> dict:
    return asyncio.run(load(url, "/score", lambda m: {"member_id": m}, lambda j: j.get("probability") is not None,
                            {}, ids, concurrency, seconds))


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def compare(data: Path, root: Path, prep: dict, seconds: float) -> dict:
    """The three services started on ``prep``, loaded in turns at each concurrency; their figures and ratios."""
    res: dict = {"seconds": seconds}
    procs = []
    try:
        minimal, murl = serve_minimal(root, prep)
        procs.append(minimal)
        servers = {}
        for w in (1, 2):
            proc, url, audit = serve_umrisk(data, root, prep, w)
            procs.append(proc)
            servers[f"umrisk_w{w}"] = (url, audit)
        # a few requests each before timing: connections, first-call paths
        minimal_load(murl, prep["ids"], 1, 1.0)
        for url, _ in servers.values():
            umrisk_load(url, prep["token"], prep["ids"], 1, 1.0)
        print(f"{'service':<12}{'conc.':>6}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>9}{'errors':>8}", flush=True)
        for c in (1, 16):
            runs = {"minimal": lambda c=c: minimal_load(murl, prep["ids"], c, seconds)}
            for name, (url, _) in servers.items():
                runs[name] = lambda c=c, url=url: umrisk_load(url, prep["token"], prep["ids"], c, seconds)
            for name, run in runs.items():
                r = res[f"{name}_c{c}"] = run()
                print(f"{name:<12}{c:>6}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['rps']:>9.0f}{r['errors']:>8}",
                      flush=True)
    finally:
        for p in procs:
            stop(p)
    for name, (_, audit) in servers.items():
        ok, n, message = verify(audit)
        res[f"{name}_audit"] = {"ok": ok, "entries": n}
        print(f"{name} audit log: {message}", flush=True)
    base = res["minimal_c1"]["p50_ms"], res["minimal_c16"]["rps"]
    for name in ("umrisk_w1", "umrisk_w2"):
        p50 = res[f"{name}_c1"]["p50_ms"] / base[0]
        rps = res[f"{name}_c16"]["rps"] / base[1]
        res[f"{name}_p50_ratio_c1"], res[f"{name}_rps_ratio_c16"] = p50, rps
        print(f"{name}: p50 at concurrency 1 {p50:.2f}x the minimal service's (target <= {P50_TARGET}x): "
              f"{verdict(p50 <= P50_TARGET)}; throughput at concurrency 16 {rps:.2f}x (target >= {RPS_TARGET}x): "
              f"{verdict(rps >= RPS_TARGET)}", flush=True)
    return res


def main(store: str) -> None:
    seconds = float(os.environ.get("BENCH_HTTP_SECONDS", 25))
    with tempfile.TemporaryDirectory() as tmp:
        root, data = Path(tmp), Path(store).resolve()
        res = compare(data, root, prepare(data, root), seconds)
    print(json.dumps(res))


if __name__ == "__main__":
    main(sys.argv[1])
