"""Medications: distinct drug classes filled in look-back windows, polypharmacy, high-risk classes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from umrisk.features.catalog import FeatureInfo
from umrisk.features.events import EventIndex, seconds
from umrisk.features.groups.context import Context
from umrisk.features.spec import FeatureSpec

NAME = "medications"
TASKS = ("discharge", "member_month")
HIGH_RISK = ("anticoagulant", "insulin", "opioid", "cardiac_glycoside")  # drug_class values of the store
POLYPHARMACY_CLASSES = 5


def catalog(fs: FeatureSpec) -> list[FeatureInfo]:
    out = [FeatureInfo(f"n_drug_classes_{w}d", f"Distinct drug classes filled in the last {w} days", "count", NAME,
                       reason=f"{{value:.0f}} drug classes in the last {w} days",
                       reason_one=f"1 drug class in the last {w} days") for w in fs.medication_windows_days]
    w0 = fs.medication_windows_days[0]
    out.append(FeatureInfo("polypharmacy", f"{POLYPHARMACY_CLASSES} or more drug classes in the last {w0} days",
                           "flag", NAME, "flag", reason="polypharmacy"))
    for c in HIGH_RISK:
        words = c.replace("_", " ")
        out.append(FeatureInfo(f"rx_{c}", f"Filled a {words} in the last {w0} days (high-risk class)", "flag",
                               NAME, "flag", reason=f"on a {words}"))
    return out


def compute(ctx: Context, out: dict) -> None:
    """Distinct classes (the RxNorm/NDC code stands in when a fill has no class)."""
    fs = ctx.spec.features
    med = ctx.store["medications"]
    mm = ctx.codes("medications")
    mt = seconds(med["time"])
    cls_idx, cls_names = pd.factorize(med["drug_class"])
    code_idx, code_names = pd.factorize(med["code"])
    inv = np.where(cls_idx >= 0, cls_idx, len(cls_names) + code_idx)
    uniq = [*map(str, cls_names), *map(str, code_names)]
    n = len(ctx.points)
    for w in fs.medication_windows_days:
        out[f"n_drug_classes_{w}d"] = np.zeros(n, dtype=np.int64)
    order = np.argsort(inv, kind="stable")
    bounds = np.searchsorted(inv[order], np.arange(len(uniq) + 1))
    w0 = fs.medication_windows_days[0]
    for j, name in enumerate(uniq):
        rows = order[bounds[j]:bounds[j + 1]]
        idx = EventIndex(mm[rows], mt[rows])
        for w in fs.medication_windows_days:
            hit = idx.count(ctx.pm, ctx.as_of, w) > 0
            out[f"n_drug_classes_{w}d"] += hit
            if w == w0 and name in HIGH_RISK:
                out[f"rx_{name}"] = hit.astype(np.int8)
    for c in HIGH_RISK:
        out.setdefault(f"rx_{c}", np.zeros(n, dtype=np.int8))
    out["polypharmacy"] = (out[f"n_drug_classes_{w0}d"] >= POLYPHARMACY_CLASSES).astype(np.int8)
