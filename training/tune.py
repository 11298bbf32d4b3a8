"""Hyperparameter search within the spec's budget (Optuna, TPE sampler, seeded).

Each trial fits LightGBM with early stopping on the validation fold and is scored by validation log
loss; the search stops at ``n_trials`` or ``timeout_seconds``, whichever comes first.
"""

from __future__ import annotations

import logging

import lightgbm as lgb
import numpy as np
import optuna
import pandas as pd
from umrisk.features.spec import LightGBMSpec, TuningSpec
from umrisk.training.model import RiskModel


def tune(X: pd.DataFrame, y: np.ndarray, X_valid: pd.DataFrame, y_valid: np.ndarray, features: list[str],
         categorical: list[str], base: LightGBMSpec, budget: TuningSpec, seed: int = 1) -> tuple[dict, dict]:
    """Best LightGBM parameters (the base ones updated) and a summary of the search."""
    params = dict(base.params)
    if budget.n_trials == 0:
        return params, {"trials": 0}
    probe = RiskModel(features, categorical)
    probe.levels_ = {c: sorted(pd.Series(X[c]).dropna().astype(str).unique()) for c in categorical}
    # the search varies min_child_samples, which LightGBM refuses on a pre-filtered Dataset
    dtrain = lgb.Dataset(probe.prepare(X), label=y, categorical_feature=categorical, free_raw_data=False,
                         params={"feature_pre_filter": False})
    dvalid = lgb.Dataset(probe.prepare(X_valid), label=y_valid, reference=dtrain, free_raw_data=False)

    def objective(trial: optuna.Trial) -> float:
        trial_params = {
            **params, "metric": "binary_logloss", "verbosity": -1, "seed": seed, "deterministic": True,
            "force_row_wise": True, "num_threads": 2,
            "learning_rate": trial.suggest_float("learning_rate", *budget.learning_rate, log=True),
            "num_leaves": trial.suggest_int("num_leaves", *budget.num_leaves, log=True),
            "min_child_samples": trial.suggest_int("min_child_samples", *budget.min_child_samples, log=True),
            "feature_fraction": trial.suggest_float("feature_fraction", *budget.feature_fraction),
            "lambda_l2": trial.suggest_float("lambda_l2", *budget.lambda_l2),
        }
        booster = lgb.train(trial_params, dtrain, num_boost_round=base.num_boost_round, valid_sets=[dvalid],
                            callbacks=[lgb.early_stopping(base.early_stopping_rounds, verbose=False)])
        return float(booster.best_score["valid_0"]["binary_logloss"])

    optuna.logging.set_verbosity(logging.WARNING)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.enqueue_trial({k: params[k] for k in ("learning_rate", "num_leaves", "min_child_samples",
                                                "feature_fraction", "lambda_l2") if k in params})
    study.optimize(objective, n_trials=budget.n_trials, timeout=budget.timeout_seconds)
    params.update(study.best_params)
    return params, {"trials": len(study.trials), "best_valid_logloss": study.best_value,
                    "first_valid_logloss": study.trials[0].value}
