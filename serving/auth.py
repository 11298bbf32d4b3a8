"""Bearer tokens with roles. The token file holds only SHA-256 hashes; a token is shown once, at creation.

Roles: ``nurse_reviewer`` and ``physician_reviewer`` (score, work the review queue: a nurse may approve, pend or
escalate, a physician may approve or deny), ``outreach`` (score, outreach lists and contacts), ``admin`` (the
service: everything but determinations). A token names its user (``name``): the person the case store records
as claiming, noting and deciding. Files written before these roles hold ``reviewer``, read as
``nurse_reviewer`` (the role that may do everything ``reviewer`` could).

The file is a JSON list of ``{"id", "role", "name", "sha256", "created", "expires"}`` (``expires`` ISO 8601,
optional: a token past it is refused), written whole to a private
temporary file and renamed over the old one, so a reader never sees half of it. A malformed file is refused
at start-up (``TokenStore.load``); if it becomes unreadable while the service runs, the tokens read last are
kept and a warning is logged.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from umrisk.serving.private_files import replace_private

log = logging.getLogger("umrisk.serving")
ROLES = ("nurse_reviewer", "physician_reviewer", "outreach", "admin")
LEGACY_ROLES = {"reviewer": "nurse_reviewer"}  # roles of older token files, read as the role they became
REVIEWERS = {"nurse_reviewer", "physician_reviewer"}
ALLOWED = {
    "score": {*REVIEWERS, "outreach", "admin"},
    "review-queue": {*REVIEWERS, "admin"},
    "outreach": {"outreach", "admin"},
    "models": {*REVIEWERS, "outreach", "admin"},
    "review-intake": {*REVIEWERS, "admin"},  # a request filed (JSON or PAS); never decided here
    "review-case": {*REVIEWERS, "admin"},  # read a case and its history; record an appeal; release (admin)
    "review-work": set(REVIEWERS),  # claim, release, notes, determinations: people who review
    "review-metrics": {*REVIEWERS, "admin"},
    "outreach-contacts": {"outreach", "admin"},
}
_SHA256 = re.compile(r"[0-9a-f]{64}")


class TokenFileError(RuntimeError):
    """The token file cannot be used (not JSON, cut short, or an entry missing a field); the message names
    the file and the entry."""


@dataclass(frozen=True)
class Caller:
    token_id: str
    role: str
    name: str
    expires: str | None = None


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def read_tokens(path: Path) -> list[dict]:
    """The entries of the token file (``[]`` when it does not exist), each checked; raise ``TokenFileError``
    naming the file and the entry otherwise."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as err:
        raise TokenFileError(f"token file {path}: cannot be read ({err.__class__.__name__}: {err})") from err
    if not text.strip():
        return []
    try:
        entries = json.loads(text)
    except json.JSONDecodeError as err:
        raise TokenFileError(f"token file {path}: not valid JSON at line {err.lineno}, column {err.colno} "
                             f"({err.msg}); the file may be cut short: restore it, or remove it and create "
                             "the tokens again with `umrisk token create`") from err
    if not isinstance(entries, list):
        raise TokenFileError(f"token file {path}: expected a JSON list of tokens, found {type(entries).__name__}")
    seen = set()
    for i, e in enumerate(entries):
        where = f"token file {path}: entry {i + 1}"
        if not isinstance(e, dict):
            raise TokenFileError(f"{where} is not an object")
        missing = [k for k in ("id", "role", "sha256") if not isinstance(e.get(k), str) or not e.get(k)]
        if missing:
            raise TokenFileError(f"{where} lacks {', '.join(missing)}")
        e["role"] = LEGACY_ROLES.get(e["role"], e["role"])
        if e["role"] not in ROLES:
            raise TokenFileError(f"{where} (id {e['id']}): unknown role {e['role']!r}; roles are {', '.join(ROLES)}")
        if not _SHA256.fullmatch(e["sha256"]):
            raise TokenFileError(f"{where} (id {e['id']}): sha256 is not 64 lower-case hex digits")
        if e.get("expires") is not None and _expiry(e["expires"]) is None:
            raise TokenFileError(f"{where} (id {e['id']}): expires {e['expires']!r} is not an ISO 8601 time")
        if e["id"] in seen:
            raise TokenFileError(f"{where}: id {e['id']} appears twice")
        seen.add(e["id"])
    return entries


def _write_tokens(path: Path, entries: list[dict]) -> None:
    """Write the whole file privately (0600) beside ``path``, flush it to disk, then rename it into place."""
    replace_private(path, json.dumps(entries, indent=2))


def _expiry(value: object) -> pd.Timestamp | None:
    """An ``expires`` value as an aware UTC time, or None when it is not an ISO 8601 time."""
    try:
        t = pd.Timestamp(str(value))
    except (ValueError, TypeError):
        return None
    if pd.isna(t):
        return None
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def expired(entry: dict, now: pd.Timestamp | None = None) -> bool:
    t = _expiry(entry["expires"]) if entry.get("expires") else None
    return t is not None and t <= (now or pd.Timestamp.now(tz="UTC"))


def create_token(path: Path, role: str, name: str = "", expires_days: float | None = None) -> tuple[str, str]:
    """Add a token of ``role`` for the user ``name`` to the token file, valid for ``expires_days`` (None: no
    expiry); return ``(token_id, token)``. Only the hash is stored. ``reviewer`` (the role of older files)
    makes a ``nurse_reviewer``."""
    role = LEGACY_ROLES.get(role, role)
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    token = "umr_" + secrets.token_urlsafe(32)
    entries = read_tokens(path)
    ids = {e["id"] for e in entries}
    token_id = secrets.token_hex(4)
    while token_id in ids:
        token_id = secrets.token_hex(4)
    now = pd.Timestamp.now(tz="UTC")
    entry = {"id": token_id, "role": role, "name": name or role, "sha256": _hash(token), "created": now.isoformat()}
    if expires_days is not None:
        if expires_days <= 0:
            raise ValueError(f"expires_days must be positive (got {expires_days})")
        entry["expires"] = (now + pd.Timedelta(days=expires_days)).isoformat()
    entries.append(entry)
    _write_tokens(path, entries)
    return token_id, token


def list_tokens(path: Path) -> list[dict]:
    """Id, role, name, creation and expiry time of each token, and whether it has expired (never its hash)."""
    return [{"id": e["id"], "role": e["role"], "name": e.get("name", e["role"]), "created": e.get("created", ""),
             "expires": e.get("expires") or "", "expired": expired(e)} for e in read_tokens(path)]


def revoke_token(path: Path, token_id: str) -> dict:
    """Remove the token ``token_id`` from the file; return what was removed (without its hash)."""
    entries = read_tokens(path)
    kept = [e for e in entries if e["id"] != token_id]
    if len(kept) == len(entries):
        raise KeyError(f"no token with id {token_id} in {path}")
    _write_tokens(path, kept)
    gone = next(e for e in entries if e["id"] == token_id)
    return {"id": gone["id"], "role": gone["role"], "name": gone.get("name", gone["role"])}


def bearer(authorization: str | None) -> str | None:
    """The credentials of an ``Authorization: Bearer <token>`` header; the scheme is case-insensitive.

    >>> bearer("bearer abc"), bearer("BEARER  abc "), bearer("Basic abc"), bearer("Bearer")
    ('abc', 'abc', None, None)
    """
    if not authorization:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() != "bearer" or not credentials:
        return None
    return credentials


class TokenStore:
    """The token file, re-read when it changes, so a new or revoked token takes effect without a restart."""

    def __init__(self, path: Path):
        self.path = path
        self._seen: tuple | None = None
        self._by_hash: dict[str, Caller] = {}

    def load(self) -> int:
        """Read the file now (start-up); raise ``TokenFileError`` if it is malformed; return the token count."""
        seen = self._signature()
        self._use(read_tokens(self.path))
        self._seen = seen
        return len(self._by_hash)

    def __len__(self) -> int:
        return len(self._by_hash)

    def _signature(self) -> tuple | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino  # ctime: a chmod counts too

    def _use(self, entries: list[dict]) -> None:
        self._by_hash = {e["sha256"]: Caller(e["id"], e["role"], e.get("name", e["role"]), e.get("expires"))
                         for e in entries}

    def _refresh(self) -> None:
        seen = self._signature()
        if seen == self._seen:
            return
        self._seen = seen
        if seen is None:
            if self._by_hash:
                log.warning("token file %s was removed: no token is accepted until it is created again", self.path)
            self._by_hash = {}
            return
        try:
            self._use(read_tokens(self.path))
        except TokenFileError as err:
            log.warning("%s; keeping the %d token(s) read before", err, len(self._by_hash))

    def check(self, authorization: str | None) -> Caller | None:
        """The caller of an ``Authorization: Bearer <token>`` header, or None."""
        token = bearer(authorization)
        if token is None:
            return None
        self._refresh()
        digest = _hash(token)
        for known, caller in self._by_hash.items():
            if hmac.compare_digest(known, digest):
                return None if caller.expires and expired({"expires": caller.expires}) else caller
        return None
