"""The append-only audit log: one JSON line per member scored, each carrying the hash of the previous one.

``verify`` re-computes the chain and names the first entry that does not match (edited, removed,
inserted or reordered lines all break it).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from pathlib import Path

import pandas as pd

GENESIS = "0" * 64


def _digest(entry: dict) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class AuditLog:
    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)

    def append(self, entries: list[dict]) -> None:
        """Append entries (caller, role, endpoint, member, model, version, probability...) under a file lock,
        so that several worker processes extend one chain."""
        if not entries:
            return
        with self.path.open("a+", encoding="utf-8") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                prev, seq = self._last(fh)
                now = pd.Timestamp.now(tz="UTC").isoformat()
                lines = []
                for e in entries:
                    seq += 1
                    entry = {"seq": seq, "time": now, **e, "prev_hash": prev}
                    entry["hash"] = _digest(entry)
                    prev = entry["hash"]
                    lines.append(json.dumps(entry, sort_keys=True, separators=(",", ":")))
                fh.seek(0, os.SEEK_END)
                fh.write("\n".join(lines) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    @staticmethod
    def _last(fh) -> tuple[str, int]:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        if size == 0:
            return GENESIS, 0
        block = min(size, 65536)
        fh.seek(size - block)
        tail = fh.read(block).strip().splitlines()
        last = json.loads(tail[-1])
        return last["hash"], int(last["seq"])

    def entries(self, endpoint: str | None = None) -> list[dict]:
        out = []
        with self.path.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    e = json.loads(line)
                    if endpoint is None or e.get("endpoint") == endpoint:
                        out.append(e)
        return out


def verify(path: Path) -> tuple[bool, int, str]:
    """``(ok, entries checked, message)``; the message names the first broken entry by line and sequence."""
    prev = GENESIS
    n = 0
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                e = json.loads(line)
            except json.JSONDecodeError:
                return False, n, f"line {lineno}: not a JSON object"
            if e.get("prev_hash") != prev:
                return False, n, (f"line {lineno} (seq {e.get('seq')}): prev_hash does not match the entry before "
                                  "(an entry was removed, inserted or reordered)")
            if _digest(e) != e.get("hash"):
                return False, n, f"line {lineno} (seq {e.get('seq')}): content does not match its hash (edited)"
            prev = e["hash"]
            n += 1
    return True, n, f"{n} entries, chain intact"
