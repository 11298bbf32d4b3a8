"""What the service holds while it runs, built once at start-up from its configuration.

Configuration comes from the environment (``umrisk serve`` sets it): ``UMRISK_DATA`` the history store,
``UMRISK_TOKENS`` the token file, ``UMRISK_AUDIT`` the audit log (``UMRISK_AUDIT_KEY`` its checkpoint key,
default beside it), ``MLFLOW_TRACKING_URI`` the registry, ``UMRISK_MAX_BATCH`` and ``UMRISK_MAX_BODY_BYTES``
the request limits, ``UMRISK_RATE_LIMIT`` the requests a minute per token, ``UMRISK_MODELS`` the models,
``UMRISK_DATABASE_URL`` the case store (default: an SQLite file ``<store>/service/cases.db``), whose schema is
upgraded in place at start-up, and ``UMRISK_SCORES`` where scores come from: ``batch`` the latest runs of
``umrisk score-batch`` in the case store, with members' histories read on demand from the partitioned store (no
population in memory: ``serving.batch_scorer``); ``population`` the whole store loaded and scored at start-up
(``serving.scoring``); ``auto`` (the default) batch when every served model has a run of its champion version,
else population, saying why.

Start-up refuses (``StartupError``, one message naming the file or table) a store missing a table the models
need, a malformed token file, and an audit log that is torn or does not match its signed checkpoint.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow
import pandas as pd

from umrisk.features.schema import TABLES, table_files
from umrisk.features.spec import spec_names
from umrisk.features.store import load_store
from umrisk.serving.audit import AuditError, AuditLog
from umrisk.serving.auth import TokenFileError, TokenStore
from umrisk.serving.batch_runs import NoBatch, usable_runs
from umrisk.serving.cases.db import DatabaseError, database_url
from umrisk.serving.cases.repository import CaseStore
from umrisk.serving.ratelimit import FailedAuthThrottle, RateLimiter
from umrisk.training import registry

if TYPE_CHECKING:  # the scorers (and LightGBM) load in the workers, not in `umrisk serve`'s own checks
    from umrisk.serving.scoring import LoadedModel, Scorer

log = logging.getLogger("umrisk.serving")
OPTIONAL_TABLES = frozenset({"review_requests"})  # the queue can come in the request body instead
NEEDED_TABLES = tuple(t for t in TABLES if t not in OPTIONAL_TABLES)


class StartupError(RuntimeError):
    """The service cannot start safely; the message says what is wrong and where."""


class NoChampion(RuntimeError):
    """A model has no version with the alias champion: nothing to serve."""


@dataclass(frozen=True)
class Settings:
    data: Path
    tokens: Path = Path("umrisk-tokens.json")
    audit: Path = Path("audit/audit.jsonl")
    tracking_uri: str | None = None
    max_batch: int = 1000
    max_body_bytes: int = 2_000_000
    models: tuple[str, ...] = ()  # none named: every shipped spec that has a champion
    rate_limit: int = 600
    audit_key: Path | None = None
    database_url: str | None = None  # None: UMRISK_DATABASE_URL, else SQLite beside the store
    scores: str = "auto"  # batch, population or auto (batch when it can be served)

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        if "UMRISK_DATA" not in env:
            raise RuntimeError("UMRISK_DATA is not set: start the service with `umrisk serve --data DIR`")
        return cls(data=Path(env["UMRISK_DATA"]), tokens=Path(env.get("UMRISK_TOKENS", "umrisk-tokens.json")),
                   audit=Path(env.get("UMRISK_AUDIT", "audit/audit.jsonl")),
                   tracking_uri=env.get("MLFLOW_TRACKING_URI"), max_batch=int(env.get("UMRISK_MAX_BATCH", 1000)),
                   max_body_bytes=int(env.get("UMRISK_MAX_BODY_BYTES", 2_000_000)),
                   models=tuple(m for m in env.get("UMRISK_MODELS", "").split(",") if m),
                   rate_limit=_positive(env, "UMRISK_RATE_LIMIT", 600),
                   audit_key=Path(env["UMRISK_AUDIT_KEY"]) if env.get("UMRISK_AUDIT_KEY") else None,
                   database_url=env.get("UMRISK_DATABASE_URL") or None, scores=_scores(env))


SCORES = ("auto", "batch", "population")


def _scores(env) -> str:
    raw = env.get("UMRISK_SCORES", "") or "auto"
    if raw not in SCORES:
        raise StartupError(f"UMRISK_SCORES={raw!r}: expected one of {', '.join(SCORES)}")
    return raw


def _positive(env, name: str, default: int) -> int:
    raw = env.get(name, "")
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise StartupError(f"{name}={raw!r}: expected a whole number of requests a minute, 1 or more")
    return int(raw)


def missing_tables(data: Path) -> list[str]:
    """The tables the models need that the store ``data`` does not have (``review_requests`` is optional)."""
    return [t for t in NEEDED_TABLES if not table_files(data, t)]


def no_token_warning(tokens: Path) -> str:
    return (f"no token in {tokens}: every call will be refused with 401; create one with "
            f"`umrisk token create --role reviewer --tokens {tokens}`")


def preflight(settings: Settings) -> tuple[TokenStore, AuditLog]:
    """The checks that need no model, run before anything heavy loads (and by ``umrisk serve`` before it
    starts BentoML): the store has every table the models need, the token file is well formed (a warning
    when it holds no token), and the audit log's chain and checkpoint hold. Raise ``StartupError``."""
    if not Path(settings.data).is_dir():
        raise StartupError(f"history store {settings.data}: no such folder")
    missing = missing_tables(settings.data)
    if missing:
        raise StartupError(f"history store {settings.data} lacks the table(s) {', '.join(missing)} the models "
                           "need: import or generate them (the service never scores from empty tables)")
    tokens = TokenStore(settings.tokens)
    try:
        n_tokens = tokens.load()
    except TokenFileError as err:
        raise StartupError(str(err)) from err
    if n_tokens == 0:
        log.warning(no_token_warning(settings.tokens))
    elif settings.tokens.stat().st_mode & 0o077:
        log.warning("token file %s can be read by other users: make it private (chmod 600 %s)", settings.tokens,
                    settings.tokens)
    try:
        audit = AuditLog(settings.audit, settings.audit_key)
        audit.check()
    except (AuditError, OSError) as err:
        raise StartupError(str(err)) from err
    return tokens, audit


def open_cases(settings: Settings) -> CaseStore:
    """The case store, its schema upgraded in place to this version's migrations; ``StartupError`` naming the
    database (never its password) when it cannot be opened or upgraded."""
    try:
        return CaseStore.open(database_url(settings.database_url, settings.data))
    except DatabaseError as err:
        raise StartupError(str(err)) from err


def champion_versions(settings: Settings) -> dict[str, str]:
    """The champion version of each model ``load_champions`` would load, digest-checked, nothing unpickled (the
    check ``umrisk serve`` makes before the workers load them); the same ``NoChampion`` when there is none."""
    return _champions(settings, lambda name: str(registry.verify(name, alias="champion").version))


def _champions(settings: Settings, get) -> dict:
    registry.configure(settings.tracking_uri)
    out = {}
    for name in settings.models or spec_names():
        try:
            out[name] = get(name)
        except registry.NoSuchVersion as err:
            if not settings.models:
                log.info("umrisk-%s has no champion version: not served", name)
                continue
            raise NoChampion(f"umrisk-{name} has no champion version in {mlflow.get_tracking_uri()}: train and "
                             f"promote it first (umrisk train {name} --data DIR; umrisk promote {name})") from err
    if not out:
        raise NoChampion(f"no model has a champion version in {mlflow.get_tracking_uri()} (specs: "
                         f"{', '.join(spec_names())}): train and promote one first (umrisk train MODEL --data DIR; "
                         "umrisk promote MODEL)")
    return out


def load_champions(settings: Settings) -> dict[str, LoadedModel]:
    """The champion version of each model, pinned for the life of the service, with the spec registered with
    it (never today's YAML). With no models named, every shipped spec that has a champion is served.

    ``NoChampion`` when a named model (or, with none named, every model) has no champion; an artifact that
    fails its digest check raises the registry's ``ArtifactTampered`` or ``ArtifactUnverified``."""
    from umrisk.serving.scoring import LoadedModel

    registry.configure(settings.tracking_uri)
    client = mlflow.MlflowClient()

    def loaded(name: str) -> LoadedModel:
        wrapped, mv = registry.load(name, alias="champion")
        run = client.get_run(mv.run_id)
        tags = mv.tags or {}
        metrics = {k.removeprefix("test_"): round(v, 4) for k, v in run.data.metrics.items()
                   if k in ("test_auroc", "test_auprc", "test_brier", "test_ici", "test_calibration_slope")}
        return LoadedModel(name, str(mv.version), wrapped, registry.stored_spec(wrapped),
                           tags.get("trained_from", ""), tags.get("trained_to", ""), metrics)

    return _champions(settings, loaded)


@dataclass
class ServiceState:
    settings: Settings
    scorer: Scorer
    tokens: TokenStore
    audit: AuditLog
    models: dict[str, LoadedModel] = field(default_factory=dict)
    rate_limiter: RateLimiter = field(default_factory=RateLimiter)
    auth_throttle: FailedAuthThrottle = field(default_factory=FailedAuthThrottle)
    cases: CaseStore | None = None

    @classmethod
    def build(cls, settings: Settings) -> ServiceState:
        tokens, audit = preflight(settings)
        cases = open_cases(settings)
        models = load_champions(settings)
        scorer = service_scorer(settings, models, cases)
        state = cls(settings, scorer, tokens, audit, models, RateLimiter(settings.rate_limit), FailedAuthThrottle(),
                    cases)
        log.info("case store: %s", cases.url)
        log.info("umrisk service ready: %s; scoring date %s", ", ".join(f"{n} v{m.version}" for n, m in models.items()),
                 scorer.as_of.date())
        return state


def batch_or_why(settings: Settings, versions: dict[str, str], cases: CaseStore) -> str:
    """Where the service will take its scores from, in words (for ``umrisk serve`` to say before it starts);
    ``StartupError`` when batch is asked for and cannot be served."""
    if settings.scores == "population":
        return "the population scored at start-up"
    try:
        runs = usable_runs(settings.data, versions, cases)
    except NoBatch as err:
        if settings.scores == "batch":
            raise StartupError(str(err)) from err
        return f"the population scored at start-up, because {err}"
    return "batch scores of " + ", ".join(f"{n} {pd.Timestamp(r['as_of']).date()}" for n, r in runs.items())


def service_scorer(settings: Settings, models: dict[str, LoadedModel], cases: CaseStore) -> Scorer:
    """Where the service's scores come from (``Settings.scores``): the batch job's runs in the case store, or the
    population scored at start-up. ``StartupError`` when batch is asked for and cannot be served."""
    from umrisk.serving.batch_scorer import BatchScorer
    from umrisk.serving.scoring import Scorer

    if settings.scores != "population":
        try:
            scorer = BatchScorer(settings.data, models, cases)
        except NoBatch as err:
            if settings.scores == "batch":
                raise StartupError(str(err)) from err
            log.warning("not serving batch scores: %s; scoring the whole population at start-up instead", err)
        else:
            log.info("serving batch scores: %s (no population in memory)",
                     ", ".join(f"{n} run {r['run_id']} of {r['rows']} members" for n, r in scorer.runs.items()))
            return scorer
    scorer = Scorer(load_store(settings.data), models)
    log.info("population scored at start-up: %s", {n: len(c["p"]) for n, c in scorer.cache.items()})
    return scorer


def scorer_for(store: Path, tracking_uri: str | None = None) -> Scorer:
    """The champions of every model with one, scoring the history store ``store`` as the service does (for
    commands that need the members' risks without a running service)."""
    from umrisk.serving.scoring import Scorer

    uri = registry.configure(tracking_uri)
    return Scorer(load_store(store), load_champions(Settings(data=store, tracking_uri=uri)))
