"""Point-in-time features for prediction points: one code path for a batch and for one member.

``build_features(store, points, spec)`` returns one row per point with every feature of the catalog.
For a readmission point, ``as_of`` is the index discharge and utilization counts look back from the
index admission (what happened before this stay); labs, comorbidities and drugs look back from
``as_of``. Nothing after ``as_of`` is read: every look-up goes through ``events.EventIndex``, whose windows
end at the point's own time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from umrisk.features import codes
from umrisk.features.catalog import HIGH_RISK, LABS, SETTING_WORDS, FeatureInfo, catalog
from umrisk.features.cohorts import chain_stays, infer_dx_system
from umrisk.features.events import EventIndex, MemberCodes, seconds
from umrisk.features.spec import ModelSpec

CHARLSON_HIERARCHY = (("diab", "diabwc"), ("mld", "msld"), ("canc", "metacanc"))
ELIXHAUSER_HIERARCHY = (("diabunc", "diabc"), ("hypunc", "hypc"), ("solidtum", "metacanc"))
DX_GROUPS = (  # ICD-10-CM first letter (or range) -> body-system group
    ("A", "infection"), ("B", "infection"), ("C", "neoplasm"), ("D0", "neoplasm"), ("D1", "neoplasm"),
    ("D2", "neoplasm"), ("D3", "neoplasm"), ("D4", "neoplasm"), ("D", "blood"), ("E", "endocrine"),
    ("F", "mental health"), ("G", "nervous system"), ("H", "eye or ear"), ("I", "circulatory"),
    ("J", "respiratory"), ("K", "digestive"), ("L", "skin"), ("M", "musculoskeletal"), ("N", "genitourinary"),
    ("O", "pregnancy"), ("P", "perinatal"), ("Q", "congenital"), ("R", "symptoms"), ("S", "injury"),
    ("T", "injury"), ("Z", "health services"),
)
ICD9_GROUPS = ((1, "infection"), (140, "neoplasm"), (240, "endocrine"), (280, "blood"), (290, "mental health"),
               (320, "nervous system"), (390, "circulatory"), (460, "respiratory"), (520, "digestive"),
               (580, "genitourinary"), (630, "pregnancy"), (680, "skin"), (710, "musculoskeletal"),
               (740, "congenital"), (760, "perinatal"), (780, "symptoms"), (800, "injury"))


@dataclass(frozen=True)
class FeatureSet:
    """The features a spec produces, in order, with their catalog entries."""

    infos: tuple[FeatureInfo, ...]

    @property
    def names(self) -> list[str]:
        return [i.name for i in self.infos]

    @property
    def categorical(self) -> list[str]:
        return [i.name for i in self.infos if i.kind == "category"]


def condition_labels() -> dict[str, list[str]]:
    return {
        "charlson": list(dict.fromkeys(codes.valueset("charlson_quan")["condition"])),
        "elixhauser": list(dict.fromkeys(codes.valueset("elixhauser_weights")["condition"])),
        "chronic": list(dict.fromkeys(codes.valueset("chronic_conditions")["condition"])),
    }


def feature_set(spec: ModelSpec) -> FeatureSet:
    infos = [i for i in catalog(spec.features, condition_labels()) if spec.task in i.tasks]
    return FeatureSet(tuple(infos))


def dx_group(code: pd.Series, system: pd.Series) -> pd.Series:
    """Body-system group of a diagnosis code (ICD-10-CM or ICD-9-CM; other systems are 'other')."""
    c = codes.normalize(code).fillna("")
    out = pd.Series("other", index=code.index, dtype=object)
    icd10 = system == "ICD10CM"
    for prefix, group in reversed(DX_GROUPS):  # longer prefixes last so they win
        out[icd10 & c.str.startswith(prefix) & (out == "other")] = group
    for prefix, group in DX_GROUPS:
        if len(prefix) == 2:
            out[icd10 & c.str.startswith(prefix)] = group
    icd9 = system == "ICD9CM"
    num = pd.to_numeric(c.str[:3].where(c.str[:3].str.isdigit()), errors="coerce")
    for start, group in ICD9_GROUPS:
        out[icd9 & (num >= start)] = group
    out[icd9 & c.str.startswith("V")] = "health services"
    return out


def _windows_from(points: pd.DataFrame, spec: ModelSpec) -> tuple[np.ndarray, np.ndarray]:
    """(as_of, history_end) in seconds: utilization looks back from the index admission for readmission."""
    as_of = seconds(points["as_of"])
    if spec.task == "readmission" and "index_admit_time" in points:
        return as_of, seconds(points["index_admit_time"])
    return as_of, as_of


def build_features(store: dict[str, pd.DataFrame], points: pd.DataFrame, spec: ModelSpec,
                   progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    """One row per point (same order) with the point's columns and every feature of the spec.

    ``progress`` is told the name of each feature group as it starts (for a progress bar).
    """
    step = progress or (lambda _name: None)
    fs = spec.features
    fset = feature_set(spec)
    members = store["members"]
    mc = MemberCodes(pd.concat([members["member_id"], points["member_id"]], ignore_index=True))
    pm = mc.encode(points["member_id"])
    as_of, hist = _windows_from(points, spec)
    out: dict[str, np.ndarray | pd.Series] = {}
    day = 86400

    step("demographics")
    mrow = members.set_index("member_id").reindex(points["member_id"].astype(str))
    birth = seconds(mrow["birth_date"])
    out["age"] = np.where(birth >= 0, (as_of - birth) / (365.25 * day), np.nan)
    out["sex"] = mrow["sex"].astype("str").fillna("U").to_numpy()
    enr = store["enrollment"]
    e_idx = EventIndex(mc.encode(enr["member_id"]), seconds(enr["start_date"]),
                       np.arange(len(enr), dtype=float))
    pos, _ = e_idx.last(pm, as_of)
    lob = np.full(len(points), "unknown", dtype=object)
    ok = ~np.isnan(pos)
    rows = pos[ok].astype(int)
    covered = seconds(enr["end_date"].iloc[rows]) + day > as_of[ok]
    lob_vals = enr["line_of_business"].to_numpy()[rows]
    lob[np.flatnonzero(ok)[covered]] = lob_vals[covered]
    out["line_of_business"] = lob

    step("utilization")
    enc = store["encounters"]
    em = mc.encode(enc["member_id"])
    stays = chain_stays(enc, 1)
    sm = mc.encode(stays["member_id"])
    for s in SETTING_WORDS:
        if s == "inpatient":
            idx = EventIndex(sm, seconds(stays["admit_time"]))
        else:
            sel = (enc["setting"] == s).to_numpy()
            idx = EventIndex(em[sel], seconds(enc["admit_time"].to_numpy()[sel]))
        for w in fs.windows_days:
            # history strictly before the index admission (a second earlier excludes the index itself)
            out[f"n_{s}_{w}d"] = idx.count(pm, hist - (1 if spec.task == "readmission" else 0), w)
    paid = EventIndex(em, seconds(enc["admit_time"]), enc["paid_amount"].to_numpy(dtype=float))
    for w in fs.paid_windows_days:
        out[f"paid_{w}d"] = paid.total(pm, hist - (1 if spec.task == "readmission" else 0), w)
    # discharges of encounters, not of chains: a later transfer could move a chain's end past as_of
    inp = (enc["setting"] == "inpatient").to_numpy()
    dis = EventIndex(em[inp], seconds(enc["discharge_time"].to_numpy()[inp]))
    _, t = dis.last(pm, np.minimum(hist, as_of) - 1)
    out["days_since_inpatient"] = np.where(t >= 0, (hist - t) / day, np.nan)
    ed = (enc["setting"] == "emergency").to_numpy()
    _, t = EventIndex(em[ed], seconds(enc["admit_time"].to_numpy()[ed])).last(pm, hist)
    out["days_since_emergency"] = np.where(t >= 0, (hist - t) / day, np.nan)

    step("index stay")
    procs = store["procedures"]
    dx = store["diagnoses"]
    if spec.task == "readmission":
        admit = seconds(points["index_admit_time"])
        out["los_days"] = np.floor(as_of / day) - np.floor(admit / day)
        # from the point's own encounters: the first admission of the stay and the index discharge
        # (the chain itself is defined with a look one day ahead, so it is not read here)
        inpatient = enc[enc["setting"] == "inpatient"]
        last = inpatient.drop_duplicates("encounter_id").set_index("encounter_id").reindex(
            points["index_encounter_id"].astype(str))
        first = inpatient.sort_values("encounter_id").drop_duplicates(["member_id", "admit_time"]).set_index(
            ["member_id", "admit_time"]).reindex(pd.MultiIndex.from_arrays(
                [points["member_id"].astype(str), points["index_admit_time"]]))
        out["admission_type"] = first["admission_type"].astype("str").fillna("unknown").to_numpy()
        out["discharge_disposition"] = last["discharge_disposition"].astype("str").fillna("unknown").to_numpy()
        pdx = first["principal_dx"].astype("str").fillna("")
        psys = infer_dx_system(pdx)
        out["principal_dx_group"] = dx_group(pdx.reset_index(drop=True), psys.reset_index(drop=True)).to_numpy()
        p_idx = EventIndex(mc.encode(procs["member_id"]), seconds(procs["time"]))
        out["n_procedures_index"] = p_idx.count(pm, as_of, None) - p_idx.count(pm, admit - 1, None)
        onc = codes.oncology().flags(psys.reset_index(drop=True), pdx.reset_index(drop=True), ["oncology"])
        out["oncology_index"] = onc["oncology"].to_numpy().astype(np.int8)

    step("labs")  # last value at or before as_of within the lookback
    labs = store["labs"]
    lm = mc.encode(labs["member_id"])
    last_lab_time = {}
    for lab, (loincs, _unit, _rule, _w) in LABS.items():
        sel = labs["code"].isin(loincs).to_numpy()
        v, last_lab_time[lab] = EventIndex(lm[sel], seconds(labs["time"].to_numpy()[sel]),
                                           labs["value"].to_numpy(dtype=float)[sel]).last(pm, as_of,
                                                                                         fs.lab_lookback_days)
        out[f"lab_{lab}"] = v
        abnormal = {"hemoglobin": v < 12, "sodium": (v < 135) | (v > 145), "egfr": v < 60, "hba1c": v >= 6.5,
                    "bnp": v > 100}[lab]
        out[f"lab_{lab}_abnormal"] = np.where(np.isnan(v), 0, abnormal).astype(np.int8)

    step("comorbidity")  # any qualifying diagnosis in the lookback
    labels = condition_labels()
    dxm = mc.encode(dx["member_id"])
    dxt = seconds(dx["time"])
    lb = fs.comorbidity_lookback_days
    cmap, cweights = codes.charlson()
    emap, eweights = codes.elixhauser()
    for prefix, pmap, names in (("cci", cmap, labels["charlson"]), ("elx", emap, labels["elixhauser"]),
                                ("cc", codes.chronic(), labels["chronic"])):
        key, table = pmap.lookup(dx["code_system"], dx["code"], names)
        for j, c in enumerate(names):
            sel = table[key, j]  # one boolean column at a time, not a rows x conditions matrix
            out[f"{prefix}_{c}"] = (EventIndex(dxm[sel], dxt[sel]).count(pm, as_of, lb) > 0).astype(np.int8)
    cci = {c: out[f"cci_{c}"].astype(bool) for c in labels["charlson"]}
    for lower, upper in CHARLSON_HIERARCHY:
        cci[lower] = cci[lower] & ~cci[upper]
    out["charlson_index"] = sum(cweights[c] * cci[c].astype(int) for c in cci)
    elx = {c: out[f"elx_{c}"].astype(bool) for c in labels["elixhauser"]}
    for lower, upper in ELIXHAUSER_HIERARCHY:
        elx[lower] = elx[lower] & ~elx[upper]
    out["elixhauser_vw"] = sum(eweights[c] * elx[c].astype(int) for c in elx)
    out["n_chronic"] = sum(out[f"cc_{c}"].astype(int) for c in labels["chronic"])

    step("medications")  # distinct classes (the RxNorm/NDC code stands in when a fill has no class)
    med = store["medications"]
    mm = mc.encode(med["member_id"])
    mt = seconds(med["time"])
    cls_idx, cls_names = pd.factorize(med["drug_class"])
    code_idx, code_names = pd.factorize(med["code"])
    inv = np.where(cls_idx >= 0, cls_idx, len(cls_names) + code_idx)  # the code stands in for a missing class
    uniq = [*map(str, cls_names), *map(str, code_names)]
    for w in fs.medication_windows_days:
        out[f"n_drug_classes_{w}d"] = np.zeros(len(points), dtype=np.int64)
    order = np.argsort(inv, kind="stable")
    bounds = np.searchsorted(inv[order], np.arange(len(uniq) + 1))
    w0 = fs.medication_windows_days[0]
    for j, name in enumerate(uniq):
        rows = order[bounds[j]:bounds[j + 1]]
        idx = EventIndex(mm[rows], mt[rows])
        for w in fs.medication_windows_days:
            hit = idx.count(pm, as_of, w) > 0
            out[f"n_drug_classes_{w}d"] += hit
            if w == w0 and name in HIGH_RISK:
                out[f"rx_{name}"] = hit.astype(np.int8)
    for c in HIGH_RISK:
        out.setdefault(f"rx_{c}", np.zeros(len(points), dtype=np.int8))
    out["polypharmacy"] = (out[f"n_drug_classes_{w0}d"] >= 5).astype(np.int8)

    step("clinical scores")
    if spec.task == "readmission":
        out["lace"] = lace(out["los_days"], out["admission_type"], out["charlson_index"],
                           EventIndex(em[ed], seconds(enc["admit_time"].to_numpy()[ed])).count(pm, hist - 1, 182))
        # labs "at discharge": the last value, when it was taken during the stay
        admit = seconds(points["index_admit_time"])
        hb = np.where(last_lab_time["hemoglobin"] >= admit, out["lab_hemoglobin"], np.nan)
        na = np.where(last_lab_time["sodium"] >= admit, out["lab_sodium"], np.nan)
        out["hospital_score"] = hospital_score(
            hemoglobin=hb, oncology=out["oncology_index"], sodium=na, procedures=out["n_procedures_index"],
            admission_type=out["admission_type"],
            admissions_12m=EventIndex(sm, seconds(stays["admit_time"])).count(pm, hist - 1, 365),
            los_days=out["los_days"])

    frame = pd.DataFrame({name: out[name] for name in fset.names}, index=points.index)
    for name in fset.categorical:
        frame[name] = frame[name].astype("category")
    return pd.concat([points, frame], axis=1)


def lace(los_days: np.ndarray, admission_type: np.ndarray, charlson: np.ndarray, ed_6m: np.ndarray) -> np.ndarray:
    """LACE index (van Walraven et al., CMAJ 2010;182(6):551-7), 0-19.

    L: length of stay <1 day 0, 1 day 1, 2 days 2, 3 days 3, 4-6 days 4, 7-13 days 5, 14+ days 7.
    A: acute (emergent) admission 3. C: Charlson 0 -> 0, 1 -> 1, 2 -> 2, 3 -> 3, 4+ -> 5.
    E: emergency visits in the 6 months before admission, 0-4 (capped at 4).

    >>> int(lace(np.array([5]), np.array(["emergency"]), np.array([2]), np.array([1]))[0])
    10
    """
    los = np.asarray(los_days, dtype=float)
    l_pts = np.select([los < 1, los < 2, los < 3, los < 4, los < 7, los < 14], [0, 1, 2, 3, 4, 5], 7)
    a_pts = np.where(np.isin(np.asarray(admission_type, dtype=object), ["emergency", "urgent"]), 3, 0)
    c = np.asarray(charlson)
    c_pts = np.where(c >= 4, 5, c)
    e_pts = np.minimum(np.asarray(ed_6m), 4)
    return (l_pts + a_pts + c_pts + e_pts).astype(np.int64)


def hospital_score(*, hemoglobin, oncology, sodium, procedures, admission_type, admissions_12m,
                   los_days) -> np.ndarray:
    """HOSPITAL score (Donze et al., JAMA Intern Med 2013;173(8):632-8), 0-13.

    Hemoglobin at discharge <12 g/dL 1; discharge from Oncology 2; Sodium at discharge <135 mmol/L 1;
    Procedure during the stay 1; Index admission urgent/emergent 1; Admissions in the previous 12 months
    0-1 -> 0, 2-5 -> 2, >5 -> 5; Length of stay >=5 days 2. A missing lab scores 0.

    >>> int(hospital_score(hemoglobin=np.array([11.0]), oncology=np.array([0]), sodium=np.array([133.0]),
    ...     procedures=np.array([1]), admission_type=np.array(["emergency"]), admissions_12m=np.array([3]),
    ...     los_days=np.array([6]))[0])
    8
    """
    hb = np.nan_to_num(np.asarray(hemoglobin, dtype=float), nan=99.0)
    na = np.nan_to_num(np.asarray(sodium, dtype=float), nan=140.0)
    prior = np.asarray(admissions_12m)
    return ((hb < 12).astype(int) + 2 * (np.asarray(oncology) > 0) + (na < 135).astype(int)
            + (np.asarray(procedures) > 0).astype(int)
            + np.isin(np.asarray(admission_type, dtype=object), ["emergency", "urgent"]).astype(int)
            + np.select([prior <= 1, prior <= 5], [0, 2], 5) + 2 * (np.asarray(los_days) >= 5)).astype(np.int64)
