"""The pages in a real browser: the service's state (the two models of ``tests.service.conftest.served``) with
a case store of its own, the pages served by uvicorn on a free loopback port in a thread, and Debian's
Chromium driven by Playwright (never a downloaded browser)."""

import dataclasses
import datetime as dt
import threading
import time

import pytest
import uvicorn
from playwright.sync_api import sync_playwright
from starlette.applications import Starlette
from starlette.routing import Mount

from tests.processes import free_port
from tests.service.conftest import served, server  # noqa: F401 - the session's trained models, reused
from umrisk.features.schema import read_table
from umrisk.serving.cases.repository import Actor, NewCase, utcnow
from umrisk.serving.state import ServiceState
from umrisk.serving.ui import users
from umrisk.serving.ui.app import ui_app

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
PASSWORD = "correct horse battery staple"
PEOPLE = {"nurse_reviewer": "nina nurse", "physician_reviewer": "phil physician", "outreach": "olga outreach",
          "admin": "adam admin"}


@pytest.fixture(scope="session")
def ui_state(served):  # noqa: F811 - the fixture imported above
    """The service state with its own case store and audit log: a user with a password per role, the store's
    open requests as the backlog, and a few fresh cases of known members."""
    root = served["root"]
    settings = dataclasses.replace(served["settings"], database_url=f"sqlite:///{root / 'ui-cases.db'}",
                                   audit=root / "ui-audit.jsonl")
    state = ServiceState.build(settings)
    for role, name in PEOPLE.items():
        users.set_password(state.cases, name, role, PASSWORD)
    state.cases.load_backlog(read_table(served["store"], "review_requests"), Actor("test", "admin"))
    members = state.scorer.population["member_id"].tolist()
    now = utcnow()
    for i, (hours_ago, urgency) in enumerate([(2, "expedited"), (30, "standard"), (80, "expedited"),
                                              (5, "standard"), (1, "standard"), (3, "expedited")]):
        state.cases.create(NewCase(members[10 + i], "procedure", urgency, now - dt.timedelta(hours=hours_ago),
                                   [{"code": "27447", "system": "CPT"}], [{"code": "M1711", "system": "ICD10CM"}],
                                   requesting_provider="Dr Example, Orthopedics", request_id=f"UI-{i + 1}"),
                           Actor("test", "admin"))
    # one case decided before any test runs, so the dashboard's figures never depend on the tests' order
    doctor = Actor(PEOPLE["physician_reviewer"], "physician_reviewer")
    state.cases.create(NewCase(members[20], "imaging", "standard", now - dt.timedelta(hours=20),
                               [{"code": "70551", "system": "CPT"}], [{"code": "G43909", "system": "ICD10CM"}],
                               requesting_provider="Dr Example, Neurology", request_id="UI-DONE"),
                       Actor("test", "admin"))
    state.cases.claim("UI-DONE", doctor)
    state.cases.determine("UI-DONE", doctor, "approved", reason="Meets the imaging criteria for new headache")
    yield state
    state.cases.dispose()


@pytest.fixture(scope="session")
def ui_url(ui_state):
    """The pages served by uvicorn on loopback, mounted under /ui as the BentoML service mounts them."""
    ui_app.state.umrisk = ui_state
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(Starlette(routes=[Mount("/ui", ui_app)]), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not uv.started and time.time() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/ui"
    uv.should_exit = True
    thread.join(10)


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def context(browser):
    """A fresh browser context (no cookies) at 1280 x 900, recording every request's host."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    ctx.requested = []
    ctx.on("request", lambda r: ctx.requested.append(r.url))
    yield ctx
    ctx.close()


def sign_in(page, base: str, role: str) -> None:
    page.goto(f"{base}/login")
    page.fill("#name", PEOPLE[role])
    page.fill("#password", PASSWORD)
    page.click("form:has(#password) button[type=submit]")
    page.wait_for_load_state()
