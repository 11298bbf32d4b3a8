"""A model's feature table, built once per store and reused by train, evaluate and promote.

The table is cached in the store, ``STORE/features/cache/<model>-<key>.parquet`` with a JSON beside it
(the cohort report, the feature and categorical lists, the demographics columns). The key is a hash of
what the table depends on: the store's data fingerprint, the spec's sections that define points, labels
and features (everything but its name, description and training settings), and the source of the code that
builds it (``umrisk.features`` and ``build_table``), so a changed store, spec or builder never reads a stale
table. Files are written atomically; a cache that cannot be read is rebuilt; a model keeps only its latest table.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

import umrisk.features
from umrisk.features.cohorts import CohortReport
from umrisk.features.spec import ModelSpec
from umrisk.training import train as _train
from umrisk.training.lineage import data_fingerprint, hash_file

FORMAT = 1
DEMO_PREFIX = "__demographics__"
SPEC_IGNORED = ("name", "description", "intended_use", "model", "monitoring")  # do not change the table


def builder_digest() -> str:
    """SHA-256 of the source that builds a table: the features package (without the synthetic generator and
    the importers, which only make stores) and the module of ``build_table``."""
    root = Path(umrisk.features.__file__).parent
    files = [p for p in root.rglob("*") if p.suffix in (".py", ".csv") and p.is_file()
             and not {"synthetic", "importers", "__pycache__"} & set(p.relative_to(root).parts)]
    h = hashlib.sha256()
    for f in sorted(files, key=lambda p: p.relative_to(root).as_posix()):
        h.update(f.relative_to(root).as_posix().encode())
        hash_file(f, h)
    h.update(Path(inspect.getsourcefile(_train)).read_bytes())
    return h.hexdigest()


def table_key(spec: ModelSpec, data_sha256: str) -> str:
    """The cache key of a spec's table on a store (16 hex digits)."""
    sections = {k: v for k, v in spec.model_dump(mode="json").items() if k not in SPEC_IGNORED}
    doc = json.dumps({"format": FORMAT, "data": data_sha256, "spec": sections, "code": builder_digest()},
                     sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class CachePaths:
    table: Path
    meta: Path


def cache_paths(data_dir: Path | str, spec: ModelSpec, data_sha256: str) -> CachePaths:
    base = Path(data_dir) / "features" / "cache" / f"{spec.name}-{table_key(spec, data_sha256)}"
    return CachePaths(base.with_suffix(".parquet"), base.with_suffix(".json"))


def _write_atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _save(table: _train.Table, paths: CachePaths, spec: ModelSpec, data_sha256: str) -> None:
    paths.table.parent.mkdir(parents=True, exist_ok=True)
    demo = table.demographics
    frame = table.frame
    if demo is not None:
        frame = pd.concat([frame, demo.add_prefix(DEMO_PREFIX).set_index(frame.index)], axis=1)
    meta = {"format": FORMAT, "model": spec.name, "data_sha256": data_sha256, "rows": len(table.frame),
            "cohort": table.cohort.to_dict(), "features": table.features, "categorical": table.categorical,
            "demographics": None if demo is None else list(demo.columns)}
    _write_atomic(paths.table, lambda p: frame.to_parquet(p, index=False))
    _write_atomic(paths.meta, lambda p: p.write_text(json.dumps(meta, indent=2, default=float)))
    for old in paths.table.parent.glob(f"{spec.name}-*.*"):  # tables of this model under an older key
        if old not in (paths.table, paths.meta) and old.suffix in (".parquet", ".json"):
            old.unlink(missing_ok=True)


def _cohort(d: dict) -> CohortReport:
    return CohortReport(d["task"], [(s["step"], s["count"]) for s in d["steps"]],
                        [(n["what"], n["count"]) for n in d["notes"]], d["label_rate"])


def _read(paths: CachePaths, data_dir: Path) -> _train.Table | None:
    """The cached table, or None when it is missing, cut short or from another format."""
    try:
        meta = json.loads(paths.meta.read_text())
        if meta.get("format") != FORMAT:
            return None
        frame = pd.read_parquet(paths.table)
    except (OSError, ValueError, KeyError):
        return None
    if len(frame) != meta["rows"]:
        return None
    demo = None
    if meta["demographics"] is not None:
        cols = [DEMO_PREFIX + c for c in meta["demographics"]]
        demo = frame[cols].rename(columns=lambda c: c.removeprefix(DEMO_PREFIX))
        frame = frame.drop(columns=cols)
    return _train.Table(frame, meta["features"], meta["categorical"], _cohort(meta["cohort"]), Path(data_dir), demo)


def feature_table(data_dir: Path | str, spec: ModelSpec, fingerprint: dict | None = None, client=None,
                  progress=None) -> tuple[_train.Table, bool]:
    """The spec's table on the store, from the cache when it is there, else built and cached.

    Returns the table and whether it came from the cache. ``fingerprint`` (``data_fingerprint(data_dir)``)
    may be passed when the caller has it already; with a Dask ``client`` the table is built on it.
    """
    data_dir = Path(data_dir)
    sha = (fingerprint or data_fingerprint(data_dir))["sha256"]
    paths = cache_paths(data_dir, spec, sha)
    cached = _read(paths, data_dir)
    if cached is not None:
        return cached, True
    table = _train.build_table(data_dir, spec, client, progress)
    _save(table, paths, spec, sha)
    return table, False
