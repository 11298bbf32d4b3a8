"""Reading and editing an audit checkpoint's slots as an attacker or a crash would (tests only)."""

from __future__ import annotations

import json
from pathlib import Path

from umrisk.serving.audit import SLOT


def slots(path: Path) -> list[dict | None]:
    """The two slots of a checkpoint file, parsed (None: empty)."""
    text = path.read_text(encoding="ascii")
    assert len(text) == 2 * SLOT, "a checkpoint file of two slots"
    return [json.loads(body) if body.strip() else None for body in (text[:SLOT], text[SLOT:])]


def newest(path: Path) -> tuple[int, dict]:
    """The newer slot and its checkpoint."""
    found = [(k, body) for k, body in enumerate(slots(path)) if body is not None]
    return max(found, key=lambda kb: kb[1]["entries"])


def overwrite(path: Path, slot: int, text: str) -> None:
    """Put ``text`` in ``slot``, in place, padded as the service pads it (no new signature)."""
    with path.open("r+b") as fh:
        fh.seek(slot * SLOT)
        fh.write((text.ljust(SLOT - 1) + "\n").encode("ascii"))
