"""Scoring members, ordering review queues and building outreach lists, with no HTTP in sight.

At start-up the current population is scored once with the features package (the same
``build_features`` as training): for admission risk every member alive and enrolled on the scoring date
and not in hospital; for readmission risk each member's latest live discharge. Requests for those
members at the default date read the cached rows; other dates and inline histories compute features on
the fly through the same code. Percentiles are against the current population's scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from umrisk.features.build import build_features
from umrisk.features.cohorts import chain_stays, continuous_enrollment, data_end
from umrisk.features.events import MemberCodes
from umrisk.features.spec import ModelSpec
from umrisk.serving.prioritize import deadlines, queue_order
from umrisk.serving.reasons import Explainer
from umrisk.training.registry import UmriskModel

OPEN_STATUSES = ("open", "in_review", "pended")
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


def readmission_points(store: dict[str, pd.DataFrame], as_of: pd.Timestamp) -> pd.DataFrame:
    """Each member's latest live discharge at or before ``as_of`` (transfers chained), as a prediction point."""
    stays = chain_stays(store["encounters"], 1)
    stays = stays[stays["discharge_time"].notna() & (stays["discharge_time"] <= as_of)
                  & (stays["discharge_disposition"].astype("str") != "expired")]
    last = stays.sort_values("discharge_time").groupby(stays["member_id"].astype("str"), observed=True).tail(1)
    return pd.DataFrame({"member_id": last["member_id"].astype("str").to_numpy(),
                         "as_of": last["discharge_time"].to_numpy(),
                         "index_encounter_id": last["index_encounter_id"].astype("str").to_numpy(),
                         "index_admit_time": last["admit_time"].to_numpy()})


def admission_points(store: dict[str, pd.DataFrame], member_ids: list[str], as_of: pd.Timestamp) -> pd.DataFrame:
    return pd.DataFrame({"member_id": member_ids, "as_of": pd.Series([as_of] * len(member_ids),
                                                                     dtype="datetime64[us]")})


class Scorer:
    def __init__(self, store: dict[str, pd.DataFrame], models: dict[str, LoadedModel],
                 as_of: pd.Timestamp | None = None):
        self.store = store
        self.models = models
        # the default scoring date: the last day the store covers
        self.as_of = (as_of or data_end(store) - pd.Timedelta(days=1)).normalize()
        self.index = MemberIndex(store)
        self.population = self._population()
        self.cache: dict[str, pd.DataFrame] = {}
        self.pop_scores: dict[str, np.ndarray] = {}
        pop = self.population
        scorable = {"admission": pop.loc[pop["alive"] & pop["enrolled"] & ~pop["in_hospital"], "member_id"],
                    "readmission": pop.loc[pop["alive"], "member_id"]}
        self.explainers: dict[str, Explainer] = {}
        self.cache: dict[str, dict] = {}
        self.pop_scores: dict[str, np.ndarray] = {}
        for name, m in models.items():
            rm = m.wrapped.risk_model
            self.explainers[name] = Explainer.from_catalog(rm.features, m.catalog, rm.levels_)
            pts = self._points(name, store, list(scorable[m.spec.task]), self.as_of)
            if len(pts) == 0:
                raise ValueError(f"{name}: nobody in the store can be scored on {self.as_of.date()}")
            X = rm.matrix(build_features(store, pts, m.spec))
            p = self._calibrated(name, X)
            # the current population as the model's float matrix: a cached score is a row look-up
            self.cache[name] = {"X": X, "p": p, "as_of": pts["as_of"].to_numpy(),
                                "member_id": pts["member_id"].to_numpy(),
                                "row": {mid: i for i, mid in enumerate(pts["member_id"])}}
            if m.spec.task == "admission":  # what outreach filters on, aligned with the cached rows
                facts = pop.set_index("member_id").loc[pts["member_id"]]
                self.cache[name]["hospice"] = facts["hospice"].to_numpy(dtype=bool)
                self.cache[name]["lob"] = facts["line_of_business"].to_numpy(dtype=object)
            self.pop_scores[name] = np.sort(p)
        self.not_scorable = {"deceased": int((~pop["alive"]).sum()),
                             "not enrolled": int((pop["alive"] & ~pop["enrolled"]).sum()),
                             "in hospital": int((pop["alive"] & pop["enrolled"] & pop["in_hospital"]).sum())}

    # ------------------------------------------------------------------ population
    def _population(self) -> pd.DataFrame:
        """Every member with the facts outreach filters on: alive, enrolled, in hospital, hospice, line."""
        s = self.store
        m = s["members"][["member_id", "death_date"]].copy()
        m["member_id"] = m["member_id"].astype("str")
        periods = continuous_enrollment(s["enrollment"])
        cover = periods[(periods["start_date"] <= self.as_of) & (periods["end_date"] >= self.as_of)]
        enr = s["enrollment"]
        span = enr[(enr["start_date"] <= self.as_of) & (enr["end_date"] >= self.as_of)]
        lob = span.assign(mid=span["member_id"].astype("str")).groupby("mid")["line_of_business"].last()
        enc = s["encounters"]
        inp = enc[(enc["setting"] == "inpatient") & (enc["admit_time"] < self.as_of)
                  & (enc["discharge_time"].isna() | (enc["discharge_time"] > self.as_of))]
        recent = enc[enc["admit_time"] >= self.as_of - HOSPICE_LOOKBACK]
        hospice = recent[(recent["setting"] == "hospice") | (recent["discharge_disposition"] == "hospice")]
        m["alive"] = m["death_date"].isna() | (m["death_date"] > self.as_of)
        m["enrolled"] = m["member_id"].isin(set(cover["member_id"].astype("str")))
        m["in_hospital"] = m["member_id"].isin(set(inp["member_id"].astype("str")))
        m["hospice"] = m["member_id"].isin(set(hospice["member_id"].astype("str")))
        m["line_of_business"] = m["member_id"].map(lob.astype("str")).fillna("unknown")
        return m.reset_index(drop=True)

    def _points(self, model: str, store: dict[str, pd.DataFrame], member_ids: list[str],
                as_of: pd.Timestamp) -> pd.DataFrame:
        if self.models[model].spec.task == "readmission":
            pts = readmission_points(store, as_of)
            return pts[pts["member_id"].isin(member_ids)].reset_index(drop=True)
        return admission_points(store, member_ids, as_of)

    # ------------------------------------------------------------------ scoring
    def percentile(self, model: str, p: np.ndarray) -> np.ndarray:
        pop = self.pop_scores[model]
        return np.round(100.0 * np.searchsorted(pop, p, side="right") / max(len(pop), 1), 1)

    def _calibrated(self, model: str, X: np.ndarray) -> np.ndarray:
        rm = self.models[model].wrapped.risk_model
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
                 "as_of": pd.Timestamp(as_of[i]).to_pydatetime(), "probability": round(float(p[i]), 6),
                 "tier": str(tiers[i]), "percentile": float(pct[i]), "reasons": reasons[i]} for i in range(len(X))]

    def _explain_frame(self, model: str, feats: pd.DataFrame, top: int) -> list[dict]:
        X = self.models[model].wrapped.risk_model.matrix(feats)
        return self._explain(model, X, self._calibrated(model, X), feats["member_id"].to_numpy(),
                             feats["as_of"].to_numpy(), top)

    def score(self, model: str, member_ids: list[str], as_of: pd.Timestamp | None = None, top: int = 3) -> list[dict]:
        """One entry per requested id, in order: a score, or an error for that member alone."""
        results: dict[str, dict] = {}
        known = self.index.known(member_ids)
        for mid, ok in zip(member_ids, known, strict=True):
            if not ok:
                results[mid] = {"member_id": mid, "error": "unknown member"}
        wanted = [m for m, ok in zip(member_ids, known, strict=True) if ok]
        if wanted:
            if as_of is None or pd.Timestamp(as_of).normalize() == self.as_of:
                c = self.cache[model]
                rows = np.array([c["row"][m] for m in dict.fromkeys(wanted) if m in c["row"]], dtype=int)
                scored = self._explain(model, c["X"][rows], c["p"][rows], c["member_id"][rows], c["as_of"][rows],
                                       top) if len(rows) else []
            else:
                sub = self.index.subset(list(dict.fromkeys(wanted)))
                pts = self._points(model, sub, wanted, pd.Timestamp(as_of).normalize())
                scored = self._explain_frame(model, build_features(sub, pts, self.models[model].spec), top) \
                    if len(pts) else []
            for r in scored:
                results[r["member_id"]] = r
            for mid in wanted:
                results.setdefault(mid, {"member_id": mid, "error": self._why_missing(model)})
        return [results[m] for m in member_ids]

    def _why_missing(self, model: str) -> str:
        if self.models[model].spec.task == "readmission":
            return "no inpatient discharge on or before the scoring date to score readmission from"
        return "not scorable on this date (not enrolled, deceased or in hospital)"

    def score_history(self, model: str, history: dict[str, pd.DataFrame], as_of: pd.Timestamp | None,
                      top: int = 3) -> list[dict]:
        """Score one member's inline history (rows of the canonical tables) through the same features."""
        mid = str(history["members"]["member_id"].iat[0])
        when = pd.Timestamp(as_of).normalize() if as_of is not None else self.as_of
        pts = self._points(model, history, [mid], when)
        if len(pts) == 0:
            return [{"member_id": mid, "error": self._why_missing(model)}]
        return self._explain_frame(model, build_features(history, pts, self.models[model].spec), top)

    # ------------------------------------------------------------------ review queue
    def open_cases(self) -> pd.DataFrame:
        rr = self.store["review_requests"]
        return rr[rr["status"].astype("str").isin(OPEN_STATUSES)].astype(
            {"member_id": "str", "service_type": "str", "urgency": "str", "code": "str"})

    def review_queue(self, cases: pd.DataFrame, now: pd.Timestamp, minutes_per_case: float, top: int = 2) -> list[dict]:
        due = deadlines(cases["received_time"], cases["urgency"])
        hours_left = ((due - now) / pd.Timedelta(hours=1)).to_numpy()
        ids = cases["member_id"].astype(str).tolist()
        risks = {name: {r["member_id"]: r for r in self.score(name, ids, top=top)} for name in self.models}
        adm = np.array([risks.get("admission_180d", {}).get(m, {}).get("probability") or 0.0 for m in ids])
        readm = np.array([risks.get("readmission_30d", {}).get(m, {}).get("probability") or 0.0 for m in ids])
        risk = np.maximum(adm, readm)
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
                "suggested_next_step": next_step(str(c["urgency"]), str(c["service_type"]), member_risks),
                "risks": {name: {"model_version": r.get("model_version", self.models[name].version),
                                 "probability": r.get("probability"), "tier": r.get("tier"),
                                 "percentile": r.get("percentile"), "reasons": r.get("reasons") or [],
                                 "error": r.get("error")} for name, r in member_risks.items()},
            })
        return out

    # ------------------------------------------------------------------ outreach
    def outreach(self, capacity: int, line_of_business: str | None, contacted: set[str],
                 model: str = "admission_180d", top: int = 3) -> dict:
        """The top ``capacity`` members by risk among those alive, enrolled, out of hospital and out of hospice
        (facts of the population at start-up), optionally of one line of business and not contacted lately."""
        c = self.cache[model]
        ok = ~c["hospice"]
        excluded = {**self.not_scorable, "hospice": int(c["hospice"].sum())}
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
        return {"model_version": self.models[model].version, "as_of": self.as_of.to_pydatetime(),
                "eligible": int(len(eligible)), "excluded": excluded, "members": rows}


def next_step(urgency: str, service_type: str, risks: dict[str, dict]) -> str:
    """A routing suggestion from a fixed set; never an approval or a denial."""
    tiers = {name: r.get("tier") for name, r in risks.items()}
    if urgency == "expedited" and "high" in tiers.values():
        return "expedite clinical review"
    if service_type == "inpatient_admission" and tiers.get("readmission_30d") == "high":
        return "plan transitional care at discharge"
    if tiers.get("admission_180d") in ("high", "elevated") or tiers.get("readmission_30d") == "high":
        return "refer to care management"
    return "routine review"
