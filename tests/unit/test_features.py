"""Point-in-time features: values on hand-built histories, one code path, and no leakage."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.histories import History
from umrisk.features.build import build_features, feature_set, hospital_score, lace
from umrisk.features.cohorts import discharge_cohort
from umrisk.features.spec import load_spec
from umrisk.features.store import load_store
from umrisk.features.tasks import task_for

READMIT = load_spec("readmission_30d")
ADMIT = load_spec("admission_180d")


def _one_point(h: History, as_of: str, spec=ADMIT) -> pd.Series:
    pts = pd.DataFrame({"member_id": ["m1"], "as_of": [pd.Timestamp(as_of)]})
    return build_features(h.store(), pts, spec).iloc[0]


def test_window_counts_and_days_since():
    h = History().member("m1")
    for t in ["2024-01-10", "2024-04-20", "2024-05-25"]:
        h.visit("m1", t, "emergency")
    h.visit("m1", "2024-06-15", "emergency")  # after as_of: invisible
    f = _one_point(h, "2024-06-01")
    assert (f["n_emergency_30d"], f["n_emergency_90d"], f["n_emergency_180d"]) == (1, 2, 3)
    assert f["days_since_emergency"] == pytest.approx(7)
    assert f["paid_365d"] == pytest.approx(1500)
    assert f["line_of_business"] == "medicare" and f["age"] == pytest.approx(74.0, abs=0.01)


def test_comorbidity_flags_hierarchy_and_labs():
    h = History().member("m1")
    h.dx("m1", "2023-01-01", "E119").dx("m1", "2023-06-01", "E1122").dx("m1", "2023-07-01", "I5022")
    h.dx("m1", "2020-01-01", "C61")  # outside the 730-day lookback
    h.lab("m1", "2024-05-01", "718-7", 11.2).lab("m1", "2024-05-20", "718-7", 12.5)
    h.lab("m1", "2024-06-02", "718-7", 8.0)  # after as_of
    h.fill("m1", "2024-05-01", "insulin").fill("m1", "2024-05-02", "statin").fill("m1", "2023-01-01", "opioid")
    f = _one_point(h, "2024-06-01")
    assert f["cci_diab"] == 1 and f["cci_diabwc"] == 1 and f["cci_chf"] == 1 and f["cci_canc"] == 0
    assert f["charlson_index"] == 3  # diabetes with complications (2) supersedes without (1); CHF 1
    # E11.22 (diabetes with diabetic CKD) is also a CCW chronic kidney disease code
    assert f["cc_diabetes"] == 1 and f["cc_heart_failure"] == 1 and f["cc_ckd"] == 1 and f["n_chronic"] == 3
    assert f["lab_hemoglobin"] == 12.5 and f["lab_hemoglobin_abnormal"] == 0
    assert f["n_drug_classes_90d"] == 2 and f["n_drug_classes_365d"] == 2 and f["rx_insulin"] == 1
    assert f["rx_opioid"] == 0


def test_index_stay_features_lace_and_hospital():
    h = History().member("m1")
    h.visit("m1", "2025-12-20", "office")
    h.visit("m1", "2024-01-15", "emergency")
    h.stay("m1", "2023-12-01", "2023-12-03")
    h.stay("m1", "2023-11-01", "2023-11-03")
    h.dx("m1", "2023-06-01", "I5022").dx("m1", "2023-06-01", "J449")
    h.stay("m1", "2024-03-01 09:00", "2024-03-07 12:00", dx="C3490", procedures=("02HV33Z",))
    h.lab("m1", "2024-03-07 08:00", "718-7", 10.5).lab("m1", "2024-03-07 08:00", "2951-2", 132)
    pts, _ = discharge_cohort(h.store(), READMIT)
    f = build_features(h.store(), pts, READMIT).sort_values("as_of").iloc[-1]
    assert f["los_days"] == 6 and f["admission_type"] == "emergency"
    assert f["principal_dx_group"] == "neoplasm" and f["oncology_index"] == 1 and f["n_procedures_index"] == 1
    assert f["n_inpatient_365d"] == 2  # the two earlier stays, not the index
    # LACE: LOS 6 -> 4, emergent 3, Charlson (CHF 1 + COPD 1 + lung cancer 2) = 4 -> 5, 1 ED visit -> 1
    assert f["charlson_index"] == 4 and f["lace"] == 13
    # HOSPITAL: Hb<12 1, oncology 2, Na<135 1, procedure 1, urgent 1, 2 admissions -> 2, LOS>=5 2
    assert f["hospital_score"] == 10


def test_lace_and_hospital_point_tables():
    # LACE boundaries (van Walraven 2010): LOS 0/1/2/3/4-6/7-13/14+ -> 0/1/2/3/4/5/7
    los = np.array([0, 1, 2, 3, 4, 6, 7, 13, 14])
    pts = lace(los, np.full(len(los), "elective"), np.zeros(len(los)), np.zeros(len(los)))
    assert pts.tolist() == [0, 1, 2, 3, 4, 4, 5, 5, 7]
    assert lace(np.array([1]), np.array(["emergency"]), np.array([6]), np.array([9])).tolist() == [1 + 3 + 5 + 4]
    # HOSPITAL (Donze 2013): previous admissions 0-1 -> 0, 2-5 -> 2, >5 -> 5; maximum 13
    got = hospital_score(hemoglobin=np.array([13.0, 13.0, 13.0, 9.0]), oncology=np.array([0, 0, 0, 1]),
                         sodium=np.array([140.0, 140.0, 140.0, 130.0]), procedures=np.array([0, 0, 0, 2]),
                         admission_type=np.array(["elective", "elective", "elective", "urgent"]),
                         admissions_12m=np.array([1, 5, 6, 6]), los_days=np.array([4, 4, 4, 5]))
    assert got.tolist() == [0, 2, 5, 13]


def test_catalog_covers_every_feature():
    for spec in (READMIT, ADMIT):
        infos = feature_set(spec).infos
        assert len({i.name for i in infos}) == len(infos)
        assert all(i.description and i.group for i in infos)
        for i in infos:
            i.reason.format(value=1.0 if i.kind != "category" else "x")


@pytest.fixture(scope="module")
def built(small_store):
    store = load_store(small_store)
    out = {}
    for spec in (READMIT, ADMIT):
        pts, _ = task_for(spec).cohort(store, spec)
        out[spec.task] = (pts, build_features(store, pts, spec))
    return store, out


def _member_store(store, member):
    return {name: df[df["member_id"] == member] for name, df in store.items()}


@pytest.mark.parametrize("task", ["discharge", "member_month"])
def test_batch_and_single_member_give_identical_features(built, task):
    store, out = built
    pts, batch = out[task]
    spec = READMIT if task == "discharge" else ADMIT
    rng = np.random.default_rng(0)
    for member in rng.choice(pts["member_id"].unique(), size=5, replace=False):
        sel = pts["member_id"] == member
        single = build_features(_member_store(store, member), pts[sel], spec)
        pd.testing.assert_frame_equal(single, batch[sel], check_categorical=False)


EVENT_KINDS = ["emergency", "inpatient", "office", "dx", "lab", "fill"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(EVENT_KINDS), st.integers(1, 2000), st.integers(0, 10**6)),
                min_size=1, max_size=12))
def test_events_after_as_of_change_no_feature(built, events):
    """Append random events after each point's own time: every feature stays as it was."""
    store, out = built
    for task, spec in (("discharge", READMIT), ("member_month", ADMIT)):
        pts, before = out[task]
        pts, before = pts.iloc[:40], before.iloc[:40]
        members = pts["member_id"].unique()[:8]
        pts, before = pts[pts["member_id"].isin(members)], before[pts["member_id"].isin(members)]
        h = History()
        for i, (kind, minutes, salt) in enumerate(events):
            p = pts.iloc[(salt + i) % len(pts)]
            # later than the member's latest point, so after every point of that member
            t = str(pts.loc[pts["member_id"] == p["member_id"], "as_of"].max() + pd.Timedelta(minutes=minutes))
            m = p["member_id"]
            if kind in ("emergency", "office"):
                h.visit(m, t, kind)
            elif kind == "inpatient":
                h.stay(m, t, str(pd.Timestamp(t) + pd.Timedelta(days=3)), dx="I5023", procedures=("0DJ08ZZ",))
            elif kind == "dx":
                h.dx(m, t, "C787")
            elif kind == "lab":
                h.lab(m, t, "718-7", 6.0)
            else:
                h.fill(m, t, "opioid")
        extra = h.store()
        sub = {n: df[df["member_id"].isin(members)] for n, df in store.items()}
        grown = {n: pd.concat([sub[n], extra[n]], ignore_index=True) if len(extra[n]) else sub[n] for n in sub}
        after = build_features(grown, pts, spec)
        pd.testing.assert_frame_equal(after, before, check_categorical=False)


def test_truncated_store_gives_identical_features_before_the_cut(built):
    store, out = built
    cut = pd.Timestamp("2024-09-01")
    times = {"encounters": "admit_time", "diagnoses": "time", "procedures": "time", "medications": "time",
             "labs": "time", "review_requests": "received_time", "enrollment": "start_date"}
    trunc = {}
    for name, df in store.items():
        df = df[df[times[name]] <= cut].copy() if name in times else df.copy()
        if name == "encounters":
            late = df["discharge_time"] > cut
            df.loc[late, "discharge_time"] = pd.NaT
            df.loc[late, "discharge_disposition"] = "unknown"
        if name == "enrollment":
            df["end_date"] = df["end_date"].clip(upper=cut)
        if name == "members":
            df.loc[df["death_date"] > cut, "death_date"] = pd.NaT
        trunc[name] = df
    for task, spec in (("discharge", READMIT), ("member_month", ADMIT)):
        pts, full = out[task]
        early = pts["as_of"] <= cut
        assert early.sum() > 50
        pd.testing.assert_frame_equal(build_features(trunc, pts[early], spec), full[early], check_categorical=False)


def test_features_on_an_imported_synthea_export(tmp_path):
    """The whole path on real-format data: import, compact load (categories), both cohorts, features."""
    from tests.importing import FIXTURES
    from umrisk.features.importers import run_import

    out = tmp_path / "synthea"
    assert run_import("synthea", FIXTURES / "synthea-sample", out).ok
    store = load_store(out)
    assert isinstance(store["diagnoses"]["code"].dtype, pd.CategoricalDtype)
    for spec in (READMIT, ADMIT):
        pts, report = task_for(spec).cohort(store, spec)
        assert len(pts) > 0, report.render()
        f = build_features(store, pts, spec)
        assert list(f.columns[-len(feature_set(spec).names):]) == feature_set(spec).names
        assert f["age"].between(0, 120).all()
    # SNOMED-coded conditions reach the comorbidity flags
    assert f.filter(like="cc_").to_numpy().sum() > 0
