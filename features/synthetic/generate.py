"""Generate a synthetic history store with its ground truth: ``umrisk data generate``.

Members are simulated in blocks (each with its own random stream derived from the seed and the block
number, so a seed fixes the output). Each block's tables are written to a staging folder, then every table is
streamed into the store's member partitions (``features.partition``; blocks in order, so the partitions and
their rows do not depend on the number of workers) and the staging folder is removed. Beside
the store, ``truth/readmission`` holds, for every inpatient discharge, the probability of an unplanned
readmission within 30 days that was used to draw it, and ``truth/admission`` holds, for each member on
the first day of each month, the probability of an unplanned admission within 180 days. With a scenario
(``scenarios.py``) the store carries a documented change from a recorded date, named in ``truth/scenario.json``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from umrisk.features.partition import default_partitions, partition_table, write_manifest
from umrisk.features.schema import TABLES, write_table
from umrisk.features.synthetic import scenarios
from umrisk.features.synthetic.population import draw_population, enrollment_spans, reference
from umrisk.features.synthetic.simulate import DAY, HOUR, NAT, PLANNED_DX, TRUTH_HORIZON_DAYS, Simulation

BLOCK = 25_000
STAGING = ".blocks"  # the blocks' own parts, inside the output folder until they are partitioned
DEFAULT_END = pd.Timestamp("2026-01-01")


@dataclass(frozen=True)
class GenerateConfig:
    members: int
    years: int = 3
    seed: int = 1
    end: pd.Timestamp = DEFAULT_END  # first day after the simulated period
    block: int = BLOCK
    workers: int = 1
    scenario: str | None = None          # a name in scenarios.SCENARIOS
    scenario_start: pd.Timestamp | None = None  # default: six months before the end
    partitions: int | None = None        # member partitions of the store (default: about 50,000 members each)

    def change(self) -> scenarios.Scenario | None:
        return scenarios.scenario(self.scenario, self.end, self.scenario_start) if self.scenario else None


def month_starts(cfg: GenerateConfig) -> np.ndarray:
    start = cfg.end - pd.DateOffset(years=cfg.years)
    return pd.date_range(start, periods=cfg.years * 12 + 8 + 1, freq="MS").to_numpy().astype("datetime64[s]")


def generate(cfg: GenerateConfig, out: Path | str, progress: Callable[[int], None] | None = None) -> dict:
    """Write the store and truth to ``out``; return the per-block statistics, merged."""
    change = cfg.change()  # an unknown scenario fails before anything is written
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / STAGING, ignore_errors=True)  # blocks of an earlier run cut short
    blocks = [(b, b * cfg.block, min(cfg.block, cfg.members - b * cfg.block))
              for b in range((cfg.members + cfg.block - 1) // cfg.block)]
    stats = []
    if cfg.workers > 1 and len(blocks) > 1:
        with ProcessPoolExecutor(cfg.workers) as pool:
            for s in pool.map(_run_block, [(cfg, out, *b) for b in blocks]):
                stats.append(s)
                if progress:
                    progress(s["members"])
    else:
        for b in blocks:
            s = _run_block((cfg, out, *b))
            stats.append(s)
            if progress:
                progress(s["members"])
    n = cfg.partitions or default_partitions(cfg.members)
    jobs = [(out / STAGING, out, table, n) for table in TABLES]
    if cfg.workers > 1:
        with ProcessPoolExecutor(min(cfg.workers, len(jobs))) as pool:
            list(pool.map(_partition_table, jobs))
    else:
        for job in jobs:
            _partition_table(job)
    write_manifest(out, n)
    shutil.rmtree(out / STAGING)
    if change is not None:
        scenarios.write_truth(change, out)
    return merge_stats(stats)


def _partition_table(args: tuple) -> int:
    return partition_table(*args)


def _run_block(args: tuple) -> dict:
    cfg, out, block, first, n = args
    rng = np.random.default_rng([cfg.seed, block])
    ms = month_starts(cfg)
    months = cfg.years * 12
    pop = draw_population(rng, n, first, pd.Timestamp(ms[0]), months)
    change = cfg.change()
    stats = _simulate(rng, pop, ms, months, out, block, change, np.random.default_rng([cfg.seed, block, 1]))
    extra = change.newcomers(n) if change is not None else 0
    if extra:  # their own block number and random stream: the plan's members are drawn as without them
        rng2 = np.random.default_rng([cfg.seed, block, 2])
        pop2 = change.draw_newcomers(rng2, extra, scenarios.NEWCOMER_FIRST + first, ms, months)
        stats = merge_stats([stats, _simulate(rng2, pop2, ms, months, out, scenarios.NEWCOMER_BLOCK + block, change,
                                              np.random.default_rng([cfg.seed, block, 3]))])
    return stats


def _simulate(rng: np.random.Generator, pop, ms: np.ndarray, months: int, out: Path, block: int,
              change: scenarios.Scenario | None, change_rng: np.random.Generator) -> dict:
    """Simulate one block of members (with a scenario's changes) and write its parts; its statistics."""
    sim = Simulation(rng, pop, ms, months)
    if change is not None:
        change.prepare(sim, change_rng)
    sim.run()
    if change is not None:
        change.add_events(sim, change_rng)
    tables, truth = assemble(sim, block)
    if change is not None:
        tables = change.recode(tables)
    for name, df in tables.items():
        write_table(df, out / STAGING, name, part=block)
    for name, df in truth.items():
        folder = out / "truth" / name
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), folder / f"part-{block:05d}.parquet",
                       compression="zstd")
    return block_stats(sim, tables, truth)


# ---------------------------------------------------------------------------------------------- assembly
def assemble(sim: Simulation, block: int) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """The canonical tables and the truth tables of one simulated block."""
    rng, pop, ref = sim.rng, sim.pop, reference()
    ids = pop.members["member_id"].to_numpy()
    members = pop.members.copy()
    members["death_date"] = pd.to_datetime(sim.death_time).floor("D").astype("datetime64[us]")
    ms = sim.ms
    covered = pop.covered
    enroll = enrollment_spans(covered, ms, pop.state.lob, members["member_id"])
    # enrollment ends at death
    death_day = sim.death_time[enroll["row"].to_numpy()].astype("datetime64[D]")
    end = enroll["end_date"].to_numpy().astype("datetime64[D]")
    start = enroll["start_date"].to_numpy().astype("datetime64[D]")
    end = np.where(~np.isnat(death_day) & (death_day < end), death_day, end)
    keep = end >= start
    enroll = enroll[keep].assign(end_date=pd.to_datetime(end[keep]).astype("datetime64[us]"))

    def enrolled(rows: np.ndarray, t: np.ndarray) -> np.ndarray:
        k = np.searchsorted(ms, t, side="right") - 1
        ok = (k >= 0) & (k < covered.shape[1])
        res = np.zeros(len(rows), dtype=bool)
        res[ok] = covered[rows[ok], k[ok]]
        return res

    stays = sim.rec.frame("stays")
    stays = stays[enrolled(stays["row"].to_numpy(), stays["admit"].to_numpy())].reset_index(drop=True)
    stays["encounter_id"] = [f"E{block:04d}I{i:07d}" for i in stays["stay"].to_numpy()]
    visits = sim.rec.frame("visits")
    visits = visits.sort_values(["row", "time"], kind="stable").reset_index(drop=True)
    vrow, vtime = visits["row"].to_numpy(), visits["time"].to_numpy()
    alive_then = np.isnat(sim.death_time[vrow]) | (vtime < sim.death_time[vrow])
    in_period = vtime < sim.sim_end
    ok = alive_then & in_period & enrolled(vrow, vtime) & ~_during_stay(vrow, vtime, stays)
    visits = visits[ok].reset_index(drop=True)
    visits["encounter_id"] = [f"E{block:04d}V{i:07d}" for i in range(len(visits))]
    hosp = (visits["setting"] == "hospice").to_numpy()
    vend = visits["end"].to_numpy().copy()
    vend[hosp] = sim.death_time[visits["row"].to_numpy()[hosp]]
    vend = np.where(~np.isnat(vend) & (vend > sim.sim_end), NAT, vend)
    visits["end"] = vend

    cond_codes = pop.codes10
    has = pop.conditions
    principal_v = _visit_principal(rng, visits, has, cond_codes)
    cost_v = visits["setting"].map({"office": 110.0, "telehealth": 80.0, "outpatient": 450.0, "emergency": 1400.0,
                                    "observation": 3500.0, "snf": 9000.0, "home_health": 180.0,
                                    "hospice": 4500.0}).to_numpy() * rng.lognormal(0, 0.35, len(visits))
    planned = stays["kind"].to_numpy() > 0
    principal_s = np.where(planned, stays["reason"].map(PLANNED_DX).to_numpy(),
                           stays["reason"].map(ref["acute_conditions"].set_index("condition")["icd10cm"]).to_numpy())
    enc = pd.concat([
        pd.DataFrame({
            "encounter_id": stays["encounter_id"], "member_id": ids[stays["row"]], "setting": "inpatient",
            "admit_time": stays["admit"], "discharge_time": stays["discharge"],
            "admission_type": stays["admission_type"], "discharge_disposition": stays["disposition"],
            "principal_dx": principal_s, "facility_id": stays["facility"], "paid_amount": stays["paid"].round(2),
        }),
        pd.DataFrame({
            "encounter_id": visits["encounter_id"], "member_id": ids[visits["row"]], "setting": visits["setting"],
            "admit_time": visits["time"], "discharge_time": visits["end"],
            "admission_type": np.where(visits["setting"].isin(["emergency", "observation"]), "emergency", "unknown"),
            "discharge_disposition": np.where(visits["setting"] == "hospice", "expired", "unknown"),
            "principal_dx": principal_v, "facility_id": "F" + (visits["row"] % 23).astype(str),
            "paid_amount": cost_v.round(2),
        }),
    ], ignore_index=True)
    hospice_open = (enc["setting"] == "hospice") & enc["discharge_time"].isna()
    enc.loc[hospice_open, "discharge_disposition"] = "unknown"

    tables = {
        "members": members,
        "enrollment": enroll.drop(columns="row"),
        "encounters": enc,
        "diagnoses": _diagnoses(rng, stays, visits, principal_s, principal_v, has, cond_codes, ids),
        "procedures": _procedures(rng, stays, visits, ids),
        "medications": _medications(rng, sim, stays, ids),
        "labs": _labs(rng, sim, stays, visits, ids),
        "review_requests": _reviews(rng, sim, stays, ids, block),
    }
    return tables, _truth(sim, stays, ids)


def _during_stay(rows: np.ndarray, times: np.ndarray, stays: pd.DataFrame) -> np.ndarray:
    """True where a visit starts while its member is in hospital."""
    if stays.empty or len(rows) == 0:
        return np.zeros(len(rows), dtype=bool)
    s = stays.sort_values("admit")
    left = pd.DataFrame({"row": rows, "time": times, "i": np.arange(len(rows))}).sort_values("time")
    m = pd.merge_asof(left, s[["row", "admit", "discharge"]], left_on="time", right_on="admit", by="row",
                      direction="backward")
    inside = (m["discharge"] > m["time"]).fillna(False).to_numpy()
    out = np.zeros(len(rows), dtype=bool)
    out[m["i"].to_numpy()] = inside
    return out


def _pick_condition(rng: np.random.Generator, rows: np.ndarray, has: np.ndarray) -> np.ndarray:
    """A random present condition (column index) for each row, or -1 when the member has none."""
    score = np.where(has[rows], rng.random((len(rows), has.shape[1])), -1.0)
    j = score.argmax(axis=1)
    return np.where(score.max(axis=1) >= 0, j, -1)


GENERIC_DX = {
    "office": ["Z0000", "J069", "M5450", "R519", "Z23"],
    "telehealth": ["F419", "J069", "Z7189"],
    "outpatient": ["Z1211", "R079", "M25561"],
    "emergency": ["R079", "J069", "R109", "S93401A", "R519", "N390"],
    "observation": ["R079", "R55"],
    "snf": ["Z5189"], "home_health": ["Z5189"], "hospice": ["R627"],
}


def _visit_principal(rng, visits: pd.DataFrame, has: np.ndarray, codes: np.ndarray) -> np.ndarray:
    rows = visits["row"].to_numpy()
    setting = visits["setting"].to_numpy()
    out = np.empty(len(rows), dtype=object)
    for s, opts in GENERIC_DX.items():
        sel = setting == s
        out[sel] = np.array(opts, dtype=object)[rng.integers(0, len(opts), sel.sum())]
    chronic = np.isin(setting, ["office", "telehealth", "outpatient", "hospice"]) & (rng.random(len(rows)) < 0.7)
    j = _pick_condition(rng, rows, has)
    use = chronic & (j >= 0)
    out[use] = codes[rows[use], j[use]]
    return out


def _diagnoses(rng, stays, visits, principal_s, principal_v, has, codes, ids) -> pd.DataFrame:
    parts = [
        pd.DataFrame({"member_id": ids[stays["row"]], "encounter_id": stays["encounter_id"],
                      "time": stays["admit"], "code": principal_s, "is_principal": True}),
        pd.DataFrame({"member_id": ids[visits["row"]], "encounter_id": visits["encounter_id"],
                      "time": visits["time"], "code": principal_v, "is_principal": True}),
    ]
    # every chronic condition on an inpatient claim; up to a few on an office visit
    sr, sc = np.nonzero(has[stays["row"].to_numpy()])
    parts.append(pd.DataFrame({"member_id": ids[stays["row"].to_numpy()[sr]],
                               "encounter_id": stays["encounter_id"].to_numpy()[sr],
                               "time": stays["admit"].to_numpy()[sr], "code": codes[stays["row"].to_numpy()[sr], sc],
                               "is_principal": False}))
    office = visits[visits["setting"].isin(["office", "telehealth"])]
    orow = office["row"].to_numpy()
    vr, vc = np.nonzero(has[orow] & (rng.random((len(orow), has.shape[1])) < 0.45))
    parts.append(pd.DataFrame({"member_id": ids[orow[vr]], "encounter_id": office["encounter_id"].to_numpy()[vr],
                               "time": office["time"].to_numpy()[vr], "code": codes[orow[vr], vc],
                               "is_principal": False}))
    dx = pd.concat(parts, ignore_index=True)
    dx = dx[dx["code"].notna()]
    dx = dx.drop_duplicates(["encounter_id", "code"])
    dx["code_system"] = "ICD10CM"
    return dx


def _procedures(rng, stays, visits, ids) -> pd.DataFrame:
    proc = reference()["procedures"]
    parts = []
    for r in proc.itertuples(index=False):
        if r.code_system == "ICD10PCS":
            sel = (stays["reason"].to_numpy() == r.reason) & (rng.random(len(stays)) < r.probability)
            s = stays[sel]
            t = s["admit"].to_numpy() + np.where(r.reason in ("rehabilitation",), 24, 6) * HOUR
            parts.append(pd.DataFrame({"member_id": ids[s["row"]], "encounter_id": s["encounter_id"], "time": t,
                                       "code": r.code, "code_system": "ICD10PCS"}))
    for setting, opts in proc[proc["code_system"] != "ICD10PCS"].groupby("reason"):
        v = visits[visits["setting"] == setting]
        p = opts["probability"].to_numpy(float)
        pick = rng.choice(len(opts), size=len(v), p=p / p.sum())
        parts.append(pd.DataFrame({"member_id": ids[v["row"]], "encounter_id": v["encounter_id"],
                                   "time": v["time"], "code": opts["code"].to_numpy()[pick],
                                   "code_system": opts["code_system"].to_numpy()[pick]}))
    return pd.concat(parts, ignore_index=True)


def _medications(rng, sim: Simulation, stays, ids) -> pd.DataFrame:
    pop, ms = sim.pop, sim.ms
    months = sim.months
    reg = pop.drugs
    rows = reg["row"].to_numpy()
    ninety = rng.random(sim.n) < np.where(pop.state.lob == 1, 0.1, 0.45)  # 90-day fills
    rr = np.repeat(np.arange(len(reg)), months)
    kk = np.tile(np.arange(months), len(reg))
    r = rows[rr]
    offset = rng.integers(0, 3, sim.n)
    due = np.where(ninety[r], (kk + offset[r]) % 3 == 0, True)
    fill = due & pop.covered[r, kk] & (rng.random(len(rr)) < 0.85)
    rr, kk, r = rr[fill], kk[fill], r[fill]
    t = ms[kk] + (rng.integers(0, 27, len(rr)) * DAY) + rng.integers(9, 19, len(rr)) * HOUR
    alive = np.isnat(sim.death_time[r]) | (t < sim.death_time[r])
    chronic = pd.DataFrame({"member_id": ids[r[alive]], "time": t[alive],
                            "code": reg["rxnorm"].to_numpy()[rr[alive]],
                            "drug_class": reg["drug_class"].to_numpy()[rr[alive]],
                            "days_supply": np.where(ninety[r[alive]], 90.0, 30.0)})
    dd = reference()["discharge_drugs"]
    acute = stays.merge(dd, left_on="reason", right_on="reason")
    acute = acute[acute["disposition"] != "expired"]
    after = pd.DataFrame({"member_id": ids[acute["row"]], "time": acute["discharge"].to_numpy() + 3 * HOUR,
                          "code": acute["rxnorm"], "drug_class": acute["drug_class"],
                          "days_supply": acute["days_supply"].astype(float)})
    med = pd.concat([chronic, after], ignore_index=True)
    med["code_system"] = "RXNORM"
    return med


def _labs(rng, sim: Simulation, stays, visits, ids) -> pd.DataFrame:
    lab = reference()["labs"].set_index("lab")
    parts = []
    live = stays
    for name in ("hemoglobin", "sodium", "creatinine", "egfr", "bnp"):
        col = {"hemoglobin": "hb", "sodium": "na", "creatinine": "creat", "egfr": "egfr", "bnp": "bnp"}[name]
        v = live[col].to_numpy()
        ok = ~np.isnan(v)
        adm_noise = {"hemoglobin": rng.normal(0.4, 0.6, len(v)), "sodium": rng.normal(-1.0, 2.0, len(v)),
                     "creatinine": rng.normal(0.1, 0.1, len(v)), "egfr": rng.normal(-4, 4, len(v)),
                     "bnp": rng.normal(150, 80, len(v))}[name]
        for t, val in ((live["admit"].to_numpy() + 2 * HOUR, np.round(v + adm_noise, 2)),
                       (live["discharge"].to_numpy() - 4 * HOUR, v)):
            parts.append(pd.DataFrame({"member_id": ids[live["row"].to_numpy()[ok]], "time": t[ok],
                                       "code": lab.loc[name, "loinc"], "value": np.maximum(val[ok], 0.0),
                                       "unit": lab.loc[name, "unit"]}))
    # outpatient panels at a share of office visits
    office = visits[visits["setting"] == "office"]
    orow, otime = office["row"].to_numpy(), office["time"].to_numpy() + HOUR
    c = sim.cond
    z = sim.m.z[orow]
    male = sim.pop.members["sex"].to_numpy()[orow] == "M"
    k = np.minimum(np.searchsorted(sim.ms, otime, side="right") - 1, sim.decline.shape[1] - 1)
    dk = sim.decline[orow, k]
    panel = rng.random(len(orow)) < 0.35
    n = len(orow)
    from umrisk.features.synthetic.simulate import ckd_epi_2021
    creat = np.exp(np.log(0.85 + 0.2 * male) + 0.5 * c["ckd"][orow] + 0.08 * dk + rng.normal(0, 0.18, n))
    age = sim.m.age0[orow] + (otime - sim.sim_start) / DAY / 365.25
    values = {
        "hemoglobin": np.round(rng.normal(13.5 + 1.0 * male - 0.8 * c["ckd"][orow] - 0.5 * dk - 0.2 * z, 1.1), 1),
        "sodium": np.round(rng.normal(140 - 0.8 * c["heart_failure"][orow] - 1.2 * dk, 2.5)),
        "creatinine": np.round(creat, 2),
        "egfr": np.round(ckd_epi_2021(creat, np.maximum(age, 18), male)),
        "potassium": np.round(rng.normal(4.2 + 0.2 * c["ckd"][orow], 0.35), 1),
    }
    for name, v in values.items():
        parts.append(pd.DataFrame({"member_id": ids[orow[panel]], "time": otime[panel],
                                   "code": lab.loc[name, "loinc"], "value": v[panel], "unit": lab.loc[name, "unit"]}))
    a1c = c["diabetes"][orow] & (rng.random(n) < 0.5)
    parts.append(pd.DataFrame({"member_id": ids[orow[a1c]], "time": otime[a1c], "code": lab.loc["hba1c", "loinc"],
                               "value": np.round(rng.normal(7.2 + 0.4 * z[a1c] + 0.3 * dk[a1c], 1.1), 1),
                               "unit": lab.loc["hba1c", "unit"]}))
    bnp = c["heart_failure"][orow] & (rng.random(n) < 0.25)
    parts.append(pd.DataFrame({"member_id": ids[orow[bnp]], "time": otime[bnp], "code": lab.loc["bnp", "loinc"],
                               "value": np.round(np.exp(np.log(250) + 0.5 * dk[bnp] + rng.normal(0, 0.6, bnp.sum()))),
                               "unit": lab.loc["bnp", "unit"]}))
    return pd.concat(parts, ignore_index=True)


def _reviews(rng, sim: Simulation, stays, ids, block: int) -> pd.DataFrame:
    codes = reference()["review_codes"]
    first = stays[~stays["transfer_in"].to_numpy()]
    planned = first["kind"].to_numpy() > 0
    pcode = first["reason"].map({"chemotherapy": "3E04305", "staged_pci": "027034Z", "rehabilitation": "F07M6ZZ",
                                 "joint_replacement": "27447"}).to_numpy()
    dx = first["reason"].map(reference()["acute_conditions"].set_index("condition")["icd10cm"]).to_numpy()
    n1 = len(first)
    received = np.where(planned, first["admit"].to_numpy() - rng.integers(5, 21, n1) * DAY,
                        first["admit"].to_numpy() + rng.integers(1, 21, n1) * HOUR)
    urgent = np.where(planned, rng.random(n1) < 0.15, rng.random(n1) < 0.70)
    stay_req = pd.DataFrame({"row": first["row"].to_numpy(), "received_time": received,
                             "service_type": "inpatient_admission", "code": np.where(planned, pcode, dx),
                             "urgency": np.where(urgent, "expedited", "standard")})
    # independent requests while enrolled
    lob_rate = np.array([0.35, 0.20, 0.25, 0.40])[sim.m.lob] / 12
    count = rng.poisson(lob_rate[:, None] * sim.pop.covered)
    r, k = np.nonzero(count)
    r, k = np.repeat(r, count[r, k]), np.repeat(k, count[r, k])
    w = codes["weight"].to_numpy(float)
    pick = rng.choice(len(codes), size=len(r), p=w / w.sum())
    t = sim.ms[k] + (rng.random(len(r)) * 28 * DAY).astype("timedelta64[s]")
    other = pd.DataFrame({"row": r, "received_time": t, "service_type": codes["service_type"].to_numpy()[pick],
                          "code": codes["code"].to_numpy()[pick],
                          "urgency": np.where(rng.random(len(r)) < 0.12, "expedited", "standard")})
    req = pd.concat([stay_req, other], ignore_index=True)
    t = req["received_time"].to_numpy()
    alive = np.isnat(sim.death_time[req["row"]]) | (t < sim.death_time[req["row"]])
    req = req[alive & (t < sim.sim_end) & (t >= sim.sim_start)].sort_values("received_time").reset_index(drop=True)
    age_h = (sim.sim_end - req["received_time"].to_numpy()) / HOUR
    limit = np.where(req["urgency"] == "expedited", 72, 168)
    u = rng.random(len(req))
    status = np.where(age_h < limit, np.where(u < 0.6, "open", np.where(u < 0.9, "in_review", "pended")),
                      np.where(u < 0.95, "closed", "withdrawn"))
    return pd.DataFrame({"request_id": [f"R{block:04d}{i:07d}" for i in range(len(req))],
                         "member_id": ids[req["row"]], "received_time": req["received_time"],
                         "service_type": req["service_type"], "code": req["code"], "urgency": req["urgency"],
                         "status": status})


def _truth(sim: Simulation, stays: pd.DataFrame, ids: np.ndarray) -> dict[str, pd.DataFrame]:
    all_stays = sim.rec.frame("stays")
    unplanned = all_stays[(all_stays["kind"] == 0) & ~all_stays["transfer_in"]][["row", "admit"]].sort_values("admit")
    d0 = stays["discharge"].to_numpy().astype("datetime64[D]").astype("datetime64[s]")
    left = pd.DataFrame({"row": stays["row"].to_numpy(), "start": d0 + 2 * DAY, "i": np.arange(len(stays))})
    m = pd.merge_asof(left.sort_values("start"), unplanned, left_on="start", right_on="admit", by="row",
                      direction="forward").sort_values("i")
    readmitted = (m["admit"].to_numpy() < d0 + 31 * DAY)
    observed = d0 + 31 * DAY <= sim.sim_end
    readm = pd.DataFrame({
        "encounter_id": stays["encounter_id"], "member_id": ids[stays["row"]],
        "discharge_time": stays["discharge"].astype("datetime64[us]"),
        "planned": stays["kind"].to_numpy() > 0, "transfer_in": stays["transfer_in"],
        "chain_final": stays["final"], "discharge_disposition": stays["disposition"],
        "follow_up_7d": stays["follow_up"], "p_excess": stays["p_excess"], "p_readmit_30d": stays["p_readmit"],
        "readmitted_30d": np.where(observed, readmitted, False), "observed_30d": observed,
    })
    at = sim.rec.frame("admission_truth")
    k = np.searchsorted(sim.ms, at["as_of"].to_numpy(), side="right") - 1
    at = at[sim.pop.covered[at["row"].to_numpy(), k]].reset_index(drop=True)
    left = at.assign(i=np.arange(len(at))).sort_values("as_of")
    m = pd.merge_asof(left, unplanned, left_on="as_of", right_on="admit", by="row",
                      direction="forward").sort_values("i")
    horizon = at["as_of"].to_numpy() + TRUTH_HORIZON_DAYS * DAY
    adm = pd.DataFrame({
        "member_id": ids[at["row"]], "as_of": at["as_of"].astype("datetime64[us]"),
        "p_admit_180d": at["p"].to_numpy(),
        "admitted_180d": m["admit"].to_numpy() < horizon, "observed_180d": horizon <= sim.sim_end,
        "line_of_business": np.array(["medicare", "medicaid", "commercial", "dual"], dtype=object)[
            sim.m.lob[at["row"]]],
    })
    return {"readmission": readm, "admission": adm}


# ---------------------------------------------------------------------------------------------- statistics
def block_stats(sim: Simulation, tables: dict[str, pd.DataFrame], truth: dict[str, pd.DataFrame]) -> dict:
    """What the realism summary needs from a block, in a form that merges across blocks."""
    lob_names = ["medicare", "medicaid", "commercial", "dual"]
    lob = sim.m.lob
    enc = tables["encounters"]
    inp = enc[(enc["setting"] == "inpatient")]
    tr = truth["readmission"]
    first_stays = inp[~inp["encounter_id"].isin(tr.loc[tr["transfer_in"], "encounter_id"])]
    lob_of = dict(zip(tables["members"]["member_id"], np.array(lob_names, dtype=object)[lob], strict=True))
    adm_lob = first_stays["member_id"].map(lob_of).value_counts()
    # member-years enrolled and alive
    months_alive = np.ones_like(sim.pop.covered)
    dead = ~np.isnat(sim.death_time)
    kdeath = np.searchsorted(sim.ms, sim.death_time[dead], side="right") - 1
    rows = np.flatnonzero(dead)
    for r, kd in zip(rows, kdeath, strict=True):
        months_alive[r, kd + 1:] = 0
    exposure = (sim.pop.covered & months_alive.astype(bool)).sum(axis=1) / 12
    ed = enc[enc["setting"] == "emergency"]["member_id"].map(lob_of).value_counts()
    idx = tr["chain_final"] & tr["observed_30d"] & tr["p_readmit_30d"].notna()
    adm = truth["admission"]
    adm = adm[adm["observed_180d"]]
    return {
        "members": sim.n,
        "rows": {k: len(v) for k, v in tables.items()},
        "member_years": {n: float(exposure[lob == i].sum()) for i, n in enumerate(lob_names)},
        "members_by_lob": {n: int((lob == i).sum()) for i, n in enumerate(lob_names)},
        "deaths": {n: int((dead & (lob == i)).sum()) for i, n in enumerate(lob_names)},
        "admissions": {n: int(adm_lob.get(n, 0)) for n in lob_names},
        "ed_visits": {n: int(ed.get(n, 0)) for n in lob_names},
        "prevalence_65": {c: float(sim.pop.conditions[(sim.m.age0 >= 65) & ((lob == 0) | (lob == 3)), j].sum())
                          for j, c in enumerate(sim.pop.condition_names)},
        "n_65": int(((sim.m.age0 >= 65) & ((lob == 0) | (lob == 3))).sum()),
        "readmit_p": tr.loc[idx, "p_readmit_30d"].to_numpy(),
        "readmit_y": tr.loc[idx, "readmitted_30d"].to_numpy(),
        "readmit_planned": tr.loc[idx, "planned"].to_numpy(),
        "admit_p": adm["p_admit_180d"].to_numpy(),
        "admit_y": adm["admitted_180d"].to_numpy(),
    }


def merge_stats(stats: list[dict]) -> dict:
    out: dict = {}
    for s in stats:
        for k, v in s.items():
            if isinstance(v, dict):
                d = out.setdefault(k, {})
                for kk, vv in v.items():
                    d[kk] = d.get(kk, 0) + vv
            elif isinstance(v, np.ndarray):
                out.setdefault(k, []).append(v)
            else:
                out[k] = out.get(k, 0) + v
    for k, v in out.items():
        if isinstance(v, list):
            out[k] = np.concatenate(v)
    return out
