"""Bench section "hashing": subjects from big files, many small files, and memory.

Targets (issue "attest_step core"):

* big_tree_vs_ceiling >= 0.90: hashing a tree of 4 x 512 MiB (warm page cache) with the
  library, against the machine's ceiling measured in the same run = one process per usable
  CPU running plain ``hashlib.sha256`` over the same number of bytes already in memory.
  Ceiling and engine are measured alternately, several rounds; best of each is compared.
* small_files_vs_in_toto >= 4: ``attest-step hash DIR --output json`` (whole process) against
  ``in-toto-run --no-command -p DIR --signing-key K`` on 20,000 files of 16 KiB.
* peak_rss_4gib_file <= 100 MB: ru_maxrss of ``attest-step hash FILE`` on a 4 GiB sparse file.

``quick`` shrinks everything (4 x 64 MiB, 4,000 files, a 1 GiB file) and repeats less.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from attest_step.hashing import hash_paths
from attest_step.hashing.cpus import usable_cpus
from attest_step.hashing.engine import hash_entries
from attest_step.walk import Excludes, walk_tree

GIB = 1 << 30
MIB = 1 << 20
ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _gib_s(nbytes: int, seconds: float) -> float:
    return round(nbytes / seconds / GIB, 3)


def _best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


# ---- ceiling: plain hashlib over bytes in memory, one process per CPU ----

_BLOCK = 64 * MIB


def _ceiling_init() -> None:
    global _buffer  # noqa: PLW0603 - one buffer per pool process, made before timing
    _buffer = os.urandom(_BLOCK)


_buffer = b""


def _ceiling_work(nbytes: int) -> str:
    digest = hashlib.sha256()
    view = memoryview(_buffer)
    done = 0
    while done < nbytes:
        step = min(len(view), nbytes - done)
        digest.update(view[:step])
        done += step
    return digest.hexdigest()


class Ceiling:
    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.pool = multiprocessing.get_context("fork").Pool(workers, initializer=_ceiling_init)
        self.pool.map(_ceiling_work, [MIB] * workers)  # start and warm every worker

    def measure(self, nbytes: int) -> float:
        share = nbytes // self.workers
        started = time.perf_counter()
        self.pool.map(_ceiling_work, [share] * self.workers, chunksize=1)
        return time.perf_counter() - started

    def close(self) -> None:
        self.pool.close()
        self.pool.join()


# ---- data ----


def _write_big_files(root: Path, count: int, size: int) -> int:
    root.mkdir()
    block = os.urandom(16 * MIB)
    for n in range(count):
        with open(root / f"part-{n}.bin", "wb") as handle:
            written = 0
            while written < size:
                chunk = block[: min(len(block), size - written)]
                handle.write(n.to_bytes(8, "little") + chunk[8:])
                written += len(chunk)
    return count * size


def _warm(root: Path) -> None:
    buffer = bytearray(4 * MIB)
    for path in sorted(root.rglob("*")):
        if path.is_file():
            with open(path, "rb", buffering=0) as handle:
                while handle.readinto(buffer):
                    pass


def _write_small_files(root: Path, count: int, size: int) -> int:
    root.mkdir()
    per_dir = 500
    for n in range(count):
        directory = root / f"d{n // per_dir:03}"
        if n % per_dir == 0:
            directory.mkdir()
        (directory / f"f{n:05}.dat").write_bytes(n.to_bytes(8, "little") * (size // 8))
    return count * size


# Runs a command from a small interpreter and prints its ru_maxrss: Linux carries the
# parent's peak RSS into a forked child's ru_maxrss, so measuring from this (big) process
# would report the bench's own memory.
_RSS_HELPER = (
    "import os, sys\n"
    "quiet = [(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)]\n"
    "pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ, file_actions=quiet)\n"
    "_, status, usage = os.wait4(pid, 0)\n"
    "print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)\n"
)


def _peak_rss(argv: list[str], cwd: Path) -> int:
    """ru_maxrss (bytes) of a command started from a small interpreter."""
    proc = subprocess.run(
        [sys.executable, "-S", "-c", _RSS_HELPER, *argv],
        cwd=cwd,
        capture_output=True,
        env=_child_env(),
        check=False,
    )
    code, maxrss_kib = (int(x) for x in proc.stdout.split()[-2:])
    if code != 0:
        raise RuntimeError(f"{argv[0]} exited {code}: {proc.stderr.decode()[:500]}")
    return maxrss_kib * 1024


def _run_child(argv: list[str], cwd: Path) -> float:
    """Wall seconds of a command, output discarded; raises if it fails."""
    started = time.perf_counter()
    proc = subprocess.run(
        argv,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=_child_env(),
        check=False,
    )
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {proc.returncode}: {proc.stderr.decode()[:500]}")
    return elapsed


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    return env


def _in_toto_key(directory: Path) -> Path:
    key = ed25519.Ed25519PrivateKey.generate()
    path = directory / "in-toto-key.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


# ---- sections ----


def big_tree(work: Path, quick: bool) -> dict[str, Any]:
    count, size = (4, 64 * MIB) if quick else (4, 512 * MIB)
    rounds = 2 if quick else 3
    tree = work / "big"
    nbytes = _write_big_files(tree, count, size)
    _warm(tree)
    cpus = usable_cpus()
    entries = walk_tree(os.fsencode(tree), Excludes(()))
    ceiling = Ceiling(cpus)
    ceil_s: list[float] = []
    engine_s: list[float] = []
    one_s: list[float] = []
    try:
        for _ in range(rounds):
            ceil_s.append(ceiling.measure(nbytes))
            engine_s.append(_best(lambda: hash_paths([tree]), 1))
            one_s.append(_best(lambda: hash_entries(entries, workers=1), 1))
        ceil_s.append(ceiling.measure(nbytes))
    finally:
        ceiling.close()
    ratios = sorted(c / e for c, e in zip(ceil_s, engine_s, strict=False))
    return {
        "files": count,
        "file_bytes": size,
        "bytes": nbytes,
        "rounds": rounds,
        "workers": cpus,
        "ceiling": {
            "what": f"{cpus} processes x hashlib.sha256 over in-memory bytes",
            "seconds": round(min(ceil_s), 4),
            "gib_s": _gib_s(nbytes, min(ceil_s)),
            "all_seconds": [round(s, 4) for s in ceil_s],
        },
        "engine": {
            "what": "hash_paths(tree): threads, 1 MiB readinto buffer each",
            "seconds": round(min(engine_s), 4),
            "gib_s": _gib_s(nbytes, min(engine_s)),
            "all_seconds": [round(s, 4) for s in engine_s],
        },
        "one_thread": {
            "what": "same files, workers=1",
            "seconds": round(min(one_s), 4),
            "gib_s": _gib_s(nbytes, min(one_s)),
        },
        "ratio_best_engine_to_best_ceiling": round(min(ceil_s) / min(engine_s), 3),
        "ratio_per_round_median": round(ratios[len(ratios) // 2], 3),
    }


def small_files(work: Path, quick: bool) -> dict[str, Any]:
    count, size = (4000, 16 * 1024) if quick else (20000, 16 * 1024)
    repeat = 2 if quick else 3
    tree = work / "small"
    nbytes = _write_small_files(tree, count, size)
    _warm(tree)
    ours_argv = [str(BIN / "attest-step"), "hash", str(tree), "--output", "json"]
    key = _in_toto_key(work)
    in_toto_argv = [
        str(BIN / "in-toto-run"),
        "-n",
        "bench",
        "--signing-key",
        str(key),
        "--no-command",
        "-p",
        str(tree),
    ]
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(repeat):
        ours.append(_run_child(ours_argv, work))
        theirs.append(_run_child(in_toto_argv, work))
    library = _best(lambda: hash_paths([tree]), repeat)
    single = _best(
        lambda: hash_entries(walk_tree(os.fsencode(tree), Excludes(())), workers=1), repeat
    )
    startup = min(_run_child([str(BIN / "attest-step"), "--version"], work) for _ in range(3))
    return {
        "files": count,
        "file_bytes": size,
        "bytes": nbytes,
        "attest_step_cli": {
            "seconds": round(min(ours), 4),
            "files_per_s": round(count / min(ours)),
            "all_seconds": [round(s, 4) for s in ours],
        },
        "in_toto_run": {
            "seconds": round(min(theirs), 4),
            "files_per_s": round(count / min(theirs)),
            "all_seconds": [round(s, 4) for s in theirs],
        },
        "library_hash_paths": {"seconds": round(library, 4), "files_per_s": round(count / library)},
        "library_one_worker": {"seconds": round(single, 4), "files_per_s": round(count / single)},
        "cli_startup_version_seconds": round(startup, 4),
        "speedup_vs_in_toto": round(min(theirs) / min(ours), 2),
    }


def memory(work: Path, quick: bool) -> dict[str, Any]:
    size = GIB if quick else 4 * GIB
    path = work / "sparse.bin"
    with open(path, "wb") as handle:
        handle.truncate(size)
    started = time.perf_counter()
    rss = _peak_rss([str(BIN / "attest-step"), "hash", str(path)], work)
    seconds = time.perf_counter() - started
    baseline = _peak_rss([str(BIN / "attest-step"), "--version"], work)
    return {
        "file_bytes": size,
        "sparse": True,
        "seconds": round(seconds, 3),
        "gib_s": _gib_s(size, seconds),
        "peak_rss_bytes": rss,
        "peak_rss_mb": round(rss / 1e6, 1),
        "startup_only_rss_mb": round(baseline / 1e6, 1),
        "note": "ru_maxrss of the child: page cache is not part of it",
    }


def run(quick: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="attest-step-bench-") as tmp:
        work = Path(tmp)
        big = big_tree(work, quick)
        small = small_files(work, quick)
        mem = memory(work, quick)
    return {
        "big_tree": big,
        "small_files": small,
        "memory": mem,
        "targets": [
            {
                "name": "big_tree_vs_ceiling",
                "measured": big["ratio_best_engine_to_best_ceiling"],
                "target": 0.9,
                "unit": "x ceiling",
                "better": "higher",
            },
            {
                "name": "small_files_vs_in_toto",
                "measured": small["speedup_vs_in_toto"],
                "target": 4.0,
                "unit": "x faster",
                "better": "higher",
            },
            {
                "name": "peak_rss_4gib_file" if not quick else "peak_rss_1gib_file",
                "measured": mem["peak_rss_mb"],
                "target": 100.0,
                "unit": "MB",
                "better": "lower",
            },
        ],
    }
