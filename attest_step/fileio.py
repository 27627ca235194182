"""Local files: writing output without replacing what is not ours, reading bounded input.

Writing (:func:`write_atomically`). A regular file (or a new one) is written atomically: a
temporary file beside it, then a rename, so a reader sees the old content or the new one,
never a mix. A rename replaces whatever directory entry it lands on, so it is used only over
regular files: as root, a rename over ``/dev/null`` once replaced the machine's device with a
plain file. Everything else is decided by what the path is (``lstat``) before anything is
written, and checked again (``fstat``) on the descriptor that is written:

- ``-``, ``/dev/stdout`` (``/dev/fd/1``, ``/proc/self/fd/1``): standard output;
  ``/dev/stderr`` and its aliases: standard error. Written through the stream already open,
  so a redirection to a file is appended to, never reopened and overwritten from the start.
- a character device or a FIFO named directly (``/dev/null``, a named pipe): written in
  place, with no temporary file and no rename.
- a symbolic link: never replaced and, in general, never written through, since a link
  planted in a shared workspace could aim the write at a file of the planter's choice. Two
  targets are harmless and common, and are written through: a pipe (``/dev/fd/63`` from a
  shell's ``>(cmd)``) and the null device.
- a directory, socket, block device, or a link to anything else: refused with one line
  (:class:`~attest_step.errors.UsageError`, exit 2), and nothing is written.

Reading (:func:`read_small_file`). Keys, passwords, certificate chains, policies and other
small operator inputs must be regular files of bounded size. The path is checked with
``stat`` before it is opened (opening some devices has effects of its own, and opening a
FIFO waits for a writer), opened non-blocking, checked again with ``fstat`` (same file, still
regular), and read with a bound, so a file that grows meanwhile cannot exhaust memory.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys
from typing import TYPE_CHECKING, BinaryIO

from attest_step.errors import AttestStepError, UsageError

if TYPE_CHECKING:
    from pathlib import Path

STDOUT = "-"
_STDOUT_NAMES = frozenset({STDOUT, "/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"})
_STDERR_NAMES = frozenset({"/dev/stderr", "/dev/fd/2", "/proc/self/fd/2"})
NULL_DEVICE = os.makedev(1, 3)
"""Linux's /dev/null (major 1, minor 3): the one device a symbolic link may lead to."""

MAX_INPUT_FILE = 1 << 20
"""The most a key, password, certificate chain, params or policy file may hold (1 MiB)."""


def describe(mode: int) -> str:
    """What kind of file ``mode`` is, for messages: ``a FIFO``, ``a directory``..."""
    kinds = (
        (stat.S_ISREG, "a regular file"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for test, name in kinds if test(mode)), "an unknown kind of file")


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to the descriptor ``fd`` (``os.write`` may write less)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_new_file(dir_fd: int, name: str, data: bytes, mode: int = 0o644) -> None:
    """Create ``name`` in the directory ``dir_fd``, which must not hold it (no link is
    followed), write ``data`` and fsync it; raises OSError."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(name, flags, mode, dir_fd=dir_fd)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _to_stream(stream: BinaryIO, data: bytes) -> None:
    stream.write(data)
    stream.flush()


def _in_place(path: Path, data: bytes, expected: os.stat_result, *, follow: bool) -> None:
    """Write into the device or FIFO ``expected`` at ``path``, refusing anything else.

    Opening a FIFO waits for its reader, as any program writing to a named pipe does.
    """
    flags = os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as err:
        if err.errno == errno.ELOOP:  # it became a symbolic link after lstat
            raise _changed(path) from None
        raise
    try:
        info = os.fstat(fd)
        if not (_is_stream(info.st_mode) and _same_file(info, expected)):
            raise _changed(path)
        write_all(fd, data)
    finally:
        os.close(fd)


def _changed(path: Path) -> UsageError:
    return UsageError(f"{path}: changed while it was being opened; nothing was written, run again")


def _replace(path: Path, data: bytes, prefix: str) -> None:
    import tempfile  # noqa: PLC0415 - ~5 ms; readers of small files never need it

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _is_stream(mode: int) -> bool:
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)


def _link_target_ok(target: os.stat_result) -> bool:
    mode = target.st_mode
    return stat.S_ISFIFO(mode) or (stat.S_ISCHR(mode) and target.st_rdev == NULL_DEVICE)


def write_atomically(path: Path, data: bytes, *, prefix: str = ".tmp-") -> None:
    """Write ``data`` to ``path`` as the module docstring describes.

    OSError propagates (callers turn it into a one-line error naming what they wrote);
    a target that must not be written raises UsageError (exit 2).
    """
    name = str(path)
    if name in _STDOUT_NAMES:
        _to_stream(sys.stdout.buffer, data)
        return
    if name in _STDERR_NAMES:
        _to_stream(sys.stderr.buffer, data)
        return
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        _replace(path, data, prefix)
        return
    mode = info.st_mode
    if stat.S_ISREG(mode):
        _replace(path, data, prefix)
    elif _is_stream(mode):
        _in_place(path, data, info, follow=False)
    elif stat.S_ISLNK(mode):
        try:
            target = os.stat(path)
        except OSError:
            raise UsageError(
                f"{path}: a symbolic link that leads nowhere; attest-step does not write "
                "through links: give the real path"
            ) from None
        if not _link_target_ok(target):
            raise UsageError(
                f"{path}: a symbolic link to {describe(target.st_mode)}; attest-step writes "
                "through links only to a pipe or /dev/null: give the real path, or - for "
                "standard output"
            )
        _in_place(path, data, target, follow=True)
    else:
        raise UsageError(
            f"{path}: {describe(mode)}, not a regular file, a character device or a pipe; "
            "choose a file path"
        )


def write_output_file(path: Path, data: bytes, flag: str, *, make_parents: bool = False) -> None:
    """Write ``data`` to the file a flag names, atomically; one-line errors naming the flag."""
    try:
        if make_parents:
            path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, data, prefix=f".{path.name}.")
    except UsageError as err:
        raise UsageError(f"{flag} {err}") from None
    except OSError as err:
        raise AttestStepError(
            f"{flag} {path}: cannot write it ({err.strerror or err}); check the directory"
        ) from err


def check_replaceable(path: Path, what: str) -> None:
    """Refuse ``path`` as the target of a rename unless it is missing, a regular file or a
    symbolic link (a rename replaces the link itself, never what it leads to).

    For writers that must rename (the evidence of ``attest-step run``): call it before the
    work starts, so ``--evidence-file /dev/null`` fails at once instead of replacing a device.
    """
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as err:
        raise UsageError(
            f"{what} {path}: cannot inspect it ({err.strerror}); check the path"
        ) from None
    if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
        raise UsageError(
            f"{what} {path}: {describe(mode)}; it is written by renaming a new file over it, "
            "which is done only over a regular file: give a file path"
        )


def read_small_file(path: Path, what: str, *, limit: int = MAX_INPUT_FILE) -> bytes:
    """The content of ``path``, a regular file of at most ``limit`` bytes.

    Symbolic links are followed (a mounted Secret's files are links). A FIFO, a device
    (``/dev/zero``), a directory or a socket is refused before it is opened, and the opened
    descriptor is checked to be that same regular file. Raises UsageError (exit 2) naming
    ``what`` and the path; OSError (a missing file, no permission) propagates.
    """
    before = os.stat(path)
    if not stat.S_ISREG(before.st_mode):
        raise UsageError(
            f"{what} {path}: not a regular file ({describe(before.st_mode)}); pass a file"
        )
    too_big = UsageError(f"{what} {path}: larger than {limit} bytes; pass the right file")
    if before.st_size > limit:
        raise too_big
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not (stat.S_ISREG(info.st_mode) and _same_file(info, before)):
            raise UsageError(f"{what} {path}: changed while it was being opened; run again")
        chunks = []
        total = 0
        while chunk := os.read(fd, min(1 << 16, limit + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise too_big
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_input_file(path: Path, what: str, *, limit: int = MAX_INPUT_FILE) -> bytes:
    """:func:`read_small_file` for a file named on the command line: a file that cannot be
    read (missing, no permission) is a one-line UsageError naming ``what`` and the path."""
    try:
        return read_small_file(path, what, limit=limit)
    except OSError as err:
        raise UsageError(
            f"{what} {path}: cannot read it ({err.strerror or err}); check the path"
        ) from err
