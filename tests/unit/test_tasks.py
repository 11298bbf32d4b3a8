"""Tasks: who can be scored at a date (the cohort's own eligibility), labels declared in specs, and no model
named in code."""

import re
from pathlib import Path

import pandas as pd
import pytest

from tests.histories import History
from umrisk.features.build import feature_set
from umrisk.features.cohorts import member_month_cohort
from umrisk.features.spec import MODELS_DIR, load_spec, parse_spec, spec_names
from umrisk.features.tasks import task_for

READMIT = load_spec("readmission_30d")
ADMIT = load_spec("admission_180d")
ED = load_spec("ed_visit_90d")
ROOT = Path(__file__).resolve().parents[2]


def _base() -> History:
    h = History()
    h.member("alive")
    h.member("dead", death="2024-06-10")
    h.member("gone", enrolled=("2020-01-01", "2024-03-31"))
    h.member("new", enrolled=("2024-05-01", "2025-12-31"))
    h.member("inside")
    h.visit("alive", "2025-12-20", "office")
    h.stay("inside", "2024-06-28", "2024-07-04")
    return h


def test_member_month_scorable_names_why_each_member_cannot_be_scored():
    sc = task_for(ADMIT).scorable(_base().store(), ADMIT, ["alive", "dead", "gone", "new", "inside"],
                                  pd.Timestamp("2024-07-01"))
    assert sc.points["member_id"].tolist() == ["alive"]
    assert sc.reasons["dead"] == ("deceased", "died on 2024-06-10")
    assert sc.reasons["gone"] == ("not enrolled", "not enrolled on 2024-07-01")
    assert sc.reasons["new"][0] == "short enrollment" and "fewer than 365 days" in sc.reasons["new"][1]
    assert sc.reasons["inside"] == ("in hospital", "in hospital on 2024-07-01")


def test_member_month_eligibility_is_the_cohorts_at_the_same_date():
    """The cohort at one date and the scorable points at that date are the same members."""
    h = _base()
    store = h.store()
    day = pd.Timestamp("2024-07-01")
    cohort, _ = member_month_cohort(store, ADMIT, dates=[day], labels=False)
    sc = task_for(ADMIT).scorable(store, ADMIT, ["alive", "dead", "gone", "new", "inside"], day)
    assert sorted(cohort["member_id"]) == sorted(sc.points["member_id"])


@pytest.mark.parametrize(("disposition", "category"), [("ama", "not an index stay"), ("hospice", "not an index stay"),
                                                       ("transfer_acute", "not an index stay"),
                                                       ("home", None)])
def test_discharge_scorable_follows_the_index_stay_rules(disposition, category):
    h = History().member("m1")
    h.stay("m1", "2025-11-01", "2025-11-05", disposition=disposition)
    sc = task_for(READMIT).scorable(h.store(), READMIT, ["m1"], pd.Timestamp("2025-11-20"))
    if category is None:
        assert sc.points["member_id"].tolist() == ["m1"] and not sc.reasons
        assert sc.points["as_of"].iat[0] == pd.Timestamp("2025-11-05")
    else:
        assert sc.points.empty and sc.reasons["m1"][0] == category


def test_discharge_scorable_window_closed_dead_in_hospital_and_no_stay():
    h = History().member("closed").member("dead", death="2025-11-10").member("inside").member("none")
    h.stay("closed", "2025-09-01", "2025-09-05")
    h.stay("dead", "2025-11-01", "2025-11-05")
    h.stay("inside", "2025-11-15", None)
    ids = ["closed", "dead", "inside", "none"]
    sc = task_for(READMIT).scorable(h.store(), READMIT, ids, pd.Timestamp("2025-11-20"))
    assert sc.points.empty
    closed = "the 30-day window after the latest discharge closed on 2025-10-05"
    assert sc.reasons["closed"] == ("window closed", closed)
    assert sc.reasons["dead"] == ("deceased", "died on 2025-11-10")
    assert sc.reasons["inside"] == ("in hospital", "in hospital on 2025-11-20")
    assert sc.reasons["none"][0] == "no discharge"


def test_a_stay_discharged_after_the_scoring_date_is_still_in_hospital_then():
    h = History().member("m1")
    h.stay("m1", "2025-11-01", "2025-11-25")
    sc = task_for(READMIT).scorable(h.store(), READMIT, ["m1"], pd.Timestamp("2025-11-20"))
    assert sc.reasons["m1"][0] == "in hospital"


def test_ed_visit_label_is_declared_in_its_spec():
    h = History().member("m1")
    h.visit("m1", "2025-02-10", "emergency")
    h.visit("m1", "2025-12-20", "office")
    pts, _ = task_for(ED).cohort(h.store(), ED)
    by_date = pts.set_index("as_of")["label"]
    assert by_date[pd.Timestamp("2025-01-01")] == 1  # a visit 40 days later
    assert by_date[pd.Timestamp("2024-10-01")] == 0  # 132 days later: outside 90
    assert ED.label.event.settings == ["emergency"]
    assert feature_set(ED).names == feature_set(ADMIT).names


def test_task_aliases_of_the_first_two_kinds():
    spec = parse_spec({"name": "x", "task": "readmission"})
    assert spec.task == "discharge"
    assert parse_spec({"name": "y", "task": "admission"}).task == "member_month"


def test_no_python_file_names_a_model():
    """A new outcome is a new YAML file: no module names a model, serving names none at all."""
    names = spec_names()
    assert {"readmission_30d", "admission_180d", "ed_visit_90d"} <= set(names)
    assert MODELS_DIR.is_dir()
    pattern = re.compile("|".join(re.escape(n) for n in names))
    for folder in ("features", "training", "serving", "umrisk"):
        for path in (ROOT / folder).rglob("*.py"):
            hits = pattern.findall(path.read_text())
            assert not hits, f"{path.relative_to(ROOT)} names model(s) {sorted(set(hits))}"
