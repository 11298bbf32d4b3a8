"""The risk model that drives the synthetic population.

Every admission, readmission and death in a generated store is drawn from the hazards below, and the
ground truth in ``DIR/truth/`` is computed from the same functions, so that it is the probability that
was actually used, not an estimate.

Member state
    Static: age, line of business, chronic conditions (drawn at baseline; their weighted sum is the
    comorbidity *burden*), and an unobserved frailty ``z ~ N(0, 1)`` which is correlated with the
    conditions (a Gaussian copula with loading ``FRAILTY_LOADING``) and so only partly visible in a history.
    Dynamic: a hidden *decline* state ``D`` (0 stable, 1 declining), a two-state Markov chain with
    monthly transitions (entry more likely with burden and frailty, mean stay about three months); a
    self-exciting term ``excite``, the sum over earlier unplanned discharges of ``exp(-days / 120)``;
    and whether the member is in hospice.

Hazards (per day, piecewise constant over calendar months, evaluated on the first of each month)
    unplanned admission  log h = a_lob + 0.25 age10 + 0.30 burden + 1.3 D + 0.40 z + 0.20 min(excite, 3)
                                 - 1.5 hospice
    death                log h = d_lob + 0.085 (age - 65) + 0.45 burden + 1.5 D + 0.3 z;  hospice: 1/40
    emergency visit      log h = e_lob + 0.30 burden + 1.2 D + 0.30 z + 0.1 age10 (treat and release)
    office visit         log h = o_lob + 0.22 conditions + 0.4 D + 0.05 age10
    where age10 = (age - 65) / 10 clipped to [-4, 3].

After an acute discharge
    The two days after discharge carry no admission hazard (an admission then would be a transfer).
    The *excess* readmission is drawn once at discharge with probability ``p_excess`` (logistic, below),
    on a day between 2 and 30 with weights ``exp(-day / 12)``; death cannot pre-empt a drawn excess
    readmission. The general admission hazard also runs from day 2. So the true probability of an
    unplanned readmission within 30 days is ``p_excess + (1 - p_excess) * P(general admission in days
    2..30, death competing)``, computed by ``p_unplanned_window``.

    logit p_excess = -3.80 + 0.15 age10 + 0.10 log(LOS) + 0.10 emergency
        + disposition (snf +0.90, home_health +0.55, rehab +0.25, ama +1.30, hospice -2.50)
        + labs at discharge (hemoglobin < 10 +0.80, 10-12 +0.35; sodium < 135 +0.60;
          eGFR < 30 +0.55; BNP > 400 +0.55)
        + heart failure +0.05, COPD +0.05, CKD +0.05, Medicaid or dual +0.60
        + 0.20 prior unplanned admissions in 365 days (at most 3) + 0.05 emergency visits in 180 days
          (at most 4) + 0.02 per drug class on the regimen + 0.25 oncology + 0.20 D + 0.10 z
        + 0.70 instability (a per-stay N(0, 1) that also lowers hemoglobin and sodium and raises
          creatinine and BNP at discharge, so the labs show part of it)
        - 0.35 if a follow-up visit happens within 7 days of discharge (not visible at discharge)
        - 0.60 if the stay was planned
    The clinical scores (LACE, HOSPITAL) see burden, length of stay, acuity and emergency visits; most of
    the risk lies elsewhere in a real history (disposition, discharge labs, which conditions, drugs, prior
    admissions), so a model that reads the whole history beats them, as published comparisons find.

Ground truth for admission
    For a member alive and out of hospital on the first of a month, the probability of an unplanned
    admission in the next 180 days integrates the hazards above over the hidden decline chain (a 2x2
    forward recursion) with death competing, plus, when the member is inside a post-discharge window,
    the chance that the pending excess readmission still comes. It leaves out planned admissions that
    will be scheduled inside the window (and the readmission risk they bring): under 1 % of member-months.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LOBS = ("medicare", "medicaid", "commercial", "dual")
FRAILTY_LOADING = 0.45
EXCITE_DAYS = 120.0
HOSPICE_DEATH_RATE = 1 / 40
READMIT_GAP_DAYS = 2
READMIT_DAYS = np.arange(2, 31)
_w = np.exp(-READMIT_DAYS / 12.0)
READMIT_DAY_P = _w / _w.sum()
READMIT_DAY_CDF = np.cumsum(READMIT_DAY_P)

# Per line of business: admission, death, emergency and office intercepts (log per day).
A_LOB = {"medicare": -8.6, "medicaid": -8.15, "commercial": -8.65, "dual": -8.0}
D_LOB = {"medicare": -11.6, "medicaid": -10.6, "commercial": -11.8, "dual": -10.9}
E_LOB = {"medicare": -6.95, "medicaid": -6.35, "commercial": -7.40, "dual": -6.55}
O_LOB = {"medicare": -4.30, "medicaid": -4.75, "commercial": -4.85, "dual": -4.35}

DECLINE_EXIT = 0.30


@dataclass
class Members:
    """Static state of a block of members, one array entry each."""

    age0: np.ndarray          # age in years at the start of the simulation
    lob: np.ndarray           # index into LOBS
    burden: np.ndarray        # weighted sum of chronic conditions
    n_conditions: np.ndarray
    z: np.ndarray             # unobserved frailty

    def age10(self, years_elapsed: float | np.ndarray) -> np.ndarray:
        return np.clip((self.age0 + years_elapsed - 65.0) / 10.0, -4.0, 3.0)


def _lob_param(table: dict[str, float], lob: np.ndarray) -> np.ndarray:
    return np.array([table[name] for name in LOBS])[lob]


def decline_entry(m: Members) -> np.ndarray:
    """Monthly probability of entering the decline state."""
    return 1.0 / (1.0 + np.exp(-(-4.3 + 0.5 * m.burden + 0.5 * m.z + 0.15 * m.age10(0.0))))


def admission_hazard(m: Members, years: float | np.ndarray, decline: np.ndarray, excite: np.ndarray,
                     hospice: np.ndarray) -> np.ndarray:
    eta = (_lob_param(A_LOB, m.lob) + 0.25 * m.age10(years) + 0.30 * m.burden + 1.3 * decline + 0.40 * m.z
           + 0.20 * np.minimum(excite, 3.0) - 1.5 * hospice)
    return np.exp(eta)


def death_hazard(m: Members, years: float | np.ndarray, decline: np.ndarray, hospice: np.ndarray) -> np.ndarray:
    age = m.age0 + years
    eta = _lob_param(D_LOB, m.lob) + 0.085 * (age - 65.0) + 0.45 * m.burden + 1.5 * decline + 0.3 * m.z
    return np.where(hospice, HOSPICE_DEATH_RATE, np.exp(np.minimum(eta, -2.0)))


def emergency_rate(m: Members, years: float, decline: np.ndarray) -> np.ndarray:
    return np.exp(_lob_param(E_LOB, m.lob) + 0.30 * m.burden + 1.2 * decline + 0.30 * m.z + 0.1 * m.age10(years))


def office_rate(m: Members, years: float, decline: np.ndarray) -> np.ndarray:
    return np.exp(_lob_param(O_LOB, m.lob) + 0.22 * m.n_conditions + 0.4 * decline + 0.05 * m.age10(years))


DISPOSITION_LOGIT = {"snf": 0.90, "home_health": 0.55, "rehab": 0.25, "ama": 1.30, "hospice": -2.50}


def excess_readmission_probability(
    *, age10: np.ndarray, los_days: np.ndarray, emergency: np.ndarray,
    disposition: np.ndarray, hemoglobin: np.ndarray, sodium: np.ndarray, egfr: np.ndarray, bnp: np.ndarray,
    heart_failure: np.ndarray, copd: np.ndarray, ckd: np.ndarray, low_income: np.ndarray,
    prior_admissions_365: np.ndarray, ed_visits_180: np.ndarray, drug_classes: np.ndarray,
    oncology: np.ndarray, decline: np.ndarray, z: np.ndarray, follow_up_7d: np.ndarray, planned: np.ndarray,
    instability: np.ndarray | float = 0.0,
) -> np.ndarray:
    """``p_excess`` of the module docstring, for arrays of discharges."""
    disp = np.zeros(len(age10))
    for name, coef in DISPOSITION_LOGIT.items():
        disp += coef * (disposition == name)
    eta = (-3.80 + 0.15 * age10 + 0.10 * np.log(np.maximum(los_days, 0.5)) + 0.10 * emergency
           + disp
           + np.where(hemoglobin < 10, 0.80, np.where(hemoglobin < 12, 0.35, 0.0))
           + 0.60 * (sodium < 135) + 0.55 * (egfr < 30) + 0.55 * (bnp > 400)
           + 0.05 * heart_failure + 0.05 * copd + 0.05 * ckd + 0.60 * low_income
           + 0.20 * np.minimum(prior_admissions_365, 3) + 0.05 * np.minimum(ed_visits_180, 4)
           + 0.02 * drug_classes + 0.25 * oncology + 0.20 * decline + 0.10 * z + 0.70 * instability
           - 0.35 * follow_up_7d - 0.60 * planned)
    return 1.0 / (1.0 + np.exp(-eta))


def years_since(t: np.datetime64 | np.ndarray, sim_start: np.datetime64) -> float | np.ndarray:
    """Years from the start of the simulation (ages advance month by month with this)."""
    return (t - sim_start) / np.timedelta64(86400, "s") / 365.25


def excite_at(value: np.ndarray, since: np.ndarray, t: np.datetime64 | np.ndarray) -> np.ndarray:
    """The self-exciting term decayed from its last update at ``since`` to ``t``."""
    days = np.maximum((t - since) / np.timedelta64(86400, "s"), 0.0)
    return value * np.exp(-days / EXCITE_DAYS)


def p_unplanned_window(
    m: Members, *, now: np.ndarray, start: np.ndarray, end: np.ndarray, decline_now: np.ndarray,
    excite_month: np.ndarray, excite_value: np.ndarray, excite_time: np.ndarray, hospice: np.ndarray,
    month_starts: np.ndarray, sim_start: np.datetime64,
) -> np.ndarray:
    """P(an unplanned admission by the general hazard falls in [start, end)), death competing from ``now``.

    All arrays are aligned with the rows of ``m``; times are ``datetime64[s]``. In the month that holds
    ``now`` the admission hazard uses ``excite_month`` (its value on the first of that month, as the
    simulator does); later months use ``excite_value`` decayed from ``excite_time``. ``month_starts``
    must reach past ``end``.
    """
    n = len(m.age0)
    if n == 0:
        return np.zeros(0)
    day = np.timedelta64(86400, "s")
    k0 = np.searchsorted(month_starts, now, side="right") - 1
    p01 = decline_entry(m)
    w = np.zeros((n, 2))  # P(state s, alive, no admission yet) at the start of each segment
    w[np.arange(n), decline_now.astype(int)] = 1.0
    p = np.zeros(n)
    k_end = int(np.searchsorted(month_starts, end.max(), side="left"))
    for k in range(int(k0.min()), k_end):
        active = k >= k0
        lo, hi = month_starts[k], month_starts[k + 1]
        years = years_since(lo, sim_start)
        excite = np.where(k == k0, excite_month, excite_at(excite_value, excite_time, lo))
        la = np.stack([admission_hazard(m, years, np.full(n, s), excite, hospice) for s in (0, 1)], axis=1)
        ld = np.stack([death_hazard(m, years, np.full(n, s), hospice) for s in (0, 1)], axis=1)
        # death alone between `now` and `start`, then both hazards until `end`
        only_death = np.clip((np.minimum(hi, start) - np.maximum(lo, now)) / day, 0.0, None) * active
        both = np.clip((np.minimum(hi, end) - np.maximum(np.maximum(lo, now), start)) / day, 0.0, None) * active
        w = w * np.exp(-ld * only_death[:, None])
        total = la + ld
        survive = np.exp(-total * both[:, None])
        p += (w * la / total * (1.0 - survive)).sum(axis=1)
        w = w * survive
        moved = np.stack([w[:, 0] * (1 - p01) + w[:, 1] * DECLINE_EXIT,
                          w[:, 0] * p01 + w[:, 1] * (1 - DECLINE_EXIT)], axis=1)
        w = np.where(active[:, None], moved, w)
    return p
