"""What the service holds while it runs, built once at start-up from its configuration.

Configuration comes from the environment (``umrisk serve`` sets it): ``UMRISK_DATA`` the history store,
``UMRISK_TOKENS`` the token file, ``UMRISK_AUDIT`` the audit log, ``MLFLOW_TRACKING_URI`` the registry,
``UMRISK_MAX_BATCH`` and ``UMRISK_MAX_BODY_BYTES`` the request limits, ``UMRISK_MODELS`` the models.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
from umrisk.features.spec import load_spec
from umrisk.features.store import load_store
from umrisk.serving.audit import AuditLog
from umrisk.serving.auth import TokenStore
from umrisk.serving.scoring import LoadedModel, Scorer
from umrisk.training import registry

log = logging.getLogger("umrisk.serving")
DEFAULT_MODELS = ("readmission_30d", "admission_180d")


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
    models: tuple[str, ...] = DEFAULT_MODELS

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        if "UMRISK_DATA" not in env:
            raise RuntimeError("UMRISK_DATA is not set: start the service with `umrisk serve --data DIR`")
        return cls(data=Path(env["UMRISK_DATA"]), tokens=Path(env.get("UMRISK_TOKENS", "umrisk-tokens.json")),
                   audit=Path(env.get("UMRISK_AUDIT", "audit/audit.jsonl")),
                   tracking_uri=env.get("MLFLOW_TRACKING_URI"), max_batch=int(env.get("UMRISK_MAX_BATCH", 1000)),
                   max_body_bytes=int(env.get("UMRISK_MAX_BODY_BYTES", 2_000_000)),
                   models=tuple(m for m in env.get("UMRISK_MODELS", ",".join(DEFAULT_MODELS)).split(",") if m))


def load_champions(settings: Settings) -> dict[str, LoadedModel]:
    """The champion version of each model, pinned for the life of the service."""
    registry.configure(settings.tracking_uri)
    client = mlflow.MlflowClient()
    out = {}
    for name in settings.models:
        try:
            wrapped, mv = registry.load(name, alias="champion")
        except Exception as err:  # noqa: BLE001 - MLflow raises its own error types for a missing alias
            raise NoChampion(f"umrisk-{name} has no champion version in {mlflow.get_tracking_uri()}: train and "
                             f"promote it first (umrisk train {name} --data DIR; umrisk promote {name})") from err
        run = client.get_run(mv.run_id)
        tags = mv.tags or {}
        metrics = {k.removeprefix("test_"): round(v, 4) for k, v in run.data.metrics.items()
                   if k in ("test_auroc", "test_auprc", "test_brier", "test_ici", "test_calibration_slope")}
        out[name] = LoadedModel(name, str(mv.version), wrapped, load_spec(name), tags.get("trained_from", ""),
                                tags.get("trained_to", ""), metrics)
    return out


@dataclass
class ServiceState:
    settings: Settings
    scorer: Scorer
    tokens: TokenStore
    audit: AuditLog
    models: dict[str, LoadedModel] = field(default_factory=dict)

    @classmethod
    def build(cls, settings: Settings) -> ServiceState:
        models = load_champions(settings)
        store = load_store(settings.data)
        scorer = Scorer(store, models)
        state = cls(settings, scorer, TokenStore(settings.tokens), AuditLog(settings.audit), models)
        log.info("umrisk service ready: %s; scoring date %s; population scored at start-up: %s",
                 ", ".join(f"{n} v{m.version}" for n, m in models.items()), scorer.as_of.date(),
                 {n: len(c["p"]) for n, c in scorer.cache.items()})
        return state
