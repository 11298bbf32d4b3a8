"""Reading one source table (CSV or Parquet) into a frame of strings, reporting bad files instead of raising.

The frame holds only the columns the importer asks for (``SourceSpec``), each as ``str`` with ``""`` for
empty, plus ``source_file``, ``source_row`` and ``_problem``. ``source_row`` is the CSV line number (header =
line 1, first data row = 2; a quoted field spanning lines is counted as one line) or, for Parquet, the
1-based row number. ``_problem`` is ``""`` or why the row itself is malformed (wrong number of fields, a quoted
field left open); the importer rejects such rows.

A file cut short (a copy or download that stopped part-way) ends in a partial row: a last line with no line
end after it (Synthea, OMOP tools, CMS files, pandas and spreadsheets all end every line), or a quoted field
still open at the end of the file. That row is rejected as cut short even when it has every field (its last
value may be cut), and the report records the loss (``ImportReport.cut_short``), which makes the import
incomplete (not ok): the rest of the file is missing, and nothing in the rows read says how much.

Identifying columns (names, SSNs, licences, passports, addresses) are declared as *ignored*: they are
recognised, so they raise no warning, and never read.

Bad files give a clear error and no frame: empty file, no header, a delimiter other than comma or tab
(semicolon files come from locales that also write decimal commas), missing required columns, unreadable
bytes. A file that is not UTF-8 is read as Latin-1 with a warning.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from umrisk.features.importers.report import ImportReport

PROBLEM = "_problem"
ROW_COLUMNS = ("source_file", "source_row")
_DELIMITERS = {";": "semicolons", "|": "pipes"}
_BLANK = "blank line"
_OPEN_QUOTE = "a quoted field is left open"


@dataclass(frozen=True)
class SourceSpec:
    """The columns an importer uses from one source table, and those it knowingly ignores.

    Names match case-insensitively and are renamed to the spelling given here; ``*_patterns`` are regular
    expressions for column families (``HCPCS_CD_\\d+``), kept with the file's spelling.
    """

    name: str
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    one_of: tuple[tuple[str, ...], ...] = ()
    ignored: tuple[str, ...] = ()
    optional_patterns: tuple[str, ...] = ()
    ignored_patterns: tuple[str, ...] = ()
    warn_unknown: bool = True

    def _lookup(self) -> dict[str, str]:
        names = [*self.required, *self.optional, *(c for group in self.one_of for c in group)]
        return {n.lower(): n for n in names}

    def classify(self, header: Iterable[str]) -> tuple[dict[str, str], list[str], list[str]]:
        """Map header names to spec names; return (used {header: name}, missing messages, unknown names)."""
        lookup = self._lookup()
        ignored = {n.lower() for n in self.ignored}
        used: dict[str, str] = {}
        unknown: list[str] = []
        for col in header:
            key = col.lower()
            if key in lookup:
                used[col] = lookup[key]
            elif any(re.fullmatch(p, col, flags=re.IGNORECASE) for p in self.optional_patterns):
                used[col] = col
            elif key in ignored or any(re.fullmatch(p, col, flags=re.IGNORECASE) for p in self.ignored_patterns):
                continue
            else:
                unknown.append(col)
        present = set(used.values())
        missing = [c for c in self.required if c not in present]
        messages = [f"missing required column(s) {', '.join(missing)}"] if missing else []
        messages += [f"missing column {' or '.join(group)}" for group in self.one_of
                     if not any(c in present for c in group)]
        return used, messages, unknown


def find_file(src: Path, stem: str, extensions: tuple[str, ...] = (".csv",)) -> Path | None:
    """``src/<stem><ext>`` matched case-insensitively, trying the extensions in order."""
    try:
        files = {p.name.lower(): p for p in src.iterdir() if p.is_file()}
    except OSError:
        return None
    for ext in extensions:
        hit = files.get(f"{stem}{ext}".lower())
        if hit is not None:
            return hit
    return None


def find_files(src: Path, pattern: str) -> list[Path]:
    """Files in ``src`` whose name matches the regular expression ``pattern`` (case-insensitive), sorted."""
    try:
        return sorted(p for p in src.iterdir() if p.is_file() and re.fullmatch(pattern, p.name, re.IGNORECASE))
    except OSError:
        return []


def read_source(path: Path, spec: SourceSpec, report: ImportReport) -> pd.DataFrame | None:
    """Read ``path`` as described by ``spec``; on a fatal problem add an error to ``report`` and return None."""
    if path.suffix.lower() == ".parquet":
        return _read_parquet(path, spec, report)
    return _read_csv(path, spec, report)


def _check_columns(name: str, header: list[str], spec: SourceSpec, report: ImportReport) -> dict[str, str] | None:
    used, missing, unknown = spec.classify(header)
    for message in missing:
        report.error(f"{name}: {message}")
    if unknown and spec.warn_unknown:
        report.warn(f"{name}: unknown column(s) {', '.join(unknown)} ignored")
    return None if missing else used


def _read_csv(path: Path, spec: SourceSpec, report: ImportReport) -> pd.DataFrame | None:
    name = path.name
    try:
        with path.open("rb") as fh:
            first = fh.readline()
    except OSError as exc:
        report.error(f"{name}: cannot read the file ({exc.strerror or exc})")
        return None
    if not first.strip():
        report.error(f"{name}: empty file (no header row)")
        return None
    encoding = "utf-8-sig"
    try:
        header_line = first.decode(encoding)
    except UnicodeDecodeError:
        encoding = "latin-1"
        header_line = first.decode(encoding)
    header_line = header_line.rstrip("\r\n")
    sep = ","
    raw = next(csv.reader([header_line]))
    if len(raw) == 1:
        if "\t" in header_line:
            sep = "\t"
            raw = next(csv.reader([header_line], delimiter="\t"))
        else:
            for delim, label in _DELIMITERS.items():
                if delim in header_line:
                    report.error(f"{name}: columns are separated by {label}, not commas; "
                                 "export the table as comma-separated CSV")
                    return None
    header = [h.strip() for h in raw]
    used = _check_columns(name, header, spec, report)
    if used is None:
        return None
    positions = [header.index(h) for h in used]
    parsed = _parse_csv(path, raw, positions, sep, encoding, report)
    if parsed is None:
        return None
    df, encoding = parsed
    if encoding == "latin-1":
        report.warn(f"{name}: not valid UTF-8; read as Latin-1")
    df.columns = [*used.values(), "source_row", PROBLEM]
    df.insert(0, "source_file", name)
    df = df[["source_file", "source_row", *used.values(), PROBLEM]]
    if not _check_last_line(path, df, report):
        return None
    blank = (df[list(used.values())] == "").all(axis=1) & (df[PROBLEM].isin(["", _BLANK]))
    if blank.any():
        report.warn(f"{name}: {int(blank.sum())} blank line(s) ignored")
        df = df[~blank]
    return df.reset_index(drop=True)


def _check_last_line(path: Path, df: pd.DataFrame, report: ImportReport) -> bool:
    """Flag a last row cut short (see the module doc) in place; False when the file cannot be read.

    A file that ends inside its header line (wide claim files have headers of several kilobytes) is cut short
    at line 1, with no row to reject.
    """
    try:
        with path.open("rb") as fh:
            fh.seek(-1, os.SEEK_END)
            line_end = fh.read(1) in (b"\n", b"\r")
    except OSError as exc:
        report.error(f"{path.name}: cannot read the file ({exc.strerror or exc})")
        return False
    if not len(df):
        if not line_end:
            report.cut_short(f"{path.name}: line 1 is cut short (the file may be truncated)")
        return True
    last = df.index[-1]
    line, problem = int(df.at[last, "source_row"]), df.at[last, PROBLEM]
    if line_end and problem != _OPEN_QUOTE:
        return True
    if problem == _BLANK:
        return True
    detail = problem.removesuffix(" (truncated?)") or "no line end after it"
    df.at[last, PROBLEM] = f"cut short, the file may be truncated: {detail}"
    report.cut_short(f"{path.name}: line {line} is cut short (the file may be truncated)")
    return True


def _parse_csv(path: Path, raw: list[str], positions: list[int], sep: str, encoding: str,
               report: ImportReport) -> tuple[pd.DataFrame, str] | None:
    """Columns ``positions`` of every data row, then ``source_row`` and ``_problem``; and the encoding used.

    The fast path is Arrow's CSV reader, single-threaded so that every malformed row comes with its line
    number; malformed rows (too few or too many fields, a quote left open at the end) are kept, flagged.
    UTF-8 is tried first, then Latin-1.
    """
    n = len(raw)
    names = [raw[i] for i in positions]
    for enc in dict.fromkeys([encoding, "latin-1"]):
        bad: list[tuple[int | None, str]] = []

        def keep(row: pcsv.InvalidRow, bad: list = bad) -> str:
            bad.append((row.number, row.text))
            return "skip"

        try:
            table = pcsv.read_csv(
                path,
                read_options=pcsv.ReadOptions(use_threads=False, encoding="latin1" if enc == "latin-1" else "utf8"),
                parse_options=pcsv.ParseOptions(delimiter=sep, newlines_in_values=True, ignore_empty_lines=False,
                                                invalid_row_handler=keep),
                convert_options=pcsv.ConvertOptions(include_columns=names,
                                                    column_types={c: pa.string() for c in names},
                                                    strings_can_be_null=False, quoted_strings_can_be_null=False,
                                                    null_values=[]),
            )
        except pa.ArrowInvalid as exc:
            if "UTF8" in str(exc) and enc != "latin-1":
                continue
            ragged = _read_ragged(path, n, positions, sep, enc, report)
            return None if ragged is None else (ragged, enc)
        except OSError as exc:
            report.error(f"{path.name}: cannot read the file ({exc.strerror or exc})")
            return None
        if any(number is None for number, _ in bad):
            ragged = _read_ragged(path, n, positions, sep, enc, report)
            return None if ragged is None else (ragged, enc)
        good = pd.DataFrame({i: pd.Series(table.column(c).to_pandas(), dtype="str")
                             for i, c in enumerate(names)})
        numbers = np.arange(2, 2 + table.num_rows + len(bad), dtype="int64")
        bad_numbers = np.array([number for number, _ in bad], dtype="int64")
        good["source_row"] = np.setdiff1d(numbers, bad_numbers, assume_unique=True)
        good[PROBLEM] = ""
        if not bad:
            return good, enc
        flagged = pd.DataFrame([_flag(text, n, positions, sep) for _, text in bad],
                               columns=[*range(len(names)), PROBLEM], dtype="str")
        flagged["source_row"] = bad_numbers
        merged = pd.concat([good, flagged[good.columns]], ignore_index=True).sort_values("source_row", kind="stable")
        return merged.reset_index(drop=True), enc
    report.error(f"{path.name}: cannot decode the file")
    return None


def _flag(text: str, n: int, positions: list[int], sep: str) -> list[str]:
    """The used fields of one malformed line, padded, and why it is malformed."""
    if not text.strip():
        return [""] * len(positions) + [_BLANK]
    fields = next(csv.reader([text], delimiter=sep), [])
    if text.count('"') % 2:
        problem = _OPEN_QUOTE
    elif len(fields) < n:
        problem = f"row has {len(fields)} of {n} fields (truncated?)"
    else:
        problem = f"row has {len(fields)} fields, the header {n}"
    fields = fields + [""] * (n - len(fields))
    return [fields[i] for i in positions] + [problem]


def _read_ragged(path: Path, n: int, positions: list[int], sep: str, encoding: str,
                 report: ImportReport) -> pd.DataFrame | None:
    """Record-by-record reading, for files Arrow cannot parse at all (slow, but only for broken files)."""
    rows: list[list[str]] = []
    try:
        with path.open(newline="", encoding=encoding, errors="replace") as fh:
            reader = csv.reader(fh, delimiter=sep)
            next(reader, None)
            while True:
                try:
                    record = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:
                    rows.append([""] * len(positions) + [f"unreadable row ({exc})"])
                    continue
                if not record:
                    rows.append([""] * len(positions) + [_BLANK])
                    continue
                problem = ""
                if len(record) != n:
                    problem = (f"row has {len(record)} of {n} fields (truncated?)" if len(record) < n
                               else f"row has {len(record)} fields, the header {n}")
                record = record + [""] * (n - len(record))
                rows.append([record[i] for i in positions] + [problem])
    except OSError as exc:
        report.error(f"{path.name}: cannot read the file ({exc.strerror or exc})")
        return None
    df = pd.DataFrame(rows, columns=[*range(len(positions)), PROBLEM], dtype="str")
    df.insert(len(positions), "source_row", np.arange(2, 2 + len(df), dtype="int64"))
    return df


def _read_parquet(path: Path, spec: SourceSpec, report: ImportReport) -> pd.DataFrame | None:
    name = path.name
    try:
        schema = pq.read_schema(path)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is reported, not raised
        report.error(f"{name}: unreadable Parquet file ({type(exc).__name__})")
        return None
    used = _check_columns(name, list(schema.names), spec, report)
    if used is None:
        return None
    try:
        table = pq.read_table(path, columns=list(used))
    except Exception as exc:  # noqa: BLE001
        report.error(f"{name}: unreadable Parquet file ({type(exc).__name__})")
        return None
    columns = {}
    for col in used:
        arr = table.column(col)
        try:
            arr = pc.cast(arr, pa.string()) if not pa.types.is_string(arr.type) else arr
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            report.error(f"{name}: column {col} has type {arr.type}, which cannot be read as text")
            return None
        columns[col] = pd.Series(pc.fill_null(arr, "").to_pandas(), dtype="str")
    df = pd.DataFrame(columns, index=pd.RangeIndex(table.num_rows)).rename(columns=used)
    df.insert(0, "source_row", np.arange(1, 1 + len(df), dtype="int64"))
    df.insert(0, "source_file", name)
    df[PROBLEM] = ""
    return df
