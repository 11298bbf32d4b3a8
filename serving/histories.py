"""Members' histories read on demand from a store partitioned by member, so a service holds no population.

``PartitionedHistories`` answers the two questions the service asks of a store, for a handful of members at a
time: is this member in the store (``known``), and what are their rows (``subset``, every canonical table
with the columns the features read). Each look-up opens only the partition files of the members asked for and
lets Arrow filter them row group by row group (``umrisk.features.partition``), so its cost grows with the
partition, not the population. ``MemberIndex`` in ``serving.scoring`` is the in-memory counterpart.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from umrisk.features.partition import KEY, partition_of, read_manifest
from umrisk.features.schema import TABLES, part_path, read_table
from umrisk.features.store import FEATURE_COLUMNS


class NotPartitioned(ValueError):
    """The store is in the old layout (no member partitions): it cannot be read one member at a time."""


class PartitionedHistories:
    """One member's (or a few members') rows of a partitioned store, read when asked."""

    def __init__(self, dataset: Path | str):
        self.dataset = Path(dataset)
        manifest = read_manifest(self.dataset)
        if manifest is None:
            raise NotPartitioned(f"history store {self.dataset} is not partitioned by member: convert it with "
                                 f"`umrisk data repartition {self.dataset} --out NEW_DIR`")
        self.partitions = manifest.partitions

    def _by_partition(self, member_ids: Sequence[str]) -> dict[int, list[str]]:
        ids = list(dict.fromkeys(str(m) for m in member_ids))
        out: dict[int, list[str]] = defaultdict(list)
        for mid, k in zip(ids, partition_of(ids, self.partitions), strict=True):
            out[int(k)].append(mid)
        return out

    def _read(self, table: str, groups: dict[int, list[str]], columns: list[str] | None) -> pd.DataFrame:
        frames = []
        for k, ids in groups.items():
            path = part_path(self.dataset, table, k)
            if path.is_file():
                frames.append(pq.read_table(path, columns=columns, filters=[(KEY, "in", ids)]).to_pandas())
        if not frames:
            return read_table(self.dataset, table, columns, part=-1)  # no file: empty, with the canonical columns
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]

    def known(self, member_ids: Sequence[str]) -> np.ndarray:
        """True for each id that has a row in the members table."""
        present = set(self._read("members", self._by_partition(member_ids), [KEY])[KEY].astype("str"))
        return np.array([str(m) in present for m in member_ids], dtype=bool)

    def subset(self, member_ids: Sequence[str]) -> dict[str, pd.DataFrame]:
        """Every canonical table restricted to ``member_ids`` (the columns ``load_store`` reads)."""
        groups = self._by_partition(member_ids)
        return {name: self._read(name, groups, FEATURE_COLUMNS[name]) for name in TABLES}
