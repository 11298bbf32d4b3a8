"""Review-queue ordering properties."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from umrisk.serving.prioritize import working_order

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
