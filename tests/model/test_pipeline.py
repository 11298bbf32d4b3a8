"""One pipeline: a model's feature table is built once per store and reused by train, evaluate and promote;
the CLI answers a missing store or version in one line."""

import json
import shutil

import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.specs import quick
from umrisk.cli import app
from umrisk.features.spec import MODELS_DIR, SpecError
from umrisk.training import commands
from umrisk.training import train as train_module
from umrisk.training.feature_cache import feature_table


@pytest.fixture
def store(small_store, tmp_path):
    """A copy of the small store with no cached tables."""
    out = tmp_path / "store"
    shutil.copytree(small_store, out, ignore=shutil.ignore_patterns("features"))
    return out


@pytest.fixture
def builds(monkeypatch):
    """Counts the feature tables actually built."""
    calls = []
    real = train_module.build_table

    def counting(data_dir, spec, client=None, progress=None):
        calls.append(spec.name)
        return real(data_dir, spec, client, progress)

    monkeypatch.setattr(train_module, "build_table", counting)
    return calls


def test_the_table_is_built_once_and_read_back_unchanged(store, builds):
    spec = quick("admission_180d")
    built, cached = feature_table(store, spec)
    again, cached_again = feature_table(store, quick("admission_180d", min_auroc=0.9))  # gates: same table
    assert (cached, cached_again, builds) == (False, True, ["admission_180d"])
    pd.testing.assert_frame_equal(again.frame, built.frame)
    pd.testing.assert_frame_equal(again.demographics, built.demographics)
    assert (again.features, again.categorical) == (built.features, built.categorical)
    assert again.cohort.to_dict() == built.cohort.to_dict()
    other = spec.model_copy(update={"features": spec.features.model_copy(update={"windows_days": [30, 365]})})
    feature_table(store, other)
    assert len(builds) == 2  # another feature section is another table, which replaces the first
    assert len(list((store / "features" / "cache").glob("admission_180d-*.parquet"))) == 1


def test_a_cache_file_cut_short_is_rebuilt(store, builds):
    spec = quick("readmission_30d")
    feature_table(store, spec)
    cached = next((store / "features" / "cache").glob("readmission_30d-*.parquet"))
    cached.write_bytes(cached.read_bytes()[:1000])
    table, from_cache = feature_table(store, spec)
    assert not from_cache and len(builds) == 2 and len(table.frame) > 0


def test_train_evaluate_and_promote_build_the_table_once(store, builds, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec = quick("admission_180d")
    trained = commands.train("admission_180d", store, tmp_path / "reports", uri, spec=spec)
    evaluated = commands.evaluate("admission_180d", store, tmp_path / "eval", alias="challenger", tracking_uri=uri)
    promoted = commands.promote("admission_180d", store, tracking_uri=uri, spec=spec)
    assert builds == ["admission_180d"]
    assert evaluated["features_cached"] and promoted["promoted"]
    # the card written by evaluate shows the registered run's training split, not zeros
    card = json.loads((tmp_path / "eval" / "model_card.json").read_text())
    assert card["data"]["training_points"] == trained["split"]["train"] > 0
    assert card["data"]["test_points"] == trained["split"]["test"] > 0
    # promoting the champion again says so, from the CLI too
    assert commands.promote("admission_180d", store, tracking_uri=uri)["already_champion"]
    r = CliRunner().invoke(app, ["promote", "admission_180d", "--tracking-uri", uri])
    assert r.exit_code == 0 and f"version {trained['version']} is already champion" in r.stdout


@pytest.mark.parametrize("args, message", [
    (["evaluate", "admission_180d", "--data", "no/such/store", "--out", "x"], "no/such/store: no such store folder"),
    (["train", "admission_180d", "--data", "no/such/store"], "no/such/store: no such store folder"),
    (["promote", "admission_180d"], "umrisk-admission_180d has no alias challenger"),
    (["evaluate", "admission_180d", "--data", ".", "--out", "x", "--version", "7"],
     "umrisk-admission_180d has no version 7"),
])
def test_a_missing_store_or_version_is_one_line_and_exit_2(tmp_path, args, message):
    r = CliRunner().invoke(app, [*args, "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert r.stderr.strip().count("\n") == 0 and message in r.stderr


def test_gates_print_values_and_limits_to_three_decimals():
    lines = commands.gate_lines({"gates": [
        {"gate": "AUROC at least the minimum", "value": 0.71234567, "limit": 0.6499999999, "ok": True},
        {"gate": "calibration slope within bounds", "value": 1.3, "limit": [0.8, 1.2], "ok": False}]})
    assert lines == ["[pass] AUROC at least the minimum: 0.712 (limit 0.650)",
                     "[FAIL] calibration slope within bounds: 1.300 (limit 0.800-1.200)"]


def test_demo_models_default_to_every_shipped_spec():
    from umrisk.demo import model_names

    assert model_names() == sorted(p.stem for p in MODELS_DIR.glob("*.yaml")) and len(model_names()) >= 2
    assert model_names(" admission_180d ,") == ["admission_180d"]
    with pytest.raises(SpecError, match="no_such_model"):
        model_names("admission_180d,no_such_model")
    r = CliRunner().invoke(app, ["demo", "--models", "no_such_model", "--no-serve"])
    assert r.exit_code == 2 and "no_such_model" in r.stderr


def _helps(command):
    yield command.help or ""
    for p in command.params:
        yield getattr(p, "help", None) or ""
    for sub in getattr(command, "commands", {}).values():
        yield from _helps(sub)


def test_help_texts_are_plain():
    import typer

    marked = [h for h in _helps(typer.main.get_command(app)) if "`" in h or "**" in h]
    assert marked == []
