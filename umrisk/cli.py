"""The ``umrisk`` command: one entry point with subcommands."""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="umrisk: admission and readmission risk for utilization management.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
data_app = typer.Typer(help="The history store: generate, import, validate.", no_args_is_help=True)
app.add_typer(data_app, name="data")
features_app = typer.Typer(help="Cohorts, labels and point-in-time features.", no_args_is_help=True)
app.add_typer(features_app, name="features")
token_app = typer.Typer(help="Bearer tokens for the service.", no_args_is_help=True)
app.add_typer(token_app, name="token")
audit_app = typer.Typer(help="The audit log of served scores.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
review_app = typer.Typer(help="The review case store: load a backlog, CMS-0057-F metrics.", no_args_is_help=True)
app.add_typer(review_app, name="review")
db_app = typer.Typer(help="The case store's database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
user_app = typer.Typer(help="People who sign in to the pages (/ui) with a password.", no_args_is_help=True)
app.add_typer(user_app, name="user")


def _quiet_libraries() -> None:
    """Keep library warnings (pandas FutureWarnings, MLflow, LightGBM, scikit-learn) and MLflow's log lines
    out of normal output; umrisk's own warnings still show."""
    warnings.simplefilter("ignore")
    warnings.filterwarnings("default", module=r"umrisk(\.|$)")
    for name in ("mlflow", "alembic", "lightgbm", "optuna", "urllib3", "distributed"):
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")  # MLflow sets its own level when it is imported


@app.callback()
def main(
    show_warnings: Annotated[bool, typer.Option("--warnings", help="Show library warnings and MLflow log lines.")]
    = False,
) -> None:
    """umrisk: admission and readmission risk for utilization management."""
    if not show_warnings:
        _quiet_libraries()


@contextlib.contextmanager
def _one_line_errors() -> Iterator[None]:
    """A missing store, model spec, registered version or verified artifact: one line on stderr, exit 2."""
    from umrisk.features.spec import SpecError
    from umrisk.training.registry import RegistryError

    try:
        yield
    except (FileNotFoundError, RegistryError, SpecError) as err:
        _fail(str(err))


def _generate(members: int, years: int, seed: int, out: Path, workers: int, scenario: str | None = None,
              partitions: int | None = None) -> dict:
    from tqdm import tqdm

    from umrisk.demo import generate_store
    from umrisk.features.synthetic.scenarios import generate_scenario_store

    with tqdm(total=members, unit="members", desc="generate", dynamic_ncols=True) as bar:
        if scenario:
            try:
                summary, text = generate_scenario_store(members, years, seed, out, scenario, workers,
                                                        progress=bar.update, partitions=partitions)
            except ValueError as err:
                _fail(str(err))
        else:
            summary, text = generate_store(members, years, seed, out, workers, progress=bar.update,
                                           partitions=partitions)
    typer.echo(text)
    typer.echo(f"Wrote {out} in {summary['seconds']:.1f} s (summary in {out / 'generation_summary.json'}).")
    return summary


@data_app.command("generate")
def data_generate(
    members: Annotated[int, typer.Option(min=1, help="Number of members.")] = 100_000,
    years: Annotated[int, typer.Option(min=1, max=10, help="Years simulated, ending 2025-12-31.")] = 3,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same store.")] = 1,
    out: Annotated[Path, typer.Option(help="Folder to write the store and truth/ into.")] = Path("data/synthetic"),
    workers: Annotated[int, typer.Option(min=1, help="Processes (blocks are independent).")] = 1,
    scenario: Annotated[str | None, typer.Option(help="A known drift from six months before the end: coding_change, "
                                                      "new_population or care_program (truth/scenario.json).")] = None,
    partitions: Annotated[int | None, typer.Option(min=1, help="Member partitions of the store (default: one per "
                                                               "50,000 members).")] = None,
) -> None:
    """Generate a synthetic population with known risks, and print its realism summary."""
    _generate(members, years, seed, out, workers, scenario, partitions)


@data_app.command("repartition")
def data_repartition(
    src: Annotated[Path, typer.Argument(help="Folder of the store to convert (left unchanged).")],
    out: Annotated[Path, typer.Option(help="New folder for the partitioned store (must not exist or be empty).")],
    partitions: Annotated[int | None, typer.Option(min=1, help="Member partitions (default: one per 50,000 "
                                                               "members).")] = None,
) -> None:
    """Write a store (e.g. one in the old layout) into a new folder partitioned by member, table by table."""
    from umrisk.features.partition import repartition

    try:
        manifest = repartition(src, out, partitions,
                               progress=lambda table, rows: typer.echo(f"  {table:<16}{rows:>14,} rows"))
    except (FileNotFoundError, FileExistsError, ValueError) as err:
        _fail(str(err))
    typer.echo(f"Wrote {out} in {manifest.partitions} member partitions ({manifest.hash} of {manifest.key}).")


@data_app.command("validate")
def data_validate(
    dataset: Annotated[Path, typer.Argument(help="Folder of the store.")],
    problems_out: Annotated[Path | None, typer.Option(help="Write every problem to this CSV.")] = None,
) -> None:
    """Check every table of a store; exit status 1 when there is any problem."""
    from umrisk.features.validate import validate_dataset

    report = validate_dataset(dataset)
    typer.echo(report.render())
    if problems_out is not None:
        report.to_frame().to_csv(problems_out, index=False)
        typer.echo(f"All problems written to {problems_out}")
    raise typer.Exit(0 if report.ok else 1)


@data_app.command("import")
def data_import(
    kind: Annotated[str, typer.Argument(help="Source format: synthea, omop or cms.")],
    src: Annotated[Path, typer.Argument(help="Folder of the source files.")],
    out: Annotated[Path, typer.Option(help="Folder to write the store into.")],
) -> None:
    """Import a Synthea CSV export, an OMOP CDM v5.4 extract or CMS DE-SynPUF claims into a store."""
    from umrisk.features.importers import run_import

    if kind not in ("synthea", "omop", "cms"):
        typer.echo(f"Unknown source format {kind!r}: use synthea, omop or cms.", err=True)
        raise typer.Exit(2)
    report = run_import(kind, src, out)
    typer.echo(report.render())
    raise typer.Exit(0 if report.ok else 1)


@features_app.command("build")
def features_build(
    models: Annotated[list[str], typer.Argument(help="One or more model specs: names in models/ or paths to "
                                                     "YAML files.")],
    data: Annotated[Path, typer.Option(help="Folder of the history store.")],
    out: Annotated[Path | None, typer.Option(help="A Parquet file (one model) or a folder for MODEL.parquet "
                                                  "files (default: the store's features folder).")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Build partition by partition on a local Dask "
                                                            "cluster of N worker processes.")] = None,
    scheduler: Annotated[str | None, typer.Option(help="Build partition by partition on an existing Dask "
                                                       "cluster (its scheduler address, tcp://HOST:8786).")] = None,
) -> None:
    """Build each model's cohort, labels and features once (cached in the store for training); write them as
    Parquet with a cohort report. With --workers or --scheduler, on Dask (the same table)."""
    from umrisk.training.feature_export import export_path
    from umrisk.training.lineage import data_fingerprint

    specs = [_spec_or_exit(m) for m in models]
    if not data.is_dir():
        _fail(f"{data}: no such store folder")
    if workers and scheduler:
        _fail("give --workers or --scheduler, not both")
    try:
        paths = [export_path(out, data, s.name, len(specs) == 1) for s in specs]
    except ValueError as err:
        _fail(str(err))
    fingerprint = data_fingerprint(data)
    with _dask_client(data, workers, scheduler) as client:
        for spec, path in zip(specs, paths, strict=True):
            _build_features(spec, data, path, fingerprint, client)


@contextlib.contextmanager
def _dask_client(data: Path, workers: int | None, scheduler: str | None) -> Iterator:
    """A Dask client for --workers/--scheduler (None without them); a store not partitioned by member fails."""
    if not (workers or scheduler):
        yield None
        return
    from umrisk.features.distributed import dask_client
    from umrisk.features.partition import partitions

    try:
        partitions(data)
    except ValueError as err:
        _fail(str(err))
    stack = contextlib.ExitStack()
    try:
        client = stack.enter_context(dask_client(workers, scheduler))
    except OSError as err:
        _fail(f"--scheduler {scheduler}: cannot connect ({err})")
    with stack:
        yield client


def _build_features(spec, data: Path, path: Path, fingerprint: dict, client) -> None:
    from tqdm import tqdm

    from umrisk.features.partition import partitions
    from umrisk.training.feature_export import export_features

    total = len(partitions(data)) if client is not None else None
    with tqdm(total=total, unit="partition", desc=spec.name, dynamic_ncols=True, disable=client is None) as bar:
        e = export_features(spec, data, path, fingerprint, client, bar.update)
    typer.echo(e.cohort_text)
    typer.echo(f"Wrote {e.rows:,} points x {e.features} features to {e.path} in {e.seconds:.1f} s "
               f"({'from the cache' if e.cached else 'built'}; cohort report: {e.cohort_report}).")


def _fail(message: str, code: int = 2) -> None:
    typer.echo(message, err=True)
    raise typer.Exit(code)


def _spec_or_exit(model: str):
    from umrisk.features.spec import SpecError, load_spec

    try:
        return load_spec(model)
    except SpecError as err:
        _fail(str(err))


TrackingOpt = Annotated[str | None, typer.Option(help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, "
                                                      "else sqlite:///mlflow.db here).")]


@app.command()
def train(
    model: Annotated[str, typer.Argument(help="Model spec name in models/ or a YAML path.")],
    data: Annotated[Path, typer.Option(help="Folder of the history store.")],
    reports: Annotated[Path, typer.Option(help="Where reports and model cards go.")] = Path("reports"),
    tracking_uri: TrackingOpt = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Build the features on a Dask LocalCluster of N "
                                                            "workers, partition by partition.")] = None,
    scheduler: Annotated[str | None, typer.Option(help="Build the features on an existing Dask cluster "
                                                       "(tcp://HOST:PORT).")] = None,
    distributed: Annotated[bool | None, typer.Option(
        "--distributed/--single-process",
        help="Fit LightGBM on the Dask cluster with lightgbm.dask (needs --workers or --scheduler; parameters, "
             "rounds and calibration by cross-validation on a member sample), or in one process; default: on the "
             "cluster past 1,000,000 training points when there is one.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Build features (or reuse the store's cached table), split by time and member, tune, fit, calibrate,
    evaluate, log to MLflow and register the model as umrisk-MODEL with the alias challenger."""
    from umrisk.training import commands

    _spec_or_exit(model)
    if workers and scheduler:
        _fail("give --workers or --scheduler, not both")
    with _dask_client(data, workers, scheduler) as client, _one_line_errors():
        result = commands.train(model, data, reports, tracking_uri, client=client, distributed=distributed)
    if as_json:
        typer.echo(json.dumps(result, default=str))
        return
    t = result["test"]
    typer.echo(f"Registered {result['registered_model']} version {result['version']} (alias challenger), "
               f"run {result['run_id']}")
    if result.get("distributed_fit"):
        typer.echo("Fitted on the Dask cluster (lightgbm.dask); parameters, rounds and calibration from "
                   "cross-validation on a member sample")
    typer.echo(f"Test AUROC {t['auroc']:.3f} ({t['auroc_ci_low']:.3f}-{t['auroc_ci_high']:.3f}), AUPRC "
               f"{t['auprc']:.3f}, Brier {t['brier']:.4f}, ICI {t['ici']:.4f}, slope {t['calibration_slope']:.2f}")
    typer.echo("Baselines (AUROC): " + ", ".join(f"{k} {v:.3f}" for k, v in result["baselines"].items()))
    typer.echo(f"Report: {result['report']}   Model card: {result['model_card']}")
    typer.echo(f"MLflow UI: .venv/bin/mlflow ui --backend-store-uri {result['tracking_uri']}")


@app.command()
def evaluate(
    model: Annotated[str, typer.Argument(help="Model spec name.")],
    data: Annotated[Path, typer.Option(help="Folder of the history store.")],
    out: Annotated[Path, typer.Option(help="Folder for the report and model card.")],
    version: Annotated[str | None, typer.Option(help="Registered version number.")] = None,
    alias: Annotated[str | None, typer.Option(help="Alias (challenger or champion); default champion.")] = None,
    tracking_uri: TrackingOpt = None,
) -> None:
    """Evaluate a registered version on the store's current test set; write the report and model card."""
    from umrisk.training import commands

    _spec_or_exit(model)
    if version and alias:
        _fail("give --version or --alias, not both")
    with _one_line_errors():
        result = commands.evaluate(model, data, out, version, alias, tracking_uri)
    t = result["test"]
    typer.echo(f"umrisk-{model} version {result['version']}: AUROC {t['auroc']:.3f} ({t['auroc_ci_low']:.3f}-"
               f"{t['auroc_ci_high']:.3f}), ICI {t['ici']:.4f}; baselines " +
               ", ".join(f"{k} {v:.3f}" for k, v in result["baselines"].items()))
    typer.echo(f"Report: {result['report']}")


@app.command()
def promote(
    model: Annotated[str, typer.Argument(help="Model spec name.")],
    data: Annotated[Path | None, typer.Option(help="Store to evaluate on (default: the challenger's).")] = None,
    force: Annotated[bool, typer.Option(help="Promote even if a gate fails (needs --reason).")] = False,
    reason: Annotated[str | None, typer.Option(help="Why; recorded on the version.")] = None,
    tracking_uri: TrackingOpt = None,
) -> None:
    """Move the alias champion to the challenger if the spec's gates hold on the current test set."""
    from umrisk.training import commands

    _spec_or_exit(model)
    if force and not reason:
        _fail("--force needs --reason TEXT (it is recorded on the version)")
    with _one_line_errors():
        r = commands.promote(model, data, force, reason, tracking_uri)
    if r["already_champion"]:
        typer.echo(f"umrisk-{model} version {r['challenger']} is already champion: nothing to promote.")
        return
    if r["champion_problem"]:
        typer.echo(f"  note: {r['champion_problem']}")
    for line in commands.gate_lines(r):
        typer.echo("  " + line)
    if r["promoted"]:
        typer.echo(f"umrisk-{model} version {r['challenger']} is now champion"
                   + (" (forced)" if r["forced"] else "") + ".")
    else:
        typer.echo(f"Gates failed: champion stays version {r['champion_after']}.")
        raise typer.Exit(1)


@app.command()
def recalibrate(
    model: Annotated[str, typer.Argument(help="Model spec name.")],
    data: Annotated[Path, typer.Option(help="Store whose latest period the calibration is refitted on.")],
    version: Annotated[str | None, typer.Option(help="Registered version number.")] = None,
    alias: Annotated[str | None, typer.Option(help="Alias (default: champion, else challenger).")] = None,
    method: Annotated[str, typer.Option(help="logistic (intercept and slope on the logit, the default) or "
                                             "in-the-large (intercept only).")] = "logistic",
    reports: Annotated[Path, typer.Option(help="Where reports and model cards go.")] = Path("reports"),
    tracking_uri: TrackingOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Refit only the calibration of a registered version on the store's latest period and register it as a
    new version with the alias challenger (the trees are not refitted)."""
    from umrisk.training import commands

    _spec_or_exit(model)
    if version and alias:
        _fail("give --version or --alias, not both")
    if method not in ("logistic", "in-the-large"):
        _fail(f"unknown --method {method!r}: use logistic or in-the-large")
    with _one_line_errors():
        try:
            r = commands.recalibrate(model, data, version, alias, method, reports, tracking_uri)
        except ValueError as err:
            _fail(str(err))
    if as_json:
        typer.echo(json.dumps(r, default=str))
        return
    b, t = r["before"], r["test"]
    typer.echo(f"Registered {r['registered_model']} version {r['version']} (alias challenger), recalibrated from "
               f"version {r['recalibrated_from']} ({method})")
    typer.echo(f"Latest period: calibration slope {b['calibration_slope']:.2f} -> {t['calibration_slope']:.2f}, "
               f"intercept {b['calibration_intercept']:+.3f} -> {t['calibration_intercept']:+.3f}, ICI "
               f"{b['ici']:.4f} -> {t['ici']:.4f}; AUROC {t['auroc']:.3f} (unchanged by recalibration)")
    typer.echo(f"Report: {r['report']}")


@app.command()
def monitor(
    model: Annotated[str, typer.Argument(help="Model spec name.")],
    data: Annotated[Path, typer.Option(help="Folder of the history store to watch.")],
    out: Annotated[Path, typer.Option(help="Folder for monitor.json, report.html and monitor.png.")],
    version: Annotated[str | None, typer.Option(help="Registered version number.")] = None,
    alias: Annotated[str | None, typer.Option(help="Alias (default champion).")] = None,
    tracking_uri: TrackingOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object with a months list.")] = False,
) -> None:
    """Each month since the version's training period against its training reference: drift of every feature
    and of the score, and performance once the month's labels have matured; alerts from the spec's monitoring
    thresholds. Exit status 1 while an alert is open. It never promotes."""
    from umrisk.training import monitor as monitoring

    _spec_or_exit(model)
    if version and alias:
        _fail("give --version or --alias, not both")
    with _one_line_errors():
        try:
            r = monitoring.monitor(model, data, out, version, alias, tracking_uri)
        except ValueError as err:
            _fail(str(err))
    if as_json:
        typer.echo(json.dumps(monitoring.brief(r), default=str))
    else:
        typer.echo(f"umrisk-{model} version {r['version']}: trained to {r['trained_to']}, reference "
                   f"{', '.join(r['reference'])}, data to {r['data_end']}")
        for e in r["months"]:
            p = e.get("performance", {})
            perf = (f"AUROC {p['auroc']:.3f} O/E {p['oe_ratio']:.2f} ICI {p['ici']:.3f}" if "auroc" in p
                    else p.get("status", ""))
            typer.echo(f"  {e['month']}  points {e['points']:>7,}  score PSI {e.get('score_psi', float('nan')):.3f}"
                       f"  {perf}  alerts {len(e['alerts'])}")
            for a in e["alerts"][:5]:
                typer.echo(f"      [{a['kind']}, raised {a['raised']}] {a['message']}")
        typer.echo(f"Status: {r['status']} ({len(r['open_alerts'])} open alert(s)); report {r['report']}")
        if r["advice"]:
            typer.echo("Retraining advice: " + r["advice"]["text"])
            for c in r["advice"]["commands"]:
                typer.echo("  " + c)
    if r["open_alerts"]:
        raise typer.Exit(1)


@app.command("train-table")
def train_table(
    table: Annotated[Path, typer.Argument(help="A feature table: CSV (any common delimiter) or Parquet.")],
    label: Annotated[str, typer.Option(help="The outcome column.")],
    positive: Annotated[str | None, typer.Option(help="The label value that is the event (needed when the "
                                                      "label is not yes/no, true/false or 1/0).")] = None,
    group: Annotated[str | None, typer.Option(help="Column of the member or patient id (no group on both "
                                                   "sides of the split).")] = None,
    time: Annotated[str | None, typer.Option(help="Column of the prediction time (later rows test).")] = None,
    order: Annotated[str | None, typer.Option(help="Column that orders a group's rows when there is no time "
                                                   "(an encounter number): adds how many rows came before.")] = None,
    exclude: Annotated[list[str] | None, typer.Option(help="Columns to leave out (repeatable).")] = None,
    name: Annotated[str | None, typer.Option(help="Model name (default: the file name).")] = None,
    reports: Annotated[Path, typer.Option(help="Where reports go.")] = Path("reports"),
    tracking_uri: TrackingOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Train, calibrate, evaluate and register a model on a table you already have."""
    from umrisk.training.table import TableError
    from umrisk.training.table import train_table as run

    try:
        r = run(table, label, name, group, time, exclude, positive, reports, tracking_uri, order=order)
    except TableError as err:
        _fail(str(err))
    if as_json:
        typer.echo(json.dumps(r, default=str))
        return
    for note in r["notes"]:
        typer.echo(f"  note: {note}")
    t = r["test"]
    typer.echo(f"Registered {r['registered_model']} version {r['version']} (alias challenger), run {r['run_id']}")
    typer.echo(f"Test AUROC {t['auroc']:.3f} ({t['auroc_ci_low']:.3f}-{t['auroc_ci_high']:.3f}), AUPRC "
               f"{t['auprc']:.3f}, Brier {t['brier']:.4f}, ICI {t['ici']:.4f}, slope {t['calibration_slope']:.2f}")
    typer.echo(f"Report: {r['report']}   Model card: {r['model_card']}")


@app.command("evaluate-table")
def evaluate_table(
    name: Annotated[str, typer.Argument(help="The model name given to train-table.")],
    table: Annotated[Path, typer.Argument(help="A table the model has not seen: CSV or Parquet.")],
    label: Annotated[str | None, typer.Option(help="The outcome column (default: the training one).")] = None,
    positive: Annotated[str | None, typer.Option(help="The label value that is the event (default: the "
                                                      "training one).")] = None,
    version: Annotated[str | None, typer.Option(help="Registered version number.")] = None,
    alias: Annotated[str | None, typer.Option(help="Alias (default: champion, else challenger).")] = None,
    out: Annotated[Path | None, typer.Option(help="Folder for the report (default: reports/NAME/vN-TABLE).")] = None,
    tracking_uri: TrackingOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Validate a train-table model on another table, typed as at training; write the report and model card."""
    from umrisk.training import commands
    from umrisk.training.table import TableError

    if version and alias:
        _fail("give --version or --alias, not both")
    with _one_line_errors():
        try:
            r = commands.evaluate_table(name, table, label, positive, version, alias, out, tracking_uri)
        except TableError as err:
            _fail(str(err))
    if as_json:
        typer.echo(json.dumps(r, default=str))
        return
    typer.echo(f"umrisk-{name} version {r['version']} on {table} ({r['n']:,} rows, {r['events']:,} events): AUROC "
               f"{r['auroc']:.3f} ({r['auroc_ci_low']:.3f}-{r['auroc_ci_high']:.3f}), AUPRC {r['auprc']:.3f}, Brier "
               f"{r['brier']:.4f}, ICI {r['ici']:.4f}, slope {r['calibration_slope']:.2f}, O/E {r['oe_ratio']:.2f}")
    typer.echo(f"Report: {r['report']}")


@app.command("score-table")
def score_table(
    name: Annotated[str, typer.Argument(help="The model name given to train-table.")],
    table: Annotated[Path, typer.Argument(help="The rows to score: CSV or Parquet.")],
    out: Annotated[Path, typer.Option(help="Scores file: CSV, or Parquet for a .parquet name.")],
    version: Annotated[str | None, typer.Option(help="Registered version number.")] = None,
    alias: Annotated[str | None, typer.Option(help="Alias (default: champion, else challenger).")] = None,
    tracking_uri: TrackingOpt = None,
) -> None:
    """Write the probability, tier and top reasons of every row of a table."""
    from umrisk.training import commands
    from umrisk.training.table import TableError

    if version and alias:
        _fail("give --version or --alias, not both")
    with _one_line_errors():
        try:
            r = commands.score_table(name, table, out, version, alias, tracking_uri)
        except TableError as err:
            _fail(str(err))
    typer.echo(f"Scored {r['rows']:,} rows with umrisk-{name} version {r['version']} into {r['out']} (tiers: "
               + ", ".join(f"{k} {v:,}" for k, v in r["tiers"].items()) + ")")


@token_app.command("create")
def token_create(
    role: Annotated[str, typer.Option(help="nurse_reviewer, physician_reviewer, outreach or admin.")],
    tokens: Annotated[Path, typer.Option(help="The token file the service reads.")] = Path("umrisk-tokens.json"),
    name: Annotated[str, typer.Option(help="The user the token is for: the person the case store records as "
                                           "claiming and deciding (required for reviewer roles).")] = "",
    expires_days: Annotated[float | None, typer.Option(min=0.01, help="Days until the token expires (default: "
                                                                      "never).")] = None,
) -> None:
    """Create a token: printed once, only its SHA-256 hash is stored."""
    from umrisk.serving.auth import LEGACY_ROLES, REVIEWERS, ROLES, TokenFileError, create_token

    role = LEGACY_ROLES.get(role, role)
    if role not in ROLES:
        _fail(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    if role in REVIEWERS and not name.strip():
        _fail(f"a {role} token is for a person: give --name (the user the case store records)")
    try:
        token_id, token = create_token(tokens, role, name, expires_days)
    except TokenFileError as err:
        _fail(str(err))
    typer.echo(token)
    typer.echo(f"(token {token_id}, role {role}, hash stored in {tokens}; this token is not shown again)", err=True)


@token_app.command("list")
def token_list(
    tokens: Annotated[Path, typer.Option(help="The token file the service reads.")] = Path("umrisk-tokens.json"),
) -> None:
    """The tokens in the file: id, role, created, expires, name (never the token or its hash)."""
    from umrisk.serving.auth import TokenFileError, list_tokens

    try:
        listed = list_tokens(tokens)
    except TokenFileError as err:
        _fail(str(err))
    if not listed:
        typer.echo(f"no token in {tokens}")
        return
    typer.echo(f"{'id':<10}{'role':<20}{'created':<34}{'expires':<34}name")
    for t in listed:
        expires = (t["expires"] or "never") + (" (expired)" if t["expired"] else "")
        typer.echo(f"{t['id']:<10}{t['role']:<20}{t['created']:<34}{expires:<34}{t['name']}")


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[str, typer.Argument(metavar="ID", help="The id shown by umrisk token list.")],
    tokens: Annotated[Path, typer.Option(help="The token file the service reads.")] = Path("umrisk-tokens.json"),
) -> None:
    """Remove a token; a running service refuses it from its next request."""
    from umrisk.serving.auth import TokenFileError, revoke_token

    try:
        gone = revoke_token(tokens, token_id)
    except (TokenFileError, KeyError) as err:
        _fail(str(err.args[0]))
    typer.echo(f"revoked token {gone['id']} (role {gone['role']}, {gone['name']})")


AuditKeyOpt = Annotated[Path | None, typer.Option(help="Key of the audit checkpoint (default: <log>.key).")]


@audit_app.command("verify")
def audit_verify(file: Annotated[Path, typer.Argument(help="The audit log (JSON lines).")],
                 key: AuditKeyOpt = None) -> None:
    """Check the hash chain of an audit log and its signed checkpoint: name the first broken entry, a cut
    end, or a rewrite."""
    from umrisk.serving.audit import AuditError, verify

    if not file.exists():
        _fail(f"{file}: no such file")
    try:
        ok, n, message = verify(file, key)
    except AuditError as err:
        _fail(f"BROKEN: {err}", 1)
    typer.echo(message if ok else f"BROKEN after {n} good entries: {message}")
    raise typer.Exit(0 if ok else 1)


@audit_app.command("seal")
def audit_seal(file: Annotated[Path, typer.Argument(help="The audit log (JSON lines).")],
               key: AuditKeyOpt = None) -> None:
    """Sign the log's current end as its checkpoint, after checking its chain: for a log written before
    checkpoints, or entries left uncovered by a crash, once someone has read them."""
    from umrisk.serving.audit import AuditError, seal

    if not file.exists():
        _fail(f"{file}: no such file")
    try:
        n, head = seal(file, key)
    except AuditError as err:
        _fail(str(err), 1)
    typer.echo(f"sealed {file}: {n} entries, head {head[:12]}...")


DatabaseOpt = Annotated[str | None, typer.Option("--database-url", help="The case store (default: "
                                                 "$UMRISK_DATABASE_URL, else sqlite:///<store>/service/cases.db).")]


def _case_store(url: str | None, store: Path | None):
    """The case store (upgraded in place) and its URL as shown; one line and exit 2 when it cannot be opened."""
    from umrisk.serving.cases.db import DatabaseError, shown
    from umrisk.serving.cases.repository import CaseStore

    resolved = _database_url_or_fail(url, store)
    try:
        return CaseStore.open(resolved), shown(resolved)
    except DatabaseError as err:
        _fail(str(err))


@db_app.command("upgrade")
def db_upgrade(
    url: DatabaseOpt = None,
    store: Annotated[Path | None, typer.Option("--store", help="The history store whose service/cases.db is the "
                                                               "default case store.")] = None,
) -> None:
    """Create the case store, or upgrade its schema in place to this version's migrations."""
    from umrisk.serving.cases import db

    from_url = _database_url_or_fail(url, store)
    try:
        before, after = db.upgrade(db.engine_for(from_url))
    except db.DatabaseError as err:
        _fail(str(err))
    where = db.shown(from_url)
    typer.echo(f"{where}: already at revision {after}" if before == after else
               f"{where}: upgraded from {before or 'an empty database'} to revision {after}")


def _database_url_or_fail(url: str | None, store: Path | None) -> str:
    from umrisk.serving.cases.db import DatabaseError, database_url

    try:
        return database_url(url, store)
    except DatabaseError as err:
        _fail(str(err))


@app.command("score-batch")
def score_batch(
    model: Annotated[str, typer.Argument(help="Model spec name (a registered umrisk-MODEL).")],
    data: Annotated[Path, typer.Option(help="Folder of the history store.")],
    as_of: Annotated[str | None, typer.Option("--as-of", help="Scoring date, YYYY-MM-DD (default: the store's "
                                                               "last day, as the service).")] = None,
    version: Annotated[str | None, typer.Option(help="Registered version number.")] = None,
    alias: Annotated[str | None, typer.Option(help="Alias (default: champion).")] = None,
    url: DatabaseOpt = None,
    out: Annotated[Path | None, typer.Option(help="Also write the rows to this Parquet file.")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Score partition by partition on a local Dask "
                                                            "cluster of this many worker processes.")] = None,
    scheduler: Annotated[str | None, typer.Option(help="Score on an existing Dask cluster: its scheduler's "
                                                       "address (tcp://host:8786).")] = None,
    keep: Annotated[int | None, typer.Option(min=1, help="Runs (scoring dates) of the model kept in the case store, "
                                                         "older ones retired and their rows deleted (default: 31, a "
                                                         "month of nightly runs).")] = None,
    tracking_uri: TrackingOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Score the store's whole eligible population with reasons into the case store (and Parquet), tagged with
    the model version and the store fingerprint; a new run for the same model and date replaces the old one,
    and the model keeps its --keep latest runs."""
    from tqdm import tqdm

    from umrisk.serving.cases.db import DatabaseError
    from umrisk.serving.scoring import OutOfRange
    from umrisk.training.score_batch import BatchError
    from umrisk.training.score_batch import score_batch as run

    if version and alias:
        _fail("give --version or --alias, not both")
    if workers and scheduler:
        _fail("give --workers or --scheduler, not both")
    try:
        day = None if as_of is None else datetime.date.fromisoformat(as_of)
    except ValueError:
        _fail(f"--as-of {as_of}: expected a date, YYYY-MM-DD")
    # a progress bar of partitions scored on Dask, on a terminal only (a cron job's log gets the summary line)
    with _one_line_errors(), tqdm(unit="partition", desc=f"scoring {model}", leave=False, dynamic_ncols=True,
                                  disable=None if workers or scheduler else True) as bar:
        try:
            r = run(model, data, day, version, alias, url, out, tracking_uri, workers, scheduler, progress=bar.update,
                    keep=keep)
        except (BatchError, DatabaseError, OutOfRange) as err:
            _fail(str(err))
    if as_json:
        typer.echo(json.dumps(r, default=str))
        return
    skipped = ", ".join(f"{k} {v:,}" for k, v in r["not_scorable"].items()) or "none"
    where = f"{r['database']} run {r['run_id']}" + (f" and {r['out']}" if r["out"] else "")
    typer.echo(f"Scored {r['rows']:,} members with umrisk-{model} version {r['version']} on {r['as_of']} "
               f"({r['executor']}) in {r['seconds']:.1f} s; not scorable: {skipped}; into {where}")


@review_app.command("load")
def review_load(
    store: Annotated[Path, typer.Argument(help="A history store with a review_requests table (e.g. generated).")],
    url: DatabaseOpt = None,
) -> None:
    """Load the store's open review requests (open, in review, pended) into the case store as a backlog;
    requests already loaded are left as they are, closed and withdrawn ones are counted, not loaded."""
    from umrisk.features.schema import read_table, table_files
    from umrisk.serving.cases.repository import Actor

    if not table_files(store, "review_requests"):
        _fail(f"{store}: no review_requests table to load")
    cases, where = _case_store(url, store)
    counts = cases.load_backlog(read_table(store, "review_requests"), Actor("umrisk review load", "admin"))
    cases.dispose()
    typer.echo(f"{where}: loaded {counts['loaded']:,} open review requests of {counts['rows']:,} "
               f"({counts['already']:,} already there; {counts['closed_or_withdrawn']:,} closed or withdrawn, "
               "not loaded)")


@review_app.command("metrics")
def review_metrics_command(
    year: Annotated[int, typer.Option(min=2000, max=2100, help="Calendar year of the initial determinations.")],
    url: DatabaseOpt = None,
    store: Annotated[Path | None, typer.Option("--store", help="The history store whose service/cases.db is the "
                                                               "default case store.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    tiers: Annotated[bool, typer.Option("--tiers", help="Also the risk-tier mix of the open queue: loads each "
                                                        "champion and scores the store given with --store.")] = False,
    tracking_uri: TrackingOpt = None,
) -> None:
    """The CMS-0057-F figures of a year for standard and expedited requests, deadline compliance, the backlog by
    age and, with --tiers, the risk-tier mix of the open queue (as GET /v1/review-metrics gives it)."""
    from umrisk.serving.cases.metrics import URGENCIES, review_metrics, risk_tier_mix
    from umrisk.serving.cases.repository import utcnow
    from umrisk.serving.state import scorer_for

    if tiers and store is None:
        _fail("--tiers needs --store DIR: the members' risks are scored from that history store")
    cases, where = _case_store(url, store)
    m = review_metrics(cases, year, utcnow())
    if tiers:
        with _one_line_errors():
            m["risk_tier_mix"] = risk_tier_mix(cases, scorer_for(store, tracking_uri))
    cases.dispose()
    if as_json:
        typer.echo(json.dumps(m, indent=2, default=str))
        return
    typer.echo(f"Prior authorization, {year} ({where}):")
    rows = [("requests decided", "requests_decided", ""), ("approved", "pct_approved", "%"),
            ("denied", "pct_denied", "%"), ("approved after appeal", "pct_approved_after_appeal", "%"),
            ("approved after an extension", "pct_approved_after_extension", "%"),
            ("average hours to decision", "avg_hours_to_decision", ""),
            ("median hours to decision", "median_hours_to_decision", ""), ("decided on time", "pct_on_time", "%")]
    typer.echo(f"  {'':<30}" + "".join(f"{u:>12}" for u in (*URGENCIES, "all")))
    for label, key, unit in rows:
        cells = [m[u][key] for u in (*URGENCIES, "all")]
        typer.echo(f"  {label:<30}" + "".join(f"{'-' if v is None else f'{v}{unit}':>12}" for v in cells))
    typer.echo("Backlog now (open cases by hours since receipt):")
    for u in URGENCIES:
        b = m["backlog"][u]
        typer.echo(f"  {u:<10} " + ", ".join(f"{k} {v}" for k, v in b.items()))
    for model, mix in m.get("risk_tier_mix", {}).items():
        typer.echo(f"Risk tiers of the open queue, {model}: " + (", ".join(f"{k} {v}" for k, v in mix.items())
                                                                 or "no open case"))


@user_app.command("create")
def user_create(
    name: Annotated[str, typer.Option(help="The user name (the person the case store records).")],
    role: Annotated[str, typer.Option(help="nurse_reviewer, physician_reviewer, outreach or admin.")],
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from the first "
                                                                          "line of standard input.")] = False,
    url: DatabaseOpt = None,
    store: Annotated[Path | None, typer.Option("--store", help="The history store whose service/cases.db is the "
                                                               "default case store.")] = None,
) -> None:
    """Create a user who signs in to the pages with a password (asked twice unless --password-stdin), or set
    an existing user's role and password. Only an argon2 hash is stored, in the case store's users table."""
    import sys

    from umrisk.serving.ui.users import set_password

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    cases, where = _case_store(url, store)
    try:
        created = set_password(cases, name, role, password)
    except ValueError as err:
        _fail(str(err))
    finally:
        cases.dispose()
    typer.echo(f"{'created' if created else 'updated'} user {name.strip()} (role {role}) in {where}")


@user_app.command("list")
def user_list(
    url: DatabaseOpt = None,
    store: Annotated[Path | None, typer.Option("--store", help="The history store whose service/cases.db is the "
                                                               "default case store.")] = None,
) -> None:
    """The users of the case store: name, role, whether they have a password, last seen (never the hash)."""
    from umrisk.serving.ui.users import list_users

    cases, _ = _case_store(url, store)
    listed = list_users(cases)
    cases.dispose()
    typer.echo(f"{'name':<32}{'role':<20}{'password':<10}last seen")
    for u in listed:
        typer.echo(f"{u['name']:<32}{u['role']:<20}{'yes' if u['password'] else 'no':<10}{u['last_seen']}")


def busy_port(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be served on (one line), or None when it is free."""
    import errno
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        return f"cannot serve on {host}: {err.strerror}"
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will: a closed port is free
        try:
            s.bind(address)
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is already in use: stop what listens there or pass --port"
            return f"cannot listen on port {port} on {host}: {err.strerror}"
    return None


def _run_group(command: list[str], env: dict, grace: float = 20.0) -> int:
    """Run ``command`` in a process group of its own until it ends; SIGINT, SIGTERM or SIGHUP sent to this
    process are passed to the whole group, which gets ``grace`` seconds before SIGKILL (a second signal
    kills it at once). Nothing of the group outlives this function."""
    import signal
    import subprocess
    import time

    proc = subprocess.Popen(command, env=env, start_new_session=True)
    stopping: list[float] = []

    def kill_group(signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signum)

    def forward(signum: int, _frame) -> None:
        kill_group(signal.SIGKILL if stopping else signum)
        stopping.append(time.monotonic())

    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, forward) for s in handled}
    try:
        while proc.poll() is None:
            if stopping and time.monotonic() - stopping[0] > grace:
                kill_group(signal.SIGKILL)
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            kill_group(signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                kill_group(signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # workers the server left behind in its group
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            kill_group(signal.SIGKILL)
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 0 if stopping else proc.returncode


@app.command()
def serve(
    data: Annotated[Path, typer.Option(help="The history store members are looked up in.")],
    port: Annotated[int, typer.Option(help="Port.")] = 3000,
    host: Annotated[str, typer.Option(help="Interface (loopback by default: the service handles PHI).")] =
    "127.0.0.1",
    tokens: Annotated[Path, typer.Option(help="Token file.")] = Path("umrisk-tokens.json"),
    audit: Annotated[Path, typer.Option(help="Audit log (append-only JSON lines).")] = Path("audit/audit.jsonl"),
    tracking_uri: TrackingOpt = None,
    max_batch: Annotated[int, typer.Option(help="Most member ids per score request.")] = 1000,
    max_body_bytes: Annotated[int, typer.Option(help="Largest request body.")] = 2_000_000,
    rate_limit: Annotated[int, typer.Option(min=1, help="Requests a minute per token (each worker); more are "
                                                        "answered 429.")] = 600,
    audit_key: AuditKeyOpt = None,
    models: Annotated[list[str] | None, typer.Option("--model", help="A model to serve (repeatable; default: "
                                                                    "every spec that has a champion).")] = None,
    database_url: DatabaseOpt = None,
    scores: Annotated[str, typer.Option(help="Where scores come from: batch (the latest umrisk score-batch runs in "
                                             "the case store; no population in memory), population (the store "
                                             "scored at start-up) or auto (batch when every model has a run of "
                                             "its champion, else population).")] = "auto",
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes (BentoML's).")] = 1,
) -> None:
    """Start the BentoML service with the champion version of each model; SIGINT or SIGTERM stops it all."""
    import sys

    problem = busy_port(host, port)
    if problem:
        _fail(problem)
    if not data.is_dir():
        _fail(f"{data}: no such store folder")
    from umrisk.serving.state import (
        SCORES,
        NoChampion,
        Settings,
        StartupError,
        batch_or_why,
        champion_versions,
        no_token_warning,
        open_cases,
        preflight,
    )
    from umrisk.training import registry
    from umrisk.training.registry import RegistryError

    if scores not in SCORES:
        _fail(f"--scores {scores}: expected one of {', '.join(SCORES)}")
    uri = registry.configure(tracking_uri)
    settings = Settings(data=data.resolve(), tokens=tokens.resolve(), audit=audit.resolve(), tracking_uri=uri,
                        max_batch=max_batch, max_body_bytes=max_body_bytes, rate_limit=rate_limit,
                        audit_key=audit_key.resolve() if audit_key else None, models=tuple(models or ()),
                        database_url=_database_url_or_fail(database_url, data.resolve()), scores=scores)
    try:
        token_store, _ = preflight(settings)
        cases = open_cases(settings)  # created or upgraded here, so a problem shows before BentoML starts
        champions = champion_versions(settings)  # digest-checked here; each worker loads them
        source = batch_or_why(settings, champions, cases)
        cases.dispose()
    except StartupError as err:
        _fail(str(err))
    except (NoChampion, RegistryError) as err:
        _fail(str(err), 1)
    if len(token_store) == 0:
        typer.echo(f"WARNING: {no_token_warning(settings.tokens)}", err=True)
    typer.echo("Serving " + ", ".join(f"umrisk-{n} version {v}" for n, v in champions.items())
               + f" on http://{host}:{port} ({workers} worker{'s' if workers > 1 else ''}; {source})")
    env = {**os.environ, "UMRISK_DATA": str(settings.data), "UMRISK_TOKENS": str(settings.tokens),
           "UMRISK_AUDIT": str(settings.audit), "MLFLOW_TRACKING_URI": uri, "UMRISK_MAX_BATCH": str(max_batch),
           "UMRISK_MAX_BODY_BYTES": str(max_body_bytes), "UMRISK_RATE_LIMIT": str(rate_limit),
           "UMRISK_MODELS": ",".join(champions),  # the workers load exactly what was checked here
           "UMRISK_DATABASE_URL": settings.database_url, "UMRISK_SCORES": scores}
    if settings.audit_key:
        env["UMRISK_AUDIT_KEY"] = str(settings.audit_key)
    bentoml = str(Path(sys.executable).with_name("bentoml"))
    raise typer.Exit(_run_group([bentoml, "serve", "umrisk.serving.service:Umrisk", "--host", host, "--port",
                                 str(port), "--arg", f"workers={workers}"], env))


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder of the demo population.")] = Path("demo-data"),
    members: Annotated[int, typer.Option(min=1000)] = 20_000,
    seed: int = 1,
    models: Annotated[str | None, typer.Option(help="Comma-separated model specs (default: every spec in "
                                                    "models/).")] = None,
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve", help="End by starting the service.")] = True,
    port: Annotated[int, typer.Option(help="Port of the service.")] = 3000,
) -> None:
    """The main job on the embedded default: generate a population, validate it, build features, train,
    evaluate and promote each model (MLflow in ./mlflow.db, reports in ./reports), then serve them."""
    from tqdm import tqdm

    from umrisk.demo import demo_tokens, demo_users, load_backlog, model_names, run_demo
    from umrisk.features.spec import SpecError

    try:
        names = model_names(models)
    except SpecError as err:
        _fail(str(err))
    if serve_after and (problem := busy_port("127.0.0.1", port)):
        _fail(problem)  # before the minutes of generating and training, not after
    with tqdm(total=members, unit="members", desc="generate", dynamic_ncols=True) as bar:
        result = run_demo(out, members, seed, names, Path("reports"), typer.echo, progress=bar.update)
    if not result.ok:
        raise typer.Exit(1)
    uri = result.tracking_uri
    typer.echo(f"\nDone. The store is in {out}/ (one folder of Parquet parts per table), the ground truth in "
               f"{out}/truth/, the summary in {out}/generation_summary.json, the feature tables and cohort "
               f"reports in {out}/features/.")
    for r in result.trained:
        typer.echo(f"{r['model']}: report {r['report']}  model card {r['model_card']}")
    typer.echo(f"MLflow: tracking store {uri}; browse it with\n  .venv/bin/mlflow ui --backend-store-uri {uri} "
               "--port 5000   (then open http://127.0.0.1:5000)")
    if not serve_after:
        return
    service = out / "service"
    tokens_file, audit_file = service / "tokens.json", service / "audit.jsonl"
    made = demo_tokens(service)
    typer.echo(load_backlog(out))
    people = demo_users(out)
    url = f"http://127.0.0.1:{port}"
    typer.echo(f"\n== Starting the scoring service on {url}  (Ctrl-C stops it)")
    typer.echo(f"Pages: sign in at {url}/ui as one of these demo users (also in {service / 'demo-users.txt'}):")
    for name, role, password in people.values():
        typer.echo(f"  {role:<19} user {name!r:<18} password {password}")
    typer.echo(f"Demo tokens (also in {service / 'demo-tokens.env'}; the service stores only their hashes):")
    for var, token in made.items():
        typer.echo(f"  export {var}={token}")
    typer.echo("Try, in another terminal (after sourcing the tokens):")
    for example in curl_examples(url, names):
        typer.echo("  " + example)
    typer.echo(f"Every score served is audited in {audit_file}; check it with: .venv/bin/umrisk audit verify "
               f"{audit_file}")
    serve(data=out, port=port, host="127.0.0.1", tokens=tokens_file, audit=audit_file, tracking_uri=uri,
          max_batch=1000, max_body_bytes=2_000_000, models=names)


def curl_examples(url: str, models: list[str]) -> list[str]:
    """One curl example per endpoint (the README shows the same), scoring with each model served, then the
    review workflow: a request filed, the live queue, a claim, a physician's denial, the metrics."""
    j = "-H 'Content-Type: application/json'"
    nurse, doctor = '-H "Authorization: Bearer $NURSE"', '-H "Authorization: Bearer $PHYSICIAN"'
    score = [f"curl -s {url}/v1/score {nurse} {j} "
             f"-d '{{\"model\": \"{m}\", \"member_ids\": [\"M00000002\", \"M00000005\"]}}'" for m in models]
    return [
        f"curl -s {url}/readyz",
        f"curl -s {url}/v1/models {nurse}",
        *score,
        f"curl -s {url}/v1/review-queue {nurse} {j} -d '{{\"now\": \"2026-01-01T08:00:00\"}}'",
        f"RID=$(curl -s {url}/v1/review-requests {nurse} {j} -d '{{\"member_id\": \"M00000002\", "
        "\"service_type\": \"imaging\", \"codes\": [\"70551\"], \"urgency\": \"expedited\", "
        "\"received_time\": \"'$(date -u +%Y-%m-%dT%H:%M:%S)'\"}' | python3 -c 'import json,sys; "
        "print(json.load(sys.stdin)[\"request_id\"])')",
        f"curl -s '{url}/v1/fhir/Claim/$submit' {nurse} -H 'Content-Type: application/fhir+json' "
        "--data-binary @tests/fixtures/pas-samples/conformant_pas_bundle_v110.json",
        f"curl -s '{url}/v1/review-queue?urgency=expedited' {nurse}",
        f"curl -s -X POST {url}/v1/review-requests/$RID/claim {doctor}",
        f"curl -s {url}/v1/review-requests/$RID/determination {doctor} {j} -d '{{\"decision\": \"denied\", "
        "\"reason_code\": \"NMN\", \"reason\": \"No documented trial of conservative therapy\"}'",
        f"curl -s {url}/v1/review-requests/$RID {nurse}",
        f"curl -s '{url}/v1/review-metrics?year=2026' {nurse}",
        f'curl -s {url}/v1/outreach -H "Authorization: Bearer $OUTREACH" {j} '
        "-d '{\"capacity\": 20, \"line_of_business\": \"medicare\", \"exclude_contacted_within_days\": 30}'",
        f'curl -s {url}/v1/outreach -H "Authorization: Bearer $OUTREACH" {j} '
        "-d '{\"capacity\": 200, \"format\": \"csv\"}' -o outreach.csv",
        f'curl -s {url}/v1/outreach/contacts -H "Authorization: Bearer $OUTREACH" {j} '
        "-d '{\"member_id\": \"M00000002\", \"time\": \"'$(date -u +%Y-%m-%dT%H:%M:%S)'\", "
        "\"channel\": \"phone\", \"outcome\": \"reached\"}'",
        f"curl -s {url}/metrics | grep umrisk_",
    ]

if __name__ == "__main__":
    app()
