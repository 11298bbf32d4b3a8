"""Who is in the synthetic population: demographics, chronic conditions, frailty, enrollment, drugs.

Lines of business are drawn with shares typical of a regional health plan that carries all four
(``LOB_SHARE``). Ages follow each line's membership (children and working-age adults in commercial and
Medicaid, 65 and over plus people with disabilities in Medicare and dual). Chronic conditions come from
the age-band prevalence table in ``data/condition_prevalence.csv``, with the odds multiplied for
low-income members, and are tied to the unobserved frailty through a Gaussian copula: a condition is
present when ``FRAILTY_LOADING * z + sqrt(1 - loading^2) * e`` exceeds the prevalence threshold, so each
marginal prevalence stays as published while sicker members carry more conditions.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import norm

from umrisk.features.synthetic.risk import FRAILTY_LOADING, LOBS, Members

DATA = Path(__file__).parent / "data"
LOB_SHARE = np.array([0.30, 0.28, 0.35, 0.07])  # medicare, medicaid, commercial, dual
AGE_BANDS = np.array([0, 18, 45, 65, 75, 85])
# Monthly probability of leaving the plan, and of coming back after a gap, by line of business.
CHURN = {"medicare": 0.004, "medicaid": 0.020, "commercial": 0.015, "dual": 0.005}
RETURN = {"medicare": 0.10, "medicaid": 0.25, "commercial": 0.05, "dual": 0.20}
RACE = (["white", "black", "hispanic", "asian", "other", None], [0.58, 0.13, 0.17, 0.06, 0.03, 0.03])
STATES = ["NE", "IA", "KS", "MO", "SD", "CO"]


def read_reference(name: str) -> pd.DataFrame:
    """A generator reference table from ``data/`` (first lines are ``#`` comments naming the source)."""
    return pd.read_csv(DATA / name, comment="#", dtype={"icd10cm": str, "icd9cm": str, "rxnorm": str,
                                                        "code": str, "loinc": str})


@cache
def reference() -> dict[str, pd.DataFrame]:
    return {n: read_reference(f"{n}.csv") for n in (
        "condition_prevalence", "condition_codes", "acute_conditions", "procedures", "drugs",
        "discharge_drugs", "labs", "review_codes")}


@dataclass
class Population:
    members: pd.DataFrame          # canonical members table (without ids filled for death)
    state: Members
    conditions: np.ndarray         # bool [n, C]
    condition_names: list[str]
    codes10: np.ndarray            # str [n, C] the ICD-10-CM code each member carries for each condition
    drugs: pd.DataFrame            # member row, drug_class, rxnorm, high_risk (the chronic regimen)
    n_drug_classes: np.ndarray
    covered: np.ndarray            # bool [n, months] enrolled in the month


def _ages(rng: np.random.Generator, lob: np.ndarray) -> np.ndarray:
    n = len(lob)
    age = np.empty(n)
    u = rng.random(n)
    for i, name in enumerate(LOBS):
        sel = lob == i
        k = int(sel.sum())
        if name == "commercial":
            a = np.where(u[sel] < 0.24, rng.uniform(0, 18, k), rng.uniform(18, 64.9, k))
        elif name == "medicaid":
            a = np.where(u[sel] < 0.45, rng.uniform(0, 19, k), rng.uniform(19, 64.9, k))
        elif name == "medicare":
            a = np.where(u[sel] < 0.13, rng.uniform(25, 64.9, k), 65 + rng.gamma(2.0, 6.0, k))
        else:
            a = np.where(u[sel] < 0.40, rng.uniform(21, 64.9, k), 65 + rng.gamma(2.0, 7.0, k))
        age[sel] = np.minimum(a, 104.0)
    return age


def draw_population(rng: np.random.Generator, n: int, first_index: int, sim_start: pd.Timestamp,
                    months: int, lob_share: np.ndarray = LOB_SHARE, frailty_shift: float = 0.0) -> Population:
    """``n`` members; ``lob_share`` and ``frailty_shift`` (added to every member's frailty) let a scenario
    draw a group unlike the plan's members (``scenarios.py``)."""
    ref = reference()
    lob = rng.choice(len(LOBS), size=n, p=lob_share)
    age = _ages(rng, lob)
    female_share = np.array([0.55, 0.57, 0.51, 0.60])[lob]
    sex = np.where(rng.random(n) < female_share, "F", "M")
    z = rng.standard_normal(n) + frailty_shift

    prev = ref["condition_prevalence"]
    names = prev["condition"].tolist()
    band = np.searchsorted(AGE_BANDS, age, side="right") - 1
    band_cols = ["a0_17", "a18_44", "a45_64", "a65_74", "a75_84", "a85_up"]
    p = prev[band_cols].to_numpy()[:, band].T  # [n, C]
    low_income = (lob == 1) | (lob == 3) | ((lob == 0) & (age < 65))
    odds = p / (1 - p) * np.where(low_income[:, None], prev["lowinc_or"].to_numpy()[None, :], 1.0)
    p = np.clip(odds / (1 + odds), 0.0, 0.95)
    latent = FRAILTY_LOADING * z[:, None] + np.sqrt(1 - FRAILTY_LOADING**2) * rng.standard_normal(p.shape)
    conditions = latent > norm.ppf(1 - p)
    burden = conditions.astype(float) @ prev["burden"].to_numpy()

    codes = ref["condition_codes"]
    codes10 = np.empty(conditions.shape, dtype=object)
    for j, c in enumerate(names):
        opts = codes[codes["condition"] == c]
        w = opts["weight"].to_numpy(float)
        codes10[:, j] = opts["icd10cm"].to_numpy()[rng.choice(len(opts), size=n, p=w / w.sum())]

    drugs_ref = ref["drugs"]
    rows = []
    for j, c in enumerate(names):
        for d in drugs_ref[drugs_ref["condition"] == c].itertuples(index=False):
            on = np.flatnonzero(conditions[:, j] & (rng.random(n) < d.share))
            rows.append(pd.DataFrame({"row": on, "drug_class": d.drug_class, "rxnorm": d.rxnorm,
                                      "high_risk": bool(d.high_risk), "description": d.description}))
    drugs = pd.concat(rows, ignore_index=True).drop_duplicates(["row", "drug_class"])
    n_classes = np.bincount(drugs["row"].to_numpy(), minlength=n)

    birth = (sim_start - pd.to_timedelta(age * 365.25, unit="D")).floor("D")
    race = rng.choice(len(RACE[0]), size=n, p=RACE[1])
    members = pd.DataFrame({
        "member_id": [f"M{first_index + i:08d}" for i in range(n)],
        "birth_date": birth.astype("datetime64[us]"),
        "sex": sex,
        "race_ethnicity": np.array(RACE[0], dtype=object)[race],
        "state": np.array(STATES, dtype=object)[rng.integers(0, len(STATES), n)],
        "death_date": pd.Series(pd.NaT, index=range(n), dtype="datetime64[us]"),
    })
    state = Members(age0=age, lob=lob, burden=burden, n_conditions=conditions.sum(axis=1), z=z)
    return Population(members, state, conditions, names, codes10, drugs, n_classes,
                      _coverage(rng, lob, months))


def _coverage(rng: np.random.Generator, lob: np.ndarray, months: int) -> np.ndarray:
    """Month-by-month enrollment: most members enrolled from the start, some join later; churn and gaps."""
    n = len(lob)
    churn = np.array([CHURN[x] for x in LOBS])[lob]
    back = np.array([RETURN[x] for x in LOBS])[lob]
    covered = np.zeros((n, months), dtype=bool)
    join = np.where(rng.random(n) < 0.85, 0, rng.integers(1, months, n))
    on = join == 0
    for k in range(months):
        on = on | (join == k)
        covered[:, k] = on
        u = rng.random(n)
        on = np.where(on, u >= churn, u < back * (join <= k))
    return covered


def enrollment_spans(covered: np.ndarray, month_starts: np.ndarray, lob: np.ndarray,
                     member_ids: pd.Series) -> pd.DataFrame:
    """Turn the monthly coverage matrix into start/end spans (end = last covered day)."""
    n, months = covered.shape
    padded = np.zeros((n, months + 2), dtype=np.int8)
    padded[:, 1:-1] = covered
    d = np.diff(padded, axis=1)
    r_start, k_start = np.nonzero(d == 1)
    r_end, k_end = np.nonzero(d == -1)
    # nonzero walks row-major, so starts and ends pair up in order
    start = month_starts[k_start]
    end = month_starts[k_end] - np.timedelta64(1, "D")
    return pd.DataFrame({
        "member_id": member_ids.to_numpy()[r_start],
        "start_date": pd.to_datetime(start).astype("datetime64[us]"),
        "end_date": pd.to_datetime(end).astype("datetime64[us]"),
        "line_of_business": np.array(LOBS, dtype=object)[lob[r_start]],
        "row": r_start,
    })
