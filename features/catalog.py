"""The feature catalog: every feature's name, plain-language description, unit and group.

Reason codes are read from here: ``reason`` is a template filled with the member's own value, e.g.
``"{value:.0f} emergency visits in the last 180 days"``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd
from umrisk.features.spec import FeatureSpec

SETTING_WORDS = {
    "inpatient": ("inpatient admissions", "inpatient admission"),
    "emergency": ("emergency visits", "emergency visit"),
    "observation": ("observation stays", "observation stay"),
    "outpatient": ("hospital outpatient visits", "hospital outpatient visit"),
    "office": ("office visits", "office visit"),
    "snf": ("skilled nursing facility stays", "skilled nursing facility stay"),
    "home_health": ("home-health visits", "home-health visit"),
    "telehealth": ("telehealth visits", "telehealth visit"),
    "hospice": ("hospice encounters", "hospice encounter"),
}
LABS = {
    # name: (LOINC codes, unit, abnormal rule, words)
    "hemoglobin": (("718-7", "30313-1", "20509-6"), "g/dL", "below 12", "hemoglobin"),
    "sodium": (("2951-2", "2947-0"), "mmol/L", "below 135 or above 145", "sodium"),
    "egfr": (("33914-3", "62238-1", "48642-3", "48643-1", "98979-8", "69405-9"), "mL/min/1.73m2", "below 60",
             "eGFR"),
    "hba1c": (("4548-4", "17856-6", "4549-2"), "%", "6.5 or above", "HbA1c"),
    "bnp": (("30934-4", "42637-9"), "pg/mL", "above 100", "BNP"),
}
CHARLSON_WORDS = {
    "mi": "myocardial infarction", "chf": "congestive heart failure", "pvd": "peripheral vascular disease",
    "cevd": "cerebrovascular disease", "dementia": "dementia", "cpd": "chronic pulmonary disease",
    "rheumd": "rheumatic disease", "pud": "peptic ulcer disease", "mld": "mild liver disease",
    "diab": "diabetes without complications", "diabwc": "diabetes with complications",
    "hp": "hemiplegia or paraplegia", "rend": "renal disease", "canc": "cancer", "msld": "severe liver disease",
    "metacanc": "metastatic solid tumour", "aids": "HIV/AIDS",
}
HIGH_RISK = ("anticoagulant", "insulin", "opioid", "cardiac_glycoside")


@dataclass(frozen=True)
class FeatureInfo:
    name: str
    description: str
    unit: str
    group: str
    kind: str = "number"            # number | flag | category
    reason: str = "{value}"         # filled with the member's own value for reason codes
    tasks: tuple[str, ...] = ("readmission", "admission")


def _plural(n_words: tuple[str, str]) -> str:
    return n_words[0]


def catalog(fs: FeatureSpec, conditions: dict[str, list[str]]) -> list[FeatureInfo]:
    """All features for a feature spec; ``conditions`` lists Charlson, Elixhauser and chronic labels."""
    out = [
        FeatureInfo("age", "Age at the prediction time", "years", "demographics", reason="age {value:.0f}"),
        FeatureInfo("sex", "Sex (F, M, U)", "", "demographics", "category", reason="sex {value}"),
        FeatureInfo("line_of_business", "Line of business at the prediction time", "", "demographics", "category",
                    reason="{value} member"),
    ]
    for s, words in SETTING_WORDS.items():
        for w in fs.windows_days:
            out.append(FeatureInfo(f"n_{s}_{w}d", f"Number of {words[0]} in the last {w} days", "count",
                                   "utilization", reason=f"{{value:.0f}} {words[0]} in the last {w} days"))
    for w in fs.paid_windows_days:
        out.append(FeatureInfo(f"paid_{w}d", f"Total paid amount of encounters in the last {w} days", "USD",
                               "utilization", reason=f"${{value:,.0f}} paid in the last {w} days"))
    out += [
        FeatureInfo("days_since_inpatient", "Days since the last inpatient discharge (before this stay)", "days",
                    "utilization", reason="last inpatient discharge {value:.0f} days earlier"),
        FeatureInfo("days_since_emergency", "Days since the last emergency visit", "days", "utilization",
                    reason="last emergency visit {value:.0f} days earlier"),
    ]
    index_only = ("readmission",)
    out += [
        FeatureInfo("los_days", "Length of the index stay", "days", "index stay", reason="{value:.0f}-day stay",
                    tasks=index_only),
        FeatureInfo("admission_type", "Admission type of the index stay", "", "index stay", "category",
                    reason="{value} admission", tasks=index_only),
        FeatureInfo("discharge_disposition", "Where the member went after the index stay", "", "index stay",
                    "category", reason="discharged to {value}", tasks=index_only),
        FeatureInfo("principal_dx_group", "Body-system group of the index principal diagnosis", "", "index stay",
                    "category", reason="admitted for a {value} condition", tasks=index_only),
        FeatureInfo("n_procedures_index", "Number of procedures during the index stay", "count", "index stay",
                    reason="{value:.0f} procedures during the stay", tasks=index_only),
        FeatureInfo("oncology_index", "Index stay for cancer (principal diagnosis a malignancy)", "flag",
                    "index stay", "flag", reason="stay for cancer", tasks=index_only),
    ]
    for lab, (_, unit, rule, words) in LABS.items():
        out.append(FeatureInfo(f"lab_{lab}", f"Last {words} in the last {fs.lab_lookback_days} days "
                                             "(at or before discharge for a stay)", unit, "labs",
                               reason=f"{words} {{value:g}} {unit}"))
        out.append(FeatureInfo(f"lab_{lab}_abnormal", f"Last {words} abnormal ({rule})", "flag", "labs", "flag",
                               reason=f"abnormal {words}"))
    lb = fs.comorbidity_lookback_days
    for c in conditions["charlson"]:
        out.append(FeatureInfo(f"cci_{c}", f"Charlson condition: {CHARLSON_WORDS.get(c, c)} "
                                           f"(diagnosed in the last {lb} days)", "flag", "comorbidity", "flag",
                               reason=CHARLSON_WORDS.get(c, c)))
    out.append(FeatureInfo("charlson_index", "Charlson comorbidity index (Quan coding, Charlson 1987 weights)",
                           "points", "comorbidity", reason="Charlson index {value:.0f}"))
    for c in conditions["elixhauser"]:
        out.append(FeatureInfo(f"elx_{c}", f"Elixhauser condition: {c} (diagnosed in the last {lb} days)", "flag",
                               "comorbidity", "flag", reason=f"Elixhauser {c}"))
    out.append(FeatureInfo("elixhauser_vw", "Elixhauser index, van Walraven weights", "points", "comorbidity",
                           reason="Elixhauser index {value:.0f}"))
    for c in conditions["chronic"]:
        words = c.replace("_", " ")
        out.append(FeatureInfo(f"cc_{c}", f"Chronic condition: {words} (CMS CCW codes, last {lb} days)", "flag",
                               "chronic conditions", "flag", reason=words))
    out.append(FeatureInfo("n_chronic", "Number of chronic conditions", "count", "chronic conditions",
                           reason="{value:.0f} chronic condition(s)"))
    for w in fs.medication_windows_days:
        out.append(FeatureInfo(f"n_drug_classes_{w}d", f"Distinct drug classes filled in the last {w} days",
                               "count", "medications", reason=f"{{value:.0f}} drug classes in the last {w} days"))
    w0 = fs.medication_windows_days[0]
    out.append(FeatureInfo("polypharmacy", f"Five or more drug classes in the last {w0} days", "flag",
                           "medications", "flag", reason="polypharmacy"))
    for c in HIGH_RISK:
        words = c.replace("_", " ")
        out.append(FeatureInfo(f"rx_{c}", f"Filled a {words} in the last {w0} days (high-risk class)", "flag",
                               "medications", "flag", reason=f"on a {words}"))
    out += [
        FeatureInfo("lace", "LACE index (van Walraven 2010): length of stay, acuity, Charlson, emergency visits",
                    "points", "clinical scores", reason="LACE {value:.0f}", tasks=index_only),
        FeatureInfo("hospital_score", "HOSPITAL score (Donze 2013)", "points", "clinical scores",
                    reason="HOSPITAL score {value:.0f}", tasks=index_only),
    ]
    return out


def catalog_frame(infos: list[FeatureInfo]) -> pd.DataFrame:
    return pd.DataFrame([asdict(i) for i in infos])
