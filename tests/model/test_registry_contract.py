"""The registered version is the contract: spec, catalog and feature list stored with it, and an artifact
digest checked before anything is unpickled."""

from pathlib import Path
from urllib.parse import unquote, urlparse

import mlflow
import numpy as np
import pandas as pd
import pytest

from tests.specs import quick
from umrisk.features.spec import parse_spec
from umrisk.training import registry
from umrisk.training.model import RiskModel

FEATURES = ["x1", "x2", "colour"]


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    """A small (unfitted) model registered twice in a fresh SQLite tracking store."""
    root = tmp_path_factory.mktemp("registry")
    registry.configure(f"sqlite:///{root / 'mlflow.db'}")
    rng = np.random.default_rng(0)
    n = 3000
    X = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.poisson(2, n).astype("int64"),
                      "colour": rng.choice(["red", "blue"], n)})
    model = RiskModel(FEATURES, ["colour"], {"num_leaves": 7})  # the registry never needs it fitted
    spec = quick("admission_180d")
    catalog = [{"name": c, "description": c} for c in FEATURES]
    versions = [registry.log_and_register(
        model_name="contract", risk_model=model, spec=spec.model_dump(mode="json"), catalog=catalog, example=X,
        params={}, metrics={"n_train": 2000.0}, fingerprint={"sha256": "0" * 64, "rows": {}}, tags={})
        for _ in range(2)]
    return {"root": root, "spec": spec, "catalog": catalog, "versions": versions}


def _stored_file(version: str, name: str) -> Path:
    uri = mlflow.MlflowClient().get_model_version_download_uri("umrisk-contract", version)
    return Path(unquote(urlparse(uri).path)) / name


def test_stored_spec_catalog_and_features_round_trip(registered):
    wrapped, mv = registry.load("contract", alias="challenger")
    assert registry.stored_spec(wrapped) == registered["spec"]
    assert parse_spec(wrapped.spec) == registered["spec"]
    assert wrapped.catalog == registered["catalog"] and wrapped.risk_model.features == FEATURES
    assert len(mv.tags[registry.DIGEST_TAG]) == 64
    run_files = {a.path for a in mlflow.MlflowClient().list_artifacts(mv.run_id, "lineage")}
    assert {"lineage/spec.json", "lineage/catalog.json", "lineage/features.json"} <= run_files


def test_a_corrupt_artifact_is_refused_before_unpickling(registered, monkeypatch):
    version = registered["versions"][0].version
    pkl = _stored_file(version, "python_model.pkl")
    original = pkl.read_bytes()
    unpickled = []
    monkeypatch.setattr(mlflow.pyfunc, "load_model", lambda *a, **k: unpickled.append(a))
    try:
        pkl.write_bytes(original[:100] + bytes([original[100] ^ 1]) + original[101:])
        with pytest.raises(registry.ArtifactTampered, match=rf"umrisk-contract version {version} does not match "
                                                            "the digest recorded at registration"):
            registry.load("contract", version=version)
        assert unpickled == []
    finally:
        pkl.write_bytes(original)


def test_a_version_without_a_digest_is_refused(registered):
    version = registered["versions"][0].version
    client = mlflow.MlflowClient()
    digest = client.get_model_version("umrisk-contract", version).tags[registry.DIGEST_TAG]
    client.delete_model_version_tag("umrisk-contract", version, registry.DIGEST_TAG)
    try:
        with pytest.raises(registry.ArtifactUnverified, match=rf"umrisk-contract version {version} has no digest"):
            registry.load("contract", version=version)
    finally:
        client.set_model_version_tag("umrisk-contract", version, registry.DIGEST_TAG, digest)
    registry.load("contract", version=version)


@pytest.mark.parametrize("kwargs", [{"version": "99"}, {"alias": "champion"}])
def test_a_missing_version_or_alias_is_its_own_one_line_error(registered, kwargs):
    with pytest.raises(registry.NoSuchVersion) as err:
        registry.load("contract", **kwargs)
    assert "\n" not in str(err.value) and "umrisk-contract has no" in str(err.value)
    with pytest.raises(registry.NoSuchVersion, match="umrisk-never_trained has no alias champion"):
        registry.load("never_trained")


def test_digest_leaves_out_what_mlflow_writes_when_any_process_loads_the_model(tmp_path):
    """mlflow.pyfunc.load_model('models:/...') writes registered_model_meta into the stored folder."""
    (tmp_path / "python_model.pkl").write_bytes(b"xy")
    first = registry.artifact_digest(tmp_path)
    (tmp_path / "registered_model_meta").write_text("model_name: umrisk-x\nmodel_version: '1'\n")
    assert registry.artifact_digest(tmp_path) == first


def test_digest_covers_paths_and_bytes(tmp_path):
    (tmp_path / "a").write_bytes(b"xy")
    first = registry.artifact_digest(tmp_path)
    (tmp_path / "a").rename(tmp_path / "b")
    assert registry.artifact_digest(tmp_path) != first
    (tmp_path / "b").write_bytes(b"xz")
    (tmp_path / "b").rename(tmp_path / "a")
    assert registry.artifact_digest(tmp_path) != first
