import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import free_port, wait_until_ready
from tests.specs import quick
from umrisk.training import commands


@pytest.fixture(scope="session")
def tracking(tmp_path_factory, small_store):
    """A local SQLite tracking store with one trained admission model (version 1, alias challenger)."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    result = commands.train("admission_180d", small_store, root / "reports", uri, spec=quick("admission_180d"))
    return {"uri": uri, "root": root, "first": result}


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real `mlflow server` process on loopback with a SQLite backend and proxied artifacts."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    exe = Path(sys.executable).with_name("mlflow")
    proc = subprocess.Popen([str(exe), "server", "--host", "127.0.0.1", "--port", str(port),
                             "--backend-store-uri", f"sqlite:///{root / 'server.db'}",
                             "--artifacts-destination", str(root / "artifacts"), "--workers", "1"],
                            cwd=root, stdout=subprocess.DEVNULL, stderr=open(root / "server.log", "w"))  # noqa: SIM115
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(f"{url}/health", proc, root / "server.log", 90)
    except RuntimeError:
        proc.terminate()
        raise
    yield url
    proc.terminate()
    proc.wait(timeout=30)
