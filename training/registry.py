"""The MLflow registry: log a run, register ``umrisk-<model>``, move aliases, load a version.

The registered version is the contract the service serves: it carries the full spec (parseable back with
``parse_spec``), the feature catalog and the feature list, and a SHA-256 digest of its artifact files recorded
as the version tag ``artifact_sha256`` at registration. ``load`` downloads the artifacts to a local folder,
recomputes the digest and refuses to unpickle anything that does not match.

Tracking goes to ``MLFLOW_TRACKING_URI`` when it is set (a team's MLflow server), else to a local SQLite
file ``mlflow.db`` in the working directory; with a SQLite store, artifacts go to ``mlruns/`` beside it.
Nothing is configured at import time: ``configure`` is called by the entry points.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, Schema

from umrisk.features.spec import ModelSpec, parse_spec
from umrisk.training.lineage import code_version, hash_file, package_versions

if TYPE_CHECKING:  # unpickling a registered model imports it; `umrisk serve`'s checks need no LightGBM
    from umrisk.training.model import RiskModel

DIGEST_TAG = "artifact_sha256"


class RegistryError(RuntimeError):
    """A registered version that cannot be used; the message names the model and the version."""


class NoSuchVersion(RegistryError):
    """The registered model, version or alias does not exist."""


class ArtifactUnverified(RegistryError):
    """The version has no artifact digest recorded at registration: it is not loaded."""


class ArtifactTampered(RegistryError):
    """The version's artifact files do not match the digest recorded at registration: it is not loaded."""


def configure(tracking_uri: str | None = None) -> str:
    """Point MLflow at the tracking store and return its URI."""
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def tracking_uri() -> str:
    """The tracking URI in use (set by ``configure``)."""
    return mlflow.get_tracking_uri()


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


# MLflow writes this file (the registered name and version) into a model's stored folder whenever the model is
# loaded by a models:/ URI, from any process: it is MLflow's bookkeeping, not part of the model.
MLFLOW_WRITES = frozenset({"registered_model_meta"})


def artifact_digest(folder: Path | str) -> str:
    """SHA-256 over every file under ``folder`` but MLflow's own ``registered_model_meta``: each relative path
    (sorted, POSIX form) then its bytes.

    >>> import tempfile; d = Path(tempfile.mkdtemp()); _ = (d / "a").write_bytes(b"x")
    >>> artifact_digest(d) == artifact_digest(d) and len(artifact_digest(d)) == 64
    True
    """
    root = Path(folder)
    h = hashlib.sha256()
    files = (p for p in root.rglob("*") if p.is_file() and p.relative_to(root).as_posix() not in MLFLOW_WRITES)
    for f in sorted(files, key=lambda p: p.relative_to(root).as_posix()):
        rel = f.relative_to(root).as_posix().encode()
        h.update(len(rel).to_bytes(8, "big") + rel + f.stat().st_size.to_bytes(8, "big"))
        hash_file(f, h)
    return h.hexdigest()


def _download(name: str, version: str, dst: Path) -> Path:
    """The stored artifact files of a version, copied into ``dst`` (never the stored folder itself)."""
    uri = MlflowClient().get_model_version_download_uri(name, str(version))
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst)))


@dataclass
class Logged:
    run_id: str
    version: str
    name: str
    code_version: str = ""


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
            (t / "catalog.json").write_text(json.dumps(catalog, indent=2, default=str))
            (t / "features.json").write_text(json.dumps({"features": list(risk_model.features),
                                                         "categorical": list(risk_model.categorical)}, indent=2))
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
    with tempfile.TemporaryDirectory() as tmp:
        digest = artifact_digest(_download(name, version, Path(tmp)))
    for k, v in {"run_id": run.info.run_id, "data_sha256": fingerprint["sha256"],
                 "code_version": meta["code_version"], **tags, DIGEST_TAG: digest}.items():
        client.set_model_version_tag(name, version, k, str(v))
    client.set_registered_model_alias(name, alias, version)
    return Logged(run.info.run_id, version, name, meta["code_version"])


def resolve(model_name: str, version: str | None = None, alias: str | None = None) -> ModelVersion:
    """The registry entry for a version or an alias (``champion`` when neither is given)."""
    client = MlflowClient()
    name = registered_name(model_name)
    what = f"version {version}" if version is not None else f"alias {alias or 'champion'}"
    try:
        if version is not None:
            return client.get_model_version(name, str(version))
        return client.get_model_version_by_alias(name, alias or "champion")
    except MlflowException as err:
        if err.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise NoSuchVersion(f"{name} has no {what} in {mlflow.get_tracking_uri()}") from None
        raise


def _verified(mv: ModelVersion, tmp: Path) -> Path:
    """The version's artifact files downloaded into ``tmp``, once their digest matches the one recorded at
    registration; ``ArtifactTampered`` or ``ArtifactUnverified`` otherwise."""
    recorded = (mv.tags or {}).get(DIGEST_TAG)
    if not recorded:
        raise ArtifactUnverified(f"the artifact of {mv.name} version {mv.version} has no digest recorded at "
                                 "registration: it is not loaded (register it again with umrisk train)")
    local = _download(mv.name, mv.version, tmp)
    if artifact_digest(local) != recorded:
        raise ArtifactTampered(f"the artifact of {mv.name} version {mv.version} does not match the digest "
                               "recorded at registration: it is not loaded (corrupt or tampered files)")
    return local


def verify(model_name: str, version: str | None = None, alias: str | None = None) -> ModelVersion:
    """The registered version (by number or alias), its artifact's digest checked, nothing unpickled: what a
    command checks before it hands the loading to another process (``umrisk serve``)."""
    mv = resolve(model_name, version, alias)
    with tempfile.TemporaryDirectory(prefix="umrisk-model-") as tmp:
        _verified(mv, Path(tmp))
    return mv


def load(model_name: str, version: str | None = None, alias: str | None = None) -> tuple[UmriskModel, ModelVersion]:
    """Load a registered version (by number or alias) without refitting anything.

    The artifact files are downloaded to a local folder and their digest compared with the one recorded at
    registration before anything is unpickled; ``ArtifactTampered`` or ``ArtifactUnverified`` otherwise.
    """
    mv = resolve(model_name, version, alias)
    with tempfile.TemporaryDirectory(prefix="umrisk-model-") as tmp:
        loaded = mlflow.pyfunc.load_model(str(_verified(mv, Path(tmp))))
    return loaded.unwrap_python_model(), mv


def stored_spec(wrapped: UmriskModel) -> ModelSpec:
    """The spec registered with a loaded version (not today's YAML), parsed back into its type."""
    return parse_spec(wrapped.spec, f"the spec stored with umrisk-{wrapped.meta.get('model', '?')}")


def set_alias(model_name: str, alias: str, version: str, reason: str | None = None) -> None:
    client = MlflowClient()
    name = registered_name(model_name)
    client.set_registered_model_alias(name, alias, str(version))
    if reason:
        client.set_model_version_tag(name, str(version), f"{alias}_reason", reason)


def log_artifacts(run_id: str, folder: Path, path: str) -> None:
    """Attach a folder of files (a report) to an existing run."""
    MlflowClient().log_artifacts(run_id, str(folder), path)
