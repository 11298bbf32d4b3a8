"""Scale benchmarks (issue 13, item 6): ``python -m bench.scale_run [--members 1000000] [--big 5000000]``.

- features for ``--members`` members (admission_180d at one scoring date, 2025-07-01): the single process
  against Dask with 2 workers, both through ``umrisk features build``; the two tables compared (equal), wall
  time, peak memory of the single process, of the Dask client and of each Dask worker process. Target:
  identical output, peak per worker at most 2 GiB.
- ``--big`` members generated and featurised with Dask (2 workers), partition by partition; wall time and
  peak memory. The single process is not attempted: its peak at ``--members`` is extrapolated.
- the service with the ``--members`` population: a quick admission_180d model trained on a small store of
  the same calendar and made champion in a temporary registry, ``umrisk score-batch`` of the big store
  (2 Dask workers), then ``umrisk serve --scores batch`` with 1 and 2 workers: start-up until ``/readyz``
  answers (target at most 10 s), worker RSS (target at most 1 GiB), HTTP p50/p99 of ``/v1/score`` for one
  member at concurrency 1 and 16 (``bench.serving_run.load``), at the batch's date (the run's row) and at
  another date (the member's history read on demand from its partition).

Every step runs as its own process under ``nice -n 19`` (the machine is shared); memory is sampled every 0.2 s
per process of the step's tree (peak of each process, and of their sum). Stores live under a temporary folder
(``--workdir``, default the system's temporary folder) and are deleted at the end unless ``--keep``. Figures
are printed beside their targets; the last line is one JSON record.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]  # children run from here, so bench.* and tests.* import
UMRISK = str(Path(sys.executable).with_name("umrisk"))
NICE = ["nice", "-n", "19"]
MODEL = "admission_180d"
ONE_DATE = "2025-07-01"  # the one scoring date of the features benchmark (the last whose horizon fits the data)
OTHER_DATE = "2025-09-30"  # a date other than the batch's: histories read on demand
GiB = 2**30


@dataclass
class Measured:
    """A step's wall seconds, exit status, standard output, the peak of the tree's summed RSS (GiB), and
    each process's own peak (GiB) by pid, with its command line."""

    wall: float
    rc: int
    out: str
    tree_peak: float
    peaks: dict[int, float] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)
    root: int = 0
    load: float = 0.0  # the machine's mean 1-minute load average during the step (others' work included)
    cpu: float = 0.0  # CPU seconds (user + system) of the step's processes, as last sampled: independent of the load

    def children(self, min_gib: float = 0.05) -> list[float]:
        """Peaks of the processes under the root (Dask or BentoML workers), largest first; tiny helpers
        (a resource tracker, ``nice``) are left out."""
        return sorted((p for pid, p in self.peaks.items() if pid != self.root and p >= min_gib), reverse=True)


def sample(ps: psutil.Process, peaks: dict[int, float], names: dict[int, str],
           parents: dict[int, int] | None = None, cpu: dict[int, float] | None = None) -> float:
    """One sample of the tree under ``ps``: each process's peak updated (and its parent noted); the summed RSS
    in GiB."""
    total = 0
    try:
        procs = [ps, *ps.children(recursive=True)]
    except psutil.Error:
        return 0.0
    for p in procs:
        try:
            rss = p.memory_info().rss
            if cpu is not None:
                t = p.cpu_times()
                cpu[p.pid] = t.user + t.system
            if p.pid not in names:
                names[p.pid] = " ".join(p.cmdline()[:6])[:120]
                if parents is not None:
                    parents[p.pid] = p.ppid()
        except psutil.Error:
            continue
        total += rss
        peaks[p.pid] = max(peaks.get(p.pid, 0.0), rss / GiB)
    return total / GiB


def run(cmd: list[str], capture: bool = False, env: dict | None = None) -> Measured:
    """Run ``cmd`` niced from the repository root, sampling its process tree every 0.2 s."""
    with tempfile.TemporaryFile(mode="w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(NICE + cmd, stdout=subprocess.PIPE if capture else subprocess.DEVNULL, stderr=err,
                                text=True, cwd=ROOT, env=env)
        ps = psutil.Process(proc.pid)
        peaks: dict[int, float] = {}
        names: dict[int, str] = {}
        tree = 0.0
        loads = []
        cpu: dict[int, float] = {}
        while proc.poll() is None:
            tree = max(tree, sample(ps, peaks, names, cpu=cpu))
            loads.append(os.getloadavg()[0])
            time.sleep(0.2)
        out = proc.stdout.read() if capture and proc.stdout else ""
        if proc.returncode != 0:
            err.seek(0)
            print("  " + "\n  ".join(err.read().strip().splitlines()[-8:]), flush=True)
    return Measured(time.perf_counter() - start, proc.returncode, out, tree, peaks, names, proc.pid,
                    sum(loads) / max(len(loads), 1), sum(cpu.values()))


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def generate(n: int, out: Path) -> Measured:
    return run([UMRISK, "data", "generate", "--members", str(n), "--years", "3", "--seed", "1", "--out", str(out),
                "--workers", "2"])


def one_date_spec(folder: Path) -> Path:
    """admission_180d with its cohort fixed to one scoring date (every member enrolled then, one point each)."""
    from umrisk.features.spec import load_spec

    spec = load_spec(MODEL)
    spec = spec.model_copy(update={"cohort": spec.cohort.model_copy(update={"first_date": ONE_DATE})})
    import yaml

    path = folder / f"{MODEL}_one_date.yaml"
    path.write_text(yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False))
    return path


def features(store: Path, spec: Path, out: Path, workers: int | None) -> Measured:
    """``umrisk features build`` of the one-date spec, built afresh: the store's feature cache (which would hand
    the second build the first one's table) is removed first, and a table read from the cache is a failure."""
    shutil.rmtree(store / "features" / "cache", ignore_errors=True)
    cmd = [UMRISK, "features", "build", str(spec), "--data", str(store), "--out", str(out)]
    r = run(cmd + (["--workers", str(workers)] if workers else []), capture=True)
    if r.rc == 0 and "(built;" not in r.out:
        print(f"  features build did not build the table: {r.out.strip().splitlines()[-1:]}", flush=True)
        r.rc = -1
    shutil.rmtree(store / "features" / "cache", ignore_errors=True)
    return r


def tables_equal(a: Path, b: Path) -> tuple[bool, int, str]:
    """(equal, rows, first difference) of two feature tables, compared in a process of their own."""
    r = run([sys.executable, "-m", "bench.scale_run", "--compare", str(a), str(b)], capture=True)
    if r.rc != 0:
        return False, 0, f"comparison failed (exit {r.rc})"
    res = json.loads(r.out.strip().splitlines()[-1])
    return res["equal"], res["rows"], res["difference"]


def compare(a: str, b: str) -> None:
    import pandas as pd

    x, y = pd.read_parquet(a), pd.read_parquet(b)
    try:
        pd.testing.assert_frame_equal(x, y, check_exact=True)
        equal, difference = True, ""
    except AssertionError as err:
        equal, difference = False, str(err).splitlines()[0][:300]
    print(json.dumps({"equal": equal, "rows": len(x), "difference": difference}))


def train_quick(small: str, uri: str, reports: str) -> None:
    """A quick admission_180d (small tuning budget, as ``bench.serving_run``) trained on ``small`` and made
    champion in the registry at ``uri``: the service needs a champion whose features match, not a good one."""
    from tests.specs import quick
    from umrisk.training import commands

    commands.train(MODEL, Path(small), Path(reports), uri, spec=quick(MODEL))
    commands.promote(MODEL, Path(small), force=True, reason="scale benchmark", tracking_uri=uri, spec=quick(MODEL))
    print(json.dumps({"trained": MODEL}))


class _AsOfClient(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` adding ``as_of`` to every JSON body it posts: ``bench.serving_run.load`` asking
    for another date than the batch's."""

    def __init__(self, *args, as_of: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._as_of = as_of

    async def post(self, url, *, json=None, **kwargs):  # noqa: A002 - httpx's own keyword
        return await super().post(url, json={**json, "as_of": self._as_of}, **kwargs)


def http_load(url: str, token: str, ids: list[str], concurrency: int, seconds: float, as_of: str | None) -> dict:
    from bench.serving_run import load

    if as_of is None:
        return asyncio.run(load(url, token, ids, concurrency, seconds))
    fake = SimpleNamespace(AsyncClient=partial(_AsOfClient, as_of=as_of), HTTPError=httpx.HTTPError)
    with mock.patch("bench.serving_run.httpx", fake):
        return asyncio.run(load(url, token, ids, concurrency, seconds))


def scorable_at(url: str, token: str, ids: list[str], as_of: str) -> list[str]:
    """Those of ``ids`` that have a score at ``as_of`` (enrolled then), asked in one request."""
    r = httpx.post(f"{url}/v1/score", headers={"Authorization": f"Bearer {token}"}, timeout=300,
                   json={"model": MODEL, "member_ids": ids, "as_of": as_of})
    r.raise_for_status()
    return [s["member_id"] for s in r.json()["scores"] if s.get("probability") is not None]


def serve(store: Path, uri: str, db: str, work: Path, token: str, ids: list[str], workers: int,
          seconds: float) -> dict:
    """Start ``umrisk serve --scores batch`` with ``workers`` workers; start-up, RSS and HTTP figures.

    The service is not niced: its latency under others' load is the figure, and a niced server on a busy
    2-core machine measures the scheduler. Workers are the processes under BentoML's arbiter (the CLI's child).
    """
    import threading

    from tests.processes import free_port

    port = free_port()
    log = work / f"serve{workers}.log"
    cmd = [UMRISK, "serve", "--data", str(store), "--port", str(port), "--tokens", str(work / "tokens.json"),
           "--audit", str(work / f"served{workers}.jsonl"), "--tracking-uri", uri, "--database-url", db,
           "--scores", "batch", "--model", MODEL, "--workers", str(workers), "--rate-limit", "10000000"]
    url = f"http://127.0.0.1:{port}"
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    ps = psutil.Process(proc.pid)
    peaks: dict[int, float] = {}
    names: dict[int, str] = {}
    parents: dict[int, int] = {}
    res: dict = {"workers": workers, "load": os.getloadavg()[0]}

    def worker_rss() -> list[float]:
        return sorted((v for p, v in peaks.items() if p != proc.pid and parents.get(p) != proc.pid), reverse=True)

    try:
        while True:  # ready when /readyz answers 200
            sample(ps, peaks, names, parents)
            if proc.poll() is not None:
                raise RuntimeError(f"umrisk serve exited ({proc.returncode}): {log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.perf_counter() - start > 300:
                raise RuntimeError(f"not ready after 300 s: {log.read_text()[-3000:]}")
            time.sleep(0.1)
        res["startup_s"] = time.perf_counter() - start
        time.sleep(3.0)  # every worker up (the first answering /readyz need not be the last to load)
        sample(ps, peaks, names, parents)
        res["worker_rss_started_gib"] = worker_rss()
        res["processes"] = {f"{p} (parent {parents.get(p)}) {names[p]}": round(v, 3) for p, v in peaks.items()}
        # members scorable at the other date, asked in one request of 200 (its memory is not the figure)
        other = scorable_at(url, token, ids[:200], OTHER_DATE)
        res["other_date_members"] = len(other)
        sample(ps, peaks, names, parents)
        res["worker_rss_after_200_gib"] = worker_rss()
        peaks.clear()
        stop = threading.Event()

        def sampler() -> None:
            while not stop.is_set():
                sample(ps, peaks, names, parents)
                stop.wait(0.2)

        th = threading.Thread(target=sampler, daemon=True)
        th.start()
        for label, as_of, who in (("batch", None, ids), ("other_date", OTHER_DATE, other)):
            for c in (1, 16):
                res[f"{label}_c{c}"] = http_load(url, token, who, c, seconds, as_of)
                res[f"{label}_c{c}"]["load"] = os.getloadavg()[0]
        stop.set()
        th.join()
        res["worker_rss_load_peak_gib"] = worker_rss()
        rss = res["worker_rss_started_gib"] + res["worker_rss_load_peak_gib"]
        res["worker_peak_gib"] = max(rss) if rss else float("nan")
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=60)
    return res


def token_for(work: Path) -> str:
    from umrisk.serving.auth import create_token

    return create_token(work / "tokens.json", "reviewer")[1]


def print_features(n: int, single: Measured | None, dask: Measured, eq: tuple[bool, int, str] | None) -> dict:
    w = dask.children()
    client = dask.peaks.get(dask.root, 0.0)
    # the root is ``nice``, which execs umrisk: the same pid, so the root's peak is the client's
    res = {"members": n, "dask_wall": dask.wall, "dask_tree_peak": dask.tree_peak, "dask_worker_peaks": w,
           "dask_client_peak": client, "dask_rc": dask.rc, "dask_load": dask.load,
           "dask_cpu": dask.cpu}
    print(f"  features, {MODEL} at {ONE_DATE}, {n:,} members:", flush=True)
    if single is not None:
        res.update(single_wall=single.wall, single_peak=single.tree_peak, single_rc=single.rc, single_load=single.load,
                   single_cpu=single.cpu)
        print(f"    single process: {single.wall:.0f} s ({single.cpu:.0f} CPU s), peak {single.tree_peak:.2f} GiB "
              f"(load {single.load:.1f})"
              + ("" if single.rc == 0 else f" (exit {single.rc})"), flush=True)
    worker = max(w) if w else float("nan")
    print(f"    Dask, 2 workers: {dask.wall:.0f} s ({dask.cpu:.0f} CPU s), peak per worker "
          f"{', '.join(f'{x:.2f}' for x in w[:2])} GiB "
          f"(target <= 2 GiB: {verdict(dask.rc == 0 and worker <= 2)}), client {client:.2f} GiB, all processes "
          f"together {dask.tree_peak:.2f} GiB (load {dask.load:.1f})" + ("" if dask.rc == 0 else f" (exit {dask.rc})"),
          flush=True)
    if eq is not None:
        res.update(equal=eq[0], rows=eq[1])
        print(f"    the two tables: {eq[1]:,} rows, equal: {eq[0]} (target identical: {verdict(eq[0])})"
              + (f"; {eq[2]}" if eq[2] else ""), flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=1_000_000)
    ap.add_argument("--big", type=int, default=5_000_000, help="members generated and featurised on Dask (0: skip)")
    ap.add_argument("--small", type=int, default=20_000, help="members of the store the quick model trains on")
    ap.add_argument("--seconds", type=float, default=20.0, help="length of each HTTP load")
    ap.add_argument("--workdir", type=Path, default=None, help="parent of the temporary folder (a big disk)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument("--store", type=Path, default=None,
                    help="an existing store of --members members generated by this command's generate step (its "
                         "figures read from STORE.gen.json when there), used instead of generating; kept")
    ap.add_argument("--single-peak", type=float, default=None,
                    help="with --members 0: the single process's peak (GiB) at --single-members, to extrapolate")
    ap.add_argument("--single-members", type=int, default=1_000_000)
    ap.add_argument("--skip-single", action="store_true",
                    help="leave out the single-process features at --members (measured before; --single-peak "
                         "then gives its peak for the projection)")
    ap.add_argument("--compare", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--train", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.compare:
        return compare(*a.compare)
    if a.train:
        return train_quick(*a.train)

    work = Path(tempfile.mkdtemp(prefix="umrisk-scale-", dir=a.workdir))
    n = a.members
    rec: dict = {"members": n, "big": a.big}
    print(f"scale benchmarks in {work} (every step niced, 2 cores)", flush=True)
    try:
        spec = one_date_spec(work)
        if n:
            rec.update(population(a, work, spec))
        if a.big:
            rec.update(big(a, work, spec, rec.get("features", {}).get("single_peak")))
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(rec, default=str))


def population(a: argparse.Namespace, work: Path, spec: Path) -> dict:
    """Features single against Dask, score-batch and the service, on a store of ``--members`` members."""
    n = a.members
    rec: dict = {}
    if a.store:
        store = a.store
        sidecar = Path(f"{store}.gen.json")
        g = json.loads(sidecar.read_text()) if sidecar.exists() else None
        rec["generate"] = g
        print(f"  generate {n:,} members (--workers 2): " + (f"{g['wall']:.0f} s, peak {g['peak']:.2f} GiB (measured "
              f"when {store} was made)" if g else f"reused {store}, not measured"), flush=True)
    else:
        store = work / f"m{n}"
        g = generate(n, store)
        rec["generate"] = {"wall": g.wall, "peak": g.tree_peak, "rc": g.rc, "load": g.load, "cpu": g.cpu}
        print(f"  generate {n:,} members (--workers 2): {g.wall:.0f} s ({g.cpu:.0f} CPU s), peak {g.tree_peak:.2f} GiB "
              f"(load {g.load:.1f})",
              flush=True)
        if g.rc != 0:
            raise SystemExit("generation failed")
    single = None if a.skip_single else features(store, spec, work / "single.parquet", None)
    dask = features(store, spec, work / "dask.parquet", 2)
    eq = (tables_equal(work / "single.parquet", work / "dask.parquet")
          if single is not None and single.rc == 0 and dask.rc == 0 else None)
    rec["features"] = print_features(n, single, dask, eq)
    for f in ("single.parquet", "dask.parquet"):
        (work / f).unlink(missing_ok=True)
    rec.update(service(a, work, store))
    if not a.store:
        shutil.rmtree(store, ignore_errors=True)
    return rec


def service(a: argparse.Namespace, work: Path, store: Path) -> dict:
    """A quick champion from a small store of the same calendar, score-batch of ``store``, the service on it."""
    import pandas as pd

    n = a.members
    rec: dict = {}
    small = work / f"m{a.small}"
    uri = f"sqlite:///{work / 'mlflow.db'}"
    db = f"sqlite:///{work / 'cases.db'}"
    s = generate(a.small, small)
    t = run([sys.executable, "-m", "bench.scale_run", "--train", str(small), uri, str(work / "reports")], capture=True)
    print(f"  quick {MODEL} on {a.small:,} members (small store {s.wall:.0f} s, training {t.wall:.0f} s)", flush=True)
    if s.rc != 0 or t.rc != 0:
        raise SystemExit("training the quick model failed")
    sb = run([UMRISK, "score-batch", MODEL, "--data", str(store), "--tracking-uri", uri, "--database-url", db,
              "--out", str(work / "batch.parquet"), "--workers", "2", "--json"], capture=True)
    if sb.rc != 0:
        raise SystemExit("score-batch failed")
    r = json.loads(sb.out.strip().splitlines()[-1])
    w = sb.children()
    client = sb.peaks.get(sb.root, 0.0)
    rec["score_batch"] = {"wall": sb.wall, "tree_peak": sb.tree_peak, "worker_peaks": w, "client_peak": client,
                          "rows": r["rows"], "seconds": r["seconds"], "as_of": str(r["as_of"]),
                          "load": sb.load, "cpu": sb.cpu}
    print(f"  score-batch {n:,} members (2 Dask workers): {r['rows']:,} rows on {r['as_of']} in {sb.wall:.0f} s "
          f"({sb.cpu:.0f} CPU s; job {r['seconds']:.0f} s), peak per worker {', '.join(f'{x:.2f}' for x in w[:2])} "
          f"GiB, client "
          f"{client:.2f} GiB, all processes together {sb.tree_peak:.2f} GiB (load {sb.load:.1f})", flush=True)
    ids = pd.read_parquet(work / "batch.parquet", columns=["member_id"])["member_id"].astype(str)
    ids = ids.sample(min(5000, len(ids)), random_state=1).tolist()
    token = token_for(work)
    rec["serve"] = []
    for workers in (1, 2):
        sv = serve(store, uri, db, work, token, ids, workers, a.seconds)
        rec["serve"].append(sv)
        started = ", ".join(f"{x:.2f}" for x in sv["worker_rss_started_gib"])
        loaded = ", ".join(f"{x:.2f}" for x in sv["worker_rss_load_peak_gib"])
        print(f"  umrisk serve --scores batch --workers {workers} on {n:,} members (load {sv['load']:.1f}): ready in "
              f"{sv['startup_s']:.1f} s (target <= 10 s: {verdict(sv['startup_s'] <= 10)}); worker RSS started "
              f"{started} GiB, peak under the loads below {loaded} GiB (target <= 1 GiB: "
              f"{verdict(sv['worker_peak_gib'] <= 1)}); after one request for 200 members at another date "
              f"{', '.join(f'{x:.2f}' for x in sv['worker_rss_after_200_gib'])} GiB", flush=True)
        for label, words in (("batch", f"at the batch's date ({r['as_of']})"),
                             ("other_date", f"at {OTHER_DATE}, history on demand ({sv['other_date_members']} of "
                                            "200 sampled members scorable)")):
            for c in (1, 16):
                h = sv[f"{label}_c{c}"]
                print(f"    {words}, concurrency {c:>2}, {a.seconds:.0f} s: {h['requests']:,} requests, "
                      f"{h['rps']:,.0f}/s, p50 {h['p50_ms']:.1f} ms, p99 {h['p99_ms']:.1f} ms, errors {h['errors']} "
                      f"(load {h['load']:.1f})",
                      flush=True)
    return rec


def big(a: argparse.Namespace, work: Path, spec: Path, single: float | None) -> dict:
    """``--big`` members generated and featurised on Dask; the single process's peak extrapolated."""
    rec: dict = {}
    store = work / f"m{a.big}"
    g = generate(a.big, store)
    rec["big_generate"] = {"wall": g.wall, "peak": g.tree_peak, "rc": g.rc, "load": g.load, "cpu": g.cpu}
    print(f"  generate {a.big:,} members (--workers 2): {g.wall:.0f} s ({g.cpu:.0f} CPU s), peak {g.tree_peak:.2f} GiB "
          f"(load {g.load:.1f})"
          + ("" if g.rc == 0 else f" (exit {g.rc})"), flush=True)
    if g.rc == 0:
        d = features(store, spec, work / "big.parquet", 2)
        rec["big_features"] = print_features(a.big, None, d, None)
    shutil.rmtree(store, ignore_errors=True)
    n = a.members or a.single_members
    single = single if single is not None else a.single_peak
    if single is not None:
        proj = single * a.big / n
        rec["big_single_projected_gib"] = proj
        print(f"    single process not attempted: {single:.2f} GiB at {n:,} members scales to about {proj:.0f} GiB at "
              f"{a.big:,} (the machine has {psutil.virtual_memory().total / GiB:.0f} GiB)", flush=True)
    return rec


if __name__ == "__main__":
    main()
