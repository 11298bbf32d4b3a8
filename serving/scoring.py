"""Scoring members, ordering review queues and building outreach lists, with no HTTP in sight.

At start-up the current population is scored once with the features package (the same
``build_features`` as training), for each model the points its task says can be scored on the scoring date
(the same eligibility as its training cohort: for a member-month task every member alive, enrolled over
the look-back and not in hospital; for a discharge task each member's latest index discharge whose window
is still open). Requests for those members at the default date read the cached rows; other dates and
inline histories go through the same task and features. A member who cannot be scored gets the reason.
Percentiles are against the current population's scores. No model is named here: the models served are
the ones the service was given.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from umrisk.features.build import build_features
from umrisk.features.cohorts import data_end, data_start
from umrisk.features.events import MemberCodes
from umrisk.features.spec import ModelSpec
from umrisk.features.tasks import task_for
from umrisk.serving.prioritize import deadlines, queue_order
from umrisk.serving.reasons import Explainer
from umrisk.training.registry import UmriskModel

OPEN_STATUSES = ("open", "in_review", "pended")
PROBABILITY_DECIMALS = 6  # a served (and stored) probability is rounded to this many decimals
STEPS = ("expedite clinical review", "plan transitional care at discharge", "refer to care management",
         "routine review")
HOSPICE_LOOKBACK = pd.Timedelta(days=180)


@dataclass
class LoadedModel:
    name: str
    version: str
    wrapped: UmriskModel
    spec: ModelSpec
    trained_from: str
    trained_to: str
    metrics: dict

    @property
    def catalog(self) -> dict[str, dict]:
        return {c["name"]: c for c in self.wrapped.catalog}


class MemberIndex:
    """Rows of every table grouped by member, so one member's history is a slice, not a scan."""

    def __init__(self, store: dict[str, pd.DataFrame]):
        self.store = store
        self.codes = MemberCodes(store["members"]["member_id"])
        self._rows: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        n = len(self.codes.categories)
        for name, df in store.items():
            code = self.codes.encode(df["member_id"])
            order = np.argsort(code, kind="stable")
            bounds = np.searchsorted(code[order], np.arange(n + 1))
            self._rows[name] = (order, bounds)

    def known(self, member_ids: list[str]) -> np.ndarray:
        return self.codes.categories.get_indexer(pd.Index(member_ids)) >= 0

    def subset(self, member_ids: list[str]) -> dict[str, pd.DataFrame]:
        codes = self.codes.categories.get_indexer(pd.Index(member_ids))
        codes = codes[codes >= 0]
        out = {}
        for name, df in self.store.items():
            order, bounds = self._rows[name]
            rows = np.concatenate([order[bounds[c]:bounds[c + 1]] for c in codes]) if len(codes) else np.zeros(0, int)
            out[name] = df.iloc[np.sort(rows)]
        return out


class OutOfRange(ValueError):
    """A scoring date outside the data the store holds."""


def _category_counts(reasons: dict[str, tuple[str, str]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for category, _text in reasons.values():
        out[category] = out.get(category, 0) + 1
    return out


class Scorer:
    def __init__(self, store: dict[str, pd.DataFrame], models: dict[str, LoadedModel],
                 as_of: pd.Timestamp | None = None):
        self.store = store
        self.models = models
        # the dates the store covers; the default scoring date is its last day
        self.first_day = data_start(store)
        self.last_day = data_end(store) - pd.Timedelta(days=1)
        self.as_of = (as_of or self.last_day).normalize()
        self.index = MemberIndex(store)
        self.population = self._population()
        members = self.population["member_id"].tolist()
        self.explainers: dict[str, Explainer] = {}
        self.cache: dict[str, dict] = {}
        self.pop_scores: dict[str, np.ndarray] = {}
        self.not_scorable: dict[str, dict[str, int]] = {}
        for name, m in models.items():
            rm = m.wrapped.risk_model
            task = task_for(m.spec)
            self.explainers[name] = Explainer.from_catalog(rm.features, m.catalog, rm.levels_)
            sc = task.scorable(store, m.spec, members, self.as_of)
            if len(sc.points) == 0:
                raise ValueError(f"{name}: nobody in the store can be scored on {self.as_of.date()}")
            X = rm.matrix(build_features(store, sc.points, m.spec))
            p = self._calibrated(name, X)
            pts = sc.points
            # the current population as the model's float matrix: a cached score is a row look-up
            self.cache[name] = {"X": X, "p": p, "as_of": pts["as_of"].to_numpy(),
                                "member_id": pts["member_id"].to_numpy(), "reasons": sc.reasons,
                                "row": {mid: i for i, mid in enumerate(pts["member_id"])}}
            if task.outreach_list:  # what outreach filters on, aligned with the cached rows
                facts = self.population.set_index("member_id").loc[pts["member_id"]]
                self.cache[name]["hospice"] = facts["hospice"].to_numpy(dtype=bool)
                self.cache[name]["lob"] = facts["line_of_business"].to_numpy(dtype=object)
            self.pop_scores[name] = np.sort(p)
            self.not_scorable[name] = _category_counts(sc.reasons)

    # ------------------------------------------------------------------ population
    def _population(self) -> pd.DataFrame:
        """Every member with the facts outreach filters on beyond eligibility: hospice, line of business."""
        s = self.store
        m = s["members"][["member_id"]].copy()
        m["member_id"] = m["member_id"].astype("str")
        enr = s["enrollment"]
        span = enr[(enr["start_date"] <= self.as_of) & (enr["end_date"] >= self.as_of)]
        lob = span.assign(mid=span["member_id"].astype("str")).groupby("mid")["line_of_business"].last()
        enc = s["encounters"]
        recent = enc[(enc["admit_time"] >= self.as_of - HOSPICE_LOOKBACK) & (enc["admit_time"] <= self.as_of)]
        hospice = recent[(recent["setting"] == "hospice") | (recent["discharge_disposition"] == "hospice")]
        m["hospice"] = m["member_id"].isin(set(hospice["member_id"].astype("str")))
        m["line_of_business"] = m["member_id"].map(lob.astype("str")).fillna("unknown")
        return m.reset_index(drop=True)

    def check_date(self, when: pd.Timestamp, first: pd.Timestamp | None = None,
                   last: pd.Timestamp | None = None) -> pd.Timestamp:
        """``when`` as a day inside the data (the store's unless ``first``/``last`` say otherwise), else OutOfRange."""
        first, last = first or self.first_day, last or self.last_day
        day = pd.Timestamp(when).normalize()
        if not first <= day <= last:
            raise OutOfRange(f"as_of {day.date()} is outside the data, which covers {first.date()} to {last.date()}")
        return day

    # ------------------------------------------------------------------ scoring
    def percentile(self, model: str, p: np.ndarray) -> np.ndarray:
        pop = self.pop_scores[model]
        return np.round(100.0 * np.searchsorted(pop, p, side="right") / max(len(pop), 1), 1)

    def _calibrated(self, model: str, X: np.ndarray) -> np.ndarray:
        rm = self.models[model].wrapped.risk_model
        if len(X) == 0:
            return np.zeros(0)
        raw = rm.booster_.predict(X, num_iteration=rm.best_iteration_, num_threads=1 if len(X) <= 64 else 0)
        return rm.calibrator_.transform(raw) if rm.calibrator_ is not None else raw

    def _explain(self, model: str, X: np.ndarray, p: np.ndarray, member_ids, as_of, top: int) -> list[dict]:
        m = self.models[model]
        rm = m.wrapped.risk_model
        if top and len(X):  # LightGBM's pred_contrib fails on zero rows
            contrib = rm.booster_.predict(X, num_iteration=rm.best_iteration_, pred_contrib=True,
                                          num_threads=1 if len(X) <= 64 else 0)
            reasons = self.explainers[model].reasons(contrib, X, top)
        else:
            reasons = [[] for _ in range(len(X))]
        tiers = m.wrapped.tier(p)
        pct = self.percentile(model, p)
        return [{"member_id": str(member_ids[i]), "model": model, "model_version": m.version,
                 "as_of": pd.Timestamp(as_of[i]).to_pydatetime(),
                 "probability": round(float(p[i]), PROBABILITY_DECIMALS),
                 "tier": str(tiers[i]), "percentile": float(pct[i]), "reasons": reasons[i]} for i in range(len(X))]

    def _explain_frame(self, model: str, feats: pd.DataFrame, top: int) -> list[dict]:
        X = self.models[model].wrapped.risk_model.matrix(feats)
        return self._explain(model, X, self._calibrated(model, X), feats["member_id"].to_numpy(),
                             feats["as_of"].to_numpy(), top)

    @staticmethod
    def _not_scorable(mid: str, when: pd.Timestamp, why: tuple[str, str] | None) -> dict:
        text = why[1] if why else "not scorable"
        return {"member_id": mid, "error": f"not scorable on {when.date()}: {text}",
                "not_scorable": why[0] if why else "unknown"}

    def score(self, model: str, member_ids: list[str], as_of: pd.Timestamp | None = None, top: int = 3) -> list[dict]:
        """One entry per requested id, in order: a score, or an error for that member alone (unknown, or not
        scorable at the date by the model's task, with the reason). A date outside the data is OutOfRange."""
        when = self.as_of if as_of is None else self.check_date(as_of)
        results: dict[str, dict] = {}
        known = self.index.known(member_ids)
        for mid, ok in zip(member_ids, known, strict=True):
            if not ok:
                results[mid] = {"member_id": mid, "error": "unknown member", "not_scorable": "unknown member"}
        wanted = list(dict.fromkeys(mid for mid, ok in zip(member_ids, known, strict=True) if ok))
        if wanted:
            scored, reasons = (self._cached(model, wanted, top) if when == self.as_of
                               else self._on_demand(model, wanted, when, top))
            for r in scored:
                results[r["member_id"]] = r
            for mid in wanted:
                if mid not in results:
                    results[mid] = self._not_scorable(mid, when, reasons.get(mid))
        return [results[mid] for mid in member_ids]

    def answered(self, model: str, member_ids: list[str], as_of: pd.Timestamp | None = None,
                 top: int = 3) -> list[dict] | None:
        """``score``'s answer when it reads no history (the population scored at start-up, at its date): cheap
        enough for the event loop. None when it would compute features (another date): call ``score`` in a
        thread. A date outside the data is OutOfRange, as for ``score``."""
        when = self.as_of if as_of is None else self.check_date(as_of)
        return self.score(model, member_ids, when, top) if when == self.as_of else None

    def _cached(self, model: str, wanted: list[str], top: int) -> tuple[list[dict], dict[str, tuple[str, str]]]:
        """Known members at the scoring date: their rows of the population scored at start-up, and the reason
        of each member the task could not score."""
        c = self.cache[model]
        rows = np.array([c["row"][mid] for mid in wanted if mid in c["row"]], dtype=int)
        scored = self._explain(model, c["X"][rows], c["p"][rows], c["member_id"][rows], c["as_of"][rows],
                               top) if len(rows) else []
        return scored, c["reasons"]

    def _on_demand(self, model: str, wanted: list[str], when: pd.Timestamp,
                   top: int) -> tuple[list[dict], dict[str, tuple[str, str]]]:
        """Known members at another date: their histories through the task and the features, as in training."""
        m = self.models[model]
        sub = self.index.subset(wanted)
        sc = task_for(m.spec).scorable(sub, m.spec, wanted, when)
        scored = self._explain_frame(model, build_features(sub, sc.points, m.spec), top) if len(sc.points) else []
        return scored, sc.reasons

    def score_history(self, model: str, history: dict[str, pd.DataFrame], as_of: pd.Timestamp | None,
                      top: int = 3) -> list[dict]:
        """Score one member's inline history (rows of the canonical tables) through the same task and features.
        The date must fall inside the history's own data (default: its last day)."""
        m = self.models[model]
        mid = str(history["members"]["member_id"].iat[0])
        first, last = data_start(history), data_end(history) - pd.Timedelta(days=1)
        when = last.normalize() if as_of is None else self.check_date(as_of, first, last)
        sc = task_for(m.spec).scorable(history, m.spec, [mid], when)
        if len(sc.points) == 0:
            return [self._not_scorable(mid, when, sc.reasons.get(mid))]
        return self._explain_frame(model, build_features(history, sc.points, m.spec), top)

    def utilization(self, readmission_spec) -> pd.DataFrame:
        """The managers' utilization figures over the store (``serving.utilization``)."""
        from umrisk.serving.utilization import utilization

        return utilization(self.store, readmission_spec)

    # ------------------------------------------------------------------ review queue
    def open_cases(self) -> pd.DataFrame:
        rr = self.store["review_requests"]
        return rr[rr["status"].astype("str").isin(OPEN_STATUSES)].astype(
            {"member_id": "str", "service_type": "str", "urgency": "str", "code": "str"})

    def review_queue(self, cases: pd.DataFrame, now: pd.Timestamp, minutes_per_case: float, top: int = 2) -> list[dict]:
        # a case store's cases carry the deadline in force (extended, or an appeal's); others get the rule's
        due = cases["deadline"] if "deadline" in cases else deadlines(cases["received_time"], cases["urgency"])
        hours_left = ((due - now) / pd.Timedelta(hours=1)).to_numpy()
        ids = cases["member_id"].astype(str).tolist()
        risks = {name: {r["member_id"]: r for r in self.score(name, ids, top=top)} for name in self.models}
        # the case's risk is the highest of the member's risks over the models served
        risk = np.array([max((risks[name][mid].get("probability") or 0.0 for name in self.models), default=0.0)
                         for mid in ids])
        planned = queue_order(hours_left, risk, minutes_per_case)
        out = []
        for pos, i in enumerate(planned.order, start=1):
            c = cases.iloc[i]
            member_risks = {name: risks[name][ids[i]] for name in self.models}
            out.append({
                "position": pos, "request_id": str(c["request_id"]), "member_id": ids[i],
                "service_type": str(c["service_type"]), "code": None if pd.isna(c["code"]) else str(c["code"]),
                "urgency": str(c["urgency"]), "received_time": pd.Timestamp(c["received_time"]).to_pydatetime(),
                "deadline": pd.Timestamp(due.iloc[i]).to_pydatetime(), "hours_left": round(float(hours_left[i]), 2),
                "overdue": bool(hours_left[i] < 0),
                "why": planned.why[i],
                "suggested_next_step": self.next_step(str(c["urgency"]), str(c["service_type"]), member_risks),
                "risks": {name: {"model_version": r.get("model_version", self.models[name].version),
                                 "probability": r.get("probability"), "tier": r.get("tier"),
                                 "percentile": r.get("percentile"), "reasons": r.get("reasons") or [],
                                 "error": r.get("error")} for name, r in member_risks.items()},
            })
        return out

    def next_step(self, urgency: str, service_type: str, risks: dict[str, dict]) -> str:
        """A routing suggestion from a fixed set (``STEPS``), never an approval or a denial: an expedited case with
        a risk in a model's top tier is expedited; otherwise the most urgent care step of the models whose risk
        is in their task's care tiers; else routine review."""
        ranks = {}
        for name, r in risks.items():
            names = [t.name for t in self.models[name].spec.model.tiers]
            if r.get("tier") in names:
                ranks[name] = names.index(r["tier"])
        if urgency == "expedited" and 0 in ranks.values():
            return STEPS[0]
        steps = {task_for(self.models[name].spec).care_step(service_type) for name, rank in ranks.items()
                 if rank < task_for(self.models[name].spec).care_tiers}
        return next((s for s in STEPS if s in steps), STEPS[-1])

    # ------------------------------------------------------------------ outreach
    def outreach_model(self, model: str | None) -> str:
        """The model an outreach list ranks by: the one asked for, else the first served whose task ranks members
        at a date. ValueError when there is none or the one asked for cannot make a list."""
        able = [n for n, m in self.models.items() if task_for(m.spec).outreach_list]
        if model is None:
            if not able:
                raise ValueError("no model served here ranks members for outreach")
            return able[0]
        if model not in able:
            raise ValueError(f"model {model} scores {task_for(self.models[model].spec).kind} points, not members at a "
                             f"date: use one of {', '.join(able) or '(none served)'}")
        return model

    def outreach(self, capacity: int, line_of_business: str | None, contacted: set[str],
                 model: str | None = None, top: int = 3) -> dict:
        """The top ``capacity`` members by risk among those the model's task can score today (alive, enrolled, out
        of hospital), out of hospice, optionally of one line of business and not contacted lately."""
        model = self.outreach_model(model)
        c = self.cache[model]
        ok = ~c["hospice"]
        excluded = {**self.not_scorable[model], "hospice": int(c["hospice"].sum())}
        if line_of_business:
            other = c["lob"] != line_of_business
            excluded["other line of business"] = int((ok & other).sum())
            ok &= ~other
        if contacted:
            hit = pd.Series(c["member_id"]).isin(contacted).to_numpy()
            excluded["contacted recently"] = int((ok & hit).sum())
            ok &= ~hit
        eligible = np.flatnonzero(ok)
        chosen = eligible[np.argsort(-c["p"][eligible], kind="stable")[:capacity]]
        rows = self._explain(model, c["X"][chosen], c["p"][chosen], c["member_id"][chosen], c["as_of"][chosen], top)
        for rank, (r, i) in enumerate(zip(rows, chosen, strict=True), start=1):
            r["rank"] = rank
            r["line_of_business"] = str(c["lob"][i])
        return {"model": model, "model_version": self.models[model].version, "as_of": self.as_of.to_pydatetime(),
                "eligible": int(len(eligible)), "excluded": excluded, "members": rows}

