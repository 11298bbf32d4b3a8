"""Real server processes for tests: a free loopback port, and waiting until one answers."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_ready(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    """Poll ``url`` until it answers 200; raise with the tail of ``log`` if the process exits or time runs out."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(url, timeout=2).status == 200:
                return
        except OSError:
            if proc.poll() is not None:
                tail = log.read_text()[-3000:]
                raise RuntimeError(f"{url}: the process exited ({proc.returncode}): {tail}") from None
            time.sleep(0.5)
    raise RuntimeError(f"{url}: not ready after {timeout:.0f} s: {log.read_text()[-3000:]}")
