"""Importers: Synthea CSV, OMOP CDM v5.4 (CSV or Parquet) and CMS DE-SynPUF into the history store.

``run_import(kind, src, out)`` reads SRC, maps it to the canonical tables (``features.schema``) and writes
into OUT every canonical table (empty ones too), ``import_report.json`` and ``rejects/<table>.csv`` (each
rejected source row with ``source_file, source_row, reason`` and the fields the importer read).

It does not raise on bad input: a fatal problem (a file or required column missing, an unreadable file)
goes to ``report.errors`` and nothing but the report is written. Identifying fields of patients (names,
SSNs, licences, passports, addresses) are never read, so they cannot reach the store, the rejects or a
message. Each source module documents its mapping decisions. An import that loses rows (a file cut short,
rows whose parent is missing) writes the store but is not ``ok`` (see ``report``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from umrisk.features.importers import cms, omop, synthea
from umrisk.features.importers.report import ImportReport
from umrisk.features.importers.staging import Staging

__all__ = ["IMPORTERS", "ImportReport", "run_import"]

IMPORTERS: dict[str, Callable[[Path, ImportReport], Staging | None]] = {
    "synthea": synthea.import_synthea,
    "omop": omop.import_omop,
    "cms": cms.import_cms,
}


def run_import(kind: str, src: Path, out: Path, partitions: int | None = None) -> ImportReport:
    """Import the ``kind`` export in folder ``src`` into the dataset folder ``out`` (in ``partitions`` member
    partitions; default about 50,000 members each); see the module doc."""
    src, out = Path(src), Path(out)
    report = ImportReport(source=str(src), kind=kind, out=out)
    if kind not in IMPORTERS:
        report.error(f"unknown source kind {kind!r}; expected one of {', '.join(IMPORTERS)}")
    elif not src.is_dir():
        report.error(f"{src}: source folder not found")
    elif out.resolve() == src.resolve():
        report.error(f"{out}: the output folder must differ from the source folder")
    if not report.errors:
        try:
            staging = IMPORTERS[kind](src, report)
            if not report.errors and staging is not None:
                staging.write(out, partitions)
        except Exception as exc:  # noqa: BLE001 - never a traceback on bad input; this is a bug to report
            report.error(f"import failed unexpectedly ({type(exc).__name__}: {exc}); "
                         "please report this as a bug in umrisk")
    report.write_json(out)
    return report
