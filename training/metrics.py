"""How a clinical prediction model is judged: discrimination, calibration, usefulness, subgroups.

- Discrimination: AUROC with a bootstrap 95 % interval, AUPRC.
- Calibration: Brier score; calibration intercept (calibration-in-the-large, slope fixed at 1) and slope
  (logistic recalibration on the logit); ICI and E90 (Austin & Steyerberg, Stat Med 2019) from a smooth
  calibration curve, here a logistic regression on a restricted cubic spline of the logit, one of the
  smoothers they describe; observed/expected ratio; a binned curve for plotting.
- Usefulness at review capacity: precision, recall and lift in the top 1, 5 and 10 %; net benefit over
  thresholds (Vickers & Elkin, Med Decis Making 2006) against treat-all and treat-none.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from sklearn.preprocessing import SplineTransformer

EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p / (1 - p))


def auroc_ci(y: np.ndarray, p: np.ndarray, n_boot: int = 300, seed: int = 1) -> tuple[float, float, float]:
    """AUROC and its percentile bootstrap 95 % interval."""
    auc = float(roc_auc_score(y, p))
    rng = np.random.default_rng(seed)
    n = len(y)
    boots = []
    for _ in range(n_boot):
        i = rng.integers(0, n, n)
        if 0 < y[i].sum() < n:
            boots.append(roc_auc_score(y[i], p[i]))
    lo, hi = np.percentile(boots, [2.5, 97.5]) if boots else (np.nan, np.nan)
    return auc, float(lo), float(hi)


def calibration_slope_intercept(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """(intercept with slope fixed at 1, slope) of the logistic recalibration of y on logit(p)."""
    lp = _logit(p)
    slope_fit = LogisticRegression(C=1e9, max_iter=1000).fit(lp[:, None], y)
    slope = float(slope_fit.coef_[0, 0])
    # intercept with the linear predictor as offset: one Newton solve on a single parameter
    a = 0.0
    for _ in range(50):
        mu = 1 / (1 + np.exp(-(lp + a)))
        step = (y - mu).sum() / max((mu * (1 - mu)).sum(), EPS)
        a += step
        if abs(step) < 1e-10:
            break
    return float(a), slope


def smooth_calibration(y: np.ndarray, p: np.ndarray, knots: int = 5) -> np.ndarray:
    """Observed probability as a smooth function of the predicted one (spline logistic recalibration)."""
    lp = _logit(p)[:, None]
    spline = SplineTransformer(n_knots=knots, degree=3, knots="quantile", extrapolation="linear")
    basis = spline.fit_transform(lp)
    fit = LogisticRegression(C=1e4, max_iter=2000).fit(basis, y)
    return fit.predict_proba(basis)[:, 1]


def calibration_curve(y: np.ndarray, p: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Mean predicted and observed by decile of predicted risk."""
    q = pd.qcut(pd.Series(p).rank(method="first"), bins, labels=False)
    df = pd.DataFrame({"bin": q, "p": p, "y": y})
    g = df.groupby("bin")
    return pd.DataFrame({"predicted": g["p"].mean(), "observed": g["y"].mean(), "n": g.size()}).reset_index(drop=True)


def top_k(y: np.ndarray, p: np.ndarray, fractions: list[float]) -> list[dict]:
    """Precision, recall and lift when a team reviews the top fraction of cases."""
    order = np.argsort(-p, kind="stable")
    base = y.mean()
    out = []
    for f in fractions:
        k = max(1, int(round(f * len(y))))
        hit = y[order[:k]].sum()
        precision = hit / k
        out.append({"fraction": f, "k": k, "precision": float(precision),
                    "recall": float(hit / max(y.sum(), 1)), "lift": float(precision / base) if base else np.nan})
    return out


def net_benefit(y: np.ndarray, p: np.ndarray, thresholds: np.ndarray | None = None) -> pd.DataFrame:
    """Decision curve: net benefit of the model, of treating all and of treating none, by threshold."""
    thresholds = np.linspace(0.01, 0.5, 50) if thresholds is None else thresholds
    n = len(y)
    prev = y.mean()
    rows = []
    for t in thresholds:
        pos = p >= t
        tp = (pos & (y == 1)).sum() / n
        fp = (pos & (y == 0)).sum() / n
        w = t / (1 - t)
        rows.append({"threshold": float(t), "model": float(tp - fp * w), "treat_all": float(prev - (1 - prev) * w),
                     "treat_none": 0.0})
    return pd.DataFrame(rows)


def evaluate(y: np.ndarray, p: np.ndarray, capacity: list[float] | None = None, n_boot: int = 300) -> dict:
    """The headline metrics of one set of predictions."""
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=float)
    auc, lo, hi = auroc_ci(y, p, n_boot=n_boot)
    intercept, slope = calibration_slope_intercept(y, p)
    smooth = smooth_calibration(y, p)
    err = np.abs(smooth - p)
    return {
        "n": int(len(y)), "events": int(y.sum()), "prevalence": float(y.mean()),
        "auroc": auc, "auroc_ci_low": lo, "auroc_ci_high": hi,
        "auprc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, p)),
        "calibration_intercept": intercept, "calibration_slope": slope,
        "ici": float(err.mean()), "e90": float(np.percentile(err, 90)),
        "oe_ratio": float(y.sum() / p.sum()) if p.sum() else float("nan"),
        "top_k": top_k(y, p, capacity or [0.01, 0.05, 0.10]),
    }


def subgroups(y: np.ndarray, p: np.ndarray, groups: dict[str, pd.Series], min_size: int = 50) -> pd.DataFrame:
    """AUROC and calibration for each level of each grouping (levels with both outcomes and enough cases)."""
    rows = []
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=float)
    for name, g in groups.items():
        g = pd.Series(np.asarray(g)).fillna("unknown").astype(str)
        for level in sorted(g.unique()):
            sel = (g == level).to_numpy()
            n, ev = int(sel.sum()), int(y[sel].sum())
            row = {"group": name, "level": level, "n": n, "events": ev,
                   "observed": float(y[sel].mean()) if n else np.nan,
                   "expected": float(p[sel].mean()) if n else np.nan, "auroc": np.nan, "oe_ratio": np.nan}
            if n >= min_size and 0 < ev < n:
                row["auroc"] = float(roc_auc_score(y[sel], p[sel]))
                row["oe_ratio"] = float(ev / p[sel].sum())
            rows.append(row)
    return pd.DataFrame(rows)


def age_band(age: pd.Series) -> pd.Series:
    return pd.cut(age, [-1, 17, 44, 64, 74, 84, 200], labels=["0-17", "18-44", "45-64", "65-74", "75-84", "85+"])
