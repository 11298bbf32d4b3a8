"""``umrisk features build``: a model's feature table written as a Parquet file with its cohort report.

The table is the one training uses (``feature_cache.feature_table``), so building it here first means
``train``, ``evaluate`` and ``promote`` reuse it instead of building it again.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from umrisk.features.spec import ModelSpec
from umrisk.training.feature_cache import feature_table


@dataclass
class Exported:
    model: str
    path: Path
    cohort_report: Path
    rows: int
    features: int
    cached: bool
    seconds: float
    cohort_text: str


def export_path(out: Path | None, data: Path, model: str, single: bool) -> Path:
    """Where a model's file goes: ``out`` itself when it names one Parquet file for one model, else
    ``<out>/<model>.parquet`` (``out`` defaults to ``<store>/features``)."""
    if out is not None and out.suffix == ".parquet":
        if not single:
            raise ValueError(f"{out}: one file for several models; give a folder instead")
        return out
    return (out or data / "features") / f"{model}.parquet"


def export_features(spec: ModelSpec, data: Path, out: Path, fingerprint: dict | None = None, client=None,
                    progress=None) -> Exported:
    """Write the spec's points, labels and features to ``out`` (categories as plain strings, so the file reads
    back the same everywhere and feeds a registered model) and the cohort report beside it. With a Dask
    ``client`` the table is built on it, partition by partition."""
    start = time.perf_counter()
    table, cached = feature_table(data, spec, fingerprint, client, progress)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.frame.astype({c: "str" for c in table.categorical}).to_parquet(out, index=False)
    report_path = out.with_suffix(".cohort.json")
    report_path.write_text(json.dumps({"model": spec.name, **table.cohort.to_dict(), "features": table.features},
                                      indent=2, default=float))
    return Exported(spec.name, out, report_path, len(table.frame), len(table.features), cached,
                    time.perf_counter() - start, table.cohort.render())
