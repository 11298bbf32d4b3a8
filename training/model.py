"""The calibrated risk model: LightGBM with early stopping, then a calibrator fitted on its own fold.

``RiskModel`` follows scikit-learn's conventions (``__init__`` stores parameters, ``fit`` returns self,
fitted attributes end in ``_``). It keeps the category levels seen in training, so a frame built at
request time is encoded exactly as in training, and gives exact TreeSHAP contributions (LightGBM's
``pred_contrib``) for reason codes.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
from umrisk.training.calibrate import Calibrator


class RiskModel:
    def __init__(self, features: list[str], categorical: list[str], params: dict | None = None,
                 num_boost_round: int = 2000, early_stopping_rounds: int = 50):
        self.features = features
        self.categorical = categorical
        self.params = params or {}
        self.num_boost_round = num_boost_round
        self.early_stopping_rounds = early_stopping_rounds

    # ------------------------------------------------------------------ encoding
    def prepare(self, X: pd.DataFrame) -> pd.DataFrame:
        """The model's columns in order; categoricals with the training levels (unseen -> missing)."""
        missing = [c for c in self.features if c not in X.columns]
        if missing:
            raise KeyError(f"missing feature column(s): {', '.join(missing[:10])}")
        numeric = [c for c in self.features if c not in self.categorical]
        try:
            out = X[numeric].astype("float64")  # one block conversion; strings fall back below
        except (TypeError, ValueError):
            out = X[numeric].apply(lambda s: pd.to_numeric(s, errors="coerce")).astype("float64")
        levels = getattr(self, "levels_", None)
        for c in self.categorical:
            cats = levels[c] if levels else sorted(pd.Series(X[c]).dropna().astype(str).unique())
            out[c] = pd.Categorical(X[c].astype("object").where(X[c].notna(), None), categories=cats)
        return out[self.features]

    # ------------------------------------------------------------------ fitting
    def fit(self, X: pd.DataFrame, y: np.ndarray, X_valid: pd.DataFrame, y_valid: np.ndarray,
            X_calib: pd.DataFrame | None = None, y_calib: np.ndarray | None = None,
            calibration: str = "auto") -> RiskModel:
        self.levels_ = {c: sorted(pd.Series(X[c]).dropna().astype(str).unique()) for c in self.categorical}
        dtrain = lgb.Dataset(self.prepare(X), label=y, categorical_feature=self.categorical, free_raw_data=False)
        dvalid = lgb.Dataset(self.prepare(X_valid), label=y_valid, reference=dtrain)
        params = {"objective": "binary", "metric": "binary_logloss", "verbosity": -1, "seed": 1,
                  "deterministic": True, "force_row_wise": True, "num_threads": 2, **self.params}
        self.booster_ = lgb.train(params, dtrain, num_boost_round=self.num_boost_round, valid_sets=[dvalid],
                                  callbacks=[lgb.early_stopping(self.early_stopping_rounds, verbose=False)])
        self.best_iteration_ = int(self.booster_.best_iteration or self.booster_.current_iteration())
        self.calibrator_ = None
        self.calibration_scores_: dict[str, float] = {}
        if X_calib is not None and y_calib is not None:
            from umrisk.training.calibrate import choose_calibrator

            self.calibrator_, self.calibration_scores_ = choose_calibrator(self.predict_raw(X_calib),
                                                                           np.asarray(y_calib), calibration)
        return self

    # ------------------------------------------------------------------ prediction
    def predict_raw(self, X: pd.DataFrame) -> np.ndarray:
        return self.booster_.predict(self.prepare(X), num_iteration=self.best_iteration_)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated probability of the event (one column, for scoring)."""
        p = self.predict_raw(X)
        cal: Calibrator | None = self.calibrator_
        return cal.transform(p) if cal is not None else p

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
            "feature": self.features,
            "gain": self.booster_.feature_importance("gain", iteration=self.best_iteration_),
            "splits": self.booster_.feature_importance("split", iteration=self.best_iteration_),
        }).sort_values("gain", ascending=False, ignore_index=True)
