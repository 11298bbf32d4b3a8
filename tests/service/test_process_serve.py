"""`umrisk serve` as a real process: a signal sent to it alone stops everything it started."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.processes import free_port, wait_until_ready


def _answers(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_to_umrisk_serve_stops_the_server_and_its_workers(served, tmp_path, sig):
    s = served["settings"]
    port = free_port()
    log = tmp_path / "serve.log"
    exe = Path(sys.executable).with_name("umrisk")
    proc = subprocess.Popen([str(exe), "serve", "--data", str(s.data), "--port", str(port), "--tokens", str(s.tokens),
                             "--audit", str(tmp_path / "audit.jsonl"), "--tracking-uri", served["uri"]],
                            stdout=open(log, "w"), stderr=subprocess.STDOUT,  # noqa: SIM115
                            start_new_session=True, env={**os.environ})
    started: list[psutil.Process] = []
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/readyz", proc, log, 180)
        started = psutil.Process(proc.pid).children(recursive=True)
        assert started, "umrisk serve started no process"
        os.kill(proc.pid, sig)  # to umrisk serve alone, as `kill PID` or a supervisor would
        proc.wait(timeout=30)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (_answers(port) or any(_alive(p) for p in started)):
            time.sleep(0.2)
        assert not _answers(port), f"port {port} still answers after umrisk serve stopped"
        left = [p.pid for p in started if _alive(p)]
        assert not left, f"processes started by umrisk serve still running: {left}"
        assert proc.returncode == 0
    finally:
        for p in [*started, psutil.Process(proc.pid)] if proc.poll() is None else started:
            if _alive(p):
                p.kill()
