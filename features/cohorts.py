"""Cohorts and labels: which prediction points exist, and what happened after each.

A prediction point is ``(member_id, as_of)``. Labels look only forward from ``as_of``; features
(``features.build``) look only backward. Every inclusion and exclusion step is counted in a
``CohortReport`` so that nothing leaves a cohort unexplained.

Discharge cohorts (readmission; CMS Hospital-Wide Readmission rules where claims allow): acute inpatient
encounters are chained into stays when the next admission starts within ``transfer_max_gap_days`` of a
discharge (a transfer); the chain's last discharge is the index. The label is the first event of the
spec's ``label.event`` 1 to 30 days after the index discharge date: planned readmissions (CMS Planned
Readmission Algorithm v4.0) do not count, and by default (``planned_first_readmission: censor``, as CMS)
a planned first readmission means no readmission is counted.

Member-month cohorts (admission, emergency visit, ...): points on the first day of each month; members
alive, continuously enrolled over the lookback, and not in hospital. The label is an event of the spec's
``label.event`` (e.g. an unplanned emergency or urgent admission) within the horizon.

Eligibility and label availability are kept apart: ``stay_eligibility`` and ``snapshot_eligibility`` say
which points may be scored at all (the same rules at training and at any scoring date); the cohorts add only
what a label needs (the window has closed inside the data, enrollment to observe it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from umrisk.features import codes
from umrisk.features.spec import DischargeSpec, EventSpec, MemberMonthSpec

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


class NoDates(ValueError):
    """A store (or an inline history) with no enrollment span and no encounter covers no date."""


def _days(values: list) -> list[pd.Timestamp]:
    days = [pd.Timestamp(v).normalize() for v in values if pd.notna(v)]
    if not days:
        raise NoDates("no enrollment span and no encounter: the history covers no date to score")
    return days


def data_end(store: dict[str, pd.DataFrame]) -> pd.Timestamp:
    """The first day the store no longer sees: the day after its last admission or enrollment day (either may
    be missing: a history without encounters ends with its enrollment)."""
    return min(_days([store["encounters"]["admit_time"].max(), store["enrollment"]["end_date"].max()])) + DAY


def data_start(store: dict[str, pd.DataFrame]) -> pd.Timestamp:
    """The first day the store sees: its first enrollment or admission day."""
    return min(_days([store["enrollment"]["start_date"].min(), store["encounters"]["admit_time"].min()]))


def store_dates(dataset) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The first and last day a store on disk covers (``data_start`` and the day before ``data_end``), from the
    bounds of the three columns that decide them, without loading the tables."""
    from umrisk.features.schema import column_bound

    edges = {"encounters": pd.DataFrame({"admit_time": pd.Series(
                 [column_bound(dataset, "encounters", "admit_time", w) for w in ("min", "max")],
                 dtype="datetime64[us]")}),
             "enrollment": pd.DataFrame({
                 "start_date": pd.Series([column_bound(dataset, "enrollment", "start_date", "min")],
                                         dtype="datetime64[us]"),
                 "end_date": pd.Series([column_bound(dataset, "enrollment", "end_date", "max")],
                                       dtype="datetime64[us]")})}
    return data_start(edges), data_end(edges) - DAY


def stays_with_planned(store: dict[str, pd.DataFrame], max_gap_days: int = 1) -> pd.DataFrame:
    """Chained inpatient stays with the CMS planned flag."""
    stays = chain_stays(store["encounters"], max_gap_days)
    stays["planned"] = planned_stays(stays, store["diagnoses"], store["procedures"]).to_numpy()
    return stays


def events(store: dict[str, pd.DataFrame], event: EventSpec, stays: pd.DataFrame | None = None) -> pd.DataFrame:
    """The encounters that count as the outcome: ``member_id, admit_time, first_encounter_id, planned``.

    Inpatient encounters count as chained stays (``stays``, with their planned flag); other settings as
    encounters, never planned. Admission types filter when the spec names them; planned stays are left out
    when ``event.planned`` is ``exclude``.
    """
    parts = []
    if "inpatient" in event.settings:
        s = stays if stays is not None else stays_with_planned(store)
        parts.append(s[["member_id", "admit_time", "first_encounter_id", "planned", "admission_type"]])
    other = [x for x in event.settings if x != "inpatient"]
    if other:
        enc = store["encounters"]
        e = enc[enc["setting"].isin(other)]
        parts.append(pd.DataFrame({"member_id": e["member_id"].astype("str").to_numpy(),
                                   "admit_time": e["admit_time"].to_numpy(),
                                   "first_encounter_id": e["encounter_id"].astype("str").to_numpy(),
                                   "planned": False, "admission_type": e["admission_type"].astype("str").to_numpy()}))
    out = pd.concat([p.assign(member_id=p["member_id"].astype("str"),
                              admission_type=p["admission_type"].astype("str")) for p in parts], ignore_index=True)
    if event.admission_types is not None:
        out = out[out["admission_type"].isin(event.admission_types)]
    if event.planned == "exclude":
        out = out[~out["planned"].astype(bool)]
    return out.drop(columns="admission_type").reset_index(drop=True)


DISPOSITION_WORDS = {"expired": "died in hospital", "ama": "discharged against medical advice",
                     "hospice": "discharged to hospice",
                     "transfer_acute": "transferred to another acute hospital whose stay is not in the data"}


def first_reason(rules: dict[str, pd.Series | np.ndarray], index: pd.Index) -> pd.Series:
    """For each row, the first rule (in order) that excludes it, or "" when none does."""
    why = pd.Series("", index=index, dtype=object)
    for reason, mask in rules.items():
        why[(why == "") & np.asarray(pd.Series(mask).fillna(False), dtype=bool)] = reason
    return why


def stay_rules(stays: pd.DataFrame, spec: DischargeSpec, periods: pd.DataFrame) -> dict[str, pd.Series]:
    """The rules that keep a chained stay from being an index stay, in order (True: excluded): still in hospital,
    an excluded discharge disposition, a transfer out, a planned stay (when the spec excludes them), fewer than
    ``lookback_days`` of enrollment before the admission. The cohort and the service both apply them."""
    c = spec.cohort
    disp = stays["discharge_disposition"].astype("str")
    rules = {"still in hospital": stays["discharge_time"].isna()}
    for d in [*c.exclude_dispositions, "transfer_acute"]:
        rules[DISPOSITION_WORDS.get(d, f"discharge disposition {d}")] = disp == d
    if c.exclude_planned_index:
        rules["planned index stay (spec)"] = stays["planned"].astype(bool)
    at_admit = _period_at(periods, stays["member_id"], stays["admit_time"])
    enrolled_before = at_admit["start"].notna() & (at_admit["start"] <= stays["admit_time"].dt.normalize()
                                                   - c.lookback_days * DAY)
    rules[f"fewer than {c.lookback_days} days of enrollment before admission"] = ~enrolled_before
    return rules


def stay_eligibility(stays: pd.DataFrame, store: dict[str, pd.DataFrame], spec: DischargeSpec) -> pd.Series:
    """Why each chained stay cannot be an index stay ("" when it can), by ``stay_rules``."""
    return first_reason(stay_rules(stays, spec, continuous_enrollment(store["enrollment"])), stays.index)


def discharge_cohort(store: dict[str, pd.DataFrame], spec: DischargeSpec,
                     end: pd.Timestamp | None = None) -> tuple[pd.DataFrame, CohortReport]:
    """Index stays with their label: the first event of ``spec.label.event`` in the window after discharge."""
    c, lab = spec.cohort, spec.label
    report = CohortReport(spec.task)
    enc = store["encounters"]
    report.add("acute inpatient encounters", (enc["setting"] == "inpatient").sum())
    stays = stays_with_planned(store, c.transfer_max_gap_days)
    report.add("stays after chaining transfers", len(stays))
    report.note("planned stays (CMS Planned Readmission Algorithm v4.0)", stays["planned"].sum())
    end = data_end(store) if end is None else end
    members = store["members"].assign(member_id=store["members"]["member_id"].astype("str")).set_index("member_id")
    death = stays["member_id"].astype("str").map(members["death_date"])
    dis_day = stays["discharge_time"].dt.normalize()
    periods = continuous_enrollment(store["enrollment"])
    first = pd.Timestamp(c.first_date) if c.first_date else periods["start_date"].min() + c.lookback_days * DAY
    eligibility = stay_rules(stays, spec, periods)
    lookback = list(eligibility)[-1]
    # the label must be observable: the window inside the data, enrollment to see it (unless the member died)
    died_30 = death.notna() & (death <= dis_day + lab.window_days[1] * DAY)
    at_admit = _period_at(periods, stays["member_id"], stays["admit_time"])
    enrolled_after = at_admit["end"].notna() & (at_admit["end"] >= dis_day + c.enrollment_after_days * DAY)
    rules = {k: v for k, v in eligibility.items() if k != lookback}
    rules[f"discharged before {first.date()} (lookback of {c.lookback_days} days)"] = dis_day < first
    rules["follow-up window runs past the end of the data"] = dis_day + lab.window_days[1] * DAY >= end
    rules[lookback] = eligibility[lookback]
    rules[f"fewer than {c.enrollment_after_days} days of enrollment after discharge"] = ~enrolled_after & ~died_30
    why = first_reason(rules, stays.index)
    words = {"still in hospital": "still in hospital at the end of the data"}
    for reason in rules:
        report.add(f"  excluded: {words.get(reason, reason)}", (why == reason).sum())
    keep = (why == "").to_numpy()
    idx = stays[keep].copy()
    report.add("index stays", len(idx))

    # the label: first event in the window
    later = events(store, lab.event.model_copy(update={"planned": "include"}), stays)  # planned ones flagged
    if lab.event.planned == "include":
        later = later.assign(planned=False)  # a planned event counts like any other
    elif lab.planned_first_readmission == "skip":
        later = later[~later["planned"]]  # look past a planned first readmission
    later = later.assign(admit_day=later["admit_time"].dt.normalize())
    left = pd.DataFrame({"member_id": idx["member_id"].astype("str").to_numpy(),
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
    report.add("with the event (label 1)", points["label"].sum())
    report.label_rate = float(points["label"].mean()) if len(points) else float("nan")
    return points, report


def latest_discharges(store: dict[str, pd.DataFrame], spec: DischargeSpec, member_ids: list[str],
                      as_of: pd.Timestamp) -> tuple[pd.DataFrame, dict[str, tuple[str, str]]]:
    """The discharge each member can be scored from at ``as_of`` (their latest chained stay admitted before it),
    and why the others cannot, as (category, sentence): the cohort's eligibility rules, plus the member alive
    and the window still open.
    """
    c, lab = spec.cohort, spec.label
    stays = stays_with_planned(store, c.transfer_max_gap_days)
    stays = stays[stays["admit_time"] < as_of].copy()
    # a stay not yet discharged at as_of is an ongoing one
    stays.loc[stays["discharge_time"] > as_of, "discharge_time"] = pd.NaT
    stays["member_id"] = stays["member_id"].astype("str")
    last = stays.sort_values("admit_time").groupby("member_id").tail(1)
    why_stay = stay_eligibility(last, store, spec)
    death = store["members"].assign(member_id=store["members"]["member_id"].astype("str")).set_index(
        "member_id")["death_date"]
    by_member = last.set_index("member_id")
    why_by_member = pd.Series(why_stay.to_numpy(), index=by_member.index)
    reasons: dict[str, tuple[str, str]] = {}
    keep = []
    for mid in dict.fromkeys(member_ids):
        died = death.get(mid)
        if mid not in by_member.index:
            reasons[mid] = ("no discharge", f"no inpatient discharge before {as_of.date()}")
            continue
        row = by_member.loc[mid]
        if pd.notna(died) and died <= as_of:
            reasons[mid] = ("deceased", f"died on {pd.Timestamp(died).date()}")
        elif why_by_member[mid] == "still in hospital":
            reasons[mid] = ("in hospital", f"in hospital on {as_of.date()}")
        elif why_by_member[mid]:
            reasons[mid] = ("not an index stay", f"the latest stay is not an index stay: {why_by_member[mid]}")
        elif row["discharge_time"].normalize() + lab.window_days[1] * DAY < as_of.normalize():
            closes = (row["discharge_time"].normalize() + lab.window_days[1] * DAY).date()
            reasons[mid] = ("window closed",
                           f"the {lab.window_days[1]}-day window after the latest discharge closed on {closes}")
        else:
            keep.append(mid)
    pts = by_member.loc[keep]
    points = pd.DataFrame({"member_id": pts.index.to_numpy(dtype=object), "as_of": pts["discharge_time"].to_numpy(),
                           "index_encounter_id": pts["index_encounter_id"].astype("str").to_numpy(),
                           "index_admit_time": pts["admit_time"].to_numpy()})
    return points, reasons


def month_starts(first: pd.Timestamp, last: pd.Timestamp) -> pd.DatetimeIndex:
    return pd.date_range(first.to_period("M").to_timestamp() if first.day != 1 else first, last, freq="MS")


def in_hospital(points: pd.DataFrame, stays: pd.DataFrame) -> np.ndarray:
    """Whether each point's member is in hospital at its ``as_of`` (admitted before, not yet discharged)."""
    s = stays.assign(member_id=stays["member_id"].astype("str")).sort_values("admit_time")
    left = points.assign(i=np.arange(len(points))).sort_values("as_of")
    back = asof_by_member(left, s[["member_id", "admit_time", "discharge_time"]], left_on="as_of",
                          right_on="admit_time", direction="backward", allow_exact_matches=False).sort_values("i")
    return (back["admit_time"].notna() & (back["discharge_time"].isna()
                                          | (back["discharge_time"] > back["as_of"]))).to_numpy()


def snapshot_eligibility(store: dict[str, pd.DataFrame], spec: MemberMonthSpec, member_ids: list[str],
                         as_of: pd.Timestamp) -> tuple[pd.DataFrame, dict[str, tuple[str, str]]]:
    """Members who can be scored at ``as_of`` by the member-month cohort's rules (alive, continuously enrolled
    over the lookback, not in hospital) as points, and why each other member cannot, as (category, sentence)."""
    c = spec.cohort
    ids = list(dict.fromkeys(member_ids))
    pts = pd.DataFrame({"member_id": pd.Series(ids, dtype=object),
                        "as_of": pd.Series([as_of] * len(ids), dtype="datetime64[us]")})
    periods = continuous_enrollment(store["enrollment"])
    at = _period_at(periods, pts["member_id"], pts["as_of"])
    death = pts["member_id"].map(store["members"].assign(member_id=store["members"]["member_id"].astype("str"))
                                 .set_index("member_id")["death_date"])
    hosp = in_hospital(pts, stays_with_planned(store)) if len(pts) else np.zeros(0, bool)
    # the first rule that holds is the reason (masks over every member; sentences only for those left out)
    dead = (death <= as_of).to_numpy(dtype=bool)
    unenrolled = ~dead & at["start"].isna().to_numpy()
    short = ~dead & ~unenrolled & (at["start"] > as_of.normalize() - c.lookback_days * DAY).to_numpy(dtype=bool)
    inside = ~dead & ~unenrolled & ~short & np.asarray(hosp, dtype=bool)
    reasons: dict[str, tuple[str, str]] = {}
    for i in np.flatnonzero(dead):
        reasons[ids[i]] = ("deceased", f"died on {pd.Timestamp(death.iat[i]).date()}")
    for i in np.flatnonzero(unenrolled):
        reasons[ids[i]] = ("not enrolled", f"not enrolled on {as_of.date()}")
    for i in np.flatnonzero(short):
        reasons[ids[i]] = ("short enrollment", f"enrolled since {pd.Timestamp(at['start'].iat[i]).date()}, fewer "
                           f"than {c.lookback_days} days before {as_of.date()}")
    for i in np.flatnonzero(inside):
        reasons[ids[i]] = ("in hospital", f"in hospital on {as_of.date()}")
    ok = ~(dead | unenrolled | short | inside)
    return pts[ok].reset_index(drop=True), reasons


def member_month_cohort(store: dict[str, pd.DataFrame], spec: MemberMonthSpec,
                        dates: list[pd.Timestamp] | None = None, end: pd.Timestamp | None = None,
                        labels: bool = True) -> tuple[pd.DataFrame, CohortReport]:
    """Member-months on the first of each month (or ``dates``) with the label: an event of ``spec.label.event``
    within the horizon.

    With ``labels=False``, points whose horizon runs past the data are kept and unlabelled.
    """
    c, lab = spec.cohort, spec.label
    report = CohortReport(spec.task)
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
    pts = pd.DataFrame({"member_id": periods["member_id"].astype("str").to_numpy()[rows], "as_of": dates_arr[k],
                        "period_end": periods["end_date"].to_numpy()[rows]})
    report.add(f"member-dates enrolled with {c.lookback_days} days of lookback", len(pts))
    death = pts["member_id"].map(store["members"].assign(member_id=store["members"]["member_id"].astype("str"))
                                 .set_index("member_id")["death_date"])
    alive = death.isna() | (death > pts["as_of"])
    report.add("  excluded: died before the scoring date", (~alive).sum())
    pts, death = pts[alive], death[alive]
    stays = stays_with_planned(store)
    hosp = in_hospital(pts, stays)
    report.add("  excluded: in hospital on the scoring date", hosp.sum())
    pts, death = pts[~hosp].reset_index(drop=True), death[~hosp].reset_index(drop=True)
    event = events(store, lab.event, stays).sort_values("admit_time")
    left = pts.assign(i=np.arange(len(pts))).sort_values("as_of")
    fwd = asof_by_member(left, event[["member_id", "admit_time", "first_encounter_id"]], left_on="as_of",
                         right_on="admit_time", direction="forward").sort_values("i")
    until = pts["as_of"] + horizon
    hit = (fwd["admit_time"] < until.to_numpy()).to_numpy()
    pts["label"] = hit.astype(np.int8)
    pts["event_encounter_id"] = np.where(hit, fwd["first_encounter_id"].to_numpy(), None)
    pts["days_to_event"] = np.where(hit, (fwd["admit_time"] - fwd["as_of"]).dt.days.to_numpy(), np.nan)
    if labels:
        past = until > end
        report.add("  excluded: horizon runs past the end of the data", past.sum())
        keep = ~past
        left_early = (pts["period_end"] < until - DAY) & ~hit
        died = death.notna() & (death < until) & ~hit
        left_early &= ~died
        report.add("  excluded: left enrollment before the horizon without the event"
                   if lab.disenrolled_without_event == "exclude" else "  kept: left enrollment early (spec)",
                   (keep & left_early).sum())
        if lab.disenrolled_without_event == "exclude":
            keep &= ~left_early
        report.note("died before the horizon without the event", (keep & died).sum())
        if lab.death_without_event == "exclude":
            report.add("  excluded: died before the horizon without the event (spec)", (keep & died).sum())
            keep &= ~died
        pts = pts[keep].reset_index(drop=True)
    report.add("prediction points", len(pts))
    report.add("with the event (label 1)", int(pts["label"].sum()))
    report.label_rate = float(pts["label"].mean()) if len(pts) else float("nan")
    return pts.drop(columns="period_end"), report
