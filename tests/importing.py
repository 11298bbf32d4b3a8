"""Shared checks for the importer tests."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from umrisk.features.schema import TABLES
from umrisk.features.validate import validate_dataset

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def counts_add_up(report) -> None:
    """Every source row is accounted for: read = written + rejected + skipped, per table."""
    for name, c in report.tables.items():
        assert c["read"] == c["written"] + sum(c["rejected"].values()) + sum(c["skipped"].values()), name


def output_text(out: Path) -> str:
    """Every string value of every Parquet table, and the text of the rejects files and the report."""
    chunks = []
    for f in out.rglob("*.parquet"):
        table = pq.read_table(f)
        for name in table.column_names:
            col = table.column(name)
            if "string" in str(col.type):
                chunks += [v for v in col.to_pylist() if v is not None]
    chunks += [f.read_text(encoding="utf-8") for f in out.rglob("*.csv")]
    chunks.append((out / "import_report.json").read_text(encoding="utf-8"))
    return "\n".join(chunks)


def assert_valid_import(report, out: Path) -> None:
    """The import finished, wrote every canonical table, validates, and accounts for every source row."""
    assert report.ok, report.render()
    validation = validate_dataset(out)
    assert validation.ok, validation.render()
    assert set(validation.rows) == set(TABLES)
    counts_add_up(report)
