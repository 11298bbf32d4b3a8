"""The canonical history store: tables, columns, types and allowed values.

A dataset is one folder. Each table is a folder of Parquet files (``DIR/encounters/part-00000.parquet``, ...)
or a single file (``DIR/encounters.parquet``). A store written by umrisk holds every table in the same member
partitions: ``part-K.parquet`` of every table has the rows of the same members (``features.partition``, whose
manifest ``DIR/_partitions.json`` says how many partitions and by which hash). Column names and types below
are the contract between importers and everything downstream: importers may add columns, never rename these.

Time convention
    Every date and time column is a *naive* ``timestamp[us]``, read as UTC wall-clock time. Dates
    (birth, death, enrollment) are midnight of that day; an enrollment ``end_date`` is the last covered
    day (inclusive). Importers convert time-zone-aware inputs to UTC and then drop the zone, so the store
    never mixes naive and aware values; the validator rejects an aware column.

Identifiers
    ``member_id``, ``encounter_id`` and ``request_id`` are strings. The store never holds names,
    addresses or national identifiers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

Kind = Literal["string", "timestamp", "float", "int", "bool"]

SEX = ("F", "M", "U")
LINES_OF_BUSINESS = ("medicare", "medicaid", "commercial", "dual", "unknown")
SETTINGS = (
    "inpatient", "emergency", "observation", "outpatient", "office",
    "snf", "home_health", "hospice", "telehealth",
)
ADMISSION_TYPES = ("emergency", "urgent", "elective", "unknown")
DISCHARGE_DISPOSITIONS = (
    "home", "home_health", "snf", "rehab", "transfer_acute", "ama",
    "expired", "hospice", "other", "unknown",
)
DIAGNOSIS_CODE_SYSTEMS = ("ICD10CM", "ICD9CM", "SNOMED")
PROCEDURE_CODE_SYSTEMS = ("CPT", "HCPCS", "ICD10PCS", "ICD9PCS", "SNOMED")
MEDICATION_CODE_SYSTEMS = ("NDC", "RXNORM", "ATC")
SERVICE_TYPES = ("inpatient_admission", "procedure", "imaging", "dme", "drug", "other")
URGENCIES = ("expedited", "standard")
REVIEW_STATUSES = ("open", "in_review", "pended", "closed", "withdrawn")

ARROW_TYPES: dict[Kind, pa.DataType] = {
    "string": pa.string(),
    "timestamp": pa.timestamp("us"),
    "float": pa.float64(),
    "int": pa.int64(),
    "bool": pa.bool_(),
}

EARLIEST_PLAUSIBLE = pd.Timestamp("1890-01-01")
PLAUSIBLE_AHEAD = pd.Timedelta(days=366)  # the latest plausible date of any row: a year past today


def latest_plausible() -> pd.Timestamp:
    """The latest plausible date of a row (naive UTC): a year past today."""
    return pd.Timestamp.now(tz="UTC").tz_localize(None) + PLAUSIBLE_AHEAD


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    nullable: bool = False
    allowed: tuple[str, ...] | None = None
    min_value: float | None = None
    max_value: float | None = None
    description: str = ""


@dataclass(frozen=True)
class ForeignKey:
    column: str
    table: str
    ref_column: str


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    key: str | None = None
    foreign_keys: tuple[ForeignKey, ...] = ()
    ordered_times: tuple[tuple[str, str], ...] = field(default=())
    """Pairs (earlier, later) where later must not precede earlier when both are present."""

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")

    def arrow_schema(self) -> pa.Schema:
        """Arrow types of the canonical columns. Fields are declared nullable: nulls where the contract
        forbids them are the validator's to report with their row, not the writer's to refuse."""
        return pa.schema([pa.field(c.name, ARROW_TYPES[c.kind]) for c in self.columns])


_MEMBER_FK = ForeignKey("member_id", "members", "member_id")
_ENCOUNTER_FK = ForeignKey("encounter_id", "encounters", "encounter_id")

TABLES: dict[str, Table] = {
    t.name: t
    for t in [
        Table(
            "members",
            (
                Column("member_id", "string"),
                Column("birth_date", "timestamp"),
                Column("sex", "string", allowed=SEX),
                Column("race_ethnicity", "string", nullable=True),
                Column("state", "string", nullable=True),
                Column("death_date", "timestamp", nullable=True),
            ),
            key="member_id",
            ordered_times=(("birth_date", "death_date"),),
        ),
        Table(
            "enrollment",
            (
                Column("member_id", "string"),
                Column("start_date", "timestamp"),
                Column("end_date", "timestamp"),
                Column("line_of_business", "string", allowed=LINES_OF_BUSINESS),
            ),
            foreign_keys=(_MEMBER_FK,),
            ordered_times=(("start_date", "end_date"),),
        ),
        Table(
            "encounters",
            (
                Column("encounter_id", "string"),
                Column("member_id", "string"),
                Column("setting", "string", allowed=SETTINGS),
                Column("admit_time", "timestamp"),
                Column("discharge_time", "timestamp", nullable=True),
                Column("admission_type", "string", allowed=ADMISSION_TYPES),
                Column("discharge_disposition", "string", allowed=DISCHARGE_DISPOSITIONS),
                Column("principal_dx", "string", nullable=True),
                Column("facility_id", "string", nullable=True),
                Column("paid_amount", "float", nullable=True, min_value=0.0),
            ),
            key="encounter_id",
            foreign_keys=(_MEMBER_FK,),
            ordered_times=(("admit_time", "discharge_time"),),
        ),
        Table(
            "diagnoses",
            (
                Column("member_id", "string"),
                Column("encounter_id", "string", nullable=True),
                Column("time", "timestamp"),
                Column("code", "string"),
                Column("code_system", "string", allowed=DIAGNOSIS_CODE_SYSTEMS),
                Column("is_principal", "bool"),
            ),
            foreign_keys=(_MEMBER_FK, _ENCOUNTER_FK),
        ),
        Table(
            "procedures",
            (
                Column("member_id", "string"),
                Column("encounter_id", "string", nullable=True),
                Column("time", "timestamp"),
                Column("code", "string"),
                Column("code_system", "string", allowed=PROCEDURE_CODE_SYSTEMS),
            ),
            foreign_keys=(_MEMBER_FK, _ENCOUNTER_FK),
        ),
        Table(
            "medications",
            (
                Column("member_id", "string"),
                Column("time", "timestamp"),
                Column("code", "string"),
                Column("code_system", "string", allowed=MEDICATION_CODE_SYSTEMS),
                Column("drug_class", "string", nullable=True),
                Column("days_supply", "float", nullable=True, min_value=0.0, max_value=400.0),
            ),
            foreign_keys=(_MEMBER_FK,),
        ),
        Table(
            "labs",
            (
                Column("member_id", "string"),
                Column("time", "timestamp"),
                Column("code", "string", description="LOINC code"),
                Column("value", "float", nullable=True),
                Column("unit", "string", nullable=True),
            ),
            foreign_keys=(_MEMBER_FK,),
        ),
        Table(
            "review_requests",
            (
                Column("request_id", "string"),
                Column("member_id", "string"),
                Column("received_time", "timestamp"),
                Column("service_type", "string", allowed=SERVICE_TYPES),
                Column("code", "string", nullable=True),
                Column("urgency", "string", allowed=URGENCIES),
                Column("status", "string", allowed=REVIEW_STATUSES),
            ),
            key="request_id",
            foreign_keys=(_MEMBER_FK,),
        ),
    ]
}


def conform(df: pd.DataFrame, table: str) -> pd.DataFrame:
    """Return ``df`` with the canonical columns of ``table`` first, cast to their canonical types.

    Extra columns are kept after the canonical ones. Raises ``KeyError`` naming missing columns.
    """
    spec = TABLES[table]
    missing = [c for c in spec.names if c not in df.columns]
    if missing:
        raise KeyError(f"{table}: missing required column(s) {', '.join(missing)}")
    out = {}
    for col in spec.columns:
        s = df[col.name]
        if col.kind == "timestamp":
            s = pd.to_datetime(s, format="ISO8601").astype("datetime64[us]") if s.dtype == object or \
                pd.api.types.is_string_dtype(s) else pd.to_datetime(s).astype("datetime64[us]")
        elif col.kind == "float":
            s = s.astype("float64")
        elif col.kind == "int":
            s = s.astype("int64")
        elif col.kind == "bool":
            s = s.astype("bool")
        else:
            # the dtype a Parquet read gives (pandas "str"), so that stores built in memory and read
            # from disk merge alike; missing values stay missing
            s = s.astype("str").where(s.notna())
        out[col.name] = s
    extra = {c: df[c] for c in df.columns if c not in out}
    return pd.DataFrame({**out, **extra}, index=df.index)


def to_arrow(df: pd.DataFrame, table: str) -> pa.Table:
    """Convert a conformed frame to Arrow with the canonical schema (extra columns inferred)."""
    spec = TABLES[table]
    frame = conform(df, table).reset_index(drop=True)
    schema = spec.arrow_schema()
    arrays = [pa.array(frame[c.name], type=ARROW_TYPES[c.kind], from_pandas=True) for c in spec.columns]
    fields = list(schema)
    for extra in [c for c in frame.columns if c not in spec.names]:
        arr = pa.array(frame[extra], from_pandas=True)
        arrays.append(arr)
        fields.append(pa.field(extra, arr.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def table_files(dataset: Path | str, table: str) -> list[Path]:
    """The Parquet files holding ``table`` in ``dataset`` (a folder of parts, or one file)."""
    root = Path(dataset)
    folder = root / table
    if folder.is_dir():
        return sorted(folder.glob("*.parquet"))
    single = root / f"{table}.parquet"
    return [single] if single.exists() else []


def column_bound(dataset: Path | str, table: str, column: str, which: Literal["min", "max"]) -> pd.Timestamp:
    """The smallest or largest value of a timestamp ``column`` over every file of ``table`` (NaT when there is
    none), from the Parquet row groups' statistics, reading the column itself only from a file without them: the
    bounds of a store in milliseconds, whatever its size."""
    found = []
    for f in table_files(dataset, table):
        meta = pq.ParquetFile(f).metadata
        idx = meta.schema.to_arrow_schema().get_field_index(column)
        stats = [meta.row_group(g).column(idx).statistics for g in range(meta.num_row_groups)
                 if meta.row_group(g).num_rows]
        if all(st is not None and st.has_min_max for st in stats):
            found += [pd.Timestamp(getattr(st, which)) for st in stats]
        else:
            values = pq.read_table(f, columns=[column]).column(column).drop_null()
            if len(values):
                found.append(pd.Timestamp(getattr(values.to_pandas(), which)()))
    if not found:
        return pd.NaT
    return min(found) if which == "min" else max(found)


def part_path(dataset: Path | str, table: str, part: int) -> Path:
    """Where part ``part`` of ``table`` lives in the folder layout (``DIR/<table>/part-00003.parquet``)."""
    return Path(dataset) / table / f"part-{part:05d}.parquet"


def write_table(df: pd.DataFrame, dataset: Path | str, table: str, part: int = 0) -> Path:
    """Write ``df`` as part ``part`` of ``table`` in ``dataset`` (the folder layout)."""
    path = part_path(dataset, table, part)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(to_arrow(df, table), path, compression="zstd")
    return path


# Repetitive string columns, read as dictionary-encoded categories: a million members' ids repeated over
# a hundred million events cost an integer per row instead of a string. Unique ids stay plain strings.
DICTIONARY_COLUMNS = frozenset({
    "member_id", "sex", "race_ethnicity", "state", "line_of_business", "setting", "admission_type",
    "discharge_disposition", "principal_dx", "facility_id", "code", "code_system", "drug_class", "unit",
    "service_type", "urgency", "status",
})


def read_table(dataset: Path | str, table: str, columns: Sequence[str] | None = None,
               categories: bool = False, part: int | None = None) -> pd.DataFrame:
    """Read every part of ``table`` into one frame (empty with canonical columns if absent).

    With ``categories``, the repetitive string columns come back as pandas categories (same values, far
    less memory), their dictionaries unified across parts. With ``part``, only that part is read (one member
    partition of a partitioned store), with the same columns and types.
    """
    files = table_files(dataset, table)
    if part is not None:
        files = [f for f in files if f == part_path(dataset, table, part)]
    spec = TABLES[table]
    cols = list(columns) if columns else None
    if not files:
        return pd.DataFrame({c: pd.Series(dtype=_pandas_dtype(spec.column(c).kind)) for c in (cols or spec.names)})
    if not categories:
        return pd.concat([pd.read_parquet(f, columns=cols) for f in files], ignore_index=True)
    wanted = cols or pq.read_schema(files[0]).names
    parts = [pq.read_table(f, columns=cols, read_dictionary=[c for c in wanted if c in DICTIONARY_COLUMNS])
             for f in files]
    arrow = pa.concat_tables(parts).unify_dictionaries().combine_chunks()
    return arrow.to_pandas()


def _pandas_dtype(kind: Kind) -> str:
    return {"string": "object", "timestamp": "datetime64[us]", "float": "float64",
            "int": "int64", "bool": "bool"}[kind]
