"""Model specs: the YAML files in ``models/`` parsed into typed, validated objects.

A spec names every choice of a task (cohort, label, windows, value sets) so that a new model is a new
file, not new code. Unknown keys are errors; every error names the file and the field.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

MODELS_DIR = Path(str(resources.files("umrisk.models")))  # package data: models/ in a checkout
Days = Annotated[int, Field(ge=1, le=3650)]


class SpecError(ValueError):
    """A spec file that cannot be used; the message names the file and the fields."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureSpec(_Strict):
    windows_days: list[Days] = [30, 90, 180, 365, 730]
    paid_windows_days: list[Days] = [90, 365]
    comorbidity_lookback_days: Days = 730
    lab_lookback_days: Days = 365
    medication_windows_days: list[Days] = [90, 365]

    @field_validator("windows_days", "paid_windows_days", "medication_windows_days")
    @classmethod
    def _sorted_unique(cls, v: list[int]) -> list[int]:
        if not v or len(set(v)) != len(v):
            raise ValueError("must be a non-empty list of distinct day counts")
        return sorted(v)


Setting = Literal["inpatient", "emergency", "observation", "outpatient", "office", "snf", "home_health", "hospice",
                  "telehealth"]
AdmissionType = Literal["emergency", "urgent", "elective", "unknown"]


class EventSpec(_Strict):
    """Which encounters count as the outcome: their settings, admission types (None: any) and whether planned
    stays count (CMS Planned Readmission Algorithm v4.0; only inpatient stays can be planned). Inpatient
    encounters are chained into stays (transfers joined) before they are counted."""

    settings: Annotated[list[Setting], Field(min_length=1)] = ["inpatient"]
    admission_types: list[AdmissionType] | None = None
    planned: Literal["exclude", "include"] = "exclude"

    @field_validator("settings")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("settings must be distinct")
        return v


class DischargeCohort(_Strict):
    transfer_max_gap_days: Annotated[int, Field(ge=0, le=2)] = 1
    exclude_dispositions: list[Literal["expired", "ama", "hospice", "transfer_acute", "snf", "rehab", "other",
                                       "unknown"]] = ["expired", "ama", "hospice"]
    enrollment_after_days: Annotated[int, Field(ge=0, le=365)] = 30
    exclude_planned_index: bool = False
    first_date: str | None = None
    lookback_days: Annotated[int, Field(ge=0, le=3650)] = 365


class DischargeLabel(_Strict):
    event: EventSpec = EventSpec()
    window_days: tuple[Annotated[int, Field(ge=0)], Days] = (1, 30)
    planned_first_readmission: Literal["censor", "skip"] = "censor"
    death_without_readmission: Literal["keep", "exclude"] = "keep"
    planned_algorithm: Literal["cms_planned_readmission_v4"] = "cms_planned_readmission_v4"

    @model_validator(mode="after")
    def _window_order(self) -> DischargeLabel:
        if self.window_days[0] > self.window_days[1]:
            raise ValueError("window_days: start after end")
        return self


class MemberMonthCohort(_Strict):
    as_of: Literal["monthly"] = "monthly"
    lookback_days: Annotated[int, Field(ge=0, le=3650)] = 365
    first_date: str | None = None
    horizon_days: Days = 180


class MemberMonthLabel(_Strict):
    event: EventSpec = EventSpec(settings=["inpatient"], admission_types=["emergency", "urgent"])
    planned_algorithm: Literal["cms_planned_readmission_v4"] = "cms_planned_readmission_v4"
    disenrolled_without_event: Literal["exclude", "keep"] = "exclude"
    death_without_event: Literal["keep", "exclude"] = "keep"


class SplitSpec(_Strict):
    """Time and member split. The latest ``test_fraction`` of prediction times, for the members of the test
    group (a hash of the member id below ``test_member_fraction``), is the test set; every earlier point of
    every other member is a training point. No member is on both sides. Inside the training points, members
    are divided into ``cv_folds`` folds for cross-validation (tuning, number of rounds, cross-fitted
    calibration); the final model is refitted on all of them."""

    test_fraction: Annotated[float, Field(gt=0, lt=0.9)] = 0.25
    test_member_fraction: Annotated[float, Field(gt=0, le=1)] = 1.0
    cv_folds: Annotated[int, Field(ge=2, le=20)] = 5
    max_train_points: Annotated[int, Field(ge=1000)] | None = None
    seed: int = 1


class LightGBMSpec(_Strict):
    """LightGBM parameters, the most rounds cross-validation may choose, and the limits that keep a model on
    few events from overfitting: every leaf holds at least ``min_leaf_events`` expected events (so
    ``min_child_samples`` is at least that over the prevalence) and a tree has at most one leaf per
    ``events_per_leaf`` events. ``monotone`` enforces the catalog's clinical directions (more prior
    admissions never lower the risk) with LightGBM monotone constraints, and ``directions`` adds this
    model's own for features the catalog leaves without one (by feature name; a direction that contradicts
    the catalog's is refused when the model is fitted)."""

    params: dict[str, float | int | str | bool] = {
        "objective": "binary", "learning_rate": 0.05, "num_leaves": 31, "min_child_samples": 50,
        "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1, "lambda_l2": 1.0,
    }
    num_boost_round: Annotated[int, Field(ge=10, le=20000)] = 2000
    early_stopping_rounds: Annotated[int, Field(ge=5, le=1000)] = 50
    min_leaf_events: Annotated[float, Field(ge=0, le=1000)] = 10.0
    events_per_leaf: Annotated[float, Field(ge=1, le=10000)] = 20.0
    monotone: bool = True
    directions: dict[str, Literal["increasing", "decreasing"]] = {}


class TuningSpec(_Strict):
    """Hyperparameter search (Optuna, TPE) scored by the cross-validated log loss, within a budget: no trial
    starts that is not expected to end before ``timeout_seconds``; 0 trials keeps the given parameters."""

    n_trials: Annotated[int, Field(ge=0, le=1000)] = 12
    timeout_seconds: Annotated[float, Field(gt=0)] = 120
    learning_rate: tuple[float, float] = (0.02, 0.15)
    num_leaves: tuple[int, int] = (7, 63)
    min_child_samples: tuple[int, int] = (20, 400)
    feature_fraction: tuple[float, float] = (0.5, 1.0)
    lambda_l2: tuple[float, float] = (0.0, 20.0)

    @field_validator("learning_rate", "num_leaves", "min_child_samples", "feature_fraction", "lambda_l2")
    @classmethod
    def _range(cls, v: tuple) -> tuple:
        if v[0] > v[1]:
            raise ValueError("a search range is (low, high) with low <= high")
        return v


class CalibrationSpec(_Strict):
    """Cross-fitted calibration: the out-of-fold predictions of the cross-validation fit the calibrator."""

    method: Literal["auto", "isotonic", "platt"] = "auto"  # auto: the lower cross-validated log loss


class GateSpec(_Strict):
    """Promotion gates: absolute ones for the first model, relative ones against the champion."""

    min_auroc: Annotated[float, Field(ge=0.5, le=1)] = 0.65
    max_ici: Annotated[float, Field(gt=0, le=1)] = 0.03
    calibration_slope: tuple[float, float] = (0.8, 1.2)
    max_auroc_drop: Annotated[float, Field(ge=0, le=1)] = 0.01
    max_subgroup_auroc_drop: Annotated[float, Field(ge=0, le=1)] = 0.05
    min_subgroup_size: Annotated[int, Field(ge=1)] = 200


class Tier(_Strict):
    name: str
    min_probability: Annotated[float, Field(ge=0, le=1)]


class ModelTraining(_Strict):
    split: SplitSpec = SplitSpec()
    lightgbm: LightGBMSpec = LightGBMSpec()
    tuning: TuningSpec = TuningSpec()
    calibration: CalibrationSpec = CalibrationSpec()
    gates: GateSpec = GateSpec()
    tiers: list[Tier] = [Tier(name="high", min_probability=0.3), Tier(name="elevated", min_probability=0.15),
                         Tier(name="low", min_probability=0.0)]
    review_capacity: list[Annotated[float, Field(gt=0, lt=1)]] = [0.01, 0.05, 0.10]

    @field_validator("tiers")
    @classmethod
    def _tiers_descend(cls, v: list[Tier]) -> list[Tier]:
        mins = [t.min_probability for t in v]
        if not v or mins != sorted(mins, reverse=True) or mins[-1] != 0.0 or len(set(mins)) != len(mins):
            raise ValueError("tiers must be listed from highest to lowest min_probability, ending at 0")
        return v

    def tier(self, p: float) -> str:
        return next(t.name for t in self.tiers if p >= t.min_probability)


class MonitoringSpec(_Strict):
    """Thresholds of ``umrisk monitor``, which compares each month after the training period with the last
    ``reference_months`` months of the training points. Input drift: the population stability index of each
    feature and of the score over ``psi_bins`` quantile bins of the reference (a feature above
    ``max_feature_psi`` or a score above ``max_score_psi`` raises a drift alert), and the number of points scored
    (more than ``max_points_change`` away from the reference months' mean, as a share: a population joining or
    leaving, or a feed cut short, raises a drift alert). Performance, once a month's
    label window has closed and it has ``min_month_points`` points: observed/expected outside ``oe_ratio``,
    ICI above ``max_ici``, or an AUROC more than ``max_auroc_drop`` below the version's test AUROC with the
    upper end of its interval below that test AUROC raise a performance alert."""

    reference_months: Annotated[int, Field(ge=1, le=36)] = 3
    psi_bins: Annotated[int, Field(ge=2, le=50)] = 10
    max_feature_psi: Annotated[float, Field(gt=0)] = 0.25
    max_score_psi: Annotated[float, Field(gt=0)] = 0.10
    max_points_change: Annotated[float, Field(gt=0)] = 0.20
    oe_ratio: tuple[Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)]] = (0.8, 1.25)
    max_ici: Annotated[float, Field(gt=0, le=1)] = 0.05
    max_auroc_drop: Annotated[float, Field(ge=0, le=1)] = 0.05
    min_month_points: Annotated[int, Field(ge=1)] = 500

    @field_validator("oe_ratio")
    @classmethod
    def _bounds(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not v[0] < 1 < v[1]:
            raise ValueError("oe_ratio is (low, high) with low < 1 < high")
        return v


class DischargeSpec(_Strict):
    """A model on index discharges: the outcome within a window after each (30-day readmission)."""

    name: str
    description: str = ""
    intended_use: str = ""
    task: Literal["discharge"]
    cohort: DischargeCohort = DischargeCohort()
    label: DischargeLabel = DischargeLabel()
    features: FeatureSpec = FeatureSpec()
    model: ModelTraining = ModelTraining()
    monitoring: MonitoringSpec = MonitoringSpec()


class MemberMonthSpec(_Strict):
    """A model on monthly member snapshots: the outcome within a horizon after the first of each month."""

    name: str
    description: str = ""
    intended_use: str = ""
    task: Literal["member_month"]
    cohort: MemberMonthCohort = MemberMonthCohort()
    label: MemberMonthLabel = MemberMonthLabel()
    features: FeatureSpec = FeatureSpec()
    model: ModelTraining = ModelTraining()
    monitoring: MonitoringSpec = MonitoringSpec()


ModelSpec = DischargeSpec | MemberMonthSpec
SPEC_CLASSES: dict[str, type[_Strict]] = {"discharge": DischargeSpec, "member_month": MemberMonthSpec}
TASK_ALIASES = {"readmission": "discharge", "admission": "member_month"}  # the names of the first two kinds


def parse_spec(data: object, source: str = "<spec>") -> ModelSpec:
    """Validate a parsed YAML document into a spec; errors name ``source`` and each field path."""
    if not isinstance(data, dict):
        raise SpecError(f"{source}: a spec is a mapping of keys to values, got {type(data).__name__}")
    task = data.get("task")
    task = TASK_ALIASES.get(task, task) if isinstance(task, str) else task
    cls = SPEC_CLASSES.get(task)  # type: ignore[arg-type]
    if cls is None:
        raise SpecError(f"{source}: field 'task' must be one of {', '.join(SPEC_CLASSES)} (got {data.get('task')!r})")
    try:
        return cls.model_validate({**data, "task": task})  # type: ignore[return-value]
    except ValidationError as err:
        lines = [f"{source}: {err.error_count()} problem(s) in the spec:"]
        for e in err.errors():
            where = ".".join(str(p) for p in e["loc"]) or "(top level)"
            lines.append(f"  {where}: {e['msg']}")
        raise SpecError("\n".join(lines)) from None


def spec_names() -> list[str]:
    """The names of the specs shipped in ``models/``."""
    return sorted(p.stem for p in MODELS_DIR.glob("*.yaml"))


def load_spec(name_or_path: str | Path) -> ModelSpec:
    """Load ``models/<name>.yaml`` (or a path to a YAML file)."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = MODELS_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        known = ", ".join(spec_names())
        raise SpecError(f"no model spec {name_or_path!r} (known: {known})")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise SpecError(f"{path}: not valid YAML: {err}") from None
    return parse_spec(data, str(path))
