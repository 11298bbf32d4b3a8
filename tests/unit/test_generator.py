"""The synthetic generator: determinism, ground truth, and the risk model's pieces."""

import numpy as np
import pandas as pd
import pytest

from umrisk.features.schema import TABLES, read_table
from umrisk.features.synthetic import risk
from umrisk.features.synthetic.generate import GenerateConfig, generate
from umrisk.features.synthetic.simulate import ckd_epi_2021


def _store(tmp_path, seed, name):
    out = tmp_path / name
    generate(GenerateConfig(members=600, years=2, seed=seed, block=250), out)
    return out


def test_same_seed_same_store_other_seed_other_store(tmp_path):
    a, b, c = _store(tmp_path, 3, "a"), _store(tmp_path, 3, "b"), _store(tmp_path, 4, "c")
    for name in TABLES:
        pd.testing.assert_frame_equal(read_table(a, name), read_table(b, name))
    pd.testing.assert_frame_equal(pd.read_parquet(a / "truth" / "readmission"),
                                  pd.read_parquet(b / "truth" / "readmission"))
    assert not read_table(a, "encounters")["admit_time"].equals(read_table(c, "encounters")["admit_time"])


def test_blocks_are_written_in_member_partitions(tmp_path):
    out = tmp_path / "parts"
    generate(GenerateConfig(members=600, years=2, seed=3, block=250, partitions=3), out)
    for name in TABLES:
        assert sorted(f.name for f in (out / name).glob("*.parquet")) == [f"part-0000{k}.parquet" for k in range(3)]
    assert read_table(out, "members")["member_id"].is_unique
    assert not (out / ".blocks").exists()


def test_truth_is_calibrated_against_its_own_draws(small_store):
    """The stored probabilities are the ones that drew the labels: observed rate matches the mean."""
    t = pd.read_parquet(small_store / "truth" / "readmission")
    t = t[t["chain_final"] & t["observed_30d"] & t["p_readmit_30d"].notna()]
    se = np.sqrt((t["p_readmit_30d"] * (1 - t["p_readmit_30d"])).sum()) / len(t)
    assert abs(t["readmitted_30d"].mean() - t["p_readmit_30d"].mean()) < 4 * se
    a = pd.read_parquet(small_store / "truth" / "admission")
    a = a[a["observed_180d"]]
    # member-months overlap, so allow for the correlation between them
    assert a["admitted_180d"].mean() == pytest.approx(a["p_admit_180d"].mean(), rel=0.15)


def test_follow_up_and_truth_relationship(small_store):
    t = pd.read_parquet(small_store / "truth" / "readmission")
    t = t[t["p_excess"].notna()]
    # the readmission truth adds the general hazard on top of the excess risk
    assert (t["p_readmit_30d"] >= t["p_excess"] - 1e-12).all()


def test_readmissions_only_from_day_two(small_store):
    """No unplanned admission lands the day after a discharge (that would be a transfer)."""
    enc = read_table(small_store, "encounters")
    inp = enc[enc["setting"] == "inpatient"].sort_values(["member_id", "admit_time"])
    nxt = inp.groupby("member_id")["admit_time"].shift(-1)
    gap = (nxt.dt.normalize() - inp["discharge_time"].dt.normalize()).dt.days
    transfer = inp["discharge_disposition"] == "transfer_acute"
    assert not ((gap == 1) & ~transfer & (inp.groupby("member_id")["admission_type"].shift(-1) != "elective")).any()
    assert (gap[transfer] == 0).all()


def _members(n=4):
    return risk.Members(age0=np.full(n, 75.0), lob=np.zeros(n, dtype=int), burden=np.full(n, 1.5),
                        n_conditions=np.full(n, 3), z=np.zeros(n))


def test_window_probability_grows_with_the_window_and_risk():
    ms = pd.date_range("2023-01-01", periods=20, freq="MS").to_numpy().astype("datetime64[s]")
    now = np.full(4, ms[2])
    ends = now + np.array([0, 30, 90, 180]) * np.timedelta64(86400, "s")
    kw = dict(now=now, start=now, decline_now=np.zeros(4), excite_month=np.zeros(4), excite_value=np.zeros(4),
              excite_time=now, hospice=np.zeros(4, dtype=bool), month_starts=ms, sim_start=ms[0])
    p = risk.p_unplanned_window(_members(), end=ends, **kw)
    assert p[0] == 0 and np.all(np.diff(p) > 0)
    sick = risk.p_unplanned_window(_members(), end=ends, **{**kw, "decline_now": np.ones(4)})
    assert np.all(sick[1:] > p[1:])


def test_window_probability_matches_a_constant_hazard_by_hand():
    """One month, no decline possible beyond it: P = la/(la+ld) * (1 - exp(-(la+ld) * days))."""
    m = _members(1)
    ms = pd.date_range("2023-01-01", periods=4, freq="MS").to_numpy().astype("datetime64[s]")
    now = ms[:1]
    end = now + 20 * np.timedelta64(86400, "s")
    p = risk.p_unplanned_window(m, now=now, start=now, end=end, decline_now=np.zeros(1), excite_month=np.zeros(1),
                                excite_value=np.zeros(1), excite_time=now, hospice=np.zeros(1, dtype=bool),
                                month_starts=ms, sim_start=ms[0])
    la = risk.admission_hazard(m, 0.0, np.zeros(1), np.zeros(1), np.zeros(1, dtype=bool))
    ld = risk.death_hazard(m, 0.0, np.zeros(1), np.zeros(1, dtype=bool))
    assert p[0] == pytest.approx((la / (la + ld) * (1 - np.exp(-(la + ld) * 20)))[0])


def test_ckd_epi_2021_worked_examples():
    # Inker et al. 2021: 142 * min(Scr/k,1)^a * max(Scr/k,1)^-1.2 * 0.9938^age * 1.012 [female]
    got = ckd_epi_2021(np.array([1.0, 0.7]), np.array([50.0, 50.0]), np.array([True, False]))
    assert got == pytest.approx([91.7, 105.3], abs=0.1)


def test_excess_risk_moves_the_right_way():
    base = dict(age10=np.zeros(2), los_days=np.full(2, 4.0), emergency=np.ones(2),
                disposition=np.array(["home", "home"]), hemoglobin=np.full(2, 13.0), sodium=np.full(2, 140.0),
                egfr=np.full(2, 80.0), bnp=np.zeros(2), heart_failure=np.zeros(2), copd=np.zeros(2), ckd=np.zeros(2),
                low_income=np.zeros(2), prior_admissions_365=np.zeros(2), ed_visits_180=np.zeros(2),
                drug_classes=np.zeros(2), oncology=np.zeros(2), decline=np.zeros(2), z=np.zeros(2),
                follow_up_7d=np.zeros(2), planned=np.zeros(2))
    p0 = risk.excess_readmission_probability(**base)[0]
    for key, value in [("hemoglobin", 9.0), ("sodium", 130.0), ("prior_admissions_365", 2), ("instability", 1.0),
                       ("low_income", 1.0)]:
        assert risk.excess_readmission_probability(**{**base, key: np.full(2, value)})[0] > p0, key
    assert risk.excess_readmission_probability(**{**base, "follow_up_7d": np.ones(2)})[0] < p0
    assert risk.excess_readmission_probability(**{**base, "disposition": np.array(["ama", "ama"])})[0] > p0
