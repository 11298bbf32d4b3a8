"""Every cohort and label rule on hand-built histories."""

import pandas as pd
import pytest

from tests.histories import History
from umrisk.features.cohorts import chain_stays, discharge_cohort, member_month_cohort
from umrisk.features.spec import SpecError, load_spec, parse_spec

READMIT = load_spec("readmission_30d")
ADMIT = load_spec("admission_180d")


def _points(h: History, spec=READMIT):
    return discharge_cohort(h.store(), spec)


def _label(h: History, member="m1", spec=READMIT) -> dict:
    pts, _ = _points(h, spec)
    first = pts[pts["member_id"] == member].sort_values("as_of").iloc[0]
    return first.to_dict()


def _base(**kw) -> History:
    h = History().member("m1", **kw)
    h.visit("m1", "2025-12-20", "office")  # the data runs to the end of 2025
    return h


def test_transfer_chain_is_one_index_stay():
    h = _base()
    h.stay("m1", "2024-03-01 10:00", "2024-03-04 12:00", disposition="transfer_acute", facility="A")
    last = h.stay("m1", "2024-03-04 15:00", "2024-03-10 11:00", disposition="home", facility="B")
    stays = chain_stays(h.store()["encounters"])
    assert len(stays) == 1 and stays["index_encounter_id"].iat[0] == last
    p = _label(h)
    assert p["index_encounter_id"] == last
    assert p["as_of"] == pd.Timestamp("2024-03-10 11:00")
    assert p["index_admit_time"] == pd.Timestamp("2024-03-01 10:00")


def test_next_day_admission_is_chained_not_a_readmission():
    h = _base()
    h.stay("m1", "2024-03-01", "2024-03-05")
    h.stay("m1", "2024-03-06", "2024-03-08")
    pts, _ = _points(h)
    assert len(pts) == 1 and pts["label"].iat[0] == 0


def test_unplanned_readmission_counts():
    h = _base()
    h.stay("m1", "2024-03-01", "2024-03-05")
    readmit = h.stay("m1", "2024-03-15", "2024-03-18", dx="I5023")
    p = _label(h)
    assert p["label"] == 1 and p["readmit_encounter_id"] == readmit and p["days_to_readmission"] == 10


@pytest.mark.parametrize(("day", "expected"), [(30, 1), (31, 0)])
def test_readmission_on_day_30_counts_and_day_31_does_not(day, expected):
    h = _base()
    h.stay("m1", "2024-03-01 08:00", "2024-03-05 16:00")
    admit = pd.Timestamp("2024-03-05") + pd.Timedelta(days=day) + pd.Timedelta(hours=9)
    h.stay("m1", str(admit), str(admit + pd.Timedelta(days=3)))
    assert _label(h)["label"] == expected


def test_planned_readmission_does_not_count_and_censors_by_default():
    h = _base()
    h.stay("m1", "2024-03-01", "2024-03-05")
    h.stay("m1", "2024-03-12", "2024-03-14", dx="Z5111", admission_type="elective")  # maintenance chemotherapy
    h.stay("m1", "2024-03-25", "2024-03-28", dx="J189")  # unplanned, after the planned one
    assert _label(h)["label"] == 0  # CMS: a planned first readmission means no readmission is counted
    skip = parse_spec({**READMIT.model_dump(), "label": {**READMIT.label.model_dump(),
                                                         "planned_first_readmission": "skip"}})
    assert _label(h, spec=skip)["label"] == 1


def test_potentially_planned_procedure_depends_on_the_diagnosis():
    pci = ("027034Z",)
    planned = _base()
    planned.stay("m1", "2024-03-01", "2024-03-05", dx="I214")
    planned.stay("m1", "2024-03-20", "2024-03-21", dx="I2510", procedures=pci, admission_type="elective")
    assert _label(planned)["label"] == 0
    acute = _base()
    acute.stay("m1", "2024-03-01", "2024-03-05", dx="I214")
    acute.stay("m1", "2024-03-20", "2024-03-23", dx="I214", procedures=pci)
    assert _label(acute)["label"] == 1


def test_readmission_can_itself_be_an_index_stay_and_only_the_first_counts():
    h = _base()
    h.stay("m1", "2024-03-01", "2024-03-05")
    second = h.stay("m1", "2024-03-10", "2024-03-12")
    h.stay("m1", "2024-03-20", "2024-03-22")
    pts, _ = _points(h)
    pts = pts.sort_values("as_of")
    assert list(pts["label"]) == [1, 1, 0]
    assert pts["readmit_encounter_id"].iat[0] == second


def test_death_in_hospital_ama_and_hospice_are_excluded_and_counted():
    h = _base()
    h.stay("m1", "2024-03-01", "2024-03-05", disposition="ama")
    h.stay("m1", "2024-05-01", "2024-05-05", disposition="hospice")
    h.stay("m1", "2024-07-01", "2024-07-05", disposition="expired")
    pts, report = _points(h)
    steps = dict(report.steps)
    assert len(pts) == 0
    assert steps["  excluded: discharged against medical advice"] == 1
    assert steps["  excluded: discharged to hospice"] == 1
    assert steps["  excluded: died in hospital"] == 1


def test_death_within_30_days_without_readmission_is_kept_and_counted():
    h = History().member("m1", death="2024-03-20", enrolled=("2020-01-01", "2024-03-20"))
    h.member("m2")
    h.visit("m2", "2025-12-20", "office")
    h.stay("m1", "2024-03-01", "2024-03-05")
    pts, report = _points(h)
    assert len(pts) == 1 and pts["label"].iat[0] == 0 and pts["died_within_window"].iat[0]
    assert dict(report.notes)["deaths within the window without readmission"] == 1
    drop = parse_spec({**READMIT.model_dump(), "label": {**READMIT.label.model_dump(),
                                                         "death_without_readmission": "exclude"}})
    assert len(discharge_cohort(h.store(), drop)[0]) == 0


def test_enrollment_gap_after_discharge_excludes_and_adjacent_spans_do_not():
    gap = History().member("m1", enrolled=[("2020-01-01", "2024-03-15"), ("2024-06-01", "2025-12-31")])
    gap.visit("m1", "2025-12-20", "office")
    gap.stay("m1", "2024-03-01", "2024-03-05")
    pts, report = _points(gap)
    assert len(pts) == 0
    assert dict(report.steps)["  excluded: fewer than 30 days of enrollment after discharge"] == 1
    adjacent = History().member("m1", enrolled=[("2020-01-01", "2024-03-15"), ("2024-03-16", "2025-12-31")])
    adjacent.visit("m1", "2025-12-20", "office")
    adjacent.stay("m1", "2024-03-01", "2024-03-05")
    assert len(_points(adjacent)[0]) == 1


def test_short_lookback_excludes():
    h = History().member("m1", enrolled=("2023-12-01", "2025-12-31"))
    h.member("m2", enrolled=("2020-01-01", "2025-12-31"))
    h.visit("m1", "2025-12-20", "office")
    h.stay("m1", "2024-03-01", "2024-03-05")
    _, report = _points(h)
    assert dict(report.steps)["  excluded: fewer than 365 days of enrollment before admission"] == 1


def _admission(h: History, dates=("2024-06-01",)):
    return member_month_cohort(h.store(), ADMIT, dates=[pd.Timestamp(d) for d in dates])


def test_admission_label_counts_unplanned_within_180_days_only():
    h = _base()
    h.stay("m1", "2024-09-01", "2024-09-04")  # 92 days after the scoring date
    pts, _ = _admission(h)
    assert pts["label"].tolist() == [1] and pts["days_to_event"].iat[0] == 92
    late = _base()
    late.stay("m1", "2024-12-15", "2024-12-18")  # 197 days after
    assert _admission(late)[0]["label"].tolist() == [0]


def test_admission_planned_and_elective_do_not_count():
    h = _base()
    h.stay("m1", "2024-07-01", "2024-07-03", dx="Z5111", admission_type="elective")
    h.stay("m1", "2024-08-01", "2024-08-03", dx="M1712", admission_type="elective", procedures=("0SRD0JZ",))
    assert _admission(h)[0]["label"].tolist() == [0]


def test_admission_in_hospital_and_disenrolled_are_excluded():
    h = _base()
    h.stay("m1", "2024-05-28", "2024-06-03")
    pts, report = _admission(h)
    assert len(pts) == 0 and dict(report.steps)["  excluded: in hospital on the scoring date"] == 1
    gone = History().member("m1", enrolled=("2020-01-01", "2024-08-31"))
    gone.member("m2")
    gone.visit("m2", "2025-12-20", "office")
    pts, report = _admission(gone)
    assert "m1" not in set(pts["member_id"])
    assert dict(report.steps)["  excluded: left enrollment before the horizon without the event"] == 1


def test_monthly_dates_by_default():
    h = _base()
    pts, _ = member_month_cohort(h.store(), ADMIT)
    assert (pts["as_of"].dt.day == 1).all() and pts["as_of"].is_monotonic_increasing
    assert pts["as_of"].min() == pd.Timestamp("2021-01-01")


def test_bad_spec_names_the_field(tmp_path):
    bad = tmp_path / "x.yaml"
    bad.write_text("name: x\ntask: readmission\nlabel:\n  window_days: [1, 30]\n  planned_first_readmission: maybe\n")
    with pytest.raises(SpecError, match=r"label\.planned_first_readmission"):
        load_spec(bad)
    with pytest.raises(SpecError, match="no model spec"):
        load_spec("nonexistent_model")
