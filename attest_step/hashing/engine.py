"""Hash many files fast on a few cores.

Design (measurements in docs/hashing.md):

* Few files (``< FORK_MIN_FILES``): they are ``lstat``-ed up front. With two or more files
  of at least ``LARGE_FILE`` bytes, they are hashed by forked workers as below, one file per
  ticket, largest first (2-3 % faster than threads: no GIL handed back and forth between
  chunks). Where forking is not safe (the caller runs other threads), the large files go to
  one thread per usable CPU instead, largest first; each thread owns one reusable 256 KiB
  buffer and ``hashlib`` releases the GIL for each 256 KiB update, so the threads hash in
  parallel. One file is always hashed by one worker: SHA-256 is sequential. Otherwise files
  are hashed in the calling thread. Hashing an ``mmap`` is not reliably faster than reading,
  and turns a file truncated meanwhile into SIGBUS instead of an error.
* Many files: per-file Python work under the GIL costs more than hashing, so threads do not
  help. The process forks ``cpus - 1`` children (only while it has a single thread) and every
  process, the parent included, pulls batches of files from a shared pipe of 4-byte tickets
  (reads of 4 bytes from a pipe are atomic), so big and small files balance dynamically.
  Children send back hex digests and 4-byte modes through their own pipe.
"""

from __future__ import annotations

import contextlib
import hashlib
import operator
import os
import stat
import struct
import threading
from collections.abc import Callable, Sequence

from attest_step.errors import AttestStepError, UsageError
from attest_step.hashing.cpus import usable_cpus
from attest_step.hashing.file import (
    BUFFER_SIZE,
    Hashed,
    lstat_file,
    sha256_file,
    sha256_files,
)
from attest_step.hashing.jsontext import sha256_items
from attest_step.walk import Entry, FileStat, Kind

LARGE_FILE = 4 << 20
"""In the few-files path, files at least this big are spread over the CPUs, largest first."""
FORK_MIN_FILES = 1000
"""At least this many files make forking worth its few milliseconds."""
BATCHES_PER_WORKER = 16

_TICKET = struct.Struct("<I")
_MAX_TICKETS = 32768 // _TICKET.size
"""All tickets are written before any is read, so they must fit the pipe's buffer (64 KiB on
Linux): at most 32 KiB of them, with bigger batches when there are more files."""
_OK = b"O"
_ERR = b"E"
_LINK_MODE = stat.S_IFLNK | 0o777
_KIND = operator.attrgetter("kind")
_PATH = operator.attrgetter("path")


def hash_entries(
    entries: Sequence[Entry],
    *,
    workers: int | None = None,
    large_file: int = LARGE_FILE,
    fork_min_files: int = FORK_MIN_FILES,
) -> list[Hashed]:
    """Hex SHA-256 and mode of each entry, in the order given.

    A file entry is hashed by content; a link entry (directory digests only) by the bytes of
    its target text. Raises AttestStepError for the first problem found in entry order.
    ``workers`` defaults to the usable CPUs; the thresholds are parameters for tests and the
    benchmark.
    """
    hexes, modes = hash_entries_hex(
        entries, workers=workers, large_file=large_file, fork_min_files=fork_min_files
    )
    return list(map(Hashed, hexes, modes))


def hash_entries_hex(
    entries: Sequence[Entry],
    *,
    workers: int | None = None,
    large_file: int = LARGE_FILE,
    fork_min_files: int = FORK_MIN_FILES,
) -> tuple[list[str], list[int]]:
    """:func:`hash_entries` as two lists (hex digests, modes): no object per file."""
    cpus = usable_cpus() if workers is None else max(1, workers)
    count = len(entries)
    results = _Results(count)
    files: list[int] = []
    if Kind.LINK not in map(_KIND, entries):  # the usual case: no per-entry Python loop
        files = list(range(count))
    else:
        for index, entry in enumerate(entries):
            if entry.kind is Kind.LINK:
                results.hexes[index] = hashlib.sha256(entry.link_target).hexdigest()
                results.modes[index] = _LINK_MODE
            else:
                files.append(index)
    if _may_fork(cpus, len(files), fork_min_files):
        _hash_forked(entries, files, results, cpus)
    else:
        may_fork = _may_fork(cpus, len(files), 0)
        _hash_few(entries, files, results, cpus=cpus, large_file=large_file, may_fork=may_fork)
    results.raise_first()
    if not all(results.hexes):  # pragma: no cover - a bug, not a user error
        raise RuntimeError("hashing finished with missing results")
    return results.hexes, results.modes


def hash_files_json(
    entries: Sequence[Entry],
    names: Sequence[str],
    *,
    workers: int | None = None,
    large_file: int = LARGE_FILE,
    fork_min_files: int = FORK_MIN_FILES,
) -> bytes:
    """The JSON list items (ASCII, joined by ``",\\n"``) of the subjects
    ``{"name": names[i], "digest": {"sha256": <hex of entries[i]>}}``, in the order given.

    For ``attest-step hash --output json``: with forked workers, each renders the text of
    its own batches, so the parent only concatenates. Every entry must be a file
    (``Kind.FILE``). Same checks and errors as :func:`hash_entries_hex`.
    """
    if len(names) != len(entries):
        raise ValueError("one name per entry is needed")
    if Kind.LINK in map(_KIND, entries):
        raise ValueError("JSON items are made for file entries only")
    cpus = usable_cpus() if workers is None else max(1, workers)
    count = len(entries)
    if _may_fork(cpus, count, fork_min_files):
        results = _Results(count)
        texts = _hash_forked(entries, list(range(count)), results, cpus, names)
        results.raise_first()
        if not all(texts):  # pragma: no cover - a bug, not a user error
            raise RuntimeError("hashing finished with missing results")
        return b",\n".join(texts)
    hexes, _ = hash_entries_hex(
        entries, workers=cpus, large_file=large_file, fork_min_files=count + 1
    )
    return sha256_items(names, hexes).encode("ascii")


class _Results:
    """Hex digests and modes by entry index, and the errors met (by entry index; -1 for
    one that is no file's)."""

    __slots__ = ("errors", "hexes", "modes")

    def __init__(self, count: int) -> None:
        self.hexes: list[str] = [""] * count
        self.modes: list[int] = [0] * count
        self.errors: dict[int, AttestStepError] = {}

    def raise_first(self) -> None:
        """Raise the error of the first entry, in entry order, that had one."""
        if self.errors:
            raise self.errors[min(self.errors)]


def _may_fork(cpus: int, files: int, fork_min_files: int) -> bool:
    """Whether to fork workers: worth it, and safe (only while this process has a single
    thread: a lock held by another thread would stay locked in the child)."""
    return (
        cpus > 1
        and files >= fork_min_files
        and hasattr(os, "fork")
        and threading.active_count() == 1
    )


# ---- few files: the large ones first, in forked workers or threads ----


def _hash_few(
    entries: Sequence[Entry],
    files: list[int],
    results: _Results,
    *,
    cpus: int,
    large_file: int,
    may_fork: bool,
) -> None:
    hexes, modes, errors = results.hexes, results.modes, results.errors
    stats: dict[int, FileStat] = {}
    large: list[int] = []
    small: list[int] = []
    for index in files:
        try:
            stats[index] = lstat_file(entries[index].path)
        except AttestStepError as err:
            errors[index] = err
            return
        (large if stats[index].size >= large_file and cpus > 1 else small).append(index)
    large.sort(key=lambda i: stats[i].size, reverse=True)
    if may_fork and len(large) > 1:
        # Each process hashes without handing a GIL back and forth between 256 KiB chunks:
        # 2-3 % faster than threads (docs/hashing.md). One file per ticket, largest first.
        _hash_forked(entries, large + small, results, cpus, batch_size=1)
        return
    lock = threading.Lock()
    queue = iter(large)

    def next_large() -> int | None:
        with lock:
            return None if errors else next(queue, None)

    def run(take: Callable[[], int | None]) -> None:
        buffer = bytearray(BUFFER_SIZE)
        while (index := take()) is not None:
            try:
                hexes[index], modes[index] = sha256_file(entries[index].path, buffer, stats[index])
            except AttestStepError as err:
                with lock:
                    errors[index] = err

    threads = [
        threading.Thread(target=run, args=(next_large,), name=f"attest-step-hash-{n}")
        for n in range(min(cpus, len(large)))
    ]
    for thread in threads:
        thread.start()
    small_queue = iter(small)
    try:
        run(lambda: None if errors else next(small_queue, None))
    finally:
        for thread in threads:
            thread.join()


# ---- many files: forked workers pulling batches ----


def _hash_forked(
    entries: Sequence[Entry],
    files: list[int],
    results: _Results,
    cpus: int,
    names: Sequence[str] | None = None,
    *,
    batch_size: int | None = None,
) -> list[bytes]:
    """Hash ``files`` in ``cpus`` processes into ``results``, or with ``names`` (one
    per entry, every entry a file) into JSON items: returns them per batch, in order.

    Without ``batch_size``, about ``BATCHES_PER_WORKER`` batches per process, and ``files``
    must be in entry order; with it, ``files`` may come in any order (taken in that order)."""
    size = batch_size or max(1, -(-len(files) // (cpus * BATCHES_PER_WORKER)))
    size = max(size, -(-len(files) // _MAX_TICKETS))  # the tickets must fit the pipe
    batches = [files[start : start + size] for start in range(0, len(files), size)]
    if batch_size is None and len(files) == len(entries):  # all files: slice, no loop
        every = list(map(_PATH, entries))
        paths = [every[start : start + size] for start in range(0, len(files), size)]
    else:
        paths = [[entries[index].path for index in batch] for batch in batches]
    texts: list[bytes] = []
    name_batches: list[Sequence[str]] | None = None
    if names is not None:
        if len(files) != len(entries) or len(names) != len(entries):
            raise ValueError("JSON items need one name per entry and file entries only")
        name_batches = [names[start : start + size] for start in range(0, len(files), size)]
        texts = [b""] * len(batches)
    tickets_r, tickets_w = os.pipe()
    try:
        payload = b"".join(_TICKET.pack(n) for n in range(len(batches)))
        if len(batches) > _MAX_TICKETS:  # pragma: no cover - prevented above
            raise RuntimeError("too many batches")
        os.write(tickets_w, payload)
    finally:
        os.close(tickets_w)
    children: list[tuple[int, int]] = []
    try:
        for _ in range(cpus - 1):
            children.append(_fork_worker(paths, name_batches, tickets_r))
        done, failure = _work(paths, name_batches, tickets_r)
        for number, batch_hexes, batch_modes, text in done:
            if name_batches is None:
                _store(batches[number], batch_hexes, batch_modes, results)
            else:
                texts[number] = text
        if failure is not None:
            number, position, err = failure
            results.errors[batches[number][position]] = err
    finally:
        os.close(tickets_r)
        for pid, fd in children:
            _collect_child(pid, fd, batches, results, texts)
    return texts


_Done = list[tuple[int, list[str], list[int], bytes]]


def _work(
    paths: list[list[bytes]], names: list[Sequence[str]] | None, tickets: int
) -> tuple[_Done, tuple[int, int, AttestStepError] | None]:
    """Take tickets until none are left; on an error, drain the tickets so others stop.

    Returns the finished batches (ticket, hex digests, modes, JSON items when ``names`` is
    given: then without digests and modes) and, for an error, (batch, position, error)."""
    buffer = bytearray(BUFFER_SIZE)
    done: _Done = []
    while len(raw := os.read(tickets, _TICKET.size)) == _TICKET.size:
        number = _TICKET.unpack(raw)[0]
        batch_hexes, batch_modes, err = sha256_files(paths[number], buffer)
        if err is not None:
            while os.read(tickets, 4096):
                pass
            return done, (number, len(batch_hexes), err)
        if names is None:
            done.append((number, batch_hexes, batch_modes, b""))
        else:
            text = sha256_items(names[number], batch_hexes).encode("ascii")
            done.append((number, [], [], text))
    return done, None


def _store(
    batch: list[int], batch_hexes: list[str], batch_modes: list[int], results: _Results
) -> None:
    hexes, modes = results.hexes, results.modes
    for index, hexdigest, mode in zip(batch, batch_hexes, batch_modes, strict=True):
        hexes[index] = hexdigest
        modes[index] = mode


def _fork_worker(
    paths: list[list[bytes]], names: list[Sequence[str]] | None, tickets: int
) -> tuple[int, int]:
    """Fork a child running :func:`_work`; it writes ``O`` + records or ``E`` + error.

    Records, per batch: the ticket, the batch's 64-character hex digests back to back,
    then its modes as 4-byte integers; with ``names``: the ticket, the length of the batch's
    JSON items as a 4-byte integer, then the items (ASCII)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid != 0:
        os.close(write_fd)
        return pid, read_fd
    status = 0
    try:  # the child: never returns
        os.close(read_fd)
        try:
            done, failure = _work(paths, names, tickets)
            parts = [_OK]
            for number, batch_hexes, batch_modes, text in done:
                parts.append(_TICKET.pack(number))
                if names is not None:
                    parts.append(_TICKET.pack(len(text)))
                    parts.append(text)
                    continue
                parts.append("".join(batch_hexes).encode("ascii"))
                parts.append(struct.pack(f"<{len(batch_modes)}I", *batch_modes))
            if failure is not None:
                number, position, err = failure
                message = f"{number} {position}\n{err}"
                parts = [_ERR, message.encode("utf-8", "backslashreplace")]
        except BaseException as err:
            message = f"internal error in a hashing worker: {type(err).__name__}: {err}"
            parts = [_ERR, f"-1 -1\n{message}".encode("utf-8", "backslashreplace")]
        view = memoryview(b"".join(parts))
        while view:
            view = view[os.write(write_fd, view) :]
    except BaseException:
        status = 1
    finally:
        os._exit(status)


def _collect_child(
    pid: int, fd: int, batches: list[list[int]], results: _Results, texts: list[bytes]
) -> None:
    """Read a child's records into ``results``, or into ``texts`` when it is not empty
    (JSON items), and reap the child."""
    chunks: list[bytes] = []
    try:
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
    finally:
        os.close(fd)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    data = b"".join(chunks)
    if data[:1] == _ERR:
        where, _, message = data[1:].decode("utf-8", "replace").partition("\n")
        number, position = (int(x) for x in where.split())
        results.errors[batches[number][position] if number >= 0 else -1] = UsageError(message)
        return
    if data[:1] != _OK:
        results.errors[-1] = AttestStepError(
            "a hashing worker process died without a result; run again, and report it if it repeats"
        )
        return
    offset = 1
    while offset < len(data):
        number = _TICKET.unpack_from(data, offset)[0]
        offset += _TICKET.size
        if texts:
            length = _TICKET.unpack_from(data, offset)[0]
            offset += _TICKET.size
            texts[number] = data[offset : offset + length]
            offset += length
            continue
        batch = batches[number]
        count = len(batch)
        text = data[offset : offset + 64 * count].decode("ascii")
        offset += 64 * count
        batch_modes = struct.unpack_from(f"<{count}I", data, offset)
        offset += 4 * count
        batch_hexes = [text[i : i + 64] for i in range(0, 64 * count, 64)]
        _store(batch, batch_hexes, list(batch_modes), results)
