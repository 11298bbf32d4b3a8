"""Files only the service's user may read (tokens, the audit checkpoint, demo credentials), replaced whole."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def replace_private(path: Path, text: str) -> None:
    """Put ``text`` in ``path`` atomically and privately: a new 0600 temporary file beside it (its folder made
    0700 when missing), flushed to disk, then renamed over the old one; never a half-written file."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
