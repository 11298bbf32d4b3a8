"""Security pieces without a model: the audit log and its signed checkpoint, the token file, rate limits,
the failed-authentication throttle, and the start-up checks."""

import json
import logging
import multiprocessing
import stat
from pathlib import Path

import pandas as pd
import pytest

from tests.service import checkpoints
from umrisk.features.schema import TABLES
from umrisk.serving.audit import AuditError, AuditLog, checkpoint_path, default_key_path, seal, verify
from umrisk.serving.auth import (
    Caller,
    TokenFileError,
    TokenStore,
    create_token,
    list_tokens,
    read_tokens,
    revoke_token,
)
from umrisk.serving.ratelimit import FailedAuthThrottle, RateLimiter
from umrisk.serving.state import ServiceState, Settings, StartupError, preflight


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _scores(n: int, start: int = 0) -> list[dict]:
    return [{"caller": "t1", "role": "reviewer", "endpoint": "score", "member_id": f"M{i:08d}",
             "model": "admission_180d", "model_version": "1", "probability": 0.1} for i in range(start, start + n)]


def _rechain(entries: list[dict]) -> list[str]:
    """What an attacker without the key can do: recompute every hash after an edit."""
    from umrisk.serving.audit import GENESIS, _digest

    prev, out = GENESIS, []
    for e in entries:
        e = dict(e, prev_hash=prev)
        e["hash"] = _digest(e)
        prev = e["hash"]
        out.append(json.dumps(e, sort_keys=True, separators=(",", ":")))
    return out


@pytest.fixture
def audit(tmp_path) -> AuditLog:
    log = AuditLog(tmp_path / "audit" / "audit.jsonl")
    log.append(_scores(5))
    log.append(_scores(3, 5))
    return log


# -- audit log -----------------------------------------------------------------------------------------------

def test_audit_files_are_private(audit):
    for path in (audit.path, checkpoint_path(audit.path), default_key_path(audit.path)):
        assert _mode(path) == 0o600, path
    assert _mode(audit.path.parent) == 0o700


def test_an_existing_world_readable_log_is_made_private(tmp_path):
    path = tmp_path / "audit.jsonl"
    path.touch(mode=0o644)
    path.chmod(0o644)
    AuditLog(path)
    assert _mode(path) == 0o600


def test_intact_log_verifies_against_its_checkpoint(audit):
    ok, n, message = verify(audit.path)
    assert ok and n == 8 and "checkpoint" in message
    assert audit.check() == 8


def test_truncation_is_detected(audit):
    lines = audit.path.read_text().splitlines()
    audit.path.write_text("\n".join(lines[:6]) + "\n")
    ok, n, message = verify(audit.path)
    assert not ok and n == 6
    assert message.startswith("truncated") and "8" in message
    with pytest.raises(AuditError, match="truncated"):
        audit.check()


def test_edit_and_rechain_is_detected(audit):
    entries = [json.loads(x) for x in audit.path.read_text().splitlines()]
    entries[2]["probability"] = 0.9
    audit.path.write_text("\n".join(_rechain(entries)) + "\n")
    ok, _, message = verify(audit.path)
    assert not ok and "re-computed" in message


def test_removing_an_entry_and_rechaining_is_detected(audit):
    entries = [json.loads(x) for x in audit.path.read_text().splitlines()]
    kept = [dict(e, seq=i + 1) for i, e in enumerate(entries[:3] + entries[4:])]
    kept.append(dict(entries[-1], seq=8, member_id="M99999999"))  # padded back to the same count
    audit.path.write_text("\n".join(_rechain(kept)) + "\n")
    ok, _, message = verify(audit.path)
    assert not ok and "re-computed" in message


def test_a_checkpoint_forged_without_the_key_is_detected(audit):
    entries = [json.loads(x) for x in audit.path.read_text().splitlines()][:4]
    audit.path.write_text("\n".join(_rechain(entries)) + "\n")
    cp_file = checkpoint_path(audit.path)
    slot, cp = checkpoints.newest(cp_file)
    cp.update(entries=4, last_seq=4, head=entries[-1]["hash"])
    checkpoints.overwrite(cp_file, slot, json.dumps(cp))
    ok, _, message = verify(audit.path)
    assert not ok and "signature does not match" in message


def test_a_removed_checkpoint_is_detected(audit):
    checkpoint_path(audit.path).unlink()
    ok, _, message = verify(audit.path)
    assert not ok and "missing" in message


def test_a_torn_last_line_fails_at_start_up_not_per_request(audit):
    with audit.path.open("a") as fh:
        fh.write('{"caller":"t1","endpoint":"score","member_id":"M0')
    with pytest.raises(AuditError) as err:
        audit.check()
    assert str(audit.path) in str(err.value) and "line 9" in str(err.value) and "cut short" in str(err.value)
    with pytest.raises(AuditError, match="cut short"):  # and a running service refuses to write past it
        audit.append(_scores(1))


def test_an_unparsable_line_names_file_and_line(audit):
    lines = audit.path.read_text().splitlines()
    lines[3] = "not json"
    audit.path.write_text("\n".join(lines) + "\n")
    with pytest.raises(AuditError, match=r"line 4 is not a JSON object"):
        audit.check()
    with pytest.raises(AuditError, match=r"line 4"):
        audit.entries("score")


def test_append_refuses_to_sign_over_a_truncation(audit):
    lines = audit.path.read_text().splitlines()
    audit.path.write_text("\n".join(lines[:6]) + "\n")
    with pytest.raises(AuditError, match="does not match its checkpoint"):
        audit.append(_scores(1, 50))
    assert not verify(audit.path)[0]


def test_a_log_without_checkpoint_is_refused_until_sealed(tmp_path):
    path = tmp_path / "old.jsonl"
    log = AuditLog(path)
    log.append(_scores(4))
    checkpoint_path(path).unlink()
    default_key_path(path).unlink()
    ok, n, message = verify(path)
    assert ok and n == 4 and "no checkpoint" in message
    with pytest.raises(AuditError, match="umrisk audit seal"):
        AuditLog(path).check()
    assert seal(path) == (4, json.loads(path.read_text().splitlines()[-1])["hash"])
    assert AuditLog(path).check() == 4


def _append_many(path: str, worker: int) -> None:
    log = AuditLog(Path(path))
    for i in range(20):
        log.append(_scores(2, 1000 * worker + 2 * i))


def test_several_processes_extend_one_chain(tmp_path):
    path = tmp_path / "audit.jsonl"
    AuditLog(path)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(str(path), w)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    ok, n, message = verify(path)
    assert ok and n == 120, message


def test_record_audits_lookups_and_refusals(audit):
    audit.record("t1", "reviewer", "score", "lookup", member_id="NOBODY", outcome="unknown member", status=200)
    audit.record(None, None, "outreach", "refused", outcome="missing or invalid bearer token", status=401,
                 client="10.0.0.9")
    last = audit.entries()[-2:]
    assert last[0]["event"] == "lookup" and last[0]["member_id"] == "NOBODY" and last[0]["status"] == 200
    assert last[1]["event"] == "refused" and last[1]["status"] == 401 and "member_id" not in last[1]
    assert all({"seq", "time", "prev_hash", "hash"} <= set(e) for e in last)
    assert [e["seq"] for e in last] == [9, 10]
    assert verify(audit.path)[0]
    assert len(audit.entries("score")) == 9 and len(audit.entries("outreach")) == 1


def test_many_lookups_go_in_with_one_write(audit):
    audit.append([AuditLog.event("t1", "reviewer", "score", "lookup", member_id=m, outcome="unknown member")
                  for m in ("X1", "X2", "X3")])
    assert [e["member_id"] for e in audit.entries()[-3:]] == ["X1", "X2", "X3"] and audit.check() == 11


def test_members_listed_counts_only_members_served(audit):
    audit.record(None, None, "score", "refused", status=429)
    audit.record("t1", "reviewer", "score", "lookup", member_id="NOBODY", outcome="unknown member")
    since = pd.Timestamp.now(tz="UTC") - pd.Timedelta(minutes=5)
    assert audit.members_listed("score", since) == {f"M{i:08d}" for i in range(8)}
    assert audit.members_listed("score", pd.Timestamp.now(tz="UTC") + pd.Timedelta(minutes=1)) == set()


# -- tokens --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_bearer_scheme_is_case_insensitive(tmp_path, scheme):
    _, token = create_token(tmp_path / "tokens.json", "reviewer", "nurse")
    store = TokenStore(tmp_path / "tokens.json")
    store.load()
    expected = Caller(store.check(f"Bearer {token}").token_id, "nurse_reviewer", "nurse")  # reviewer is read as a nurse
    assert store.check(f"{scheme} {token}") == expected
    assert store.check(f"Basic {token}") is None and store.check(scheme) is None and store.check(token) is None


def test_token_file_is_private_in_a_new_folder(tmp_path):
    path = tmp_path / "new" / "tokens.json"
    create_token(path, "admin")
    assert _mode(path) == 0o600 and _mode(path.parent) == 0o700
    assert not [p for p in path.parent.iterdir() if p.name != "tokens.json"]  # no temporary file left


@pytest.mark.parametrize("text", ['[{"id": "a1", "role": "admin", "sha256": "', "{}", '[{"id": "a1"}]',
                                  '[{"id": "a1", "role": "root", "sha256": "' + "0" * 64 + '"}]'])
def test_a_malformed_token_file_fails_at_load_naming_the_file(tmp_path, text):
    path = tmp_path / "tokens.json"
    path.write_text(text)
    with pytest.raises(TokenFileError, match=str(path)):
        TokenStore(path).load()


def test_a_token_file_broken_while_running_keeps_the_tokens_read_before(tmp_path, caplog):
    path = tmp_path / "tokens.json"
    _, token = create_token(path, "reviewer")
    store = TokenStore(path)
    assert store.load() == 1
    text = path.read_text()
    path.write_text(text[: len(text) // 2])  # half written, by hand
    with caplog.at_level(logging.WARNING, logger="umrisk.serving"):
        assert store.check(f"Bearer {token}") is not None
    assert "keeping the 1 token(s)" in caplog.text and str(path) in caplog.text
    assert token not in caplog.text and json.loads(text)[0]["sha256"] not in caplog.text
    path.write_text(text)
    _, second = create_token(path, "admin")
    assert store.check(f"Bearer {second}") is not None  # a good file is picked up again


def test_list_and_revoke(tmp_path):
    path = tmp_path / "tokens.json"
    first, token = create_token(path, "reviewer", "nurse")
    create_token(path, "admin", "ops")
    store = TokenStore(path)
    store.load()
    listed = list_tokens(path)
    assert [(t["id"], t["role"], t["name"]) for t in listed][0] == (first, "nurse_reviewer", "nurse")
    assert all(set(t) == {"id", "role", "name", "created", "expires", "expired"} for t in listed)
    assert revoke_token(path, first)["role"] == "nurse_reviewer"
    assert [t["role"] for t in list_tokens(path)] == ["admin"]
    assert store.check(f"Bearer {token}") is None  # the running service sees the revocation
    with pytest.raises(KeyError, match="no token with id"):
        revoke_token(path, first)


def test_create_token_refuses_to_overwrite_a_malformed_file(tmp_path):
    path = tmp_path / "tokens.json"
    path.write_text('[{"id": "a1", "role": "admin", "sha256": "')
    with pytest.raises(TokenFileError):
        create_token(path, "admin")
    assert read_tokens.__name__  # the file is left as it was for someone to look at
    assert path.read_text().endswith('"sha256": "')


# -- rate limits ---------------------------------------------------------------------------------------------

class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_limiter_allows_a_burst_then_answers_retry_after():
    clock = Clock()
    limiter = RateLimiter(per_minute=6, burst=3, clock=clock)
    assert [limiter.allow("a")[0] for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("a") == (False, 10)  # 6 a minute: one every 10 s
    assert limiter.allow("b") == (True, 0)  # per key
    clock.now += 10
    assert limiter.allow("a") == (True, 0)
    assert limiter.allow("a")[0] is False


def test_rate_limiter_default_burst_is_a_minute_of_requests():
    limiter = RateLimiter(per_minute=600, clock=Clock())
    assert sum(limiter.allow("a")[0] for _ in range(700)) == 600


def test_rate_limiter_memory_is_bounded():
    limiter = RateLimiter(per_minute=1, max_keys=100, clock=Clock())
    for i in range(1000):
        limiter.allow(f"k{i}")
    assert len(limiter._buckets) == 100


def test_failed_auth_throttle_grows_and_forgets():
    clock = Clock()
    throttle = FailedAuthThrottle(free=3, window_s=60, base_s=1, max_s=8, clock=clock)
    delays = []
    for _ in range(8):
        throttle.record_failure("10.0.0.9")
        delays.append(throttle.delay("10.0.0.9"))
    assert delays == [0, 0, 0, 1, 2, 4, 8, 8]
    assert throttle.delay("10.0.0.8") == 0 and throttle.failures("10.0.0.9") == 8
    clock.now += 3
    assert throttle.delay("10.0.0.9") == 5
    clock.now += 61
    assert throttle.delay("10.0.0.9") == 0 and throttle.failures("10.0.0.9") == 0


def test_failed_auth_throttle_memory_is_bounded():
    throttle = FailedAuthThrottle(max_keys=50, clock=Clock())
    for i in range(500):
        throttle.record_failure(f"10.0.{i // 256}.{i % 256}")
    assert len(throttle._failures) == 50


# -- start-up ------------------------------------------------------------------------------------------------

def _store(root: Path, without: tuple[str, ...] = ()) -> Path:
    """A store folder with one (empty) part per table: what the start-up check looks at is which tables exist."""
    for name in TABLES:
        if name not in without:
            (root / "store" / name).mkdir(parents=True, exist_ok=True)
            (root / "store" / name / "part-00000.parquet").touch()
    return root / "store"


def _settings(tmp_path, **kw) -> Settings:
    create_token(tmp_path / "tokens.json", "reviewer")
    return Settings(**{"data": _store(tmp_path), "tokens": tmp_path / "tokens.json",
                       "audit": tmp_path / "audit.jsonl", **kw})


def test_a_store_missing_a_table_is_refused_before_models_load(tmp_path):
    settings = _settings(tmp_path, data=_store(tmp_path / "x", without=("labs", "medications")))
    with pytest.raises(StartupError) as err:
        ServiceState.build(settings)  # raises before MLflow is asked for anything
    assert "labs" in str(err.value) and "medications" in str(err.value) and str(settings.data) in str(err.value)


def test_review_requests_is_optional(tmp_path):
    preflight(_settings(tmp_path, data=_store(tmp_path / "x", without=("review_requests",))))


def test_a_malformed_token_file_is_refused_at_start_up(tmp_path):
    settings = _settings(tmp_path)
    settings.tokens.write_text(settings.tokens.read_text()[:40])
    with pytest.raises(StartupError, match="token file .*tokens.json: not valid JSON"):
        ServiceState.build(settings)


def test_a_torn_audit_log_is_refused_at_start_up(tmp_path):
    settings = _settings(tmp_path)
    AuditLog(settings.audit).append(_scores(2))
    with settings.audit.open("a") as fh:
        fh.write('{"seq": 3')
    with pytest.raises(StartupError, match=r"audit.jsonl.*line 3 is cut short"):
        ServiceState.build(settings)


@pytest.mark.parametrize("content", [None, "", "[]"])
def test_no_token_configured_is_a_warning(tmp_path, caplog, content):
    settings = _settings(tmp_path)
    settings.tokens.unlink()
    if content is not None:
        settings.tokens.write_text(content)
    with caplog.at_level(logging.WARNING, logger="umrisk.serving"):
        preflight(settings)
    assert "no token in" in caplog.text and "401" in caplog.text


def test_a_token_file_others_can_read_is_a_warning(tmp_path, caplog):
    settings = _settings(tmp_path)
    settings.tokens.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="umrisk.serving"):
        preflight(settings)
    assert "can be read by other users" in caplog.text


def test_rate_limit_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("UMRISK_DATA", str(tmp_path))
    monkeypatch.setenv("UMRISK_RATE_LIMIT", "120")
    assert Settings.from_env().rate_limit == 120
    monkeypatch.setenv("UMRISK_RATE_LIMIT", "fast")
    with pytest.raises(StartupError, match="UMRISK_RATE_LIMIT"):
        Settings.from_env()
