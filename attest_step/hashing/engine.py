"""Hash many files fast on a few cores.

Design (measurements in docs/hashing.md):

* Large files (``>= LARGE_FILE``) go to one thread per usable CPU, largest first. Each thread
  owns one reusable 1 MiB buffer; ``hashlib`` releases the GIL for each 1 MiB update, so the
  threads hash in parallel. One file is always hashed by one thread (SHA-256 is sequential).
* Small files cost more in Python per-file overhead (held under the GIL) than in hashing, so
  threads do not help them. When there are many (``>= FORK_MIN_FILES``), the process forks
  ``cpus - 1`` children *before* any thread starts; child ``k`` hashes every ``cpus``-th small
  file and sends the 64-character hex digests back through a pipe, while the parent hashes its
  own share. Fewer small files are hashed in the calling thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Callable, Sequence

from attest_step.errors import AttestStepError
from attest_step.hashing.cpus import usable_cpus
from attest_step.hashing.file import BUFFER_SIZE, sha256_file
from attest_step.walk import Entry, Kind

LARGE_FILE = 4 << 20
"""Files at least this big are hashed by the thread pool."""
FORK_MIN_FILES = 1500
"""At least this many small files make forking worth its few milliseconds."""

_OK = b"O"
_ERR = b"E"


def hash_entries(
    entries: Sequence[Entry],
    *,
    workers: int | None = None,
    large_file: int = LARGE_FILE,
    fork_min_files: int = FORK_MIN_FILES,
) -> list[str]:
    """Hex SHA-256 of each entry, in the order given.

    ``workers`` defaults to the usable CPUs; the thresholds are parameters for tests and the
    benchmark.

    A file entry is hashed by content; a link entry (directory digests only) by the bytes of
    its target text. Raises AttestStepError for the first problem found in entry order.
    """
    cpus = usable_cpus() if workers is None else max(1, workers)
    results: list[str] = [""] * len(entries)
    large: list[int] = []
    small: list[int] = []
    for index, entry in enumerate(entries):
        if entry.kind is Kind.LINK:
            results[index] = hashlib.sha256(entry.link_target).hexdigest()
        elif entry.stat.size >= large_file and cpus > 1:
            large.append(index)
        else:
            small.append(index)

    children: list[tuple[int, int, list[int]]] = []
    # Forking is safe only while this process has a single thread.
    if (
        cpus > 1
        and len(small) >= fork_min_files
        and hasattr(os, "fork")
        and threading.active_count() == 1
    ):
        shares = [small[k::cpus] for k in range(cpus)]
        small = shares[0]
        for share in shares[1:]:
            children.append((*_fork_worker(entries, share), share))

    errors: dict[int, AttestStepError] = {}
    threads = _start_threads(entries, large, results, errors, min(cpus, len(large)))
    try:
        _hash_sequential(entries, small, results, errors, stop=lambda: bool(errors))
    finally:
        for pid, fd, share in children:
            _collect_child(pid, fd, share, results, errors)
        for thread in threads:
            thread.join()
    if errors:
        raise errors[min(errors)]
    return results


def _hash_sequential(
    entries: Sequence[Entry],
    indices: Sequence[int],
    results: list[str],
    errors: dict[int, AttestStepError],
    stop: Callable[[], bool],
) -> None:
    buffer = bytearray(BUFFER_SIZE)
    for index in indices:
        if stop():
            return
        entry = entries[index]
        try:
            results[index] = sha256_file(entry.path, entry.stat, buffer)
        except AttestStepError as err:
            errors[index] = err
            return


def _start_threads(
    entries: Sequence[Entry],
    indices: list[int],
    results: list[str],
    errors: dict[int, AttestStepError],
    count: int,
) -> list[threading.Thread]:
    if count == 0:
        return []
    order = sorted(indices, key=lambda i: entries[i].stat.size, reverse=True)
    lock = threading.Lock()
    position = [0]

    def next_index() -> int | None:
        with lock:
            if errors or position[0] >= len(order):
                return None
            position[0] += 1
            return order[position[0] - 1]

    def run() -> None:
        buffer = bytearray(BUFFER_SIZE)
        while (index := next_index()) is not None:
            entry = entries[index]
            try:
                results[index] = sha256_file(entry.path, entry.stat, buffer)
            except AttestStepError as err:
                with lock:
                    errors[index] = err

    threads = [
        threading.Thread(target=run, name=f"attest-step-hash-{n}", daemon=True)
        for n in range(count)
    ]
    for thread in threads:
        thread.start()
    return threads


def _fork_worker(entries: Sequence[Entry], share: list[int]) -> tuple[int, int]:
    """Fork a child that hashes ``share`` and writes ``O<hex>...`` or ``E<message>``."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid != 0:
        os.close(write_fd)
        return pid, read_fd
    status = 0
    try:  # the child: never returns
        os.close(read_fd)
        buffer = bytearray(BUFFER_SIZE)
        hexes: list[str] = []
        try:
            for i in share:
                hexes.append(sha256_file(entries[i].path, entries[i].stat, buffer))
            payload = _OK + "".join(hexes).encode("ascii")
        except BaseException as err:
            text = (
                str(err)
                if isinstance(err, AttestStepError)
                else (f"internal error in a hashing worker: {type(err).__name__}: {err}")
            )
            payload = _ERR + f"{share[len(hexes)]}\n{text}".encode("utf-8", "backslashreplace")
        view = memoryview(payload)
        while view:
            view = view[os.write(write_fd, view) :]
    except BaseException:
        status = 1
    finally:
        os._exit(status)


def _collect_child(
    pid: int, fd: int, share: list[int], results: list[str], errors: dict[int, AttestStepError]
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
    if data[:1] == _OK and len(data) == 1 + 64 * len(share):
        text = data[1:].decode("ascii")
        for n, index in enumerate(share):
            results[index] = text[64 * n : 64 * n + 64]
        return
    if data[:1] == _ERR:
        where, _, message = data[1:].decode("utf-8", "replace").partition("\n")
        errors[int(where)] = AttestStepError(message)
        return
    errors[share[0] if share else -1] = AttestStepError(
        "a hashing worker process died without a result; run again, and report it if it repeats"
    )
