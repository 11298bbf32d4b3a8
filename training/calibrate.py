"""Calibration of predicted probabilities: isotonic or Platt, chosen on cross-validated log loss.

The model fits it on its out-of-fold predictions (cross-fitted calibration), so no point is set aside only
for calibration.
"""

from __future__ import annotations

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold

EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p / (1 - p))


class Calibrator:
    """Maps raw model probabilities to calibrated ones (scikit-learn conventions: ``fit`` returns self)."""

    def __init__(self, method: str = "isotonic"):
        self.method = method

    def fit(self, p: np.ndarray, y: np.ndarray) -> Calibrator:
        if self.method == "isotonic":
            self.model_ = IsotonicRegression(y_min=EPS, y_max=1 - EPS, out_of_bounds="clip").fit(p, y)
        elif self.method == "platt":
            self.model_ = LogisticRegression(C=1e6).fit(_logit(p)[:, None], y)
        else:
            raise ValueError(f"unknown calibration method {self.method!r}")
        return self

    def transform(self, p: np.ndarray) -> np.ndarray:
        if self.method == "isotonic":
            return np.clip(self.model_.predict(p), EPS, 1 - EPS)
        return self.model_.predict_proba(_logit(p)[:, None])[:, 1]


def choose_calibrator(p: np.ndarray, y: np.ndarray, method: str = "auto", folds: int = 5,
                      seed: int = 1) -> tuple[Calibrator, dict[str, float]]:
    """Fit the calibrator on (p, y); with ``auto`` pick the method of lower cross-validated log loss."""
    methods = ["isotonic", "platt"] if method == "auto" else [method]
    scores: dict[str, float] = {}
    if len(methods) > 1:
        cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        for m in methods:
            losses = [log_loss(y[te], Calibrator(m).fit(p[tr], y[tr]).transform(p[te]), labels=[0, 1])
                      for tr, te in cv.split(p, y)]
            scores[m] = float(np.mean(losses))
        best = min(scores, key=scores.get)
    else:
        best = methods[0]
    return Calibrator(best).fit(p, y), scores
