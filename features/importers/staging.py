"""Staging of one import: canonical rows and rejected rows gathered table by table, written at the end.

Writing replaces what an earlier import left in OUT (the table folders, ``rejects/`` and the report) and
leaves any other file alone. Every canonical table is written, empty ones too, so that the store is complete,
in the store's member partitions (``features.partition``; by default about 50,000 members each) with the
partition manifest.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from umrisk.features.importers.checks import RowChecks
from umrisk.features.importers.report import ImportReport
from umrisk.features.partition import MANIFEST, default_partitions, write_manifest, write_partitioned
from umrisk.features.schema import TABLES

_DTYPES = {"string": "str", "timestamp": "datetime64[us]", "float": "float64", "int": "int64", "bool": "bool"}


def empty_table(table: str) -> pd.DataFrame:
    """A frame with no rows and the canonical columns and types of ``table``."""
    return pd.DataFrame({c.name: pd.Series(dtype=_DTYPES[c.kind]) for c in TABLES[table].columns})


class Staging:
    """Rows for each canonical table and the rejected source rows, with the report's counts kept in step."""

    def __init__(self, report: ImportReport) -> None:
        self.report = report
        self._rows: dict[str, list[pd.DataFrame]] = {}
        self._rejects: dict[str, list[pd.DataFrame]] = {}

    def add(self, table: str, rows: pd.DataFrame, checks: RowChecks | None = None,
            reject_columns: list[str] | None = None, read: int | None = None) -> None:
        """Stage ``rows`` for ``table``; count the checked source rows as read and their rejects as rejected.

        Without ``checks``, ``read`` (default ``len(rows)``) candidate rows are counted. Rows that passed the
        checks but are not in ``rows`` must have been counted with ``skip``.
        """
        if checks is not None:
            frame = checks.frame
            for file in pd.unique(frame["source_file"]) if len(frame) else []:
                self.report.add_source(table, str(file))
            self.report.add_read(table, len(frame))
            reasons = checks.reason_counts()
            self.report.add_rejected(table, reasons)
            for reason, parent in checks.parents.items():
                files = frame.loc[checks.rejected_for(reason), "source_file"].unique().tolist()
                self.report.add_orphans(table, reason, parent, reasons.get(reason, 0), [str(f) for f in files])
            rejected = checks.rejects(reject_columns)
            if len(rejected):
                self._rejects.setdefault(table, []).append(rejected)
        else:
            self.report.add_read(table, len(rows) if read is None else read)
        self.report.add_written(table, len(rows))
        if len(rows):
            self._rows.setdefault(table, []).append(rows.reset_index(drop=True))

    def skip(self, table: str, reason: str, n: int) -> None:
        self.report.add_skipped(table, reason, n)

    def table(self, table: str) -> pd.DataFrame:
        """Everything staged so far for ``table`` (canonical columns first)."""
        parts = self._rows.get(table)
        if not parts:
            return empty_table(table)
        return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]

    def replace(self, table: str, rows: pd.DataFrame) -> None:
        """Swap the staged rows of ``table`` for an updated frame with the same rows (e.g. a filled column)."""
        self._rows[table] = [rows.reset_index(drop=True)]

    def write(self, out: Path, partitions: int | None = None) -> None:
        """Write every canonical table, in ``partitions`` member partitions (default: by the number of members),
        and the rejects files into ``out``."""
        _clear_previous(out)
        n = partitions or default_partitions(len(self.table("members")))
        for name in TABLES:
            write_partitioned(self.table(name), out, name, n)
        write_manifest(out, n)
        if self._rejects:
            folder = out / "rejects"
            folder.mkdir(parents=True, exist_ok=True)
            for name, parts in self._rejects.items():
                frame = pd.concat(parts, ignore_index=True)
                frame.to_csv(folder / f"{name}.csv", index=False)


def _clear_previous(out: Path) -> None:
    """Remove the outputs of an earlier import into ``out`` (only files this package writes)."""
    if not out.is_dir():
        return
    for name in TABLES:
        for f in (out / name).glob("part-*.parquet") if (out / name).is_dir() else []:
            f.unlink()
        single = out / f"{name}.parquet"
        if single.is_file():
            single.unlink()
    (out / MANIFEST).unlink(missing_ok=True)
    if (out / "rejects").is_dir():
        for f in (out / "rejects").glob("*.csv"):
            f.unlink()
