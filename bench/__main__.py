"""``make bench``: the benchmarks, printing figures and ratios against their baselines.

For each size in ``BENCH_MEMBERS`` (default 100000,1000000), over 3 years:
- generation and validation: wall time, members per second, peak memory. Targets on a 2-core machine:
  100,000 members generated in under 60 s; 1,000,000 in under 15 minutes within 12 GiB.
- feature building (``bench/features_run.py``): both tasks, events per second, peak memory; and the
  windowed utilization counts by umrisk and by DuckDB on the same frames, median of 3, as a ratio.
  Targets: the admission task for 1,000,000 members at one date in under 5 minutes within 12 GiB;
  the counts within 2x of DuckDB's time.
- HTTP (``bench/http_run.py``): ``umrisk serve`` serving batch scores with 1 and 2 workers beside a minimal
  BentoML service doing the same model work for one member, concurrency 1 and 16. Targets: p50 at most 1.3x
  the minimal service's, throughput at least 0.75x, every score audited durably.
- scale (``bench/scale_run.py``, issue 13), only with ``BENCH_SCALE=1`` (over an hour here): features for
  1,000,000 members on Dask (2 workers) against the single process (identical; at most 2 GiB per worker), a
  5,000,000-member store generated and featurised on Dask, score-batch, and ``umrisk serve --scores batch``
  with 1 and 2 workers (start-up at most 10 s, worker RSS at most 1 GiB). Figures and the projection to 10 and
  50 million members: ``docs/scale.md``.
- train-table on real data (``bench/table_run.py``): the UCI development half, three patient-grouped 80/20
  splits, train-table then evaluate-table beside a plain LightGBM on the same splits. Target: median AUROC
  at least 0.01 above the plain LightGBM's.
- both models at the demo's size (``bench/seeds_run.py``): 20,000 members for each of the seeds 1, 13, 21, 34
  and 55. Targets: both pass their gates on every seed; the readmission lead over the better of LACE and
  HOSPITAL at least +0.03 (median).
- training at 100,000 members (``bench/training_run.py``). Targets: both models in under 10 minutes;
  readmission within 0.02 of the oracle AUROC and at least +0.06 over LACE and HOSPITAL; admission within
  0.02 of its oracle; ICI at most 0.015 for both.
Each step runs as its own process; peak memory is the largest sum of resident memory over the process
and its workers, sampled every 0.2 s.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]  # children run from here, so bench.* and tests.* import
TARGETS = {100_000: (60.0, 12.0), 1_000_000: (900.0, 12.0)}


def run(cmd: list[str], capture: bool = False) -> tuple[float, float, int, str]:
    """Wall seconds, peak resident GiB (process tree), exit status and (if asked) standard output."""
    with tempfile.TemporaryFile(mode="w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE if capture else subprocess.DEVNULL, stderr=err,
                                text=True, cwd=ROOT)
        ps = psutil.Process(proc.pid)
        peak = 0
        while proc.poll() is None:
            try:
                rss = ps.memory_info().rss + sum(c.memory_info().rss for c in ps.children(recursive=True))
                peak = max(peak, rss)
            except psutil.Error:
                pass
            time.sleep(0.2)
        out = proc.stdout.read() if capture and proc.stdout else ""
        if proc.returncode != 0:
            err.seek(0)
            print("  " + "\n  ".join(err.read().strip().splitlines()[-5:]), flush=True)
    return time.perf_counter() - start, peak / 2**30, proc.returncode, out


def main() -> None:
    sizes = [int(s) for s in os.environ.get("BENCH_MEMBERS", "100000,1000000").split(",")]
    umrisk = str(Path(sys.executable).with_name("umrisk"))
    root = Path(tempfile.mkdtemp(prefix="umrisk-bench-"))
    print(f"{'step':<10}{'members':>11}{'seconds':>10}{'members/s':>12}{'peak GiB':>10}  target")
    try:
        for n in sizes:
            out = root / f"m{n}"
            t, mem, rc, _ = run([umrisk, "data", "generate", "--members", str(n), "--years", "3", "--seed", "1",
                              "--out", str(out), "--workers", "2"])
            tt, tm = TARGETS.get(n, (float("nan"), 12.0))
            verdict = "met" if rc == 0 and t <= tt and mem <= tm else "MISSED"
            print(f"{'generate':<10}{n:>11,}{t:>10.1f}{n / t:>12,.0f}{mem:>10.2f}  < {tt:.0f} s, < {tm:.0f} GiB: "
                  f"{verdict}" + ("" if rc == 0 else f" (exit {rc})"), flush=True)
            t, mem, rc, _ = run([umrisk, "data", "validate", str(out)])
            print(f"{'validate':<10}{n:>11,}{t:>10.1f}{n / t:>12,.0f}{mem:>10.2f}  exit {rc}", flush=True)
            features(n, out)
            if n == 100_000:
                training(out)
                serving(out)
                child("HTTP: umrisk serve (batch scores, 1 and 2 workers) beside a minimal BentoML service doing the "
                      "same model work", "bench.http_run", str(out))
            shutil.rmtree(out, ignore_errors=True)
        uci_table()
        seeds()
        if os.environ.get("BENCH_SCALE"):
            child("scale: 1,000,000 and 5,000,000 members (issue 13; docs/scale.md)", "bench.scale_run")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def uci_table() -> None:
    """Issue 9: train-table and evaluate-table on the UCI development half against a plain LightGBM."""
    from bench.table_run import DEFAULT

    table = Path(os.environ.get("UMRISK_UCI_DEV", DEFAULT))
    if not table.exists():
        print(f"  train-table on UCI: skipped ({table} not found; set UMRISK_UCI_DEV)", flush=True)
        return
    child("train-table on the UCI development half, 3 patient-grouped 80/20 splits", "bench.table_run", str(table))


def seeds() -> None:
    """Issue 9: both models' gates and the readmission lead at 20,000 members over five generator seeds."""
    child("both models at 20,000 members, seeds 1, 13, 21, 34, 55 (default tuning budgets)", "bench.seeds_run")


def child(title: str, module: str, *args: str) -> None:
    """Run a benchmark module that prints its own lines and a last JSON line; show its lines, time and peak."""
    print(f"  {title}:", flush=True)
    t, mem, rc, out = run([sys.executable, "-m", module, *args], capture=True)
    if rc != 0:
        print(f"  {module}: failed (exit {rc})", flush=True)
        return
    for line in out.strip().splitlines()[:-1]:  # the last line is the JSON record
        print(line, flush=True)
    print(f"    ({t:.0f} s in all, peak {mem:.2f} GiB)", flush=True)


def features(n: int, store: Path) -> None:
    runner = "bench.features_run"
    results = {}
    for task in ("admission", "readmission", "counts"):
        t, mem, rc, out = run([sys.executable, "-m", runner, str(store), task], capture=True)
        if rc != 0:
            print(f"  features {task} {n:,}: failed (exit {rc})", flush=True)
            return
        results[task] = {**json.loads(out.strip().splitlines()[-1]), "peak": mem, "wall": t}
    a, r, c = results["admission"], results["readmission"], results["counts"]
    print(f"  features {n:,} members: a store of {a['events']:,} events (loaded in {a['load_s']:.1f} s)", flush=True)
    total = a["load_s"] + a["cohort_s"] + a["features_s"]
    ok = total <= 300 and a["peak"] <= 12
    print(f"    admission_180d at one date: {a['points']:,} points; load {a['load_s']:.1f} s + cohort "
          f"{a['cohort_s']:.1f} s + features {a['features_s']:.1f} s = {total:.1f} s, "
          f"{a['events'] / total:,.0f} events/s, peak {a['peak']:.2f} GiB"
          + (f"  (target < 300 s, < 12 GiB: {'met' if ok else 'MISSED'})" if n >= 1_000_000 else ""), flush=True)
    total = r["load_s"] + r["cohort_s"] + r["features_s"]
    print(f"    readmission_30d: {r['points']:,} index stays; load {r['load_s']:.1f} s + cohort {r['cohort_s']:.1f} s "
          f"+ features {r['features_s']:.1f} s = {total:.1f} s, {r['events'] / total:,.0f} events/s, "
          f"peak {r['peak']:.2f} GiB", flush=True)
    ratio = c["counts_umrisk_s"] / c["counts_duckdb_s"]
    print(f"    windowed counts (9 settings x 5 windows), median of 3: umrisk {c['counts_umrisk_s']:.2f} s, "
          f"DuckDB {c['counts_duckdb_s']:.2f} s, ratio {ratio:.2f} (target <= 2: "
          f"{'met' if ratio <= 2 else 'MISSED'}); results equal: {c['counts_equal']}", flush=True)


def training(store: Path) -> None:
    """Issue 9 targets on the default 100,000-member population (issue 4's for time and MLflow's share)."""
    t, mem, rc, out = run([sys.executable, "-m", "bench.training_run", str(store)],
                          capture=True)
    if rc != 0:
        print(f"  training: failed (exit {rc})", flush=True)
        return
    r = json.loads(out.strip().splitlines()[-1])
    print(f"  training both models (default tuning budgets, MLflow on): {r['total_wall']:.0f} s, peak {mem:.2f} GiB "
          f"(target < 600 s: {'met' if r['total_wall'] < 600 else 'MISSED'})", flush=True)
    for model in ("readmission_30d", "admission_180d"):
        m = r[model]
        s, test, base = m["seconds"], m["test"], m["baselines"]
        work = sum(v for k, v in s.items() if k != "mlflow")
        share = s["mlflow"] / work
        oracle = base.get("oracle", float("nan"))
        line = (f"    {model}: {m['wall']:.0f} s (features {s['features']:.0f}, tuning {s['tuning']:.0f}, fit "
                f"{s['fit']:.0f}, evaluation {s['evaluation']:.0f}, report {s['report']:.0f}, "
                f"MLflow {s['mlflow']:.1f}); "
                f"test AUROC {test['auroc']:.3f} ({test['auroc_ci_low']:.3f}-{test['auroc_ci_high']:.3f}), oracle "
                f"{oracle:.3f} (gap {oracle - test['auroc']:.3f}, target <= 0.02: "
                f"{'met' if oracle - test['auroc'] <= 0.02 else 'MISSED'}); ICI {test['ici']:.4f} (target <= 0.015: "
                f"{'met' if test['ici'] <= 0.015 else 'MISSED'}); MLflow adds {share:.1%} (target <= 10 %: "
                f"{'met' if share <= 0.10 else 'MISSED'})")
        if model == "readmission_30d":
            lead = test["auroc"] - max(base["lace"], base["hospital"])
            line += (f"; LACE {base['lace']:.3f}, HOSPITAL {base['hospital']:.3f}, lead {lead:+.3f} "
                     f"(target >= 0.06: {'met' if lead >= 0.06 else 'MISSED'}); the oracle leads by "
                     f"{oracle - max(base['lace'], base['hospital']):+.3f} on the same points")
        else:
            line += f"; prior-year admissions {base['prior_365d_inpatient']:.3f}"
        print(line, flush=True)


def serving(store: Path) -> None:
    """Issue 5 targets on the 100,000-member population."""
    t, mem, rc, out = run([sys.executable, "-m", "bench.serving_run", str(store)], capture=True)
    if rc != 0:
        print(f"  serving: failed (exit {rc})", flush=True)
        return
    r = json.loads(out.strip().splitlines()[-1])
    ratio = r["one_ms"][0] / r["raw_one_ms"][0]
    print(f"  serving (service start-up {r['startup_s']:.0f} s, population {r['population']:,}):", flush=True)
    print(f"    one member with reasons, in process: median {r['one_ms'][0]:.3f} ms, p99 {r['one_ms'][1]:.3f} ms; raw "
          f"predict + pred_contrib (1 thread): median {r['raw_one_ms'][0]:.3f} ms, p99 {r['raw_one_ms'][1]:.3f} ms; "
          f"ratio {ratio:.2f} (target <= 3: {'met' if ratio <= 3 else 'MISSED'})", flush=True)
    b = r["batch_rows_per_s"] / r["raw_batch_rows_per_s"]
    print(f"    batch of 1,000: {r['batch_rows_per_s']:,.0f} rows/s; raw predict + contributions "
          f"{r['raw_batch_rows_per_s']:,.0f} rows/s; {b:.2f} of raw (target >= 0.5: {'met' if b >= 0.5 else 'MISSED'})",
          flush=True)
    o = r["outreach_s"] / r["raw_predict_population_s"]
    full = r["rescore_s"] / r["raw_predict_population_s"]
    print(f"    outreach of 1,000 over {r['population']:,} members: request {1000 * r['outreach_s']:.0f} ms vs raw "
          f"predict of the same matrix {1000 * r['raw_predict_population_s']:.0f} ms, ratio {o:.2f} (target <= 2: "
          f"{'met' if o <= 2 else 'MISSED'}); without the start-up cache (predict, calibrate, rank, explain 1,000) "
          f"{1000 * r['rescore_s']:.0f} ms, ratio {full:.2f}", flush=True)
    for c in (1, 16):
        h = r[f"http_c{c}"]
        verdict = ""
        if c == 1:
            ok = h["p50_ms"] <= 10 and h["p99_ms"] <= 50 and h["errors"] == 0
            verdict = f" (target p50 <= 10 ms, p99 <= 50 ms, no errors: {'met' if ok else 'MISSED'})"
        print(f"    HTTP concurrency {c:>2}, 30 s: {h['requests']:,} requests, {h['rps']:,.0f}/s, "
              f"p50 {h['p50_ms']:.1f} ms, "
              f"p99 {h['p99_ms']:.1f} ms, errors {h['errors']}{verdict}", flush=True)


if __name__ == "__main__":
    main()
