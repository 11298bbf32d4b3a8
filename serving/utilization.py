"""Utilization by month and line of business from the history store: the figures utilization-management
programs track.

Definitions (one per figure):

- ``member_months``: days enrolled in the month over the days of the month, summed over members; the line of
  business is the enrollment span's. ``per 1,000`` figures are per 1,000 member-years (member-months / 12).
- ``admissions``: acute inpatient stays (transfers chained, as the cohorts chain them) admitted in the month;
  ``admissions_per_1000``; ``alos`` the mean length of stay in days (midnights) and ``cost_per_admission`` the
  mean paid amount of those stays that were discharged; the line of business is the one enrolled at admission.
- ``readmission_rate``: the 30-day unplanned readmission rate of the discharge cohort of the served
  readmission model (``umrisk.features.cohorts.discharge_cohort`` with its spec: the CMS HWR exclusions, planned
  readmissions not counted) over the index discharges of the month; ``index_discharges`` its denominator.
  Discharges whose 30 days run past the end of the data are not in the cohort, so the last month has none.
- ``ed_visits``, ``ed_per_1000``: emergency encounters in the month.
- ``pmpm``: paid amount of every encounter admitted in the month over member-months.

Reference bands come from ``valuesets/utilization_reference.csv`` (with their source); a figure without a row
has no band.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from umrisk.features.cohorts import chain_stays, data_end, data_start, discharge_cohort
from umrisk.features.spec import DischargeSpec

FIGURES = {  # name -> (label, unit, digits)
    "member_months": ("Member-months", "", 0),
    "admissions_per_1000": ("Admissions per 1,000 member-years", "", 1),
    "readmission_rate": ("30-day unplanned readmission rate", "%", 1),
    "ed_per_1000": ("Emergency visits per 1,000 member-years", "", 1),
    "alos": ("Average length of stay", "days", 2),
    "cost_per_admission": ("Cost per admission", "$", 0),
    "pmpm": ("Cost per member per month (PMPM)", "$", 2),
}
ALL = "all"
REFERENCE = Path(__file__).with_name("valuesets") / "utilization_reference.csv"


@cache
def reference_bands() -> dict[tuple[str, str], tuple[float, float]]:
    """(metric, line of business) -> (low, high) of the published reference range."""
    df = pd.read_csv(REFERENCE, comment="#")
    return {(r.metric, r.line_of_business): (float(r.low), float(r.high)) for r in df.itertuples()}


def months_of(store: dict[str, pd.DataFrame]) -> pd.DatetimeIndex:
    """The calendar months the store covers (first day of each), partial ones at the ends included."""
    return pd.date_range(data_start(store).to_period("M").to_timestamp(),
                         (data_end(store) - pd.Timedelta(days=1)).to_period("M").to_timestamp(), freq="MS")


def member_months(enrollment: pd.DataFrame, months: pd.DatetimeIndex) -> pd.DataFrame:
    """``month, line_of_business, member_months``: enrolled days in each month over its days.

    >>> e = pd.DataFrame({"member_id": ["a", "b"], "start_date": pd.to_datetime(["2024-01-01", "2024-01-17"]),
    ...                   "end_date": pd.to_datetime(["2024-02-29", "2024-01-31"]),
    ...                   "line_of_business": ["medicare", "medicare"]})
    >>> member_months(e, pd.date_range("2024-01-01", periods=2, freq="MS"))["member_months"].round(3).tolist()
    [1.484, 1.0]
    """
    start = enrollment["start_date"].to_numpy("datetime64[D]")
    end = enrollment["end_date"].to_numpy("datetime64[D]")
    lob = enrollment["line_of_business"].astype(str).to_numpy()
    rows = []
    for m in months:
        first = np.datetime64(m.date(), "D")
        last = np.datetime64((m + pd.offsets.MonthEnd(0)).date(), "D")
        days = (np.minimum(end, last) - np.maximum(start, first)).astype(int) + 1
        share = np.clip(days, 0, None) / m.days_in_month
        for level in np.unique(lob):
            rows.append({"month": m, "line_of_business": level, "member_months": float(share[lob == level].sum())})
    return pd.DataFrame(rows, columns=["month", "line_of_business", "member_months"])


def line_of_business_at(enrollment: pd.DataFrame, member_id: pd.Series, when: pd.Series) -> np.ndarray:
    """The line of business of each member's enrollment span covering ``when`` ("unknown" outside any)."""
    left = pd.DataFrame({"member_id": member_id.astype(str).to_numpy(), "t": pd.to_datetime(when).to_numpy(),
                         "i": np.arange(len(when))}).sort_values("t")
    spans = enrollment.assign(member_id=enrollment["member_id"].astype(str)).sort_values("start_date")
    m = pd.merge_asof(left, spans[["member_id", "start_date", "end_date", "line_of_business"]], left_on="t",
                      right_on="start_date", by="member_id", direction="backward").sort_values("i")
    inside = m["end_date"].notna() & (m["t"].dt.normalize() <= m["end_date"])
    return np.where(inside, m["line_of_business"].astype(str), "unknown")


SUM_COLUMNS = ("member_months", "admissions", "los_days", "los_stays", "paid_discharged", "discharged_stays",
               "ed_visits", "paid", "index_discharges", "readmissions")


def _by_month(frame: pd.DataFrame, time_col: str, value_cols: dict[str, tuple[str, str]]) -> pd.DataFrame:
    """Sums (and counts) by month and line of business: figures that add up across members."""
    g = frame.assign(month=frame[time_col].dt.to_period("M").dt.to_timestamp())
    return g.groupby(["month", "line_of_business"]).agg(**value_cols).reset_index()


def utilization_sums(store: dict[str, pd.DataFrame], readmission_spec: DischargeSpec | None,
                     months: pd.DatetimeIndex | None = None, end: pd.Timestamp | None = None) -> pd.DataFrame:
    """``SUM_COLUMNS`` by month and line of business for the members of ``store``. Every column is a sum over
    members, so the sums of member partitions add up to the whole store's (given the whole store's ``months``
    and the ``end`` of its data, and a spec whose cohort has its ``first_date``)."""
    months = months_of(store) if months is None else months
    enr = store["enrollment"]
    out = member_months(enr, months)
    enc = store["encounters"]
    gap = readmission_spec.cohort.transfer_max_gap_days if readmission_spec is not None else 1
    stays = chain_stays(enc, gap)
    link = stays.attrs["encounter_stay"]
    paid = enc.set_index("encounter_id")["paid_amount"].reindex(link["encounter_id"]).to_numpy()
    stays["paid"] = pd.Series(paid).groupby(link["stay"].to_numpy()).sum(min_count=1).reindex(stays.index).to_numpy()
    stays["line_of_business"] = line_of_business_at(enr, stays["member_id"], stays["admit_time"])
    done = stays["discharge_time"].notna()
    stays["los"] = np.where(done, (stays["discharge_time"].dt.normalize() - stays["admit_time"].dt.normalize())
                            .dt.days, np.nan)
    stays["paid_done"] = np.where(done, stays["paid"], np.nan)
    parts = [_by_month(stays, "admit_time", {"admissions": ("admit_time", "size"), "los_days": ("los", "sum"),
                                             "los_stays": ("los", "count"),
                                             "paid_discharged": ("paid_done", "sum"),
                                             "discharged_stays": ("paid_done", "count")})]
    ed = enc[enc["setting"] == "emergency"]
    ed = ed.assign(line_of_business=line_of_business_at(enr, ed["member_id"], ed["admit_time"]))
    parts.append(_by_month(ed, "admit_time", {"ed_visits": ("admit_time", "size")}))
    allenc = enc.assign(line_of_business=line_of_business_at(enr, enc["member_id"], enc["admit_time"]))
    parts.append(_by_month(allenc, "admit_time", {"paid": ("paid_amount", "sum")}))
    if readmission_spec is not None:
        points, _ = discharge_cohort(store, readmission_spec, end)
        points = points.assign(line_of_business=line_of_business_at(enr, points["member_id"], points["as_of"]))
        parts.append(_by_month(points, "as_of", {"index_discharges": ("label", "size"),
                                                 "readmissions": ("label", "sum")}))
    for part in parts:
        out = out.merge(part, on=["month", "line_of_business"], how="left")
    for col in SUM_COLUMNS:
        out[col] = out[col].fillna(0.0).astype(float) if col in out else 0.0
    return out[["month", "line_of_business", *SUM_COLUMNS]]


def utilization_from_sums(sums: pd.DataFrame, readmissions: bool = True) -> pd.DataFrame:
    """The figures of the module docstring from ``utilization_sums`` (of one store, or added over partitions):
    one row per month and line of business, and per month for ``all``."""
    sums = sums.groupby(["month", "line_of_business"], as_index=False)[list(SUM_COLUMNS)].sum()
    every = sums.groupby("month", as_index=False)[list(SUM_COLUMNS)].sum().assign(line_of_business=ALL)
    out = pd.concat([sums, every], ignore_index=True)
    for col in ("admissions", "ed_visits", "index_discharges", "readmissions"):
        out[col] = out[col].round().astype(int)
    years = out["member_months"] / 12
    with np.errstate(divide="ignore", invalid="ignore"):
        out["alos"] = np.where(out["los_stays"] > 0, out["los_days"] / out["los_stays"], np.nan)
        out["cost_per_admission"] = np.where(out["discharged_stays"] > 0,
                                             out["paid_discharged"] / out["discharged_stays"], np.nan)
        out["admissions_per_1000"] = np.where(years > 0, 1000 * out["admissions"] / years, np.nan)
        out["ed_per_1000"] = np.where(years > 0, 1000 * out["ed_visits"] / years, np.nan)
        out["pmpm"] = np.where(out["member_months"] > 0, out["paid"] / out["member_months"], np.nan)
        out["readmission_rate"] = np.where(readmissions & (out["index_discharges"] > 0),
                                           100 * out["readmissions"] / out["index_discharges"], np.nan)
    if not readmissions:
        out = out.drop(columns=["index_discharges", "readmissions"])
    out = out[out["line_of_business"] != "unknown"].drop(columns=["paid", "los_days", "los_stays",
                                                                 "paid_discharged", "discharged_stays"])
    return out.sort_values(["line_of_business", "month"]).reset_index(drop=True)


def utilization(store: dict[str, pd.DataFrame], readmission_spec: DischargeSpec | None) -> pd.DataFrame:
    """One row per month and line of business (and ``all``) with every figure of the module docstring."""
    return utilization_from_sums(utilization_sums(store, readmission_spec), readmission_spec is not None)


def utilization_partitioned(dataset: Path | str, readmission_spec: DischargeSpec | None) -> pd.DataFrame:
    """``utilization`` of a store partitioned by member, one partition in memory at a time (what a service
    that holds no population computes for the managers' page): the same figures."""
    from umrisk.features.cohorts import store_dates
    from umrisk.features.distributed import with_first_date
    from umrisk.features.partition import load_partition, partitions
    from umrisk.features.schema import column_bound

    first_day, last_day = store_dates(dataset)
    end = last_day + pd.Timedelta(days=1)
    first_enrollment = column_bound(dataset, "enrollment", "start_date", "min")
    months = pd.date_range(first_day.to_period("M").to_timestamp(), last_day.to_period("M").to_timestamp(), freq="MS")
    spec = with_first_date(readmission_spec, first_enrollment) if readmission_spec is not None else None
    tables = ("members", "enrollment", "encounters", "diagnoses", "procedures")
    sums = [utilization_sums(load_partition(dataset, k, tables), spec, months, end) for k in partitions(dataset)]
    return utilization_from_sums(pd.concat(sums, ignore_index=True), readmission_spec is not None)


def readmission_spec(specs: list) -> DischargeSpec | None:
    """The first of the served specs whose task is a discharge cohort (the readmission kind), else None."""
    return next((s for s in specs if isinstance(s, DischargeSpec)), None)


def records(frame: pd.DataFrame) -> list[dict]:
    """The table as JSON-able rows: months as ``YYYY-MM``, figures rounded as the page shows them."""
    out = []
    for r in frame.to_dict("records"):
        row = {"month": r["month"].strftime("%Y-%m"), "line_of_business": r["line_of_business"]}
        for k, (_, _, digits) in FIGURES.items():
            v = r.get(k)
            row[k] = None if v is None or pd.isna(v) else round(float(v), digits)
        for k in ("admissions", "ed_visits", "index_discharges", "readmissions"):
            row[k] = int(r[k]) if k in r and not pd.isna(r[k]) else None
        out.append(row)
    return out
