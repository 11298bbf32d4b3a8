"""Known drift to test a monitor against: ``umrisk data generate --scenario NAME``.

Each scenario changes the synthetic population from a recorded date, ``start`` (by default six months before
the end of the simulation: in its last year and after the default training period of every model), and is
written to ``truth/scenario.json`` (its name, start and description). Before ``start`` a scenario store
holds the plan's own members' encounters at the same times as the store without a scenario (the same seed
gives the same simulation; a scenario that changes the simulation after ``start`` may change attributes drawn
when the tables are assembled, such as amounts paid); without a scenario nothing here runs and the store is
the default one, byte for byte.

coding_change
    From ``start``, claims code two chronic conditions as more severe codes of the same condition
    (``data/scenario_recoding.csv``): essential hypertension I10 as hypertensive heart disease I11.9, and type 2
    diabetes without complications E11.9 as with diabetic chronic kidney disease E11.22 -- a coding-intensity
    shift. Diagnoses and principal diagnoses dated on or after ``start`` are recoded; nobody's health or risk
    changes, so the Elixhauser and Charlson flags move while admissions do not.
new_population
    A county's Medicaid members, sicker than the plan's (frailty one standard deviation higher, so more
    chronic conditions), are assigned to the plan's Medicaid line twelve months before ``start`` -- a quarter
    as many as the plan's members. They enter the scored population at ``start``, when their enrollment covers
    the 365-day look-back the cohorts require; their ids start at ``M9``.
care_program
    From ``start``, a care-management program enrolls 70 % of members aged 65 or over with three or more
    chronic conditions: a care manager's weekly telehealth contact, and an unplanned-admission hazard 40 %
    lower. The truth in ``truth/admission`` keeps the probabilities without the program (the counterfactual),
    so after ``start`` it overstates the enrolled members' risk.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from umrisk.features.synthetic.population import LOB_SHARE, Population, draw_population, read_reference
from umrisk.features.synthetic.simulate import DAY, HOUR, Simulation

NEWCOMER_BLOCK = 5000         # newcomers of block b are simulated as block 5000 + b (their ids, parts)
NEWCOMER_FIRST = 90_000_000   # and numbered from M90000000
LEAD_MONTHS = 12              # newcomers enroll this long before start: the cohorts' 365-day look-back


class Scenario:
    """A documented change from ``start``; the default methods change nothing."""

    name = "none"
    description = ""

    def __init__(self, start: pd.Timestamp):
        self.start = pd.Timestamp(start)

    def prepare(self, sim: Simulation, rng: np.random.Generator) -> None:
        """Change the simulation before it runs (``rng`` is the scenario's own stream)."""

    def add_events(self, sim: Simulation, rng: np.random.Generator) -> None:
        """Record events after the simulation ran, before the tables are assembled."""

    def recode(self, tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
        """Change the assembled tables."""
        return tables

    def newcomers(self, n: int) -> int:
        """How many members join a block of ``n``."""
        return 0

    def draw_newcomers(self, rng: np.random.Generator, n: int, first_index: int, month_starts: np.ndarray,
                       months: int) -> Population:
        raise NotImplementedError

    def truth(self) -> dict:
        return {"name": self.name, "start": str(self.start.date()), "description": self.description}


class CodingChange(Scenario):
    name = "coding_change"
    description = ("claims code hypertension I10 as I11.9 and type 2 diabetes E11.9 as E11.22 from the start "
                   "(coding intensity; nobody's risk changes)")

    def recode(self, tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
        to = read_reference("scenario_recoding.csv").set_index("from_code")["to_code"]
        start = np.datetime64(self.start)
        dx = tables["diagnoses"].copy()
        after = (dx["time"].to_numpy() >= start) & dx["code"].isin(to.index).to_numpy()
        dx.loc[after, "code"] = dx.loc[after, "code"].map(to)
        enc = tables["encounters"].copy()
        after = (enc["admit_time"].to_numpy() >= start) & enc["principal_dx"].isin(to.index).to_numpy()
        enc.loc[after, "principal_dx"] = enc.loc[after, "principal_dx"].map(to)
        return {**tables, "diagnoses": dx.drop_duplicates(["encounter_id", "code"]), "encounters": enc}


class NewPopulation(Scenario):
    name = "new_population"
    description = ("a county's Medicaid members, frailer than the plan's (a quarter as many), enroll in Medicaid "
                   f"{LEAD_MONTHS} months before the start and enter the scored population at the start")
    share = 0.25
    frailty_shift = 1.0

    def newcomers(self, n: int) -> int:
        return int(round(self.share * n))

    def draw_newcomers(self, rng: np.random.Generator, n: int, first_index: int, month_starts: np.ndarray,
                       months: int) -> Population:
        medicaid = np.zeros_like(LOB_SHARE)
        medicaid[1] = 1.0
        pop = draw_population(rng, n, first_index, pd.Timestamp(month_starts[0]), months, lob_share=medicaid,
                              frailty_shift=self.frailty_shift)
        joined = int(np.searchsorted(month_starts, np.datetime64(self.start - pd.DateOffset(months=LEAD_MONTHS))))
        pop.covered[:] = False
        pop.covered[:, joined:] = True
        return pop


class CareProgram(Scenario):
    name = "care_program"
    description = ("70 % of members aged 65 or over with three or more chronic conditions join a care program at "
                   "the start: weekly telehealth contacts and a 40 % lower unplanned-admission hazard")
    uptake = 0.70
    hazard_ratio = 0.60
    contacts_per_month = 4

    def prepare(self, sim: Simulation, rng: np.random.Generator) -> None:
        m = sim.m
        self.enrolled_ = (m.age0 >= 65) & (m.n_conditions >= 3) & (rng.random(sim.n) < self.uptake)
        start = np.datetime64(self.start, "s")
        enrolled, ratio = self.enrolled_, self.hazard_ratio

        def factor(rows: np.ndarray, month_start: np.datetime64) -> np.ndarray:
            return np.where(enrolled[rows] & (month_start >= start), ratio, 1.0)

        sim.admission_factor = factor

    def add_events(self, sim: Simulation, rng: np.random.Generator) -> None:
        first = int(np.searchsorted(sim.ms, np.datetime64(self.start, "s")))
        rows = np.flatnonzero(self.enrolled_)
        for k in range(first, sim.months):
            r = np.repeat(rows, self.contacts_per_month)
            week = np.tile(np.arange(self.contacts_per_month), len(rows))
            t = (sim.ms[k] + (week * 7 + rng.integers(0, 7, len(r))) * DAY + rng.integers(9, 17, len(r)) * HOUR)
            sim.rec.add("visits", row=r, time=t, setting=np.full(len(r), "telehealth", dtype=object),
                        end=t + HOUR)


SCENARIOS: dict[str, type[Scenario]] = {s.name: s for s in (CodingChange, NewPopulation, CareProgram)}


def default_start(end: pd.Timestamp) -> pd.Timestamp:
    """Six months before the end of the simulation.

    >>> default_start(pd.Timestamp("2026-01-01")).date()
    datetime.date(2025, 7, 1)
    """
    return pd.Timestamp(end) - pd.DateOffset(months=6)


def scenario(name: str, end: pd.Timestamp, start: pd.Timestamp | None = None) -> Scenario:
    """The scenario ``name`` starting at ``start`` (a first of the month in the last year before ``end``)."""
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}: use one of {', '.join(SCENARIOS)}")
    start = default_start(end) if start is None else pd.Timestamp(start)
    if start.day != 1 or not pd.Timestamp(end) - pd.DateOffset(years=1) <= start < pd.Timestamp(end):
        raise ValueError(f"a scenario starts on the first of a month in the last year of the simulation, not {start}")
    return SCENARIOS[name](start)


def write_truth(change: Scenario, out: Path) -> Path:
    """``truth/scenario.json``: the scenario's name, start and description."""
    path = Path(out) / "truth" / "scenario.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(change.truth(), indent=2))
    return path


def read_truth(data_dir: Path | str) -> dict | None:
    """The scenario of a generated store, or None for a store without one."""
    path = Path(data_dir) / "truth" / "scenario.json"
    return json.loads(path.read_text()) if path.exists() else None


def generate_scenario_store(members: int, years: int, seed: int, out: Path, name: str, workers: int = 1,
                            progress=None, partitions: int | None = None) -> tuple[dict, str]:
    """``umrisk data generate --scenario NAME``: the store with the scenario, its realism summary and text
    (``demo.generate_store`` with a scenario; it could take one and this would go)."""
    import time

    from umrisk.features.synthetic.generate import GenerateConfig, generate
    from umrisk.features.synthetic.summary import realism, render

    t0 = time.perf_counter()
    cfg = GenerateConfig(members=members, years=years, seed=seed, workers=workers, scenario=name,
                         partitions=partitions)
    stats = generate(cfg, out, progress=progress)
    real = realism(stats)
    summary = {"members": members, "years": years, "seed": seed, "scenario": read_truth(out),
               "seconds": round(time.perf_counter() - t0, 1), "rows": stats["rows"], "realism": real}
    (Path(out) / "generation_summary.json").write_text(json.dumps(summary, indent=2, default=float))
    return summary, render(stats, real)
