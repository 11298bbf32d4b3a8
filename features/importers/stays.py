"""Admission type and discharge disposition derived from a member's timeline, for sources that lack them.

Synthea and DE-SynPUF record neither how a stay began nor how it ended. Two documented rules fill part of
the gap; everything else stays ``unknown``:

- an inpatient stay is an **emergency** admission when an emergency-department (or urgent-care) visit of the
  same member began within a short window before the admission: the patient came in through the ED;
- a stay (``STAY_SETTINGS``) ends **expired** when the member's death date falls between the admission day
  and the discharge day; an inpatient stay followed within a day by a skilled-nursing or hospice stay was
  discharged there.
"""

from __future__ import annotations

import pandas as pd

STAY_SETTINGS = ("inpatient", "emergency", "observation", "snf", "hospice")
"""Settings where a patient stays under care; only these can end in death (an office visit cannot)."""


def visit_before(stays: pd.DataFrame, visits: pd.DataFrame, window: pd.Timedelta) -> pd.Series:
    """For each stay, whether a visit of the same member started within ``window`` before its ``admit_time``.

    ``stays`` has ``member_id, admit_time``; ``visits`` has ``member_id, time``. Indexed like ``stays``.
    """
    found = pd.Series(False, index=stays.index)
    if stays.empty or visits.empty:
        return found
    left = stays[["member_id", "admit_time"]].assign(_pos=range(len(stays))).sort_values("admit_time")
    right = (visits[["member_id", "time"]].dropna().rename(columns={"time": "_visit"})
             .astype({"_visit": "datetime64[us]"}).sort_values("_visit"))
    left = left.astype({"admit_time": "datetime64[us]"})
    merged = pd.merge_asof(left, right, left_on="admit_time", right_on="_visit", by="member_id",
                           direction="backward", tolerance=window)
    hit = merged.sort_values("_pos")["_visit"].notna().to_numpy()
    return pd.Series(hit, index=stays.index)


def next_setting(stays: pd.DataFrame, visits: pd.DataFrame, window: pd.Timedelta) -> pd.Series:
    """For each stay, the ``setting`` of the first visit of the member starting within ``window`` after discharge.

    ``stays`` has ``member_id, discharge_time``; ``visits`` has ``member_id, time, setting``. None where
    there is no such visit (or no discharge time).
    """
    out = pd.Series(None, index=stays.index, dtype="object")
    left = stays[["member_id", "discharge_time"]].assign(_pos=range(len(stays))).dropna(subset=["discharge_time"])
    if left.empty or visits.empty:
        return out
    left = left.astype({"discharge_time": "datetime64[us]"}).sort_values("discharge_time")
    right = (visits[["member_id", "time", "setting"]].dropna(subset=["time"])
             .rename(columns={"time": "_visit", "setting": "_next"})
             .astype({"_visit": "datetime64[us]"}).sort_values("_visit"))
    merged = pd.merge_asof(left, right, left_on="discharge_time", right_on="_visit", by="member_id",
                           direction="forward", tolerance=window, allow_exact_matches=True)
    out.iloc[merged["_pos"].to_numpy()] = merged["_next"].to_numpy()
    return out


def died_during(admit: pd.Series, discharge: pd.Series, death: pd.Series) -> pd.Series:
    """Whether the death date falls between the admission day and the discharge day (inclusive)."""
    end = discharge.fillna(admit)
    died = death.notna() & (death >= admit.dt.normalize()) & (death <= end.dt.normalize())
    return died.fillna(False).astype(bool)
