"""Point-in-time look-ups over event streams: counts, sums and last values in windows before ``as_of``.

Events of one stream are sorted once by (member, time) into a single int64 key; a window
``(as_of - days, as_of]`` for a point is then two binary searches, so a batch of a million points and a
single member at request time run the same code. Only events at or before ``as_of`` can be seen: the
upper bound of every window is the point's own time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

_EPOCH = np.datetime64("1890-01-01T00:00:00", "s")
_SHIFT = np.int64(2**33)  # seconds since 1890 fit in 33 bits for 270 years


def seconds(t: pd.Series | np.ndarray) -> np.ndarray:
    """Times as int64 seconds since 1890 (NaT becomes -1)."""
    a = np.asarray(t, dtype="datetime64[s]")
    out = (a - _EPOCH).astype(np.int64)
    out[np.isnat(a)] = -1
    return out


class MemberCodes:
    """Integer codes for member ids, shared by every stream and the points."""

    def __init__(self, ids: pd.Series):
        self.categories = pd.Index(pd.unique(ids.astype(str)))

    def encode(self, ids: pd.Series) -> np.ndarray:
        """The code of each id (-1 when unknown); a categorical column is mapped through its categories."""
        if isinstance(ids.dtype, pd.CategoricalDtype):
            by_category = self.categories.get_indexer(ids.cat.categories.astype(str)).astype(np.int64)
            codes = ids.cat.codes.to_numpy()
            return np.where(codes >= 0, by_category[codes], -1)
        return self.categories.get_indexer(ids.astype(str)).astype(np.int64)


class EventIndex:
    """One event stream sorted by (member, time), with optional values for sums and last values."""

    def __init__(self, member: np.ndarray, time: np.ndarray, values: np.ndarray | None = None):
        ok = (member >= 0) & (time >= 0)
        key = member[ok] * _SHIFT + time[ok]
        order = np.argsort(key, kind="stable")
        self.key = key[order]
        self.member = member[ok][order]
        self.time = time[ok][order]
        self.values = None if values is None else np.asarray(values, dtype=float)[ok][order]
        if self.values is not None:
            # running sums restart at each member, so a member's window total depends on that member's events
            # only (the same in a batch of any size, a member partition, or one member at request time)
            self.cum = np.concatenate([[0.0], pd.Series(np.nan_to_num(self.values)).groupby(self.member).cumsum()])

    def __len__(self) -> int:
        return len(self.key)

    def _bounds(self, member: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions of the events with lo < time <= hi (both int64 seconds)."""
        base = member * _SHIFT
        return (np.searchsorted(self.key, base + lo, side="right"),
                np.searchsorted(self.key, base + hi, side="right"))

    def count(self, member: np.ndarray, as_of: np.ndarray, days: float | None = None) -> np.ndarray:
        """Events in ``(as_of - days, as_of]`` (all history up to ``as_of`` when days is None)."""
        lo = np.full(len(as_of), -1) if days is None else as_of - int(days * 86400)
        a, b = self._bounds(member, lo, as_of)
        return (b - a).astype(np.int64)

    def total(self, member: np.ndarray, as_of: np.ndarray, days: float) -> np.ndarray:
        a, b = self._bounds(member, as_of - int(days * 86400), as_of)
        earlier = (a > 0) & (self.member[np.maximum(a - 1, 0)] == member) if len(self.key) else np.zeros(len(a), bool)
        return np.where(b > a, self.cum[b] - np.where(earlier, self.cum[a], 0.0), 0.0)

    def last(self, member: np.ndarray, as_of: np.ndarray, days: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(value, time) of the latest event at or before ``as_of`` within ``days`` (NaN, -1 when none)."""
        pos = np.searchsorted(self.key, member * _SHIFT + as_of, side="right") - 1
        safe = np.clip(pos, 0, max(len(self.key) - 1, 0))
        ok = (pos >= 0) & (len(self.key) > 0)
        if len(self.key):
            ok &= self.member[safe] == member
            if days is not None:
                ok &= self.time[safe] > as_of - int(days * 86400)
        value = np.full(len(member), np.nan)
        when = np.full(len(member), -1, dtype=np.int64)
        if len(self.key):
            if self.values is not None:
                value[ok] = self.values[safe[ok]]
            when[ok] = self.time[safe[ok]]
        return value, when
