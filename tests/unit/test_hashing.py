"""hash_paths and the engine: digests, naming across roots, change detection, parallel paths."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attest_step.errors import AttestStepError, UsageError
from attest_step.hashing import engine, hash_paths
from attest_step.hashing.cpus import _cgroup_quota, usable_cpus
from attest_step.hashing.engine import hash_entries
from attest_step.hashing.file import SMALL_READ, Hashed, sha256_file
from attest_step.model import Subject
from attest_step.walk import Entry, Excludes, FileStat, Kind, walk_tree


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def as_pairs(subjects: list[Subject]) -> list[tuple[str, str]]:
    return [(s.name, s.digest["sha256"]) for s in subjects]


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=3 << 20))
def test_file_digest_equals_hashlib(tmp_path: Path, data: bytes) -> None:
    path = write(tmp_path / "f.bin", data)
    assert as_pairs(hash_paths([path])) == [("f.bin", sha(data))]


def test_file_argument_is_named_by_base_name(tmp_path: Path) -> None:
    path = write(tmp_path / "deep" / "dir" / "app.tar", b"x")
    assert as_pairs(hash_paths([path])) == [("app.tar", sha(b"x"))]


def test_directory_files_named_relative_and_sorted(tmp_path: Path) -> None:
    write(tmp_path / "out" / "b", b"b")
    write(tmp_path / "out" / "a" / "c", b"c")
    write(tmp_path / "other.txt", b"o")
    got = as_pairs(hash_paths([tmp_path / "other.txt", tmp_path / "out"]))
    assert got == [("a/c", sha(b"c")), ("b", sha(b"b")), ("other.txt", sha(b"o"))]


def test_same_name_from_two_roots_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "one" / "x", b"1")
    write(tmp_path / "two" / "x", b"2")
    with pytest.raises(AttestStepError, match=r"two: yields the subject name 'x'.*one"):
        hash_paths([tmp_path / "one", tmp_path / "two"])


def test_same_path_twice_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "f", b"1")
    with pytest.raises(AttestStepError, match="yields the subject name 'f'"):
        hash_paths([path, path])


def test_excludes_apply_below_directories(tmp_path: Path) -> None:
    write(tmp_path / "d" / "keep", b"k")
    write(tmp_path / "d" / "x.log", b"l")
    assert [n for n, _ in as_pairs(hash_paths([tmp_path / "d"], excludes=["*.log"]))] == ["keep"]


def test_empty_directory_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(AttestStepError, match="no files to hash"):
        hash_paths([tmp_path / "d"])


def test_missing_path_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(AttestStepError, match="nope: cannot hash it"):
        hash_paths([tmp_path / "nope"])


def test_no_paths_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        hash_paths([])


def test_fifo_argument_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "p")
    with pytest.raises(AttestStepError, match="not a regular file or directory"):
        hash_paths([tmp_path / "p"])


def test_root_argument_that_is_a_link_is_followed_once(tmp_path: Path) -> None:
    write(tmp_path / "real" / "f", b"f")
    (tmp_path / "alias").symlink_to("real")
    assert as_pairs(hash_paths([tmp_path / "alias"])) == [("f", sha(b"f"))]


def test_output_is_deterministic(tmp_path: Path) -> None:
    for n in range(50):
        write(tmp_path / "d" / f"{n % 7}" / f"f{n}", bytes([n]) * n)
    assert hash_paths([tmp_path / "d"]) == hash_paths([tmp_path / "d"])


def entries_of(root: Path) -> list[Entry]:
    return walk_tree(os.fsencode(root), Excludes(()))


def test_engine_fork_and_threads_agree_with_sequential(tmp_path: Path) -> None:
    expected = {}
    for n in range(40):
        data = os.urandom(n * 997)
        write(tmp_path / f"s{n:02}", data)
        expected[f"s{n:02}"] = sha(data)
    for n in range(3):
        data = os.urandom(300_000 + n)
        write(tmp_path / f"l{n}", data)
        expected[f"l{n}"] = sha(data)
    entries = entries_of(tmp_path)
    few = hash_entries(entries, workers=2, large_file=200_000, fork_min_files=1000)
    # From a thread, forking is unsafe: the large files go to threads instead.
    threaded = in_thread(
        lambda: hash_entries(entries, workers=2, large_file=200_000, fork_min_files=1000)
    )
    forked = hash_entries(entries, workers=2, fork_min_files=4)
    forked3 = hash_entries(entries, workers=3, fork_min_files=4)
    sequential = hash_entries(entries, workers=1)
    assert few == threaded == forked == forked3 == sequential
    assert [h.hex for h in sequential] == [expected[e.name] for e in entries]
    assert all(h.mode & 0o170000 == 0o100000 for h in sequential)


def test_engine_reports_error_from_forked_worker(tmp_path: Path) -> None:
    for n in range(20):
        write(tmp_path / f"f{n:02}", b"x")
    entries = entries_of(tmp_path)
    (tmp_path / "f13").unlink()
    (tmp_path / "f17").unlink()
    os.mkfifo(tmp_path / "f17")  # a later error: must not win over f13
    for _ in range(5):  # whichever process takes the batch, the first error in order wins
        with pytest.raises(AttestStepError, match="f13: cannot open for hashing"):
            hash_entries(entries, workers=2, fork_min_files=2)


def in_thread(work: Callable[[], list[Hashed]]) -> list[Hashed]:
    """``work()`` run in another thread (so the engine may not fork); its error re-raised."""
    out: list[list[Hashed]] = []
    failed: list[BaseException] = []

    def run() -> None:
        try:
            out.append(work())
        except BaseException as err:
            failed.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if failed:
        raise failed[0]
    return out[0]


def test_engine_few_files_fork_with_more_files_than_tickets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Largest first, one file per ticket, unless that makes more tickets than the pipe
    holds: then several files per ticket, still in that order."""
    monkeypatch.setattr(engine, "_MAX_TICKETS", 4)
    for n in range(10):
        write(tmp_path / f"f{n}", bytes([n]) * (3000 if n in (2, 7) else n + 1))
    entries = entries_of(tmp_path)
    got = hash_entries(entries, workers=2, large_file=1000, fork_min_files=1 << 30)
    assert got == hash_entries(entries, workers=1)


@pytest.mark.parametrize("from_thread", [False, True], ids=["forked", "threads"])
def test_engine_reports_error_of_a_large_file(tmp_path: Path, from_thread: bool) -> None:
    for n in range(4):
        write(tmp_path / f"f{n}", b"y" * 5000)
    entries = entries_of(tmp_path)
    os.unlink(tmp_path / "f2")
    os.mkfifo(tmp_path / "f2")

    def work() -> list[Hashed]:
        return hash_entries(entries, workers=2, large_file=1000, fork_min_files=1 << 30)

    with pytest.raises(AttestStepError, match="f2: the file changed"):
        in_thread(work) if from_thread else work()


@pytest.mark.parametrize("from_thread", [False, True], ids=["forked", "threads"])
def test_engine_large_files_gone_first_in_order_wins(tmp_path: Path, from_thread: bool) -> None:
    """Two large files deleted after the walk: the first in entry order is reported."""
    for n in range(4):
        write(tmp_path / f"f{n}", b"z" * 5000)
    entries = entries_of(tmp_path)
    for name in ("f1", "f3"):
        (tmp_path / name).unlink()

    def work() -> list[Hashed]:
        return hash_entries(entries, workers=2, large_file=1000, fork_min_files=1 << 30)

    with pytest.raises(AttestStepError, match="f1: cannot open for hashing"):
        in_thread(work) if from_thread else work()


def test_link_entries_hash_their_target_text(tmp_path: Path) -> None:
    (tmp_path / "l").symlink_to("some/where")
    entries = walk_tree(os.fsencode(tmp_path), Excludes(()), keep_links=True)
    assert hash_entries(entries) == [Hashed(sha(b"some/where"), 0o120777)]


def stat_of(path: Path) -> FileStat:
    return FileStat.of(os.lstat(path))


def test_change_between_walk_and_hash_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "f", b"a" * 100)
    before = stat_of(path)
    path.write_bytes(b"b" * 100)  # same size; ctime (and mtime) move
    with pytest.raises(AttestStepError, match="changed while it was being hashed"):
        sha256_file(os.fsencode(path), bytearray(64), before)


# Small files are read with os.read, large ones with os.readv into the reusable buffer.
READ_PATHS = pytest.mark.parametrize(
    ("reader", "size"), [("read", 1000), ("readv", SMALL_READ + 300_000)]
)


@READ_PATHS
def test_growth_during_hashing_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reader: str, size: int
) -> None:
    path = write(tmp_path / "f", b"a" * size)
    expected = stat_of(path)
    original = getattr(os, reader)

    def read_then_append(*args: object) -> object:
        with open(path, "ab") as handle:
            handle.write(b"more")
        return original(*args)

    monkeypatch.setattr(os, reader, read_then_append)
    with pytest.raises(AttestStepError, match="changed while"):
        sha256_file(os.fsencode(path), bytearray(100_000), expected)


@READ_PATHS
def test_rewrite_in_place_during_hashing_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reader: str, size: int
) -> None:
    path = write(tmp_path / "f", b"a" * size)
    expected = stat_of(path)
    original = getattr(os, reader)

    def read_then_rewrite(*args: object) -> object:
        with open(path, "r+b") as handle:  # same size, new bytes
            handle.write(b"b")
        os.utime(path, ns=(expected.mtime_ns, expected.mtime_ns))  # even with mtime put back
        return original(*args)

    monkeypatch.setattr(os, reader, read_then_rewrite)
    with pytest.raises(AttestStepError, match="changed while"):
        sha256_file(os.fsencode(path), bytearray(100_000), expected)


@READ_PATHS
def test_truncation_during_hashing_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reader: str, size: int
) -> None:
    path = write(tmp_path / "f", b"a" * size)
    expected = stat_of(path)
    original = getattr(os, reader)

    def read_then_truncate(*args: object) -> object:
        os.truncate(path, 10)
        return original(*args)

    monkeypatch.setattr(os, reader, read_then_truncate)
    with pytest.raises(AttestStepError, match="changed while"):
        sha256_file(os.fsencode(path), bytearray(100_000), expected)


def test_unchanged_file_passes_both_read_paths(tmp_path: Path) -> None:
    for size in (0, 1, SMALL_READ, SMALL_READ + 1, 3 * 100_000 + 7):
        data = os.urandom(size)
        path = write(tmp_path / f"f{size}", data)
        got = sha256_file(os.fsencode(path), bytearray(100_000))
        assert got == Hashed(sha(data), os.lstat(path).st_mode)


def test_link_swapped_in_is_not_followed(tmp_path: Path) -> None:
    path = write(tmp_path / "f", b"a")
    expected = stat_of(path)
    path.unlink()
    path.symlink_to("/etc/hostname")
    with pytest.raises(AttestStepError, match="cannot open for hashing"):
        sha256_file(os.fsencode(path), bytearray(64), expected)


def test_fifo_swapped_in_does_not_block(tmp_path: Path) -> None:
    path = write(tmp_path / "f", b"a")
    expected = stat_of(path)
    path.unlink()
    os.mkfifo(path)
    with pytest.raises(AttestStepError, match="changed"):
        sha256_file(os.fsencode(path), bytearray(64), expected)


def test_hashing_from_a_thread_does_not_fork(tmp_path: Path) -> None:
    for n in range(10):
        write(tmp_path / f"f{n}", bytes([n]))
    entries = entries_of(tmp_path)
    out: list[list[Hashed]] = []
    thread = threading.Thread(
        target=lambda: out.append(hash_entries(entries, workers=2, fork_min_files=1))
    )
    thread.start()
    thread.join()
    assert [[h.hex for h in hashed] for hashed in out] == [
        [sha(bytes([int(e.name[1:])])) for e in entries]
    ]


def test_unreadable_file_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "f", b"a")
    entry = Entry(b"f", "f", os.fsencode(path), Kind.FILE)
    path.unlink()
    with pytest.raises(AttestStepError, match="cannot open for hashing"):
        hash_entries([entry], workers=1)


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu.max": "150000 100000\n"}, 1.5),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "50000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 0.5),
        ({}, None),
    ],
)
def test_cgroup_quota(tmp_path: Path, files: dict[str, str], expected: float | None) -> None:
    for rel, text in files.items():
        write(tmp_path / rel, text.encode())
    assert _cgroup_quota(tmp_path) == expected


def test_usable_cpus_respects_quota(tmp_path: Path) -> None:
    write(tmp_path / "cpu.max", b"50000 100000\n")
    assert usable_cpus(tmp_path) == 1
    assert usable_cpus(tmp_path / "none") == len(os.sched_getaffinity(0))


def test_percent_encoding_collision_inside_one_root_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "d" / "a%FF", b"utf-8 name")
    with open(os.fsencode(tmp_path) + b"/d/a\xff", "wb") as handle:
        handle.write(b"latin-1 byte")
    with pytest.raises(AttestStepError, match="both named 'a%FF'"):
        hash_paths([tmp_path / "d"])
