"""Behaviour of trained models: splits, calibration, the registry round trip, promotion, train-table."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tests.specs import quick
from umrisk.features.spec import SplitSpec, load_spec
from umrisk.features.store import load_store
from umrisk.training import commands, registry
from umrisk.training.calibrate import Calibrator, choose_calibrator
from umrisk.training.metrics import evaluate
from umrisk.training.split import time_member_split
from umrisk.training.table import TableError, train_table
from umrisk.training.train import build_table


def test_no_member_on_both_sides_of_the_split(small_store):
    table = build_table(small_store, load_spec("admission_180d"))
    f = table.frame
    for spec in (SplitSpec(test_fraction=0.25, test_member_fraction=0.3), SplitSpec(test_fraction=0.3)):
        s = time_member_split(f, spec)
        test_members = set(f["member_id"].iloc[s.test])
        assert not test_members & set(f["member_id"].iloc[s.train])
        assert f["as_of"].iloc[s.train].max() < s.cut <= f["as_of"].iloc[s.test].min()
        assert len(s.valid) == len(s.calib) == 0  # validation and calibration are cross-validated inside train


def test_calibrator_repairs_a_miscalibrated_score():
    rng = np.random.default_rng(0)
    true = rng.beta(1, 8, 40_000)
    y = (rng.random(len(true)) < true).astype(int)
    raw = np.clip(true * 2.5 + 0.05, 0, 1)  # over-predicts badly
    before = evaluate(y, raw, n_boot=0)
    cal, scores = choose_calibrator(raw[:20_000], y[:20_000])
    after = evaluate(y[20_000:], cal.transform(raw[20_000:]), n_boot=0)
    assert before["ici"] > 0.1 and after["ici"] < 0.01
    assert set(scores) == {"isotonic", "platt"} and cal.method in scores
    assert isinstance(Calibrator("platt").fit(raw, y), Calibrator)


def test_trained_model_is_calibrated_on_its_test_set(tracking):
    t = tracking["first"]["test"]
    assert t["ici"] < 0.03
    assert 0.7 < t["calibration_slope"] < 1.3
    assert t["auroc"] > 0.65


def test_registry_round_trip_gives_identical_predictions(tracking, small_store):
    registry.configure(tracking["uri"])
    first = tracking["first"]
    wrapped, mv = registry.load("admission_180d", alias="challenger")
    assert str(mv.version) == first["version"] and (mv.tags or {})["run_id"] == first["run_id"]
    table = build_table(small_store, load_spec("admission_180d"))
    rows = table.frame.sample(200, random_state=0)
    direct = wrapped.risk_model.predict_proba(rows)
    X = rows[wrapped.risk_model.features].astype({c: "str" for c in wrapped.risk_model.categorical})
    X.to_parquet(tracking["root"] / "rows.parquet")
    code = ("import mlflow, pandas as pd, sys; mlflow.set_tracking_uri(sys.argv[1]); "
            "m = mlflow.pyfunc.load_model('models:/umrisk-admission_180d@challenger'); "
            "p = m.predict(pd.read_parquet(sys.argv[2]))['probability']; "
            "print(p.to_json(orient='values', double_precision=15))")
    out = subprocess.run([sys.executable, "-c", code, tracking["uri"], str(tracking["root"] / "rows.parquet")],
                         capture_output=True, text=True, check=True, timeout=120)
    fresh = np.array(json.loads(out.stdout.strip().splitlines()[-1]))
    np.testing.assert_allclose(fresh, direct, rtol=0, atol=1e-12)


def test_run_carries_lineage_and_report(tracking):
    import mlflow

    registry.configure(tracking["uri"])
    run = mlflow.get_run(tracking["first"]["run_id"])
    assert run.data.tags["umrisk.data_sha256"] and run.data.tags["umrisk.code_version"]
    assert "test_auroc" in run.data.metrics and "baseline_prior_365d_inpatient_auroc" in run.data.metrics
    arts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "evaluation")}
    assert {"evaluation/report.html", "evaluation/model_card.md", "evaluation/model_card.json",
            "evaluation/calibration.png"} <= arts
    card = json.loads((tracking["root"] / "reports" / "admission_180d" / f"v{tracking['first']['version']}"
                       / "model_card.json").read_text())
    assert "deny" in " ".join(card["out_of_scope"]).lower()
    assert card["metrics"]["auroc_ci_low"] < card["metrics"]["auroc"] < card["metrics"]["auroc_ci_high"]


def test_promotion_pass_fail_and_force(tracking, small_store):
    uri = tracking["uri"]
    first = commands.promote("admission_180d", small_store, tracking_uri=uri, spec=quick("admission_180d"))
    assert first["promoted"] and first["champion_after"] == tracking["first"]["version"]
    assert all(g["ok"] for g in first["gates"])
    # a second version, then gates it cannot meet: the champion stays
    second = commands.train("admission_180d", small_store, tracking["root"] / "reports", uri,
                            spec=quick("admission_180d"))
    strict = quick("admission_180d", min_auroc=0.99)
    failed = commands.promote("admission_180d", small_store, tracking_uri=uri, spec=strict)
    assert not failed["promoted"] and failed["champion_after"] == first["champion_after"]
    assert [g["gate"] for g in failed["gates"] if not g["ok"]] == ["AUROC at least the minimum"]
    assert any(g["gate"].startswith("AUROC not lower than the champion") for g in failed["gates"])
    with pytest.raises(ValueError, match="reason"):
        commands.promote("admission_180d", small_store, force=True, tracking_uri=uri, spec=strict)
    forced = commands.promote("admission_180d", small_store, force=True, reason="audit asked for it",
                              tracking_uri=uri, spec=strict)
    assert forced["promoted"] and forced["forced"] and forced["champion_after"] == second["version"]
    _, mv = registry.load("admission_180d", alias="champion")
    assert mv.tags["champion_reason"] == "forced: audit asked for it"


def test_relative_gates_catch_a_worse_challenger():
    spec = load_spec("readmission_30d")
    sub = pd.DataFrame({"group": ["sex", "sex"], "level": ["F", "M"], "auroc": [0.70, 0.60]})
    champion = {"metrics": {"auroc": 0.75, "ici": 0.01, "calibration_slope": 1.0}, "subgroups": sub}
    worse = {"metrics": {"auroc": 0.73, "ici": 0.01, "calibration_slope": 1.0},
             "subgroups": sub.assign(auroc=[0.70, 0.50])}
    failed = {g["gate"] for g in commands.gates(spec, worse, champion) if not g["ok"]}
    assert failed == {"AUROC not lower than the champion's beyond the margin",
                      "subgroup sex = M: AUROC not worse beyond the margin"}


def _uci_like(path, n=3000, seed=3):
    """A table shaped like the public UCI 'Diabetes 130-US hospitals' extract, with a known signal."""
    rng = np.random.default_rng(seed)
    inpat, emerg = rng.poisson(0.6, n), rng.poisson(0.3, n)
    diag = rng.choice(["428", "250.01", "414", "786", "V57", "?"] + [str(x) for x in range(100, 999, 3)], n)
    y = rng.random(n) < 1 / (1 + np.exp(-(-2.2 + 0.9 * inpat + 0.6 * emerg + 1.5 * (diag == "428"))))
    df = pd.DataFrame({"encounter_id": np.arange(n), "patient_nbr": rng.integers(0, n // 2, n),
                       "race": rng.choice(["Caucasian", "AfricanAmerican", "?"], n),
                       "age": rng.choice(["[50-60)", "[60-70)", "[70-80)"], n), "weight": "?",
                       "number_inpatient": inpat.astype(str), "number_emergency": emerg, "diag_1": diag,
                       "readmitted": np.where(y, "<30", rng.choice(["NO", ">30"], n))})
    df.loc[rng.random(n) < 0.05, "number_inpatient"] = "NA"
    df.to_csv(path, index=False)
    return path


def test_train_table_on_a_public_format_table(tmp_path):
    path = _uci_like(tmp_path / "diabetic_data.csv")
    r = train_table(path, "readmitted", positive="<30", group="patient_nbr", exclude=["encounter_id"],
                    reports=tmp_path / "reports", tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
                    settings=quick("readmission_30d").model)
    assert r["registered_model"] == "umrisk-diabetic_data" and r["version"] == "1"
    assert r["test"]["auroc"] > 0.65 and r["test"]["auroc_ci_low"] < r["test"]["auroc"] < r["test"]["auroc_ci_high"]
    assert "weight: empty, left out" in r["notes"]
    # the same evaluation, report, model card and run metrics as umrisk train
    out = tmp_path / "reports" / "diabetic_data" / "v1"
    assert {"report.html", "model_card.md", "model_card.json", "calibration.png", "subgroups.csv"} <= {
        f.name for f in out.iterdir()}
    card = json.loads((out / "model_card.json").read_text())
    assert card["data"]["training_points"] == r["split"]["train"] and "weight: empty, left out" in card["notes"]
    import mlflow

    metrics = mlflow.get_run(r["run_id"]).data.metrics
    assert {"n_train", "n_test", "cv_oof_auroc", "test_auroc", "seconds_fit"} <= set(metrics)
    with pytest.raises(TableError, match="--positive"):
        train_table(path, "readmitted", tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    with pytest.raises(TableError, match="not in the table"):
        train_table(path, "no_such_column", tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")


def test_training_against_a_real_mlflow_server(mlflow_server, small_store, tmp_path):
    r = commands.train("admission_180d", small_store, tmp_path / "reports", mlflow_server,
                       spec=quick("admission_180d"))
    assert r["tracking_uri"] == mlflow_server and r["version"] == "1"
    code = ("import mlflow, sys; mlflow.set_tracking_uri(sys.argv[1]); "
            "m = mlflow.pyfunc.load_model('models:/umrisk-admission_180d@challenger'); "
            "print(m.metadata.signature.outputs.input_names())")
    out = subprocess.run([sys.executable, "-c", code, mlflow_server], capture_output=True, text=True, timeout=120,
                         check=True)
    assert "probability" in out.stdout
    store = load_store(small_store)
    assert len(store["members"]) == 3000
