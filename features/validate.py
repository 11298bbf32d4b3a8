"""Validate a history store against the canonical schema.

Every problem names the table, the file, the row (1-based, within that file) and the column. Checks:
required columns and their types (from the Parquet schema), nulls, allowed values, numeric bounds,
plausible dates, time order within a row (discharge not before admission), unique keys across all parts
of a table, foreign keys (every ``member_id`` is a member, every ``encounter_id`` an encounter), and member
partitions: the manifest ``_partitions.json`` is readable, every table has exactly its partition files, and
every row sits in its member's partition (``features.partition``). A store without the manifest (the old
layout) gets a warning, not a problem: it still loads.
Row checks use pandera; keys and foreign keys are checked across files with Arrow hashing so that a
store of a million members is validated one part at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_arrow
import pyarrow.compute as pc
import pyarrow.parquet as pq

from umrisk.features.partition import HASH, KEY, MANIFEST, NOT_PARTITIONED, partition_of, read_manifest
from umrisk.features.schema import (
    EARLIEST_PLAUSIBLE,
    TABLES,
    Column,
    Table,
    latest_plausible,
    part_path,
    table_files,
)

# Tables are checked in this order so that the key sets that foreign keys point to exist first.
ORDER = ("members", "encounters", "enrollment", "diagnoses", "procedures", "medications", "labs",
         "review_requests")
MAX_EXAMPLES = 20


@dataclass
class Problem:
    table: str
    file: str
    row: int | None
    column: str | None
    check: str
    value: str = ""

    def __str__(self) -> str:
        where = self.file + (f", row {self.row}" if self.row is not None else "")
        col = f", column {self.column}" if self.column else ""
        val = f" (value: {self.value})" if self.value != "" else ""
        return f"{self.table}: {where}{col}: {self.check}{val}"


@dataclass
class ValidationReport:
    dataset: Path
    rows: dict[str, int] = field(default_factory=dict)
    files: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)  # worth knowing, but the store can be used

    @property
    def ok(self) -> bool:
        return not self.problems

    def counts(self) -> pd.DataFrame:
        """Problems counted by table, column and check."""
        if not self.problems:
            return pd.DataFrame(columns=["table", "column", "check", "count"])
        df = pd.DataFrame([vars(p) for p in self.problems]).fillna({"column": ""})
        return df.groupby(["table", "column", "check"], sort=False).size().rename("count").reset_index()

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([vars(p) for p in self.problems],
                            columns=["table", "file", "row", "column", "check", "value"])

    def render(self, examples: int = MAX_EXAMPLES) -> str:
        lines = [f"Dataset {self.dataset}"]
        for name in ORDER:
            if name in self.rows:
                lines.append(f"  {name:<16}{self.rows[name]:>14,} rows in {self.files[name]} file(s)")
        lines += [f"Warning: {w}" for w in self.warnings]
        if self.ok:
            lines.append("No problems found.")
            return "\n".join(lines)
        lines.append(f"{len(self.problems):,} problem(s):")
        for r in self.counts().itertuples(index=False):
            lines.append(f"  {r.table}.{r.column or '*'}: {r.check}: {r.count:,}")
        lines.append(f"First {min(examples, len(self.problems))}:")
        lines += [f"  {p}" for p in self.problems[:examples]]
        return "\n".join(lines)


def _pandera_column(col: Column, latest: pd.Timestamp) -> pa.Column:
    checks: list[pa.Check] = []
    if col.allowed is not None:
        checks.append(pa.Check.isin(list(col.allowed), error=f"value not one of {', '.join(col.allowed)}"))
    if col.kind == "string":
        checks.append(pa.Check(lambda s: s.str.len() > 0, element_wise=False, error="empty string"))
    if col.min_value is not None:
        checks.append(pa.Check.ge(col.min_value, error=f"below {col.min_value:g}"))
    if col.max_value is not None:
        checks.append(pa.Check.le(col.max_value, error=f"above {col.max_value:g}"))
    if col.kind == "float":
        checks.append(pa.Check(lambda s: np.isfinite(s), error="not a finite number"))
    if col.kind == "timestamp":
        checks.append(pa.Check.in_range(EARLIEST_PLAUSIBLE, latest,
                                        error=f"implausible date (before {EARLIEST_PLAUSIBLE.date()} "
                                              f"or after {latest.date()})"))
    return pa.Column(None, checks=checks, nullable=col.nullable, required=True)


def pandera_schema(table: Table, latest: pd.Timestamp | None = None) -> pa.DataFrameSchema:
    """The column checks of ``table`` as a pandera schema (types are checked on the Arrow schema)."""
    latest = latest if latest is not None else latest_plausible()
    return pa.DataFrameSchema({c.name: _pandera_column(c, latest) for c in table.columns}, name=table.name)


def _order_problems(df: pd.DataFrame, table: Table, file: str) -> list[Problem]:
    """Rows where a later time (discharge, end, death) precedes its earlier one (admission, start, birth)."""
    out = []
    for earlier, later in table.ordered_times:
        if earlier in df and later in df:
            bad = (df[later] < df[earlier]).to_numpy()
            out += [Problem(table.name, file, int(i) + 1, later, f"{later} before {earlier}", str(df[later].iat[i]))
                    for i in np.flatnonzero(bad)]
    return out


def _type_problem(col: Column, typ: pa_arrow.DataType) -> str | None:
    ok = {
        "string": pa_arrow.types.is_string(typ) or pa_arrow.types.is_large_string(typ)
        or (pa_arrow.types.is_dictionary(typ) and pa_arrow.types.is_string(typ.value_type)),
        "timestamp": pa_arrow.types.is_timestamp(typ),
        "float": pa_arrow.types.is_floating(typ) or pa_arrow.types.is_integer(typ),
        "int": pa_arrow.types.is_integer(typ),
        "bool": pa_arrow.types.is_boolean(typ),
    }[col.kind]
    if not ok:
        return f"type {typ}, expected {col.kind}"
    if col.kind == "timestamp" and typ.tz is not None:
        return f"time-zone-aware timestamp ({typ.tz}); the store holds naive UTC times"
    return None


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _rows_from_failures(failures: pd.DataFrame, table: str, file: str) -> list[Problem]:
    out = []
    for r in failures.itertuples(index=False):
        idx = r.index
        row = None if idx is None or (isinstance(idx, float) and np.isnan(idx)) else int(idx) + 1
        check = str(r.check)
        if check == "not_nullable":
            check = "missing value"
        value = "" if r.failure_case is None or (isinstance(r.failure_case, float) and np.isnan(r.failure_case)) \
            else str(r.failure_case)
        column = r.column if isinstance(r.column, str) and r.column != table else None
        out.append(Problem(table, file, row, column, check, value))
    return out


def validate_dataset(dataset: Path | str, tables: tuple[str, ...] = ORDER,
                     latest: pd.Timestamp | None = None) -> ValidationReport:
    """Check every table of ``dataset``; the report lists each problem with file, row and column."""
    root = Path(dataset)
    report = ValidationReport(root)
    if not root.is_dir():
        report.problems.append(Problem("*", str(root), None, None, "dataset folder not found"))
        return report
    n_parts = _check_manifest(root, report)
    keys: dict[str, pd.Index] = {}  # hashed once per table, reused by every part that refers to it
    for name in tables:
        table = TABLES[name]
        files = table_files(root, name)
        report.files[name] = len(files)
        report.rows[name] = 0
        if not files:
            report.problems.append(Problem(name, _relative(root / name, root), None, None, "table missing"))
            continue
        schema = pandera_schema(table, latest)
        key_parts: list[tuple[str, pa_arrow.Array]] = []
        expected = _partition_files(root, name, n_parts)
        if expected is not None:
            report.problems += [Problem(name, _relative(f, root), None, None, "partition file missing")
                                for f in expected if f not in files]
        for f in files:
            rel = _relative(f, root)
            if expected is not None and f not in expected:
                report.problems.append(Problem(name, rel, None, None,
                                               f"not one of the {n_parts} partition files of {MANIFEST}"))
            try:
                arrow_schema = pq.read_schema(f)
            except Exception as exc:  # noqa: BLE001 - any unreadable file is reported, not raised
                report.problems.append(Problem(name, rel, None, None, f"unreadable Parquet file: {exc}"))
                continue
            usable = []
            for col in table.columns:
                idx = arrow_schema.get_field_index(col.name)
                if idx < 0:
                    report.problems.append(Problem(name, rel, None, col.name, "required column missing"))
                    continue
                problem = _type_problem(col, arrow_schema.field(idx).type)
                if problem:
                    report.problems.append(Problem(name, rel, None, col.name, problem))
                    continue
                usable.append(col.name)
            arrow = pq.read_table(f, columns=usable)
            report.rows[name] += arrow.num_rows
            df = arrow.to_pandas()
            sub = pa.DataFrameSchema({c: schema.columns[c] for c in usable})
            report.problems += _order_problems(df, table, rel)
            if expected is not None and f in expected and KEY in usable:
                report.problems += _partition_problems(df[KEY], expected.index(f), n_parts, name, rel)
            try:
                sub.validate(df, lazy=True)
            except pa.errors.SchemaErrors as err:
                report.problems += _rows_from_failures(err.failure_cases, name, rel)
            if table.key and table.key in usable:
                key_parts.append((rel, arrow.column(table.key).combine_chunks()))
            for fk in table.foreign_keys:
                ref = keys.get(fk.table)
                if ref is None or fk.column not in usable:
                    continue
                values = arrow.column(fk.column).to_pandas()
                bad = values.notna().to_numpy() & (ref.get_indexer(values) < 0)
                for i in np.flatnonzero(bad):
                    report.problems.append(Problem(name, rel, int(i) + 1, fk.column,
                                                   f"not found in {fk.table}.{fk.ref_column}", str(values.iat[i])))
        if table.key and key_parts:
            keys[name] = _check_unique(name, table.key, key_parts, report)
    return report


def _check_manifest(root: Path, report: ValidationReport) -> int | None:
    """The number of member partitions the manifest declares; None (with a warning or a problem) without one."""
    try:
        manifest = read_manifest(root)
    except ValueError as err:
        report.problems.append(Problem("*", MANIFEST, None, None, str(err).removeprefix(f"{root / MANIFEST}: ")))
        return None
    if manifest is None:
        report.warnings.append(Problem("*", MANIFEST, None, None, NOT_PARTITIONED))
        return None
    return manifest.partitions


def _partition_files(root: Path, table: str, n: int | None) -> list[Path] | None:
    return None if n is None else [part_path(root, table, k) for k in range(n)]


def _partition_problems(member_ids: pd.Series, k: int, n: int, table: str, file: str) -> list[Problem]:
    """Rows of partition file ``k`` whose member belongs to another partition."""
    where = partition_of(member_ids, n)
    bad = np.flatnonzero((where != k) & member_ids.notna().to_numpy())
    return [Problem(table, file, int(i) + 1, KEY, f"member of partition {where[i]}, not {k} ({HASH} of {KEY})",
                    str(member_ids.iat[i])) for i in bad]


def _check_unique(name: str, key: str, parts: list[tuple[str, pa_arrow.Array]],
                  report: ValidationReport) -> pd.Index:
    allkeys = pa_arrow.concat_arrays([a.cast(pa_arrow.string()) for _, a in parts])
    dup = pd.Series(allkeys.to_pandas()).duplicated(keep="first").to_numpy()
    if dup.any():
        bounds = np.cumsum([0] + [len(a) for _, a in parts])
        for i in np.flatnonzero(dup):
            part = int(np.searchsorted(bounds, i, side="right") - 1)
            report.problems.append(Problem(name, parts[part][0], int(i - bounds[part]) + 1, key,
                                           "duplicate key", str(allkeys[int(i)])))
    return pd.Index(pc.unique(allkeys).to_pandas())
