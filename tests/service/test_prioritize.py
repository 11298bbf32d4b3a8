"""Review-queue ordering properties."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from umrisk.serving.prioritize import queue_order, working_order

cases = st.lists(st.tuples(st.floats(0, 200), st.floats(0, 1)), min_size=1, max_size=60)


def _finish(order, step=0.5):
    return {int(c): (i + 1) * step for i, c in enumerate(order)}


@settings(max_examples=300, deadline=None)
@given(cases)
def test_no_case_late_when_earliest_deadline_first_meets_every_deadline(cs):
    hours = np.array([c[0] for c in cs])
    risk = np.array([c[1] for c in cs])
    edf = np.argsort(hours, kind="stable")
    edf_ok = all(hours[c] >= (i + 1) * 0.5 for i, c in enumerate(edf))
    order = working_order(hours, risk, 30)
    assert sorted(order.tolist()) == list(range(len(cs)))
    if edf_ok:
        finish = _finish(order)
        assert all(hours[c] >= finish[c] for c in finish)


@settings(max_examples=300, deadline=None)
@given(cases)
def test_risk_order_when_no_deadline_presses(cs):
    risk = np.array([c[1] for c in cs])
    hours = 1000 + np.array([c[0] for c in cs])  # far more time than the work needs
    order = working_order(hours, risk, 30)
    assert np.all(np.diff(risk[order]) <= 0)


@settings(max_examples=200, deadline=None)
@given(cases, st.lists(st.floats(-100, -0.01), min_size=1, max_size=5))
def test_overdue_cases_come_first_most_overdue_first(cs, late):
    hours = np.array([c[0] for c in cs] + late)
    risk = np.array([c[1] for c in cs] + [0.0] * len(late))
    order = working_order(hours, risk, 30)
    head = order[: len(late)]
    assert set(head.tolist()) == set(range(len(cs), len(cs) + len(late)))
    assert np.all(np.diff(hours[head]) >= 0)


def test_a_tight_deadline_goes_before_a_riskier_case():
    hours = np.array([0.6, 100.0, 100.0])  # case 0 must start now to finish in time
    risk = np.array([0.1, 0.9, 0.8])
    assert working_order(hours, risk, 30).tolist() == [0, 1, 2]
    assert working_order(np.array([5.0, 100.0, 100.0]), risk, 30).tolist() == [1, 2, 0]


# ------------------------------------------------------------------ negative slack (issue #6)
def _edf_finish(hours, step=0.5):
    """Finish time of each case when worked earliest deadline first (deadlines are distinct here)."""
    return _finish(np.argsort(hours, kind="stable"), step)


def _cannot_make_it(hours, step=0.5):
    """Cases that miss their deadline even when only the overdue or hopeless cases with earlier deadlines go
    before them: overdue cases, and cases with less time left than the work of those cases and their own."""
    out, ahead = [], 0
    for c in np.argsort(hours, kind="stable"):
        if hours[c] < step * (ahead + 1):
            out.append(int(c))
            ahead += 1
    return out


late_cases = st.lists(st.tuples(st.floats(-40, 120), st.floats(0, 1)), min_size=1, max_size=60,
                      unique_by=lambda c: c[0])


@settings(max_examples=400, deadline=None)
@given(late_cases)
def test_with_negative_slack_no_case_that_makes_it_under_edf_is_made_late(cs):
    hours = np.array([c[0] for c in cs])
    risk = np.array([c[1] for c in cs])
    order = working_order(hours, risk, 30)
    assert sorted(order.tolist()) == list(range(len(cs)))
    finish, edf = _finish(order), _edf_finish(hours)
    made_late = [c for c in range(len(cs)) if hours[c] >= edf[c] and hours[c] < finish[c]]
    assert not made_late, f"on time under EDF but late in this order: {made_late}"


@settings(max_examples=400, deadline=None)
@given(late_cases)
def test_cases_that_cannot_make_it_come_first_by_deadline(cs):
    hours = np.array([c[0] for c in cs])
    risk = np.array([c[1] for c in cs])
    order = working_order(hours, risk, 30).tolist()
    hopeless = _cannot_make_it(hours)
    assert set(c for c in range(len(cs)) if hours[c] < 0) <= set(hopeless)
    assert order[: len(hopeless)] == hopeless  # before every case that can make it, earliest deadline first


def test_issue_example_a_case_with_minutes_left_is_not_put_behind_days_of_slack():
    """The queue of the report: 26 overdue cases, then one with 0.66 h left and an expedited one with 1.07 h
    left; the riskier cases with 38-73 h left used to go between them (positions 27 and 32)."""
    rng = np.random.default_rng(6)
    overdue = -rng.uniform(0.5, 40, 26)
    relaxed = rng.uniform(38, 73, 20)
    hours = np.concatenate([overdue, [0.66, 1.07], relaxed])
    risk = np.concatenate([rng.uniform(0, 1, 26), [0.05, 0.08], rng.uniform(0.3, 0.9, 20)])
    order = working_order(hours, risk, 30).tolist()
    assert order.index(26) + 1 == 27 and order.index(27) + 1 == 28
    assert sorted(order[:26]) == list(range(26))


def test_every_case_says_why_it_is_there():
    hours = np.array([-3.2, 0.66, 1.07, 0.9 + 2.0, 60.0, 61.0])
    risk = np.array([0.1, 0.1, 0.1, 0.05, 0.41, 0.2])
    q = queue_order(hours, risk, 30)
    why = [q.why[i] for i in q.order]
    assert q.order.tolist() == [0, 1, 2, 4, 3, 5]
    assert why[0] == "overdue by 3.2 h"
    assert why[1] == "cannot meet its deadline (0.66 h left, 0.5 h of work ahead)"
    assert why[2] == "cannot meet its deadline (1.07 h left, 1 h of work ahead)"
    assert why[3] == "higher risk (0.41), deadlines allow"
    assert why[4].startswith("deadline binds: ") and why[4].endswith(" h of slack")
    assert q.late.tolist() == [True, True, True, False, False, False]
