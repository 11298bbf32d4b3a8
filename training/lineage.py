"""What a run was trained on and with: a data fingerprint, the code version, package versions."""

from __future__ import annotations

import hashlib
import subprocess
from importlib import metadata
from pathlib import Path

import pyarrow.parquet as pq

from umrisk.features.schema import TABLES, table_files

PACKAGES = ("umrisk", "numpy", "pandas", "pyarrow", "scikit-learn", "lightgbm", "optuna", "mlflow", "bentoml",
            "pandera", "pydantic")


def hash_file(path: Path, h=None):
    """Feed a file's bytes to a hash (a new SHA-256 unless one is given) and return it."""
    h = h or hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 22):
            h.update(block)
    return h


def data_fingerprint(dataset: Path | str) -> dict:
    """SHA-256 over every table file of the store (name, size, bytes) and the row count of each table."""
    h = hashlib.sha256()
    rows = {}
    for name in TABLES:
        n = 0
        for f in table_files(dataset, name):
            h.update(f"{name}/{f.name}:{f.stat().st_size}".encode())
            hash_file(f, h)
            n += pq.ParquetFile(f).metadata.num_rows
        rows[name] = n
    return {"sha256": h.hexdigest(), "rows": rows}


def code_version() -> str:
    """The git commit of the checkout umrisk runs from (``-dirty`` when it has changes), else the installed
    package version (``umrisk 0.1.0``) when it runs from a wheel."""
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return f"umrisk {_installed_version()}"
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _installed_version() -> str:
    try:
        return metadata.version("umrisk")
    except metadata.PackageNotFoundError:
        return "unknown"


def package_versions() -> dict[str, str]:
    out = {}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = "not installed"
    return out
