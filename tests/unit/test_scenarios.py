"""The drift scenarios of the synthetic generator: each changes the store from its recorded start, and only then."""

import json

import numpy as np
import pandas as pd
import pytest

from umrisk.features.schema import read_table
from umrisk.features.spec import load_spec
from umrisk.features.store import load_store
from umrisk.features.synthetic.generate import GenerateConfig, generate
from umrisk.features.synthetic.scenarios import read_truth, scenario
from umrisk.features.tasks import task_for

START = pd.Timestamp("2025-07-01")


def _cfg(name=None):
    return GenerateConfig(members=600, years=2, seed=5, block=300, scenario=name)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    out = {}
    for name in (None, "coding_change", "new_population", "care_program"):
        path = tmp_path_factory.mktemp(name or "default")
        generate(_cfg(name), path)
        out[name] = path
    return out


def test_scenario_is_recorded_and_the_default_store_has_none(stores):
    assert read_truth(stores[None]) is None
    for name in ("coding_change", "new_population", "care_program"):
        truth = json.loads((stores[name] / "truth" / "scenario.json").read_text())
        assert truth["name"] == name and truth["start"] == "2025-07-01" and truth["description"]


@pytest.mark.parametrize("name", ["coding_change", "care_program"])
def test_before_the_start_the_plans_members_are_as_without_a_scenario(stores, name):
    def before(data):
        enc = read_table(data, "encounters")
        enc = enc[enc["admit_time"] < START][["member_id", "setting", "admit_time"]].astype({"member_id": str})
        return enc.sort_values(list(enc.columns)).reset_index(drop=True)

    base, changed = before(stores[None]), before(stores[name])
    assert len(base) > 1000
    pd.testing.assert_frame_equal(base, changed)
    if name == "coding_change":  # nothing but codes change: the diagnoses before the start are the same
        dx = [read_table(stores[k], "diagnoses") for k in (None, name)]
        dx = [d[d["time"] < START].sort_values(["encounter_id", "code"]).reset_index(drop=True) for d in dx]
        pd.testing.assert_frame_equal(*dx)


def test_coding_change_recodes_only_from_the_start(stores):
    dx = read_table(stores["coding_change"], "diagnoses")
    after = dx["time"] >= START
    assert not dx.loc[after, "code"].isin(["I10", "E119"]).any()
    assert dx.loc[after, "code"].eq("I119").sum() > 20
    assert not dx.loc[~after, "code"].isin(["I119"]).any()
    assert dx.loc[~after, "code"].eq("I10").sum() > 20
    base = read_table(stores[None], "encounters")
    changed = read_table(stores["coding_change"], "encounters")
    assert len(base) == len(changed)  # recoding changes codes, not care


def test_new_population_enters_medicaid_and_the_scored_population_at_the_start(stores):
    data = stores["new_population"]
    members = read_table(data, "members")
    new = members["member_id"].astype(str).str.startswith("M9")
    assert new.sum() == 150 and (~new).sum() == 600
    enr = read_table(data, "enrollment")
    enr_new = enr[enr["member_id"].astype(str).str.startswith("M9")]
    assert set(enr_new["line_of_business"].astype(str)) == {"medicaid"}
    assert enr_new["start_date"].min() == START - pd.DateOffset(months=12)
    store = load_store(data)
    spec = load_spec("admission_180d")
    ids = members["member_id"].astype(str).tolist()
    scored = {d: set(task_for(spec).scorable(store, spec, ids, d).points["member_id"])
              for d in (START - pd.DateOffset(months=1), START)}
    assert not any(m.startswith("M9") for m in scored[START - pd.DateOffset(months=1)])
    assert sum(m.startswith("M9") for m in scored[START]) > 100


def test_care_program_adds_weekly_contacts_from_the_start(stores):
    def per_month(data):
        enc = read_table(data, "encounters")
        tele = enc[enc["setting"] == "telehealth"]
        return tele["admit_time"].dt.to_period("M").value_counts()

    base, program = per_month(stores[None]), per_month(stores["care_program"])
    before, after = pd.Period("2025-06", "M"), pd.Period("2025-08", "M")
    assert program[before] == base[before]
    assert program[after] > 3 * base[after]


def test_scenario_names_and_starts_are_checked():
    end = pd.Timestamp("2026-01-01")
    assert scenario("care_program", end).start == START
    with pytest.raises(ValueError, match="unknown scenario"):
        scenario("pandemic", end)
    with pytest.raises(ValueError, match="last year"):
        scenario("coding_change", end, pd.Timestamp("2024-07-01"))
    with pytest.raises(ValueError, match="unknown scenario"):
        generate(GenerateConfig(members=10, years=2, scenario="pandemic"), "/nonexistent/never-written")


def test_care_program_lowers_the_admission_hazard_of_its_members_from_the_start():
    from umrisk.features.synthetic.generate import month_starts
    from umrisk.features.synthetic.population import draw_population
    from umrisk.features.synthetic.simulate import Simulation

    cfg = _cfg("care_program")
    ms = month_starts(cfg)
    rng = np.random.default_rng(1)
    sim = Simulation(rng, draw_population(rng, 400, 0, pd.Timestamp(ms[0]), 24), ms, 24)
    change = cfg.change()
    change.prepare(sim, np.random.default_rng(2))
    rows = np.arange(sim.n)
    eligible = (sim.m.age0 >= 65) & (sim.m.n_conditions >= 3)
    assert change.enrolled_.any() and not change.enrolled_[~eligible].any()
    before = sim.admission_factor(rows, np.datetime64("2025-06-01", "s"))
    after = sim.admission_factor(rows, np.datetime64("2025-07-01", "s"))
    assert (before == 1).all()
    assert set(after[change.enrolled_]) == {0.6} and (after[~change.enrolled_] == 1).all()
