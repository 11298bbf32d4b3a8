"""Hyperparameter search scored by the member-grouped cross-validated log loss, within the spec's budget
(Optuna, TPE sampler, seeded).

Before anything is searched, the parameters are held to limits that scale with the number of events
(``event_limits``), so a model on a few hundred events cannot grow leaves of a handful of points. The
search stops at ``n_trials``, or before a trial that is not expected to end within ``timeout_seconds``
(its cost estimated from the longest trial so far); a trial still running at the deadline stops boosting
and is scored on the rounds it reached. A progress bar on stderr shows the trial, the best score and the
time left (hidden when stderr is not a terminal).
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Mapping

import numpy as np
import optuna
import pandas as pd
from tqdm.auto import tqdm

from umrisk.features.spec import LightGBMSpec, TuningSpec
from umrisk.training.model import RiskModel, cross_validate, lgb_params
from umrisk.training.split import member_folds

SEARCHED = ("learning_rate", "num_leaves", "min_child_samples", "feature_fraction", "lambda_l2")


def event_limits(y: np.ndarray, base: LightGBMSpec) -> dict[str, int]:
    """The smallest leaf and the most leaves the events allow.

    A leaf must hold ``min_leaf_events`` expected events (``min_child_samples`` at least that over the
    prevalence) and a tree has at most one leaf per ``events_per_leaf`` events (at least 4 leaves).

    >>> event_limits(np.r_[np.ones(200), np.zeros(1800)], LightGBMSpec())
    {'events': 200, 'min_child_samples': 100, 'num_leaves': 10}
    """
    y = np.asarray(y)
    events = int(y.sum())
    prevalence = events / max(len(y), 1)
    floor = math.ceil(base.min_leaf_events / prevalence) if prevalence > 0 else 1
    cap = max(4, int(events // base.events_per_leaf))
    return {"events": events, "min_child_samples": max(1, floor), "num_leaves": cap}


def limited(params: Mapping, limits: Mapping[str, int]) -> dict:
    """``params`` with ``min_child_samples`` raised to the floor and ``num_leaves`` lowered to the cap."""
    out = dict(params)
    out["min_child_samples"] = max(int(out.get("min_child_samples", 20)), limits["min_child_samples"])
    out["num_leaves"] = min(int(out.get("num_leaves", 31)), limits["num_leaves"])
    return out


def tune(X: pd.DataFrame, y: np.ndarray, groups: pd.Series | np.ndarray | None, features: list[str],
         categorical: list[str], base: LightGBMSpec, budget: TuningSpec, cv_folds: int = 5, seed: int = 1,
         monotone: Mapping[str, int] | None = None) -> tuple[dict, dict]:
    """Best LightGBM parameters (the base ones, held to the event limits, updated) and a summary of the
    search. Every trial is scored by the mean held-out log loss over the same member folds the model's own
    cross-validation uses."""
    y = np.asarray(y).astype(int)
    limits = event_limits(y, base)
    params = limited(base.params, limits)
    summary: dict = {"trials": 0, "limits": limits, "budget_seconds": budget.timeout_seconds}
    if budget.n_trials == 0:
        return params, summary
    probe = RiskModel(features, categorical, monotone=monotone)
    data = probe.dataset(X, y)
    folds = member_folds(groups, len(y), cv_folds, seed)
    constraints = probe.monotone_constraints()
    floor, cap = limits["min_child_samples"], limits["num_leaves"]
    ranges = {
        "learning_rate": budget.learning_rate,
        "num_leaves": (min(budget.num_leaves[0], cap), min(budget.num_leaves[1], cap)),
        "min_child_samples": (max(budget.min_child_samples[0], floor), max(budget.min_child_samples[1], floor)),
        "feature_fraction": budget.feature_fraction,
        "lambda_l2": budget.lambda_l2,
    }

    def suggest(trial: optuna.Trial) -> dict:
        return {
            "learning_rate": trial.suggest_float("learning_rate", *ranges["learning_rate"], log=True),
            "num_leaves": trial.suggest_int("num_leaves", *ranges["num_leaves"], log=True),
            "min_child_samples": trial.suggest_int("min_child_samples", *ranges["min_child_samples"], log=True),
            "feature_fraction": trial.suggest_float("feature_fraction", *ranges["feature_fraction"]),
            "lambda_l2": trial.suggest_float("lambda_l2", *ranges["lambda_l2"]),
        }

    optuna.logging.set_verbosity(logging.WARNING)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.enqueue_trial({k: params[k] for k in SEARCHED if k in params}, skip_if_exists=True)
    start = time.monotonic()
    deadline = start + budget.timeout_seconds
    longest = 0.0
    stopped = "trials"
    bar = tqdm(total=budget.n_trials, desc="tuning", unit="trial", file=sys.stderr, disable=None, leave=False)
    try:
        for _ in range(budget.n_trials):
            now = time.monotonic()
            if now + longest > deadline:
                stopped = "budget"
                break
            trial = study.ask()
            trial_params = lgb_params({**params, **suggest(trial)}, seed, constraints, rows=len(y))
            began = time.monotonic()
            rounds, loss, _ = cross_validate(trial_params, data, folds, base.num_boost_round,
                                             base.early_stopping_rounds, deadline=deadline)
            longest = max(longest, time.monotonic() - began)
            trial.set_user_attr("rounds", rounds)
            study.tell(trial, loss)
            bar.update(1)
            bar.set_postfix(best=f"{study.best_value:.5f}", left=f"{max(0.0, deadline - time.monotonic()):.0f}s")
    finally:
        bar.close()
    params.update(study.best_params)
    done = [t for t in study.trials if t.value is not None]
    summary.update({"trials": len(done), "best_cv_logloss": study.best_value, "first_cv_logloss": done[0].value,
                    "best_rounds": study.best_trial.user_attrs.get("rounds"), "cv_folds": cv_folds,
                    "seconds": time.monotonic() - start, "stopped_by": stopped})
    return params, summary
