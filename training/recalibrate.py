"""Recalibrating a registered model on a store's latest period without refitting its trees
(``umrisk recalibrate``).

The method is logistic ("weak") recalibration: ``logit(p') = a + b * logit(p)`` on the model's calibrated
probability ``p``, fitted on the latest period of the store (the spec's test period: later points). It repairs
calibration-in-the-large and a spread that has become too wide or too narrow (slope), keeps the ranking (AUROC
unchanged), and with two parameters needs only a few hundred events; ``in-the-large`` fits ``a`` alone (slope
fixed at 1), for smaller periods (Van Calster et al., J Clin Epidemiol 2016, levels of calibration). The
report evaluates on the same points the recalibration was fitted on: with one or two parameters the optimism
is small, and the card says so.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Literal

import numpy as np
from sklearn.linear_model import LogisticRegression

EPS = 1e-6
Method = Literal["logistic", "in-the-large"]


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)
    return np.log(p / (1 - p))


@dataclass
class Recalibrated:
    """A calibrator followed by a logistic recalibration; the interface of ``calibrate.Calibrator``
    (``method``, ``transform(raw)``)."""

    base: object | None  # the model's calibrator (None: the raw booster probability)
    intercept: float
    slope: float
    kind: str

    @property
    def method(self) -> str:
        first = getattr(self.base, "method", "none")
        return f"{first}, then {self.kind} recalibration (a {self.intercept:+.3f}, b {self.slope:.3f})"

    def transform(self, raw: np.ndarray) -> np.ndarray:
        p = self.base.transform(raw) if self.base is not None else np.asarray(raw, dtype=float)  # type: ignore[attr-defined]
        return 1 / (1 + np.exp(-(self.intercept + self.slope * _logit(p))))


def fit_recalibration(p: np.ndarray, y: np.ndarray, method: Method = "logistic") -> tuple[float, float]:
    """(a, b) of ``logit(p') = a + b logit(p)``; ``in-the-large`` keeps b = 1.

    >>> rng = np.random.default_rng(0); true = rng.uniform(0.02, 0.4, 20000)
    >>> y = (rng.random(20000) < true).astype(int)
    >>> a, b = fit_recalibration(np.clip(true * 1.5, 0, 0.99), y, "in-the-large"); round(b, 1), a < 0
    (1.0, True)
    """
    y = np.asarray(y).astype(int)
    if not 0 < y.sum() < len(y):
        raise ValueError("recalibration needs both outcomes in the period")
    lp = _logit(p)
    if method == "logistic":
        fit = LogisticRegression(C=1e9, max_iter=1000).fit(lp[:, None], y)
        return float(fit.intercept_[0]), float(fit.coef_[0, 0])
    a = 0.0
    for _ in range(100):  # Newton steps on the intercept alone, the linear predictor as offset
        mu = 1 / (1 + np.exp(-(lp + a)))
        step = (y - mu).sum() / max((mu * (1 - mu)).sum(), EPS)
        a += step
        if abs(step) < 1e-10:
            break
    return float(a), 1.0


def recalibrated(risk_model, p: np.ndarray, y: np.ndarray, method: Method = "logistic"):
    """A copy of a fitted ``RiskModel`` whose calibrator is followed by the recalibration fitted on (p, y); the
    trees, features and levels are the same objects' copies, unchanged."""
    a, b = fit_recalibration(p, y, method)
    out = copy.deepcopy(risk_model)
    out.calibrator_ = Recalibrated(risk_model.calibrator_, a, b, method)
    return out
