"""Cohorts and labels: which prediction points exist, and what happened after each.

A prediction point is ``(member_id, as_of)``. Labels look only forward from ``as_of``; features
(``features.build``) look only backward. Every inclusion and exclusion step is counted in a
``CohortReport`` so that nothing leaves a cohort unexplained.

Readmission (CMS Hospital-Wide Readmission rules where claims allow): acute inpatient encounters are
chained into stays when the next admission starts within ``transfer_max_gap_days`` of a discharge (a
transfer); the chain's last discharge is the index. The label is the first readmission 1 to 30 days
after the index discharge date: planned readmissions (CMS Planned Readmission Algorithm v4.0) do not
count, and by default (``planned_first_readmission: censor``, as CMS) a planned first readmission means
no readmission is counted.

Admission: points on the first day of each month; members alive, continuously enrolled over the
lookback, and not in hospital. The label is an unplanned (emergency or urgent, not planned) admission
within the horizon.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from umrisk.features import codes
from umrisk.features.spec import AdmissionSpec, ReadmissionSpec

DAY = pd.Timedelta(days=1)


def asof_by_member(left: pd.DataFrame, right: pd.DataFrame, **kw) -> pd.DataFrame:
    """``pd.merge_asof`` by member, with the member ids of both sides as pandas strings (a NumPy round trip
    turns them into objects, which merge_asof refuses to compare with strings)."""
    left = left.assign(member_id=left["member_id"].astype("str"))
    right = right.assign(member_id=right["member_id"].astype("str"))
    return pd.merge_asof(left, right, by="member_id", **kw)


@dataclass
class CohortReport:
    """Counts at each step of a cohort, in order, and the label rate."""

    task: str
    steps: list[tuple[str, int]] = field(default_factory=list)
    notes: list[tuple[str, int]] = field(default_factory=list)
    label_rate: float = float("nan")

    def add(self, step: str, count: int) -> None:
        self.steps.append((step, int(count)))

    def note(self, what: str, count: int) -> None:
        self.notes.append((what, int(count)))

    def render(self) -> str:
        lines = [f"Cohort report ({self.task})"]
        lines += [f"  {step:<72}{n:>12,}" for step, n in self.steps]
        lines += [f"  note: {what:<66}{n:>12,}" for what, n in self.notes]
        lines.append(f"  label rate: {self.label_rate:.2%}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"task": self.task, "steps": [{"step": s, "count": n} for s, n in self.steps],
                "notes": [{"what": s, "count": n} for s, n in self.notes], "label_rate": self.label_rate}


def infer_dx_system(code: pd.Series) -> pd.Series:
    """ICD10CM for codes that start with a letter (other than E/V ICD-9 forms), SNOMED for long numbers."""
    c = codes.normalize(code).fillna("")
    icd9 = c.str.fullmatch(r"(\d{3,5}|V\d{2,4}|E\d{3,4})")
    snomed = c.str.fullmatch(r"\d{6,18}")
    return pd.Series(np.where(snomed, "SNOMED", np.where(icd9, "ICD9CM", "ICD10CM")), index=code.index)


def chain_stays(encounters: pd.DataFrame, max_gap_days: int = 1) -> pd.DataFrame:
    """Acute inpatient encounters chained into stays (transfers joined).

    An encounter joins the previous one of the same member when its admission date is at most
    ``max_gap_days`` after the previous discharge date (0 = same day). The stay keeps the first
    admission (time, type, principal diagnosis) and the last discharge (time, disposition, encounter).
    """
    inp = encounters[encounters["setting"] == "inpatient"].sort_values(["member_id", "admit_time"], kind="stable")
    inp = inp.reset_index(drop=True)
    prev_member = inp["member_id"].shift()
    prev_dis = inp.groupby("member_id")["discharge_time"].shift()
    gap = (inp["admit_time"].dt.normalize() - prev_dis.dt.normalize()).dt.days
    joined = (inp["member_id"] == prev_member) & (gap <= max_gap_days)
    stay = (~joined).cumsum() - 1
    g = inp.groupby(stay, sort=False)
    stays = pd.DataFrame({
        "member_id": g["member_id"].first(),
        "admit_time": g["admit_time"].first(),
        "discharge_time": g["discharge_time"].last(),
        "admission_type": g["admission_type"].first(),
        "discharge_disposition": g["discharge_disposition"].last(),
        "principal_dx": g["principal_dx"].first(),
        "first_encounter_id": g["encounter_id"].first(),
        "index_encounter_id": g["encounter_id"].last(),
        "n_encounters": g.size(),
    }).reset_index(drop=True)
    inp["stay"] = stay.to_numpy()
    stays.attrs["encounter_stay"] = inp[["encounter_id", "stay"]]
    return stays


def planned_stays(stays: pd.DataFrame, diagnoses: pd.DataFrame, procedures: pd.DataFrame) -> pd.Series:
    """CMS Planned Readmission Algorithm v4.0 on each stay.

    Planned when any procedure is always planned (e.g. transplant), the principal diagnosis is always
    planned (maintenance chemotherapy, rehabilitation), or a potentially planned procedure (e.g. PCI,
    joint replacement) is done and the principal diagnosis is not acute.
    """
    pm = codes.planned()
    link = stays.attrs["encounter_stay"]
    pdx = diagnoses[diagnoses["is_principal"]].drop_duplicates("encounter_id")[["encounter_id", "code_system"]]
    principal = stays[["first_encounter_id", "principal_dx"]].merge(
        pdx, left_on="first_encounter_id", right_on="encounter_id", how="left")
    system = principal["code_system"].astype("str").fillna(infer_dx_system(principal["principal_dx"]))
    dxf = pm.flags(system, principal["principal_dx"].astype("str").fillna(""),
                   ["always_planned_diagnosis", "acute_diagnosis"])
    proc = procedures[procedures["encounter_id"].isin(link["encounter_id"])]
    pf = pm.flags(proc["code_system"], proc["code"], ["always_planned_procedure", "potentially_planned_procedure"])
    pf["stay"] = proc["encounter_id"].map(link.set_index("encounter_id")["stay"]).to_numpy()
    per_stay = pf.groupby("stay").any().reindex(range(len(stays)), fill_value=False)
    planned = (per_stay["always_planned_procedure"].to_numpy() | dxf["always_planned_diagnosis"].to_numpy()
               | (per_stay["potentially_planned_procedure"].to_numpy() & ~dxf["acute_diagnosis"].to_numpy()))
    return pd.Series(planned, index=stays.index, name="planned")


def continuous_enrollment(enrollment: pd.DataFrame) -> pd.DataFrame:
    """Enrollment spans merged into continuous periods (a span starting the day after another ends joins it)."""
    e = enrollment.sort_values(["member_id", "start_date"])[["member_id", "start_date", "end_date"]]
    prev_end = e.groupby("member_id")["end_date"].cummax().groupby(e["member_id"]).shift()
    new = prev_end.isna() | (e["start_date"] > prev_end + DAY)
    period = new.cumsum()
    g = e.groupby(period)
    return pd.DataFrame({"member_id": g["member_id"].first(), "start_date": g["start_date"].min(),
                         "end_date": g["end_date"].max()}).reset_index(drop=True)


def _period_at(periods: pd.DataFrame, members: pd.Series, when: pd.Series) -> pd.DataFrame:
    """The continuous enrollment period holding each (member, time), or NaT when none does."""
    left = pd.DataFrame({"member_id": members.to_numpy(), "t": when.dt.normalize().to_numpy(),
                         "i": np.arange(len(members))}).sort_values("t")
    right = periods.sort_values("start_date")
    m = asof_by_member(left, right, left_on="t", right_on="start_date", direction="backward")
    m = m.sort_values("i")
    inside = m["end_date"] >= m["t"]
    return pd.DataFrame({"start": m["start_date"].where(inside).to_numpy(),
                         "end": m["end_date"].where(inside).to_numpy()}, index=members.index)


def data_end(store: dict[str, pd.DataFrame]) -> pd.Timestamp:
    """The first day the store no longer sees: the day after its last admission or enrollment day."""
    candidates = [store["encounters"]["admit_time"].max().normalize() + DAY,
                  store["enrollment"]["end_date"].max() + DAY]
    return min(t for t in candidates if pd.notna(t)).normalize()


def readmission_cohort(store: dict[str, pd.DataFrame], spec: ReadmissionSpec,
                       end: pd.Timestamp | None = None) -> tuple[pd.DataFrame, CohortReport]:
    """Index stays with their 30-day unplanned readmission label."""
    c, lab = spec.cohort, spec.label
    report = CohortReport("readmission")
    enc = store["encounters"]
    report.add("acute inpatient encounters", (enc["setting"] == "inpatient").sum())
    stays = chain_stays(enc, c.transfer_max_gap_days)
    stays["planned"] = planned_stays(stays, store["diagnoses"], store["procedures"]).to_numpy()
    report.add("stays after chaining transfers", len(stays))
    report.note("planned stays (CMS Planned Readmission Algorithm v4.0)", stays["planned"].sum())
    end = data_end(store) if end is None else end
    members = store["members"].set_index("member_id")
    death = stays["member_id"].map(members["death_date"])
    dis_day = stays["discharge_time"].dt.normalize()
    keep = stays["discharge_time"].notna()
    report.add("  excluded: still in hospital at the end of the data", (~keep).sum())

    def exclude(mask: pd.Series, why: str) -> None:
        nonlocal keep
        hit = keep & mask
        report.add(f"  excluded: {why}", hit.sum())
        keep &= ~mask

    names = {"expired": "died in hospital", "ama": "discharged against medical advice",
             "hospice": "discharged to hospice"}
    for disp in c.exclude_dispositions:
        exclude(stays["discharge_disposition"] == disp, names.get(disp, f"discharge disposition {disp}"))
    exclude(stays["discharge_disposition"] == "transfer_acute",
            "transferred to another acute hospital whose stay is not in the data")
    if c.exclude_planned_index:
        exclude(stays["planned"], "planned index stay (spec)")
    first = pd.Timestamp(c.first_date) if c.first_date else None
    periods = continuous_enrollment(store["enrollment"])
    if first is None:
        first = periods["start_date"].min() + c.lookback_days * DAY
    exclude(dis_day < first, f"discharged before {first.date()} (lookback of {c.lookback_days} days)")
    exclude(dis_day + lab.window_days[1] * DAY >= end, "follow-up window runs past the end of the data")
    at_admit = _period_at(periods, stays["member_id"], stays["admit_time"])
    enrolled_before = at_admit["start"].notna() & (at_admit["start"] <= stays["admit_time"].dt.normalize()
                                                   - c.lookback_days * DAY)
    exclude(~enrolled_before, f"fewer than {c.lookback_days} days of enrollment before admission")
    died_30 = death.notna() & (death <= dis_day + lab.window_days[1] * DAY)
    enrolled_after = at_admit["end"].notna() & (at_admit["end"] >= dis_day + c.enrollment_after_days * DAY)
    exclude(~enrolled_after & ~died_30, f"fewer than {c.enrollment_after_days} days of enrollment after discharge")
    idx = stays[keep].copy()
    report.add("index stays", len(idx))

    # the label: first readmission in the window
    later = stays[["member_id", "admit_time", "index_encounter_id", "first_encounter_id", "planned"]].copy()
    later["admit_day"] = later["admit_time"].dt.normalize()
    if lab.planned_first_readmission == "skip":
        later = later[~later["planned"]]
    left = pd.DataFrame({"member_id": idx["member_id"].to_numpy(),
                         "from": (idx["discharge_time"].dt.normalize() + lab.window_days[0] * DAY).to_numpy(),
                         "i": np.arange(len(idx))}).sort_values("from")
    m = asof_by_member(left, later.sort_values("admit_day"), left_on="from", right_on="admit_day",
                      direction="forward").sort_values("i")
    days = (m["admit_day"].to_numpy() - idx["discharge_time"].dt.normalize().to_numpy()) / np.timedelta64(1, "D")
    in_window = (days >= lab.window_days[0]) & (days <= lab.window_days[1])
    planned_first = in_window & m["planned"].fillna(False).to_numpy().astype(bool)
    label = in_window & ~planned_first
    points = pd.DataFrame({
        "member_id": idx["member_id"].to_numpy(),
        "as_of": idx["discharge_time"].to_numpy(),
        "index_encounter_id": idx["index_encounter_id"].to_numpy(),
        "index_admit_time": idx["admit_time"].to_numpy(),
        "index_planned": idx["planned"].to_numpy(),
        "label": label.astype(np.int8),
        "readmit_encounter_id": np.where(label, m["first_encounter_id"].to_numpy(), None),
        "days_to_readmission": np.where(label, days, np.nan),
        "died_within_window": died_30[keep].to_numpy(),
    })
    report.note("planned first readmissions (not counted)", planned_first.sum())
    died_no_readmit = points["died_within_window"] & (points["label"] == 0)
    report.note("deaths within the window without readmission", died_no_readmit.sum())
    if lab.death_without_readmission == "exclude":
        report.add("  excluded: died within the window without readmission (spec)", died_no_readmit.sum())
        points = points[~died_no_readmit].reset_index(drop=True)
    report.add("prediction points", len(points))
    report.add("readmitted (label 1)", points["label"].sum())
    report.label_rate = float(points["label"].mean()) if len(points) else float("nan")
    return points, report


def month_starts(first: pd.Timestamp, last: pd.Timestamp) -> pd.DatetimeIndex:
    return pd.date_range(first.to_period("M").to_timestamp() if first.day != 1 else first, last, freq="MS")


def admission_cohort(store: dict[str, pd.DataFrame], spec: AdmissionSpec, dates: list[pd.Timestamp] | None = None,
                     end: pd.Timestamp | None = None, labels: bool = True) -> tuple[pd.DataFrame, CohortReport]:
    """Member-months on the first of each month (or ``dates``) with the unplanned-admission label.

    With ``labels=False`` (serving), points whose horizon runs past the data are kept and unlabelled.
    """
    c, lab = spec.cohort, spec.label
    report = CohortReport("admission")
    periods = continuous_enrollment(store["enrollment"])
    end = data_end(store) if end is None else end
    horizon = c.horizon_days * DAY
    if dates is None:
        first = pd.Timestamp(c.first_date) if c.first_date else periods["start_date"].min() + c.lookback_days * DAY
        dates = list(month_starts(first, end - horizon))
    dates_arr = np.array(sorted(pd.Timestamp(d).normalize() for d in dates), dtype="datetime64[us]")
    report.add(f"scoring dates ({len(dates_arr)})", len(dates_arr))
    report.add("members", len(store["members"]))
    # member-dates inside a continuous period that covers the lookback
    lo = np.searchsorted(dates_arr, (periods["start_date"] + c.lookback_days * DAY).to_numpy(), side="left")
    hi = np.searchsorted(dates_arr, periods["end_date"].to_numpy(), side="right")
    n = np.maximum(hi - lo, 0)
    rows = np.repeat(np.arange(len(periods)), n)
    k = np.concatenate([np.arange(a, b) for a, b in zip(lo, hi, strict=True) if b > a]) if n.sum() else np.zeros(0, int)
    pts = pd.DataFrame({"member_id": periods["member_id"].to_numpy()[rows], "as_of": dates_arr[k],
                        "period_end": periods["end_date"].to_numpy()[rows]})
    report.add(f"member-dates enrolled with {c.lookback_days} days of lookback", len(pts))
    death = pts["member_id"].map(store["members"].set_index("member_id")["death_date"])
    alive = death.isna() | (death > pts["as_of"])
    report.add("  excluded: died before the scoring date", (~alive).sum())
    pts, death = pts[alive], death[alive]
    stays = chain_stays(store["encounters"], 1)
    stays["planned"] = planned_stays(stays, store["diagnoses"], store["procedures"]).to_numpy()
    s = stays.sort_values("admit_time")
    left = pts.assign(i=np.arange(len(pts))).sort_values("as_of")
    back = asof_by_member(left, s[["member_id", "admit_time", "discharge_time"]], left_on="as_of",
                         right_on="admit_time", direction="backward",
                         allow_exact_matches=False).sort_values("i")
    in_hosp = (back["admit_time"].notna() & (back["discharge_time"].isna()
                                             | (back["discharge_time"] > back["as_of"]))).to_numpy()
    report.add("  excluded: in hospital on the scoring date", in_hosp.sum())
    pts, death = pts[~in_hosp].reset_index(drop=True), death[~in_hosp].reset_index(drop=True)
    event = s[s["admission_type"].isin(lab.admission_types) & ~s["planned"]]
    left = pts.assign(i=np.arange(len(pts))).sort_values("as_of")
    fwd = asof_by_member(left, event[["member_id", "admit_time", "first_encounter_id"]], left_on="as_of",
                        right_on="admit_time", direction="forward").sort_values("i")
    until = pts["as_of"] + horizon
    hit = (fwd["admit_time"] < until.to_numpy()).to_numpy()
    pts["label"] = hit.astype(np.int8)
    pts["admit_encounter_id"] = np.where(hit, fwd["first_encounter_id"].to_numpy(), None)
    pts["days_to_admission"] = np.where(hit, (fwd["admit_time"] - fwd["as_of"]).dt.days.to_numpy(), np.nan)
    if labels:
        past = until > end
        report.add("  excluded: horizon runs past the end of the data", past.sum())
        keep = ~past
        left_early = (pts["period_end"] < until - DAY) & ~hit
        died = death.notna() & (death < until) & ~hit
        left_early &= ~died
        report.add("  excluded: left enrollment before the horizon without an admission"
                   if lab.disenrolled_without_event == "exclude" else "  kept: left enrollment early (spec)",
                   (keep & left_early).sum())
        if lab.disenrolled_without_event == "exclude":
            keep &= ~left_early
        report.note("died before the horizon without an admission", (keep & died).sum())
        if lab.death_without_event == "exclude":
            report.add("  excluded: died before the horizon without an admission (spec)", (keep & died).sum())
            keep &= ~died
        pts = pts[keep].reset_index(drop=True)
    report.add("prediction points", len(pts))
    report.add("admitted (label 1)", int(pts["label"].sum()))
    report.label_rate = float(pts["label"].mean()) if len(pts) else float("nan")
    return pts.drop(columns="period_end"), report
