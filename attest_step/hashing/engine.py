"""Hash many files fast on a few cores.

Design (measurements in docs/hashing.md):

* Few files (``< FORK_MIN_FILES``): they are ``lstat``-ed up front. Files of at least
  ``LARGE_FILE`` bytes go to one thread per usable CPU, largest first; each thread owns one
  reusable 1 MiB buffer and ``hashlib`` releases the GIL for each 1 MiB update, so the
  threads hash in parallel (one file is always hashed by one thread: SHA-256 is sequential).
  Smaller files are hashed in the calling thread.
* Many files: per-file Python work under the GIL costs more than hashing, so threads do not
  help. The process forks ``cpus - 1`` children (only while it has a single thread) and every
  process, the parent included, pulls batches of files from a shared pipe of 4-byte tickets
  (reads of 4 bytes from a pipe are atomic), so big and small files balance dynamically.
  Children send back 32-byte digests and 4-byte modes through their own pipe.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import struct
import threading
from collections.abc import Callable, Sequence

from attest_step.errors import AttestStepError
from attest_step.hashing.cpus import usable_cpus
from attest_step.hashing.file import BUFFER_SIZE, Hashed, lstat_file, sha256_file
from attest_step.walk import Entry, FileStat, Kind

LARGE_FILE = 4 << 20
"""In the few-files path, files at least this big are hashed by the thread pool."""
FORK_MIN_FILES = 1000
"""At least this many files make forking worth its few milliseconds."""
BATCHES_PER_WORKER = 16

_TICKET = struct.Struct("<I")
_RECORD = struct.Struct("<32sI")
_OK = b"O"
_ERR = b"E"
_LINK_MODE = stat.S_IFLNK | 0o777


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
    cpus = usable_cpus() if workers is None else max(1, workers)
    results: list[Hashed | None] = [None] * len(entries)
    files: list[int] = []
    for index, entry in enumerate(entries):
        if entry.kind is Kind.LINK:
            results[index] = Hashed(hashlib.sha256(entry.link_target).hexdigest(), _LINK_MODE)
        else:
            files.append(index)

    errors: dict[int, AttestStepError] = {}
    # Forking is safe only while this process has a single thread.
    if (
        cpus > 1
        and len(files) >= fork_min_files
        and hasattr(os, "fork")
        and threading.active_count() == 1
    ):
        _hash_forked(entries, files, results, errors, cpus)
    else:
        _hash_threaded(entries, files, results, errors, cpus=cpus, large_file=large_file)
    if errors:
        raise errors[min(errors)]
    done = [r for r in results if r is not None]
    if len(done) != len(entries):  # pragma: no cover - a bug, not a user error
        raise RuntimeError("hashing finished with missing results")
    return done


# ---- few files: threads for the large ones ----


def _hash_threaded(
    entries: Sequence[Entry],
    files: list[int],
    results: list[Hashed | None],
    errors: dict[int, AttestStepError],
    *,
    cpus: int,
    large_file: int,
) -> None:
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
    lock = threading.Lock()
    queue = iter(large)

    def next_large() -> int | None:
        with lock:
            return None if errors else next(queue, None)

    def run(take: Callable[[], int | None]) -> None:
        buffer = bytearray(BUFFER_SIZE)
        while (index := take()) is not None:
            try:
                results[index] = sha256_file(entries[index].path, buffer, stats[index])
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
    results: list[Hashed | None],
    errors: dict[int, AttestStepError],
    cpus: int,
) -> None:
    size = max(1, -(-len(files) // (cpus * BATCHES_PER_WORKER)))
    batches = [files[start : start + size] for start in range(0, len(files), size)]
    tickets_r, tickets_w = os.pipe()
    try:
        payload = b"".join(_TICKET.pack(n) for n in range(len(batches)))
        if len(payload) > 32768:  # must fit the pipe buffer: it is written before any read
            raise RuntimeError("too many batches")
        os.write(tickets_w, payload)
    finally:
        os.close(tickets_w)
    children: list[tuple[int, int]] = []
    try:
        for _ in range(cpus - 1):
            children.append(_fork_worker(entries, batches, tickets_r))
        done, failure = _work(entries, batches, tickets_r)
        _store(batches, done, results)
        if failure is not None:
            errors[failure[0]] = AttestStepError(failure[1])
    finally:
        os.close(tickets_r)
        for pid, fd in children:
            _collect_child(pid, fd, batches, results, errors)


def _work(
    entries: Sequence[Entry], batches: list[list[int]], tickets: int
) -> tuple[list[tuple[int, list[Hashed]]], tuple[int, str] | None]:
    """Take tickets until none are left; on an error, drain the tickets so others stop."""
    buffer = bytearray(BUFFER_SIZE)
    done: list[tuple[int, list[Hashed]]] = []
    while len(raw := os.read(tickets, _TICKET.size)) == _TICKET.size:
        number = _TICKET.unpack(raw)[0]
        out: list[Hashed] = []
        for index in batches[number]:
            try:
                out.append(sha256_file(entries[index].path, buffer))
            except AttestStepError as err:
                while os.read(tickets, 4096):
                    pass
                return done, (index, str(err))
        done.append((number, out))
    return done, None


def _store(
    batches: list[list[int]],
    done: list[tuple[int, list[Hashed]]],
    results: list[Hashed | None],
) -> None:
    for number, hashed in done:
        for index, item in zip(batches[number], hashed, strict=True):
            results[index] = item


def _fork_worker(
    entries: Sequence[Entry], batches: list[list[int]], tickets: int
) -> tuple[int, int]:
    """Fork a child running :func:`_work`; it writes ``O`` + records or ``E`` + error."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid != 0:
        os.close(write_fd)
        return pid, read_fd
    status = 0
    try:  # the child: never returns
        os.close(read_fd)
        try:
            done, failure = _work(entries, batches, tickets)
            parts = [_OK]
            for number, hashed in done:
                parts.append(_TICKET.pack(number))
                parts.extend(_RECORD.pack(bytes.fromhex(h.hex), h.mode) for h in hashed)
            if failure is not None:
                parts = [_ERR, f"{failure[0]}\n{failure[1]}".encode("utf-8", "backslashreplace")]
        except BaseException as err:
            text = f"internal error in a hashing worker: {type(err).__name__}: {err}"
            parts = [_ERR, f"-1\n{text}".encode("utf-8", "backslashreplace")]
        view = memoryview(b"".join(parts))
        while view:
            view = view[os.write(write_fd, view) :]
    except BaseException:
        status = 1
    finally:
        os._exit(status)


def _collect_child(
    pid: int,
    fd: int,
    batches: list[list[int]],
    results: list[Hashed | None],
    errors: dict[int, AttestStepError],
) -> None:
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
        errors[int(where)] = AttestStepError(message)
        return
    if data[:1] != _OK:
        errors[-1] = AttestStepError(
            "a hashing worker process died without a result; run again, and report it if it repeats"
        )
        return
    view = memoryview(data)[1:]
    while view:
        number = _TICKET.unpack_from(view)[0]
        view = view[_TICKET.size :]
        for index in batches[number]:
            digest, mode = _RECORD.unpack_from(view)
            view = view[_RECORD.size :]
            results[index] = Hashed(digest.hex(), mode)
