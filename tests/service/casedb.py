"""Fixtures of the case-store tests: a fresh PostgreSQL database per test session (dropped after), the case
store on SQLite or PostgreSQL, and the API with a case store and people's tokens of its own.

PostgreSQL is required, not optional: on this project's machines a server listens on 127.0.0.1:5432 (trust
authentication, database ``test``; ``UMRISK_TEST_POSTGRES`` names another). When it is absent the tests that
need it fail with one line saying so; they are never skipped.
"""

import dataclasses
import os
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from umrisk.serving.api import app
from umrisk.serving.audit import AuditLog
from umrisk.serving.auth import TokenStore, create_token
from umrisk.serving.cases.repository import CaseStore

SERVER = os.environ.get("UMRISK_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PEOPLE = {"nina": "nurse_reviewer", "nora": "nurse_reviewer", "phil": "physician_reviewer",
          "pia": "physician_reviewer", "ops": "admin", "carla": "outreach"}


@pytest.fixture(scope="session")
def postgres_url():
    """A new, empty database on the PostgreSQL server for this test session (each xdist worker has its own)."""
    admin = create_engine(SERVER, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as err:  # noqa: BLE001 - any driver error means the same thing here
        admin.dispose()
        pytest.fail(f"PostgreSQL is required for the case-store tests and is not reachable at "
                    f"{make_url(SERVER).render_as_string(hide_password=True)} ({err.__class__.__name__}): start the "
                    "server (trust authentication, database test; on this project's machines: pg_ctlcluster "
                    "--skip-systemctl-redirect $(ls /etc/postgresql) main start) or set UMRISK_TEST_POSTGRES",
                    pytrace=False)
    name = f"umrisk_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(SERVER).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory):
    return f"sqlite:///{tmp_path_factory.mktemp('casestore') / 'cases.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def case_url(request):
    """The case store's URL, once on SQLite and once on PostgreSQL."""
    return request.getfixturevalue({"sqlite": "sqlite_url", "postgresql": "postgres_url"}[request.param])


@pytest.fixture
def case_store(case_url):
    store = CaseStore.open(case_url)
    yield store
    store.dispose()


@pytest.fixture
def workflow(client, case_store, tmp_path):
    """The API (the session's service state) with this test's case store, audit log and a token per person;
    the session's state is put back after the test."""
    base = app.state.umrisk
    tokens_file = tmp_path / "tokens.json"
    tokens = {name: create_token(tokens_file, role, name)[1] for name, role in PEOPLE.items()}
    token_store = TokenStore(tokens_file)
    token_store.load()
    audit = AuditLog(tmp_path / "audit.jsonl")
    app.state.umrisk = dataclasses.replace(base, tokens=token_store, audit=audit, cases=case_store)
    try:
        yield {"client": client, "tokens": tokens, "audit": audit, "store": case_store,
               "members": base.scorer.population["member_id"].tolist(), "models": sorted(base.models)}
    finally:
        app.state.umrisk = base


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}
