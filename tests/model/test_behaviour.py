"""Behaviour of trained models as a clinician would check it (the Made-With-ML habit).

Invariance: a member's id, the order of the rows and the order of the columns change no score.
Direction: a history with one more prior admission, more emergency visits or an abnormal lab at discharge
never lowers the average risk, and lowers it for few members. The histories are changed in the store (an
encounter or a lab row added before the point) and the features rebuilt, so the test covers what a
clinician would add to a chart, not a hand-edited feature column.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.specs import quick
from umrisk.features.build import build_features
from umrisk.features.events import seconds
from umrisk.features.store import load_store
from umrisk.features.synthetic.generate import GenerateConfig, generate
from umrisk.features.tasks import task_for
from umrisk.training.train import build_table, fit_model

MAX_LOWERED = 0.05  # share of members whose risk may fall when their history gets worse


@pytest.fixture(scope="session")
def discharge_store(tmp_path_factory) -> Path:
    """8,000 members: enough index discharges (about 1,400) for a readmission model that is not flat."""
    out = tmp_path_factory.mktemp("store8k")
    generate(GenerateConfig(members=8000, years=3, seed=11), out)
    return out


@pytest.fixture(scope="session", params=["readmission_30d", "admission_180d"])
def trained(request, small_store, discharge_store):
    """A quick model of each task, its store and one prediction point per member."""
    name = request.param
    data_dir = discharge_store if name == "readmission_30d" else small_store
    spec = quick(name)
    table = build_table(data_dir, spec)
    model = fit_model(table, spec).model
    store = load_store(data_dir)
    points, _ = task_for(spec).cohort(store, spec)
    points = points.drop_duplicates("member_id", keep="last").reset_index(drop=True)
    return {"spec": spec, "model": model, "store": store, "points": points, "frame": table.frame}


def history_end(spec, points: pd.DataFrame) -> pd.Series:
    """Where the point's look-back ends (the index admission for a discharge, the date for a snapshot)."""
    back = seconds(points["as_of"]) - task_for(spec).history_end(points)  # both in the store's seconds
    return pd.to_datetime(points["as_of"]) - pd.to_timedelta(back, unit="s")


def with_rows(store: dict, table: str, rows: pd.DataFrame) -> dict:
    """A copy of the store with ``rows`` appended to one table (the original is not changed)."""
    base = store[table]
    rows = rows[base.columns].astype({c: base[c].dtype for c in base.columns if base[c].dtype != "category"})
    both = pd.concat([base.astype({c: "object" for c in base.columns if base[c].dtype == "category"}),
                      rows.astype({c: "object" for c in base.columns if base[c].dtype == "category"})],
                     ignore_index=True)
    both = both.astype({c: "category" for c in base.columns if base[c].dtype == "category"})
    return {**store, table: both}


def added_encounters(store: dict, spec, points: pd.DataFrame, setting: str, days_before: int,
                     length_days: float) -> dict:
    """One encounter of ``setting`` per point, ``days_before`` its look-back end, copied from a typical one."""
    enc = store["encounters"]
    template = enc[enc["setting"] == setting].iloc[0]
    start = history_end(spec, points) - pd.Timedelta(days=days_before)
    rows = pd.DataFrame([template] * len(points)).reset_index(drop=True)
    rows["encounter_id"] = [f"TEST{setting}{i}" for i in range(len(points))]
    rows["member_id"] = points["member_id"].astype(str).to_numpy()
    rows["admit_time"] = start.to_numpy()
    rows["discharge_time"] = (start + pd.Timedelta(days=length_days)).to_numpy()
    rows["admission_type"] = "emergency"
    rows["discharge_disposition"] = "home"
    rows["paid_amount"] = float(enc.loc[enc["setting"] == setting, "paid_amount"].median())
    return with_rows(store, "encounters", rows)


def added_lab(store: dict, points: pd.DataFrame, loinc: str, value: float) -> dict:
    """One lab result per point, two hours before the point (at discharge for a stay)."""
    labs = store["labs"]
    rows = pd.DataFrame({"member_id": points["member_id"].astype(str).to_numpy(),
                         "time": (pd.to_datetime(points["as_of"]) - pd.Timedelta(hours=2)).to_numpy(),
                         "code": loinc, "value": value})
    for c in labs.columns.difference(rows.columns):
        rows[c] = labs[c].iloc[0]
    return with_rows(store, "labs", rows)


def risk(t: dict, store: dict) -> np.ndarray:
    return t["model"].predict_proba(build_features(store, t["points"], t["spec"]))


def assert_not_lowered(before: np.ndarray, after: np.ndarray, what: str) -> None:
    lowered = float(np.mean(after < before - 1e-9))
    assert after.mean() >= before.mean(), f"{what}: mean risk fell from {before.mean():.4f} to {after.mean():.4f}"
    assert lowered <= MAX_LOWERED, f"{what}: risk fell for {lowered:.1%} of {len(before)} members"


# ---------------------------------------------------------------------------------------------- invariance
def test_scores_do_not_depend_on_member_ids_or_row_and_column_order(trained):
    model, f = trained["model"], trained["frame"].head(2000)
    p = model.predict_proba(f)
    renamed = f.assign(member_id=[f"X{i:07d}" for i in range(len(f))])
    np.testing.assert_array_equal(model.predict_proba(renamed), p)
    order = np.random.default_rng(0).permutation(len(f))
    np.testing.assert_array_equal(model.predict_proba(f.iloc[order]), p[order])
    columns = list(f.columns)
    np.random.default_rng(1).shuffle(columns)
    np.testing.assert_array_equal(model.predict_proba(f[columns]), p)


def test_renaming_members_in_the_store_changes_no_score(trained):
    """The id is not a feature anywhere on the way: rename every member in every table and rebuild."""
    store, points = trained["store"], trained["points"].head(500)
    ids = pd.Index(store["members"]["member_id"].astype(str).unique())
    new = dict(zip(ids, [f"R{i:08d}" for i in range(len(ids))], strict=True))
    renamed = {name: (t.assign(member_id=t["member_id"].astype(str).map(new)) if "member_id" in t.columns else t)
               for name, t in store.items()}
    t = {**trained, "points": points}
    moved = {**t, "points": points.assign(member_id=points["member_id"].astype(str).map(new))}
    np.testing.assert_array_equal(risk(moved, renamed), risk(t, store))


# ---------------------------------------------------------------------------------------------- direction
def test_a_prior_emergency_admission_does_not_lower_risk(trained):
    """The issue's example: one emergency admission 90 days before the point (a 4-day stay)."""
    store = trained["store"]
    before = risk(trained, store)
    after = risk(trained, added_encounters(store, trained["spec"], trained["points"], "inpatient", 90, 4))
    assert_not_lowered(before, after, "a prior admission")


def test_more_emergency_visits_do_not_lower_risk(trained):
    store = trained["store"]
    before = risk(trained, store)
    more = store
    for days in (20, 45):
        more = added_encounters(more, trained["spec"], trained["points"], "emergency", days, 0.2)
    assert_not_lowered(before, risk(trained, more), "two more emergency visits")


def test_an_abnormal_lab_at_discharge_does_not_lower_risk(trained):
    """A hemoglobin of 9 g/dL (abnormal below 12, and a HOSPITAL score point at discharge)."""
    store = trained["store"]
    before = risk(trained, store)
    after = risk(trained, added_lab(store, trained["points"], "718-7", 9.0))
    assert_not_lowered(before, after, "an abnormal hemoglobin")
