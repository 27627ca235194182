"""Writing files so that a reader sees the old content or the new one, never a mix."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, data: bytes, *, prefix: str = ".tmp-") -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``.

    The temporary file keeps ``path``'s suffix, and is removed when anything fails.
    OSError propagates; callers turn it into a one-line error naming what they wrote.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
