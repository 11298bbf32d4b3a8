"""What ``umrisk monitor`` does: a registered version watched month by month after its training period.

For each month after the version's ``trained_to`` tag up to the end of the store:

- **Input drift.** The members the task can score on the first of the month (``task.scorable``, the population
  the service scores) are compared with the scorable members on the first of the last ``reference_months``
  months of the training period (the reference; the same code path builds both, so only the population can
  differ). Per feature and for the score: the population stability index over deciles of the reference
  (``psi``) and a distribution test (two-sample Kolmogorov-Smirnov for measures, chi-square for counts with
  few values and categories); and the number of points scored against the reference months' mean. The
  features that moved most are said in words, from the catalog.
- **Performance, once labels have matured.** The task's labelled cohort points of the month (the cohort only
  keeps points whose label window has closed): AUROC with a bootstrap interval, observed/expected with a
  Poisson interval, ICI, precision in the top decile, and the same by age band, sex and line of business.
- **Alerts** from the ``monitoring`` thresholds of today's spec file (``thresholds``). A drift alert is raised
  on the month it is seen (the snapshot); a performance alert on the day the month's labels close (its
  ``raised`` month), so no alert is dated before its evidence exists. Alerts of the latest month and of the
  latest judged month are open.

Evidently (the issue's first choice) was tried: 0.7.23 fails to import with pandas 3 (``ImportError:
infer_dtype_from_object``), so PSI and the tests are computed here with NumPy and SciPy, the same formulas.

The result is a JSON summary, an HTML report with plots over time, an MLflow run in the model's experiment
linked to the version (tags ``umrisk.model_version`` and ``umrisk.training_run``), and the version tags
``monitoring_status`` (ok or alert) and ``monitoring_alerts``. It never promotes.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import chi2_contingency, ks_2samp

from umrisk.features.build import build_features
from umrisk.features.cohorts import data_end
from umrisk.features.spec import ModelSpec, MonitoringSpec, SpecError, load_spec
from umrisk.features.store import load_store
from umrisk.features.tasks import task_for
from umrisk.training import registry
from umrisk.training.feature_cache import feature_table
from umrisk.training.metrics import age_band, auroc_ci, ici, subgroups, top_k
from umrisk.training.split import time_member_split

EPS = 1e-4
TOP_FEATURES = 5


# ------------------------------------------------------------------------------------------------ drift
def _bins(ref: pd.Series, bins: int) -> tuple[str, np.ndarray | list]:
    """How a feature is binned: its categories (few values or a category) or quantile edges of the reference."""
    if not pd.api.types.is_numeric_dtype(ref) or ref.dropna().nunique() <= bins:
        return "values", sorted(ref.dropna().astype(str).unique())
    edges = np.unique(np.quantile(ref.dropna().to_numpy(float), np.linspace(0, 1, bins + 1))[1:-1])
    return "edges", edges


def _counts(x: pd.Series, kind: str, bins) -> np.ndarray:
    """Counts per bin, the last two bins being values not seen in the reference and missing values."""
    missing = int(x.isna().sum())
    v = x.dropna()
    if kind == "values":
        s = v.astype(str)
        c = s.value_counts().reindex(bins, fill_value=0).to_numpy()
        return np.concatenate([c, [int((~s.isin(bins)).sum()), missing]])
    idx = np.searchsorted(bins, v.to_numpy(float), side="right")
    return np.concatenate([np.bincount(idx, minlength=len(bins) + 1), [0, missing]])


def psi_from_counts(ref: np.ndarray, cur: np.ndarray) -> float:
    """Population stability index: sum over bins of (cur - ref) * ln(cur / ref), shares floored at 1e-4.

    >>> psi_from_counts(np.array([50, 50]), np.array([50, 50]))
    0.0
    >>> round(psi_from_counts(np.array([90, 10]), np.array([50, 50])), 3)
    0.879
    """
    r = np.maximum(ref / max(ref.sum(), 1), EPS)
    c = np.maximum(cur / max(cur.sum(), 1), EPS)
    return float(np.sum((c - r) * np.log(c / r)))


def drift(ref: pd.Series, cur: pd.Series, bins: int = 10) -> dict:
    """PSI and a distribution test of one feature: Kolmogorov-Smirnov for measures with many values, chi-square
    on the bins otherwise. ``p_value`` is NaN when a test cannot be made (one value in both)."""
    kind, b = _bins(ref, bins)
    rc, cc = _counts(ref, kind, b), _counts(cur, kind, b)
    out = {"psi": psi_from_counts(rc, cc), "test": "", "p_value": float("nan")}
    if kind == "edges":
        r, c = ref.dropna().to_numpy(float), cur.dropna().to_numpy(float)
        if len(r) and len(c):
            out.update(test="ks", p_value=float(ks_2samp(r, c).pvalue))
    else:
        keep = (rc + cc) > 0
        if keep.sum() >= 2:
            out.update(test="chi2", p_value=float(chi2_contingency(np.stack([rc[keep], cc[keep]]))[1]))
    return out


def _in_words(info: dict | None, name: str, ref: pd.Series, cur: pd.Series) -> str:
    """One sentence: the feature's catalog description and how its distribution moved."""
    what = (info or {}).get("description") or name
    unit = (info or {}).get("unit") or ""
    if pd.api.types.is_numeric_dtype(ref):
        r, c = ref.astype(float), cur.astype(float)
        if r.dropna().isin([0, 1]).all() and c.dropna().isin([0, 1]).all():
            return f"{what}: {r.mean():.1%} of points, now {c.mean():.1%}"
        u = f" {unit}" if unit and unit not in ("flag", "yes/no") else ""
        return f"{what}: mean {r.mean():.3g}{u}, now {c.mean():.3g}{u} (median {r.median():.3g} -> {c.median():.3g})"
    rs, cs = ref.astype(str).value_counts(normalize=True), cur.astype(str).value_counts(normalize=True)
    level = (cs.reindex(rs.index.union(cs.index), fill_value=0) - rs.reindex(rs.index.union(cs.index), fill_value=0)
             ).abs().idxmax()
    return f"{what}: {level} {rs.get(level, 0):.1%} of points, now {cs.get(level, 0):.1%}"


# ------------------------------------------------------------------------------------------- the points
def month_starts_between(first: pd.Timestamp, end: pd.Timestamp) -> list[pd.Timestamp]:
    """First days of months from ``first`` (inclusive) to ``end`` (exclusive).

    >>> [d.strftime("%Y-%m") for d in month_starts_between(pd.Timestamp("2025-11-15"), pd.Timestamp("2026-02-01"))]
    ['2025-12', '2026-01']
    """
    start = pd.Timestamp(first).to_period("M").to_timestamp()
    if start < pd.Timestamp(first):
        start += pd.DateOffset(months=1)
    return list(pd.date_range(start, pd.Timestamp(end) - pd.Timedelta(days=1), freq="MS"))


def snapshots(store: dict, spec: ModelSpec, dates: list[pd.Timestamp]) -> pd.DataFrame:
    """The points the task can score on each date, with their features (one code path with training)."""
    task = task_for(spec)
    ids = store["members"]["member_id"].astype(str).tolist()
    parts = [task.scorable(store, spec, ids, d).points.assign(snapshot=d) for d in dates]
    points = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if points.empty:
        return points
    return build_features(store, points.drop(columns="snapshot"), spec).assign(snapshot=points["snapshot"])


def horizon_days(spec: ModelSpec) -> int:
    """Days from a point until its label is known (a member-month's horizon, a discharge's window end)."""
    horizon = getattr(spec.cohort, "horizon_days", None)
    return int(horizon if horizon is not None else spec.label.window_days[1])


# ------------------------------------------------------------------------------------------ performance
def oe_interval(observed: int, expected: float) -> tuple[float, float, float]:
    """Observed/expected with an approximate Poisson 95 % interval (on the log scale).

    >>> [round(x, 2) for x in oe_interval(100, 100.0)]
    [1.0, 0.82, 1.22]
    """
    if expected <= 0:
        return float("nan"), float("nan"), float("nan")
    oe = observed / expected
    half = 1.96 / np.sqrt(max(observed, 1))
    return float(oe), float(oe * np.exp(-half)), float(oe * np.exp(half))


def performance(y: np.ndarray, p: np.ndarray, groups: dict[str, pd.Series], min_subgroup: int,
                n_boot: int = 200) -> dict:
    """AUROC with its interval, O/E with its interval, ICI, top-decile precision, and by subgroup."""
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=float)
    if not 0 < y.sum() < len(y):
        return {"n": int(len(y)), "events": int(y.sum())}
    auc, lo, hi = auroc_ci(y, p, n_boot=n_boot)
    oe, oe_lo, oe_hi = oe_interval(int(y.sum()), float(p.sum()))
    sub = subgroups(y, p, groups, min_size=min_subgroup)
    rows = []
    for r in sub.to_dict("records"):
        o, olo, ohi = oe_interval(int(r["events"]), float(r["expected"] * r["n"])) if r["n"] else (np.nan,) * 3
        judged = r["n"] >= min_subgroup and 0 < r["events"] < r["n"]
        rows.append({"group": r["group"], "level": r["level"], "n": int(r["n"]), "events": int(r["events"]),
                     "auroc": _num(r["auroc"]), "oe_ratio": _num(o) if judged else None,
                     "oe_ci": [_num(olo), _num(ohi)] if judged else None})
    return {"n": int(len(y)), "events": int(y.sum()), "auroc": auc, "auroc_ci": [lo, hi], "oe_ratio": oe,
            "oe_ci": [oe_lo, oe_hi], "ici": ici(y, p), "top_decile_precision": top_k(y, p, [0.1])[0]["precision"],
            "mean_predicted": float(p.mean()), "observed_rate": float(y.mean()), "subgroups": rows}


def _num(x) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def performance_alerts(perf: dict, m: MonitoringSpec, reference_auroc: float | None, raised: str) -> list[dict]:
    """Alerts from one month's performance: O/E outside its bounds (and its interval away from 1), ICI above
    its limit, AUROC too far below the version's test AUROC (and its interval below it); a subgroup's O/E when
    its whole interval lies outside the bounds (small groups are miscalibrated by chance every month)."""
    out = []
    lo_b, hi_b = m.oe_ratio

    def oe_alert(what: str, oe, ci, strict: bool = False) -> None:
        away = (ci[1] < lo_b or ci[0] > hi_b) if strict else (ci[1] < 1 or ci[0] > 1)
        if oe is not None and (oe < lo_b or oe > hi_b) and away:
            out.append({"kind": "performance", "what": what, "value": oe, "threshold": [lo_b, hi_b],
                        "raised": raised, "message": f"{what} is {oe:.3f} (95 % CI {ci[0]:.2f}-{ci[1]:.2f}), "
                                                     f"outside {lo_b}-{hi_b}"})

    if "auroc" not in perf:
        return out
    oe_alert("observed/expected", perf["oe_ratio"], perf["oe_ci"])
    if perf["ici"] > m.max_ici:
        out.append({"kind": "performance", "what": "ICI", "value": perf["ici"], "threshold": m.max_ici,
                    "raised": raised, "message": f"ICI is {perf['ici']:.3f}, above {m.max_ici}"})
    if reference_auroc is not None:
        drop = reference_auroc - perf["auroc"]
        if drop > m.max_auroc_drop and perf["auroc_ci"][1] < reference_auroc:
            out.append({"kind": "performance", "what": "AUROC", "value": perf["auroc"],
                        "threshold": reference_auroc - m.max_auroc_drop, "raised": raised,
                        "message": f"AUROC {perf['auroc']:.3f} (95 % CI {perf['auroc_ci'][0]:.3f}-"
                                   f"{perf['auroc_ci'][1]:.3f}) is {drop:.3f} below the test AUROC "
                                   f"{reference_auroc:.3f}"})
    for s in perf["subgroups"]:
        if s["oe_ratio"] is not None:
            oe_alert(f"observed/expected in {s['group']} {s['level']}", s["oe_ratio"], s["oe_ci"], strict=True)
    return out


def _groups(frame: pd.DataFrame) -> dict[str, pd.Series]:
    return {"age band": age_band(frame["age"]).astype(str), "sex": frame["sex"].astype(str),
            "line of business": frame["line_of_business"].astype(str)}


# ------------------------------------------------------------------------------------------ the monitor
def monitor(model_name: str, data: Path | str, out: Path | str, version: str | None = None,
            alias: str | None = None, tracking_uri: str | None = None, n_boot: int = 200) -> dict:
    """Watch a registered version on the store ``data``; write ``out/monitor.json``, ``out/report.html`` and
    plots; log an MLflow run and tag the version. Returns the summary (``months``, ``open_alerts``, ...)."""
    registry.configure(tracking_uri)
    data, out = Path(data), Path(out)
    if not data.is_dir():
        raise FileNotFoundError(f"{data}: no such store folder")
    wrapped, mv = registry.load(model_name, version, alias)
    spec = registry.stored_spec(wrapped)
    m = thresholds(model_name, spec)
    tags = mv.tags or {}
    trained_to = pd.Timestamp(tags["trained_to"]).normalize()
    store = load_store(data)
    end = data_end(store)
    months = month_starts_between(trained_to + pd.Timedelta(days=1), end)
    reference_dates = [trained_to.to_period("M").to_timestamp() - pd.DateOffset(months=i)
                       for i in reversed(range(m.reference_months))]
    frames = snapshots(store, spec, reference_dates + months)
    model = wrapped.risk_model
    features = list(model.features)
    frames["score"] = model.predict_proba(frames) if len(frames) else np.zeros(0)
    catalog = {c["name"]: c for c in wrapped.catalog}
    ref = frames[frames["snapshot"].isin(reference_dates)]
    if ref.empty:
        raise ValueError(f"no scorable points on the reference dates {[str(d.date()) for d in reference_dates]}")
    table, _ = feature_table(data, spec)
    labelled = table.frame
    as_of = pd.to_datetime(labelled["as_of"])
    reference_auroc = _test_auroc(mv.run_id)
    horizon = horizon_days(spec)
    results = []
    for month in months:
        cur = frames[frames["snapshot"] == month]
        entry: dict = {"month": month.strftime("%Y-%m"), "points": int(len(cur)), "alerts": []}
        if len(cur):
            d = {f: drift(ref[f], cur[f], m.psi_bins) for f in features}
            score = drift(ref["score"], cur["score"], m.psi_bins)
            order = sorted(d, key=lambda f: -d[f]["psi"])
            entry.update(score_psi=score["psi"], score_p_value=score["p_value"], score_mean=float(cur["score"].mean()),
                         max_feature_psi=d[order[0]]["psi"],
                         features={f: {k: _num(v) if k != "test" else v for k, v in d[f].items()} for f in features},
                         moved_most=[{"feature": f, "psi": d[f]["psi"], "p_value": _num(d[f]["p_value"]),
                                      "in_words": _in_words(catalog.get(f), f, ref[f], cur[f])}
                                     for f in order[:TOP_FEATURES]])
            change = len(cur) / (len(ref) / len(reference_dates)) - 1
            entry["points_change"] = change
            if abs(change) > m.max_points_change:
                entry["alerts"].append({"kind": "drift", "what": "points", "value": change,
                                        "threshold": m.max_points_change, "raised": entry["month"],
                                        "message": f"{len(cur):,} points scored, {change:+.0%} against the reference "
                                                   "months (a population joining or leaving, or a feed cut short); "
                                                   + _in_words(catalog.get(order[0]), order[0], ref[order[0]],
                                                               cur[order[0]])})
            if score["psi"] > m.max_score_psi:
                entry["alerts"].append({"kind": "drift", "what": "score", "value": score["psi"],
                                        "threshold": m.max_score_psi, "raised": entry["month"],
                                        "message": f"the score's PSI is {score['psi']:.3f}, above {m.max_score_psi}"})
            for f in order:
                if d[f]["psi"] <= m.max_feature_psi:
                    break
                entry["alerts"].append({"kind": "drift", "what": f, "value": d[f]["psi"],
                                        "threshold": m.max_feature_psi, "raised": entry["month"],
                                        "message": f"PSI {d[f]['psi']:.2f}: "
                                                   + _in_words(catalog.get(f), f, ref[f], cur[f])})
        rows = np.flatnonzero(((as_of >= month) & (as_of < month + pd.DateOffset(months=1))).to_numpy())
        if len(rows) == 0:
            closes = month + pd.DateOffset(months=1) - pd.Timedelta(days=1) + pd.Timedelta(days=horizon)
            entry["performance"] = {"status": "labels pending", "labels_close": str(closes.date())}
        else:
            f = labelled.iloc[rows]
            closes = pd.Timestamp(as_of.iloc[rows].max()) + pd.Timedelta(days=horizon)
            perf = performance(f["label"].to_numpy(), model.predict_proba(f), _groups(f),
                               spec.model.gates.min_subgroup_size, n_boot)
            judged = len(rows) >= m.min_month_points and "auroc" in perf
            perf.update(status="judged" if judged else "too few points", labels_close=str(closes.date()))
            entry["performance"] = perf
            if judged:
                entry["alerts"] += performance_alerts(perf, m, reference_auroc, closes.strftime("%Y-%m"))
        results.append(entry)
    cut = time_member_split(labelled, spec.model.split).cut if len(labelled) else None
    summary = _summary(model_name, mv, m, data, trained_to, end, reference_dates, reference_auroc, results,
                       None if cut is None else pd.Timestamp(cut).strftime("%Y-%m"))
    summary["report"] = str(write_report(out, summary))
    _log(model_name, mv, summary, out)
    return summary


def thresholds(model_name: str, stored: ModelSpec) -> MonitoringSpec:
    """The ``monitoring`` block of today's spec file: thresholds are policy, not part of the model, so they change
    without retraining (everything else comes from the spec stored with the version); the stored block when the
    file is gone."""
    try:
        return load_spec(model_name).monitoring
    except SpecError:
        return stored.monitoring


def _test_auroc(run_id: str) -> float | None:
    import mlflow

    value = mlflow.get_run(run_id).data.metrics.get("test_auroc")
    return float(value) if value is not None else None


def open_alerts(months: list[dict]) -> list[dict]:
    """Alerts still open: the latest month's drift alerts and the latest judged month's performance alerts."""
    if not months:
        return []
    drift_now = [a for a in months[-1]["alerts"] if a["kind"] == "drift"]
    judged = [e for e in months if e.get("performance", {}).get("status") == "judged"]
    perf_now = [a for a in judged[-1]["alerts"] if a["kind"] == "performance"] if judged else []
    return drift_now + perf_now


def first_alert(months: list[dict], kind: str | None = None) -> str | None:
    """The earliest month (``YYYY-MM``) an alert was raised in (its ``raised`` month), of ``kind`` if given."""
    raised = [a["raised"] for e in months for a in e["alerts"] if kind is None or a["kind"] == kind]
    return min(raised) if raised else None


def advice(model_name: str, data: Path, months: list[dict], open_: list[dict],
           retrain_cut: str | None = None) -> dict | None:
    """What to do about an open performance alert: the data window to retrain on and the commands (never run
    here); None without one. ``retrain_cut`` (``YYYY-MM``) is where the spec's split of this store would start
    the test period of a retrained model."""
    if not any(a["kind"] == "performance" for a in open_):
        return None
    judged = [e["month"] for e in months if e.get("performance", {}).get("status") == "judged"]
    since = min(e["month"] for e in months if e["alerts"])  # the first month the change showed in
    text = (f"Retrain on the points from {since} (the first month the change showed in) to {judged[-1]} (the "
            "latest month whose labels have closed), beside the earlier ones. ")
    if retrain_cut is not None and retrain_cut > since:
        text += (f"With the spec's split this store would train on points before {retrain_cut} and test on the "
                 "later ones, so the change is in both. ")
    elif retrain_cut is not None:
        text += (f"With the spec's split this store would train on points before {retrain_cut} only, none after "
                 f"{since}: a retrain now is tested on the changed months but does not learn from them; retrain "
                 "when more months after the change have matured labels (a store extended by then). ")
    text += ("Then evaluate the challenger and promote it only if the spec's gates hold. umrisk monitor never "
             "promotes.")
    return {
        "why": "; ".join(a["message"] for a in open_ if a["kind"] == "performance"),
        "window": {"from": since, "to": judged[-1]},
        "retrain_test_from": retrain_cut,
        "text": text,
        "commands": [f"umrisk train {model_name} --data {data}",
                     f"umrisk evaluate {model_name} --data {data} --alias challenger "
                     f"--out reports/{model_name}-retrain",
                     f"umrisk promote {model_name} --data {data}"],
    }


def _summary(model_name, mv, m, data, trained_to, end, reference_dates, reference_auroc, results, cut) -> dict:
    open_ = open_alerts(results)
    return {"model": model_name, "version": str(mv.version), "data": str(data.resolve()),
            "trained_to": str(trained_to.date()), "data_end": str(end.date()),
            "reference": [d.strftime("%Y-%m") for d in reference_dates], "reference_auroc": reference_auroc,
            "thresholds": m.model_dump(mode="json"),
            "status": "alert" if open_ else "ok", "open_alerts": open_,
            "first_alert": first_alert(results), "first_drift_alert": first_alert(results, "drift"),
            "first_performance_alert": first_alert(results, "performance"),
            "advice": advice(model_name, data, results, open_, cut), "months": results}


# ------------------------------------------------------------------------------------------- the report
def plot(summary: dict, path: Path) -> Path:
    """Score and largest feature PSI, AUROC with its interval and O/E by month, with the thresholds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    months = summary["months"]
    x = [e["month"] for e in months]
    th = summary["thresholds"]
    fig, axes = plt.subplots(3, 1, figsize=(9, 8.5), sharex=True)
    ax = axes[0]
    ax.plot(x, [e.get("score_psi", np.nan) for e in months], "o-", label="score")
    ax.plot(x, [e.get("max_feature_psi", np.nan) for e in months], "s--", label="largest feature")
    ax.axhline(th["max_score_psi"], color="C0", lw=0.8, ls=":", label="score threshold")
    ax.axhline(th["max_feature_psi"], color="C1", lw=0.8, ls=":", label="feature threshold")
    ax.set_ylabel("PSI")
    ax.set_title(f"umrisk-{summary['model']} version {summary['version']}: input drift and matured performance")
    ax.legend(fontsize=8, loc="upper left")
    perf = [e.get("performance", {}) for e in months]
    ax = axes[1]
    auc = np.array([p.get("auroc", np.nan) for p in perf], dtype=float)
    lo = np.array([(p.get("auroc_ci") or [np.nan, np.nan])[0] for p in perf], dtype=float)
    hi = np.array([(p.get("auroc_ci") or [np.nan, np.nan])[1] for p in perf], dtype=float)
    ax.errorbar(x, auc, yerr=[auc - lo, hi - auc], fmt="o", capsize=3, label="AUROC (95 % CI)")
    if summary["reference_auroc"] is not None:
        ax.axhline(summary["reference_auroc"], color="grey", lw=0.8, label="test AUROC at training")
        ax.axhline(summary["reference_auroc"] - th["max_auroc_drop"], color="red", lw=0.8, ls=":",
                   label="alert below")
    ax.set_ylabel("AUROC")
    ax.legend(fontsize=8, loc="lower left")
    ax = axes[2]
    oe = np.array([p.get("oe_ratio", np.nan) for p in perf], dtype=float)
    olo = np.array([(p.get("oe_ci") or [np.nan, np.nan])[0] for p in perf], dtype=float)
    ohi = np.array([(p.get("oe_ci") or [np.nan, np.nan])[1] for p in perf], dtype=float)
    ax.errorbar(x, oe, yerr=[oe - olo, ohi - oe], fmt="o", capsize=3, label="observed/expected (95 % CI)")
    for b in th["oe_ratio"]:
        ax.axhline(b, color="red", lw=0.8, ls=":")
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_ylabel("O/E")
    ax.set_xlabel("month (first of the month; performance by the month of the prediction, shown once labels close)")
    ax.legend(fontsize=8, loc="lower left")
    alerted = [i for i, e in enumerate(months) if e["alerts"]]
    for a in axes:
        for i in alerted:
            a.axvspan(i - 0.4, i + 0.4, color="red", alpha=0.06)
    axes[-1].tick_params(axis="x", rotation=45)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(out: Path, summary: dict) -> Path:
    """``monitor.json``, ``monitor.png`` and ``report.html`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    slim = {**summary, "months": [{k: v for k, v in e.items() if k != "features"} for e in summary["months"]]}
    (out / "monitor.json").write_text(json.dumps(summary, indent=2, default=str))
    plot(summary, out / "monitor.png")
    esc = html.escape
    rows = []
    for e in slim["months"]:
        p = e.get("performance", {})
        perf = (f"AUROC {p['auroc']:.3f} ({p['auroc_ci'][0]:.3f}-{p['auroc_ci'][1]:.3f}), O/E {p['oe_ratio']:.2f}, "
                f"ICI {p['ici']:.3f}, top-decile precision {p['top_decile_precision']:.1%} (n {p['n']:,})"
                if "auroc" in p else f"{p.get('status', '')}, labels close {p.get('labels_close', '')}")
        moved = "<br>".join(esc(f"{x['in_words']} (PSI {x['psi']:.2f})") for x in e.get("moved_most", [])[:3])
        alerts = "<br>".join(esc(f"[{a['kind']}, raised {a['raised']}] {a['message']}") for a in e["alerts"]) or "none"
        rows.append(f"<tr><td>{esc(e['month'])}</td><td>{e['points']:,}</td><td>{e.get('score_psi', float('nan')):.3f}"
                    f"</td><td>{moved}</td><td>{esc(perf)}</td><td>{alerts}</td></tr>")
    adv = summary["advice"]
    advice_html = ("<h2>Retraining advice</h2><p>" + esc(adv["why"]) + "</p><p>" + esc(adv["text"]) + "</p><pre>"
                   + esc("\n".join(adv["commands"])) + "</pre>") if adv else ""
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Monitoring: umrisk-{esc(summary['model'])} version {esc(summary['version'])}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:80em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 6px;vertical-align:top;font-size:90%}}</style></head><body>
<h1>Monitoring: umrisk-{esc(summary['model'])} version {esc(summary['version'])}</h1>
<p>Status: <strong>{esc(summary['status'])}</strong> ({len(summary['open_alerts'])} open alert(s)).
Trained to {esc(summary['trained_to'])}; reference months {esc(', '.join(summary['reference']))};
data to {esc(summary['data_end'])}.
Thresholds: {esc(json.dumps(summary['thresholds']))}.</p>
<img src="monitor.png" alt="PSI of the score and of the feature that moved most, AUROC and observed/expected by month">
{advice_html}
<h2>By month</h2><table><tr><th>month</th><th>points</th><th>score PSI</th><th>moved most</th>
<th>performance (labels matured)</th><th>alerts</th></tr>{''.join(rows)}</table>
<p>Every feature's PSI and test p-value per month: monitor.json (<code>months[].features</code>).</p></body></html>"""
    path = out / "report.html"
    path.write_text(page)
    return path


def _log(model_name: str, mv, summary: dict, out: Path) -> None:
    """An MLflow run in the model's experiment linked to the version, and the version's monitoring tags."""
    import mlflow
    from mlflow.tracking import MlflowClient

    registry.experiment(model_name)
    with mlflow.start_run(run_name=f"monitor-v{mv.version}") as run:
        mlflow.set_tags({"umrisk.model": model_name, "umrisk.kind": "monitor", "umrisk.model_version": str(mv.version),
                         "umrisk.training_run": mv.run_id, "monitoring_status": summary["status"]})
        for step, e in enumerate(summary["months"]):
            p = e.get("performance", {})
            values = {"score_psi": e.get("score_psi"), "max_feature_psi": e.get("max_feature_psi"),
                      "auroc": p.get("auroc"), "oe_ratio": p.get("oe_ratio"), "ici": p.get("ici"),
                      "alerts": float(len(e["alerts"]))}
            mlflow.log_metrics({k: float(v) for k, v in values.items() if v is not None and np.isfinite(v)}, step=step)
        mlflow.log_metric("open_alerts", float(len(summary["open_alerts"])))
        mlflow.log_artifacts(str(out), artifact_path="monitoring")
    summary["run_id"] = run.info.run_id
    client = MlflowClient()
    name = registry.registered_name(model_name)
    what = sorted({a["what"] for a in summary["open_alerts"]})
    for k, v in {"monitoring_status": summary["status"],
                 "monitoring_alerts": (f"{len(summary['open_alerts'])}: " + ", ".join(what))[:250] if what else "0",
                 "monitoring_run_id": run.info.run_id,
                 "monitoring_checked": pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")}.items():
        client.set_model_version_tag(name, str(mv.version), k, v)



def brief(summary: dict) -> dict:
    """The summary without every feature's figures per month (those stay in ``monitor.json``): what ``--json``
    prints."""
    return {**summary, "months": [{k: v for k, v in e.items() if k != "features"} for e in summary["months"]]}
