"""Comorbidity: Charlson (Quan coding) and Elixhauser (van Walraven weights) conditions and indices, and the
CMS CCW chronic conditions, from any qualifying diagnosis in the look-back."""

from __future__ import annotations

import numpy as np

from umrisk.features import codes
from umrisk.features.catalog import FeatureInfo
from umrisk.features.events import EventIndex, seconds
from umrisk.features.groups.context import Context
from umrisk.features.spec import FeatureSpec

NAME = "comorbidity"
TASKS = ("discharge", "member_month")
CHARLSON_HIERARCHY = (("diab", "diabwc"), ("mld", "msld"), ("canc", "metacanc"))
ELIXHAUSER_HIERARCHY = (("diabunc", "diabc"), ("hypunc", "hypc"), ("solidtum", "metacanc"))
CHARLSON_WORDS = {
    "mi": "myocardial infarction", "chf": "congestive heart failure", "pvd": "peripheral vascular disease",
    "cevd": "cerebrovascular disease", "dementia": "dementia", "cpd": "chronic pulmonary disease",
    "rheumd": "rheumatic disease", "pud": "peptic ulcer disease", "mld": "mild liver disease",
    "diab": "diabetes without complications", "diabwc": "diabetes with complications",
    "hp": "hemiplegia or paraplegia", "rend": "renal disease", "canc": "cancer", "msld": "severe liver disease",
    "metacanc": "metastatic solid tumour", "aids": "HIV/AIDS",
}


def condition_labels() -> dict[str, list[str]]:
    return {
        "charlson": list(dict.fromkeys(codes.valueset("charlson_quan")["condition"])),
        "elixhauser": list(dict.fromkeys(codes.valueset("elixhauser_weights")["condition"])),
        "chronic": list(dict.fromkeys(codes.valueset("chronic_conditions")["condition"])),
    }


def catalog(fs: FeatureSpec) -> list[FeatureInfo]:
    labels = condition_labels()
    lb = fs.comorbidity_lookback_days
    out = []
    for c in labels["charlson"]:
        words = CHARLSON_WORDS.get(c, c)
        out.append(FeatureInfo(f"cci_{c}", f"Charlson condition: {words} (diagnosed in the last {lb} days)", "flag",
                               NAME, "flag", reason=words))
    out.append(FeatureInfo("charlson_index", "Charlson comorbidity index (Quan coding, Charlson 1987 weights)",
                           "points", NAME, reason="Charlson index {value:.0f}", direction="increasing"))
    for c in labels["elixhauser"]:
        out.append(FeatureInfo(f"elx_{c}", f"Elixhauser condition: {c} (diagnosed in the last {lb} days)", "flag",
                               NAME, "flag", reason=f"Elixhauser {c}"))
    out.append(FeatureInfo("elixhauser_vw", "Elixhauser index, van Walraven weights", "points", NAME,
                           reason="Elixhauser index {value:.0f}", direction="increasing"))
    for c in labels["chronic"]:
        words = c.replace("_", " ")
        out.append(FeatureInfo(f"cc_{c}", f"Chronic condition: {words} (CMS CCW codes, last {lb} days)", "flag",
                               "chronic conditions", "flag", reason=words))
    out.append(FeatureInfo("n_chronic", "Number of chronic conditions", "count", "chronic conditions",
                           reason="{value:.0f} chronic conditions", reason_one="1 chronic condition",
                           direction="increasing"))
    return out


def compute(ctx: Context, out: dict) -> None:
    dx = ctx.store["diagnoses"]
    labels = condition_labels()
    dxm = ctx.codes("diagnoses")
    dxt = seconds(dx["time"])
    lb = ctx.spec.features.comorbidity_lookback_days
    cmap, cweights = codes.charlson()
    emap, eweights = codes.elixhauser()
    for prefix, pmap, names in (("cci", cmap, labels["charlson"]), ("elx", emap, labels["elixhauser"]),
                                ("cc", codes.chronic(), labels["chronic"])):
        key, table = pmap.lookup(dx["code_system"], dx["code"], names)
        for j, c in enumerate(names):
            sel = table[key, j]  # one boolean column at a time, not a rows x conditions matrix
            out[f"{prefix}_{c}"] = (EventIndex(dxm[sel], dxt[sel]).count(ctx.pm, ctx.as_of, lb) > 0).astype(np.int8)
    cci = {c: out[f"cci_{c}"].astype(bool) for c in labels["charlson"]}
    for lower, upper in CHARLSON_HIERARCHY:
        cci[lower] = cci[lower] & ~cci[upper]
    out["charlson_index"] = sum(cweights[c] * cci[c].astype(int) for c in cci)
    elx = {c: out[f"elx_{c}"].astype(bool) for c in labels["elixhauser"]}
    for lower, upper in ELIXHAUSER_HIERARCHY:
        elx[lower] = elx[lower] & ~elx[upper]
    out["elixhauser_vw"] = sum(eweights[c] * elx[c].astype(int) for c in elx)
    out["n_chronic"] = sum(out[f"cc_{c}"].astype(int) for c in labels["chronic"])
