"""The calibrated risk model: LightGBM with its rounds chosen by member-grouped cross-validation, a
calibrator fitted on the out-of-fold predictions, and a final booster refitted on every training point.

``RiskModel`` follows scikit-learn's conventions (``__init__`` stores parameters, ``fit(X, y, groups)``
returns self, fitted attributes end in ``_``, ``get_params``/``set_params`` from ``BaseEstimator``).
Validation and calibration data are its own business: ``fit`` divides the points by member into
``cv_folds`` folds, trains the folds side by side and keeps the number of rounds of lowest mean held-out
log loss, fits the calibrator on the held-out predictions (cross-fitted: no point is set aside only for
calibration) and refits on all points with those rounds. One deliberate difference from scikit-learn:
``predict_proba`` returns the probability of the event as one column (a 1-d array), the shape every
scorer here reads.

It keeps the category levels seen in training, so a frame built at request time is encoded exactly as in
training, and gives exact TreeSHAP contributions (LightGBM's ``pred_contrib``) for reason codes.
``monotone`` maps features to their clinical direction (+1: more is riskier, -1: less is riskier), enforced
with LightGBM monotone constraints (categorical features are never constrained). A missing value in such a
feature means the event was not seen (no earlier discharge, the lab not taken), so it is encoded as the
feature's low-risk end (``NEVER`` days since, ``-NEVER`` of a count or a lab that rises with risk), the
same reading the catalog gives it (a missing lab is not abnormal): left missing, LightGBM would send it to
whichever side fits best, and adding a first prior admission could lower the risk.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import log_loss, roc_auc_score

from umrisk.training.calibrate import Calibrator, choose_calibrator
from umrisk.training.split import member_folds

LOSS = "valid binary_logloss-mean"
NEVER = 1e9  # stands for a missing value in a feature with a direction, at its low-risk end
TWO_THREADS_FROM = 200_000
FIXED = {"objective": "binary", "verbosity": -1, "deterministic": True, "force_row_wise": True}


def lgb_params(params: Mapping, seed: int = 1, monotone: Sequence[int] | None = None,
               rows: int | None = None) -> dict:
    """LightGBM parameters with the project's fixed settings (log loss as the metric, seeded) and the
    monotone constraints, if any feature has one.

    One thread below ``TWO_THREADS_FROM`` rows unless ``params`` say otherwise: on a busy 2-core machine
    LightGBM's second thread waits on the first and made a 20,000-row cross-validation 10 times slower.
    """
    threads = 1 if rows is not None and rows < TWO_THREADS_FROM else 2
    out = {"num_threads": threads, **params, **FIXED, "metric": "binary_logloss", "seed": seed}
    if monotone is not None and any(monotone):
        out["monotone_constraints"] = list(monotone)
        out.setdefault("monotone_constraints_method", "intermediate")  # less restrictive than "basic"
    return out


def deadline_callback(at: float):
    """A LightGBM callback that stops boosting before a round that would end after ``time.monotonic()``
    reaches ``at`` (judged by the last round's duration; the rounds so far are kept), so a search cannot
    overrun its budget inside a trial."""
    last = {"t": time.monotonic(), "round": 0.0}

    def callback(env: lgb.callback.CallbackEnv) -> None:
        now = time.monotonic()
        last["round"], last["t"] = now - last["t"], now
        if now + last["round"] > at:
            raise lgb.callback.EarlyStopException(env.iteration, env.evaluation_result_list)
    callback.order = 40  # type: ignore[attr-defined]  # after early stopping (30)
    return callback


def cross_validate(params: dict, data: lgb.Dataset, folds: list[tuple[np.ndarray, np.ndarray]],
                   num_boost_round: int, early_stopping_rounds: int,
                   deadline: float | None = None) -> tuple[int, float, lgb.CVBooster]:
    """Train the folds side by side; the number of rounds of lowest mean held-out log loss, that loss, and
    the fold boosters."""
    callbacks = [lgb.early_stopping(early_stopping_rounds, verbose=False)]
    if deadline is not None:
        callbacks.append(deadline_callback(deadline))
    res = lgb.cv(params, data, num_boost_round=num_boost_round, folds=folds, callbacks=callbacks,
                 return_cvbooster=True)
    curve = np.asarray(res[LOSS])
    rounds = int(np.argmin(curve)) + 1
    return rounds, float(curve[rounds - 1]), res["cvbooster"]


class RiskModel(ClassifierMixin, BaseEstimator):
    def __init__(self, features: Sequence[str] = (), categorical: Sequence[str] = (), params: dict | None = None,
                 num_boost_round: int = 2000, early_stopping_rounds: int = 50, cv_folds: int = 5,
                 calibration: str | None = "auto", monotone: Mapping[str, int] | None = None, seed: int = 1):
        self.features = features
        self.categorical = categorical
        self.params = params
        self.num_boost_round = num_boost_round
        self.early_stopping_rounds = early_stopping_rounds
        self.cv_folds = cv_folds
        self.calibration = calibration
        self.monotone = monotone
        self.seed = seed

    # ------------------------------------------------------------------ encoding
    def prepare(self, X: pd.DataFrame) -> pd.DataFrame:
        """The model's columns in order; categoricals with the training levels (unseen -> missing)."""
        features = list(self.features)
        missing = [c for c in features if c not in X.columns]
        if missing:
            raise KeyError(f"missing feature column(s): {', '.join(missing[:10])}")
        numeric = [c for c in features if c not in self.categorical]
        try:
            out = X[numeric].astype("float64")  # one block conversion; strings fall back below
        except (TypeError, ValueError):
            out = X[numeric].apply(lambda s: pd.to_numeric(s, errors="coerce")).astype("float64")
        directions = self.monotone or {}
        for c in numeric:  # missing in a directed feature: the low-risk end (no discharge seen, lab not taken)
            sign = np.sign(directions.get(c, 0))
            if sign and out[c].isna().any():
                out[c] = out[c].fillna(-sign * NEVER)
        levels = getattr(self, "levels_", None)
        for c in self.categorical:
            cats = levels[c] if levels else sorted(pd.Series(X[c]).dropna().astype(str).unique())
            out[c] = pd.Categorical(X[c].astype("object").where(X[c].notna(), None), categories=cats)
        return out[features]

    def monotone_constraints(self) -> list[int]:
        """One LightGBM monotone constraint per feature, in feature order (0 for categories and the rest)."""
        directions = self.monotone or {}
        return [0 if f in self.categorical else int(np.sign(directions.get(f, 0))) for f in self.features]

    def dataset(self, X: pd.DataFrame, y: np.ndarray) -> lgb.Dataset:
        """The prepared frame as a LightGBM Dataset (not pre-filtered, so leaf sizes may vary across fits)."""
        return lgb.Dataset(self.prepare(X), label=np.asarray(y), categorical_feature=list(self.categorical),
                           free_raw_data=False, params={"feature_pre_filter": False})

    # ------------------------------------------------------------------ fitting
    def fit(self, X: pd.DataFrame, y: np.ndarray, groups: pd.Series | np.ndarray | None = None) -> RiskModel:
        """Cross-validate by member (``groups``; each row its own member if None) for the number of rounds and
        the out-of-fold predictions, fit the calibrator on those, refit on all rows."""
        y = np.asarray(y).astype(int)
        if not 0 < y.sum() < len(y):
            raise ValueError("fitting needs both outcomes among the training points")
        self.classes_ = np.array([0, 1])
        self.levels_ = {c: sorted(pd.Series(X[c]).dropna().astype(str).unique()) for c in self.categorical}
        params = lgb_params(self.params or {}, self.seed, self.monotone_constraints(), rows=len(y))
        data = self.dataset(X, y)
        folds = member_folds(groups, len(y), self.cv_folds, self.seed)
        rounds, loss, cvb = cross_validate(params, data, folds, self.num_boost_round, self.early_stopping_rounds)
        prepared = self.prepare(X)
        oof = np.empty(len(y))
        for (_, held), booster in zip(folds, cvb.boosters, strict=True):
            oof[held] = booster.predict(prepared.iloc[held], num_iteration=rounds)
        self.oof_ = oof
        self.booster_ = lgb.train(params, data, num_boost_round=rounds)
        self.best_iteration_ = rounds
        self.calibrator_: Calibrator | None = None
        self.calibration_scores_: dict[str, float] = {}
        if self.calibration:
            self.calibrator_, self.calibration_scores_ = choose_calibrator(oof, y, self.calibration, seed=self.seed)
        self.cv_ = {"folds": len(folds), "rounds": rounds, "oof_logloss": float(log_loss(y, oof, labels=[0, 1])),
                    "oof_auroc": float(roc_auc_score(y, oof)), "cv_logloss": loss,
                    "calibration": self.calibrator_.method if self.calibrator_ is not None else None,
                    "calibration_scores": dict(self.calibration_scores_)}
        return self

    # ------------------------------------------------------------------ a booster trained elsewhere
    # Added for training.distributed_fit (lightgbm.dask): the model is fitted on a member sample (rounds,
    # out-of-fold predictions, calibrator), then its final booster is replaced by one trained on every
    # training point across a Dask cluster. Neither method is used by the single-process fit.
    def with_levels(self, levels: Mapping[str, Sequence[str]]) -> RiskModel:
        """This fitted model encoding categories with ``levels`` (each sorted, holding every level the model
        saw): the levels of a larger table its booster is about to be trained on."""
        for c in self.categorical:
            new = [str(v) for v in levels[c]]
            if new != sorted(new) or set(self.levels_[c]) - set(new):
                raise ValueError(f"levels of {c!r} must be sorted and include the {len(self.levels_[c])} seen in fit")
        self.levels_ = {c: [str(v) for v in levels[c]] for c in self.categorical}
        return self

    def with_booster(self, booster: lgb.Booster) -> RiskModel:
        """This fitted model predicting with ``booster`` (all its rounds), trained on the frames ``prepare``
        gives with the same features and levels; the calibrator and cross-validation figures stay."""
        if booster.feature_name() != list(self.features):
            raise ValueError("the booster was trained on other features than the model's")
        self.booster_ = booster
        self.best_iteration_ = booster.current_iteration()
        return self

    # ------------------------------------------------------------------ prediction
    def predict_raw(self, X: pd.DataFrame) -> np.ndarray:
        return self.booster_.predict(self.prepare(X), num_iteration=self.best_iteration_)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated probability of the event (one column, for scoring)."""
        p = self.predict_raw(X)
        cal: Calibrator | None = self.calibrator_
        return cal.transform(p) if cal is not None else p

    def predict(self, X: pd.DataFrame, threshold: float = 0.5) -> np.ndarray:
        """1 where the calibrated probability reaches ``threshold`` (scikit-learn's classifier interface)."""
        return (self.predict_proba(X) >= threshold).astype(int)

    def matrix(self, X: pd.DataFrame) -> np.ndarray:
        """The prepared frame as the float matrix LightGBM builds from it: categories as their codes in the
        training levels (missing as NaN). Predicting on it skips LightGBM's per-call pandas conversion."""
        prepared = self.prepare(X)
        out = np.empty((len(prepared), len(self.features)), dtype=np.float64)
        for j, c in enumerate(self.features):
            col = prepared[c]
            if c in self.categorical:
                codes = col.cat.codes.to_numpy().astype(np.float64)
                codes[codes < 0] = np.nan
                out[:, j] = codes
            else:
                out[:, j] = col.to_numpy(dtype=np.float64, na_value=np.nan)
        return out

    def predict_explained(self, X: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
        """Calibrated probabilities and TreeSHAP contributions, preparing the frame once."""
        m = self.matrix(X)
        raw = self.booster_.predict(m, num_iteration=self.best_iteration_)
        c = self.booster_.predict(m, num_iteration=self.best_iteration_, pred_contrib=True)
        cal: Calibrator | None = self.calibrator_
        p = cal.transform(raw) if cal is not None else raw
        return p, pd.DataFrame(c, columns=[*self.features, "bias"], index=X.index)

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """Exact TreeSHAP contributions on the log-odds scale, one column per feature plus ``bias``."""
        c = self.booster_.predict(self.prepare(X), num_iteration=self.best_iteration_, pred_contrib=True)
        return pd.DataFrame(c, columns=[*self.features, "bias"], index=X.index)

    def importance(self) -> pd.DataFrame:
        return pd.DataFrame({
            "feature": list(self.features),
            "gain": self.booster_.feature_importance("gain", iteration=self.best_iteration_),
            "splits": self.booster_.feature_importance("split", iteration=self.best_iteration_),
        }).sort_values("gain", ascending=False, ignore_index=True)
