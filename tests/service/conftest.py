import os
import subprocess
import sys
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from tests.processes import free_port, wait_until_ready
from tests.specs import quick
from umrisk.serving.api import app
from umrisk.serving.auth import create_token
from umrisk.serving.state import ServiceState, Settings
from umrisk.training import commands


@pytest.fixture(scope="session")
def served(tmp_path_factory, small_store):
    """Both models trained on the small store and made champion, three tokens, and the state of a service."""
    root = tmp_path_factory.mktemp("service")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    for name in ("readmission_30d", "admission_180d"):
        commands.train(name, small_store, root / "reports", uri, spec=quick(name))
        commands.promote(name, small_store, force=True, reason="test fixture", tracking_uri=uri, spec=quick(name))
    tokens = {role: create_token(root / "tokens.json", role)[1] for role in ("reviewer", "outreach", "admin")}
    settings = Settings(data=small_store, tokens=root / "tokens.json", audit=root / "audit.jsonl", tracking_uri=uri,
                        max_batch=50, max_body_bytes=200_000)
    return {"root": root, "uri": uri, "tokens": tokens, "settings": settings, "store": small_store}


@pytest.fixture(scope="session")
def client(served):
    """The API in process, mounted under /v1 as the BentoML service mounts it."""
    app.state.umrisk = ServiceState.build(served["settings"])
    with TestClient(Starlette(routes=[Mount("/v1", app)])) as c:
        yield c


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="session")
def server(served):
    """A real `umrisk serve` (BentoML) process on loopback; its log is kept for inspection."""
    port = free_port()
    s = served["settings"]
    log = served["root"] / "server.log"
    exe = Path(sys.executable).with_name("umrisk")
    proc = subprocess.Popen([str(exe), "serve", "--data", str(s.data), "--port", str(port), "--tokens", str(s.tokens),
                             "--audit", str(served["root"] / "server-audit.jsonl"), "--tracking-uri", served["uri"],
                             "--max-batch", "50"], stdout=open(log, "w"), stderr=subprocess.STDOUT,  # noqa: SIM115
                            start_new_session=True, env={**os.environ})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(f"{url}/readyz", proc, log, 180)
    except RuntimeError:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
        raise
    yield {"url": url, "log": log, "audit": served["root"] / "server-audit.jsonl"}
    os.killpg(proc.pid, 15)
    proc.wait(timeout=30)
