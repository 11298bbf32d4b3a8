"""Clinical scores of a discharge: the LACE index and the HOSPITAL score, from their published point tables.
They are features, and the baselines the model is judged against."""

from __future__ import annotations

import numpy as np

from umrisk.features.catalog import FeatureInfo
from umrisk.features.events import EventIndex, seconds
from umrisk.features.groups.context import Context
from umrisk.features.spec import FeatureSpec

NAME = "clinical scores"
TASKS = ("discharge",)


def catalog(fs: FeatureSpec) -> list[FeatureInfo]:
    return [
        FeatureInfo("lace", "LACE index (van Walraven 2010): length of stay, acuity, Charlson, emergency visits",
                    "points", NAME, reason="LACE index {value:.0f}", tasks=TASKS, direction="increasing"),
        FeatureInfo("hospital_score", "HOSPITAL score (Donze 2013)", "points", NAME,
                    reason="HOSPITAL score {value:.0f}", tasks=TASKS, direction="increasing"),
    ]


def compute(ctx: Context, out: dict) -> None:
    """Reads the index stay, labs and comorbidity groups' columns (they run first)."""
    ed_6m = ctx.cache["emergency_index"].count(ctx.pm, ctx.hist - 1, 182)
    out["lace"] = lace(out["los_days"], out["admission_type"], out["charlson_index"], ed_6m)
    # labs "at discharge": the last value, when it was taken during the stay
    admit = seconds(ctx.points["index_admit_time"])
    last_time = ctx.cache["last_lab_time"]
    hb = np.where(last_time["hemoglobin"] >= admit, out["lab_hemoglobin"], np.nan)
    na = np.where(last_time["sodium"] >= admit, out["lab_sodium"], np.nan)
    stays = ctx.stays
    admissions_12m = EventIndex(ctx.members.encode(stays["member_id"]), seconds(stays["admit_time"])).count(
        ctx.pm, ctx.hist - 1, 365)
    out["hospital_score"] = hospital_score(
        hemoglobin=hb, oncology=out["oncology_index"], sodium=na, procedures=out["n_procedures_index"],
        admission_type=out["admission_type"], admissions_12m=admissions_12m, los_days=out["los_days"])


def lace(los_days: np.ndarray, admission_type: np.ndarray, charlson: np.ndarray, ed_6m: np.ndarray) -> np.ndarray:
    """LACE index (van Walraven et al., CMAJ 2010;182(6):551-7), 0-19.

    L: length of stay <1 day 0, 1 day 1, 2 days 2, 3 days 3, 4-6 days 4, 7-13 days 5, 14+ days 7.
    A: acute (emergent) admission 3. C: Charlson 0 -> 0, 1 -> 1, 2 -> 2, 3 -> 3, 4+ -> 5.
    E: emergency visits in the 6 months before admission, 0-4 (capped at 4).

    >>> int(lace(np.array([5]), np.array(["emergency"]), np.array([2]), np.array([1]))[0])
    10
    """
    los = np.asarray(los_days, dtype=float)
    l_pts = np.select([los < 1, los < 2, los < 3, los < 4, los < 7, los < 14], [0, 1, 2, 3, 4, 5], 7)
    a_pts = np.where(np.isin(np.asarray(admission_type, dtype=object), ["emergency", "urgent"]), 3, 0)
    c = np.asarray(charlson)
    c_pts = np.where(c >= 4, 5, c)
    e_pts = np.minimum(np.asarray(ed_6m), 4)
    return (l_pts + a_pts + c_pts + e_pts).astype(np.int64)


def hospital_score(*, hemoglobin, oncology, sodium, procedures, admission_type, admissions_12m,
                   los_days) -> np.ndarray:
    """HOSPITAL score (Donze et al., JAMA Intern Med 2013;173(8):632-8), 0-13.

    Hemoglobin at discharge <12 g/dL 1; discharge from Oncology 2; Sodium at discharge <135 mmol/L 1;
    Procedure during the stay 1; Index admission urgent/emergent 1; Admissions in the previous 12 months
    0-1 -> 0, 2-5 -> 2, >5 -> 5; Length of stay >=5 days 2. A missing lab scores 0.

    >>> int(hospital_score(hemoglobin=np.array([11.0]), oncology=np.array([0]), sodium=np.array([133.0]),
    ...     procedures=np.array([1]), admission_type=np.array(["emergency"]), admissions_12m=np.array([3]),
    ...     los_days=np.array([6]))[0])
    8
    """
    hb = np.nan_to_num(np.asarray(hemoglobin, dtype=float), nan=99.0)
    na = np.nan_to_num(np.asarray(sodium, dtype=float), nan=140.0)
    prior = np.asarray(admissions_12m)
    return ((hb < 12).astype(int) + 2 * (np.asarray(oncology) > 0) + (na < 135).astype(int)
            + (np.asarray(procedures) > 0).astype(int)
            + np.isin(np.asarray(admission_type, dtype=object), ["emergency", "urgent"]).astype(int)
            + np.select([prior <= 1, prior <= 5], [0, 2], 5) + 2 * (np.asarray(los_days) >= 5)).astype(np.int64)
