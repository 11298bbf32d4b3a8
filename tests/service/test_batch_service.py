"""A service serving the batch job's scores: no population in memory, the same answers as a service that scores
the population at start-up (scores, tiers, reasons, other dates, members it cannot score, outreach, the queue),
and a start-up that says why when the batch cannot be served."""

from dataclasses import replace

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.routing import Mount

from tests.service.conftest import auth
from umrisk.features.cohorts import store_dates
from umrisk.serving.api import app
from umrisk.serving.batch_scorer import BatchScorer, NoBatch
from umrisk.serving.histories import PartitionedHistories
from umrisk.serving.scoring import MemberIndex
from umrisk.serving.state import ServiceState, StartupError
from umrisk.training.score_batch import score_batch

MODELS = ("admission_180d", "readmission_30d")


@pytest.fixture(scope="module")
def both(served, tmp_path_factory):
    """Two services on the same store and champions: one scoring the population at start-up, one serving the
    batch job's runs from its own case store."""
    root = tmp_path_factory.mktemp("batch-service")
    url = f"sqlite:///{root / 'cases.db'}"
    for m in MODELS:
        score_batch(m, served["store"], database=url, tracking_uri=served["uri"])
    population = ServiceState.build(replace(served["settings"], scores="population",
                                            database_url=f"sqlite:///{root / 'population.db'}"))
    batch = ServiceState.build(replace(served["settings"], scores="batch", database_url=url))
    return {"population": population, "batch": batch, "url": url, "root": root}


def _members(both, n: int = 40) -> list[str]:
    return both["population"].scorer.population["member_id"].tolist()[:n]


def test_the_batch_service_holds_no_population(both):
    s = both["batch"].scorer
    assert isinstance(s, BatchScorer) and s.store is None and s.cache == {}
    s.score("admission_180d", _members(both))
    assert s.store is None  # scoring read the case store and single members' partitions, never the store


def test_the_managers_figures_are_added_up_partition_by_partition(both, served, tmp_path):
    from umrisk.features.partition import repartition
    from umrisk.features.store import load_store
    from umrisk.serving.utilization import readmission_spec, utilization, utilization_partitioned

    spec = readmission_spec([m.spec for m in both["batch"].models.values()])
    whole = both["population"].scorer.utilization(spec)
    pd.testing.assert_frame_equal(both["batch"].scorer.utilization(spec)[whole.columns], whole)
    four = tmp_path / "four"
    repartition(served["store"], four, 4)  # members spread over 4 partitions: sums added across them
    for s in (spec, None):
        expected = utilization(load_store(four), s)
        pd.testing.assert_frame_equal(utilization_partitioned(four, s)[expected.columns], expected)


@pytest.mark.parametrize("model", MODELS)
def test_scores_tiers_and_reasons_equal_the_population_services(both, model):
    scorable = [str(m) for m in both["population"].scorer.cache[model]["member_id"][:15]]
    ids = [*_members(both, 25), *scorable, "no-such-member"]
    a = both["population"].scorer.score(model, ids)
    b = both["batch"].scorer.score(model, ids)
    assert [r["member_id"] for r in a] == [r["member_id"] for r in b] == ids
    assert sum("probability" in r for r in a) >= 15  # some scored, some not scorable: both kinds compared
    assert a == b


@pytest.mark.parametrize("model", MODELS)
def test_another_date_reads_one_members_history_and_agrees(both, model):
    pop = both["population"].scorer
    day = pop.as_of - pd.Timedelta(days=200)
    ids = [*_members(both, 10), *(str(m) for m in pop.cache[model]["member_id"][:10])]
    assert both["batch"].scorer.score(model, ids, day) == pop.score(model, ids, day)
    with pytest.raises(ValueError, match="outside the data"):
        both["batch"].scorer.score(model, ids, pop.last_day + pd.Timedelta(days=1))


@pytest.mark.parametrize("model", MODELS)
def test_the_quick_answer_is_the_score_or_none(both, model):
    """``answered`` (what the API serves on its event loop) is ``score``'s answer when every member is in the
    run at its date, and None whenever ``score`` would read a history: another date, a member the run left
    out, more reasons than the run keeps."""
    batch_scorer, pop = both["batch"].scorer, both["population"].scorer
    in_run = [str(m) for m in pop.cache[model]["member_id"][:5]]
    assert batch_scorer.answered(model, in_run) == batch_scorer.score(model, in_run) == pop.score(model, in_run)
    assert batch_scorer.answered(model, in_run, top=2) == pop.score(model, in_run, top=2)
    assert batch_scorer.answered(model, in_run, pop.as_of - pd.Timedelta(days=30)) is None
    assert batch_scorer.answered(model, [*in_run, "no-such-member"]) is None
    assert batch_scorer.answered(model, in_run, top=50) is None
    # more reasons than the run keeps: computed on demand, and placed among the run's probabilities exactly as
    # the run placed them (isotonic calibration ties many members at one probability)
    everyone = [str(m) for m in pop.cache[model]["member_id"]]
    stored = {r["member_id"]: r["percentile"] for r in batch_scorer.score(model, everyone)}
    tied = pd.Series(pop.cache[model]["p"]).duplicated(keep=False).to_numpy()
    sample = [m for m, t in zip(everyone, tied, strict=True) if t][:40] + everyone[:10]
    assert {r["member_id"]: r["percentile"] for r in batch_scorer.score(model, sample, top=5)} == \
        {m: stored[m] for m in sample}
    assert pop.answered(model, in_run) == pop.score(model, in_run)
    assert pop.answered(model, in_run, pop.as_of - pd.Timedelta(days=30)) is None
    with pytest.raises(ValueError, match="outside the data"):
        batch_scorer.answered(model, in_run, pop.last_day + pd.Timedelta(days=1))


def test_the_store_dates_come_from_file_statistics_and_match_reading_the_rows(both, served):
    pop = both["population"].scorer
    assert store_dates(served["store"]) == (pop.first_day, pop.last_day)
    assert both["batch"].scorer.as_of == pop.as_of


def test_one_members_rows_read_from_the_partitions_equal_the_in_memory_slice(both, served):
    ids = _members(both, 3)
    a = PartitionedHistories(served["store"]).subset(ids)
    b = MemberIndex(both["population"].scorer.store).subset(ids)
    for name in a:
        left = a[name].astype({c: "str" for c in a[name].columns if a[name][c].dtype != b[name][c].dtype})
        right = b[name].astype({c: "str" for c in b[name].columns if a[name][c].dtype != b[name][c].dtype})
        pd.testing.assert_frame_equal(left.reset_index(drop=True), right.reset_index(drop=True), check_dtype=False)


def test_the_review_queue_and_open_cases_agree(both):
    pop, bat = both["population"].scorer, both["batch"].scorer
    cases = pop.open_cases().reset_index(drop=True)
    pd.testing.assert_frame_equal(bat.open_cases().reset_index(drop=True), cases, check_dtype=False,
                                  check_categorical=False)
    now = pop.as_of + pd.Timedelta(hours=8)
    assert bat.review_queue(cases.head(30), now, 20) == pop.review_queue(cases.head(30), now, 20)


def test_outreach_is_chosen_in_the_database_and_agrees(both):
    pop, bat = both["population"].scorer, both["batch"].scorer
    contacted = set(pop.outreach(5, None, set())["members"][i]["member_id"] for i in (0, 2))
    for lob in (None, "medicare"):
        a, b = pop.outreach(25, lob, contacted), bat.outreach(25, lob, contacted)
        assert a["excluded"] == b["excluded"] and a["eligible"] == b["eligible"]
        assert [r["member_id"] for r in a["members"]] == [r["member_id"] for r in b["members"]]
        assert a["members"] == b["members"]


def test_the_api_answers_the_same_from_the_batch(both, served):
    body = {"model": "admission_180d", "member_ids": _members(both, 10)}
    answers = []
    before = getattr(app.state, "umrisk", None)  # the session's service state, put back after
    try:
        for kind in ("population", "batch"):
            app.state.umrisk = both[kind]
            with TestClient(Starlette(routes=[Mount("/v1", app)])) as c:
                r = c.post("/v1/score", json=body, headers=auth(served["tokens"]["reviewer"]))
                assert r.status_code == 200, r.text
                answers.append(r.json()["scores"])
    finally:
        app.state.umrisk = before
    assert answers[0] == answers[1]


def test_a_start_up_that_cannot_serve_the_batch_says_why(both, served, tmp_path):
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    with pytest.raises(StartupError, match="no batch scores in the case store: run `umrisk score-batch"):
        ServiceState.build(replace(served["settings"], scores="batch", database_url=empty))
    auto = ServiceState.build(replace(served["settings"], scores="auto", database_url=empty))
    assert not isinstance(auto.scorer, BatchScorer)  # auto falls back to scoring the population
    import shutil

    old_layout = tmp_path / "old-layout"
    shutil.copytree(served["store"], old_layout, ignore=shutil.ignore_patterns("service", "features"))
    (old_layout / "_partitions.json").unlink()
    with pytest.raises(StartupError, match="not partitioned by member: convert it with `umrisk data repartition"):
        ServiceState.build(replace(served["settings"], data=old_layout, scores="batch", database_url=both["url"]))
    fallback = ServiceState.build(replace(served["settings"], data=old_layout, scores="auto",
                                          database_url=both["url"]))
    assert not isinstance(fallback.scorer, BatchScorer)
    models = both["batch"].models
    other = {n: replace(m, version=str(int(m.version) + 1)) for n, m in models.items()}
    with pytest.raises(NoBatch, match="are from version .* but the champion served is version"):
        BatchScorer(served["store"], other, both["batch"].cases)


def test_umrisk_serve_with_two_workers_serves_the_batch(both, served, tmp_path):
    """A real `umrisk serve --workers 2 --scores batch`: it says where scores come from, runs two worker
    processes, answers with the run's rows, and audits every score served."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    import httpx
    import psutil

    from tests.processes import free_port, wait_until_ready

    port = free_port()
    log = tmp_path / "serve.log"
    s = served["settings"]
    exe = Path(sys.executable).with_name("umrisk")
    proc = subprocess.Popen([str(exe), "serve", "--data", str(s.data), "--port", str(port), "--tokens", str(s.tokens),
                             "--audit", str(tmp_path / "audit.jsonl"), "--tracking-uri", served["uri"],
                             "--database-url", both["url"], "--scores", "batch", "--workers", "2"],
                            stdout=open(log, "w"), stderr=subprocess.STDOUT,  # noqa: SIM115
                            start_new_session=True)
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/readyz", proc, log, 180)
        text = log.read_text()
        assert "(2 workers; batch scores of admission_180d" in text, text
        ids = [str(m) for m in both["population"].scorer.cache["admission_180d"]["member_id"][:5]]
        want = both["batch"].scorer.score("admission_180d", ids)
        for _ in range(4):  # several requests, so both workers are likely to answer one
            r = httpx.post(f"http://127.0.0.1:{port}/v1/score", json={"model": "admission_180d", "member_ids": ids},
                           headers=auth(served["tokens"]["reviewer"]), timeout=30)
            assert r.status_code == 200, r.text
            got = r.json()["scores"]
            assert [(g["member_id"], g["probability"], g["tier"], g["reasons"]) for g in got] == \
                [(w["member_id"], w["probability"], w["tier"], w["reasons"]) for w in want]
        workers = [p for p in psutil.Process(proc.pid).children(recursive=True) if "umrisk" in " ".join(p.cmdline())]
        assert len([p for p in workers if "--worker-id" in " ".join(p.cmdline())]) == 2, [p.cmdline() for p in workers]
        from umrisk.serving.audit import AuditLog

        log_of_both = AuditLog(tmp_path / "audit.jsonl")
        log_of_both.check()  # two processes appended to one chain under its lock: it still verifies
        assert sum(e["event"] == "served" for e in log_of_both.entries()) == 4 * len(ids)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)


def test_the_nightly_run_is_served_without_a_restart(both, served, tmp_path):
    """A worker takes up the batch job's newer runs (here the same date scored again) on its next request."""
    import shutil

    url = f"sqlite:///{tmp_path / 'cases.db'}"
    shutil.copy(both["url"].removeprefix("sqlite:///"), tmp_path / "cases.db")
    state = ServiceState.build(replace(served["settings"], scores="batch", database_url=url))
    s = state.scorer
    first = {n: r["run_id"] for n, r in s.runs.items()}
    for m in MODELS:
        score_batch(m, served["store"], database=url, tracking_uri=served["uri"])
    ids = [str(m) for m in both["population"].scorer.cache["admission_180d"]["member_id"][:5]]
    s.score("admission_180d", ids)
    assert {n: r["run_id"] for n, r in s.runs.items()} == first  # looked for at most once a minute
    s.refresh_seconds, s._next_check = 0.0, 0.0
    got = s.score("admission_180d", ids)
    newer = {n: r["run_id"] for n, r in s.runs.items()}
    assert all(newer[n] > first[n] for n in MODELS)
    assert got == both["population"].scorer.score("admission_180d", ids)


def test_umrisk_serves_checks_import_no_scoring_stack():
    """`umrisk serve` checks the store, the registry and the batch runs before it hands over to BentoML; those
    checks import neither LightGBM nor scikit-learn (about a second of a start-up whose target is 10 s): the
    workers load them."""
    import subprocess
    import sys

    code = ("import sys; import umrisk.cli, umrisk.serving.state, umrisk.training.registry; "
            "print(sorted(m for m in ('lightgbm', 'sklearn', 'shap') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"
