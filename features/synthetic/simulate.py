"""Simulate a block of members month by month and record what a health plan would see.

Hospital stays, deaths and readmissions come from the hazards in ``risk.py``; this module turns them
into stays (reason, length, procedures, labs, disposition, transfers), planned admissions (maintenance
chemotherapy cycles, staged PCI after a heart attack, rehabilitation after a stroke, elective joint
replacement) and everything around them: emergency, office, telehealth, outpatient, observation, SNF,
home-health and hospice encounters, pharmacy fills, labs, and prior-authorization review requests.
All times are ``datetime64[s]``; the events are drawn with one generator so a seed fixes the result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from umrisk.features.synthetic import risk
from umrisk.features.synthetic.population import Population, reference
from umrisk.features.synthetic.risk import Members

DAY = np.timedelta64(86400, "s")
HOUR = np.timedelta64(3600, "s")
FAR = np.datetime64("2200-01-01T00:00:00", "s")
NAT = np.datetime64("NaT", "s")
PLANNED = {1: "chemotherapy", 2: "staged_pci", 3: "rehabilitation", 4: "joint_replacement"}
PLANNED_DX = {"chemotherapy": "Z5111", "staged_pci": "I2510", "rehabilitation": "Z5189",
              "joint_replacement": "M1712"}
FOLLOW_UP = np.array([0.55, 0.35, 0.50, 0.45])  # by line of business
TRUTH_HORIZON_DAYS = 180


def _day(t: np.ndarray) -> np.ndarray:
    return t.astype("datetime64[D]").astype("datetime64[s]")


def _take(m: Members, idx: np.ndarray) -> Members:
    return Members(m.age0[idx], m.lob[idx], m.burden[idx], m.n_conditions[idx], m.z[idx])


@dataclass
class Recorder:
    """Columns of each output, appended batch by batch and joined once at the end."""

    parts: dict[str, list[dict[str, np.ndarray]]] = field(default_factory=dict)

    def add(self, name: str, **cols: np.ndarray) -> None:
        self.parts.setdefault(name, []).append(cols)

    def frame(self, name: str) -> pd.DataFrame:
        chunks = self.parts.get(name, [])
        if not chunks:
            return pd.DataFrame()
        return pd.DataFrame({k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]})


class Simulation:
    """State of one block of members during the simulation."""

    def __init__(self, rng: np.random.Generator, pop: Population, month_starts: np.ndarray, months: int):
        self.rng, self.pop, self.m = rng, pop, pop.state
        self.ms = month_starts  # months + 8 boundaries (the truth looks up to 180 days past the end)
        self.months = months
        self.sim_start = month_starts[0]
        self.sim_end = month_starts[months]
        n = len(pop.state.age0)
        self.n = n
        self.ref = reference()
        self.cond = {c: pop.conditions[:, j] for j, c in enumerate(pop.condition_names)}
        # the hidden decline chain is drawn up front: it depends on nothing else
        p01 = risk.decline_entry(self.m)
        horizon = len(month_starts) - 1
        self.decline = np.zeros((n, horizon), dtype=np.int8)
        d = (rng.random(n) < p01 / (p01 + risk.DECLINE_EXIT)).astype(np.int8)
        for k in range(horizon):
            self.decline[:, k] = d
            u = rng.random(n)
            d = np.where(d == 1, u >= risk.DECLINE_EXIT, u < p01).astype(np.int8)
        self.alive = np.ones(n, dtype=bool)
        self.death_time = np.full(n, NAT)
        self.cursor = np.full(n, month_starts[0])       # no event can happen before this
        self.gap_end = np.full(n, month_starts[0])      # no admission hazard before this
        self.window_end = np.full(n, month_starts[0])   # end of the current post-discharge window
        self.last_discharge = np.full(n, month_starts[0])
        self.p_excess_last = np.zeros(n)
        self.pending = np.full(n, FAR)                  # drawn excess readmission
        self.planned = np.full(n, FAR)
        self.planned_kind = np.zeros(n, dtype=np.int8)
        self.chemo_left = np.zeros(n, dtype=np.int16)
        self.hospice = np.zeros(n, dtype=bool)
        self.excite_value = np.zeros(n)
        self.excite_time = np.full(n, month_starts[0])
        self.excite_month = np.zeros(n)
        self.recent_adm = np.full((n, 3), NAT)          # last three unplanned admissions
        self.ed_times = np.full((n, 4), NAT)            # last four emergency visits
        self.rec = Recorder()
        self.stay_counter = 0
        # a scenario may scale the admission hazard (rows, month start) -> factor; the truth ignores it
        self.admission_factor: Callable[[np.ndarray, np.datetime64], np.ndarray] | None = None
        self._schedule_background_planned()

    # ---------------------------------------------------------------- planned admissions
    def _schedule_background_planned(self) -> None:
        rng, n = self.rng, self.n
        span_days = (self.sim_end - self.sim_start) / DAY
        cancer = self.cond["cancer"] & (rng.random(n) < 0.15)
        t = self.sim_start + (rng.random(n) * span_days * DAY).astype("timedelta64[s]")
        self.planned = np.where(cancer, t, self.planned)
        self.planned_kind = np.where(cancer, 1, self.planned_kind).astype(np.int8)
        self.chemo_left = np.where(cancer, rng.integers(3, 7, n), 0).astype(np.int16)
        older = self.m.age0 > 55
        joint = ~cancer & older & (rng.random(n) < 0.006 * span_days / 365.25)
        t2 = self.sim_start + (rng.random(n) * span_days * DAY).astype("timedelta64[s]")
        self.planned = np.where(joint, t2, self.planned)
        self.planned_kind = np.where(joint, 4, self.planned_kind).astype(np.int8)

    # ---------------------------------------------------------------- the month loop
    def run(self) -> None:
        for k in range(self.months):
            self._month(k)

    def _month(self, k: int) -> None:
        rng = self.rng
        lo, hi = self.ms[k], self.ms[k + 1]
        years = risk.years_since(lo, self.sim_start)
        dk = self.decline[:, k]
        self.excite_month = risk.excite_at(self.excite_value, self.excite_time, lo)
        self._emergency_visits(k, lo, hi, years, dk)
        self._admission_truth(k, lo)
        todo = self.alive.copy()
        while todo.any():
            idx = np.flatnonzero(todo)
            sub = _take(self.m, idx)
            la = risk.admission_hazard(sub, years, dk[idx], self.excite_month[idx], self.hospice[idx])
            if self.admission_factor is not None:
                la = la * self.admission_factor(idx, lo)
            ld = risk.death_hazard(sub, years, dk[idx], self.hospice[idx])
            cur = np.maximum(self.cursor[idx], lo)
            start_a = np.maximum(cur, self.gap_end[idx])
            ta = start_a + (rng.exponential(1.0 / la) * DAY).astype("timedelta64[s]")
            ta = np.where(start_a < hi, ta, FAR)
            td = cur + (rng.exponential(1.0 / ld) * DAY).astype("timedelta64[s]")
            td = np.where(self.pending[idx] < FAR, FAR, td)
            te = np.where(self.pending[idx] < FAR, np.maximum(self.pending[idx], start_a), FAR)
            tp = np.where(self.planned[idx] < FAR, np.maximum(self.planned[idx], start_a), FAR)
            times = np.stack([ta, td, te, tp], axis=1)
            which = times.argmin(axis=1)
            nxt = times[np.arange(len(idx)), which]
            hit = nxt < hi
            todo[:] = False
            if not hit.any():
                break
            who, what, when = idx[hit], which[hit], nxt[hit]
            died = what == 1
            self._die(who[died], when[died])
            a_who, a_what, a_when = who[~died], what[~died], when[~died]
            kinds = np.where(a_what == 3, self.planned_kind[a_who], 0).astype(np.int8)
            # any unplanned admission ends a pending excess readmission (it is the readmission)
            self.pending[a_who[a_what != 3]] = FAR
            self.planned[a_who[a_what == 3]] = FAR
            self._admit(a_who, a_when, kinds, k)
            todo[a_who] = self.alive[a_who]
        self._other_encounters(k, lo, hi, years, dk)

    def _die(self, who: np.ndarray, when: np.ndarray) -> None:
        self.alive[who] = False
        self.death_time[who] = when

    # ---------------------------------------------------------------- stays
    def _admit(self, who: np.ndarray, when: np.ndarray, kind: np.ndarray, k: int, transfer_in: np.ndarray | None = None,
               reason_in: np.ndarray | None = None) -> None:
        if len(who) == 0:
            return
        rng, ref = self.rng, self.ref
        nb = len(who)
        transfer_in = np.zeros(nb, dtype=bool) if transfer_in is None else transfer_in
        acute = ref["acute_conditions"]
        planned = kind > 0
        # reason for the stay
        if reason_in is None:
            w = np.tile(acute["base_weight"].to_numpy(float), (nb, 1))
            for j, row in enumerate(acute.itertuples(index=False)):
                if isinstance(row.driver, str) and row.driver:
                    w[:, j] *= np.where(self.cond[row.driver][who], row.driver_or, 1.0)
            w /= w.sum(axis=1, keepdims=True)
            reason = (w.cumsum(axis=1) > rng.random(nb)[:, None]).argmax(axis=1)
        else:
            reason = reason_in
        rname = np.where(planned, np.array(["", *PLANNED.values()], dtype=object)[kind],
                         acute["condition"].to_numpy()[reason])
        sub = _take(self.m, who)
        years = risk.years_since(when, self.sim_start)
        age10 = sub.age10(years)
        mk = np.minimum(np.searchsorted(self.ms, when, side="right") - 1, self.decline.shape[1] - 1)
        dk = self.decline[who, mk]
        med = np.where(planned, 2.0, acute["los_median"].to_numpy()[reason])
        med = np.where(kind == 3, 11.0, med)
        los = np.maximum(1, np.round(np.exp(np.log(med) + 0.08 * age10 + 0.10 * sub.burden + 0.2 * dk
                                            + rng.normal(0, 0.45, nb)))).astype(int)
        los = np.where(kind == 2, rng.integers(1, 3, nb), los)
        admit = when
        discharge = _day(admit) + los * DAY + (rng.integers(9, 17, nb) * HOUR)
        mort = np.where(planned, 0.002, acute["mortality"].to_numpy()[reason])
        died = rng.random(nb) < mort * np.exp(0.3 * age10 + 0.3 * dk + 0.15 * sub.burden)
        disp = self._disposition(who, rname, age10, planned, transfer_in, died)
        emergency = ~planned & (rng.random(nb) < 0.78)
        adm_type = np.where(planned, "elective", np.where(transfer_in, "urgent",
                                                          np.where(emergency, "emergency", "urgent")))
        instability = rng.standard_normal(nb)  # clinical instability at discharge, shows in the labs
        labs = self._stay_labs(who, rname, dk, discharge, instability)
        facility = np.where(transfer_in, "F9" + (who % 7).astype(str), "F" + (who % 23).astype(str).astype(object))
        cost = np.where(planned, 9000.0, acute["cost"].to_numpy()[reason]) * np.exp(0.12 * (los - med)) \
            * rng.lognormal(0, 0.25, nb)
        ids = np.arange(self.stay_counter, self.stay_counter + nb)
        self.stay_counter += nb
        final = disp != "transfer_acute"
        live_final = final & ~died
        # post-discharge: follow-up visit, excess readmission, truth
        fu = live_final & (disp != "hospice") & (rng.random(nb) < FOLLOW_UP[sub.lob] + 0.1 * (disp == "home_health"))
        fu_time = _day(discharge) + rng.integers(2, 8, nb) * DAY + rng.integers(8, 17, nb) * HOUR
        prior = ((self.recent_adm[who] > (admit - 365 * DAY)[:, None]) & (self.recent_adm[who] < admit[:, None])).sum(1)
        ed180 = ((self.ed_times[who] > (admit - 180 * DAY)[:, None]) & (self.ed_times[who] < admit[:, None])).sum(1)
        onc = self.cond["cancer"][who] | (rname == "chemotherapy")
        p_exc = risk.excess_readmission_probability(
            age10=age10, los_days=los.astype(float), emergency=adm_type == "emergency",
            disposition=disp, hemoglobin=labs["hemoglobin"], sodium=labs["sodium"], egfr=labs["egfr"],
            bnp=np.nan_to_num(labs["bnp"], nan=0.0), heart_failure=self.cond["heart_failure"][who],
            copd=self.cond["copd"][who], ckd=self.cond["ckd"][who], low_income=np.isin(sub.lob, [1, 3]),
            prior_admissions_365=prior, ed_visits_180=ed180,
            drug_classes=self.pop.n_drug_classes[who], oncology=onc, decline=dk, z=sub.z,
            follow_up_7d=fu, planned=planned)
        # state after discharge
        self.hospice[who] |= live_final & (disp == "hospice")
        unplanned = ~planned & ~transfer_in
        old_val, old_time = self.excite_value[who].copy(), self.excite_time[who].copy()
        exc_now = risk.excite_at(old_val, old_time, discharge) + 1.0
        self.excite_value[who] = np.where(unplanned, exc_now, old_val)
        self.excite_time[who] = np.where(unplanned, discharge, old_time)
        self.recent_adm[who] = np.where(unplanned[:, None],
                                        np.concatenate([self.recent_adm[who][:, 1:], admit[:, None]], axis=1),
                                        self.recent_adm[who])
        d0 = _day(discharge)
        self.cursor[who] = discharge
        self.gap_end[who] = d0 + risk.READMIT_GAP_DAYS * DAY
        self.window_end[who] = np.where(live_final, d0 + 31 * DAY, self.window_end[who])
        self.last_discharge[who] = np.where(live_final, discharge, self.last_discharge[who])
        self.p_excess_last[who] = np.where(live_final, p_exc, self.p_excess_last[who])
        draw = live_final & (rng.random(nb) < p_exc)
        day = rng.choice(risk.READMIT_DAYS, size=nb, p=risk.READMIT_DAY_P)
        self.pending[who] = np.where(draw, d0 + day * DAY + rng.integers(0, 24, nb) * HOUR, FAR)
        # truth: p_excess + (1 - p_excess) * P(general admission in days 2..30)
        p_true = np.full(nb, np.nan)
        if live_final.any():
            sel = np.flatnonzero(live_final)
            w = who[sel]
            mstart = self.ms[mk[sel]]
            excite_month = np.where(mk[sel] == k, self.excite_month[w],
                                    risk.excite_at(old_val[sel], old_time[sel], mstart))
            pgen = risk.p_unplanned_window(
                _take(self.m, w), now=discharge[sel], start=d0[sel] + 2 * DAY, end=d0[sel] + 31 * DAY,
                decline_now=dk[sel], excite_month=excite_month, excite_value=self.excite_value[w],
                excite_time=self.excite_time[w], hospice=self.hospice[w], month_starts=self.ms,
                sim_start=self.sim_start)
            p_true[sel] = p_exc[sel] + (1 - p_exc[sel]) * pgen
        self._schedule_after(who, rname, discharge, live_final)
        self.rec.add("stays", stay=ids, row=who, admit=admit, discharge=discharge, reason=rname.astype(object),
                     kind=kind, admission_type=adm_type.astype(object), disposition=disp.astype(object),
                     facility=facility.astype(object), paid=cost, transfer_in=transfer_in, final=final,
                     p_excess=np.where(live_final, p_exc, np.nan), p_readmit=p_true, follow_up=fu,
                     hb=labs["hemoglobin"], na=labs["sodium"], creat=labs["creatinine"], egfr=labs["egfr"],
                     bnp=labs["bnp"])
        if fu.any():
            self.rec.add("visits", row=who[fu], time=fu_time[fu], setting=np.full(fu.sum(), "office", dtype=object),
                         end=fu_time[fu] + HOUR)
        self._post_acute(who, disp, discharge, live_final)
        if died.any():
            self._die(who[died], discharge[died])
        tr = disp == "transfer_acute"
        if tr.any():
            self._admit(who[tr], discharge[tr], kind[tr], k, transfer_in=np.ones(tr.sum(), dtype=bool),
                        reason_in=reason[tr])

    def _disposition(self, who, rname, age10, planned, transfer_in, died) -> np.ndarray:
        rng, nb = self.rng, len(who)
        old = age10 >= 1.0
        neuro_ortho = np.isin(rname, ["stroke", "hip_fracture", "joint_replacement"])
        lob = self.m.lob[who]
        young_risky = (age10 < -1.5) & ((lob == 1) | self.cond["depression"][who])
        w = np.stack([
            np.ones(nb),                                                         # home
            0.10 + 0.25 * (age10 >= 0),                                          # home_health
            0.03 + 0.22 * old + 0.45 * neuro_ortho + 0.10 * self.cond["dementia"][who],  # snf
            0.02 + 0.30 * neuro_ortho,                                           # rehab
            np.where(transfer_in | planned, 0.0, 0.03),                          # transfer_acute
            0.012 + 0.06 * young_risky,                                          # ama
            0.006 + 0.10 * (self.cond["cancer"][who] & old) + 0.06 * self.cond["dementia"][who],  # hospice
            np.full(nb, 0.012),                                                  # other
        ], axis=1)
        w[planned, 5:7] *= 0.1
        names = np.array(["home", "home_health", "snf", "rehab", "transfer_acute", "ama", "hospice", "other"],
                         dtype=object)
        w /= w.sum(axis=1, keepdims=True)
        pick = (w.cumsum(axis=1) > rng.random(nb)[:, None]).argmax(axis=1)
        return np.where(died, "expired", names[pick])

    def _stay_labs(self, who, rname, dk, discharge, instability) -> dict[str, np.ndarray]:
        rng, nb, c = self.rng, len(who), self.cond
        male = (self.pop.members["sex"].to_numpy()[who] == "M")
        z = self.m.z[who]
        hb = rng.normal(12.9 + 0.9 * male - 0.9 * c["ckd"][who] - 0.7 * c["cancer"][who] - 0.6 * dk
                        - 2.2 * (rname == "gi_bleed") - 0.6 * (rname == "sepsis") - 0.3 * z
                        - 0.9 * instability, 1.0)
        na = rng.normal(139.0 - 1.3 * c["heart_failure"][who] - 1.5 * dk - 1.2 * (rname == "dehydration")
                        - 0.3 * z - 2.5 * instability, 2.5)
        creat = np.exp(np.log(0.85 + 0.2 * male) + 0.55 * c["ckd"][who] + 0.55 * (rname == "aki") + 0.1 * dk
                       + 0.12 * instability + rng.normal(0, 0.18, nb))
        age = self.m.age0[who] + risk.years_since(discharge, self.sim_start)
        egfr = ckd_epi_2021(creat, np.maximum(age, 18), male)
        measured = c["heart_failure"][who] | np.isin(rname, ["hf_exacerbation", "ami", "afib_rvr"])
        bnp = np.where(measured, np.exp(np.log(70) + 1.6 * c["heart_failure"][who]
                                        + 0.9 * (rname == "hf_exacerbation") + 0.2 * np.clip(age - 65, 0, 30) / 10
                                        + 0.3 * dk + 0.3 * instability + rng.normal(0, 0.6, nb)), np.nan)
        return {"hemoglobin": np.round(hb, 1), "sodium": np.round(na), "creatinine": np.round(creat, 2),
                "egfr": np.round(egfr), "bnp": np.round(bnp)}

    def _schedule_after(self, who, rname, discharge, live_final) -> None:
        rng, nb = self.rng, len(who)
        free = live_final & (self.planned[who] >= FAR)
        pci = free & (rname == "ami") & (rng.random(nb) < 0.25)
        rehab = free & (rname == "stroke") & (rng.random(nb) < 0.12)
        chemo = live_final & (rname == "chemotherapy")
        self.chemo_left[who[chemo]] -= 1
        chemo &= self.chemo_left[who] > 0
        d0 = _day(discharge)
        when = np.where(pci, d0 + rng.integers(14, 43, nb) * DAY,
                        np.where(rehab, d0 + rng.integers(3, 8, nb) * DAY, d0 + rng.integers(21, 29, nb) * DAY))
        when = when + rng.integers(7, 12, nb) * HOUR
        go = pci | rehab | chemo
        self.planned[who[go]] = when[go]
        self.planned_kind[who[go]] = np.where(pci, 2, np.where(rehab, 3, 1))[go]

    def _post_acute(self, who, disp, discharge, live_final) -> None:
        rng = self.rng
        snf = live_final & (disp == "snf")
        if snf.any():
            n = snf.sum()
            self.rec.add("visits", row=who[snf], time=discharge[snf],
                         setting=np.full(n, "snf", dtype=object),
                         end=_day(discharge[snf]) + rng.integers(7, 30, n) * DAY + 10 * HOUR)
        hh = live_final & (disp == "home_health")
        if hh.any():
            rows = np.repeat(who[hh], 4)
            t = np.repeat(_day(discharge[hh]), 4) + (np.tile(np.arange(4), hh.sum()) * 7 + 3) * DAY + 10 * HOUR
            self.rec.add("visits", row=rows, time=t, setting=np.full(len(rows), "home_health", dtype=object),
                         end=t + HOUR)
        hs = live_final & (disp == "hospice")
        if hs.any():
            self.rec.add("visits", row=who[hs], time=discharge[hs], setting=np.full(hs.sum(), "hospice", dtype=object),
                         end=np.full(hs.sum(), NAT))

    # ---------------------------------------------------------------- other encounters
    def _emergency_visits(self, k, lo, hi, years, dk) -> None:
        rng = self.rng
        days = (hi - lo) / DAY
        rate = risk.emergency_rate(self.m, years, dk) * days
        count = rng.poisson(rate) * self.alive
        rows = np.repeat(np.arange(self.n), count)
        t = lo + (rng.random(len(rows)) * days * DAY).astype("timedelta64[s]")
        order = np.lexsort((t, rows))
        rows, t = rows[order], t[order]
        for r, tt in zip(rows, t, strict=True):  # rare enough (a few per hundred members a month)
            self.ed_times[r] = np.concatenate([self.ed_times[r][1:], [tt]])
        obs = rng.random(len(rows)) < 0.12
        self.rec.add("visits", row=rows, time=t, setting=np.where(obs, "observation", "emergency").astype(object),
                     end=t + np.where(obs, 30, 5) * HOUR)

    def _other_encounters(self, k, lo, hi, years, dk) -> None:
        rng = self.rng
        days = (hi - lo) / DAY
        office = risk.office_rate(self.m, years, dk) * days
        for setting, rate, dur in (("office", office * 0.85, 1), ("telehealth", office * 0.15, 1),
                                   ("outpatient", office * 0.18, 2)):
            count = rng.poisson(rate)
            rows = np.repeat(np.arange(self.n), count)
            t = lo + (rng.random(len(rows)) * days * DAY).astype("timedelta64[s]")
            self.rec.add("visits", row=rows, time=t, setting=np.full(len(rows), setting, dtype=object),
                         end=t + dur * HOUR)

    # ---------------------------------------------------------------- truth for admission risk
    def _admission_truth(self, k, lo) -> None:
        ok = self.alive & (self.cursor <= lo)
        idx = np.flatnonzero(ok)
        if len(idx) == 0:
            return
        start = np.maximum(lo, self.gap_end[idx])
        end = np.full(len(idx), lo + TRUTH_HORIZON_DAYS * DAY)
        pgen = risk.p_unplanned_window(
            _take(self.m, idx), now=np.full(len(idx), lo), start=start, end=end, decline_now=self.decline[idx, k],
            excite_month=self.excite_month[idx], excite_value=self.excite_value[idx],
            excite_time=self.excite_time[idx], hospice=self.hospice[idx], month_starts=self.ms,
            sim_start=self.sim_start)
        in_window = lo < self.window_end[idx]
        elapsed = np.clip(((lo - _day(self.last_discharge[idx])) / DAY).astype(int), 0, 31)
        before = np.concatenate([[0.0], risk.READMIT_DAY_CDF])[np.clip(elapsed - 2, 0, len(risk.READMIT_DAYS))]
        p = self.p_excess_last[idx]
        years = risk.years_since(lo, self.sim_start)
        ld = risk.death_hazard(_take(self.m, idx), years, self.decline[idx, k], self.hospice[idx])
        survived = np.exp(-ld * (lo - self.last_discharge[idx]) / DAY)
        q = np.where(in_window, p * (1 - before) / np.maximum(p * (1 - before) + (1 - p) * survived, 1e-12), 0.0)
        self.rec.add("admission_truth", row=idx, as_of=np.full(len(idx), lo), p=q + (1 - q) * pgen)


def ckd_epi_2021(creatinine: np.ndarray, age: np.ndarray, male: np.ndarray) -> np.ndarray:
    """eGFR (mL/min/1.73 m2) by the race-free CKD-EPI 2021 creatinine equation (Inker et al., NEJM 2021)."""
    kappa = np.where(male, 0.9, 0.7)
    alpha = np.where(male, -0.302, -0.241)
    ratio = creatinine / kappa
    return (142 * np.minimum(ratio, 1) ** alpha * np.maximum(ratio, 1) ** -1.200 * 0.9938 ** age
            * np.where(male, 1.0, 1.012))
