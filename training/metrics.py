"""How a clinical prediction model is judged: discrimination, calibration, usefulness, subgroups.

- Discrimination: AUROC, AUPRC.
- Calibration: Brier score; calibration intercept (calibration-in-the-large, slope fixed at 1) and slope
  (logistic recalibration on the logit); ICI and E90 (Austin & Steyerberg, Stat Med 2019) from a smooth
  calibration curve, here a logistic regression on a restricted cubic spline of the logit, one of the
  smoothers they describe; observed/expected ratio; a binned curve for plotting.
- Usefulness at review capacity: precision, recall and lift in the top 1, 5 and 10 %; net benefit over
  thresholds (Vickers & Elkin, Med Decis Making 2006) against treat-all and treat-none.
- Uncertainty: a percentile bootstrap 95 % interval for every headline metric (AUROC, AUPRC, Brier, ICI,
  calibration slope), all from the same resamples; the lead over a baseline score as a paired bootstrap of
  the AUROC difference on the same resampled points.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from sklearn.preprocessing import SplineTransformer

EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p / (1 - p))


def fast_auroc(y: np.ndarray, p: np.ndarray) -> float:
    """AUROC as the Mann-Whitney statistic on mid-ranks (ties count one half), NaN without both outcomes.

    >>> fast_auroc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    0.75
    """
    y = np.asarray(y).astype(bool)
    pos = int(y.sum())
    neg = len(y) - pos
    if pos == 0 or neg == 0:
        return float("nan")
    ranks = rankdata(p)
    return float((ranks[y].sum() - pos * (pos + 1) / 2) / (pos * neg))


def _resamples(n: int, n_boot: int, seed: int):
    rng = np.random.default_rng(seed)
    for _ in range(n_boot):
        yield rng.integers(0, n, n)


def bootstrap_intervals(y: np.ndarray, p: np.ndarray, stats: dict[str, Callable[[np.ndarray, np.ndarray], float]],
                        n_boot: int = 300, seed: int = 1) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap 95 % interval of each statistic, every statistic on the same resamples (those
    with both outcomes); NaN when ``n_boot`` is 0."""
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=float)
    values: dict[str, list[float]] = {k: [] for k in stats}
    for i in _resamples(len(y), n_boot, seed):
        yi, pi = y[i], p[i]
        if not 0 < yi.sum() < len(yi):
            continue
        for k, f in stats.items():
            values[k].append(f(yi, pi))
    out = {}
    for k, v in values.items():
        v = np.asarray(v, dtype=float)
        v = v[np.isfinite(v)]
        out[k] = tuple(float(x) for x in np.percentile(v, [2.5, 97.5])) if len(v) else (np.nan, np.nan)
    return out


def auroc_ci(y: np.ndarray, p: np.ndarray, n_boot: int = 300, seed: int = 1) -> tuple[float, float, float]:
    """AUROC and its percentile bootstrap 95 % interval."""
    lo, hi = bootstrap_intervals(y, p, {"auroc": fast_auroc}, n_boot, seed)["auroc"]
    return float(roc_auc_score(y, p)), lo, hi


def paired_auroc_difference(y: np.ndarray, p: np.ndarray, baseline: np.ndarray, n_boot: int = 1000,
                            seed: int = 1) -> tuple[float, float, float]:
    """AUROC of ``p`` minus AUROC of ``baseline`` on the same points, with a paired percentile bootstrap 95 %
    interval (both scores judged on each same resample, so their correlation is kept).

    >>> y = np.array([0, 0, 0, 1, 1, 1] * 20)
    >>> diff, lo, hi = paired_auroc_difference(y, y + 0.0, np.tile([0.1, 0.5, 0.2, 0.4, 0.6, 0.3], 20), 200)
    >>> round(diff, 3), lo > 0
    (0.222, True)
    """
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=float)
    b = np.asarray(baseline, dtype=float)
    diff = fast_auroc(y, p) - fast_auroc(y, b)
    boots = [fast_auroc(y[i], p[i]) - fast_auroc(y[i], b[i]) for i in _resamples(len(y), n_boot, seed)
             if 0 < y[i].sum() < len(i)]
    lo, hi = np.percentile(boots, [2.5, 97.5]) if boots else (np.nan, np.nan)
    return float(diff), float(lo), float(hi)


def logistic_fit(X: np.ndarray, y: np.ndarray, ridge: float = 0.0, iterations: int = 50) -> np.ndarray:
    """Coefficients of a logistic regression of ``y`` on an intercept and the columns of ``X`` (Newton's
    method; ``ridge`` penalises the columns, not the intercept). Small designs only: it is what the
    bootstrap runs hundreds of times.

    >>> x = np.array([-2.0, -1, 0, 1, 2, -2, -1, 0, 1, 2]); y = np.array([0, 0, 0, 1, 1, 0, 1, 1, 1, 1])
    >>> [round(float(c), 3) for c in logistic_fit(x[:, None], y)]
    [0.926, 1.811]
    """
    Z = np.column_stack([np.ones(len(y)), X])
    pen = np.full(Z.shape[1], ridge)
    pen[0] = 0.0
    beta = np.zeros(Z.shape[1])
    for _ in range(iterations):
        eta = np.clip(Z @ beta, -30, 30)
        mu = 1 / (1 + np.exp(-eta))
        w = mu * (1 - mu)
        grad = Z.T @ (y - mu) - pen * beta
        hess = (Z * w[:, None]).T @ Z + np.diag(pen) + 1e-10 * np.eye(Z.shape[1])
        step = np.linalg.solve(hess, grad)
        beta += step
        if np.max(np.abs(step)) < 1e-8:
            break
    return beta


def calibration_slope_intercept(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """(intercept with slope fixed at 1, slope) of the logistic recalibration of y on logit(p)."""
    y = np.asarray(y, dtype=float)
    lp = _logit(p)
    slope = float(logistic_fit(lp[:, None], y)[1])
    # intercept with the linear predictor as offset: Newton's method on a single parameter
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
    basis = spline.fit_transform(lp)[:, 1:]  # the B-splines sum to one: drop one, the intercept stands for it
    beta = logistic_fit(basis, np.asarray(y, dtype=float), ridge=1e-4)
    return 1 / (1 + np.exp(-np.clip(beta[0] + basis @ beta[1:], -30, 30)))


def ici(y: np.ndarray, p: np.ndarray) -> float:
    """Integrated calibration index: mean distance between the smooth calibration curve and the diagonal."""
    return float(np.abs(smooth_calibration(y, p) - p).mean())


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


HEADLINE: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "auroc": fast_auroc,
    "auprc": lambda y, p: float(average_precision_score(y, p)),
    "brier": lambda y, p: float(np.mean((p - y) ** 2)),
    "ici": ici,
    "calibration_slope": lambda y, p: calibration_slope_intercept(y, p)[1],
}


def evaluate(y: np.ndarray, p: np.ndarray, capacity: list[float] | None = None, n_boot: int = 300,
             seed: int = 1) -> dict:
    """The headline metrics of one set of predictions, each with its bootstrap 95 % interval
    (``<metric>_ci_low`` and ``<metric>_ci_high``)."""
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=float)
    intercept, slope = calibration_slope_intercept(y, p)
    smooth = smooth_calibration(y, p)
    err = np.abs(smooth - p)
    out = {
        "n": int(len(y)), "events": int(y.sum()), "prevalence": float(y.mean()),
        "auroc": float(roc_auc_score(y, p)),
        "auprc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, p)),
        "calibration_intercept": intercept, "calibration_slope": slope,
        "ici": float(err.mean()), "e90": float(np.percentile(err, 90)),
        "oe_ratio": float(y.sum() / p.sum()) if p.sum() else float("nan"),
        "top_k": top_k(y, p, capacity or [0.01, 0.05, 0.10]),
    }
    intervals = bootstrap_intervals(y, p, HEADLINE, n_boot=n_boot, seed=seed)
    for k, (lo, hi) in intervals.items():
        out[f"{k}_ci_low"], out[f"{k}_ci_high"] = lo, hi
    return out


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
