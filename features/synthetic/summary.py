"""The realism summary printed after generation, with the published ranges it is checked against.

Ranges (inpatient admissions per 1,000 member-years, all causes, planned included):
- Medicare fee-for-service: about 230-280 (MedPAC, *Data Book: Health care spending and the Medicare
  program*, inpatient discharges per 1,000 FFS beneficiaries, 2015-2022) -> accepted 200-320.
- Medicaid: about 70-120, maternity included (MACPAC, *MACStats* hospital use by enrollees) -> 60-140.
- Commercial (employer-sponsored): about 50-60 (HCCI *Health Care Cost and Utilization Report*) -> 40-80.
- Dual-eligible: about 1.4-2x Medicare overall (CMS Medicare-Medicaid Coordination Office data
  analysis briefs) -> 300-550.
- 30-day unplanned readmission: 10-20 % (CMS Hospital-Wide Readmission measure, national rate about
  14.5-15.5 %); oracle AUROC for readmission 0.75-0.88 (the issue's target: real signal, not trivial).
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

ADMISSIONS_PER_1000 = {"medicare": (200, 320), "medicaid": (60, 140), "commercial": (40, 80), "dual": (300, 550)}
READMISSION_RATE = (0.10, 0.20)
ORACLE_AUROC = (0.75, 0.88)


def realism(stats: dict) -> dict:
    """Figures a reviewer checks, each with its accepted range and whether it holds."""
    out: dict = {"admissions_per_1000": {}, "deaths_per_1000": {}, "ed_visits_per_1000": {}}
    for lob, (lo, hi) in ADMISSIONS_PER_1000.items():
        years = stats["member_years"][lob]
        rate = 1000 * stats["admissions"][lob] / years if years else float("nan")
        out["admissions_per_1000"][lob] = {"value": rate, "range": [lo, hi], "ok": bool(lo <= rate <= hi)}
        out["deaths_per_1000"][lob] = 1000 * stats["deaths"][lob] / years if years else float("nan")
        out["ed_visits_per_1000"][lob] = 1000 * stats["ed_visits"][lob] / years if years else float("nan")
    y, p = stats["readmit_y"], stats["readmit_p"]
    rate = float(np.mean(y)) if len(y) else float("nan")
    auc = float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")
    out["readmission_rate"] = {"value": rate, "range": list(READMISSION_RATE), "n": int(len(y)),
                               "ok": bool(READMISSION_RATE[0] <= rate <= READMISSION_RATE[1])}
    out["readmission_oracle_auroc"] = {"value": auc, "range": list(ORACLE_AUROC),
                                       "ok": bool(ORACLE_AUROC[0] <= auc <= ORACLE_AUROC[1])}
    ya, pa = stats["admit_y"], stats["admit_p"]
    out["admission_rate_180d"] = float(np.mean(ya)) if len(ya) else float("nan")
    out["admission_oracle_auroc"] = float(roc_auc_score(ya, pa)) if 0 < ya.sum() < len(ya) else float("nan")
    n65 = stats["n_65"]
    out["prevalence_medicare_65_plus"] = {c: v / n65 for c, v in stats["prevalence_65"].items()} if n65 else {}
    out["ok"] = bool(all(v["ok"] for v in out["admissions_per_1000"].values())
                     and out["readmission_rate"]["ok"] and out["readmission_oracle_auroc"]["ok"])
    return out


def render(stats: dict, real: dict) -> str:
    mark = {True: "ok", False: "OUT OF RANGE"}
    by_lob = "   ".join(f"{k}: {v:,}" for k, v in stats["members_by_lob"].items())
    lines = [f"Members: {stats['members']:,}   {by_lob}",
             "Rows: " + ", ".join(f"{k} {v:,}" for k, v in stats["rows"].items()),
             "Inpatient admissions per 1,000 member-years (published range):"]
    for lob, r in real["admissions_per_1000"].items():
        lines.append(f"  {lob:<11}{r['value']:7.0f}   ({r['range'][0]}-{r['range'][1]})  {mark[r['ok']]}"
                     f"   deaths/1,000 {real['deaths_per_1000'][lob]:5.1f}   ED visits/1,000 "
                     f"{real['ed_visits_per_1000'][lob]:5.0f}")
    r = real["readmission_rate"]
    lines.append(f"30-day unplanned readmission rate: {r['value']:.1%} of {r['n']:,} index discharges "
                 f"(10-20 %)  {mark[r['ok']]}")
    a = real["readmission_oracle_auroc"]
    lines.append(f"Oracle AUROC, readmission (true probability vs drawn label): {a['value']:.3f} (0.75-0.88)  "
                 f"{mark[a['ok']]}")
    lines.append(f"180-day unplanned admission rate: {real['admission_rate_180d']:.1%};  oracle AUROC "
                 f"{real['admission_oracle_auroc']:.3f}")
    prev = real["prevalence_medicare_65_plus"]
    if prev:
        lines.append("Prevalence, Medicare and dual 65+: " + ", ".join(f"{c} {v:.0%}" for c, v in prev.items()))
    return "\n".join(lines)
