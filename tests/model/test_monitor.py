"""umrisk monitor: drift measures, alerts, and the monitor on a known drift and on a stable population."""

import json

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from tests.specs import quick
from umrisk.cli import app
from umrisk.features.spec import MonitoringSpec, load_spec
from umrisk.features.synthetic.generate import GenerateConfig, generate
from umrisk.training import commands, registry
from umrisk.training.monitor import advice, drift, open_alerts, performance_alerts, psi_from_counts, thresholds

START = "2025-07"


# ---------------------------------------------------------------------------------------------- measures
def test_psi_is_zero_for_the_same_distribution_and_grows_with_the_shift():
    rng = np.random.default_rng(1)
    ref = pd.Series(rng.normal(0, 1, 20000))
    same = drift(ref, pd.Series(rng.normal(0, 1, 5000)))
    small = drift(ref, pd.Series(rng.normal(0.1, 1, 5000)))
    large = drift(ref, pd.Series(rng.normal(0.7, 1, 5000)))
    assert same["psi"] < 0.01 < small["psi"] < 0.1 < 0.25 < large["psi"]
    assert same["test"] == "ks" and same["p_value"] > 0.001 and large["p_value"] < 1e-6


def test_counts_and_categories_are_binned_by_value_and_unseen_values_count():
    ref = pd.Series(["medicare"] * 50 + ["medicaid"] * 50, dtype="category")
    cur = pd.Series(["medicare"] * 50 + ["commercial"] * 50, dtype="category")
    d = drift(ref, cur)
    assert d["test"] == "chi2" and d["psi"] > 1
    counts = pd.Series(np.r_[np.zeros(900), np.ones(100)])
    assert drift(counts, counts.copy())["psi"] == 0.0
    with_nan = pd.Series(np.r_[np.zeros(500), np.full(500, np.nan)])
    assert drift(counts, with_nan)["psi"] > 1  # half the points lost the value: drift, not an error
    assert psi_from_counts(np.array([0, 0]), np.array([0, 0])) == 0.0


def _perf(oe, oe_ci, auroc=0.74, auroc_ci=(0.72, 0.76), ici=0.01, subgroups=()):
    return {"n": 5000, "events": 400, "auroc": auroc, "auroc_ci": list(auroc_ci), "oe_ratio": oe,
            "oe_ci": list(oe_ci), "ici": ici, "subgroups": list(subgroups)}


def test_performance_alerts_need_the_threshold_and_the_evidence():
    m = MonitoringSpec()
    assert performance_alerts(_perf(1.0, (0.9, 1.1)), m, 0.74, "2026-01") == []
    assert performance_alerts(_perf(0.78, (0.7, 1.02)), m, 0.74, "2026-01") == []  # interval reaches 1
    [a] = performance_alerts(_perf(0.7, (0.62, 0.79)), m, 0.74, "2026-01")
    assert a["what"] == "observed/expected" and a["raised"] == "2026-01"
    whats = {a["what"] for a in performance_alerts(_perf(1.0, (0.9, 1.1), auroc=0.66, auroc_ci=(0.63, 0.69),
                                                          ici=0.08), m, 0.74, "2026-01")}
    assert whats == {"AUROC", "ICI"}
    assert performance_alerts(_perf(1.0, (0.9, 1.1), auroc=0.68, auroc_ci=(0.6, 0.75)), m, 0.74, "x") == []
    noisy = {"group": "sex", "level": "F", "n": 900, "events": 40, "auroc": 0.7, "oe_ratio": 0.7,
             "oe_ci": [0.55, 0.95]}
    clear = {**noisy, "level": "M", "oe_ratio": 0.6, "oe_ci": [0.5, 0.72]}
    [a] = performance_alerts(_perf(1.0, (0.9, 1.1), subgroups=[noisy, clear]), m, 0.74, "x")
    assert a["what"] == "observed/expected in sex M"


def test_open_alerts_and_advice_only_for_an_open_performance_alert():
    drift_alert = {"kind": "drift", "what": "score", "raised": "2025-08", "message": "m"}
    perf_alert = {"kind": "performance", "what": "observed/expected", "raised": "2026-01", "message": "O/E low"}
    months = [{"month": "2025-07", "alerts": [perf_alert], "performance": {"status": "judged"}},
              {"month": "2025-08", "alerts": [drift_alert], "performance": {"status": "labels pending"}}]
    assert open_alerts(months) == [drift_alert, perf_alert]
    a = advice("admission_180d", "store", months, open_alerts(months))
    assert a["window"] == {"from": "2025-07", "to": "2025-07"}  # from the first alerted month to the last judged
    assert any(c.startswith("umrisk train admission_180d") for c in a["commands"])
    assert all("promote" not in c or c.startswith("umrisk promote") for c in a["commands"])
    early_cut = advice("admission_180d", "store", months, open_alerts(months), "2025-03")
    late_cut = advice("admission_180d", "store", months, open_alerts(months), "2025-08")
    assert "does not learn from them" in early_cut["text"] and "in both" in late_cut["text"]
    assert advice("admission_180d", "store", months, [drift_alert]) is None
    assert open_alerts([]) == []


def test_thresholds_come_from_todays_spec_file_else_the_stored_one():
    today = load_spec("admission_180d")
    stored = today.model_copy(update={"monitoring": MonitoringSpec(max_score_psi=0.5)})
    assert thresholds("admission_180d", stored) == today.monitoring
    assert thresholds("no_such_model", stored).max_score_psi == 0.5


# ------------------------------------------------------------------------------ on generated populations
def _trained(tmp_path_factory, scenario):
    root = tmp_path_factory.mktemp(scenario or "stable")
    data = root / "store"
    generate(GenerateConfig(members=4000, years=3, seed=11, scenario=scenario), data)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    commands.train("admission_180d", data, root / "reports", uri, spec=quick("admission_180d"))
    return {"data": data, "uri": uri, "root": root}


@pytest.fixture(scope="module")
def care_program(tmp_path_factory):
    return _trained(tmp_path_factory, "care_program")


@pytest.fixture(scope="module")
def stable(tmp_path_factory):
    return _trained(tmp_path_factory, None)


def _run(store, out, *extra):
    result = CliRunner().invoke(app, ["monitor", "admission_180d", "--data", str(store["data"]), "--out", str(out),
                                      "--version", "1", "--tracking-uri", store["uri"], "--json", *extra])
    return result.exit_code, json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_monitor_alerts_within_two_months_of_a_known_drift_and_never_before(care_program, tmp_path):
    code, r = _run(care_program, tmp_path / "monitor")
    months = [e["month"] for e in r["months"]]
    assert months[0] == "2025-03" and months[-1] == "2025-12"  # after trained_to, to the end of the data
    raised = sorted(a["raised"] for e in r["months"] for a in e["alerts"])
    assert raised and raised[0] >= START
    assert raised[0] <= "2025-09"  # within two months of the start
    assert code == 1 and r["status"] == "alert" and r["open_alerts"]
    moved = next(e for e in r["months"] if e["month"] == raised[0])["moved_most"][0]
    assert "telehealth" in moved["feature"] and "now" in moved["in_words"]
    # the files, the run and the version's tags
    out = tmp_path / "monitor"
    assert {"monitor.json", "monitor.png", "report.html"} <= {p.name for p in out.iterdir()}
    registry.configure(care_program["uri"])
    mv = MlflowClient().get_model_version(registry.registered_name("admission_180d"), "1")
    assert mv.tags["monitoring_status"] == "alert" and mv.tags["monitoring_alerts"].split(":")[0] != "0"
    run = MlflowClient().get_run(mv.tags["monitoring_run_id"])
    assert run.data.tags["umrisk.model_version"] == "1" and run.data.tags["umrisk.training_run"] == mv.run_id


@pytest.mark.slow
def test_monitor_stays_quiet_on_inputs_of_a_stable_population(stable, tmp_path):
    code, r = _run(stable, tmp_path / "monitor")
    assert all(e["month"] and isinstance(e["alerts"], list) for e in r["months"])
    assert [a for e in r["months"] for a in e["alerts"] if a["kind"] == "drift"] == []
    assert max(e["score_psi"] for e in r["months"]) < 0.05
    pending = [e for e in r["months"] if e["performance"]["status"] == "labels pending"]
    assert [e["month"] for e in pending][:1] == ["2025-08"]  # 180-day labels of August close after the data
    judged = [e for e in r["months"] if e["performance"]["status"] in ("judged", "too few points")]
    assert judged and all("auroc" in e["performance"] for e in judged)
    assert code == (1 if r["open_alerts"] else 0)


def test_monitor_refuses_a_missing_store_and_both_version_and_alias(tmp_path):
    result = CliRunner().invoke(app, ["monitor", "admission_180d", "--data", str(tmp_path / "nope"), "--out",
                                      str(tmp_path / "o"), "--version", "1", "--alias", "champion"])
    assert result.exit_code == 2 and "not both" in result.output


@pytest.fixture(scope="module")
def new_population(tmp_path_factory):
    return _trained(tmp_path_factory, "new_population")


@pytest.mark.slow
def test_monitor_sees_a_population_joining_by_its_volume(new_population, tmp_path):
    """The joining group moves line of business by a PSI under 0.25 and the score hardly: the number of points
    scored is what shows it, in the month it joins and not before."""
    code, r = _run(new_population, tmp_path / "monitor")
    first = next(e for e in r["months"] if e["alerts"])
    assert first["month"] == START and code == 1
    assert any(a["what"] == "points" and a["value"] > 0.2 for a in first["alerts"])
    assert "medicaid" in first["moved_most"][0]["in_words"]
