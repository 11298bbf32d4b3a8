"""The main job on the embedded defaults (``umrisk demo``): generate a population, validate it, build each
model's features once, train, evaluate and promote every model it is given, and make the demo's tokens.

It lives beside the CLI rather than in ``umrisk.training`` because it drives every package (the synthetic
population, training and the service's tokens); the CLI only parses its options and prints.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from umrisk.features.spec import MODELS_DIR, load_spec

Echo = Callable[[str], None]
# one demo user per role, and the variable the demo's curl examples read its token from
DEMO_USERS = {"NURSE": ("nurse_reviewer", "demo nurse"), "PHYSICIAN": ("physician_reviewer", "demo physician"),
              "OUTREACH": ("outreach", "demo outreach"), "ADMIN": ("admin", "demo admin")}


def model_names(given: str | None = None) -> list[str]:
    """The models named in a comma-separated list, else every spec shipped in ``models/``; each is checked
    (``SpecError`` names an unknown or invalid one)."""
    names = [n.strip() for n in given.split(",") if n.strip()] if given else sorted(
        p.stem for p in MODELS_DIR.glob("*.yaml"))
    for n in names:
        load_spec(n)
    return names


def generate_store(members: int, years: int, seed: int, out: Path, workers: int = 1,
                   progress: Callable[[int], None] | None = None, partitions: int | None = None) -> tuple[dict, str]:
    """A synthetic population written to ``out`` with ``generation_summary.json``; the summary and its text."""
    from umrisk.features.synthetic.generate import GenerateConfig, generate
    from umrisk.features.synthetic.summary import realism, render

    start = time.perf_counter()
    cfg = GenerateConfig(members=members, years=years, seed=seed, workers=workers, partitions=partitions)
    stats = generate(cfg, out, progress=progress)
    real = realism(stats)
    summary = {"members": members, "years": years, "seed": seed, "seconds": round(time.perf_counter() - start, 1),
               "rows": stats["rows"], "realism": real}
    (out / "generation_summary.json").write_text(json.dumps(summary, indent=2, default=float))
    return summary, render(stats, real)


@dataclass
class DemoResult:
    ok: bool
    tracking_uri: str = ""
    trained: list[dict] = field(default_factory=list)
    promoted: list[dict] = field(default_factory=list)


def run_demo(out: Path, members: int, seed: int, models: list[str], reports: Path, echo: Echo,
             progress: Callable[[int], None] | None = None) -> DemoResult:
    """Generate, validate, build features, train and promote each model; ``echo`` gets each step's lines."""
    from umrisk.features.validate import validate_dataset
    from umrisk.training import commands, registry
    from umrisk.training.feature_export import export_features
    from umrisk.training.lineage import data_fingerprint

    echo(f"== Generating {members:,} members over 3 years (seed {seed}) into {out}")
    summary, text = generate_store(members, 3, seed, out, workers=2, progress=progress)
    echo(text)
    echo(f"Wrote {out} in {summary['seconds']:.1f} s (summary in {out / 'generation_summary.json'}).")
    echo(f"== Validating {out}")
    report = validate_dataset(out)
    echo(report.render())
    if not report.ok:
        return DemoResult(ok=False)
    fingerprint = data_fingerprint(out)
    for model in models:
        echo(f"== Building {model} features")
        e = export_features(load_spec(model), out, out / "features" / f"{model}.parquet", fingerprint)
        echo(e.cohort_text)
        echo(f"Wrote {e.rows:,} points x {e.features} features to {e.path} in {e.seconds:.1f} s")
    result = DemoResult(ok=True, tracking_uri=registry.configure(None))
    for model in models:
        echo(f"== Training {model} (tuning, calibration, evaluation, MLflow; features from the cache)")
        r = commands.train(model, out, reports)
        t = r["test"]
        echo(f"   version {r['version']}: test AUROC {t['auroc']:.3f} ({t['auroc_ci_low']:.3f}-"
             f"{t['auroc_ci_high']:.3f}), ICI {t['ici']:.4f}; baselines "
             + ", ".join(f"{k} {v:.3f}" for k, v in r["baselines"].items()))
        result.trained.append(r)
        echo(f"== Promoting {model}")
        p = commands.promote(model, out)
        if p.get("champion_problem"):
            echo(f"   note: {p['champion_problem']}")
        for line in commands.gate_lines(p):
            echo("   " + line)
        echo(f"   champion: version {p['champion_after']}" + ("" if p["promoted"] else " (gates failed)"))
        result.promoted.append(p)
    from umrisk.training.score_batch import score_batch

    for model in (p["model"] for p in result.promoted if p.get("champion_after")):
        echo(f"== Scoring the population with {model}'s champion (umrisk score-batch, into the case store)")
        b = score_batch(model, out)
        echo(f"   {b['rows']:,} members scored on {b['as_of']} in {b['seconds']:.1f} s (run {b['run_id']}); not "
             "scorable: " + (", ".join(f"{k} {v:,}" for k, v in b["not_scorable"].items()) or "none"))
    return result


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (it holds tokens or passwords)."""
    from umrisk.serving.private_files import replace_private

    replace_private(path, text)


def demo_tokens(service: Path) -> dict[str, str]:
    """A fresh token file with one token per role (a demo user each), and ``demo-tokens.env`` (0600) to source
    them from; return variable name → token."""
    from umrisk.serving.auth import create_token

    tokens_file = service / "tokens.json"
    tokens_file.unlink(missing_ok=True)
    made = {var: create_token(tokens_file, role, name)[1] for var, (role, name) in DEMO_USERS.items()}
    write_private(service / "demo-tokens.env", "".join(f"export {v}={t}\n" for v, t in made.items()))
    return made


def demo_users(store: Path, database_url: str | None = None) -> dict[str, tuple[str, str, str]]:
    """A user with a fresh random password for each demo role, for the pages (/ui), written to
    ``service/demo-users.txt`` (0600); return variable name → (user name, role, password)."""
    import secrets

    from umrisk.serving.cases.db import database_url as resolve
    from umrisk.serving.cases.repository import CaseStore
    from umrisk.serving.ui.users import set_password

    cases = CaseStore.open(resolve(database_url, store))
    made = {}
    try:
        for var, (role, name) in DEMO_USERS.items():
            password = secrets.token_urlsafe(12)
            set_password(cases, name, role, password)
            made[var] = (name, role, password)
    finally:
        cases.dispose()
    write_private(store / "service" / "demo-users.txt",
                  "".join(f"{name}\t{role}\t{password}\n" for name, role, password in made.values()))
    return made


def load_backlog(store: Path, database_url: str | None = None) -> str:
    """Load the store's open review requests into the case store (created or upgraded first); one line."""
    from umrisk.features.schema import read_table
    from umrisk.serving.cases.db import database_url as resolve
    from umrisk.serving.cases.db import shown
    from umrisk.serving.cases.repository import Actor, CaseStore

    url = resolve(database_url, store)
    cases = CaseStore.open(url)
    try:
        n = cases.load_backlog(read_table(store, "review_requests"), Actor("umrisk demo", "admin"))
    finally:
        cases.dispose()
    return (f"Case store {shown(url)}: {n['loaded']:,} open review requests loaded as the backlog "
            f"({n['already']:,} already there)")
