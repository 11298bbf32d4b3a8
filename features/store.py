"""Loading a history store into memory as one frame per table."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from umrisk.features.schema import TABLES, read_table

HistoryStore = dict[str, pd.DataFrame]


# The columns cohorts and features read: loading only these keeps a million-member store in memory.
FEATURE_COLUMNS = {
    "members": None,
    "enrollment": None,
    "encounters": ["encounter_id", "member_id", "setting", "admit_time", "discharge_time", "admission_type",
                   "discharge_disposition", "principal_dx", "paid_amount"],
    "diagnoses": ["member_id", "encounter_id", "time", "code", "code_system", "is_principal"],
    "procedures": ["member_id", "encounter_id", "time", "code", "code_system"],
    "medications": ["member_id", "time", "code", "drug_class"],
    "labs": ["member_id", "time", "code", "value"],
    "review_requests": None,
}


def load_store(dataset: Path | str, tables: Iterable[str] = tuple(TABLES), compact: bool = True,
               part: int | None = None) -> HistoryStore:
    """The canonical tables of ``dataset`` (empty frames with canonical columns where a table is absent).

    ``compact`` (the default) reads only the columns cohorts and features use and the repetitive strings as
    categories; ``compact=False`` reads every column as stored. ``part`` reads one part of each table (a member
    partition: ``features.partition.load_partition``).
    """
    if not compact:
        return {name: read_table(dataset, name, part=part) for name in tables}
    return {name: read_table(dataset, name, FEATURE_COLUMNS[name], categories=True, part=part) for name in tables}
