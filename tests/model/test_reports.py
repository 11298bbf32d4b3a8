"""What the report and the model card tell a data scientist: subgroups to look at, leads with intervals,
gate values, synthetic data said as such, and a calibration plot that stays on its axes."""

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from umrisk.features.spec import GateSpec
from umrisk.training.pipeline import evaluation, reviewed
from umrisk.training.report import SYNTHETIC, card_markdown, model_card, plots, write_report
from umrisk.training.subgroup_checks import review_subgroups


def _ev(seed: int = 0, n: int = 6000):
    rng = np.random.default_rng(seed)
    risk = rng.beta(2, 14, n)
    y = (rng.random(n) < risk).astype(int)
    group = pd.Series(rng.choice(["a", "b", "c", "tiny"], n, p=[0.45, 0.3, 0.245, 0.005]))
    p = risk.copy()
    p[group == "b"] *= 2.0  # over-predicted: O/E about 0.5
    c = (group == "c").to_numpy()
    p[c] = rng.permutation(p[c])  # no discrimination inside c
    p = np.clip(p, 0.001, 0.999)
    lace = risk + rng.normal(0, 0.2, n)
    return evaluation(y, p, groups={"grp": group}, capacity=[0.05], min_subgroup_size=50,
                      baseline_scores={"lace": lace}, n_boot=100)


def test_subgroups_off_calibration_far_below_and_too_small_are_named():
    ev = reviewed(_ev(), GateSpec())
    status = ev["subgroups"].set_index("level")["status"]
    assert status["a"] == "ok"
    assert "calibration off" in status["b"]
    assert "AUROC far below the whole" in status["c"]
    assert status["tiny"] == "too small to judge"
    assert any(f.startswith("grp = b: observed/expected") for f in ev["flags"])
    assert any(f.startswith("grp = c: AUROC") for f in ev["flags"])
    assert not any("tiny" in f or "grp = a" in f for f in ev["flags"])
    sub = ev["subgroups"].set_index("level")
    assert sub.loc["a", "auroc_ci_low"] < sub.loc["a", "auroc"] < sub.loc["a", "auroc_ci_high"]
    assert np.isnan(sub.loc["tiny", "auroc_ci_low"])


def test_a_single_outcome_or_few_events_is_too_small_to_judge():
    sub = pd.DataFrame([{"group": "g", "level": "x", "n": 500, "events": 4, "observed": 0.008, "expected": 0.02,
                         "auroc": 0.9, "oe_ratio": 0.4}])
    out, flags = review_subgroups(sub, 0.7)
    assert out["status"].tolist() == ["too small to judge"] and flags == []


def _card(ev, synthetic=False):
    about = {"name": "m", "task": "table", "description": "event in t.csv", "intended_use": "rank",
             "label_definition": {}, "synthetic": synthetic}
    return model_card(about=about, version="2", run_id="r", ev=ev, cohort={}, split={"train": 10, "test": 5},
                      lineage={}, calibration="platt", trained_on=("a", "b"), tested_on=("c", "d"))


def test_card_and_report_carry_leads_gates_flags_and_synthetic(tmp_path):
    ev = reviewed(_ev(), GateSpec())
    ev["leads"]["champion"] = {"diff": 0.012, "lo": -0.004, "hi": 0.03, "version": "1"}
    card = _card(ev, synthetic=True)
    md = card_markdown(card)
    assert SYNTHETIC in md and card["synthetic_data"] == SYNTHETIC
    lead = ev["leads"]["lace"]
    assert lead["lo"] < lead["diff"] < lead["hi"]
    assert f"over lace: {lead['diff']:+.3f} ({lead['lo']:+.3f} to {lead['hi']:+.3f})" in md
    assert "over champion version 1: +0.012 (-0.004 to +0.030)" in md
    assert "AUROC at least the minimum" in md and "calibration slope within bounds" in md
    assert "Subgroups to look at" in md and "grp = b: observed/expected" in md
    html = write_report(tmp_path, card, ev, pd.DataFrame({"feature": ["x"], "gain": [1.0], "splits": [1]}),
                        None, None).read_text()
    assert SYNTHETIC in html and "grp = c: AUROC" in html and "paired bootstrap" in html
    assert json.loads((tmp_path / "model_card.json").read_text())["flags"] == ev["flags"]
    real = card_markdown(_card(ev, synthetic=False))
    assert SYNTHETIC not in real


def test_calibration_curve_stays_on_its_axes_and_shap_has_a_colour_bar(tmp_path, monkeypatch):
    """A few very high predictions must not push the smoothed curve off the plot, nor squeeze the deciles."""
    ev = reviewed(_ev())
    ev["p"] = ev["p"].copy()
    ev["p"][:5] = 0.99
    saved = {}

    def keep(fig, path):
        saved[path.name] = fig
        return path.name

    monkeypatch.setattr("umrisk.training.report._save", keep)
    values = pd.DataFrame({"x": np.arange(50.0), "k": pd.Categorical(list("ab") * 25)})
    contributions = pd.DataFrame({"x": np.linspace(-1, 1, 50), "k": np.zeros(50), "bias": np.zeros(50)})
    plots(tmp_path, ev, contributions, values)
    shap = saved["shap_summary.png"]
    assert len(shap.axes) == 2 and shap.axes[1].get_ylabel().startswith("feature value")
    ax = saved["calibration.png"].axes[0]
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    for line in ax.get_lines():
        x, y = line.get_data()
        assert np.all((np.asarray(x) >= x0) & (np.asarray(x) <= x1 + 1e-9))
        assert np.all((np.asarray(y) >= y0) & (np.asarray(y) <= y1 + 1e-9))
    assert x1 < 0.9  # the axes follow the bulk of the predictions, not the five outliers
    assert ax.get_title().startswith("Calibration on the test set")
    plt.close("all")


def test_recalibration_repairs_a_drifted_calibration_and_keeps_the_ranking():
    from umrisk.training.metrics import evaluate
    from umrisk.training.recalibrate import Recalibrated, fit_recalibration

    rng = np.random.default_rng(5)
    true = rng.beta(2, 12, 30_000)
    y = (rng.random(len(true)) < true).astype(int)
    drifted = np.clip(true * 0.6, 1e-4, 1)  # the population's risk rose: the model under-predicts
    for method in ("logistic", "in-the-large"):
        a, b = fit_recalibration(drifted, y, method)
        p = Recalibrated(None, a, b, method).transform(drifted)
        m = evaluate(y, p, n_boot=0)
        assert abs(m["oe_ratio"] - 1) < 0.02 and m["auroc"] == pytest.approx(evaluate(y, drifted, n_boot=0)["auroc"])
        assert (b == 1.0) == (method == "in-the-large")


def test_recalibrate_registers_a_challenger_with_the_same_trees(small_store, tmp_path):
    from typer.testing import CliRunner

    from tests.specs import quick
    from umrisk.cli import app
    from umrisk.training import commands, registry

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = commands.train("admission_180d", small_store, tmp_path / "reports", uri, spec=quick("admission_180d"))
    res = CliRunner().invoke(app, ["recalibrate", "admission_180d", "--data", str(small_store), "--version",
                                   first["version"], "--reports", str(tmp_path / "reports"), "--tracking-uri", uri,
                                   "--json"])
    assert res.exit_code == 0, res.output
    r = json.loads([line for line in res.output.splitlines() if line.startswith("{")][-1])
    assert r["recalibrated_from"] == first["version"] and r["version"] == str(int(first["version"]) + 1)
    assert r["test"]["auroc"] == pytest.approx(first["test"]["auroc"], abs=1e-9)  # a monotone map: same ranking
    assert abs(r["test"]["calibration_intercept"]) < 0.05 and abs(r["test"]["calibration_slope"] - 1) < 0.05
    registry.configure(uri)
    wrapped, mv = registry.load("admission_180d", alias="challenger")
    assert str(mv.version) == r["version"] and mv.tags["recalibrated_from"] == first["version"]
    assert "logistic recalibration" in wrapped.risk_model.calibrator_.method
    card = json.loads((Path(r["report_dir"]) / "model_card.json").read_text())
    assert any(n.startswith(f"Recalibrated from version {first['version']}") for n in card["notes"])
    assert card["synthetic_data"] == SYNTHETIC  # the test store is generated
    bad = CliRunner().invoke(app, ["recalibrate", "admission_180d", "--data", str(small_store), "--method", "x",
                                   "--tracking-uri", uri])
    assert bad.exit_code == 2 and "in-the-large" in bad.output
