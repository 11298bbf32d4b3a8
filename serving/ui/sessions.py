"""Sessions of the pages: a signed cookie, and a CSRF token checked on every form.

The cookie holds who signed in (name, role), how (a token's id, or ``password`` with a stamp of the
password hash), a random CSRF token and an expiry, signed with HMAC-SHA256 under a key kept in a private file
beside the token file (``<tokens>.ui-key``, created 0600 on first use), so that every worker reads the same
sessions and a restart keeps them. It is HttpOnly, SameSite=Strict, and Secure when the page came over TLS.
On every request the signature and expiry are checked and the way in is checked again (the token not
revoked or expired, the password not changed, the role the same), so a revoked user is out at once.

A form carries the session's CSRF token in a hidden field; a POST whose field does not match is refused. The
sign-in form, before there is a session, gets its token from a short-lived signed cookie of its own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

COOKIE = "umrisk_session"
LOGIN_COOKIE = "umrisk_signin"
SESSION_SECONDS = 8 * 3600  # one working shift
LOGIN_SECONDS = 1800


@dataclass(frozen=True)
class Session:
    name: str
    role: str
    via: str  # "token:<id>" or "password"
    stamp: str  # the password stamp ("" for tokens)
    csrf: str
    expires: float

    @property
    def token_id(self) -> str:
        """What the audit log records as the caller: the token's id, or ``user:<name>`` for a password."""
        return self.via.removeprefix("token:") if self.via.startswith("token:") else f"user:{self.name}"


def key_file(tokens: Path) -> Path:
    return tokens.with_name(tokens.name + ".ui-key")


def load_key(path: Path) -> bytes:
    """The signing key in ``path``, created (random 256 bits, 0600) when there is none."""
    try:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another worker made it first
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    key = secrets.token_bytes(32)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(key.hex() + "\n")
    return key


class Signer:
    """Signs and reads the cookies' JSON bodies."""

    def __init__(self, key: bytes):
        self.key = key

    def _mac(self, body: bytes) -> str:
        return hmac.new(self.key, body, hashlib.sha256).hexdigest()

    def dumps(self, data: dict) -> str:
        body = base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")
        return f"{body}.{self._mac(body.encode())}"

    def loads(self, value: str | None) -> dict | None:
        """The body of a cookie whose signature holds and that has not expired (``e``), else None."""
        if not value or "." not in value:
            return None
        body, mac = value.rsplit(".", 1)
        if not hmac.compare_digest(mac, self._mac(body.encode())):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except ValueError:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("e"), int | float) or data["e"] < time.time():
            return None
        return data

    def session(self, name: str, role: str, via: str, stamp: str = "") -> tuple[str, Session]:
        s = Session(name, role, via, stamp, secrets.token_urlsafe(32), time.time() + SESSION_SECONDS)
        return self.dumps({"n": s.name, "r": s.role, "v": s.via, "k": s.stamp, "c": s.csrf, "e": s.expires}), s

    def read_session(self, value: str | None) -> Session | None:
        d = self.loads(value)
        if d is None or not all(isinstance(d.get(k), str) for k in ("n", "r", "v", "k", "c")):
            return None
        return Session(d["n"], d["r"], d["v"], d["k"], d["c"], float(d["e"]))

    def login_token(self) -> tuple[str, str]:
        """A CSRF token for the sign-in form and the cookie that vouches for it."""
        csrf = secrets.token_urlsafe(32)
        return self.dumps({"c": csrf, "e": time.time() + LOGIN_SECONDS}), csrf


def same(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))
