"""Working order of a review queue: deadline pressure first, risk second.

Each case has a decision deadline (72 hours after receipt when expedited, 7 calendar days when
standard) and takes ``minutes_per_case`` of a reviewer's time. The order is built greedily: at each
position, the highest-risk case is taken unless taking it would leave some remaining case unable to
meet its deadline; then the case whose deadline binds (earliest deadline first) is taken instead. If
earliest-deadline-first can meet every deadline, so does this order (a case is only moved ahead of an
earlier deadline when the slack allows), and where no deadline binds the cases come in risk order.
Cases already past their deadline come first, most overdue first, flagged overdue.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

EXPEDITED_HOURS = 72
STANDARD_HOURS = 7 * 24


def deadlines(received: pd.Series, urgency: pd.Series) -> pd.Series:
    hours = np.where(urgency.astype(str).to_numpy() == "expedited", EXPEDITED_HOURS, STANDARD_HOURS)
    return received + pd.to_timedelta(hours, unit="h")


def working_order(hours_left: np.ndarray, risk: np.ndarray, minutes_per_case: float = 30.0) -> np.ndarray:
    """Positions of the cases in working order. ``hours_left`` is the time to each deadline (negative: overdue).

    Remaining on-time cases are kept in earliest-deadline-first (EDF) order; a case is *tight* when its slack
    in that order is under one case's work. Only cases up to the first tight one may go next (moving any of
    them ahead delays only cases with at least a case's slack), and of those the riskiest goes.
    """
    step = minutes_per_case / 60.0
    overdue = np.flatnonzero(hours_left < 0)
    order = list(overdue[np.argsort(hours_left[overdue], kind="stable")])
    t = step * len(order)
    rest = np.flatnonzero(hours_left >= 0)
    queue = rest[np.lexsort((-risk[rest], hours_left[rest]))]  # EDF, ties by risk
    while len(queue):
        slack = hours_left[queue] - (t + step * (np.arange(len(queue)) + 1))
        tight = np.flatnonzero((slack >= 0) & (slack < step))
        window = queue[: (tight[0] if len(tight) else len(queue) - 1) + 1]
        j = int(np.lexsort((hours_left[window], -risk[window]))[0])  # riskiest, ties by earlier deadline
        order.append(int(window[j]))
        queue = np.delete(queue, j)
        t += step
    return np.array(order, dtype=int)
