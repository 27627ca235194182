"""Writing output files without ever replacing something that is not a regular file.

A regular file (or a new one) is written atomically: a temporary file beside it, then a
rename, so a reader sees the old content or the new one, never a mix. A rename replaces
whatever directory entry it lands on, so it is used only over regular files: as root, a
rename over ``/dev/null`` once replaced the machine's device with a plain file.

Everything else is decided by what the path is (``lstat``), before anything is written:

- ``-``: standard output.
- a character device or a FIFO (``/dev/null``, ``/dev/stdout``'s target, a pipe): written
  in place, with no temporary file and no rename.
- a symbolic link: never replaced. Written through in place when it leads to a character
  device or a FIFO (``/dev/stdout`` -> ``/proc/self/fd/1``); refused when it leads to
  anything else, since a link planted in a shared workspace could aim the write elsewhere.
- a directory, socket or block device: refused.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from pathlib import Path

from attest_step.errors import UsageError

STDOUT = "-"


def _in_place(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
    finally:
        os.close(fd)


def _replace(path: Path, data: bytes, prefix: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _is_stream(mode: int) -> bool:
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)


def write_atomically(path: Path, data: bytes, *, prefix: str = ".tmp-") -> None:
    """Write ``data`` to ``path`` as the module docstring describes.

    OSError propagates (callers turn it into a one-line error naming what they wrote);
    a target that must not be written raises UsageError (exit 2).
    """
    if str(path) == STDOUT:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        _replace(path, data, prefix)
        return
    if stat.S_ISREG(mode):
        _replace(path, data, prefix)
    elif _is_stream(mode):
        _in_place(path, data)
    elif stat.S_ISLNK(mode):
        try:
            target_mode = os.stat(path).st_mode
        except FileNotFoundError:
            target_mode = 0
        if not _is_stream(target_mode):
            raise UsageError(
                f"{path}: a symbolic link to something other than a device or a pipe; "
                "write to the real path instead"
            )
        _in_place(path, data)
    else:
        raise UsageError(
            f"{path}: not a regular file, a character device or a pipe; choose a file path"
        )


MAX_INPUT_FILE = 1 << 20
"""The most a key, password, certificate chain or policy file may hold (1 MiB)."""


def read_small_file(path: Path, what: str, *, limit: int = MAX_INPUT_FILE) -> bytes:
    """The content of ``path``, a regular file of at most ``limit`` bytes.

    A FIFO, a device (``/dev/zero``), a directory or a socket is refused before anything is
    read: the file is opened non-blocking (opening a FIFO cannot hang) and checked with
    fstat. The read itself is bounded too, so a file that grows meanwhile cannot exhaust
    memory. Raises UsageError (exit 2) naming ``what`` and the path; OSError propagates.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(f"{what} {path}: not a regular file; pass a file")
        if info.st_size > limit:
            raise UsageError(f"{what} {path}: larger than {limit} bytes; pass the right file")
        chunks = []
        total = 0
        while chunk := os.read(fd, min(1 << 16, limit + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise UsageError(f"{what} {path}: larger than {limit} bytes; pass the right file")
        return b"".join(chunks)
    finally:
        os.close(fd)
