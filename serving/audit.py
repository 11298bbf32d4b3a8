"""The append-only audit log: one JSON line per event (a member scored, a look-up, a refused call), each
carrying ``seq``, ``time``, the hash of the previous line (``prev_hash``) and its own ``hash``.

The hash chain alone shows an edited, removed, inserted or reordered line, but not a log cut at its end or
rewritten and chained again from the start. So beside the log, outside it, a checkpoint
(``<log>.checkpoint.json``: entry count, last ``seq``, head hash) is kept, signed with HMAC-SHA256 under a
secret key (``<log>.key``, or a key file of its own elsewhere, which is better: whoever can rewrite the log
and read the key can rewrite the checkpoint too). Every append updates the checkpoint under the same file
lock, after the lines are on disk; ``verify`` checks the chain, then the checkpoint's signature, then that
the log still has the checkpoint's count and head. The log, the checkpoint and the key are created 0600.

The checkpoint file has two fixed-size slots (``SLOT`` bytes each, a signed JSON object padded with spaces);
an append overwrites the older slot in place and flushes it with ``fdatasync``, so moving the checkpoint costs
one data write, not a new file, a rename and two flushes (about 0.08 ms against 0.56 ms here). The newer slot
is the checkpoint. A slot that is not a signed checkpoint (a write cut short by a crash, or an edit) makes
the log fail verification, as a crash between the lines and their checkpoint does. A checkpoint written as
one JSON object (before slots) is still read, and replaced by the two slots at the next append.

``AuditLog.check`` runs at start-up and raises ``AuditError`` naming the file and line of anything wrong
(a line cut short by a crash, a line that is not JSON, a broken chain, a checkpoint that does not match),
so a damaged log stops the service from starting instead of failing every request.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import datetime as dt
import fcntl
import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pandas as pd

from umrisk.serving.private_files import replace_private

log = logging.getLogger("umrisk.serving")
GENESIS = "0" * 64
SLOT = 512  # bytes of one checkpoint slot (a signed checkpoint is about 250)


class AuditError(RuntimeError):
    """The audit log cannot be trusted or extended; the message names the file, the line and what is wrong."""


def _canonical(body: dict) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def _digest(entry: dict) -> str:
    return hashlib.sha256(_canonical({k: v for k, v in entry.items() if k != "hash"})).hexdigest()


def checkpoint_path(path: Path) -> Path:
    """Where the checkpoint of the log ``path`` is kept."""
    return path.with_name(path.name + ".checkpoint.json")


def default_key_path(path: Path) -> Path:
    """Where the checkpoint key of the log ``path`` is kept unless another is given."""
    return path.with_name(path.name + ".key")


def _private(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if it does not exist; take group and other access off if it does."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        os.chmod(path, mode & 0o700)


def _read_key(key_path: Path) -> bytes | None:
    try:
        text = key_path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as err:
        raise AuditError(f"audit key {key_path}: cannot be read ({err.__class__.__name__})") from err
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) < 32:
        raise AuditError(f"audit key {key_path}: expected 64 or more hex digits (a 256-bit key)")
    return key


def _new_key(key_path: Path) -> bytes:
    """The key in ``key_path``, created (0600, random 256 bits) if there is none yet."""
    key = _read_key(key_path)
    if key is not None:
        return key
    if not key_path.parent.exists():
        key_path.parent.mkdir(mode=0o700, parents=True)
    try:
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another worker made it first
        return _read_key(key_path) or _new_key(key_path)
    key = secrets.token_bytes(32)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(key.hex() + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return key


def _mac(key: bytes, body: dict) -> str:
    return hmac.new(key, _canonical({k: v for k, v in body.items() if k != "mac"}), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Checkpoint:
    entries: int
    last_seq: int
    head: str
    slot: int | None = None  # the slot it was read from or written to (None: a file of one JSON object)
    size: int | None = None  # the log's length in bytes at this checkpoint (None: written before it was kept)


def _slot_bytes(body: dict | None) -> bytes:
    text = "" if body is None else json.dumps(body, separators=(",", ":"))
    if len(text) >= SLOT:
        raise ValueError(f"a checkpoint of {len(text)} bytes does not fit a slot of {SLOT}")
    return (text.ljust(SLOT - 1) + "\n").encode("ascii")


def _write_checkpoint(path: Path, key: bytes, cp: Checkpoint, slot: int | None = None) -> int:
    """Sign ``cp`` and write it: over slot ``slot`` of the existing file, in place, flushed with ``fdatasync``;
    or, with ``slot`` None, as a new file (slot 0 holding it, slot 1 empty) put in place atomically (a private
    temporary file, flushed, renamed over the old one, the folder flushed). Return the slot written."""
    body = {"entries": cp.entries, "last_seq": cp.last_seq, "head": cp.head,
            "time": dt.datetime.now(dt.UTC).isoformat()}
    if cp.size is not None:
        body["log_bytes"] = cp.size
    body["mac"] = _mac(key, body)
    if slot is not None:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.pwrite(fd, _slot_bytes(body), slot * SLOT)
            os.fdatasync(fd)
        finally:
            os.close(fd)
        return slot
    replace_private(path, (_slot_bytes(body) + _slot_bytes(None)).decode("ascii"))
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    return 0


def _signed(path: Path, key: bytes, text: str, where: str, slot: int | None = None) -> Checkpoint:
    """One signed checkpoint object; ``AuditError`` naming ``where``."""
    try:
        body = json.loads(text)
        size = None if body.get("log_bytes") is None else int(body["log_bytes"])
        values = Checkpoint(int(body["entries"]), int(body["last_seq"]), str(body["head"]), slot, size)
        mac = str(body["mac"])
    except (ValueError, KeyError, TypeError) as err:
        raise AuditError(f"audit checkpoint {path}{where}: unreadable ({err.__class__.__name__}): a write cut "
                         "short by a crash, or it was damaged or replaced") from err
    if not hmac.compare_digest(mac, _mac(key, body)):
        raise AuditError(f"audit checkpoint {path}{where}: its signature does not match (it was edited, or "
                         "written without the log's key)")
    return values


def _read_checkpoint(path: Path, key: bytes) -> Checkpoint:
    """The checkpoint at ``path``, the newer of its two slots, if every slot in use is signed under ``key``;
    ``AuditError`` otherwise. A file of one JSON object (written before slots) is read as such."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as err:
        raise AuditError(f"audit checkpoint {path}: unreadable ({err.__class__.__name__})") from err
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as err:
        raise AuditError(f"audit checkpoint {path}: unreadable (not text): it was damaged or replaced") from err
    if len(raw) != 2 * SLOT or text[SLOT - 1] != "\n":
        return _signed(path, key, text, "")
    slots = [(k, text[k * SLOT:(k + 1) * SLOT].strip()) for k in range(2)]
    found = [_signed(path, key, body, f" slot {k}", k) for k, body in slots if body]
    if not found:
        raise AuditError(f"audit checkpoint {path}: both slots are empty: it was damaged or replaced")
    return max(found, key=lambda cp: (cp.entries, cp.last_seq))


@dataclass
class _Scan:
    ok: bool
    entries: int
    last_seq: int
    head: str
    message: str
    head_at: dict  # entries count -> (line, seq, hash) of the entry the checkpoint names, when reached


def _scan(fh: IO[str], at: int | None = None) -> _Scan:
    """Walk the chain from the start; stop at the first line that breaks it (named by its line number)."""
    prev, seq, n, found = GENESIS, 0, 0, {}
    for lineno, line in enumerate(fh, start=1):
        if not line.strip():
            continue
        try:
            e = json.loads(line)
            if not isinstance(e, dict):
                raise ValueError
        except ValueError:
            torn = not line.endswith("\n")
            what = ("is cut short (the service stopped in the middle of writing it)" if torn
                    else "is not a JSON object")
            return _Scan(False, n, seq, prev, f"line {lineno} {what}", found)
        if e.get("prev_hash") != prev:
            return _Scan(False, n, seq, prev, f"line {lineno} (seq {e.get('seq')}): prev_hash does not "
                         "match the entry before (an entry was removed, inserted or reordered)", found)
        if _digest(e) != e.get("hash"):
            return _Scan(False, n, seq, prev, f"line {lineno} (seq {e.get('seq')}): content does not match "
                         "its hash (edited)", found)
        if e.get("seq") != seq + 1:
            return _Scan(False, n, seq, prev, f"line {lineno}: seq {e.get('seq')} where {seq + 1} was "
                         "expected", found)
        prev, seq, n = e["hash"], e["seq"], n + 1
        if n == at:
            found = {"line": lineno, "seq": seq, "hash": prev}
    return _Scan(True, n, seq, prev, f"{n} entries, chain intact", found)


def _last_entry(fh: IO[str], path: Path) -> dict | None:
    """The open log's last entry, read from its end (None: the log is empty); ``AuditError`` if it is torn."""
    fd = fh.fileno()
    size = os.fstat(fd).st_size
    if size == 0:
        return None
    block = min(size, 65536)
    data = os.pread(fd, block, size - block)
    if not data.endswith(b"\n"):
        raise AuditError(f"{path}: the last line is cut short (the service stopped in the middle of writing it); "
                         f"check the log with `umrisk audit verify {path}`")
    lines = [x for x in data.splitlines() if x.strip()]  # bytes: a block may start inside a character
    try:
        last = json.loads(lines[-1])
        str(last["hash"]), int(last["seq"])
        return last
    except (ValueError, KeyError, TypeError, IndexError) as err:
        raise AuditError(f"{path}: the last line is not an audit entry; check the log with "
                         f"`umrisk audit verify {path}`") from err


def _tail(fh: IO[str], path: Path) -> tuple[str, int]:
    """Head hash and last ``seq`` of the open log, read from its end; ``AuditError`` if the last line is torn."""
    last = _last_entry(fh, path)
    return (GENESIS, 0) if last is None else (str(last["hash"]), int(last["seq"]))


def verify_log(path: Path, key_path: Path | None = None) -> tuple[bool, int, str, bool]:
    """``(ok, entries checked, message, checkpointed)``: the chain, then the signed checkpoint beside it.

    A log with neither checkpoint nor key (a copy, or one written before checkpoints) is ``ok`` if its chain
    holds, with ``checkpointed`` False: its end and a rewrite from the start cannot be checked.
    """
    key_path = key_path or default_key_path(path)
    cp_file = checkpoint_path(path)
    with path.open(encoding="utf-8", newline="") as fh:
        fcntl.flock(fh, fcntl.LOCK_SH)  # appends hold LOCK_EX until their checkpoint is written
        try:
            key = _read_key(key_path)
            cp = None
            if key is not None:
                try:
                    cp = _read_checkpoint(cp_file, key)
                except FileNotFoundError:
                    cp = None
                except AuditError as err:
                    scan = _scan(fh)
                    return False, scan.entries, (scan.message if not scan.ok else str(err)), False
            scan = _scan(fh, cp.entries if cp else None)
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
    if not scan.ok:
        return False, scan.entries, scan.message, cp is not None
    n = scan.entries
    if cp is None:
        if key is not None:
            return False, n, (f"its checkpoint {cp_file} is missing (the log has a key, so it had one: "
                              "it was removed)"), False
        if cp_file.exists():
            return False, n, f"its checkpoint key {key_path} is missing: the checkpoint cannot be checked", False
        return True, n, (f"{n} entries, chain intact; no checkpoint beside it ({cp_file}), so a cut end or a "
                         "rewrite from the start cannot be detected"), False
    if n < cp.entries:
        return False, n, (f"truncated: {n} entries where its checkpoint records {cp.entries} (last seq "
                          f"{cp.last_seq}); {cp.entries - n} entries were removed"), True
    at = scan.head_at if cp.entries else {"line": 0, "seq": 0, "hash": GENESIS}
    if at.get("hash") != cp.head or at.get("seq") != cp.last_seq:
        return False, n, (f"line {at.get('line')} (seq {at.get('seq')}): the chain does not reach the "
                          f"checkpoint's head (seq {cp.last_seq}, hash {cp.head[:12]}...): entries were edited "
                          "and the chain re-computed"), True
    if n > cp.entries:
        return False, n, (f"{n - cp.entries} entries after seq {cp.last_seq} are not covered by its "
                          "checkpoint: the service stopped between writing them and the checkpoint, or they "
                          "were added outside it; read them, then `umrisk audit seal` the log"), True
    return True, n, f"{n} entries, chain intact, matches its signed checkpoint (seq {cp.last_seq})", True


def verify(path: Path, key_path: Path | None = None) -> tuple[bool, int, str]:
    """``(ok, entries checked, message)``; the message names the first broken entry by line and sequence,
    a cut end, or a rewrite the checkpoint shows."""
    ok, n, message, _ = verify_log(path, key_path)
    return ok, n, message


def seal(path: Path, key_path: Path | None = None) -> tuple[int, str]:
    """Sign the log's current end as its checkpoint, after checking its chain (an operator's step: for a log
    written before checkpoints, or the entries left after a crash, once someone has read them)."""
    key_path = key_path or default_key_path(path)
    key = _new_key(key_path)
    with path.open("r+", encoding="utf-8", newline="") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            scan = _scan(fh)
            if not scan.ok:
                raise AuditError(f"not sealed: {scan.message}")
            _write_checkpoint(checkpoint_path(path), key, Checkpoint(scan.entries, scan.last_seq, scan.head,
                                                                     size=os.fstat(fh.fileno()).st_size))
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
    return scan.entries, scan.head


_WRITING: weakref.WeakSet = weakref.WeakSet()  # logs whose writer thread has run in this process


def _flush_all() -> None:
    for audit in list(_WRITING):
        audit.flush(30)


def _flush_at_exit(audit: AuditLog) -> None:
    """At interpreter exit, finish every log's owed checkpoint before the writer threads (daemons) stop."""
    if not _WRITING:
        atexit.unregister(_flush_all)
        atexit.register(_flush_all)
    _WRITING.add(audit)


class _Ticket:
    """One ``append`` call waiting for the writer: ``durable`` once its entries are on disk (``written``) or
    their write failed, ``checkpointed`` once the checkpoint covers them or something failed (``error``)."""

    def __init__(self, on_durable: Callable[[], None] | None = None) -> None:
        self.durable, self.checkpointed = threading.Event(), threading.Event()
        self.written = False
        self.error: BaseException | None = None
        self.on_durable = on_durable  # told (in the writer's thread) once ``durable`` is set

    def set_durable(self) -> None:
        self.durable.set()
        if self.on_durable is not None:
            self.on_durable()

    def fail(self, err: BaseException) -> None:
        self.error = err
        self.set_durable()
        self.checkpointed.set()

    def wait(self, checkpointed: bool) -> None:
        (self.checkpointed if checkpointed else self.durable).wait()
        if self.error is not None and (checkpointed or not self.written):
            raise self.error


@dataclass(frozen=True)
class _Known:
    """The log and checkpoint as this process last left them: the files' identity (inode, size, ctime, which
    any write by anyone changes) and the chain's end."""

    log: tuple[int, int, int]
    checkpoint: tuple[int, int, int] | None
    head: str
    seq: int
    entries: int
    slot: int | None  # the checkpoint's newer slot


def _identity(st: os.stat_result) -> tuple[int, int, int]:
    return st.st_ino, st.st_size, st.st_ctime_ns


class AuditLog:
    """The audit log of one service. Appends take an exclusive lock on the file, so that several worker
    processes extend one chain and one checkpoint.

    Appends are written by one thread per log, in groups: the entries of every ``append`` waiting while the
    previous group was written go in with one lock, one write and one fsync (group commit). Each caller waits
    for its own entries to be on disk; the checkpoint is then signed and written (fsync'd, renamed) under the
    same lock, before any other append or verification can take it. ``append(..., checkpointed=False)``
    returns as soon as the entries are on disk (what the API needs before it answers)."""

    IDLE_S = 2.0  # the writer thread ends after this long without work; the next append starts another

    def __init__(self, path: Path, key_path: Path | None = None):
        self.path = path
        self.key_path = key_path or default_key_path(path)
        self.checkpoint_path = checkpoint_path(path)
        self._key: bytes | None = None
        self._cond = threading.Condition()
        self._pending: list[tuple[list[dict], _Ticket]] = []
        self._writer: threading.Thread | None = None
        self._busy = False  # a group is between taking the lock and its checkpoint (one at a time)
        self._owed: tuple | None = None  # a group written by its caller, its checkpoint owed by the writer thread
        self._known: _Known | None = None
        _private(path)
        with path.open("r", encoding="utf-8") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                new = path.stat().st_size == 0 and not self.checkpoint_path.exists()
                if new and _read_key(self.key_path) is None:  # a new log: sign its empty start
                    _write_checkpoint(self.checkpoint_path, self._signing_key(), Checkpoint(0, 0, GENESIS, size=0))
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _signing_key(self) -> bytes:
        if self._key is None:
            self._key = _new_key(self.key_path)
        return self._key

    def check(self) -> int:
        """At start-up: the log ends where its signed checkpoint says; return the entry count. Raise
        ``AuditError`` naming the file, the line and what is wrong otherwise.

        When the log's length, last ``seq`` and head hash are the checkpoint's (and the last entry's hash is its
        own), that is the answer, in constant time whatever the log's length: every worker checks at start-up,
        and a log grows by millions of entries a week. Otherwise (a checkpoint from before lengths were kept,
        entries past it, a mismatch) the whole chain is walked, to say exactly what is wrong. An entry edited
        in the middle without re-chaining what follows is found by ``umrisk audit verify``, which walks the
        whole chain: run it on a schedule."""
        n = self._ends_at_checkpoint()
        if n is not None:
            return n
        ok, n, message, checkpointed = verify_log(self.path, self.key_path)
        if not ok:
            raise AuditError(f"audit log {self.path} refused: {message}")
        if not checkpointed:
            raise AuditError(f"audit log {self.path} refused: it has {n} entries but no checkpoint "
                             f"({self.checkpoint_path}): read it, then sign its end with "
                             f"`umrisk audit seal {self.path}`")
        return n

    def _ends_at_checkpoint(self) -> int | None:
        """The entry count if the log ends exactly at its signed checkpoint (length, last seq, head hash, and
        the last entry's own hash); None when the whole chain must be walked to tell."""
        key = _read_key(self.key_path)
        if key is None:
            return None
        with self.path.open(encoding="utf-8", newline="") as fh:
            fcntl.flock(fh, fcntl.LOCK_SH)
            try:
                cp = _read_checkpoint(self.checkpoint_path, key)
                if cp.size is None or os.fstat(fh.fileno()).st_size != cp.size:
                    return None
                last = _last_entry(fh, self.path)
            except (OSError, AuditError):
                return None
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        if last is None:
            return 0 if cp.entries == 0 and cp.head == GENESIS else None
        if last["hash"] == cp.head and int(last["seq"]) == cp.last_seq and _digest(last) == cp.head:
            return cp.entries
        return None

    def append(self, entries: list[dict], checkpointed: bool = True) -> None:
        """Append entries (caller, role, endpoint, member, model, version, probability...) and move the
        checkpoint to the new end, under one exclusive lock on the log. Return once the entries are on disk
        (fsync'd) and, with ``checkpointed`` (the default), once the checkpoint covers them too.

        Refuses (``AuditError``) to extend a log whose end is torn or no longer matches its checkpoint:
        extending it would sign over the damage."""
        if not entries:
            return
        ticket = _Ticket()
        with self._cond:
            lead = not self._busy and not self._pending
            if lead:
                self._busy = True
            else:
                self._pending.append((list(entries), ticket))
                self._wake()
        if lead:  # nothing being written: write here, and leave the checkpoint to the writer thread
            try:
                owed = self._lines(list(entries), [ticket])
            except BaseException:
                with self._cond:
                    self._busy = False
                    self._wake()
                raise
            with self._cond:
                self._owed = owed
                self._wake()
        ticket.wait(checkpointed)

    async def append_async(self, entries: list[dict]) -> None:
        """``append(entries, checkpointed=False)`` for a coroutine: the entries go to the writer thread (grouped
        with every append waiting) and the caller's event loop goes on serving until they are on disk, so
        concurrent requests share one fsync and none blocks the loop on the disk."""
        if not entries:
            return
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def on_durable() -> None:
            with contextlib.suppress(RuntimeError):  # the loop has closed (shutting down): nobody waits any more
                loop.call_soon_threadsafe(lambda: done.done() or done.set_result(None))

        ticket = _Ticket(on_durable)
        with self._cond:
            self._pending.append((list(entries), ticket))
            self._wake()
        await done
        if ticket.error is not None and not ticket.written:
            raise ticket.error

    def _wake(self) -> None:
        """(Under ``_cond``) start the writer thread, or tell it there is work."""
        if self._writer is None:
            _flush_at_exit(self)
            self._writer = threading.Thread(target=self._write_groups, name="umrisk-audit", daemon=True)
            self._writer.start()
        else:
            self._cond.notify_all()

    def _write_groups(self) -> None:
        """The writer thread: the checkpoint an append left owed, then every waiting append as one group (once no
        group holds the lock), until idle for ``IDLE_S``."""
        while True:
            with self._cond:
                while self._owed is None and not (self._pending and not self._busy):
                    if self._busy or self._pending:
                        self._cond.wait()  # a caller is writing its group: its checkpoint comes next
                    elif not self._cond.wait(self.IDLE_S) and not (self._owed or self._pending or self._busy):
                        self._writer = None
                        return
                owed, self._owed = self._owed, None
                group: list[tuple[list[dict], _Ticket]] = []
                if owed is None:
                    group, self._pending = self._pending, []
                    self._busy = True
            if owed is None:
                try:
                    owed = self._lines([e for es, _ in group for e in es], [t for _, t in group])
                except BaseException:  # noqa: BLE001 - its callers have the error
                    owed = None
            if owed is not None:
                self._finish(*owed)
            with self._cond:
                self._busy = False
                self._cond.notify_all()  # flush() may be waiting

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every append so far is on disk and covered by the checkpoint (at exit, so that a worker
        stopping right after an answer leaves no checkpoint owed); False if ``timeout`` ran out first."""
        with self._cond:
            return self._cond.wait_for(lambda: not (self._busy or self._owed or self._pending), timeout)

    def _end(self, fh: IO[str], key: bytes) -> tuple[str, int, Checkpoint]:
        """Head hash, last ``seq`` and checkpoint of the locked log: as this process left them when neither
        file changed since (same inode, size and ctime), else read from the files and checked."""
        known = self._known
        if known is not None:
            try:
                cp_id = _identity(self.checkpoint_path.stat())
            except FileNotFoundError:
                cp_id = None
            if known.log == _identity(os.fstat(fh.fileno())) and known.checkpoint == cp_id:
                return known.head, known.seq, Checkpoint(known.entries, known.seq, known.head, known.slot)
        self._known = None
        prev, seq = _tail(fh, self.path)
        try:
            cp = _read_checkpoint(self.checkpoint_path, key)
        except FileNotFoundError:
            cp = None
        if cp is None or cp.head != prev or cp.last_seq != seq:
            raise AuditError(f"{self.path}: its end (seq {seq}) does not match its checkpoint "
                             f"{self.checkpoint_path}; refusing to extend it: run "
                             f"`umrisk audit verify {self.path}`")
        return prev, seq, cp

    def _lines(self, entries: list[dict], tickets: list[_Ticket]) -> tuple:
        """Lock the log, write the entries and fsync them (their callers told), keeping the lock: return what
        ``_finish`` needs to sign the checkpoint and let go. On failure the lock is released and every caller
        gets the error."""
        key = self._signing_key()
        fh = self.path.open("a+", encoding="utf-8", newline="")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX)
            prev, seq, cp = self._end(fh, key)
            now = pd.Timestamp.now(tz="UTC").isoformat()
            lines = []
            for e in entries:
                seq += 1
                entry = {**e, "seq": seq, "time": now, "prev_hash": prev}
                entry["hash"] = _digest(entry)
                prev = entry["hash"]
                lines.append(json.dumps(entry, sort_keys=True, separators=(",", ":")))
            self._known = None  # until the checkpoint is written too
            fh.seek(0, os.SEEK_END)
            fh.write("\n".join(lines) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        except BaseException as err:
            if isinstance(err, AuditError):
                log.error("audit log not written: %s", err)
            fh.close()  # closing the file releases the lock
            for t in tickets:
                t.fail(err)
            raise
        for t in tickets:
            t.written = True
            t.set_durable()
        # the new checkpoint goes over the older slot (a file of one object is replaced by two slots)
        return fh, key, Checkpoint(cp.entries + len(lines), seq, prev, None if cp.slot is None else 1 - cp.slot,
                                   os.fstat(fh.fileno()).st_size), tickets

    def _finish(self, fh: IO[str], key: bytes, cp: Checkpoint, tickets: list[_Ticket]) -> None:
        """Sign and write the checkpoint of the entries ``_lines`` wrote, then let go of the lock."""
        try:
            slot = _write_checkpoint(self.checkpoint_path, key, cp, cp.slot)
            self._known = _Known(_identity(os.fstat(fh.fileno())), _identity(self.checkpoint_path.stat()),
                                 cp.head, cp.last_seq, cp.entries, slot)
        except BaseException as err:  # noqa: BLE001 - the entries are on disk; their callers waiting for it hear
            log.error("audit checkpoint not written: %s", err.__class__.__name__)
            for t in tickets:
                t.fail(err)
        else:
            for t in tickets:
                t.checkpointed.set()
        finally:
            fh.close()  # closing the file releases the lock

    @staticmethod
    def event(caller: str | None, role: str | None, endpoint: str, event: str, member_id: str | None = None,
              outcome: str = "ok", status: int = 200, **details) -> dict:
        """One entry for ``append`` (so that many look-ups of one request go in with one write)."""
        entry = {"caller": caller, "role": role, "endpoint": endpoint, "event": event, "outcome": outcome,
                 "status": int(status), **details}
        if member_id is not None:
            entry["member_id"] = member_id
        return entry

    def record(self, caller: str | None, role: str | None, endpoint: str, event: str,
               member_id: str | None = None, outcome: str = "ok", status: int = 200, **details) -> None:
        """Audit one event that is not a score served: a look-up that discloses whether a member exists or
        died (``event="lookup"``, ``outcome="unknown member"``), or a refused call (``event="refused"``,
        ``status`` 401, 403, 422 or 429; ``caller`` None when no valid token came). ``details`` are extra
        fields (for example ``client`` the address, ``model``). Several at once: ``append([event(...), ...])``."""
        self.append([self.event(caller, role, endpoint, event, member_id, outcome, status, **details)])

    def entries(self, endpoint: str | None = None) -> list[dict]:
        """Every entry (of ``endpoint``), in order; ``AuditError`` naming the line if one cannot be read."""
        out = []
        with self.path.open(encoding="utf-8", newline="") as fh:
            for lineno, line in enumerate(fh, start=1):
                if line.strip():
                    try:
                        e = json.loads(line)
                    except ValueError as err:
                        raise AuditError(f"{self.path} line {lineno} is not a JSON object") from err
                    if endpoint is None or e.get("endpoint") == endpoint:
                        out.append(e)
        return out

    def members_listed(self, endpoint: str, since: pd.Timestamp) -> set[str]:
        """Ids of the members served by ``endpoint`` (scored or listed, not refused or looked up in vain)
        since ``since`` (aware, UTC)."""
        return {e["member_id"] for e in self.entries(endpoint)
                if e.get("member_id") is not None and e.get("event") in (None, "served")
                and pd.Timestamp(e["time"]) >= since}
