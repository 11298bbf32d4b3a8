"""Bearer tokens with roles. The token file holds only SHA-256 hashes; a token is shown once, at creation.

Roles: ``reviewer`` (score, review queue), ``outreach`` (score, outreach), ``admin`` (everything).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

ROLES = ("reviewer", "outreach", "admin")
ALLOWED = {
    "score": {"reviewer", "outreach", "admin"},
    "review-queue": {"reviewer", "admin"},
    "outreach": {"outreach", "admin"},
    "models": {"reviewer", "outreach", "admin"},
}


@dataclass(frozen=True)
class Caller:
    token_id: str
    role: str
    name: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(path: Path, role: str, name: str = "") -> tuple[str, str]:
    """Add a token of ``role`` to the token file; return ``(token_id, token)``. Only the hash is stored."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    token = "umr_" + secrets.token_urlsafe(32)
    token_id = secrets.token_hex(4)
    entries = json.loads(path.read_text()) if path.exists() else []
    entries.append({"id": token_id, "role": role, "name": name or role, "sha256": _hash(token),
                    "created": pd.Timestamp.now(tz="UTC").isoformat()})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(entries, indent=2))
    os.chmod(tmp, 0o600)
    tmp.replace(path)
    return token_id, token


class TokenStore:
    """The token file, re-read when it changes, so a new token works without a restart."""

    def __init__(self, path: Path):
        self.path = path
        self._mtime = -1.0
        self._by_hash: dict[str, Caller] = {}

    def _refresh(self) -> None:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            self._by_hash, self._mtime = {}, -1.0
            return
        if mtime != self._mtime:
            entries = json.loads(self.path.read_text())
            self._by_hash = {e["sha256"]: Caller(e["id"], e["role"], e.get("name", e["role"])) for e in entries
                             if e.get("role") in ROLES}
            self._mtime = mtime

    def check(self, authorization: str | None) -> Caller | None:
        """The caller of an ``Authorization: Bearer <token>`` header, or None."""
        if not authorization or not authorization.startswith("Bearer "):
            return None
        self._refresh()
        digest = _hash(authorization.removeprefix("Bearer ").strip())
        for known, caller in self._by_hash.items():
            if hmac.compare_digest(known, digest):
                return caller
        return None
