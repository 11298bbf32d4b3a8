"""The MLflow registry: log a run, register ``umrisk-<model>``, move aliases, load a version.

Tracking goes to ``MLFLOW_TRACKING_URI`` when it is set (a team's MLflow server), else to a local SQLite
file ``mlflow.db`` in the working directory; with a SQLite store, artifacts go to ``mlruns/`` beside it.
Nothing is configured at import time: ``configure`` is called by the entry points.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, Schema
from umrisk.training.lineage import code_version, package_versions
from umrisk.training.model import RiskModel


def configure(tracking_uri: str | None = None) -> str:
    """Point MLflow at the tracking store and return its URI."""
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def registered_name(model: str) -> str:
    return f"umrisk-{model}"


def experiment(model: str) -> str:
    """The experiment of a model (created with local artifacts when tracking is a local file)."""
    name = registered_name(model)
    if mlflow.get_experiment_by_name(name) is None:
        uri = mlflow.get_tracking_uri()
        location = None  # a tracking server decides where artifacts go
        if uri.startswith("sqlite:///"):  # a local file: artifacts beside it, in mlruns/
            location = (Path(uri.removeprefix("sqlite:///")).resolve().parent / "mlruns" / name).as_uri()
        mlflow.create_experiment(name, artifact_location=location)
    mlflow.set_experiment(name)
    return name


class UmriskModel(mlflow.pyfunc.PythonModel):
    """The registered model: the calibrated ``RiskModel`` with its spec, catalog and risk tiers.

    ``predict`` takes a frame of feature columns and returns the calibrated probability and the tier.
    Serving reaches the ``RiskModel`` itself (``risk_model``) for TreeSHAP reasons.
    """

    def __init__(self, risk_model: RiskModel, spec: dict, catalog: list[dict], meta: dict):
        self.risk_model = risk_model
        self.spec = spec
        self.catalog = catalog
        self.meta = meta

    def tier(self, p: np.ndarray) -> np.ndarray:
        tiers = self.spec["model"]["tiers"]
        out = np.full(len(p), tiers[-1]["name"], dtype=object)
        for t in reversed(tiers):
            out[p >= t["min_probability"]] = t["name"]
        return out

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        p = self.risk_model.predict_proba(model_input)
        return pd.DataFrame({"probability": p, "tier": self.tier(p)}, index=model_input.index)


def model_signature(risk_model: RiskModel, frame: pd.DataFrame) -> ModelSignature:
    """Each feature as the builder types it (counts long, flags integer, measures double, categories string),
    all optional: a history may lack a lab or a visit."""

    def kind(c: str) -> str:
        if c in risk_model.categorical:
            return "string"
        dt = frame[c].dtype
        if pd.api.types.is_integer_dtype(dt):
            return "long" if dt.itemsize == 8 else "integer"
        return "double"

    inputs = Schema([ColSpec(kind(c), c, required=False) for c in risk_model.features])
    outputs = Schema([ColSpec("double", "probability"), ColSpec("string", "tier")])
    return ModelSignature(inputs=inputs, outputs=outputs)


@dataclass
class Logged:
    run_id: str
    version: str
    name: str


def log_and_register(*, model_name: str, risk_model: RiskModel, spec: dict, catalog: list[dict],
                     example: pd.DataFrame, params: dict, metrics: dict[str, float], fingerprint: dict,
                     tags: dict[str, str], alias: str = "challenger") -> Logged:
    """One MLflow run with everything about the training, the model registered and given ``alias``."""
    experiment(model_name)
    name = registered_name(model_name)
    meta = {"model": model_name, "code_version": code_version(), "data_fingerprint": fingerprint["sha256"],
            **{k: str(v) for k, v in tags.items()}}
    with mlflow.start_run() as run:
        mlflow.set_tags({"umrisk.model": model_name, "umrisk.code_version": meta["code_version"],
                         "umrisk.data_sha256": fingerprint["sha256"], **tags})
        mlflow.log_params({k: v for k, v in params.items() if not isinstance(v, (dict, list))})
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None and np.isfinite(v)})
        with tempfile.TemporaryDirectory() as tmp:
            t = Path(tmp)
            (t / "data_fingerprint.json").write_text(json.dumps(fingerprint, indent=2))
            (t / "packages.json").write_text(json.dumps(package_versions(), indent=2))
            (t / "spec.json").write_text(json.dumps(spec, indent=2, default=str))
            mlflow.log_artifacts(tmp, artifact_path="lineage")
        example = example[risk_model.features].head(5)
        example = example.astype({c: "str" for c in risk_model.categorical})
        wrapped = UmriskModel(risk_model, spec, catalog, meta)
        signature = model_signature(risk_model, example)
        info = mlflow.pyfunc.log_model(
            name="model", python_model=wrapped, signature=signature, input_example=example,
            registered_model_name=name, await_registration_for=60,
            pip_requirements=[f"{p}=={v}" for p, v in package_versions().items()
                              if p in ("lightgbm", "scikit-learn", "pandas", "numpy", "mlflow")])
        version = str(info.registered_model_version)
    client = MlflowClient()
    for k, v in {"run_id": run.info.run_id, "data_sha256": fingerprint["sha256"],
                 "code_version": meta["code_version"], **tags}.items():
        client.set_model_version_tag(name, version, k, str(v))
    client.set_registered_model_alias(name, alias, version)
    return Logged(run.info.run_id, version, name)


def resolve(model_name: str, version: str | None = None, alias: str | None = None) -> ModelVersion:
    """The registry entry for a version or an alias (``champion`` when neither is given)."""
    client = MlflowClient()
    name = registered_name(model_name)
    if version is not None:
        return client.get_model_version(name, str(version))
    return client.get_model_version_by_alias(name, alias or "champion")


def load(model_name: str, version: str | None = None, alias: str | None = None) -> tuple[UmriskModel, ModelVersion]:
    """Load a registered version (by number or alias) without refitting anything."""
    mv = resolve(model_name, version, alias)
    loaded = mlflow.pyfunc.load_model(f"models:/{mv.name}/{mv.version}")
    return loaded.unwrap_python_model(), mv


def set_alias(model_name: str, alias: str, version: str, reason: str | None = None) -> None:
    client = MlflowClient()
    name = registered_name(model_name)
    client.set_registered_model_alias(name, alias, str(version))
    if reason:
        client.set_model_version_tag(name, str(version), f"{alias}_reason", reason)


def log_artifacts(run_id: str, folder: Path, path: str) -> None:
    """Attach a folder of files (a report) to an existing run."""
    MlflowClient().log_artifacts(run_id, str(folder), path)
