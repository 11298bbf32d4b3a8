"""Opening the case store: the database URL, the engine, and upgrading the schema in place (Alembic).

The URL is ``--database-url``, else ``UMRISK_DATABASE_URL``, else an SQLite file beside the service's other
files (``sqlite:///<store>/service/cases.db``). PostgreSQL URLs use psycopg 3
(``postgresql+psycopg://user@host:5432/db``; a plain ``postgresql://`` is read as that).
"""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

MIGRATIONS = "umrisk.serving.cases:migrations"


class DatabaseError(RuntimeError):
    """The case store cannot be opened or upgraded; the message names the database (without a password)."""


def default_url(store: Path | str) -> str:
    """The embedded default: an SQLite file in ``<store>/service/``."""
    return f"sqlite:///{Path(store).resolve() / 'service' / 'cases.db'}"


def database_url(given: str | None, store: Path | str | None = None) -> str:
    """``given``, else ``UMRISK_DATABASE_URL``, else the SQLite default beside ``store``."""
    url = given or os.environ.get("UMRISK_DATABASE_URL")
    if url:
        return url
    if store is None:
        raise DatabaseError("no case store: pass --database-url, set UMRISK_DATABASE_URL, or give the store folder")
    return default_url(store)


def shown(url: str) -> str:
    """The URL with any password hidden, for messages."""
    return make_url(url).render_as_string(hide_password=True)


def engine_for(url: str) -> Engine:
    """An engine for ``url``: SQLite files get their folder (private), a busy timeout and foreign keys;
    ``postgresql://`` means psycopg 3."""
    u = make_url(url)
    if u.drivername == "postgresql":
        u = u.set(drivername="postgresql+psycopg")
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            folder = Path(u.database).parent
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        engine = create_engine(u, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record) -> None:
            cur = dbapi_connection.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")  # readers do not wait for the writer
            cur.close()

        return engine
    return create_engine(u, pool_pre_ping=True)


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", MIGRATIONS)
    return cfg


def head() -> str:
    """The newest revision of the migrations shipped with this version."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Upgrade the database in place to ``revision``; return (revision before, revision after)."""
    try:
        before = current(engine)
        cfg = alembic_config()
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
        return before, current(engine)
    except Exception as err:  # noqa: BLE001 - any driver error becomes one message naming the database
        raise DatabaseError(f"case store {shown(str(engine.url))}: cannot upgrade the schema "
                            f"({err.__class__.__name__}: {str(err).splitlines()[0] if str(err) else ''})") from err
