"""The steps every trained model goes through after fitting, whatever its table came from.

``umrisk train`` (a spec on a store) and ``umrisk train-table`` (a table a data scientist already has) both
end here: the same evaluation dict (``evaluation``), the same metrics logged to MLflow (``run_metrics``), the
same registration (``registry.log_and_register``) and the same report and model card (``write_card``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from umrisk.training import registry
from umrisk.training.metrics import evaluate, net_benefit, subgroups
from umrisk.training.model import RiskModel
from umrisk.training.report import model_card, write_report

SHAP_SAMPLE = 2000
SPLIT_METRICS = ("train", "valid", "calib", "test")  # logged as n_<fold>; a model card reads them back


def evaluation(y: np.ndarray, p: np.ndarray, *, groups: dict[str, pd.Series], capacity: list[float],
               min_subgroup_size: int, baselines: dict[str, float] | None = None,
               period: tuple = ("", ""), n_boot: int = 300) -> dict:
    """Everything the report, the model card and the promotion gates read, from labels and probabilities
    (the same keys as ``train.evaluate_model``)."""
    return {"metrics": evaluate(y, p, capacity, n_boot=n_boot),
            "subgroups": subgroups(y, p, groups, min_size=min_subgroup_size),
            "baselines": baselines or {}, "net_benefit": net_benefit(y, p), "y": y, "p": p, "period": period}


def cv_metrics(model: RiskModel) -> dict[str, float]:
    """The cross-validation figures a model reports about its own fit (``cv_``), as ``cv_<name>``."""
    cv = getattr(model, "cv_", None) or {}
    return {f"cv_{k}": float(v) for k, v in cv.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def run_metrics(ev: dict, valid: dict, split: dict[str, int], seconds: dict[str, float],
                cv: dict[str, float] | None = None) -> dict[str, float]:
    """The metrics logged on the run: test, validation and cross-validation figures, baselines, timings and
    the split sizes."""
    m = ev["metrics"]
    return {**{f"test_{k}": v for k, v in m.items() if isinstance(v, float)}, **(cv or {}),
            **{f"valid_{k}": v for k, v in valid.items() if k in ("auroc", "auprc", "brier", "ici")},
            **{f"baseline_{k}_auroc": v for k, v in ev["baselines"].items()},
            **{f"test_top{int(round(100 * t['fraction']))}_precision": t["precision"] for t in m["top_k"]},
            **{f"seconds_{k}": v for k, v in seconds.items()},
            **{f"n_{k}": float(v) for k, v in split.items()}}


def split_of_run(run_id: str) -> dict[str, int | None]:
    """The split sizes a registered run was trained with (None for a size the run did not record)."""
    import mlflow

    metrics = mlflow.get_run(run_id).data.metrics
    return {k: (int(metrics[f"n_{k}"]) if f"n_{k}" in metrics else None) for k in SPLIT_METRICS}


def write_card(out: Path, *, about: dict, model: RiskModel, ev: dict, test_frame: pd.DataFrame,
               baseline_scores: dict[str, np.ndarray], version: str | None, run_id: str | None, split: dict,
               cohort: dict, lineage: dict, trained_on: tuple) -> Path:
    """The evaluation report (HTML and plots) and model card (Markdown and JSON) in ``out``."""
    sample = test_frame.sample(min(SHAP_SAMPLE, len(test_frame)), random_state=1)
    calibration = model.calibrator_.method if model.calibrator_ is not None else "no"
    folds = (getattr(model, "cv_", None) or {}).get("folds")
    model_type = (f"LightGBM gradient-boosted trees; rounds and {calibration} calibration chosen by {folds}-fold "
                  "cross-validation grouped by member, then refitted on all training points" if folds else None)
    card = model_card(about=about, version=version, run_id=run_id, ev=ev, cohort=cohort, split=split,
                      lineage=lineage, calibration=calibration, trained_on=trained_on, tested_on=ev["period"],
                      model_type=model_type)
    return write_report(out, card, ev, model.importance(), model.contributions(sample), model.prepare(sample),
                        baseline_scores)


@dataclass
class Fitted:
    """A fitted model and what the rest of the pipeline needs to know about its training."""

    model: RiskModel
    ev: dict  # evaluation on the test rows
    valid: dict  # metrics on the validation rows
    split: dict[str, int]
    trained_on: tuple
    test_frame: pd.DataFrame
    baseline_scores: dict[str, np.ndarray]
    tuning: dict
    seconds: dict[str, float] = field(default_factory=dict)
    cv: dict[str, float] = field(default_factory=dict)  # cv_<name>: the model's own cross-validation figures


def register_and_report(fitted: Fitted, *, about: dict, spec: dict, catalog: list[dict], fingerprint: dict,
                        tags: dict[str, str], cohort: dict, reports: Path, data_label: str) -> dict:
    """Log the run, register the version (alias challenger), write the report and attach it to the run."""
    seconds = dict(fitted.seconds)
    model = fitted.model
    params = {**model.params, "best_iteration": model.best_iteration_,
              "calibration": model.calibrator_.method if model.calibrator_ is not None else "none",
              "tuning_trials": fitted.tuning.get("trials", 0)}
    t0 = time.perf_counter()
    logged = registry.log_and_register(
        model_name=about["name"], risk_model=model, spec=spec, catalog=catalog, example=fitted.test_frame,
        params=params, metrics=run_metrics(fitted.ev, fitted.valid, fitted.split, seconds, fitted.cv),
        fingerprint=fingerprint,
        tags={"trained_from": str(fitted.trained_on[0]), "trained_to": str(fitted.trained_on[1]), **tags})
    seconds["mlflow"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = reports / about["name"] / f"v{logged.version}"
    lineage = {"code_version": logged.code_version, "data_sha256": fingerprint["sha256"],
               "data_rows": fingerprint["rows"], "data": data_label}
    write_card(out, about=about, model=model, ev=fitted.ev, test_frame=fitted.test_frame,
               baseline_scores=fitted.baseline_scores, version=logged.version, run_id=logged.run_id,
               split=fitted.split, cohort=cohort, lineage=lineage, trained_on=fitted.trained_on)
    seconds["report"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    registry.log_artifacts(logged.run_id, out, "evaluation")
    seconds["mlflow"] += time.perf_counter() - t0
    m = fitted.ev["metrics"]
    return {"model": about["name"], "registered_model": logged.name, "version": logged.version,
            "run_id": logged.run_id, "alias": "challenger", "report": str(out / "report.html"),
            "model_card": str(out / "model_card.md"), "report_dir": str(out),
            "test": {k: m[k] for k in ("auroc", "auroc_ci_low", "auroc_ci_high", "auprc", "brier", "ici", "e90",
                                       "calibration_slope", "calibration_intercept")},
            "baselines": fitted.ev["baselines"], "split": fitted.split, "seconds": seconds,
            "tracking_uri": registry.tracking_uri()}
