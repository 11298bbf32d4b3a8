"""``make bench``: generation and validation throughput and peak memory (issue 2 targets).

Each step runs as its own ``umrisk`` process; peak memory is the largest sum of resident memory over the
process and its workers, sampled every 0.2 s. Sizes come from ``BENCH_MEMBERS`` (default 100000,1000000).
Targets on a 2-core machine: 100,000 members generated in under 60 s; 1,000,000 in under 15 minutes
within 12 GiB.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

TARGETS = {100_000: (60.0, 12.0), 1_000_000: (900.0, 12.0)}


def run(cmd: list[str]) -> tuple[float, float, int]:
    """Wall seconds, peak resident GiB (process tree) and exit status of ``cmd``."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ps = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            rss = ps.memory_info().rss + sum(c.memory_info().rss for c in ps.children(recursive=True))
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(0.2)
    return time.perf_counter() - start, peak / 2**30, proc.returncode


def main() -> None:
    sizes = [int(s) for s in os.environ.get("BENCH_MEMBERS", "100000,1000000").split(",")]
    umrisk = str(Path(sys.executable).with_name("umrisk"))
    root = Path(tempfile.mkdtemp(prefix="umrisk-bench-"))
    print(f"{'step':<10}{'members':>11}{'seconds':>10}{'members/s':>12}{'peak GiB':>10}  target")
    try:
        for n in sizes:
            out = root / f"m{n}"
            t, mem, rc = run([umrisk, "data", "generate", "--members", str(n), "--years", "3", "--seed", "1",
                              "--out", str(out), "--workers", "2"])
            tt, tm = TARGETS.get(n, (float("nan"), 12.0))
            verdict = "met" if rc == 0 and t <= tt and mem <= tm else "MISSED"
            print(f"{'generate':<10}{n:>11,}{t:>10.1f}{n / t:>12,.0f}{mem:>10.2f}  < {tt:.0f} s, < {tm:.0f} GiB: "
                  f"{verdict}" + ("" if rc == 0 else f" (exit {rc})"), flush=True)
            t, mem, rc = run([umrisk, "data", "validate", str(out)])
            print(f"{'validate':<10}{n:>11,}{t:>10.1f}{n / t:>12,.0f}{mem:>10.2f}  exit {rc}", flush=True)
            shutil.rmtree(out, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
