"""Member partitions: every table of a store split the same way, so one partition holds everything about its
members.

A member's partition is a stable hash of ``member_id`` modulo the number of partitions. The hash is BLAKE2b
with an 8-byte digest (RFC 7693, in Python's ``hashlib``) of the id's UTF-8 bytes, read as a big-endian
unsigned integer: its output is fixed by a standard, so a store written on one machine or version of Python,
pandas or Arrow is read the same on any other. (``pd.util.hash_array`` is faster but pandas does not promise
its values across versions.) It is made vectorised enough by hashing each distinct id once: about a second
per million members.

Layout: partition ``k`` of table ``t`` is ``DIR/t/part-{k:05d}.parquet``; every table has one file for each
of the ``n`` partitions (empty ones too), and ``DIR/_partitions.json`` records ``n`` and the hash. A store
without the manifest is in the old layout (parts by generator block or one file): it still loads and
validates, and ``umrisk data repartition`` converts it.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from umrisk.features.schema import TABLES, part_path, table_files, to_arrow
from umrisk.features.store import HistoryStore, load_store

HASH = "blake2b-64"
KEY = "member_id"
MANIFEST = "_partitions.json"
MEMBERS_PER_PARTITION = 50_000  # a partition of 50,000 members builds its features in well under 1 GiB
ROW_BUDGET = 2_000_000  # rows buffered by a writer across its partitions before they are written out
ROW_GROUP_ROWS = 16_384  # rows of one row group: a member's rows are read by decoding a group or two, not a file
BATCH_ROWS = 500_000  # rows read at a time when a store is repartitioned

NOT_PARTITIONED = "not partitioned by member; run umrisk data repartition"


def partition_of(member_ids: Sequence[str] | pd.Series | np.ndarray, n: int) -> np.ndarray:
    """The partition (0 to ``n - 1``) of each member id; a missing id goes to partition 0.

    >>> partition_of(["M00000001", "M00000002", "M00000003", "P-17"], 8).tolist()
    [1, 3, 0, 0]
    >>> import hashlib  # the same as the hash of one id by hand
    >>> int.from_bytes(hashlib.blake2b(b"M00000002", digest_size=8).digest(), "big") % 8
    3
    >>> partition_of(["M0000001"], 1).tolist()
    [0]
    """
    if n < 1:
        raise ValueError(f"number of partitions must be at least 1, not {n}")
    ids = member_ids if isinstance(member_ids, pd.Series) else pd.Series(np.asarray(member_ids, dtype=object))
    if isinstance(ids.dtype, pd.CategoricalDtype):
        codes, uniques = ids.cat.codes.to_numpy(), ids.cat.categories
    else:
        codes, uniques = pd.factorize(ids)
    digests = b"".join(hashlib.blake2b(str(u).encode(), digest_size=8).digest() for u in uniques)
    per_unique = (np.frombuffer(digests, dtype=">u8") % np.uint64(n)).astype(np.int64)
    return np.where(codes >= 0, per_unique[np.maximum(codes, 0)] if len(uniques) else 0, 0).astype(np.int64)


def default_partitions(members: int) -> int:
    """Partitions for a store of ``members``: about ``MEMBERS_PER_PARTITION`` each, at least one."""
    return max(1, math.ceil(members / MEMBERS_PER_PARTITION))


@dataclass(frozen=True)
class Manifest:
    """How a store is partitioned: ``partitions`` files per table, by ``hash`` of ``key``."""

    partitions: int
    hash: str = HASH
    key: str = KEY

    def to_dict(self) -> dict:
        return {"partitions": self.partitions, "hash": self.hash, "key": self.key}


def manifest_path(dataset: Path | str) -> Path:
    return Path(dataset) / MANIFEST


def read_manifest(dataset: Path | str) -> Manifest | None:
    """The store's manifest, or None for a store in the old layout. Raises ``ValueError`` (one line naming
    the file) for a manifest that cannot be used."""
    path = manifest_path(dataset)
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text())
        m = Manifest(int(doc["partitions"]), str(doc["hash"]), str(doc["key"]))
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a partition manifest ({err})") from None
    if m.partitions < 1 or m.hash != HASH or m.key != KEY:
        raise ValueError(f"{path}: expected at least 1 partition by {HASH} of {KEY}, found {m.to_dict()}")
    return m


def write_manifest(dataset: Path | str, n: int) -> Path:
    """Record that the store is in ``n`` member partitions (written last, once every table is in place)."""
    path = manifest_path(dataset)
    path.write_text(json.dumps(Manifest(n).to_dict(), indent=2) + "\n")
    return path


def partitions(dataset: Path | str) -> list[int]:
    """The store's partition numbers. Raises ``ValueError`` for a store in the old layout."""
    m = read_manifest(dataset)
    if m is None:
        raise ValueError(f"{dataset}: {NOT_PARTITIONED}")
    return list(range(m.partitions))


def load_partition(dataset: Path | str, k: int, tables: Iterable[str] = tuple(TABLES),
                   compact: bool = True) -> HistoryStore:
    """Partition ``k`` of the store: the frames of ``features.store.load_store`` (same columns and types) with
    only the rows of that partition's members."""
    n = len(partitions(dataset))
    if not 0 <= k < n:
        raise ValueError(f"{dataset}: no partition {k} (the store has {n})")
    return load_store(dataset, tables, compact, part=k)


def read_member(dataset: Path | str, table: str, member_id: str,
                columns: Sequence[str] | None = None) -> pd.DataFrame:
    """One member's rows of ``table``, read from that member's partition file only (filtered by Arrow, row group
    by row group), with the types of ``read_table``. In the old layout every file of the table is filtered."""
    m = read_manifest(dataset)
    if m is None:
        files = table_files(dataset, table)
    else:
        path = part_path(dataset, table, int(partition_of([member_id], m.partitions)[0]))
        files = [path] if path.is_file() else []
    cols = list(columns) if columns else None
    if not files:
        spec = TABLES[table]
        return pd.DataFrame({c: pd.Series(dtype="str" if spec.column(c).kind == "string" else None)
                             for c in (cols or spec.names)})
    parts = [pd.read_parquet(f, columns=cols, filters=[(KEY, "==", member_id)]) for f in files]
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


class PartitionWriter:
    """Writes one table of a store in ``n`` member partitions from frames or Arrow tables added in order.

    Added rows are buffered up to ``budget`` rows in all, then written out partition by partition, so memory
    stays bounded whatever the size of the table. Each partition's buffered rows are sorted by member (a
    member's rows keep the order they were added in) and written in row groups of ``ROW_GROUP_ROWS``, so each
    group covers a narrow range of ids and reading one member (``read_member``, the service's on-demand
    histories) decodes only the groups whose statistics can hold it. Every partition gets a file, an empty one
    when no row falls in it.
    """

    def __init__(self, dataset: Path | str, table: str, n: int, budget: int = ROW_BUDGET) -> None:
        self.dataset, self.table, self.n, self.budget = Path(dataset), table, n, budget
        self.schema: pa.Schema | None = None
        self._buffers: list[list[pa.Table]] = [[] for _ in range(n)]
        self._buffered = 0
        self._writers: dict[int, pq.ParquetWriter] = {}
        folder = self.dataset / table
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("part-*.parquet"):  # the table is rewritten as a whole
            stale.unlink()

    def add(self, rows: pd.DataFrame | pa.Table) -> None:
        """Add rows (a frame is conformed to the canonical types first)."""
        arrow = to_arrow(rows, self.table) if isinstance(rows, pd.DataFrame) else rows
        if self.schema is None:
            self.schema = arrow.schema
        elif arrow.schema != self.schema:
            arrow = arrow.select(self.schema.names).cast(self.schema)
        if arrow.num_rows == 0:
            return
        part = partition_of(arrow.column(KEY).to_pandas(), self.n)
        order = np.argsort(part, kind="stable")
        bounds = np.searchsorted(part[order], np.arange(self.n + 1))
        arrow = arrow.take(pa.array(order))
        for k in np.flatnonzero(np.diff(bounds)):
            self._buffers[k].append(arrow.slice(bounds[k], bounds[k + 1] - bounds[k]))
        self._buffered += arrow.num_rows
        if self._buffered >= self.budget:
            self._flush()

    def _flush(self) -> None:
        for k, chunks in enumerate(self._buffers):
            if chunks:
                if k not in self._writers:
                    self._writers[k] = pq.ParquetWriter(part_path(self.dataset, self.table, k), self.schema,
                                                        compression="zstd")
                rows = pa.concat_tables(chunks)
                rows = rows.take(pc.sort_indices(rows, sort_keys=[(KEY, "ascending")]))  # stable: add order kept
                self._writers[k].write_table(rows, row_group_size=ROW_GROUP_ROWS)
                self._buffers[k] = []
        self._buffered = 0

    def close(self) -> None:
        """Write what is buffered, close every file and write the empty partitions."""
        if self.schema is None:
            self.schema = TABLES[self.table].arrow_schema()
        self._flush()
        for w in self._writers.values():
            w.close()
        empty = self.schema.empty_table()
        for k in range(self.n):
            if k not in self._writers:
                pq.write_table(empty, part_path(self.dataset, self.table, k), compression="zstd")


def write_partitioned(df: pd.DataFrame, dataset: Path | str, table: str, n: int) -> None:
    """Write a whole frame as ``table`` in ``n`` member partitions."""
    writer = PartitionWriter(dataset, table, n)
    writer.add(df)
    writer.close()


def partition_table(src: Path | str, dst: Path | str, table: str, n: int) -> int:
    """Stream ``table`` of ``src`` into ``n`` member partitions in ``dst``, file by file and batch by batch
    (a member's rows keep their order; values and types are copied as stored). Returns the rows."""
    writer = PartitionWriter(dst, table, n)
    rows = 0
    for f in table_files(src, table):
        for batch in pq.ParquetFile(f).iter_batches(batch_size=BATCH_ROWS):
            writer.add(pa.Table.from_batches([batch]))
            rows += batch.num_rows
    writer.close()
    return rows


def member_count(dataset: Path | str) -> int:
    """Rows of the members table, from the Parquet footers."""
    return sum(pq.ParquetFile(f).metadata.num_rows for f in table_files(dataset, "members"))


def repartition(src: Path | str, dst: Path | str, n: int | None = None,
                progress: Callable[[str, int], None] | None = None) -> Manifest:
    """Write the store ``src`` into the new folder ``dst`` in ``n`` member partitions (default: by its number
    of members), table by table; other files beside the tables (truth, reports, rejects) are copied, and the
    feature cache is left behind (it is rebuilt). ``src`` is never changed.

    Raises ``FileNotFoundError`` for a missing ``src`` and ``FileExistsError`` for a ``dst`` that is not empty.
    """
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: no such store folder")
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise FileExistsError(f"{dst}: exists and is not empty; repartition writes a new store")
    if dst.resolve() == src.resolve():
        raise FileExistsError(f"{dst}: the output must be a new folder, not the store itself")
    n = n or default_partitions(member_count(src))
    dst.mkdir(parents=True, exist_ok=True)
    for table in TABLES:
        if table_files(src, table):
            rows = partition_table(src, dst, table, n)
            if progress:
                progress(table, rows)
    tables = set(TABLES) | {f"{t}.parquet" for t in TABLES} | {MANIFEST, "features"}
    for entry in src.iterdir():
        if entry.name not in tables:
            copy = shutil.copytree if entry.is_dir() else shutil.copy2
            copy(entry, dst / entry.name)
    write_manifest(dst, n)
    return Manifest(n)
