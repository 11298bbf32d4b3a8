"""Which batch runs a service can serve: the latest run of each champion, all for one date, over a store
partitioned by member. Kept apart from the scorer (and its LightGBM) so ``umrisk serve`` can say where its
scores will come from before it hands over to BentoML, without importing the scoring stack."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from umrisk.serving.cases import batch
from umrisk.serving.cases.repository import CaseStore
from umrisk.serving.histories import NotPartitioned, PartitionedHistories


class NoBatch(RuntimeError):
    """The batch job's scores cannot be served; the message says why and what to run."""


def usable_runs(data: Path, versions: dict[str, str], cases: CaseStore) -> dict[str, dict]:
    """The latest run of each model, when they can be served together: ``NoBatch`` saying why not (a store
    not partitioned by member, a model never scored in batch or scored by another version than the
    champion, runs for different dates)."""
    try:
        PartitionedHistories(data)
    except NotPartitioned as err:
        raise NoBatch(str(err)) from err
    runs: dict[str, dict] = {}
    for name, version in versions.items():
        run = batch.latest_run(cases, name)
        if run is None:
            raise NoBatch(f"umrisk-{name} has no batch scores in the case store: run "
                          f"`umrisk score-batch {name} --data {data}`")
        if run["model_version"] != version:
            raise NoBatch(f"the latest batch scores of umrisk-{name} (run {run['run_id']}) are from version "
                          f"{run['model_version']}, but the champion served is version {version}: run "
                          f"`umrisk score-batch {name} --data {data}`")
        runs[name] = run
    dates = {pd.Timestamp(r["as_of"]).normalize() for r in runs.values()}
    if len(dates) != 1:
        raise NoBatch("the latest batch runs are for different dates ("
                      + ", ".join(f"{n} {pd.Timestamp(r['as_of']).date()}" for n, r in runs.items())
                      + "): score every model for the same --as-of")
    return runs
