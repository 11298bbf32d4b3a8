"""Working order of a review queue: cases that can no longer make their deadline first, then deadline
pressure first and risk second.

Each case has a decision deadline (72 hours after receipt when expedited, 7 calendar days when standard)
and takes ``minutes_per_case`` of a reviewer's time. The order has two parts:

1. **Late cases first, by deadline.** Walking the cases in earliest-deadline-first (EDF) order, a case
   whose deadline falls before the end of its own work, counting only the late cases ahead of it, is
   late: overdue (its deadline has passed) or unable to make it (too little time left for the work
   ahead and its own). These form a prefix of the EDF order, so moving them first delays nobody that
   EDF would have served on time.
2. **Then the documented rule.** Greedily, at each position the riskiest case goes next unless that
   would push an earlier deadline past the point where it keeps one case's slack: of the remaining cases
   in EDF order, only those up to the first *binding* one (slack under one case's work, negative slack
   included) may go next, and of those the riskiest goes. Moving one of them ahead delays only cases
   with at least one case's slack, so every case that EDF serves on time is served on time here, and
   where no deadline binds the cases come in risk order.

Every case carries the reason for its place (``why``), for the reviewer who wonders why it is there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

EXPEDITED_HOURS = 72
STANDARD_HOURS = 7 * 24


def deadlines(received: pd.Series, urgency: pd.Series) -> pd.Series:
    hours = np.where(urgency.astype(str).to_numpy() == "expedited", EXPEDITED_HOURS, STANDARD_HOURS)
    return received + pd.to_timedelta(hours, unit="h")


@dataclass(frozen=True)
class QueueOrder:
    """``order``: case indices in working order; ``why``: for each case (by its index), why it is there;
    ``late``: for each case, whether it was put first because it is overdue or can no longer make it."""

    order: np.ndarray
    why: list[str]
    late: np.ndarray


def _hours(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".") if abs(x) < 10 else f"{x:.1f}"


def queue_order(hours_left: np.ndarray, risk: np.ndarray, minutes_per_case: float = 30.0) -> QueueOrder:
    """The working order of cases with ``hours_left`` to their deadlines (negative: overdue) and ``risk``,
    each with the reason for its place.

    >>> q = queue_order(np.array([100.0, -3.2, 0.4, 100.0]), np.array([0.2, 0.1, 0.1, 0.41]))
    >>> q.order.tolist()
    [1, 2, 3, 0]
    >>> [q.why[i] for i in q.order]  # doctest: +NORMALIZE_WHITESPACE
    ['overdue by 3.2 h', 'cannot meet its deadline (0.4 h left, 0.5 h of work ahead)',
     'higher risk (0.41), deadlines allow', 'only case left: 98.0 h of slack']
    """
    hours_left = np.asarray(hours_left, dtype=float)
    risk = np.nan_to_num(np.asarray(risk, dtype=float), nan=0.0)
    n = len(hours_left)
    step = minutes_per_case / 60.0
    why = [""] * n
    late = np.zeros(n, dtype=bool)
    edf = np.lexsort((-risk, hours_left))  # earliest deadline first, ties by risk
    order: list[int] = []
    t = 0.0
    for i in edf:
        h = float(hours_left[i])
        if h >= t + step:
            break  # this case makes it; so does every later deadline after the late cases alone
        why[i] = f"overdue by {_hours(-h)} h" if h < 0 else \
            f"cannot meet its deadline ({_hours(h)} h left, {_hours(t)} h of work ahead)"
        late[i] = True
        order.append(int(i))
        t += step
    queue = edf[len(order):]
    while len(queue):
        slack = hours_left[queue] - (t + step * (np.arange(len(queue)) + 1))
        binding = np.flatnonzero(slack < step)
        end = binding[0] if len(binding) else len(queue) - 1
        window = queue[: end + 1]
        j = int(np.lexsort((hours_left[window], -risk[window]))[0])  # riskiest, ties by earlier deadline
        i = int(window[j])
        left = float(hours_left[i]) - (t + step)  # slack once this case is done
        if len(binding) and j == end:
            why[i] = (f"deadline binds: {_hours(left)} h of slack" if left >= 0 else
                      f"deadline binds: {_hours(-left)} h late even in deadline order")
        elif len(queue) == 1:
            why[i] = f"only case left: {_hours(left)} h of slack"
        else:
            why[i] = f"higher risk ({risk[i]:.2f}), deadlines allow"
        order.append(i)
        queue = np.delete(queue, j)
        t += step
    return QueueOrder(np.array(order, dtype=int), why, late)


def working_order(hours_left: np.ndarray, risk: np.ndarray, minutes_per_case: float = 30.0) -> np.ndarray:
    """Positions of the cases in working order (see :func:`queue_order`, which also says why)."""
    return queue_order(hours_left, risk, minutes_per_case).order
