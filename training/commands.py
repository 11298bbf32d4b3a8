"""What ``umrisk train``, ``evaluate`` and ``promote`` do, as functions the CLI and tests call.

The three share one feature table per store and spec (``feature_cache.feature_table``), and evaluate or
promote a registered version with the spec stored with it, not today's YAML.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from umrisk.features.build import feature_set
from umrisk.features.spec import ModelSpec, load_spec
from umrisk.features.tasks import task_for
from umrisk.training import registry
from umrisk.training.feature_cache import feature_table
from umrisk.training.gates import absolute_gates, relative_gates
from umrisk.training.lineage import data_fingerprint
from umrisk.training.pipeline import Fitted, cv_metrics, register_and_report, split_of_run, write_card
from umrisk.training.report import about_spec
from umrisk.training.split import time_member_split
from umrisk.training.train import Table, evaluate_model, fit_model


def require_store(data: Path | str | None) -> Path:
    """The store folder, or ``FileNotFoundError`` naming it."""
    if data is None or not Path(data).is_dir():
        raise FileNotFoundError(f"{data}: no such store folder")
    return Path(data)


def synthetic(data: Path) -> bool:
    """A generated store (it carries the generator's ground truth in ``truth/``)."""
    return (Path(data) / "truth").is_dir()


def baseline_scores(table: Table, rows: np.ndarray, spec: ModelSpec) -> dict[str, np.ndarray]:
    """The task's clinical baseline scores on the evaluated rows (for the ROC plot)."""
    return task_for(spec).baselines(spec, table.frame.iloc[rows])


def held_out_rows(table: Table, spec: ModelSpec) -> np.ndarray:
    return time_member_split(table.frame, spec.model.split).test


def train(model_name: str, data: Path, reports: Path = Path("reports"), tracking_uri: str | None = None,
          spec: ModelSpec | None = None, client=None, distributed: bool | None = None) -> dict:
    """Build (or reuse) the feature table, split, tune, fit, calibrate, evaluate, log, register as challenger.
    With a Dask ``client`` the table is built partition by partition on its cluster (the same table).

    ``distributed``: fit the booster on the cluster with ``lightgbm.dask`` (True; needs ``client``), in one
    process (False), or (None) on the cluster when there is one and the training points number more than
    ``distributed_fit.DISTRIBUTED_FROM_ROWS``; rounds and calibration then come from cross-validation on a
    member sample, recorded in the run's ``rounds_from`` tag."""
    registry.configure(tracking_uri)
    spec = spec or load_spec(model_name)
    data = require_store(data)
    seconds = {}
    t0 = time.perf_counter()
    fingerprint = data_fingerprint(data)
    table, cached = feature_table(data, spec, fingerprint, client)
    seconds["features"] = time.perf_counter() - t0
    # distributed fit (issue 13, training at scale): lightgbm.dask on the cluster past one machine's limit
    from umrisk.training import distributed_fit

    on_cluster = distributed_fit.goes_distributed(table, spec, client, distributed)
    trained = distributed_fit.fit_model_distributed(table, spec, client) if on_cluster else fit_model(table, spec)
    fit_tags = ({"fit": "lightgbm.dask", distributed_fit.ROUNDS_FROM: trained.tuning[distributed_fit.ROUNDS_FROM]}
                if on_cluster else {})
    seconds.update(trained.seconds)
    t0 = time.perf_counter()
    split = trained.split
    ev = evaluate_model(trained.model, table, split.test, spec)
    # a validation fold when the split has one; cross-validation figures when the model reports them
    valid = evaluate_model(trained.model, table, split.valid, spec, n_boot=0)["metrics"] if len(split.valid) else {}
    seconds["evaluation"] = time.perf_counter() - t0
    train_rows = table.frame.iloc[split.train]
    fitted = Fitted(trained.model, ev, valid, split.sizes(), (train_rows["as_of"].min(), train_rows["as_of"].max()),
                    table.frame.iloc[split.test], baseline_scores(table, split.test, spec), trained.tuning, seconds,
                    cv_metrics(trained.model))
    result = register_and_report(
        fitted, about={**about_spec(spec), "synthetic": synthetic(data)}, spec=spec.model_dump(mode="json"),
        catalog=[asdict(i) for i in feature_set(spec).infos], fingerprint=fingerprint,
        tags={"data_dir": str(data.resolve()), "split_cut": str(split.cut), **fit_tags}, cohort=table.cohort.to_dict(),
        reports=reports, data_label=str(data.resolve()))
    return {**result, "features_cached": cached, "distributed_fit": on_cluster}


def _stored_or(spec: ModelSpec | None, wrapped: registry.UmriskModel) -> ModelSpec:
    return spec if spec is not None else registry.stored_spec(wrapped)


def evaluate(model_name: str, data: Path, out: Path, version: str | None = None, alias: str | None = None,
             tracking_uri: str | None = None, spec: ModelSpec | None = None) -> dict:
    """Evaluate a registered version on the test set of ``data``; write the report and log it to the run.

    The table is built with the spec registered with the version (``spec`` overrides it); the model card
    shows the training split recorded on the version's run."""
    registry.configure(tracking_uri)
    data = require_store(data)
    wrapped, mv = registry.load(model_name, version, alias)
    spec = _stored_or(spec, wrapped)
    fingerprint = data_fingerprint(data)
    table, cached = feature_table(data, spec, fingerprint)
    rows = held_out_rows(table, spec)
    ev = evaluate_model(wrapped.risk_model, table, rows, spec)
    tags = mv.tags or {}
    trained_on = (tags.get("trained_from", "?"), tags.get("trained_to", "?"))
    split = {**split_of_run(mv.run_id), "test": len(rows)}
    about = {**about_spec(spec), "synthetic": synthetic(data)}
    path = write_card(out, about=about, model=wrapped.risk_model, ev=ev, test_frame=table.frame.iloc[rows],
                      baseline_scores=baseline_scores(table, rows, spec), version=str(mv.version), run_id=mv.run_id,
                      split=split, cohort=table.cohort.to_dict(),
                      lineage={"code_version": tags.get("code_version", "?"), "data_sha256": fingerprint["sha256"],
                               "data_rows": fingerprint["rows"], "data": str(data.resolve()),
                               "trained_on_data_sha256": tags.get("data_sha256", "?")},
                      trained_on=trained_on, gates=spec.model.gates)
    registry.log_artifacts(mv.run_id, out, f"evaluation-{pd.Timestamp.now(tz='UTC'):%Y%m%dT%H%M%S}")
    m = ev["metrics"]
    return {"model": spec.name, "version": str(mv.version), "report": str(path), "features_cached": cached,
            "test": {k: m[k] for k in ("auroc", "auroc_ci_low", "auroc_ci_high", "auprc", "brier", "ici")},
            "baselines": ev["baselines"], "leads": ev.get("leads", {}), "split": split}


def gates(spec: ModelSpec, challenger: dict, champion: dict | None) -> list[dict]:
    """Each promotion gate with the values it compared and whether it held (``training.gates``)."""
    g = spec.model.gates
    out = absolute_gates(g, challenger["metrics"])
    if champion is not None:
        out += relative_gates(g, challenger, champion)
    return out


def gate_lines(result: dict) -> list[str]:
    """One line per gate of a ``promote`` result, values and limits to 3 decimals."""

    def fmt(x) -> str:
        return "-".join(f"{v:.3f}" for v in x) if isinstance(x, list | tuple) else f"{x:.3f}"

    return [f"[{'pass' if g['ok'] else 'FAIL'}] {g['gate']}: {fmt(g['value'])} (limit {fmt(g['limit'])})"
            for g in result["gates"]]


def promote(model_name: str, data: Path | None = None, force: bool = False, reason: str | None = None,
            tracking_uri: str | None = None, spec: ModelSpec | None = None) -> dict:
    """Compare challenger and champion on the same current test set; move ``champion`` if the gates hold.

    Both are evaluated on features built with the challenger's registered spec (``spec`` overrides it) and its
    gates. A champion that can no longer be loaded (no such alias, or an artifact that fails its digest) is
    compared on the absolute gates only, and the result says why."""
    if force and not reason:
        raise ValueError("--force needs --reason: the reason is recorded on the version")
    registry.configure(tracking_uri)
    challenger, ch_mv = registry.load(model_name, alias="challenger")
    spec = _stored_or(spec, challenger)
    champion, ca_mv, champion_problem = None, None, None
    try:
        champion, ca_mv = registry.load(model_name, alias="champion")
    except registry.NoSuchVersion:
        pass
    except registry.RegistryError as err:  # the champion cannot be trusted: compare on absolute gates only
        champion_problem = str(err)
    before = str(ca_mv.version) if ca_mv else None
    out = {"model": spec.name, "challenger": str(ch_mv.version), "champion_before": before,
           "champion_problem": champion_problem}
    if ca_mv is not None and str(ca_mv.version) == str(ch_mv.version):
        return {**out, "champion_after": before, "already_champion": True, "promoted": False, "forced": False,
                "gates": [], "challenger_auroc": None, "champion_auroc": None}
    data = require_store(data or (ch_mv.tags or {}).get("data_dir"))
    fingerprint = data_fingerprint(data)
    table, _ = feature_table(data, spec, fingerprint)
    rows = held_out_rows(table, spec)
    ev_ch = evaluate_model(challenger.risk_model, table, rows, spec, n_boot=200)
    ev_ca = None
    if champion is not None:
        ca_table, _ = feature_table(data, registry.stored_spec(champion), fingerprint)
        if len(ca_table.frame) == len(table.frame):  # the same points (the cohort and label sections agree)
            ev_ca = evaluate_model(champion.risk_model, ca_table, rows, spec, n_boot=200)
        else:
            champion_problem = (f"champion version {before} was trained on other prediction points: compared on "
                                "absolute gates only")
            out["champion_problem"] = champion_problem
    checks = gates(spec, ev_ch, ev_ca)
    passed = all(c["ok"] for c in checks)
    promoted = passed or force
    if promoted:
        registry.set_alias(spec.name, "champion", ch_mv.version,
                           reason=(f"forced: {reason}" if force and not passed else reason or "gates passed"))
    return {**out, "champion_after": str(ch_mv.version) if promoted else before, "already_champion": False,
            "promoted": promoted, "forced": bool(force and not passed), "gates": checks,
            "challenger_auroc": ev_ch["metrics"]["auroc"],
            "champion_auroc": ev_ca["metrics"]["auroc"] if ev_ca else None}


# ---------------------------------------------------------------------------- tables (train-table models)
def _load_given_or_current(model_name: str, version: str | None, alias: str | None):
    """The version given (by number or alias), else the champion, else the challenger."""
    if version is not None or alias is not None:
        return registry.load(model_name, version, alias)
    try:
        return registry.load(model_name, alias="champion")
    except registry.NoSuchVersion:
        return registry.load(model_name, alias="challenger")


def _table_model(model_name: str, version: str | None, alias: str | None):
    """A registered ``train-table`` version with its schema: by version, by alias, else the champion, else the
    challenger."""
    from umrisk.training.table import TableError, TableSchema

    wrapped, mv = _load_given_or_current(model_name, version, alias)
    spec = wrapped.spec
    if spec.get("task") != "table" or "schema" not in spec:
        raise TableError(f"umrisk-{model_name} version {mv.version} was not trained by train-table with a stored "
                         "schema: score stores with umrisk evaluate, or retrain it with umrisk train-table")
    return wrapped, mv, TableSchema.from_dict(spec["schema"])


def evaluate_table(model_name: str, table: Path, label: str | None = None, positive: str | None = None,
                   version: str | None = None, alias: str | None = None, out: Path | None = None,
                   tracking_uri: str | None = None) -> dict:
    """External validation: score a table the model has never seen with a registered ``train-table`` version
    (typed with the schema registered with it), and write the same report and model card."""
    from umrisk.features.spec import ModelTraining
    from umrisk.training.lineage import hash_file
    from umrisk.training.pipeline import evaluation
    from umrisk.training.table import (
        TableError,
        about_table,
        clean,
        encode,
        label_values,
        read_any,
        subgroup_columns,
        table_baselines,
    )

    registry.configure(tracking_uri)
    wrapped, mv, schema = _table_model(model_name, version, alias)
    settings = ModelTraining.model_validate(wrapped.spec["model"])
    label = label or schema.label
    positive = positive if positive is not None else schema.positive
    frame = clean(read_any(table))
    y = label_values(frame, label, positive)
    if not 0 < y.sum() < len(y):
        raise TableError(f"label column {label!r} of {table}: every row has the same outcome, nothing to evaluate")
    X = encode(frame, schema)
    model = wrapped.risk_model
    ev = evaluation(y, model.predict_proba(X), groups=subgroup_columns(X, schema), capacity=settings.review_capacity,
                    min_subgroup_size=settings.gates.min_subgroup_size, baseline_scores=table_baselines(X, schema),
                    period=("not given", "not given"))
    out = out or Path("reports") / model_name / f"v{mv.version}-{table.stem}"
    tags = mv.tags or {}
    sha = hash_file(table).hexdigest()
    about = about_table(model_name, schema, Path(str(wrapped.spec.get("source", "?"))).name)
    about["description"] += f"; evaluated on {table.name}, a table it was not trained on"
    split = {**split_of_run(mv.run_id), "test": len(y)}
    path = write_card(out, about=about, model=model, ev=ev, test_frame=X, baseline_scores={}, version=str(mv.version),
                      run_id=mv.run_id, split=split,
                      cohort={"task": "table", "steps": [{"step": f"rows of {table.name}", "count": len(y)}],
                              "notes": [], "label_rate": float(y.mean())},
                      lineage={"code_version": tags.get("code_version", "?"), "data_sha256": sha,
                               "data_rows": {"table": len(y)}, "data": str(table.resolve()),
                               "trained_on_data_sha256": tags.get("data_sha256", "?")},
                      trained_on=(tags.get("trained_from", "?"), tags.get("trained_to", "?")),
                      gates=settings.gates)
    registry.log_artifacts(mv.run_id, out, f"external-{pd.Timestamp.now(tz='UTC'):%Y%m%dT%H%M%S}")
    m = ev["metrics"]
    keys = ("n", "events", "prevalence", "auroc", "auroc_ci_low", "auroc_ci_high", "auprc", "brier", "ici", "e90",
            "calibration_slope", "calibration_intercept", "oe_ratio")
    return {"model": model_name, "version": str(mv.version), "table": str(table), "report": str(path),
            "report_dir": str(out), **{k: m[k] for k in keys if k in m}, "baselines": ev["baselines"],
            "leads": ev["leads"]}


REASONS = 3


def score_table(model_name: str, table: Path, out: Path, version: str | None = None, alias: str | None = None,
                tracking_uri: str | None = None) -> dict:
    """The calibrated probability, tier and top reasons of every row of a table (CSV, or Parquet by suffix).

    A reason is a feature that raised this row's risk (positive TreeSHAP contribution) and has a value."""
    from umrisk.training.table import OTHER, clean, encode, read_any

    registry.configure(tracking_uri)
    wrapped, mv, schema = _table_model(model_name, version, alias)
    frame = clean(read_any(table))
    X = encode(frame, schema)
    p, contrib = wrapped.risk_model.predict_explained(X)
    c = contrib[schema.features].to_numpy()
    present = (X.notna() & (X.astype(str) != OTHER)).to_numpy()
    c = np.where(present & (c > 0), c, -np.inf)
    top = np.argsort(-c, axis=1, kind="stable")[:, :REASONS]
    scores = pd.DataFrame({"row": np.arange(1, len(X) + 1)})
    if schema.group and schema.group in frame.columns:
        scores[schema.group] = frame[schema.group].to_numpy()
    scores["probability"] = p
    scores["tier"] = wrapped.tier(p)
    names = np.asarray(schema.features, dtype=object)
    values = X.astype("object").to_numpy()
    for k in range(REASONS):
        j = top[:, k]
        ok = np.isfinite(c[np.arange(len(X)), j])
        text = [f"{names[jj]} = {values[i, jj]}" if good else "" for i, (jj, good) in enumerate(zip(j, ok,
                                                                                                    strict=True))]
        scores[f"reason_{k + 1}"] = text
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() in (".parquet", ".pq"):
        scores.to_parquet(out, index=False)
    else:
        scores.to_csv(out, index=False)
    return {"model": model_name, "version": str(mv.version), "rows": len(scores), "out": str(out),
            "tiers": scores["tier"].value_counts().to_dict()}


def recalibrate(model_name: str, data: Path, version: str | None = None, alias: str | None = None,
                method: str = "logistic", reports: Path = Path("reports"), tracking_uri: str | None = None) -> dict:
    """Refit only the calibration of a registered version on the store's latest period (the spec's test
    period) and register the result as a new version with the alias challenger (``training.recalibrate``).

    The version is the one given, else the champion, else the challenger; its trees are not refitted."""
    from umrisk.training.metrics import evaluate as metrics_of
    from umrisk.training.recalibrate import recalibrated

    registry.configure(tracking_uri)
    data = require_store(data)
    wrapped, mv = _load_given_or_current(model_name, version, alias)
    spec = registry.stored_spec(wrapped)
    seconds = {}
    t0 = time.perf_counter()
    fingerprint = data_fingerprint(data)
    table, _ = feature_table(data, spec, fingerprint)
    seconds["features"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    rows = held_out_rows(table, spec)
    frame = table.frame.iloc[rows]
    y = frame["label"].to_numpy()
    if not 0 < y.sum() < len(y):
        raise ValueError(f"the latest period of {data} has {int(y.sum())} events in {len(y)} points: nothing to "
                         "recalibrate on")
    p = wrapped.risk_model.predict_proba(frame)
    before = metrics_of(y, p, n_boot=0)
    model = recalibrated(wrapped.risk_model, p, y, method)  # type: ignore[arg-type]
    seconds["fit"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ev = evaluate_model(model, table, rows, spec)
    seconds["evaluation"] = time.perf_counter() - t0
    tags = mv.tags or {}
    note = (f"Recalibrated from version {mv.version} on the latest period of the store ({len(y):,} points, "
            f"{int(y.sum()):,} events): {model.calibrator_.method}. Before: O/E {before['oe_ratio']:.2f}, "
            f"calibration slope {before['calibration_slope']:.2f}, ICI {before['ici']:.4f}. Evaluated on the same "
            "points the recalibration was fitted on (one or two parameters: little optimism).")
    fitted = Fitted(model, ev, {}, {"test": len(rows)}, (tags.get("trained_from", "?"), tags.get("trained_to", "?")),
                    frame, baseline_scores(table, rows, spec), {"trials": 0}, seconds, {})
    about = {**about_spec(spec), "synthetic": synthetic(data), "notes": [note]}
    result = register_and_report(
        fitted, about=about, spec=wrapped.spec, catalog=wrapped.catalog, fingerprint=fingerprint,
        tags={"data_dir": str(data.resolve()), "recalibrated_from": str(mv.version), "recalibration": method},
        cohort=table.cohort.to_dict(), reports=reports, data_label=str(data.resolve()))
    return {**result, "recalibrated_from": str(mv.version), "method": method,
            "before": {k: before[k] for k in ("oe_ratio", "calibration_slope", "calibration_intercept", "ici")}}
