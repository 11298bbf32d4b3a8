"""Shared checks for the importer tests."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


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
