"""Subgroups a data scientist should look at: each level's AUROC with a 95 % interval and its
observed/expected ratio, levels too small to judge named as such, and flags for a level whose calibration is
off (O/E outside 0.8-1.25) or whose AUROC is far below the whole (more than 0.05 lower).

The interval is Hanley and McNeil's (Radiology 1982) from the AUROC and the numbers of events and non-events,
so it can be given for any subgroup table, including one read back from a run.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

OE_RANGE = (0.8, 1.25)
FAR_BELOW = 0.05
MIN_EVENTS = 10  # fewer events than this: too small to judge, whatever the size


def hanley_mcneil(auroc: float, events: int, non_events: int) -> tuple[float, float]:
    """95 % interval of an AUROC from its standard error (Hanley & McNeil 1982).

    >>> tuple(round(x, 3) for x in hanley_mcneil(0.75, 100, 900))
    (0.693, 0.807)
    """
    a, n1, n2 = auroc, events, non_events
    if not np.isfinite(a) or n1 < 1 or n2 < 1:
        return (np.nan, np.nan)
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    se = math.sqrt(max(a * (1 - a) + (n1 - 1) * (q1 - a * a) + (n2 - 1) * (q2 - a * a), 0.0) / (n1 * n2))
    return (max(0.0, a - 1.96 * se), min(1.0, a + 1.96 * se))


def review_subgroups(subgroups: pd.DataFrame, whole_auroc: float) -> tuple[pd.DataFrame, list[str]]:
    """The subgroup table with ``auroc_ci_low``, ``auroc_ci_high`` and ``status``, and one flag per level that
    needs a look.

    ``status`` is ``ok``, ``too small to judge`` (under the minimum size, fewer than ``MIN_EVENTS`` events or a
    single outcome), ``calibration off`` or ``AUROC far below the whole`` (or both).
    """
    sub = subgroups.copy()
    lows, highs, status, flags = [], [], [], []
    for r in sub.itertuples(index=False):
        small = not np.isfinite(r.auroc) or r.events < MIN_EVENTS or r.events == r.n
        lo, hi = (np.nan, np.nan) if small else hanley_mcneil(r.auroc, int(r.events), int(r.n - r.events))
        lows.append(lo)
        highs.append(hi)
        if small:
            status.append("too small to judge")
            continue
        problems = []
        if not OE_RANGE[0] <= r.oe_ratio <= OE_RANGE[1]:
            problems.append("calibration off")
            flags.append(f"{r.group} = {r.level}: observed/expected {r.oe_ratio:.2f}, outside "
                         f"{OE_RANGE[0]}-{OE_RANGE[1]} (n {r.n:,}, {r.events:,} events)")
        if r.auroc < whole_auroc - FAR_BELOW:
            problems.append("AUROC far below the whole")
            flags.append(f"{r.group} = {r.level}: AUROC {r.auroc:.3f} ({lo:.3f}-{hi:.3f}), more than {FAR_BELOW} "
                         f"below the whole ({whole_auroc:.3f}; n {r.n:,}, {r.events:,} events)")
        status.append("; ".join(problems) or "ok")
    sub["auroc_ci_low"], sub["auroc_ci_high"], sub["status"] = lows, highs, status
    return sub, flags
