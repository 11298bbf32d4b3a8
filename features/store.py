"""Loading a history store into memory as one frame per table."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from features.schema import TABLES, read_table

HistoryStore = dict[str, pd.DataFrame]


def load_store(dataset: Path | str, tables: Iterable[str] = tuple(TABLES)) -> HistoryStore:
    """Every canonical table of ``dataset`` (empty frames with canonical columns where a table is absent)."""
    return {name: read_table(dataset, name) for name in tables}
