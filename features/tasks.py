"""Task kinds: one object per kind of prediction point, owning its cohort and labels, who can be scored at a
date, its clinical baselines and the feature groups that apply.

Training, evaluation, serving and the CLI ask the task of a spec (``task_for(spec)``) and never branch on a
task's or a model's name. A new outcome on an existing kind is a new spec in ``models/``; a new kind is a new
class here, registered in ``TASKS``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from umrisk.features.cohorts import (
    CohortReport,
    discharge_cohort,
    latest_discharges,
    member_month_cohort,
    snapshot_eligibility,
)
from umrisk.features.events import seconds
from umrisk.features.spec import DischargeSpec, MemberMonthSpec, ModelSpec

Store = dict[str, pd.DataFrame]


@dataclass
class Scorable:
    """The points that can be scored at a date, and why each other member cannot."""

    points: pd.DataFrame
    reasons: dict[str, tuple[str, str]] = field(default_factory=dict)  # member -> (category, sentence)


class Task(Protocol):
    kind: str
    excludes_index: bool  # utilization counts stop a second before history_end (the index stay not counted)
    outreach_list: bool   # its points are members at a date, so it can rank an outreach list
    care_tiers: int       # a risk in this many top tiers suggests the task's care step in a review queue

    def care_step(self, service_type: str) -> str: ...

    def cohort(self, store: Store, spec: ModelSpec, end: pd.Timestamp | None = None
               ) -> tuple[pd.DataFrame, CohortReport]: ...

    def scorable(self, store: Store, spec: ModelSpec, member_ids: Sequence[str], as_of: pd.Timestamp) -> Scorable: ...

    def history_end(self, points: pd.DataFrame) -> np.ndarray: ...

    def baselines(self, spec: ModelSpec, frame: pd.DataFrame) -> dict[str, np.ndarray]: ...

    def oracle(self, spec: ModelSpec, data_dir: Path, frame: pd.DataFrame) -> pd.Series | None: ...


class DischargeTask:
    """Index discharges (transfers chained); the outcome in a window after each (30-day readmission)."""

    kind = "discharge"
    excludes_index = True
    outreach_list = False
    care_tiers = 1

    def care_step(self, service_type: str) -> str:
        """Transitional care for an admission under review; care management otherwise."""
        if service_type == "inpatient_admission":
            return "plan transitional care at discharge"
        return "refer to care management"

    def cohort(self, store: Store, spec: DischargeSpec, end: pd.Timestamp | None = None
               ) -> tuple[pd.DataFrame, CohortReport]:
        return discharge_cohort(store, spec, end)

    def scorable(self, store: Store, spec: DischargeSpec, member_ids: Sequence[str], as_of: pd.Timestamp) -> Scorable:
        points, reasons = latest_discharges(store, spec, list(member_ids), pd.Timestamp(as_of))
        return Scorable(points, reasons)

    def history_end(self, points: pd.DataFrame) -> np.ndarray:
        """Utilization is counted before the index admission (what happened before this stay)."""
        return seconds(points["index_admit_time"])

    def baselines(self, spec: DischargeSpec, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """LACE (van Walraven 2010) and HOSPITAL (Donze 2013): the readmission scores in use today."""
        return {"lace": frame["lace"].to_numpy(), "hospital": frame["hospital_score"].to_numpy()}

    def oracle(self, spec: DischargeSpec, data_dir: Path, frame: pd.DataFrame) -> pd.Series | None:
        """The generator's readmission probability, when the label is the one it drew (inpatient, 1-30 days)."""
        lab = spec.label
        path = data_dir / "truth" / "readmission"
        if not path.is_dir() or lab.event.settings != ["inpatient"] or tuple(lab.window_days) != (1, 30):
            return None
        t = pd.read_parquet(path, columns=["encounter_id", "p_readmit_30d"])
        return frame["index_encounter_id"].astype("str").map(t.set_index("encounter_id")["p_readmit_30d"])


class MemberMonthTask:
    """Members on the first of each month (alive, enrolled, out of hospital); the outcome within a horizon."""

    kind = "member_month"
    excludes_index = False
    outreach_list = True
    care_tiers = 2

    def care_step(self, service_type: str) -> str:
        return "refer to care management"

    def cohort(self, store: Store, spec: MemberMonthSpec, end: pd.Timestamp | None = None
               ) -> tuple[pd.DataFrame, CohortReport]:
        return member_month_cohort(store, spec, end=end)

    def scorable(self, store: Store, spec: MemberMonthSpec, member_ids: Sequence[str],
                 as_of: pd.Timestamp) -> Scorable:
        points, reasons = snapshot_eligibility(store, spec, list(member_ids), pd.Timestamp(as_of))
        return Scorable(points, reasons)

    def history_end(self, points: pd.DataFrame) -> np.ndarray:
        return seconds(points["as_of"])

    def baselines(self, spec: MemberMonthSpec, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """The same events in the prior year: the simplest rule a care team uses today."""
        settings = spec.label.event.settings
        window = max((w for w in spec.features.windows_days if w <= 365), default=min(spec.features.windows_days))
        score = sum(frame[f"n_{s}_{window}d"].to_numpy() for s in settings)
        return {f"prior_{window}d_{'_'.join(settings)}": np.asarray(score)}

    def oracle(self, spec: MemberMonthSpec, data_dir: Path, frame: pd.DataFrame) -> pd.Series | None:
        """The generator's admission probability, when the label is the one it drew (unplanned emergency or
        urgent admission within 180 days)."""
        ev = spec.label.event
        path = data_dir / "truth" / "admission"
        drawn = (ev.settings == ["inpatient"] and sorted(ev.admission_types or []) == ["emergency", "urgent"]
                 and ev.planned == "exclude" and spec.cohort.horizon_days == 180)
        if not path.is_dir() or not drawn:
            return None
        t = pd.read_parquet(path, columns=["member_id", "as_of", "p_admit_180d"])
        key = pd.MultiIndex.from_arrays([frame["member_id"].astype(str), frame["as_of"]])
        return pd.Series(t.set_index(["member_id", "as_of"])["p_admit_180d"].reindex(key).to_numpy(),
                         index=frame.index)


TASKS: dict[str, Task] = {t.kind: t for t in (DischargeTask(), MemberMonthTask())}


def task_for(spec: ModelSpec) -> Task:
    """The task of a spec (its ``task`` field names the kind)."""
    return TASKS[spec.task]
