"""Demographics: age, sex and line of business at the prediction time."""

from __future__ import annotations

import numpy as np
import pandas as pd

from umrisk.features.catalog import FeatureInfo
from umrisk.features.events import EventIndex, seconds
from umrisk.features.groups.context import DAY, Context
from umrisk.features.spec import FeatureSpec

NAME = "demographics"
TASKS = ("discharge", "member_month")


def catalog(fs: FeatureSpec) -> list[FeatureInfo]:
    return [
        FeatureInfo("age", "Age at the prediction time", "years", NAME, reason="age {value:.0f}"),
        FeatureInfo("sex", "Sex (F, M, U)", "", NAME, "category", reason="sex {value}"),
        FeatureInfo("line_of_business", "Line of business at the prediction time", "", NAME, "category",
                    reason="{value} member"),
    ]


def compute(ctx: Context, out: dict) -> None:
    members = ctx.store["members"]
    mrow = members.set_index("member_id").reindex(ctx.points["member_id"].astype(str))
    birth = seconds(mrow["birth_date"])
    out["age"] = np.where(birth >= 0, (ctx.as_of - birth) / (365.25 * DAY), np.nan)
    out["sex"] = mrow["sex"].astype("str").fillna("U").to_numpy()
    enr = ctx.store["enrollment"]
    e_idx = EventIndex(ctx.codes("enrollment"), seconds(enr["start_date"]), np.arange(len(enr), dtype=float))
    pos, _ = e_idx.last(ctx.pm, ctx.as_of)
    lob = np.full(len(ctx.points), "unknown", dtype=object)
    ok = ~np.isnan(pos)
    rows = pos[ok].astype(int)
    covered = seconds(enr["end_date"].iloc[rows]) + DAY > ctx.as_of[ok]
    lob_vals = pd.Series(enr["line_of_business"]).to_numpy()[rows]
    lob[np.flatnonzero(ok)[covered]] = lob_vals[covered]
    out["line_of_business"] = lob
