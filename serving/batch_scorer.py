"""The service's scorer when ``umrisk score-batch`` has run: no population in memory.

At start-up it reads, for each served model, the latest published batch run in the case store (it must be the
champion version being served, and every model's run must be for the same date). At the run's date a member's
score, tier, percentile and reasons are the run's row, one indexed look-up; at any other date, and for members
the run did not score, the member's history is read from the partitioned store (``serving.histories``) and goes
through the same task and features as the batch job and training, its percentile placed among the run's
probabilities (read from the case store the first time one is needed). The outreach list is the run's top rows,
filtered in the database. The store's first and last day come from the Parquet files' column statistics, not
from reading the rows. A worker looks for newer runs at most once a minute and serves them when every model has
one (the nightly job), without a restart.

A start-up that cannot serve from the batch (no run, a run of another version, runs for different dates, a
store not partitioned by member) raises ``NoBatch`` with the reason; ``serving.state`` then says so and scores
the population at start-up instead.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from sqlalchemy import func, select

from umrisk.features.cohorts import store_dates
from umrisk.features.schema import read_table, table_files
from umrisk.serving.batch_runs import NoBatch, usable_runs
from umrisk.serving.cases.models import BatchScore
from umrisk.serving.cases.repository import CaseStore
from umrisk.serving.histories import PartitionedHistories
from umrisk.serving.reasons import Explainer
from umrisk.serving.scoring import OPEN_STATUSES, PROBABILITY_DECIMALS, LoadedModel, Scorer

log = logging.getLogger("umrisk.serving")
TOP_STORED = 3  # reasons kept per batch row (training.score_batch); a request for more is computed on demand
REFRESH_SECONDS = 60.0  # how often a worker looks for the batch job's newer runs


class BatchScorer(Scorer):
    """``Scorer``'s interface over the batch job's latest runs and a partitioned store read one member at a time."""

    def __init__(self, data: Path | str, models: dict[str, LoadedModel], cases: CaseStore):
        self.data = Path(data)
        self.models = models
        self.cases = cases
        self.versions = {n: m.version for n, m in models.items()}  # the champions served, whose runs are read
        self._use(usable_runs(self.data, self.versions, cases))
        self.index = PartitionedHistories(self.data)  # a store not partitioned by member is NoBatch above
        self.refresh_seconds = REFRESH_SECONDS
        self._next_check = time.monotonic() + self.refresh_seconds
        self.first_day, self.last_day = store_dates(self.data)
        self.store = None  # nothing of the population is held
        self.cache = {}
        self.explainers = {name: Explainer.from_catalog(m.wrapped.risk_model.features, m.catalog,
                                                        m.wrapped.risk_model.levels_) for name, m in models.items()}

    def _use(self, runs: dict[str, dict]) -> None:
        """Serve ``runs`` (from ``usable_runs``): their date, their not-scorable counts; the percentiles of
        on-demand scores are read from a run the first time one is needed."""
        self.runs = runs
        self.as_of = pd.Timestamp(next(iter(runs.values()))["as_of"]).normalize()
        self.not_scorable = {name: dict(run["not_scorable"]) for name, run in runs.items()}
        self.pop_scores = {}

    def refresh(self) -> None:
        """Take up the batch job's newer runs, at most once every ``refresh_seconds``: when every model has a
        newer usable run (the champion's version, one date), the service serves them without a restart; a
        partial night (one model scored, another not yet) keeps the runs it has."""
        now = time.monotonic()
        if now < self._next_check:
            return
        self._next_check = now + self.refresh_seconds
        try:
            runs = usable_runs(self.data, self.versions, self.cases)
        except NoBatch:
            return
        if {n: r["run_id"] for n, r in runs.items()} != {n: r["run_id"] for n, r in self.runs.items()}:
            self._use(runs)
            log.info("serving newer batch runs: %s", ", ".join(f"{n} run {r['run_id']}" for n, r in runs.items()))

    def percentile(self, model: str, p: np.ndarray) -> np.ndarray:
        """Among the run's probabilities, which are stored rounded: ``p`` is rounded alike, so a member tied with
        others (isotonic calibration ties many) gets the percentile the run gave them, not one below the tie."""
        if model not in self.pop_scores:
            self.pop_scores[model] = self._run_probabilities(self.runs[model]["run_id"])
        return super().percentile(model, np.round(p, PROBABILITY_DECIMALS))

    def _run_probabilities(self, run_id: int) -> np.ndarray:
        with self.cases.reading() as s:
            p = s.scalars(select(BatchScore.probability).where(BatchScore.run_id == run_id)).all()
        return np.sort(np.asarray(p, dtype=float))

    def utilization(self, readmission_spec) -> pd.DataFrame:
        """The managers' utilization figures, added up one member partition at a time (the same figures as over
        the whole store, without holding it)."""
        from umrisk.serving.utilization import utilization_partitioned

        return utilization_partitioned(self.data, readmission_spec)

    @property
    def population(self) -> pd.DataFrame:
        raise AttributeError("a service serving batch scores holds no population")

    def _rows(self, model: str, member_ids: list[str]) -> dict[str, dict]:
        """The run's rows of ``member_ids`` in the service's shape."""
        run = self.runs[model]
        q = select(BatchScore).where(BatchScore.run_id == run["run_id"], BatchScore.member_id.in_(member_ids))
        with self.cases.reading() as s:
            return {r.member_id: self._shaped(model, r) for r in s.scalars(q)}

    def _shaped(self, model: str, r: BatchScore, top: int = TOP_STORED) -> dict:
        return {"member_id": r.member_id, "model": model, "model_version": self.runs[model]["model_version"],
                "as_of": pd.Timestamp(r.as_of).to_pydatetime(), "probability": r.probability, "tier": r.tier,
                "percentile": r.percentile, "reasons": list(r.reasons or [])[:top]}

    def _from_run(self, model: str, member_ids: list[str], as_of: pd.Timestamp | None,
                  top: int) -> tuple[pd.Timestamp, dict[str, dict] | None]:
        """The scoring date, and the run's answers for those of ``member_ids`` it scored with ``top`` reasons;
        None instead when the run cannot answer at all (another date, more reasons than it keeps)."""
        when = self.as_of if as_of is None else self.check_date(as_of)
        if when != self.as_of or top > TOP_STORED:
            return when, None
        found = self._rows(model, list(dict.fromkeys(member_ids)))
        return when, {mid: {**r, "reasons": r["reasons"][:top]} for mid, r in found.items()}

    def score(self, model: str, member_ids: list[str], as_of: pd.Timestamp | None = None, top: int = 3) -> list[dict]:
        """``Scorer.score``: at the run's date a member the run scored is one indexed look-up (no file is read);
        the others, and other dates, go through ``Scorer.score`` (known? scorable? features on demand)."""
        self.refresh()
        when, found = self._from_run(model, member_ids, as_of, top)
        if found is None:
            return super().score(model, member_ids, when, top)
        rest = [mid for mid in member_ids if mid not in found]
        others = {r["member_id"]: r for r in super().score(model, rest, when, top)} if rest else {}
        return [found[mid] if mid in found else others[mid] for mid in member_ids]

    def answered(self, model: str, member_ids: list[str], as_of: pd.Timestamp | None = None,
                 top: int = 3) -> list[dict] | None:
        """``score``'s answer when every member is in the run at its date (one indexed look-up, no file read);
        None otherwise (another date, a member the run did not score, more reasons than it keeps, or a look for
        newer runs due): call ``score`` in a thread, which reads those members' partitions."""
        if time.monotonic() >= self._next_check:
            return None
        _, found = self._from_run(model, member_ids, as_of, top)
        if found is None or any(mid not in found for mid in member_ids):
            return None
        return [found[mid] for mid in member_ids]

    def _cached(self, model: str, wanted: list[str], top: int) -> tuple[list[dict], dict[str, tuple[str, str]]]:
        """At the run's date, the members ``score`` did not answer from the run (it did not score them, or more
        reasons are asked for than it keeps): on demand, with the task's reason for those it cannot score."""
        return self._on_demand(model, wanted, self.as_of, top)

    # ------------------------------------------------------------------ review queue
    def open_cases(self) -> pd.DataFrame:
        """The open review requests of the store's ``review_requests`` table (read filtered, not held)."""
        files = table_files(self.data, "review_requests")
        if not files:
            return _typed_cases(read_table(self.data, "review_requests"))
        frames = [pq.read_table(f, filters=[("status", "in", list(OPEN_STATUSES))]).to_pandas() for f in files]
        return _typed_cases(pd.concat(frames, ignore_index=True))

    # ------------------------------------------------------------------ outreach
    def outreach(self, capacity: int, line_of_business: str | None, contacted: set[str],
                 model: str | None = None, top: int = 3) -> dict:
        """The run's top ``capacity`` members out of hospice (optionally of one line of business, not contacted
        lately), chosen in the database; the counts of those left out, by reason."""
        self.refresh()
        model = self.outreach_model(model)
        run_id = self.runs[model]["run_id"]
        base = [BatchScore.run_id == run_id]
        with self.cases.reading() as s:
            def count(*where) -> int:
                return int(s.scalar(select(func.count()).select_from(BatchScore).where(*base, *where)))

            excluded = {**self.not_scorable[model], "hospice": count(BatchScore.hospice.is_(True))}
            keep = [BatchScore.hospice.is_not(True)]
            if line_of_business:
                other = BatchScore.line_of_business != line_of_business
                excluded["other line of business"] = count(*keep, other)
                keep.append(BatchScore.line_of_business == line_of_business)
            if contacted:
                hit = BatchScore.member_id.in_(sorted(contacted))
                excluded["contacted recently"] = count(*keep, hit)
                keep.append(~hit)
            eligible = count(*keep)
            q = (select(BatchScore).where(*base, *keep)
                 .order_by(BatchScore.probability.desc(), BatchScore.member_id).limit(capacity))
            chosen = list(s.scalars(q))
            rows = []
            for rank, r in enumerate(chosen, start=1):
                row = self._shaped(model, r, top)
                row["rank"] = rank
                row["line_of_business"] = r.line_of_business or "unknown"
                rows.append(row)
        return {"model": model, "model_version": self.models[model].version, "as_of": self.as_of.to_pydatetime(),
                "eligible": eligible, "excluded": excluded, "members": rows}


def _typed_cases(rr: pd.DataFrame) -> pd.DataFrame:
    return rr.astype({"member_id": "str", "service_type": "str", "urgency": "str", "code": "str"})
