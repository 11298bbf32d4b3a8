"""People who sign in to the pages with a password: the case store's ``users`` table, whose ``password_hash``
column (migration 0002) holds an argon2id hash (argon2-cffi's defaults, RFC 9106's second recommended
setting). A user without a hash signs in with a token only.

The column is reached through SQLAlchemy Core here, so that these functions need nothing of the ORM model
beyond the table's name and columns.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from umrisk.serving.auth import ROLES
from umrisk.serving.cases.repository import CaseStore, utcnow

MIN_PASSWORD = 12
USERS = sa.table("users", sa.column("id", sa.Integer), sa.column("name", sa.String),
                 sa.column("role", sa.String), sa.column("password_hash", sa.String),
                 sa.column("created_at", sa.DateTime), sa.column("last_seen", sa.DateTime))
_HASHER = PasswordHasher()
_DUMMY = _HASHER.hash("a password nobody has, so unknown names take as long as known ones")


@dataclass(frozen=True)
class User:
    name: str
    role: str
    stamp: str  # changes when the password changes: a session made before ends


def _stamp(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def set_password(store: CaseStore, name: str, role: str, password: str) -> bool:
    """Create the user ``name`` with ``role`` and ``password``, or give an existing one this role and password;
    return whether the user is new. ``ValueError`` for an unknown role or a password under 12 characters."""
    name = name.strip()
    if not name or len(name) > 128:
        raise ValueError("a user name is 1 to 128 characters")
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"a password has at least {MIN_PASSWORD} characters")
    hashed, now = _HASHER.hash(password), utcnow()
    with store.engine.begin() as conn:
        found = conn.execute(sa.select(USERS.c.id).where(USERS.c.name == name)).first()
        if found is None:
            conn.execute(sa.insert(USERS).values(name=name, role=role, password_hash=hashed, created_at=now,
                                                 last_seen=now))
            return True
        conn.execute(sa.update(USERS).where(USERS.c.id == found.id).values(role=role, password_hash=hashed))
        return False


def check_password(store: CaseStore, name: str, password: str) -> User | None:
    """The user when ``password`` is theirs, else None (an unknown name costs the same time as a wrong password)."""
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(USERS.c.role, USERS.c.password_hash).where(USERS.c.name == name)).first()
    try:
        if row is None or not row.password_hash:
            _HASHER.verify(_DUMMY, password + "x")
            return None
        _HASHER.verify(row.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    return User(name, row.role, _stamp(row.password_hash))


def current(store: CaseStore, name: str) -> User | None:
    """The user as the case store holds them now (None: gone, or no password any more)."""
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(USERS.c.role, USERS.c.password_hash).where(USERS.c.name == name)).first()
    if row is None or not row.password_hash:
        return None
    return User(name, row.role, _stamp(row.password_hash))


def list_users(store: CaseStore) -> list[dict]:
    """Every user: name, role, whether they have a password, first and last seen."""
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(USERS).order_by(USERS.c.name)).all()
    return [{"name": r.name, "role": r.role, "password": bool(r.password_hash), "created_at": r.created_at,
             "last_seen": r.last_seen} for r in rows]
