"""``make bench``: the benchmarks, printing figures and ratios against their baselines.

For each size in ``BENCH_MEMBERS`` (default 100000,1000000), over 3 years:
- generation and validation: wall time, members per second, peak memory. Targets on a 2-core machine:
  100,000 members generated in under 60 s; 1,000,000 in under 15 minutes within 12 GiB.
- feature building (``bench/features_run.py``): both tasks, events per second, peak memory; and the
  windowed utilization counts by umrisk and by DuckDB on the same frames, median of 3, as a ratio.
  Targets: the admission task for 1,000,000 members at one date in under 5 minutes within 12 GiB;
  the counts within 2x of DuckDB's time.
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

TARGETS = {100_000: (60.0, 12.0), 1_000_000: (900.0, 12.0)}


def run(cmd: list[str], capture: bool = False) -> tuple[float, float, int, str]:
    """Wall seconds, peak resident GiB (process tree), exit status and (if asked) standard output."""
    with tempfile.TemporaryFile(mode="w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE if capture else subprocess.DEVNULL, stderr=err,
                                text=True)
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
            shutil.rmtree(out, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def features(n: int, store: Path) -> None:
    t, mem, rc, out = run([sys.executable, str(Path(__file__).with_name("features_run.py")), str(store)],
                          capture=True)
    if rc != 0:
        print(f"features  {n:>11,}  failed (exit {rc})", flush=True)
        return
    r = json.loads(out.strip().splitlines()[-1])
    adm = r["admission_cohort_s"] + r["admission_features_s"]
    verdict = "met" if adm <= 300 and mem <= 12 else "MISSED"
    ratio = r["counts_umrisk_s"] / r["counts_duckdb_s"]
    print(f"  features {n:,} members: store of {r['events']:,} events loaded in {r['load_s']:.1f} s; "
          f"process peak {mem:.2f} GiB", flush=True)
    print(f"    admission_180d at one date: {r['admission_points']:,} points, cohort {r['admission_cohort_s']:.1f} s "
          f"+ features {r['admission_features_s']:.1f} s = {adm:.1f} s, {r['events'] / adm:,.0f} events/s "
          + (f"(target < 300 s, < 12 GiB: {verdict})" if n >= 1_000_000 else ""), flush=True)
    rd = r["readmission_cohort_s"] + r["readmission_features_s"]
    print(f"    readmission_30d: {r['readmission_points']:,} index stays, {rd:.1f} s, "
          f"{r['events'] / rd:,.0f} events/s", flush=True)
    print(f"    windowed counts (9 settings x 5 windows), median of 3: umrisk {r['counts_umrisk_s']:.2f} s, "
          f"DuckDB {r['counts_duckdb_s']:.2f} s, ratio {ratio:.2f} (target <= 2: "
          f"{'met' if ratio <= 2 else 'MISSED'}); results equal: {r['counts_equal']}", flush=True)


if __name__ == "__main__":
    main()
