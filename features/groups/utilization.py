"""Utilization: encounters by setting in look-back windows, paid amounts, days since the last discharge and
emergency visit. Inpatient admissions count chained stays (a transfer is one admission)."""

from __future__ import annotations

import numpy as np

from umrisk.features.catalog import FeatureInfo
from umrisk.features.events import EventIndex, seconds
from umrisk.features.groups.context import DAY, Context
from umrisk.features.spec import FeatureSpec

NAME = "utilization"
TASKS = ("discharge", "member_month")
# setting: (plural words, singular words, clinically established direction of more visits)
SETTING_WORDS = {
    "inpatient": ("inpatient admissions", "inpatient admission", "increasing"),
    "emergency": ("emergency visits", "emergency visit", "increasing"),
    "observation": ("observation stays", "observation stay", "increasing"),
    "outpatient": ("hospital outpatient visits", "hospital outpatient visit", None),
    "office": ("office visits", "office visit", None),
    "snf": ("skilled nursing facility stays", "skilled nursing facility stay", "increasing"),
    "home_health": ("home-health visits", "home-health visit", None),
    "telehealth": ("telehealth visits", "telehealth visit", None),
    "hospice": ("hospice encounters", "hospice encounter", None),
}
ABSENCE_RISK = {"office"}  # no office visit for a year is itself a gap in primary care


def catalog(fs: FeatureSpec) -> list[FeatureInfo]:
    out = []
    for s, (many, one, direction) in SETTING_WORDS.items():
        for w in fs.windows_days:
            zero = f"no {one} in the last {w} days" if s in ABSENCE_RISK and w >= 365 else None
            out.append(FeatureInfo(f"n_{s}_{w}d", f"Number of {many} in the last {w} days", "count", NAME,
                                   reason=f"{{value:.0f}} {many} in the last {w} days",
                                   reason_one=f"1 {one} in the last {w} days", zero_reason=zero,
                                   direction=direction))
    for w in fs.paid_windows_days:
        out.append(FeatureInfo(f"paid_{w}d", f"Total paid amount of encounters in the last {w} days", "USD", NAME,
                               reason=f"${{value:,.0f}} paid in the last {w} days"))
    out += [
        FeatureInfo("days_since_inpatient", "Days since the last inpatient discharge (before this stay)", "days",
                    NAME, reason="last inpatient discharge {value:.0f} days earlier", direction="decreasing"),
        FeatureInfo("days_since_emergency", "Days since the last emergency visit", "days", NAME,
                    reason="last emergency visit {value:.0f} days earlier", direction="decreasing"),
    ]
    return out


def compute(ctx: Context, out: dict) -> None:
    fs = ctx.spec.features
    enc = ctx.store["encounters"]
    em = ctx.codes("encounters")
    stays = ctx.stays
    sm = ctx.members.encode(stays["member_id"])
    admit = seconds(enc["admit_time"])
    for s in SETTING_WORDS:
        if s == "inpatient":
            idx = EventIndex(sm, seconds(stays["admit_time"]))
        else:
            sel = ctx.setting_mask(s)
            idx = EventIndex(em[sel], admit[sel])
        for w in fs.windows_days:
            out[f"n_{s}_{w}d"] = idx.count(ctx.pm, ctx.before, w)
    paid = EventIndex(em, admit, enc["paid_amount"].to_numpy(dtype=float))
    for w in fs.paid_windows_days:
        out[f"paid_{w}d"] = paid.total(ctx.pm, ctx.before, w)
    # discharges of encounters, not of chains: a later transfer could move a chain's end past as_of
    inp = ctx.setting_mask("inpatient")
    dis = EventIndex(em[inp], seconds(enc["discharge_time"].to_numpy()[inp]))
    _, t = dis.last(ctx.pm, np.minimum(ctx.hist, ctx.as_of) - 1)
    out["days_since_inpatient"] = np.where(t >= 0, (ctx.hist - t) / DAY, np.nan)
    ed = ctx.setting_mask("emergency")
    ctx.cache["emergency_index"] = EventIndex(em[ed], admit[ed])
    _, t = ctx.cache["emergency_index"].last(ctx.pm, ctx.hist)
    out["days_since_emergency"] = np.where(t >= 0, (ctx.hist - t) / DAY, np.nan)
