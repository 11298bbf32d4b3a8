"""The steps every trained model goes through after fitting, whatever its table came from.

``umrisk train`` (a spec on a store) and ``umrisk train-table`` (a table a data scientist already has) both
end here: the same evaluation dict (``evaluation``), the same metrics logged to MLflow (``run_metrics``), the
same registration (``registry.log_and_register``) and the same report and model card (``write_card``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from umrisk.features.spec import GateSpec
from umrisk.training import registry
from umrisk.training.gates import absolute_gates, gate_metrics, gate_tags
from umrisk.training.metrics import evaluate, fast_auroc, net_benefit, paired_auroc_difference, subgroups
from umrisk.training.model import RiskModel
from umrisk.training.report import model_card, write_report
from umrisk.training.subgroup_checks import review_subgroups

SHAP_SAMPLE = 2000
SPLIT_METRICS = ("train", "valid", "calib", "test")  # logged as n_<fold>; a model card reads them back


def evaluation(y: np.ndarray, p: np.ndarray, *, groups: dict[str, pd.Series], capacity: list[float],
               min_subgroup_size: int, baseline_scores: dict[str, np.ndarray] | None = None,
               period: tuple = ("", ""), n_boot: int = 300) -> dict:
    """Everything the report, the model card and the promotion gates read, from labels and probabilities
    (the same keys as ``train.evaluate_model``): with ``baseline_scores``, each baseline's AUROC and the
    model's lead over it with a paired interval."""
    scores = baseline_scores or {}
    return {"metrics": evaluate(y, p, capacity, n_boot=n_boot),
            "subgroups": subgroups(y, p, groups, min_size=min_subgroup_size),
            "baselines": {k: fast_auroc(y, np.asarray(v, dtype=float)) for k, v in scores.items()},
            "leads": leads(y, p, scores, n_boot), "net_benefit": net_benefit(y, p), "y": y, "p": p,
            "period": period}


def leads(y: np.ndarray, p: np.ndarray, scores: dict[str, np.ndarray], n_boot: int = 300) -> dict[str, dict]:
    """The model's AUROC minus each other score's on the same points, with a paired bootstrap 95 % interval:
    ``{name: {"diff", "lo", "hi"}}`` (the form of ``train.evaluate_model``'s ``leads``)."""
    y = np.asarray(y).astype(int)
    if not 0 < y.sum() < len(y):
        return {}
    out = {}
    for name, score in scores.items():
        diff, lo, hi = paired_auroc_difference(y, p, np.asarray(score, dtype=float), n_boot=n_boot)
        out[name] = {"diff": diff, "lo": lo, "hi": hi}
    return out


def champion_lead(model_name: str, ev: dict, score: Callable[[registry.UmriskModel], np.ndarray],
                  n_boot: int = 300) -> tuple[dict | None, str | None]:
    """The lead over the current champion on the same test points (its scores from ``score``), or why there is
    none: no champion, one that cannot be loaded, or one that cannot score these points."""
    try:
        champion, mv = registry.load(model_name, alias="champion")
    except registry.NoSuchVersion:
        return None, "no champion yet"
    except registry.RegistryError as err:
        return None, f"the champion cannot be loaded: {err}"
    try:
        p_champion = np.asarray(score(champion), dtype=float)
    except (KeyError, ValueError, TypeError) as err:
        return None, f"champion version {mv.version} cannot score these points ({err})"
    lead = leads(ev["y"], ev["p"], {"champion": p_champion}, n_boot).get("champion")
    return ({**lead, "version": str(mv.version)} if lead else None), None


def reviewed(ev: dict, gates: GateSpec | None = None) -> dict:
    """``ev`` with subgroup intervals and statuses, the flags a data scientist should read, and (given the
    spec's gates) the value of each absolute gate."""
    if "flags" in ev:
        return ev
    sub, flags = review_subgroups(ev["subgroups"], ev["metrics"]["auroc"])
    out = {**ev, "subgroups": sub, "flags": flags}
    if gates is not None:
        out["gates"] = absolute_gates(gates, ev["metrics"])
    return out


def cv_metrics(model: RiskModel) -> dict[str, float]:
    """The cross-validation figures a model reports about its own fit (``cv_``), as ``cv_<name>``."""
    cv = getattr(model, "cv_", None) or {}
    return {f"cv_{k}": float(v) for k, v in cv.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def run_metrics(ev: dict, valid: dict, split: dict[str, int], seconds: dict[str, float],
                cv: dict[str, float] | None = None) -> dict[str, float]:
    """The metrics logged on the run: test, validation and cross-validation figures, baselines and the leads
    over them, gate values, the number of subgroups flagged, timings and the split sizes."""
    m = ev["metrics"]
    lead_metrics = {f"lead_{k}_auroc_{part}": v[key] for k, v in (ev.get("leads") or {}).items()
                    for part, key in (("diff", "diff"), ("ci_low", "lo"), ("ci_high", "hi"))}
    return {**{f"test_{k}": v for k, v in m.items() if isinstance(v, float)}, **(cv or {}),
            **lead_metrics, **gate_metrics(ev.get("gates") or []),
            **({"subgroups_flagged": float(len(ev["flags"]))} if "flags" in ev else {}),
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
               cohort: dict, lineage: dict, trained_on: tuple, gates: GateSpec | None = None) -> Path:
    """The evaluation report (HTML and plots) and model card (Markdown and JSON) in ``out``; ``gates`` adds
    the value of each absolute gate when ``ev`` has not been reviewed yet."""
    ev = reviewed(ev, gates)
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
                        tags: dict[str, str], cohort: dict, reports: Path, data_label: str,
                        score_champion: Callable[[registry.UmriskModel], np.ndarray] | None = None) -> dict:
    """Log the run, register the version (alias challenger), write the report and attach it to the run.

    Before logging: the lead over the current champion on the same test points (scored by
    ``score_champion``, by default on the test frame), the subgroup review and the value of every absolute
    gate, logged as run metrics and recorded as version tags (``gate.<name>``)."""
    seconds = dict(fitted.seconds)
    model = fitted.model
    t0 = time.perf_counter()
    ev = reviewed(fitted.ev, GateSpec.model_validate(spec["model"]["gates"]))
    lead, why = champion_lead(about["name"], ev, score_champion or (
        lambda champion: champion.risk_model.predict_proba(fitted.test_frame)))
    ev["leads"] = {**(ev.get("leads") or {}), **({"champion": lead} if lead else {})}
    if why:
        about = {**about, "notes": [*about.get("notes", []), f"no lead over the champion: {why}"]}
    fitted = replace(fitted, ev=ev)
    seconds["evaluation"] = seconds.get("evaluation", 0.0) + time.perf_counter() - t0
    params = {**model.params, "best_iteration": model.best_iteration_,
              "calibration": model.calibrator_.method if model.calibrator_ is not None else "none",
              "tuning_trials": fitted.tuning.get("trials", 0)}
    t0 = time.perf_counter()
    logged = registry.log_and_register(
        model_name=about["name"], risk_model=model, spec=spec, catalog=catalog, example=fitted.test_frame,
        params=params, metrics=run_metrics(fitted.ev, fitted.valid, fitted.split, seconds, fitted.cv),
        fingerprint=fingerprint,
        tags={"trained_from": str(fitted.trained_on[0]), "trained_to": str(fitted.trained_on[1]), **tags,
              **gate_tags(ev["gates"])})
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
            "baselines": fitted.ev["baselines"], "leads": ev["leads"], "gates": ev["gates"], "flags": ev["flags"],
            "split": fitted.split, "seconds": seconds,
            "tracking_uri": registry.tracking_uri()}
