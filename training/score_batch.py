"""``umrisk score-batch``: score a store's whole eligible population with one registered model, with reasons,
into the case store (and a Parquet file), tagged with the model version and the store's fingerprint.

The scores are the service's: a ``Scorer`` (``umrisk.serving.scoring``) on the store at the scoring date, so
eligibility comes from the model's task, features from the same ``build_features``, and the probability, tier
and reasons are the ones ``/v1/score`` returns. Members the task cannot score are counted by reason, never
dropped silently. The percentile is among the run's members, as the service's is among its population.

This job sits on top of training's registry and the service's scoring and case store, so it is the one module
of ``umrisk.training`` that imports ``umrisk.serving``; nothing in serving imports it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import json
import os
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from umrisk.features.cohorts import store_dates
from umrisk.features.distributed import dask_client, gather_as_done
from umrisk.features.partition import load_partition, partitions
from umrisk.features.store import HistoryStore, load_store
from umrisk.features.tasks import task_for
from umrisk.serving.cases import batch
from umrisk.serving.cases.db import database_url, shown
from umrisk.serving.cases.repository import CaseStore, utcnow
from umrisk.serving.scoring import LoadedModel, OutOfRange, Scorer
from umrisk.serving.state import missing_tables
from umrisk.training import registry
from umrisk.training.commands import require_store
from umrisk.training.lineage import code_version, data_fingerprint

TOP_REASONS = 3  # as /v1/score by default
# the tables scoring reads (review requests are the queue's, not the model's)
SCORING_TABLES = ("members", "enrollment", "encounters", "diagnoses", "procedures", "medications", "labs")


class BatchError(RuntimeError):
    """The job cannot run as asked (a store missing tables, a model that does not score stores)."""


@dataclass
class Scored:
    """One store's (or partition's) result: a row per scored member with the unrounded ``score`` beside the
    service's rounded ``probability``, and the members not scorable counted by reason."""

    rows: pd.DataFrame
    not_scorable: Counter = field(default_factory=Counter)


def load_model(model: str, version: str | None = None, alias: str | None = None) -> LoadedModel:
    """A registered version (by number or alias; the champion by default), digest-checked by the registry's
    loader, with the spec registered with it."""
    wrapped, mv = registry.load(model, version, alias)
    if wrapped.spec.get("task") == "table":
        raise BatchError(f"umrisk-{model} version {mv.version} was trained by train-table: score its tables with "
                         "umrisk score-table")
    tags = mv.tags or {}
    return LoadedModel(model, str(mv.version), wrapped, registry.stored_spec(wrapped), tags.get("trained_from", ""),
                       tags.get("trained_to", ""), {})


def scoring_date(data: Path, as_of: pd.Timestamp | str | None) -> pd.Timestamp:
    """``as_of`` as a day inside the store's data (default: its last day), else ``OutOfRange``."""
    first, last = store_dates(data)
    day = last if as_of is None else pd.Timestamp(as_of).normalize()
    if not first <= day <= last:
        raise OutOfRange(f"as_of {day.date()} is outside the data, which covers {first.date()} to {last.date()}")
    return day


def score_store(store: HistoryStore, model: LoadedModel, as_of: pd.Timestamp) -> Scored:
    """Score every member of ``store`` at ``as_of`` as the service would: the rows of the scored (by member id)
    and the others counted by the task's reason."""
    members = sorted(store["members"]["member_id"].astype("str").unique())
    try:
        scorer = Scorer(store, {model.name: model}, as_of)
    except ValueError:
        # the Scorer refuses a store where nobody can be scored; count why, or re-raise any other error
        sc = task_for(model.spec).scorable(store, model.spec, members, as_of)
        if len(sc.points):
            raise
        return Scored(_frame([]), Counter(category for category, _ in sc.reasons.values()))
    results = scorer.score(model.name, members, top=TOP_REASONS)
    # the scorer's rows of its population: the unrounded scores the percentile ranks (as the service's) and, for
    # an outreach model, what the outreach list filters on
    cache = scorer.cache[model.name]
    row = cache["row"]
    outreach = task_for(model.spec).outreach_list
    rows = _frame([{**r, "score": cache["p"][row[r["member_id"]]],
                    "hospice": bool(cache["hospice"][row[r["member_id"]]]) if outreach else None,
                    "line_of_business": str(cache["lob"][row[r["member_id"]]]) if outreach else None}
                   for r in results if "error" not in r])
    return Scored(rows, Counter(r["not_scorable"] for r in results if "error" in r))


def _frame(scored: list[dict]) -> pd.DataFrame:
    cols = {"member_id": "str", "as_of": "datetime64[us]", "probability": "float64", "tier": "str",
            "reasons": "object", "hospice": "object", "line_of_business": "object", "score": "float64"}
    frame = pd.DataFrame([{c: r[c] for c in cols} for r in scored], columns=list(cols))
    return frame.astype({c: t for c, t in cols.items() if t != "object"})


def combine(parts: list[Scored]) -> Scored:
    """The parts' rows as one frame by member id, with each member's percentile among all of them (the
    service's rule: the share of scores at or below theirs, to one decimal)."""
    rows = pd.concat([p.rows for p in parts], ignore_index=True).sort_values("member_id", ignore_index=True)
    pop = np.sort(rows["score"].to_numpy())
    rows["percentile"] = np.round(100.0 * np.searchsorted(pop, rows["score"].to_numpy(), side="right")
                                  / max(len(pop), 1), 1)
    return Scored(rows.drop(columns="score"), sum((p.not_scorable for p in parts), Counter()))


def ran_by() -> str:
    """Who ran the job, for the run's record: the user and machine (no member data)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"umrisk score-batch ({user}@{socket.gethostname()})"


def parquet_table(rows: pd.DataFrame, info: batch.RunInfo, run_id: int) -> pa.Table:
    """The run's rows as Arrow, each tagged with the model, version, scoring date and store fingerprint (columns
    and file metadata); reasons as JSON text (their values are numbers or words)."""
    out = rows.assign(model=info.model, model_version=info.model_version, run_as_of=info.as_of,
                      data_sha256=info.data_sha256,
                      reasons=[json.dumps(r, separators=(",", ":")) for r in rows["reasons"]])
    out["run_as_of"] = out["run_as_of"].astype("datetime64[us]")
    table = pa.Table.from_pandas(out, preserve_index=False)
    meta = {"umrisk.model": info.model, "umrisk.model_version": info.model_version,
            "umrisk.as_of": info.as_of.date().isoformat(), "umrisk.data_sha256": info.data_sha256,
            "umrisk.code_version": info.code_version, "umrisk.run_id": str(run_id)}
    return table.replace_schema_metadata({**(table.schema.metadata or {}), **{k: v.encode() for k, v in meta.items()}})


def write_parquet_private(table: pa.Table, path: Path) -> None:
    """Write ``table`` to ``path`` whole and private to this user (0600; a temporary file renamed over it), as
    member data must be."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            pq.write_table(table, fh, compression="zstd")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def score_single(data: Path, model: LoadedModel, as_of: pd.Timestamp) -> Scored:
    """The whole store in this process."""
    return combine([score_store(load_store(data, SCORING_TABLES), model, as_of)])


def score_partition(k: int, dataset: str, model: LoadedModel, as_of: pd.Timestamp) -> Scored:
    """One Dask task: the members of partition ``k``, scored by the single-process code on that partition."""
    return score_store(load_partition(dataset, k, SCORING_TABLES), model, as_of)


def store_partitions(data: Path) -> list[int]:
    """The store's member partitions; ``BatchError`` for a store in the old layout."""
    try:
        return partitions(data)
    except ValueError as err:
        raise BatchError(f"{err} (Dask scores a store partition by partition)") from err


def score_partitioned(data: Path, model: LoadedModel, as_of: pd.Timestamp, client,
                      progress: Callable[[int], None] | None = None) -> Scored:
    """One Dask task per member partition on ``client``; the model is sent once to every worker (scattered,
    not loaded from the registry by each task). The parts are combined by member id, as the single process's
    rows, so the result is the same whatever the number of workers or the order tasks finish in. The scoring
    date is fixed by the caller from the whole store: a partition does not know where the data ends.
    ``progress`` is told each finished partition (1 at a time)."""
    parts = store_partitions(data)
    [remote] = client.scatter([model], broadcast=True, hash=False)
    futures = client.map(score_partition, parts, dataset=str(Path(data).resolve()), model=remote, as_of=as_of,
                         pure=False)
    results = gather_as_done(futures, progress)
    del futures, remote
    return combine(list(results))


def _connect(stack: contextlib.ExitStack, workers: int | None, scheduler: str | None):
    """A Dask client held by ``stack``; ``BatchError`` naming the cluster when it cannot be reached."""
    try:
        return stack.enter_context(dask_client(workers, scheduler))
    except OSError as err:  # distributed's connection timeouts and refusals are OSErrors
        where = f"the Dask scheduler at {scheduler}" if scheduler else f"a local Dask cluster of {workers} workers"
        raise BatchError(f"cannot reach {where} ({err.__class__.__name__}: {str(err).splitlines()[0][:200]})") \
            from err


def executor(workers: int | None, scheduler: str | None) -> str:
    """How a run runs, in words for its record."""
    if scheduler:
        return f"dask scheduler {scheduler}"
    if workers:
        return f"dask LocalCluster, {workers} worker{'s' if workers > 1 else ''}"
    return "single process"


def score_batch(model: str, data: Path, as_of: pd.Timestamp | dt.date | str | None = None,
                version: str | None = None, alias: str | None = None, database: str | None = None,
                out: Path | None = None, tracking_uri: str | None = None, workers: int | None = None,
                scheduler: str | None = None, progress: Callable[[int], None] | None = None,
                keep: int | None = None) -> dict:
    """Load the model, score the store's eligible population at ``as_of`` (default: the store's last day), write
    the run to the case store (``database``, default the service's: ``UMRISK_DATABASE_URL``, else
    ``<store>/service/cases.db``) and, with ``out``, to Parquet. Return the run's summary.

    With ``workers`` (a ``LocalCluster`` of that many processes) or ``scheduler`` (an existing Dask cluster's
    address) the store is scored partition by partition on Dask, with the same result; ``progress`` is told
    each partition scored. The model's ``keep`` latest runs (default ``batch.KEEP_RUNS``) stay current; older
    ones are retired. The case store is opened (and its schema upgraded) before anything is scored, so a
    database that cannot be reached fails at once."""
    t0 = time.perf_counter()
    started = utcnow()
    data = require_store(data)
    missing = missing_tables(data)
    if missing:
        raise BatchError(f"history store {data} lacks the table(s) {', '.join(missing)} the models need")
    registry.configure(tracking_uri)
    loaded = load_model(model, version, alias)
    day = scoring_date(data, as_of)
    if workers or scheduler:
        store_partitions(data)  # before a cluster is started for a store that cannot use it
    url = database_url(database, data)
    cases = CaseStore.open(url)
    try:
        fingerprint = data_fingerprint(data)
        if workers or scheduler:
            with contextlib.ExitStack() as stack:
                client = _connect(stack, workers, scheduler)
                result = score_partitioned(data, loaded, day, client, progress)
        else:
            result = score_single(data, loaded, day)
        info = batch.RunInfo(model=model, model_version=loaded.version, data_sha256=fingerprint["sha256"],
                             as_of=day.to_pydatetime(), started_at=started, ran_by=ran_by(),
                             executor=executor(workers, scheduler), code_version=code_version(),
                             not_scorable=dict(sorted(result.not_scorable.items())))
        run_id = batch.write_run(cases, info, result.rows, keep=keep or batch.KEEP_RUNS)
    finally:
        cases.dispose()
    if out is not None:
        write_parquet_private(parquet_table(result.rows, info, run_id), Path(out))
    seconds = time.perf_counter() - t0
    return {"model": model, "version": loaded.version, "as_of": day.date().isoformat(), "rows": len(result.rows),
            "not_scorable": info.not_scorable, "seconds": round(seconds, 2), "run_id": run_id,
            "database": shown(url), "out": str(out) if out else None, "executor": info.executor,
            "data_sha256": info.data_sha256, "tiers": result.rows["tier"].value_counts().to_dict()}
