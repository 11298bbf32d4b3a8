"""The import report: rows read, written, rejected and skipped per canonical table, warnings and errors.

Counting rule: for every canonical table, ``read == written + sum(rejected) + sum(skipped)``. ``read`` counts
the candidate rows for that table (source rows, or code cells for tables melted out of wide claim rows).
*Rejected* rows are bad data and go to ``OUT/rejects/<table>.csv`` with their reason; *skipped* rows are left
out by a documented mapping rule (e.g. an uninsured payer span) and are only counted. A source row that is
rejected is counted once, in the table it primarily feeds (a rejected claim is not a candidate diagnosis).

An import that *loses* rows is incomplete, and not ``ok``, even though it writes the store (so that the
rejects can be read): a source file cut short (its last line is a partial row), or child rows rejected because
their parent is missing (a diagnosis whose encounter, a claim whose beneficiary, is not in the store, whether
absent from the source or rejected there). ``umrisk data import`` exits with status 1 for it. Bad values in
single rows are not losses of this kind: they are rejected and counted, and the import stays ok.

Messages name files and columns, never values of identifying fields (those are never read).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from umrisk.features.schema import TABLES


def _empty_counts() -> dict:
    return {"read": 0, "written": 0, "rejected": {}, "skipped": {}, "sources": []}


@dataclass
class ImportReport:
    """What one import did; ``ok`` when no fatal error stopped it and it lost no rows (``complete``)."""

    source: str
    kind: str
    out: Path
    tables: dict[str, dict] = field(default_factory=lambda: {name: _empty_counts() for name in TABLES})
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    cut: list[str] = field(default_factory=list)
    orphans: dict[tuple[str, str], dict] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors and self.complete

    @property
    def complete(self) -> bool:
        """No file cut short and no row lost to a missing parent."""
        return not self.cut and not self.orphans

    @property
    def lost(self) -> list[str]:
        """Why the import is incomplete: files cut short, then rows rejected for a missing parent, per table."""
        messages = list(self.cut)
        for (table, reason), o in self.orphans.items():
            messages.append(f"{', '.join(o['files'])}: {o['rows']:,} row(s) lost from {table} because their "
                            f"{o['parent']} is not in the store, absent from the source or rejected ({reason})")
        return messages

    def cut_short(self, message: str) -> None:
        """Record a source file whose last line is a partial row (``FILE: line N is cut short ...``)."""
        if message not in self.cut:
            self.cut.append(message)

    def add_orphans(self, table: str, reason: str, parent: str, n: int, files: list[str]) -> None:
        """Count ``n`` rows of ``table`` rejected (with ``reason``) because their ``parent`` is not in the store."""
        if not n:
            return
        entry = self.orphans.setdefault((table, reason), {"parent": parent, "rows": 0, "files": []})
        entry["rows"] += int(n)
        entry["files"] += [f for f in files if f not in entry["files"]]

    def counts(self, table: str) -> dict:
        return self.tables.setdefault(table, _empty_counts())

    def add_source(self, table: str, file: str) -> None:
        sources = self.counts(table)["sources"]
        if file not in sources:
            sources.append(file)

    def add_read(self, table: str, n: int) -> None:
        self.counts(table)["read"] += int(n)

    def add_written(self, table: str, n: int) -> None:
        self.counts(table)["written"] += int(n)

    def add_rejected(self, table: str, reasons: Mapping[str, int]) -> None:
        bucket = self.counts(table)["rejected"]
        for reason, n in reasons.items():
            if n:
                bucket[reason] = bucket.get(reason, 0) + int(n)

    def add_skipped(self, table: str, reason: str, n: int) -> None:
        if n:
            bucket = self.counts(table)["skipped"]
            bucket[reason] = bucket.get(reason, 0) + int(n)

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def error(self, message: str) -> None:
        if message not in self.errors:
            self.errors.append(message)

    def to_dict(self) -> dict:
        return {"source": self.source, "kind": self.kind, "out": str(self.out), "ok": self.ok,
                "complete": self.complete, "tables": self.tables, "warnings": self.warnings, "errors": self.errors,
                "lost": self.lost}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def render(self) -> str:
        """A human summary: one line per table, then reasons, warnings and errors."""
        lines = [f"Import of {self.kind} data from {self.source} into {self.out}"]
        if self.errors:
            lines.append("Import stopped; nothing was written but the report:")
            lines += [f"  ERROR {e}" for e in self.errors]
        lines.append(f"  {'table':<16}{'read':>12}{'written':>12}{'rejected':>12}{'skipped':>12}")
        for name, c in self.tables.items():
            lines.append(f"  {name:<16}{c['read']:>12,}{c['written']:>12,}"
                         f"{sum(c['rejected'].values()):>12,}{sum(c['skipped'].values()):>12,}")
        sections = (("Rejected (rows in rejects/<table>.csv)", "rejected"), ("Skipped by mapping rules", "skipped"))
        for label, key in sections:
            entries = [(name, reason, n) for name, c in self.tables.items() for reason, n in c[key].items()]
            if entries:
                lines.append(f"{label}:")
                lines += [f"  {name}: {reason}: {n:,}" for name, reason, n in entries]
        if self.warnings:
            lines.append("Warnings:")
            lines += [f"  {w}" for w in self.warnings]
        if self.lost and not self.errors:
            lines.append("Import INCOMPLETE: rows were lost (the store and rejects/ are written; exit status 1):")
            lines += [f"  LOST {m}" for m in self.lost]
        if self.ok:
            lines.append("Import finished.")
        return "\n".join(lines)

    def write_json(self, out: Path) -> Path | None:
        """Write ``OUT/import_report.json``; returns the path, or None when OUT cannot be written."""
        try:
            out.mkdir(parents=True, exist_ok=True)
            path = out / "import_report.json"
            path.write_text(self.to_json(), encoding="utf-8")
            return path
        except OSError as exc:
            self.error(f"{out}: cannot write the import report ({exc.strerror or exc})")
            return None
