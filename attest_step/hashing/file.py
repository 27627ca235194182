"""SHA-256 of one regular file, refusing to return a digest for a file that changed.

Sequence per file: ``lstat(path)`` (must be a regular file), ``open`` with
``O_NOFOLLOW | O_NONBLOCK`` (a link swapped in fails; a FIFO swapped in does not block), read
exactly ``st_size`` bytes, then ``fstat`` on the open descriptor. Device, inode, size,
mtime_ns and ctime_ns of the ``fstat`` must equal those of the ``lstat``: a file replaced,
grown, truncated or rewritten in place (even with its mtime put back, which moves ctime)
between the two is an error, never a digest.
"""

from __future__ import annotations

import hashlib
import operator
import os
import stat
from collections.abc import Sequence
from typing import NamedTuple

from attest_step.errors import AttestStepError, UsageError
from attest_step.walk import FileStat, shown

OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
BUFFER_SIZE = 256 << 10
"""Reusable read buffer per worker: large enough that hashlib releases the GIL per call and
the system calls are few, small enough to stay in a core's L2 cache between the copy out of
the page cache and the hashing (0.2-2 % less CPU than 1 MiB; ``make bench``,
read_methods)."""
SMALL_READ = 256 << 10
"""Files up to this size are read with one ``read`` into a fresh bytes object."""


_IDENTITY = operator.attrgetter("st_dev", "st_ino", "st_size", "st_mtime_ns", "st_ctime_ns")
"""What must not change between the ``lstat`` before reading and the ``fstat`` after."""


class Hashed(NamedTuple):
    hex: str
    mode: int
    """``st_mode`` of the file hashed (the directory digest needs its execute bit)."""


def changed_error(path: bytes) -> AttestStepError:
    return UsageError(
        f"{shown(path)}: the file changed while it was being hashed; "
        "hash outputs only after every step that writes them has finished"
    )


def _lstat_error(path: bytes, err: OSError) -> AttestStepError:
    return UsageError(
        f"{shown(path)}: cannot open for hashing ({err.strerror or err}); "
        "check that it exists and is readable"
    )


def _open_error(path: bytes, err: OSError) -> AttestStepError:
    return UsageError(
        f"{shown(path)}: cannot open for hashing ({err.strerror or err}); "
        "check that it exists, is readable and is not a symbolic link"
    )


def _read_error(path: bytes, err: OSError) -> AttestStepError:
    return UsageError(f"{shown(path)}: read failed ({err.strerror or err})")


def lstat_file(path: bytes) -> FileStat:
    """``lstat`` of a path that must still be a regular file."""
    try:
        st = os.lstat(path)
    except OSError as err:
        raise _lstat_error(path, err) from None
    if not stat.S_ISREG(st.st_mode):
        raise changed_error(path)
    return FileStat.of(st)


def sha256_file(path: bytes, buffer: bytearray, before: FileStat | None = None) -> Hashed:
    """SHA-256 of the regular file ``path``; ``before`` is its lstat if already taken.

    ``buffer`` is reused between calls by the same worker (never shared between threads).
    """
    if before is None:
        before = lstat_file(path)
    try:
        fd = os.open(path, OPEN_FLAGS)
    except OSError as err:
        raise _open_error(path, err) from None
    try:
        size = before.size
        try:
            if size <= SMALL_READ:
                hexdigest = hashlib.sha256(_read_exactly(fd, size, path)).hexdigest()
            else:
                hexdigest = _sha256_large(fd, size, buffer, path)
            after = os.fstat(fd)
        except OSError as err:
            raise _read_error(path, err) from None
        if _IDENTITY(after) != (before.dev, before.ino, size, before.mtime_ns, before.ctime_ns):
            raise changed_error(path)
        return Hashed(hexdigest, before.mode)
    finally:
        os.close(fd)


def _read_exactly(fd: int, size: int, path: bytes, data: bytes = b"") -> bytes:
    """``size`` bytes from ``fd`` (``data`` already read): reads until there are."""
    while len(data) < size:
        more = os.read(fd, size - len(data))
        if not more:
            raise changed_error(path)
        data += more
    return data


def _sha256_large(fd: int, size: int, buffer: bytearray, path: bytes) -> str:
    digest = hashlib.sha256()
    view = memoryview(buffer)
    try:
        remaining = size
        while remaining > 0:
            count = os.readv(fd, [view[: min(remaining, len(view))]])
            if count == 0:
                raise changed_error(path)
            digest.update(view[:count])
            remaining -= count
    finally:
        view.release()
    return digest.hexdigest()


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def sha256_files(
    paths: Sequence[bytes], buffer: bytearray
) -> tuple[list[str], list[int], AttestStepError | None]:
    """:func:`sha256_file` for each path, in order: (hex digests, modes, first error).

    The same steps, checks and error messages, in one loop (no ``Hashed`` per file), with
    ``lstat``/``open`` relative to a descriptor of the file's directory (paths in a batch
    mostly share one), which spares the kernel walking the whole path twice per file.
    Stops at the first error; the lists then hold the files before it.
    """
    hexes: list[str] = []
    modes: list[int] = []
    # Local names: tens of thousands of files go through this loop.
    lstat, open_, read, fstat, close = os.lstat, os.open, os.read, os.fstat, os.close
    sha256 = hashlib.sha256
    current: bytes | None = None
    dir_fd = -1
    path = b""
    try:
        for path in paths:
            parent, slash, base = path.rpartition(b"/")
            if not parent:
                parent = b"/" if slash else b"."
            if parent != current:
                if dir_fd >= 0:
                    os.close(dir_fd)
                    dir_fd = -1
                current = parent
                try:
                    dir_fd = os.open(parent, _DIR_FLAGS)
                except OSError:
                    dir_fd = -1  # let the per-file calls below report it, by full path
            if dir_fd < 0 or not base:
                hashed = sha256_file(path, buffer)
                hexes.append(hashed.hex)
                modes.append(hashed.mode)
                continue
            try:
                before = lstat(base, dir_fd=dir_fd)
            except OSError as err:
                raise _lstat_error(path, err) from None
            mode = before.st_mode
            if not stat.S_ISREG(mode):
                raise changed_error(path)
            size = before.st_size
            if size > SMALL_READ:
                hexes.append(sha256_file(path, buffer, FileStat.of(before)).hex)
                modes.append(mode)
                continue
            try:
                fd = open_(base, OPEN_FLAGS, dir_fd=dir_fd)
            except OSError as err:
                raise _open_error(path, err) from None
            try:
                try:
                    data = read(fd, size)
                    if len(data) < size:
                        data = _read_exactly(fd, size, path, data)
                    after = fstat(fd)
                except OSError as err:
                    raise _read_error(path, err) from None
            finally:
                close(fd)
            if (  # not _IDENTITY: two tuples per file cost more than this
                after.st_ino != before.st_ino
                or after.st_mtime_ns != before.st_mtime_ns
                or after.st_ctime_ns != before.st_ctime_ns
                or after.st_size != size
                or after.st_dev != before.st_dev
            ):
                raise changed_error(path)
            hexes.append(sha256(data).hexdigest())
            modes.append(mode)
    except AttestStepError as err:
        return hexes, modes, err
    finally:
        if dir_fd >= 0:
            os.close(dir_fd)
    return hexes, modes, None
