"""umrisk score-batch: the whole eligible population scored as the service scores it, written to the case store
(SQLite and PostgreSQL) and to Parquet, a second run replacing the first without readers ever seeing half of
one, not-scorable members counted by reason, and one-line errors from the command line."""

import json
import threading
import uuid
from collections import Counter

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tests.service import casedb
from umrisk.cli import app
from umrisk.serving.cases import batch
from umrisk.serving.cases.db import DatabaseError
from umrisk.serving.cases.repository import CaseStore
from umrisk.training.lineage import data_fingerprint
from umrisk.training.score_batch import score_batch

postgres_url, sqlite_url = casedb.postgres_url, casedb.sqlite_url
case_url, case_store = casedb.case_url, casedb.case_store
runner = CliRunner()
MODELS = ("admission_180d", "readmission_30d")
DAY = pd.Timestamp("2025-06-01").to_pydatetime()  # naive UTC, the case store's convention


@pytest.fixture(scope="module")
def batch_run(served, tmp_path_factory):
    """Each model scored once on the service's store into a fresh SQLite case store and Parquet."""
    root = tmp_path_factory.mktemp("score-batch")
    url = f"sqlite:///{root / 'cases.db'}"
    return {"url": url, "root": root,
            "runs": {m: score_batch(m, served["store"], database=url, out=root / f"{m}.parquet",
                                    tracking_uri=served["uri"]) for m in MODELS}}


def _parquet(path) -> pd.DataFrame:
    frame = pd.read_parquet(path)
    return frame.assign(reasons=[json.loads(r) for r in frame["reasons"]])


def _same_rows(a: pd.DataFrame, b: pd.DataFrame) -> None:
    cols = list(batch.SCORE_COLUMNS)
    a, b = a[cols].reset_index(drop=True), b[cols].reset_index(drop=True)
    assert a["member_id"].astype(str).tolist() == b["member_id"].astype(str).tolist()
    assert (pd.to_datetime(a["as_of"]) == pd.to_datetime(b["as_of"])).all()
    for c in ("probability", "percentile", "tier", "hospice", "line_of_business"):
        assert a[c].tolist() == b[c].tolist(), c
    assert a["reasons"].tolist() == b["reasons"].tolist()


def test_rows_land_in_the_case_store_and_parquet_tagged_with_version_and_fingerprint(served, case_url, tmp_path):
    out = tmp_path / "scores.parquet"
    r = score_batch("admission_180d", served["store"], database=case_url, out=out, tracking_uri=served["uri"])
    cases = CaseStore.open(case_url)
    try:
        run = next(x for x in batch.runs(cases, "admission_180d") if x["run_id"] == r["run_id"])
        stored = batch.run_scores(cases, r["run_id"])
    finally:
        cases.dispose()
    sha = data_fingerprint(served["store"])["sha256"]
    assert run["status"] == "current" and run["rows"] == r["rows"] == len(stored) > 100
    assert run["model_version"] == r["version"] and run["data_sha256"] == sha
    assert str(run["as_of"].date()) == r["as_of"] and run["not_scorable"] == r["not_scorable"]
    assert run["executor"] == "single process" and "umrisk score-batch" in run["ran_by"]
    parquet = _parquet(out)
    _same_rows(parquet, stored)
    assert set(parquet["model_version"]) == {r["version"]} and set(parquet["data_sha256"]) == {sha}
    meta = pq.read_schema(out).metadata
    assert meta[b"umrisk.data_sha256"].decode() == sha and meta[b"umrisk.run_id"].decode() == str(r["run_id"])
    assert out.stat().st_mode & 0o077 == 0  # member data: private to its user


def test_the_parquet_file_equals_the_case_store_rows_for_each_model(batch_run):
    cases = CaseStore.open(batch_run["url"])
    try:
        for model, r in batch_run["runs"].items():
            _same_rows(_parquet(batch_run["root"] / f"{model}.parquet"), batch.run_scores(cases, r["run_id"]))
    finally:
        cases.dispose()


def test_batch_scores_equal_the_service_scorer(client, batch_run):
    """Same member, same date: the probability, tier, percentile and reasons the service returns."""
    from umrisk.serving.api import app as api

    scorer = api.state.umrisk.scorer
    members = scorer.population["member_id"].tolist()
    for model in MODELS:
        r = batch_run["runs"][model]
        assert r["as_of"] == str(scorer.as_of.date())
        served = [x for x in scorer.score(model, members) if "error" not in x]
        rows = _parquet(batch_run["root"] / f"{model}.parquet").set_index("member_id")
        assert sorted(x["member_id"] for x in served) == sorted(rows.index)
        for x in served:
            row = rows.loc[x["member_id"]]
            assert (row["probability"], row["tier"], row["percentile"]) == (x["probability"], x["tier"],
                                                                             x["percentile"])
            assert row["reasons"] == x["reasons"] and pd.Timestamp(row["as_of"]) == pd.Timestamp(x["as_of"])
    # what the outreach list filters on, for the model that ranks members for outreach (None for the other)
    facts = scorer.population.set_index("member_id")
    rows = _parquet(batch_run["root"] / "admission_180d.parquet").set_index("member_id")
    assert rows["hospice"].tolist() == facts.loc[rows.index, "hospice"].tolist()
    assert rows["line_of_business"].tolist() == facts.loc[rows.index, "line_of_business"].tolist()
    assert _parquet(batch_run["root"] / "readmission_30d.parquet")["hospice"].isna().all()


def test_not_scorable_members_are_counted_by_the_services_reason(client, batch_run):
    from umrisk.serving.api import app as api

    scorer = api.state.umrisk.scorer
    members = scorer.population["member_id"].tolist()
    for model in MODELS:
        r = batch_run["runs"][model]
        why = Counter(x["not_scorable"] for x in scorer.score(model, members) if "error" in x)
        assert r["not_scorable"] == dict(why) and sum(why.values()) > 0
        assert r["rows"] + sum(r["not_scorable"].values()) == len(members)


def test_another_date_scores_as_the_service_does_on_that_date(client, served, tmp_path):
    from umrisk.serving.api import app as api

    scorer = api.state.umrisk.scorer
    day = (scorer.as_of - pd.DateOffset(months=5)).normalize()
    r = score_batch("admission_180d", served["store"], as_of=day, database=f"sqlite:///{tmp_path / 'c.db'}",
                    out=tmp_path / "s.parquet", tracking_uri=served["uri"])
    rows = _parquet(tmp_path / "s.parquet").set_index("member_id")
    sample = rows.index[:: max(len(rows) // 40, 1)].tolist()
    for x in scorer.score("admission_180d", sample, as_of=day):
        row = rows.loc[x["member_id"]]
        assert (row["probability"], row["tier"], row["reasons"]) == (x["probability"], x["tier"], x["reasons"])
    assert r["as_of"] == str(day.date())


def _frame(n: int, shift: float) -> pd.DataFrame:
    return pd.DataFrame({"member_id": [f"M{i:08d}" for i in range(n)], "as_of": pd.Timestamp("2025-06-01"),
                         "probability": [round((i % 97) / 100 + shift, 6) for i in range(n)], "tier": "low",
                         "percentile": 50.0, "reasons": [[{"feature": "age", "text": "age 80", "value": 80,
                                                           "contribution": 0.1}]] * n})


def _info(model: str) -> batch.RunInfo:
    return batch.RunInfo(model=model, model_version="1", data_sha256="0" * 64, as_of=pd.Timestamp("2025-06-01"),
                         started_at=pd.Timestamp("2025-06-02").to_pydatetime(), ran_by="test", executor="test",
                         code_version="test")


def test_a_second_run_supersedes_the_first_and_readers_never_see_half_a_run(case_store):
    model = f"m{uuid.uuid4().hex[:8]}"
    first_id = batch.write_run(case_store, _info(model), _frame(1200, 0.0), chunk=100)
    seen, problems, done = [], [], threading.Event()

    def read() -> None:
        while not done.is_set():
            try:
                rows = batch.top(case_store, model, 10_000)
                ids = {r["run_id"] for r in rows}
                seen.append((ids, len(rows)))
                whole = (ids == {first_id} and len(rows) == 1200) or (len(ids) == 1 and ids != {first_id}
                                                                       and len(rows) == 1100)
                if not whole:
                    problems.append((ids, len(rows)))
            except Exception as err:  # noqa: BLE001 - any failure to read is a problem
                problems.append(repr(err))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        second = _frame(1100, 0.001)
        second_id = batch.write_run(case_store, _info(model), second, chunk=25)
    finally:
        done.set()
        reader.join(60)
    assert problems == [] and len(seen) >= 2
    assert {next(iter(ids)) for ids, _ in seen} <= {first_id, second_id}
    by_id = {r["run_id"]: r for r in batch.runs(case_store, model)}
    assert by_id[first_id]["status"] == "superseded" and by_id[first_id]["superseded_by"] == second_id
    assert by_id[second_id]["status"] == "current" and by_id[second_id]["rows"] == 1100
    assert len(batch.run_scores(case_store, first_id)) == 0  # the superseded run's rows are gone
    assert batch.latest_score(case_store, model, "M00000005")["probability"] == second["probability"].iat[5]
    assert batch.latest_score(case_store, model, "M00001150") is None  # not in the latest run
    top3 = batch.top(case_store, model, 3)
    assert [r["probability"] for r in top3] == sorted(second["probability"], reverse=True)[:3]


def test_a_run_for_another_date_keeps_the_first_and_becomes_the_latest(case_store):
    model = f"d{uuid.uuid4().hex[:8]}"
    first_id = batch.write_run(case_store, _info(model), _frame(50, 0.0))
    later = batch.RunInfo(**{**_info(model).__dict__, "as_of": pd.Timestamp("2025-07-01")})
    second_id = batch.write_run(case_store, later, _frame(40, 0.002).assign(as_of=pd.Timestamp("2025-07-01")))
    assert batch.latest_run(case_store, model)["run_id"] == second_id
    history = batch.member_scores(case_store, model, "M00000003")
    assert [h["run_id"] for h in history] == [second_id, first_id]
    assert history[0]["data_sha256"] == "0" * 64 and history[0]["model_version"] == "1"


def test_a_model_keeps_its_latest_runs_and_retires_the_rest(case_store):
    """Nightly runs do not grow the case store without end: publishing a run retires the model's current runs
    beyond its ``keep`` latest scoring dates and deletes their rows; another model's runs are left alone."""
    model, other = f"k{uuid.uuid4().hex[:8]}", f"o{uuid.uuid4().hex[:8]}"
    days = [pd.Timestamp("2025-06-01") + pd.Timedelta(days=d) for d in range(4)]
    other_id = batch.write_run(case_store, _info(other), _frame(20, 0.0))
    ids = [batch.write_run(case_store, batch.RunInfo(**{**_info(model).__dict__, "as_of": day}),
                           _frame(20, 0.001 * k).assign(as_of=day), keep=2) for k, day in enumerate(days)]
    status = {r["run_id"]: r["status"] for r in batch.runs(case_store, model)}
    assert [status[i] for i in ids] == ["retired", "retired", "current", "current"]
    assert [len(batch.run_scores(case_store, i)) for i in ids] == [0, 0, 20, 20]
    assert [h["run_id"] for h in batch.member_scores(case_store, model, "M00000003")] == [ids[3], ids[2]]
    assert batch.latest_run(case_store, model)["run_id"] == ids[3]
    assert batch.latest_run(case_store, other)["run_id"] == other_id and len(batch.run_scores(case_store, other_id))
    # a late run for an older date is kept only if it is among the latest two dates
    late = batch.write_run(case_store, _info(model), _frame(20, 0.0), keep=2)
    assert {r["run_id"]: r["status"] for r in batch.runs(case_store, model)}[late] == "retired"
    assert batch.latest_run(case_store, model)["run_id"] == ids[3]
    with pytest.raises(ValueError, match="at least 1"):
        batch.write_run(case_store, _info(model), _frame(5, 0.0), keep=0)
    r = runner.invoke(app, ["score-batch", model, "--data", ".", "--keep", "0"])
    assert r.exit_code == 2 and "Invalid value for '--keep'" in r.output


def test_a_failed_write_leaves_no_rows_and_the_old_run_current(case_store):
    model = f"f{uuid.uuid4().hex[:8]}"
    first_id = batch.write_run(case_store, _info(model), _frame(30, 0.0))
    broken = _frame(30, 0.0)
    broken.loc[25, "member_id"] = broken.loc[3, "member_id"]  # a duplicate member: the last chunk fails
    with pytest.raises(DatabaseError) as err:
        batch.write_run(case_store, _info(model), broken, chunk=10)
    # one line naming the database, never the rows (SQLAlchemy's message lists the member ids and reasons)
    assert "cannot write the batch run" in str(err.value) and "M000000" not in str(err.value)
    assert len(str(err.value).splitlines()) == 1 and err.value.__cause__ is None
    failed = [r for r in batch.runs(case_store, model) if r["status"] == "failed"]
    assert len(failed) == 1 and len(batch.run_scores(case_store, failed[0]["run_id"])) == 0
    assert batch.latest_run(case_store, model)["run_id"] == first_id


# ---------------------------------------------------------------------------- the command line
def test_the_command_prints_one_summary_line_and_writes_to_the_services_case_store(served, tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'cases.db'}"
    monkeypatch.setenv("UMRISK_DATABASE_URL", url)  # the service's case store, as umrisk serve reads it
    r = runner.invoke(app, ["score-batch", "readmission_30d", "--data", str(served["store"]), "--tracking-uri",
                            served["uri"], "--out", str(tmp_path / "r.parquet")])
    assert r.exit_code == 0, r.output
    assert len(r.output.strip().splitlines()) == 1
    assert "Scored" in r.output and "not scorable:" in r.output and "window closed" in r.output
    cases = CaseStore.open(url)
    try:
        assert batch.latest_run(cases, "readmission_30d")["rows"] == len(pd.read_parquet(tmp_path / "r.parquet"))
    finally:
        cases.dispose()


@pytest.mark.parametrize("args, words", [
    (["admission_180d", "--data", "/no/such/store"], "no such store folder"),
    (["no_such_model", "--data", "{store}"], "umrisk-no_such_model has no alias champion"),
    (["admission_180d", "--data", "{store}", "--version", "99"], "has no version 99"),
    (["admission_180d", "--data", "{store}", "--as-of", "2031-01-01"], "outside the data"),
    (["admission_180d", "--data", "{store}", "--as-of", "June"], "expected a date"),
    (["admission_180d", "--data", "{store}", "--version", "1", "--alias", "champion"], "not both"),
])
def test_errors_are_one_line_and_exit_2(served, tmp_path, args, words):
    args = [a.replace("{store}", str(served["store"])) for a in args]
    r = runner.invoke(app, ["score-batch", *args, "--tracking-uri", served["uri"], "--database-url",
                            f"sqlite:///{tmp_path / 'c.db'}"])
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
    assert words in r.output


def test_a_store_where_nobody_can_be_scored_counts_everyone(client, served):
    """A partition may hold nobody the task can score: its members are counted by reason, not refused."""
    from umrisk.features.store import load_store
    from umrisk.serving.api import app as api
    from umrisk.training.score_batch import combine, score_store

    state = api.state.umrisk
    members = state.scorer.population["member_id"].tolist()
    nobody = [x["member_id"] for x in state.scorer.score("readmission_30d", members)
              if x.get("not_scorable") == "no discharge"][:25]
    store = load_store(served["store"])
    sub = {t: df[df["member_id"].astype(str).isin(nobody)] for t, df in store.items()}
    part = score_store(sub, state.models["readmission_30d"], state.scorer.as_of)
    assert len(part.rows) == 0 and part.not_scorable == Counter({"no discharge": 25})
    whole = combine([part, part])
    assert len(whole.rows) == 0 and whole.not_scorable == Counter({"no discharge": 50})
    assert set(whole.rows.columns) == set(batch.SCORE_COLUMNS)


def test_a_run_killed_midway_is_cleared_by_the_next_run_a_day_later(case_store):
    from sqlalchemy import insert

    from umrisk.serving.cases.models import BatchRun, BatchScore

    model = f"k{uuid.uuid4().hex[:8]}"
    left = {}
    for started in ("2025-05-30", "2025-06-01T12:00"):  # killed two days ago; another job still writing
        with case_store.engine.begin() as conn:  # what a job leaves after its first chunk
            run_id = conn.execute(insert(BatchRun).values(
                model=model, model_version="1", data_sha256="0" * 64, as_of=DAY,
                status="writing", started_at=pd.Timestamp(started).to_pydatetime(), rows=0, not_scorable={},
                ran_by="test", executor="test", code_version="test")).inserted_primary_key[0]
            conn.execute(insert(BatchScore), [{"run_id": run_id, "member_id": f"M{i}", "model": model,
                                               "as_of": DAY, "probability": 0.1, "tier": "low",
                                               "percentile": 50.0, "reasons": []} for i in range(20)])
        left[started] = run_id
    batch.write_run(case_store, _info(model), _frame(10, 0.0))  # started 2025-06-02
    status = {r["run_id"]: r["status"] for r in batch.runs(case_store, model)}
    killed, writing = left["2025-05-30"], left["2025-06-01T12:00"]
    assert status[killed] == "failed" and len(batch.run_scores(case_store, killed)) == 0
    assert status[writing] == "writing" and len(batch.run_scores(case_store, writing)) == 20


def test_a_case_store_that_cannot_be_reached_fails_before_anything_is_scored(served, tmp_path):
    r = runner.invoke(app, ["score-batch", "admission_180d", "--data", str(served["store"]), "--tracking-uri",
                            served["uri"], "--database-url", "postgresql://postgres@127.0.0.1:1/none", "--out",
                            str(tmp_path / "s.parquet")])
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
    assert "127.0.0.1:1/none" in r.output and "cannot upgrade" in r.output
    assert not (tmp_path / "s.parquet").exists()


def test_readers_do_not_wait_for_a_batch_run_being_written(tmp_path):
    """On SQLite the case store begins its transactions IMMEDIATE (the write lock), as read-then-write
    transactions need; the batch readers (a member's score, the top of a run) read a snapshot without that
    lock, so a service answers at once while the nightly job holds the write lock for a chunk."""
    import time

    from sqlalchemy import select

    from umrisk.serving.cases.models import BatchRun

    cases = CaseStore.open(f"sqlite:///{tmp_path / 'cases.db'}")
    try:
        model = "r" + uuid.uuid4().hex[:8]
        batch.write_run(cases, _info(model), _frame(30, 0.0))
        with cases.engine.connect() as writer:  # the job's chunk transaction, holding the write lock
            writer.execute(select(BatchRun.id).limit(1))
            start = time.perf_counter()
            assert batch.latest_score(cases, model, "M00000004")["member_id"] == "M00000004"
            assert len(batch.top(cases, model, 5)) == 5
            assert len(batch.run_scores(cases, batch.latest_run(cases, model)["run_id"])) == 30
            assert time.perf_counter() - start < 2  # the busy timeout is far longer
            writer.rollback()
    finally:
        cases.dispose()
