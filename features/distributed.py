"""A spec's feature table built partition by partition on Dask, identical to the single-process build.

Each Dask task loads one member partition (``features.partition.load_partition``), draws the task's cohort
on it and builds its features with the single-process code (``features.build.build_features``), so a
worker's memory is bounded by a partition, not by the store. The partitions' tables are concatenated in
partition order, which is the order the single-process build gives on a partitioned store (it reads the
parts in that order, and cohorts keep their points grouped by member in the order members are first read).

What a member's own rows cannot tell a partition is computed once for the whole store and handed to every
task, so that every partition agrees with the single process:

- the cohort's calendar: the day the data ends (``cohorts.data_end``) and, when the spec gives no
  ``first_date``, the first enrollment day plus the look-back (``store_bounds``);
- category levels: each partition's categorical features know only their own levels, so they are unified
  (sorted, as ``astype("category")`` sorts them) after concatenation;
- the cohort report: counts add up over partitions, except a step that states its own count (the number of
  scoring dates), which every partition shares; the label rate is that of the whole table.

Value sets and code vocabularies are data files every worker reads alike, and window sums restart at each
member (``events.EventIndex``), so nothing else depends on the rest of the population. Workers must see the
store at the same path (one machine, or a shared file system).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals

from umrisk.features.build import build_features, feature_set
from umrisk.features.cohorts import DAY, CohortReport, store_dates
from umrisk.features.partition import load_partition, partitions
from umrisk.features.schema import column_bound
from umrisk.features.spec import ModelSpec
from umrisk.features.tasks import task_for


@dataclass
class PartitionedTable:
    """The spec's points with labels and features, its cohort report, and the requested member columns
    (aligned with ``frame``)."""

    frame: pd.DataFrame
    cohort: CohortReport
    members: pd.DataFrame


@contextlib.contextmanager
def dask_client(workers: int | None = None, scheduler: str | None = None) -> Iterator:
    """A ``distributed.Client`` on an existing cluster (``scheduler``, e.g. ``tcp://10.0.0.5:8786``) or on a
    ``LocalCluster`` of ``workers`` single-threaded processes, closed on exit."""
    from distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    local = LocalCluster(n_workers=workers or 1, threads_per_worker=1, processes=True, dashboard_address=None)
    with local as cluster, Client(cluster) as client:
        yield client


def store_bounds(dataset: Path | str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """(first enrollment day, end of the data) of the whole store, as the single-process cohort computes them,
    from the columns' bounds."""
    return column_bound(dataset, "enrollment", "start_date", "min"), store_dates(dataset)[1] + DAY


def with_first_date(spec: ModelSpec, first_enrollment: pd.Timestamp) -> ModelSpec:
    """The spec with the cohort's first date fixed from the whole store (what a cohort with no ``first_date``
    derives from its own first enrollment day); unchanged when the spec gives one or the store has none."""
    c = spec.cohort
    if c.first_date or pd.isna(first_enrollment):
        return spec
    first = first_enrollment + c.lookback_days * DAY
    return spec.model_copy(update={"cohort": c.model_copy(update={"first_date": first.isoformat()})})


def build_partition(k: int, dataset: str, spec: ModelSpec, end: pd.Timestamp,
                    member_columns: Sequence[str] = ()) -> tuple[pd.DataFrame, CohortReport, pd.DataFrame]:
    """One Dask task: partition ``k``'s points, labels and features (the single-process code on that
    partition), its cohort report, and its members' ``member_columns`` aligned with the points."""
    store = load_partition(dataset, k)
    points, report = task_for(spec).cohort(store, spec, end=end)
    frame = build_features(store, points, spec)
    members = store["members"].set_index("member_id").reindex(frame["member_id"].astype(str))
    return frame, report, members[list(member_columns)].reset_index(drop=True)


def concat_partitions(frames: list[pd.DataFrame], categorical: Sequence[str]) -> pd.DataFrame:
    """Partitions' frames in order as one frame, with the dtypes one frame of all the rows would have:
    categories unified and sorted, and a column typed differently by some partitions (all missing in one,
    say) inferred again from all its values."""
    used = [f for f in frames if len(f)] or frames[:1]
    out = pd.concat(used, ignore_index=True)
    for c in out.columns:
        if c in categorical:
            cats = sorted(set().union(*(f[c].cat.categories for f in used)))
            out[c] = pd.Categorical(out[c].astype(object).where(out[c].notna(), None),
                                    categories=pd.Index(cats, dtype=used[0][c].cat.categories.dtype))
        elif len({str(f[c].dtype) for f in used}) > 1:
            out[c] = pd.Series(np.concatenate([f[c].to_numpy(dtype=object) for f in used]))
    return out


def concat_members(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Partitions' member columns in order as one frame; a category keeps its levels in the order they were
    first read, as one read of the whole store gives them."""
    out = pd.concat(frames, ignore_index=True)
    for c in out.columns:
        if all(isinstance(f[c].dtype, pd.CategoricalDtype) for f in frames):
            out[c] = union_categoricals([f[c] for f in frames])
    return out


def merge_reports(reports: list[CohortReport], labels: pd.Series) -> CohortReport:
    """One cohort report from the partitions' reports: counts added up, except a step that states its own
    count in its words (the number of scoring dates), which every partition shares; the label rate of
    ``labels``, the whole table's label column."""
    first = reports[0]
    merged = CohortReport(first.task)
    for i, (step, count) in enumerate(first.steps):
        counts = [r.steps[i][1] for r in reports]
        if any(r.steps[i][0] != step for r in reports):
            raise ValueError(f"cohort reports of the partitions differ at step {i + 1} ({step!r})")
        shared = f"({count})" in step and len(set(counts)) == 1
        merged.add(step, count if shared else sum(counts))
    for i, (what, _) in enumerate(first.notes):
        merged.note(what, sum(r.notes[i][1] for r in reports))
    merged.label_rate = float(labels.mean()) if len(labels) else float("nan")
    return merged


def gather_as_done(futures: list, progress: Callable[[int], None] | None = None) -> list:
    """The futures' results in the futures' order, each fetched as soon as its task finishes and then released,
    so a worker holds a finished partition only until the client has it: its memory is bounded by the
    partitions it works on, not by its share of the store. ``progress`` is told each one (1 at a time)."""
    from distributed import as_completed

    order = {f.key: i for i, f in enumerate(futures)}
    results: list = [None] * len(futures)
    for future in as_completed(futures):
        results[order[future.key]] = future.result()
        future.release()
        if progress:
            progress(1)
    return results


def build_table(dataset: Path | str, spec: ModelSpec, client, member_columns: Sequence[str] = (),
                progress: Callable[[int], None] | None = None) -> PartitionedTable:
    """The spec's feature table of a partitioned store, one Dask task per partition on ``client``.

    ``progress`` is told each finished partition (1 at a time). Raises ``ValueError`` for a store that is
    not partitioned by member.
    """
    parts = partitions(dataset)
    first, end = store_bounds(dataset)
    spec_all = with_first_date(spec, first)
    futures = client.map(build_partition, parts, dataset=str(Path(dataset).resolve()), spec=spec_all, end=end,
                         member_columns=list(member_columns), pure=False)
    results = gather_as_done(futures, progress)
    del futures
    frame = concat_partitions([r[0] for r in results], feature_set(spec).categorical)
    report = merge_reports([r[1] for r in results], frame["label"])
    members = concat_members([r[2] for r in results])
    return PartitionedTable(frame, report, members)
