"""The evaluation report (HTML with plots) and the model card (Markdown and JSON).

The model card covers the Model Cards (Mitchell et al. 2019) and TRIPOD+AI (Collins et al., BMJ 2024)
items that apply: intended use and users, out-of-scope uses, data and dates, the label definition,
metrics with intervals, subgroups, the clinical baselines, limitations and version lineage.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from jinja2 import Environment, select_autoescape  # noqa: E402
from sklearn.metrics import precision_recall_curve, roc_curve  # noqa: E402

from umrisk.features.spec import ModelSpec  # noqa: E402
from umrisk.training.metrics import calibration_curve, smooth_calibration  # noqa: E402

INTENDED = ("Rank the model's prediction points by their risk of the outcome below, so that utilization-review, "
            "transitional-care and value-based care teams reach the riskiest first within their capacity, with "
            "the reasons in words.")
USERS = "Utilization-review nurses and physicians, care-management and value-based care teams, data scientists."
OUT_OF_SCOPE = [
    "Approving, denying, reducing or delaying any coverage or care: the score ranks and explains; a clinician decides.",
    "Use as the sole basis of any decision about an individual.",
    "Populations unlike the training data (other payers, settings or years) without re-evaluation.",
    "Pricing, underwriting or eligibility decisions.",
]


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def plots(out: Path, ev: dict, contributions: pd.DataFrame | None, values: pd.DataFrame | None,
          baselines: dict[str, np.ndarray] | None = None) -> dict[str, str]:
    y, p = ev["y"], ev["p"]
    files = {}
    fig, ax = plt.subplots(figsize=(5, 5))
    fpr, tpr, _ = roc_curve(y, p)
    ax.plot(fpr, tpr, label=f"model (AUROC {ev['metrics']['auroc']:.3f})")
    for name, score in (baselines or {}).items():
        f2, t2, _ = roc_curve(y, score)
        ax.plot(f2, t2, label=f"{name} (AUROC {ev['baselines'].get(name, float('nan')):.3f})", alpha=0.7)
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set(xlabel="1 - specificity (false-positive rate)", ylabel="sensitivity (true-positive rate)",
           title="ROC curve on the test set")
    ax.legend(loc="lower right", fontsize=8)
    files["roc"] = _save(fig, out / "roc.png")
    fig, ax = plt.subplots(figsize=(5, 5))
    prec, rec, _ = precision_recall_curve(y, p)
    ax.plot(rec, prec)
    ax.axhline(y.mean(), color="k", ls=":", lw=1, label=f"prevalence {y.mean():.3f}")
    ax.set(xlabel="recall (share of events found)", ylabel="precision (share of flagged with the event)",
           title=f"Precision-recall on the test set (AUPRC {ev['metrics']['auprc']:.3f})")
    ax.legend(fontsize=8)
    files["pr"] = _save(fig, out / "precision_recall.png")
    fig, ax = plt.subplots(figsize=(5, 5))
    cc = calibration_curve(y, p)
    order = np.argsort(p)
    smooth = smooth_calibration(y, p)
    # the axes hold the deciles and 99 % of the predictions; the smoothed curve is drawn over that range only
    top = float(np.quantile(p, 0.99))
    shown = p[order] <= top
    lim = min(1.0, 1.08 * max(float(cc["predicted"].max()), float(cc["observed"].max()), top,
                              float(smooth[order][shown].max()) if shown.any() else 0.0))
    ax.plot([0, lim], [0, lim], "k:", lw=1, label="perfect calibration")
    ax.plot(p[order][shown], np.clip(smooth[order][shown], 0, lim), label="smoothed observed")
    ax.scatter(cc["predicted"], cc["observed"], label="deciles of predicted risk", zorder=3)
    m = ev["metrics"]
    ax.set(xlabel="predicted probability", ylabel="observed proportion", xlim=(0, lim), ylim=(0, lim),
           title=f"Calibration on the test set\n(ICI {m['ici']:.3f}, slope {m['calibration_slope']:.2f})")
    ax.legend(fontsize=8, loc="upper left")
    files["calibration"] = _save(fig, out / "calibration.png")
    nb = ev["net_benefit"]
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(nb["threshold"], nb["model"], label="model")
    ax.plot(nb["threshold"], nb["treat_all"], label="review all", ls="--")
    ax.plot(nb["threshold"], nb["treat_none"], label="review none", ls=":")
    ax.set(xlabel="threshold probability", ylabel="net benefit", title="Decision curve: net benefit of review",
           ylim=(min(-0.01, float(nb["model"].min())), float(max(nb["model"].max(), nb["treat_all"].max()) * 1.1)))
    ax.legend(fontsize=8)
    files["decision_curve"] = _save(fig, out / "decision_curve.png")
    if contributions is not None and values is not None:
        contrib = contributions.drop(columns="bias")
        top = contrib.abs().mean().sort_values(ascending=False).head(15).index[::-1]
        fig, ax = plt.subplots(figsize=(7, 6))
        rng = np.random.default_rng(0)
        points = None
        for i, name in enumerate(top):
            v = pd.to_numeric(values[name], errors="coerce") if values[name].dtype.name != "category" \
                else values[name].cat.codes.astype(float).where(values[name].notna())
            rank = v.rank(pct=True).fillna(0.5).to_numpy()
            points = ax.scatter(contrib[name], i + rng.uniform(-0.25, 0.25, len(contrib)), c=rank, cmap="coolwarm",
                                s=5, alpha=0.6, vmin=0, vmax=1)
        ax.set_yticks(range(len(top)), top, fontsize=8)
        ax.axvline(0, color="k", lw=0.5)
        ax.set(xlabel="contribution to the log-odds of the event (TreeSHAP)",
               title="What drives the scores: the 15 features of largest contribution")
        if points is not None:
            bar = fig.colorbar(points, ax=ax, ticks=[0, 1], pad=0.01)
            bar.ax.set_yticklabels(["low", "high"])
            bar.set_label("feature value (rank; categories by level code)", fontsize=8)
        files["shap"] = _save(fig, out / "shap_summary.png")
    return files


def about_spec(spec: ModelSpec) -> dict:
    """What a model card says about a spec's model: its name, task kind, outcome, intended use and label."""
    return {"name": spec.name, "task": spec.task, "description": spec.description,
            "intended_use": getattr(spec, "intended_use", "") or f"{INTENDED} Outcome: {spec.description}",
            "label_definition": {"cohort": spec.cohort.model_dump(mode="json"),
                                 "label": spec.label.model_dump(mode="json")}}


def model_card(*, about: dict, version: str | None, run_id: str | None, ev: dict, cohort: dict,
               split: dict, lineage: dict, calibration: str, trained_on: tuple, tested_on: tuple,
               model_type: str | None = None) -> dict:
    """The card's facts; ``about`` is ``about_spec(spec)`` or the same keys for a table trained as given
    (``synthetic``: the data were generated, not real members)."""
    sub = ev["subgroups"]
    synthetic = bool(about.get("synthetic"))
    return {
        **({"synthetic_data": SYNTHETIC} if synthetic else {}),
        "model": f"umrisk-{about['name']}", "version": version, "run_id": run_id, "task": about["task"],
        "description": about["description"],
        "intended_use": about["intended_use"], "intended_users": USERS, "out_of_scope": OUT_OF_SCOPE,
        "human_in_the_loop": "Scores prioritise and explain; they never approve or deny care.",
        "data": {"training_points": split.get("train"), "validation_points": split.get("valid"),
                 "calibration_points": split.get("calib"), "test_points": split.get("test"),
                 "training_period": [str(trained_on[0]), str(trained_on[1])],
                 "test_period": [str(tested_on[0]), str(tested_on[1])], "cohort": cohort},
        "label_definition": about["label_definition"],
        "model_type": model_type or f"LightGBM gradient-boosted trees, early stopping on a validation fold, "
                                    f"{calibration} calibration on a separate fold",
        "metrics": {k: v for k, v in ev["metrics"].items() if k != "top_k"},
        "review_capacity": ev["metrics"]["top_k"],
        "baselines": ev["baselines"],
        "leads": ev.get("leads") or {},
        "gates": ev.get("gates") or [],
        "flags": ev.get("flags") or [],
        "subgroups": json.loads(sub.to_json(orient="records")),
        "limitations": [
            *([SYNTHETIC] if synthetic else []),
            "Trained on the data named above; performance elsewhere must be checked before use.",
            "Claims-based features miss what claims do not record (social needs, vital signs, notes).",
            "Subgroups with few events have wide uncertainty; levels under the minimum size are not scored.",
            "Planned readmissions follow representative codes of the CMS Planned Readmission Algorithm v4.0, "
            "not its full code lists.",
        ],
        "lineage": lineage,
        **({"notes": about["notes"]} if about.get("notes") else {}),
    }


SYNTHETIC = ("Synthetic data: this model was trained and tested on a generated population with known risks "
             "(the store has truth/), not on real members; its figures say nothing about performance on real data.")


def _fmt(x, digits: int = 3) -> str:
    """A number to ``digits`` decimals, a pair as ``low-high``, empty for missing."""
    if isinstance(x, list | tuple):
        return "-".join(_fmt(v, digits) for v in x)
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return ""
    return f"{x:.{digits}f}"


def _points(n) -> str:
    return f"{n:,}" if isinstance(n, int | float) else "not recorded"


def _points_line(d: dict) -> str:
    """Training and test points; validation and calibration folds only when the split set them aside."""
    if not d.get("validation_points") and not d.get("calibration_points"):
        return (f"- Points: training {_points(d['training_points'])} (validation and calibration by cross-validation "
                f"inside them, none set aside), test {_points(d['test_points'])}")
    return (f"- Points: training {_points(d['training_points'])}, validation {_points(d['validation_points'])}, "
            f"calibration {_points(d['calibration_points'])}, test {_points(d['test_points'])}")


def card_markdown(card: dict) -> str:
    m = card["metrics"]
    lines = [f"# Model card: {card['model']} version {card['version']}", ""]
    if card.get("synthetic_data"):
        lines += [f"> **{card['synthetic_data']}**", ""]
    if card.get("flags"):
        lines += ["> **Subgroups to look at:** " + "; ".join(card["flags"]), ""]
    lines += [card["description"], "",
             "## Intended use", card["intended_use"], "", f"**Users:** {card['intended_users']}", "",
             f"**Human in the loop:** {card['human_in_the_loop']}", "", "## Out of scope"]
    lines += [f"- {x}" for x in card["out_of_scope"]]
    d = card["data"]
    lines += ["", "## Data", f"- Training period {d['training_period'][0]} to {d['training_period'][1]}; "
              f"test period {d['test_period'][0]} to {d['test_period'][1]}",
              _points_line(d),
              "", "## Label", "```json", json.dumps(card["label_definition"], indent=2), "```",
              "", f"## Model\n{card['model_type']}", "", "## Performance on the test set",
              f"- AUROC {m['auroc']:.3f} (95 % CI {m['auroc_ci_low']:.3f}-{m['auroc_ci_high']:.3f}); "
              f"AUPRC {m['auprc']:.3f}",
              f"- Brier {m['brier']:.4f}; calibration intercept {m['calibration_intercept']:.3f}, slope "
              f"{m['calibration_slope']:.3f}; ICI {m['ici']:.4f}; E90 {m['e90']:.4f}; O/E {m['oe_ratio']:.3f}",
              "", "| review capacity | cases | precision | recall | lift |", "|---|---|---|---|---|"]
    lines += [f"| top {t['fraction']:.0%} | {t['k']:,} | {t['precision']:.3f} | {t['recall']:.3f} | {t['lift']:.2f} |"
              for t in card["review_capacity"]]
    lines += ["", "## Baselines on the same test set (AUROC)"]
    lines += [f"- {k}: {v:.3f}" for k, v in card["baselines"].items()]
    if card.get("leads"):
        lines += ["", "## Lead over each baseline and the champion (AUROC difference, paired bootstrap 95 % CI)"]
        lines += [f"- over {k}{' version ' + v['version'] if v.get('version') else ''}: {v['diff']:+.3f} "
                  f"({v['lo']:+.3f} to {v['hi']:+.3f})" for k, v in card["leads"].items()]
    if card.get("gates"):
        lines += ["", "## Gates (on this test set)"]
        lines += [f"- [{'pass' if g['ok'] else 'FAIL'}] {g['gate']}: {_fmt(g['value'])} (limit {_fmt(g['limit'])})"
                  for g in card["gates"]]
    lines += ["", "## Subgroups",
              "| group | level | n | events | observed | expected | O/E | AUROC (95 % CI) | status |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in card["subgroups"]:
        auc = _fmt(r.get("auroc"))
        if auc and r.get("auroc_ci_low") is not None:
            auc += f" ({_fmt(r['auroc_ci_low'])}-{_fmt(r['auroc_ci_high'])})"
        lines.append(f"| {r['group']} | {r['level']} | {r['n']:,} | {r['events']:,} | {_fmt(r['observed'])} | "
                     f"{_fmt(r['expected'])} | {_fmt(r.get('oe_ratio'), 2)} | {auc} | {r.get('status', '')} |")
    if card.get("notes"):
        lines += ["", "## Notes"] + [f"- {x}" for x in card["notes"]]
    lines += ["", "## Limitations"] + [f"- {x}" for x in card["limitations"]]
    lines += ["", "## Lineage", "```json", json.dumps(card["lineage"], indent=2), "```", ""]
    return "\n".join(lines)


TEMPLATE = Path(__file__).with_name("report.html.j2")


def write_report(out: Path, card: dict, ev: dict, importance: pd.DataFrame, contributions: pd.DataFrame | None,
                 values: pd.DataFrame | None, baseline_scores: dict[str, np.ndarray] | None = None) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    files = plots(out, ev, contributions, values, baseline_scores)
    (out / "model_card.json").write_text(json.dumps(card, indent=2, default=str))
    (out / "model_card.md").write_text(card_markdown(card))
    ev["subgroups"].to_csv(out / "subgroups.csv", index=False)
    importance.to_csv(out / "feature_importance.csv", index=False)
    ev["net_benefit"].to_csv(out / "net_benefit.csv", index=False)
    env = Environment(autoescape=select_autoescape(["html"]))
    html = env.from_string(TEMPLATE.read_text()).render(
        card=card, m=card["metrics"], plots=files, fmt=_fmt,
        subgroups=ev["subgroups"].to_html(index=False, float_format=lambda x: f"{x:.3f}", na_rep=""),
        importance=importance.head(25).to_html(index=False, float_format=lambda x: f"{x:,.1f}"))
    (out / "report.html").write_text(html)
    return out / "report.html"
