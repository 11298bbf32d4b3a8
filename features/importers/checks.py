"""Vectorised checks of one source frame: parse its fields and remember why rows are rejected.

Each method parses a column for all rows at once and records, for every row that fails, a reason of the
form ``COLUMN: problem 'value'`` (e.g. ``START: unparseable date 'abc'``). A row keeps its first reason.
The report counts reasons without the value; the rejects file holds the full reason and the row's fields.

>>> import pandas as pd
>>> frame = pd.DataFrame({"source_file": "x.csv", "source_row": [2, 3], "START": ["2020-01-02", "abc"]})
>>> checks = RowChecks(frame)
>>> checks.date("START").tolist()
[Timestamp('2020-01-02 00:00:00'), NaT]
>>> checks.ok.tolist(), checks.reason_counts()
([True, False], {'START: unparseable date': 1})
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from umrisk.features.importers.source import PROBLEM, ROW_COLUMNS
from umrisk.features.importers.vocab import SHAPES, normalise_code
from umrisk.features.schema import EARLIEST_PLAUSIBLE

_ISO = r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?(Z|[+-]\d{2}:?\d{2})?"
_DATE_FORMATS = {"iso": _ISO, "yyyymmdd": r"\d{8}"}


def latest_plausible() -> pd.Timestamp:
    """The latest date accepted: a year from today (as the validator does), naive UTC."""
    return pd.Timestamp.now(tz="UTC").tz_localize(None).normalize() + pd.Timedelta(days=366)


class RowChecks:
    """Parse and check the columns of one source frame; ``ok`` marks the rows without a reason."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self._key = pd.Series(None, index=frame.index, dtype="object")
        self._reason = pd.Series(None, index=frame.index, dtype="object")
        self._latest = latest_plausible()
        self.parents: dict[str, str] = {}
        if PROBLEM in frame:
            problem = frame[PROBLEM].fillna("")
            self.fail(problem != "", "malformed row", problem, quote=False)

    @property
    def ok(self) -> pd.Series:
        return self._key.isna()

    def fail(self, bad: pd.Series, key: str, values: pd.Series | None = None, quote: bool = True) -> None:
        """Record ``key`` (and the offending value) for the ``bad`` rows that have no reason yet."""
        new = bad.fillna(False).astype(bool) & self._key.isna()
        if not new.any():
            return
        self._key[new] = key
        if values is None:
            self._reason[new] = key
        else:
            shown = values[new].astype("str").str.slice(0, 80)
            self._reason[new] = (key + " '" + shown + "'") if quote else (key + ": " + shown)

    def column(self, col: str) -> pd.Series:
        """The column stripped of surrounding spaces; all empty when the source lacks it."""
        if col not in self.frame:
            return pd.Series("", index=self.frame.index, dtype="str")
        return self.frame[col].fillna("").str.strip()

    def text(self, col: str, required: bool = False) -> pd.Series:
        """The stripped values, None for empty; a required empty value rejects the row."""
        s = self.column(col)
        if required:
            self.fail(s == "", f"{col}: missing value")
        return s.where(s != "", None)

    def date(self, col: str, fmt: str = "iso", required: bool = True) -> pd.Series:
        """Naive UTC timestamps; aware inputs are converted to UTC first. NaT for empty or bad values.

        ``fmt`` is ``iso`` (a date or date-time, optionally with ``Z`` or an offset) or ``yyyymmdd``.
        """
        s = self.column(col)
        empty = s == ""
        if required:
            self.fail(empty, f"{col}: missing date")
        shaped = s.str.fullmatch(_DATE_FORMATS[fmt]).fillna(False).astype(bool)
        if fmt == "iso":
            parsed = pd.to_datetime(s.where(shaped), format="ISO8601", utc=True, errors="coerce").dt.tz_convert(None)
        else:
            parsed = pd.to_datetime(s.where(shaped), format="%Y%m%d", errors="coerce")
        parsed = parsed.astype("datetime64[us]")
        self.fail(~empty & parsed.isna(), f"{col}: unparseable date", s)
        return self.plausible(parsed, col, s)

    def year(self, col: str, month_day: str) -> pd.Series:
        """A four-digit year as the date ``<year>-<month_day>`` (e.g. ``12-31``)."""
        years = self.column(col)
        shaped = years.str.fullmatch(r"\d{4}").fillna(False).astype(bool)
        self.fail(~shaped, f"{col}: unparseable year", years)
        dates = pd.to_datetime(years.where(shaped) + "-" + month_day, format="%Y-%m-%d", errors="coerce")
        return self.plausible(dates.astype("datetime64[us]"), col, years)

    def plausible(self, dates: pd.Series, col: str, shown: pd.Series) -> pd.Series:
        """Reject dates before 1890 or more than a year ahead (the validator's bounds); NaT for them."""
        implausible = (dates < EARLIEST_PLAUSIBLE) | (dates > self._latest)
        self.fail(implausible, f"{col}: implausible date", shown)
        return dates.where(~implausible)

    def number(self, col: str, required: bool = False, where: pd.Series | None = None) -> pd.Series:
        """Floats; NaN for empty. Only rows in ``where`` (default all) are checked."""
        s = self.column(col)
        scope = pd.Series(True, index=s.index) if where is None else where.fillna(False).astype(bool)
        empty = s == ""
        if required:
            self.fail(scope & empty, f"{col}: missing value")
        parsed = pd.to_numeric(s.where(~empty & scope), errors="coerce").astype("float64")
        bad = scope & ~empty & ~np.isfinite(parsed)
        self.fail(bad, f"{col}: unparseable number", s)
        return parsed.where(~bad)

    def code(self, col: str, system: str, required: bool = True) -> pd.Series:
        """Normalised codes of ``system`` (see ``vocab.SHAPES``); None for empty; bad shapes reject the row."""
        codes = normalise_code(self.column(col))
        empty = codes == ""
        if required:
            self.fail(empty, f"{col}: missing code")
        bad = ~empty & ~codes.str.fullmatch(SHAPES[system]).fillna(False).astype(bool)
        self.fail(bad, f"{col}: unparseable {system} code", self.column(col))
        return codes.where(~empty, None)

    def known(self, col: str, values: pd.Series, known: Collection[str] | pd.Index, what: str) -> None:
        """Reject rows whose non-empty ``values`` are not in ``known`` (e.g. a member id not imported).

        These rows are lost to a missing parent (``what``); ``parents`` maps their reason to it, so that the
        import counts them as a loss (see ``ImportReport``).
        """
        value_set = pa.array(pd.Series(list(known) if not isinstance(known, pd.Index | pd.Series) else known,
                                       dtype="str"), from_pandas=True)
        found = pc.is_in(pa.array(values.astype("str"), from_pandas=True), value_set=value_set)
        missing = values.notna() & ~pd.Series(found.to_numpy(zero_copy_only=False), index=values.index)
        self.parents[f"{col}: unknown {what}"] = what
        self.fail(missing, f"{col}: unknown {what}", values)

    def unique(self, col: str, values: pd.Series) -> None:
        """Reject later rows that repeat the key of an earlier accepted row."""
        dup = values.where(self.ok).duplicated(keep="first") & self.ok & values.notna()
        self.fail(dup, f"{col}: duplicate key", values)

    def order(self, earlier: pd.Series, later: pd.Series, earlier_col: str, later_col: str) -> None:
        """Reject rows where ``later`` precedes ``earlier`` (both present); the reason shows the source value."""
        shown = self.column(later_col) if later_col in self.frame else later.astype("str")
        self.fail(later < earlier, f"{later_col}: before {earlier_col}", shown)

    def rejected_for(self, key: str) -> pd.Series:
        """The rows whose (first) reason is ``key``."""
        return (self._key == key).fillna(False).astype(bool)

    def reason_counts(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self._key.value_counts().items()}

    def rejects(self, columns: list[str] | None = None) -> pd.DataFrame:
        """The rejected rows: ``source_file, source_row, reason`` then the source fields (or ``columns``)."""
        bad = ~self.ok
        fields = columns if columns is not None else [c for c in self.frame.columns
                                                      if c not in (*ROW_COLUMNS, PROBLEM)]
        out = self.frame.loc[bad, [*ROW_COLUMNS]].copy()
        out["reason"] = self._reason[bad]
        for c in fields:
            out[c] = self.frame.loc[bad, c]
        return out
