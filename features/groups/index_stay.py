"""The index stay of a discharge: length, admission type, disposition, diagnosis group, procedures, cancer."""

from __future__ import annotations

import numpy as np
import pandas as pd

from umrisk.features import codes
from umrisk.features.catalog import FeatureInfo
from umrisk.features.cohorts import infer_dx_system
from umrisk.features.events import EventIndex, seconds
from umrisk.features.groups.context import DAY, Context
from umrisk.features.spec import FeatureSpec

NAME = "index stay"
TASKS = ("discharge",)


def catalog(fs: FeatureSpec) -> list[FeatureInfo]:
    return [
        FeatureInfo("los_days", "Length of the index stay", "days", NAME, reason="{value:.0f}-day stay",
                    reason_one="1-day stay", tasks=TASKS, direction="increasing"),
        FeatureInfo("admission_type", "Admission type of the index stay", "", NAME, "category",
                    reason="{value} admission", tasks=TASKS),
        FeatureInfo("discharge_disposition", "Where the member went after the index stay", "", NAME, "category",
                    reason="discharged to {value}", tasks=TASKS),
        FeatureInfo("principal_dx_group", "Body-system group of the index principal diagnosis", "", NAME,
                    "category", reason="admitted for a {value} condition", tasks=TASKS),
        FeatureInfo("n_procedures_index", "Number of procedures during the index stay", "count", NAME,
                    reason="{value:.0f} procedures during the stay", reason_one="1 procedure during the stay",
                    tasks=TASKS, direction="increasing"),
        FeatureInfo("oncology_index", "Index stay for cancer (principal diagnosis a malignancy)", "flag", NAME,
                    "flag", reason="stay for cancer", tasks=TASKS, direction="increasing"),
    ]


def dx_group(code: pd.Series, system: pd.Series) -> pd.Series:
    """Body-system group of a diagnosis code (ICD-10-CM or ICD-9-CM; other systems are 'other'), from
    ``valuesets/dx_groups.csv``.

    >>> dx_group(pd.Series(["I5023", "4280", "D649"]), pd.Series(["ICD10CM", "ICD9CM", "ICD10CM"])).tolist()
    ['circulatory', 'circulatory', 'blood']
    """
    groups = codes.valueset("dx_groups")
    c = codes.normalize(code).fillna("").astype(str)
    out = pd.Series("other", index=code.index, dtype=object)
    icd10 = (system == "ICD10CM").to_numpy()
    prefixes = groups[(groups["code_system"] == "ICD10CM")]
    for prefix, group in sorted(zip(prefixes["prefix"], prefixes["group"], strict=True), key=lambda r: len(r[0])):
        out[icd10 & c.str.startswith(prefix).to_numpy(dtype=bool)] = group  # longer prefixes later, so they win
    icd9 = (system == "ICD9CM").to_numpy()
    chapters = groups[(groups["code_system"] == "ICD9CM") & (groups["from"] != "")]
    head = c.str[:3]
    num = pd.to_numeric(head.where(head.str.isdigit()), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    for start, group in sorted(zip(chapters["from"].astype(int), chapters["group"], strict=True)):
        out[icd9 & (num >= start)] = group
    for prefix, group in groups[(groups["code_system"] == "ICD9CM") & (groups["prefix"] != "")][
            ["prefix", "group"]].itertuples(index=False):
        out[icd9 & c.str.startswith(prefix).to_numpy(dtype=bool)] = group
    return out


def compute(ctx: Context, out: dict) -> None:
    enc, procs, pts = ctx.store["encounters"], ctx.store["procedures"], ctx.points
    admit = seconds(pts["index_admit_time"])
    out["los_days"] = np.floor(ctx.as_of / DAY) - np.floor(admit / DAY)
    # from the point's own encounters: the first admission of the stay and the index discharge
    # (the chain itself is defined with a look one day ahead, so it is not read here)
    inpatient = enc[enc["setting"] == "inpatient"]
    last = inpatient.drop_duplicates("encounter_id").set_index("encounter_id").reindex(
        pts["index_encounter_id"].astype(str))
    first = inpatient.sort_values("encounter_id").drop_duplicates(["member_id", "admit_time"]).set_index(
        ["member_id", "admit_time"]).reindex(pd.MultiIndex.from_arrays(
            [pts["member_id"].astype(str), pts["index_admit_time"]]))
    out["admission_type"] = first["admission_type"].astype("str").fillna("unknown").to_numpy()
    out["discharge_disposition"] = last["discharge_disposition"].astype("str").fillna("unknown").to_numpy()
    pdx = first["principal_dx"].astype("str").fillna("").reset_index(drop=True)
    psys = infer_dx_system(pdx)
    out["principal_dx_group"] = dx_group(pdx, psys).to_numpy()
    p_idx = EventIndex(ctx.codes("procedures"), seconds(procs["time"]))
    out["n_procedures_index"] = p_idx.count(ctx.pm, ctx.as_of, None) - p_idx.count(ctx.pm, admit - 1, None)
    onc = codes.oncology().flags(psys, pdx, ["oncology"])
    out["oncology_index"] = onc["oncology"].to_numpy().astype(np.int8)
