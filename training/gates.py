"""The promotion gates of a spec, as values beside their limits: checked by ``umrisk promote``, logged on every
training run (metrics ``gate_<name>_value``, ``gate_<name>_limit``, ``gate_<name>_ok``) and recorded on the
registered version (tag ``gate.<name>``), so a version's gate values can be read without re-evaluating it."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from umrisk.features.spec import GateSpec


def absolute_gates(g: GateSpec, metrics: Mapping[str, float]) -> list[dict]:
    """The gates a model must pass on its own: minimum AUROC, maximum ICI, calibration slope bounds."""
    m = metrics
    out = [
        {"name": "min_auroc", "gate": "AUROC at least the minimum", "value": m["auroc"], "limit": g.min_auroc,
         "ok": m["auroc"] >= g.min_auroc},
        {"name": "max_ici", "gate": "ICI at most the maximum", "value": m["ici"], "limit": g.max_ici,
         "ok": m["ici"] <= g.max_ici},
        {"name": "calibration_slope", "gate": "calibration slope within bounds", "value": m["calibration_slope"],
         "limit": list(g.calibration_slope),
         "ok": g.calibration_slope[0] <= m["calibration_slope"] <= g.calibration_slope[1]},
    ]
    for row in out:
        row["ok"] = bool(row["ok"])
    return out


def relative_gates(g: GateSpec, challenger: dict, champion: dict) -> list[dict]:
    """The gates against the champion on the same points: AUROC and each subgroup's AUROC within margins."""
    m, c = challenger["metrics"], champion["metrics"]
    out = [{"name": "champion_auroc", "gate": "AUROC not lower than the champion's beyond the margin",
            "value": m["auroc"], "limit": c["auroc"] - g.max_auroc_drop,
            "ok": bool(m["auroc"] >= c["auroc"] - g.max_auroc_drop)}]
    a = challenger["subgroups"].set_index(["group", "level"])["auroc"]
    b = champion["subgroups"].set_index(["group", "level"])["auroc"]
    both = pd.concat([a.rename("challenger"), b.rename("champion")], axis=1).dropna()
    for (group, level), r in both.iterrows():
        out.append({"name": f"subgroup_{group}_{level}", "gate": f"subgroup {group} = {level}: AUROC not worse "
                    "beyond the margin", "value": r["challenger"], "limit": r["champion"] - g.max_subgroup_auroc_drop,
                    "ok": bool(r["challenger"] >= r["champion"] - g.max_subgroup_auroc_drop)})
    return out


def gate_metrics(checks: list[dict]) -> dict[str, float]:
    """The gate values as run metrics (a two-sided limit as ``_low`` and ``_high``)."""
    out: dict[str, float] = {}
    for c in checks:
        key = f"gate_{c['name']}"
        out[f"{key}_value"] = float(c["value"])
        if isinstance(c["limit"], list | tuple):
            out[f"{key}_limit_low"], out[f"{key}_limit_high"] = (float(x) for x in c["limit"])
        else:
            out[f"{key}_limit"] = float(c["limit"])
        out[f"{key}_ok"] = float(c["ok"])
    return out


def gate_tags(checks: list[dict]) -> dict[str, str]:
    """One version tag per gate: ``pass 0.712 (limit 0.650)``."""
    def fmt(x) -> str:
        return "-".join(f"{v:.3f}" for v in x) if isinstance(x, list | tuple) else f"{x:.3f}"

    return {f"gate.{c['name']}": f"{'pass' if c['ok'] else 'FAIL'} {fmt(c['value'])} (limit {fmt(c['limit'])})"
            for c in checks}
