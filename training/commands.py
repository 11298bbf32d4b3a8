"""What ``umrisk train``, ``evaluate`` and ``promote`` do, as functions the CLI and tests call."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
from umrisk.features.build import feature_set
from umrisk.features.spec import ModelSpec, load_spec
from umrisk.training import registry
from umrisk.training.lineage import code_version, data_fingerprint
from umrisk.training.model import RiskModel
from umrisk.training.report import model_card, write_report
from umrisk.training.train import Table, build_table, evaluate_model, fit_model

SHAP_SAMPLE = 2000


def _report(out: Path, *, spec: ModelSpec, model: RiskModel, table: Table, rows: np.ndarray, ev: dict,
            version: str | None, run_id: str | None, split: dict, trained_on: tuple, calibration: str,
            fingerprint: dict) -> Path:
    test = table.frame.iloc[rows]
    sample = test.sample(min(SHAP_SAMPLE, len(test)), random_state=1)
    if spec.task == "readmission":
        baseline_scores = {"lace": test["lace"].to_numpy(), "hospital": test["hospital_score"].to_numpy()}
    else:
        baseline_scores = {"prior_year_admissions": test["n_inpatient_365d"].to_numpy()}
    card = model_card(spec=spec, version=version, run_id=run_id, ev=ev, cohort=table.cohort.to_dict(), split=split,
                      lineage={"code_version": code_version(), "data_sha256": fingerprint["sha256"],
                               "data_rows": fingerprint["rows"], "data_dir": str(table.data_dir)},
                      calibration=calibration, trained_on=trained_on, tested_on=ev["period"])
    return write_report(out, card, ev, model.importance(), model.contributions(sample), model.prepare(sample),
                        baseline_scores)


def train(model_name: str, data: Path, reports: Path = Path("reports"), tracking_uri: str | None = None,
          spec: ModelSpec | None = None) -> dict:
    """Build features, split, tune, fit, calibrate, evaluate, log, register as challenger."""
    uri = registry.configure(tracking_uri)
    spec = spec or load_spec(model_name)
    seconds = {}
    t0 = time.perf_counter()
    table = build_table(data, spec)
    seconds["features"] = time.perf_counter() - t0
    trained = fit_model(table, spec)
    seconds.update(trained.seconds)
    t0 = time.perf_counter()
    split = trained.split
    ev = evaluate_model(trained.model, table, split.test, spec)
    valid = evaluate_model(trained.model, table, split.valid, spec, n_boot=0)["metrics"]
    seconds["evaluation"] = time.perf_counter() - t0
    fingerprint = data_fingerprint(data)
    train_rows = table.frame.iloc[split.train]
    trained_on = (train_rows["as_of"].min(), train_rows["as_of"].max())
    m = ev["metrics"]
    metrics = {**{f"test_{k}": v for k, v in m.items() if isinstance(v, float)},
               **{f"valid_{k}": v for k, v in valid.items() if k in ("auroc", "auprc", "brier", "ici")},
               **{f"baseline_{k}_auroc": v for k, v in ev["baselines"].items()},
               **{f"test_top{int(round(100 * t['fraction']))}_precision": t["precision"] for t in m["top_k"]},
               **{f"seconds_{k}": v for k, v in seconds.items()},
               **{f"n_{k}": float(v) for k, v in split.sizes().items()}}
    params = {**trained.model.params, "best_iteration": trained.model.best_iteration_,
              "calibration": trained.model.calibrator_.method, "tuning_trials": trained.tuning.get("trials", 0)}
    t0 = time.perf_counter()
    logged = registry.log_and_register(
        model_name=spec.name, risk_model=trained.model, spec=spec.model_dump(mode="json"),
        catalog=[asdict(i) for i in feature_set(spec).infos], example=table.frame.iloc[split.test],
        params=params, metrics=metrics, fingerprint=fingerprint,
        tags={"data_dir": str(Path(data).resolve()), "trained_from": str(trained_on[0]),
              "trained_to": str(trained_on[1]), "split_cut": str(split.cut)})
    seconds["mlflow"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = reports / spec.name / f"v{logged.version}"
    _report(out, spec=spec, model=trained.model, table=table, rows=split.test, ev=ev, version=logged.version,
            run_id=logged.run_id, split=split.sizes(), trained_on=trained_on,
            calibration=trained.model.calibrator_.method, fingerprint=fingerprint)
    seconds["report"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    registry.log_artifacts(logged.run_id, out, "evaluation")
    seconds["mlflow"] += time.perf_counter() - t0
    return {"model": spec.name, "registered_model": logged.name, "version": logged.version, "run_id": logged.run_id,
            "alias": "challenger", "report": str(out / "report.html"), "model_card": str(out / "model_card.md"),
            "test": {k: m[k] for k in ("auroc", "auroc_ci_low", "auroc_ci_high", "auprc", "brier", "ici", "e90",
                                       "calibration_slope", "calibration_intercept")},
            "baselines": ev["baselines"], "split": split.sizes(), "seconds": seconds,
            "tracking_uri": uri}


def _test_rows(table: Table, spec: ModelSpec) -> np.ndarray:
    from umrisk.training.split import time_member_split

    return time_member_split(table.frame, spec.model.split).test


def evaluate(model_name: str, data: Path, out: Path, version: str | None = None, alias: str | None = None,
             tracking_uri: str | None = None, spec: ModelSpec | None = None) -> dict:
    """Evaluate a registered version on the test set of ``data``; write the report and log it to the run."""
    registry.configure(tracking_uri)
    spec = spec or load_spec(model_name)
    wrapped, mv = registry.load(spec.name, version, alias)
    table = build_table(data, spec)
    rows = _test_rows(table, spec)
    ev = evaluate_model(wrapped.risk_model, table, rows, spec)
    fingerprint = data_fingerprint(data)
    tags = mv.tags or {}
    trained_on = (tags.get("trained_from", "?"), tags.get("trained_to", "?"))
    path = _report(out, spec=spec, model=wrapped.risk_model, table=table, rows=rows, ev=ev, version=mv.version,
                   run_id=mv.run_id, split={"train": 0, "valid": 0, "calib": 0, "test": len(rows)},
                   trained_on=trained_on, calibration=wrapped.risk_model.calibrator_.method, fingerprint=fingerprint)
    registry.log_artifacts(mv.run_id, out, f"evaluation-{pd.Timestamp.now(tz='UTC'):%Y%m%dT%H%M%S}")
    m = ev["metrics"]
    return {"model": spec.name, "version": str(mv.version), "report": str(path),
            "test": {k: m[k] for k in ("auroc", "auroc_ci_low", "auroc_ci_high", "auprc", "brier", "ici")},
            "baselines": ev["baselines"]}


def gates(spec: ModelSpec, challenger: dict, champion: dict | None) -> list[dict]:
    """Each promotion gate with the values it compared and whether it held."""
    g = spec.model.gates
    m = challenger["metrics"]
    out = [
        {"gate": "AUROC at least the minimum", "value": m["auroc"], "limit": g.min_auroc,
         "ok": m["auroc"] >= g.min_auroc},
        {"gate": "ICI at most the maximum", "value": m["ici"], "limit": g.max_ici, "ok": m["ici"] <= g.max_ici},
        {"gate": "calibration slope within bounds", "value": m["calibration_slope"],
         "limit": list(g.calibration_slope),
         "ok": g.calibration_slope[0] <= m["calibration_slope"] <= g.calibration_slope[1]},
    ]
    if champion is not None:
        c = champion["metrics"]
        out.append({"gate": "AUROC not lower than the champion's beyond the margin", "value": m["auroc"],
                    "limit": c["auroc"] - g.max_auroc_drop, "ok": m["auroc"] >= c["auroc"] - g.max_auroc_drop})
        a = challenger["subgroups"].set_index(["group", "level"])["auroc"]
        b = champion["subgroups"].set_index(["group", "level"])["auroc"]
        both = pd.concat([a.rename("challenger"), b.rename("champion")], axis=1).dropna()
        for (group, level), r in both.iterrows():
            out.append({"gate": f"subgroup {group} = {level}: AUROC not worse beyond the margin",
                        "value": r["challenger"], "limit": r["champion"] - g.max_subgroup_auroc_drop,
                        "ok": r["challenger"] >= r["champion"] - g.max_subgroup_auroc_drop})
    for row in out:
        row["ok"] = bool(row["ok"])
    return out


def promote(model_name: str, data: Path | None = None, force: bool = False, reason: str | None = None,
            tracking_uri: str | None = None, spec: ModelSpec | None = None) -> dict:
    """Compare challenger and champion on the same current test set; move ``champion`` if the gates hold."""
    registry.configure(tracking_uri)
    spec = spec or load_spec(model_name)
    challenger, ch_mv = registry.load(spec.name, alias="challenger")
    try:
        champion, ca_mv = registry.load(spec.name, alias="champion")
    except Exception:  # noqa: BLE001 - MLflow raises its own error when the alias is not set
        champion, ca_mv = None, None
    data = Path(data or (ch_mv.tags or {}).get("data_dir", ""))
    if not data.is_dir():
        raise FileNotFoundError(f"no store to evaluate on: pass --data (the challenger names {data})")
    table = build_table(data, spec)
    rows = _test_rows(table, spec)
    ev_ch = evaluate_model(challenger.risk_model, table, rows, spec, n_boot=200)
    same = ca_mv is not None and str(ca_mv.version) == str(ch_mv.version)
    ev_ca = None if champion is None or same else evaluate_model(champion.risk_model, table, rows, spec, n_boot=200)
    checks = gates(spec, ev_ch, ev_ca)
    passed = all(c["ok"] for c in checks)
    if force and not reason:
        raise ValueError("--force needs --reason: the reason is recorded on the version")
    promoted = passed or force
    if promoted:
        registry.set_alias(spec.name, "champion", ch_mv.version,
                           reason=(f"forced: {reason}" if force and not passed else reason or "gates passed"))
    before = str(ca_mv.version) if ca_mv else None
    return {"model": spec.name, "challenger": str(ch_mv.version), "champion_before": before,
            "champion_after": str(ch_mv.version) if promoted else before,
            "promoted": promoted, "forced": bool(force and not passed), "gates": checks,
            "challenger_auroc": ev_ch["metrics"]["auroc"],
            "champion_auroc": ev_ca["metrics"]["auroc"] if ev_ca else None}
