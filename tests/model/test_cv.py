"""Training on all training points: member folds, the cross-validated model, its budget, its intervals."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from tests.specs import quick
from umrisk.features.spec import LightGBMSpec, SplitSpec, TuningSpec, load_spec
from umrisk.training.metrics import evaluate, paired_auroc_difference
from umrisk.training.model import RiskModel
from umrisk.training.split import member_folds, time_member_split
from umrisk.training.train import build_table, evaluate_model, fit_model, model_directions
from umrisk.training.tune import tune


def _data(n: int = 4000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, pd.Series]:
    """Points of 1,000 members (several each): risk rises with ``visits``, falls with ``days_since``."""
    rng = np.random.default_rng(seed)
    visits = rng.poisson(1.0, n)
    days = np.where(rng.random(n) < 0.4, np.nan, rng.uniform(1, 700, n))
    colour = rng.choice(["red", "green", "blue"], n)
    noise = rng.normal(size=n)
    logit = -2.5 + 0.6 * visits + np.where(np.isnan(days), 0.0, 1.0 - days / 350) + 0.3 * (colour == "red")
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    X = pd.DataFrame({"visits": visits, "days_since": days, "colour": colour, "noise": noise})
    return X, y, pd.Series([f"M{i % 1000:04d}" for i in range(n)])


FEATURES = ["visits", "days_since", "colour", "noise"]


def test_member_folds_hold_every_member_out_once():
    groups = pd.Series([f"M{i % 37}" for i in range(500)])
    folds = member_folds(groups, len(groups), k=5, seed=3)
    held = np.concatenate([h for _, h in folds])
    assert sorted(held.tolist()) == list(range(500))
    for fit_rows, held_rows in folds:
        assert not set(groups.iloc[fit_rows]) & set(groups.iloc[held_rows])
    sizes = [groups.iloc[h].nunique() for _, h in folds]
    assert max(sizes) - min(sizes) <= 1
    again = member_folds(groups.sample(frac=1, random_state=1).sort_index(), len(groups), k=5, seed=3)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again, strict=True))
    with pytest.raises(ValueError, match="cannot fill"):
        member_folds(pd.Series(["a", "b"]), 2, k=5)


def test_split_trains_on_every_earlier_point_of_the_other_members(small_store):
    f = build_table(small_store, load_spec("admission_180d")).frame
    s = time_member_split(f, SplitSpec(test_fraction=0.25, test_member_fraction=0.3))
    test_members = set(f["member_id"].iloc[s.test])
    early_others = (f["as_of"] < s.cut) & ~f["member_id"].isin(test_members)
    assert np.array_equal(s.train, np.flatnonzero(early_others))
    assert len(s.valid) == len(s.calib) == 0 and s.sizes()["train"] == len(s.train)


def test_risk_model_follows_scikit_learn_and_refits_on_all_points():
    X, y, groups = _data()
    model = RiskModel(FEATURES, ["colour"], {"num_leaves": 7, "min_child_samples": 40}, cv_folds=4,
                      calibration="platt")
    assert model.get_params()["cv_folds"] == 4
    assert clone(model).set_params(cv_folds=3).get_params()["cv_folds"] == 3
    assert model.fit(X, y, groups=groups) is model
    assert model.best_iteration_ == model.cv_["rounds"] == model.booster_.num_trees()
    assert model.cv_["folds"] == 4 and model.calibrator_.method == "platt"
    assert len(model.oof_) == len(y) and 0.6 < model.cv_["oof_auroc"] < 0.95
    # the refit saw every point: its training AUROC beats the held-out one
    assert evaluate(y, model.predict_proba(X), n_boot=0)["auroc"] > model.cv_["oof_auroc"]
    assert set(model.predict(X)) <= {0, 1}


def test_monotone_constraints_hold_and_missing_is_the_low_risk_end():
    X, y, groups = _data(seed=1)
    # "noise" is declared increasing: the model may not let it lower the risk, whatever the sample says
    model = RiskModel(FEATURES, ["colour"], {"num_leaves": 15, "min_child_samples": 20}, cv_folds=3,
                      monotone={"visits": 1, "days_since": -1, "noise": 1, "colour": 1}).fit(X, y, groups)
    assert model.monotone_constraints() == [1, -1, 0, 1]
    row = X.iloc[[0] * 50].reset_index(drop=True)
    for col, grid, sign in (("visits", np.arange(50) % 10, 1), ("days_since", np.linspace(1, 700, 50), -1),
                            ("noise", np.linspace(-3, 3, 50), 1)):
        p = model.predict_raw(row.assign(**{col: np.sort(grid)}))
        assert np.all(sign * np.diff(p) >= -1e-12), col
    never = model.predict_raw(row.head(1).assign(days_since=np.nan))
    assert never <= model.predict_raw(row.head(1).assign(days_since=700.0)) + 1e-12


def test_tuning_stays_within_its_budget():
    X, y, groups = _data(n=20000, seed=2)
    budget = TuningSpec(n_trials=200, timeout_seconds=3)
    start = time.monotonic()
    params, summary = tune(X, y, groups, FEATURES, ["colour"], LightGBMSpec(), budget, cv_folds=3)
    took = time.monotonic() - start
    assert took < budget.timeout_seconds + 2, summary
    assert summary["stopped_by"] == "budget" and 1 <= summary["trials"] < 200
    assert params["min_child_samples"] >= summary["limits"]["min_child_samples"]


def test_few_events_get_few_large_leaves():
    X, y, groups = _data(n=3000, seed=4)
    y = np.zeros_like(y)
    y[:60] = 1  # 60 events
    params, summary = tune(X, y, groups, FEATURES, ["colour"], LightGBMSpec(), TuningSpec(n_trials=0))
    assert params["num_leaves"] == 4 and params["min_child_samples"] >= 500


def test_paired_lead_is_zero_against_itself_and_covers_its_estimate():
    rng = np.random.default_rng(5)
    p = rng.beta(1, 8, 3000)
    y = (rng.random(3000) < p).astype(int)
    assert paired_auroc_difference(y, p, p, n_boot=50) == (0.0, 0.0, 0.0)
    diff, lo, hi = paired_auroc_difference(y, p, p + rng.normal(0, 0.2, 3000), n_boot=200)
    assert 0 < lo < diff < hi
    m = evaluate(y, p, n_boot=100)
    for k in ("auroc", "auprc", "brier", "ici", "calibration_slope"):
        assert m[f"{k}_ci_low"] <= m[k] <= m[f"{k}_ci_high"], k


def test_fit_model_reports_cross_validation_and_leads(small_store):
    spec = quick("readmission_30d")
    table = build_table(small_store, spec)
    trained = fit_model(table, spec)
    assert trained.cv["folds"] == spec.model.split.cv_folds and trained.cv["rounds"] >= 1
    assert len(trained.oof) == len(trained.split.train) and "oof_auroc" in trained.cv
    ev = evaluate_model(trained.model, table, trained.split.test, spec, n_boot=50)
    assert set(ev["leads"]) == {"lace", "hospital"}
    for lead in ev["leads"].values():
        assert lead["lo"] <= lead["diff"] <= lead["hi"]


def test_a_spec_direction_must_name_a_feature_and_agree_with_the_catalog():
    spec = load_spec("readmission_30d")
    def with_directions(d):
        lgbm = spec.model.lightgbm.model_copy(update={"directions": d})
        return spec.model_copy(update={"model": spec.model.model_copy(update={"lightgbm": lgbm})})
    assert model_directions(spec)["paid_365d"] == 1 and model_directions(spec)["days_since_inpatient"] == -1
    with pytest.raises(ValueError, match="not a feature"):
        model_directions(with_directions({"no_such_feature": "increasing"}))
    with pytest.raises(ValueError, match="not in the catalog"):
        model_directions(with_directions({"n_inpatient_365d": "decreasing"}))
