"""Labs: the last value of each lab in ``valuesets/labs.csv`` within the look-back, and whether it is abnormal
by the rule written there (the same rule decides whether a value can be a reason)."""

from __future__ import annotations

import numpy as np

from umrisk.features.catalog import FeatureInfo, abnormal_mask, labs, rule_words
from umrisk.features.events import EventIndex, seconds
from umrisk.features.groups.context import Context
from umrisk.features.spec import FeatureSpec

NAME = "labs"
TASKS = ("discharge", "member_month")


def catalog(fs: FeatureSpec) -> list[FeatureInfo]:
    out = []
    for lab, row in labs().iterrows():
        out.append(FeatureInfo(f"lab_{lab}", f"Last {row['words']} in the last {fs.lab_lookback_days} days "
                                             "(at or before discharge for a stay)", row["unit"], NAME,
                               reason=f"{row['words']} {{value:g}} {row['unit']}", abnormal=row["abnormal"]))
        out.append(FeatureInfo(f"lab_{lab}_abnormal", f"Last {row['words']} abnormal ({rule_words(row['abnormal'])} "
                                                      f"{row['unit']})", "flag", NAME, "flag",
                               reason=f"abnormal {row['words']}", direction="increasing"))
    return out


def compute(ctx: Context, out: dict) -> None:
    """Last value at or before ``as_of`` within the look-back; the time of each is kept for the clinical scores."""
    table = ctx.store["labs"]
    lm = ctx.codes("labs")
    times = seconds(table["time"])
    values = table["value"].to_numpy(dtype=float)
    last_time = ctx.cache.setdefault("last_lab_time", {})
    for lab, row in labs().iterrows():
        sel = table["code"].isin(row["loinc"]).to_numpy()
        v, last_time[lab] = EventIndex(lm[sel], times[sel], values[sel]).last(
            ctx.pm, ctx.as_of, ctx.spec.features.lab_lookback_days)
        out[f"lab_{lab}"] = v
        out[f"lab_{lab}_abnormal"] = abnormal_mask(v, row["abnormal"]).astype(np.int8)
