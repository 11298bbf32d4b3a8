"""The audit log's group commit: appends from many threads and two processes at once make one chain that
verifies against its checkpoint; an append that returns early (entries on disk) is covered by the checkpoint
before anyone else can verify or append; this process's remembered end is never trusted over a file another
writer or an attacker changed; a failed write reaches every caller waiting on it."""

import json
import multiprocessing
import threading
from pathlib import Path

import pytest

from tests.service import checkpoints
from umrisk.serving.audit import AuditError, AuditLog, checkpoint_path, verify


def _entries(n: int, tag: str) -> list[dict]:
    return [{"caller": "t1", "role": "nurse_reviewer", "endpoint": "score", "event": "served",
             "member_id": f"{tag}-{i}", "model": "admission_180d", "model_version": "1", "probability": 0.1}
            for i in range(n)]


def _threads(log: AuditLog, tag: str, threads: int = 8, each: int = 15, checkpointed: bool = False) -> None:
    def work(k: int) -> None:
        for i in range(each):
            log.append(_entries(1 + i % 3, f"{tag}{k}.{i}"), checkpointed=checkpointed)

    ts = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not any(t.is_alive() for t in ts)


def _process(path: str, tag: str) -> None:
    _threads(AuditLog(Path(path)), tag)


def _expected(threads: int = 8, each: int = 15) -> int:
    return threads * sum(1 + i % 3 for i in range(each))


def test_concurrent_appends_from_threads_make_one_chain(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    _threads(log, "a")
    ok, n, message = verify(log.path)
    assert ok and n == _expected(), message
    served = [e["member_id"] for e in log.entries()]
    assert len(set(served)) == len(served) == _expected()  # nothing lost, nothing written twice


def test_two_processes_with_concurrent_requests_make_one_chain(tmp_path):
    path = tmp_path / "audit.jsonl"
    AuditLog(path)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_process, args=(str(path), f"w{w}")) for w in range(2)]
    for p in procs:
        p.start()
    _threads(AuditLog(path), "parent", threads=4)  # and this process at the same time
    for p in procs:
        p.join(120)
    assert all(p.exitcode == 0 for p in procs)
    ok, n, message = verify(path)
    assert ok and n == 2 * _expected() + _expected(threads=4), message
    assert [e["seq"] for e in AuditLog(path).entries()] == list(range(1, n + 1))


def test_an_early_return_is_on_disk_and_checkpointed_before_a_verification(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    for i in range(20):
        log.append(_entries(2, f"r{i}"), checkpointed=False)
        lines = log.path.read_text().splitlines()
        assert json.loads(lines[-1])["member_id"] == f"r{i}-1"  # written before append returned
        ok, n, message = verify(log.path)  # waits for the lock the checkpoint is written under
        assert ok and n == 2 * (i + 1), message


def test_another_writer_in_between_is_read_not_overwritten(tmp_path):
    path = tmp_path / "audit.jsonl"
    a, b = AuditLog(path), AuditLog(path)  # two workers' logs, each remembering its own last end
    for i in range(5):
        a.append(_entries(2, f"a{i}"))
        b.append(_entries(1, f"b{i}"), checkpointed=False)
    a.append(_entries(1, "a-last"))
    ok, n, message = verify(path)
    assert ok and n == 16, message


def test_a_log_cut_after_this_process_wrote_it_is_still_refused(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    log.append(_entries(3, "x"))
    log.append(_entries(3, "y"))
    lines = log.path.read_text().splitlines()
    log.path.write_text("\n".join(lines[:4]) + "\n")  # same file, shorter: the remembered end is stale
    with pytest.raises(AuditError, match="does not match its checkpoint"):
        log.append(_entries(1, "z"), checkpointed=False)
    assert not verify(log.path)[0]


def test_a_checkpoint_replaced_after_this_process_wrote_it_is_still_refused(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    log.append(_entries(3, "x"))
    cp = checkpoint_path(log.path)
    slot, body = checkpoints.newest(cp)
    checkpoints.overwrite(cp, slot, json.dumps({**body, "entries": 2}))  # a forged count: its signature fails
    with pytest.raises(AuditError, match="signature"):
        log.append(_entries(1, "y"))


def test_a_failed_group_reaches_every_waiting_caller(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    log.append(_entries(2, "ok"))
    with log.path.open("a") as fh:
        fh.write('{"caller":"t1","endpoint":"score","member_id":"M0')  # torn: no append may sign over it
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            log.append(_entries(1, f"t{k}"), checkpointed=k % 2 == 0)
        except AuditError as err:
            errors.append(err)

    ts = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    assert not any(t.is_alive() for t in ts) and len(errors) == 8
    assert all("cut short" in str(e) for e in errors)


# ---------------------------------------------------------------------------- the checkpoint's two slots

def test_appends_move_the_checkpoint_in_place_over_the_older_slot(tmp_path):
    """The checkpoint is rewritten in place (same file, no rename), the newer slot covering the log and the
    older one the append before it."""
    log = AuditLog(tmp_path / "audit.jsonl")
    cp = checkpoint_path(log.path)
    log.append(_entries(2, "a"))
    inode = cp.stat().st_ino
    for k in range(5):
        log.append(_entries(1 + k, f"b{k}"))
        newer, older = sorted((s for s in checkpoints.slots(cp) if s), key=lambda s: -s["entries"])
        assert newer["entries"] == 2 + sum(range(1, k + 2)) and older["entries"] == newer["entries"] - (1 + k)
    assert cp.stat().st_ino == inode and cp.stat().st_size == 2 * checkpoints.SLOT
    assert verify(log.path)[0]


def test_a_slot_cut_short_is_named_and_sealing_recovers(tmp_path):
    """A crash in the middle of a slot's write leaves that slot unreadable: verification names the slot and
    start-up refuses, as for entries a crash left without their checkpoint; `umrisk audit seal` recovers."""
    from umrisk.serving.audit import seal

    log = AuditLog(tmp_path / "audit.jsonl")
    log.append(_entries(2, "a"))
    log.append(_entries(2, "b"))
    cp = checkpoint_path(log.path)
    slot, body = checkpoints.newest(cp)
    checkpoints.overwrite(cp, 1 - slot, json.dumps(body)[:90])  # the next write, torn
    ok, _, message = verify(log.path)
    assert not ok and f"slot {1 - slot}: unreadable" in message
    with pytest.raises(AuditError, match=f"slot {1 - slot}"):
        AuditLog(log.path).check()
    assert seal(log.path)[0] == 4
    assert verify(log.path)[0]
    AuditLog(log.path).append(_entries(1, "c"))
    assert verify(log.path) == (True, 5, verify(log.path)[2])


def test_a_checkpoint_of_one_object_is_read_and_replaced_by_slots(tmp_path):
    """A log whose checkpoint was written before slots (one indented JSON object) still verifies, and the next
    append writes the two slots."""
    from umrisk.serving.audit import _mac, _read_key, default_key_path

    log = AuditLog(tmp_path / "audit.jsonl")
    log.append(_entries(3, "a"))
    cp = checkpoint_path(log.path)
    _, body = checkpoints.newest(cp)
    body.pop("mac")
    body["mac"] = _mac(_read_key(default_key_path(log.path)), body)
    cp.write_text(json.dumps(body, indent=1) + "\n")  # the old layout
    assert verify(log.path)[0]
    AuditLog(log.path).append(_entries(1, "b"))
    assert verify(log.path)[:2] == (True, 4)
    assert [s["entries"] for s in checkpoints.slots(cp) if s] == [4]


# ---------------------------------------------------------------------------- appends from coroutines

def test_coroutines_append_without_blocking_the_loop_and_share_fsyncs(tmp_path):
    """``append_async``: each coroutine resumes once its entries are on disk; many at once make one chain that
    verifies, in fewer writes than appends (grouped), and the loop goes on running while the disk is written."""
    import asyncio

    log = AuditLog(tmp_path / "audit.jsonl")
    writes = []
    lines = AuditLog._lines

    def counted(self, entries, tickets):
        writes.append(len(tickets))
        return lines(self, entries, tickets)

    async def main() -> int:
        ticks = 0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0)

        t = asyncio.create_task(ticker())

        async def one(k: int) -> None:
            await log.append_async(_entries(1 + k % 2, f"c{k}"))
            on_disk = log.path.read_text()
            assert f'"c{k}-0"' in on_disk  # durable before the coroutine resumed

        await asyncio.gather(*(one(k) for k in range(40)))
        stop.set()
        await t
        return ticks

    import unittest.mock as mock

    with mock.patch.object(AuditLog, "_lines", counted):
        ticks = asyncio.run(main())
    assert log.flush(10)
    ok, n, _ = verify(log.path)
    assert ok and n == sum(1 + k % 2 for k in range(40))
    assert sum(writes) == 40 and len(writes) < 40  # grouped: fewer fsyncs than appends
    assert ticks > 0


def test_a_coroutine_hears_a_failed_write(tmp_path):
    import asyncio

    log = AuditLog(tmp_path / "audit.jsonl")
    log.append(_entries(1, "ok"))
    with log.path.open("a") as fh:
        fh.write('{"caller":"t1","endpoint":"score","member_id":"M0')  # torn: no append may sign over it
    with pytest.raises(AuditError):
        asyncio.run(log.append_async(_entries(1, "x")))


# ---------------------------------------------------------------------------- the start-up check

def test_start_up_checks_the_end_against_the_checkpoint_without_walking_the_chain(tmp_path, monkeypatch):
    """Every worker checks the log at start-up, and a log grows by millions of entries: when it ends exactly at
    its signed checkpoint (length, last seq, head hash), the chain is not walked. Anything else is walked, to
    say what is wrong."""
    from umrisk.serving import audit as audit_module

    log = AuditLog(tmp_path / "audit.jsonl")
    for k in range(5):
        log.append(_entries(3, f"s{k}"))
    walks = []
    scan = audit_module._scan
    monkeypatch.setattr(audit_module, "_scan", lambda *a, **k: walks.append(1) or scan(*a, **k))
    assert AuditLog(log.path).check() == 15 and walks == []
    with log.path.open("a") as fh:  # an entry past the checkpoint: walked, and refused
        fh.write(log.path.read_text().splitlines()[-1] + "\n")
    with pytest.raises(AuditError):
        AuditLog(log.path).check()
    assert walks


def test_a_checkpoint_without_the_logs_length_is_walked(tmp_path):
    """A checkpoint signed before the log's length was kept: the start-up check walks the chain, and the next
    append records the length."""
    from umrisk.serving.audit import _mac, _read_key, default_key_path

    log = AuditLog(tmp_path / "audit.jsonl")
    log.append(_entries(3, "a"))
    cp = checkpoint_path(log.path)
    slot, body = checkpoints.newest(cp)
    body.pop("log_bytes")
    body.pop("mac")
    body["mac"] = _mac(_read_key(default_key_path(log.path)), body)
    checkpoints.overwrite(cp, slot, json.dumps(body))
    assert AuditLog(log.path).check() == 3
    AuditLog(log.path).append(_entries(1, "b"))
    assert checkpoints.newest(cp)[1]["log_bytes"] == log.path.stat().st_size
