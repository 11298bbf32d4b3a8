"""The case store from the command line (db upgrade, review load, review metrics) and tokens for people (roles,
user names, expiry, the old reviewer role read as nurse_reviewer)."""

import json

import pandas as pd
from typer.testing import CliRunner

from tests.service import casedb
from umrisk.cli import app
from umrisk.features.schema import read_table
from umrisk.serving.auth import TokenStore, create_token, list_tokens, read_tokens
from umrisk.serving.cases.repository import CaseStore

postgres_url = casedb.postgres_url  # the session's PostgreSQL database, by name
runner = CliRunner()


def test_db_upgrade_creates_then_finds_the_schema_current(tmp_path):
    url = f"sqlite:///{tmp_path / 'cases.db'}"
    first = runner.invoke(app, ["db", "upgrade", "--database-url", url])
    assert first.exit_code == 0 and "upgraded from an empty database" in first.output
    again = runner.invoke(app, ["db", "upgrade", "--database-url", url])
    assert again.exit_code == 0 and "already at revision" in again.output


def test_db_upgrade_on_postgresql(postgres_url):
    r = runner.invoke(app, ["db", "upgrade", "--database-url", postgres_url])
    assert r.exit_code == 0 and "revision" in r.output and "postgresql" in r.output


def test_an_unreachable_database_is_one_line(tmp_path):
    r = runner.invoke(app, ["db", "upgrade", "--database-url", "postgresql://postgres@127.0.0.1:1/none"])
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1 and "cannot upgrade" in r.output


def test_review_load_brings_the_generated_backlog_and_metrics_read_it(small_store, tmp_path):
    url = f"sqlite:///{tmp_path / 'cases.db'}"
    loaded = runner.invoke(app, ["review", "load", str(small_store), "--database-url", url])
    assert loaded.exit_code == 0, loaded.output
    requests = read_table(small_store, "review_requests")
    still_open = int(requests["status"].isin(["open", "in_review", "pended"]).sum())
    assert f"loaded {still_open:,} open review requests of {len(requests):,}" in loaded.output
    store = CaseStore.open(url)
    assert len(store.cases()) == still_open
    store.dispose()
    m = runner.invoke(app, ["review", "metrics", "--year", "2025", "--database-url", url, "--json"])
    assert m.exit_code == 0, m.output
    figures = json.loads(m.output)
    assert figures["backlog"]["standard"]["open"] + figures["backlog"]["expedited"]["open"] == still_open
    assert {"pct_approved", "pct_denied", "pct_approved_after_appeal", "pct_approved_after_extension",
            "avg_hours_to_decision", "median_hours_to_decision"} <= set(figures["standard"])
    text = runner.invoke(app, ["review", "metrics", "--year", "2025", "--database-url", url])
    assert text.exit_code == 0 and "approved after appeal" in text.output


def test_review_load_of_a_store_without_requests_is_one_line(tmp_path):
    r = runner.invoke(app, ["review", "load", str(tmp_path), "--database-url", f"sqlite:///{tmp_path / 'c.db'}"])
    assert r.exit_code == 2 and "no review_requests table" in r.output


def test_a_reviewer_token_names_its_person_and_may_expire(tmp_path):
    path = tmp_path / "tokens.json"
    nameless = runner.invoke(app, ["token", "create", "--role", "physician_reviewer", "--tokens", str(path)])
    assert nameless.exit_code == 2 and "--name" in nameless.output
    made = runner.invoke(app, ["token", "create", "--role", "physician_reviewer", "--name", "Dr. Ada Lee",
                               "--expires-days", "30", "--tokens", str(path)])
    assert made.exit_code == 0
    [t] = list_tokens(path)
    assert (t["role"], t["name"], t["expired"]) == ("physician_reviewer", "Dr. Ada Lee", False) and t["expires"]
    listed = runner.invoke(app, ["token", "list", "--tokens", str(path)])
    assert "physician_reviewer" in listed.output and t["expires"] in listed.output


def test_an_expired_token_is_refused(tmp_path):
    path = tmp_path / "tokens.json"
    _, token = create_token(path, "nurse_reviewer", "nina", expires_days=1)
    store = TokenStore(path)
    store.load()
    assert store.check(f"Bearer {token}").name == "nina"
    entries = json.loads(path.read_text())
    entries[0]["expires"] = (pd.Timestamp.now(tz="UTC") - pd.Timedelta(minutes=1)).isoformat()
    path.write_text(json.dumps(entries))
    assert store.check(f"Bearer {token}") is None
    assert list_tokens(path)[0]["expired"]


def test_the_old_reviewer_role_is_read_as_nurse_reviewer(tmp_path):
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps([{"id": "a1", "role": "reviewer", "name": "nina", "sha256": "0" * 64,
                                 "created": "2026-01-01T00:00:00+00:00"}]))
    assert read_tokens(path)[0]["role"] == "nurse_reviewer"
    create_token(path, "admin", "ops")  # the next write keeps the migrated role
    assert [e["role"] for e in json.loads(path.read_text())] == ["nurse_reviewer", "admin"]


def test_review_metrics_with_the_risk_tier_mix_of_the_open_queue(served, tmp_path):
    """The risk-tier mix, as GET /v1/review-metrics gives it, from the command line too (--tiers --store)."""
    url = f"sqlite:///{tmp_path / 'cases.db'}"
    store = served["store"]
    assert runner.invoke(app, ["review", "load", str(store), "--database-url", url]).exit_code == 0
    refused = runner.invoke(app, ["review", "metrics", "--year", "2025", "--database-url", url, "--tiers"])
    assert refused.exit_code == 2 and "--tiers needs --store" in refused.output
    r = runner.invoke(app, ["review", "metrics", "--year", "2025", "--database-url", url, "--json", "--tiers",
                            "--store", str(store), "--tracking-uri", served["uri"]])
    assert r.exit_code == 0, r.output
    mix = json.loads(r.output)["risk_tier_mix"]
    still_open = int(read_table(store, "review_requests")["status"].isin(["open", "in_review", "pended"]).sum())
    assert still_open > 0 and set(mix) == {"readmission_30d", "admission_180d"}
    assert all(sum(counts.values()) == still_open for counts in mix.values())
