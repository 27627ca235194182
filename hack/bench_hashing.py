"""Bench section "hashing": subjects from big files, many small files, and memory.

Targets (issue 15):

* big files, 4 x 512 MiB in the page cache, every program timed as a whole process (start-up
  included), interleaved round by round:
  - ``big_files_vs_anchor >= 0.95``: ``attest-step hash DIR`` against the anchor, the least
    Python program that reads and hashes the same files with one worker per usable CPU:
    ``python -S`` on the graded interpreter, forking one process per CPU that runs
    ``hashlib.file_digest`` per file (docs/decisions.md says why this one is graded);
  - recorded beside it, not graded: ``big_files_vs_c_anchor``, against
    ``hack/anchor/sha256read.c`` (read(2) into a buffer as big as the engine's, OpenSSL's
    SHA-256, one thread per CPU; compiled here with gcc ``-lcrypto``), the floor of any
    program, and ``startup``, the start-up of an interpreter, of click and of attest-step;
  - ``big_files_vs_ceiling >= 0.85``: against the in-memory ceiling, one already started
    process per usable CPU running ``hashlib.sha256`` over bytes in memory (64 MiB updates).
  Graded on the best time of each (the least disturbed run); medians, per-round ratios and
  CPU seconds (user + system, less sensitive to other load) are recorded too, and
  ``read_methods`` compares ways of reading one file in one thread (readv, file_digest,
  mmap) by CPU seconds.
* ``small_files_vs_in_toto >= 4``: ``attest-step hash DIR --output json`` (whole process)
  against ``in-toto-run --no-command -p DIR --signing-key K`` on 20,000 files of 16 KiB.
* ``peak_rss_4gib_file <= 100 MB``: ru_maxrss of ``attest-step hash FILE`` on a 4 GiB sparse
  file.

attest-step is timed as users run it (``hack/wheel_install.py``: the wheel in a fresh venv),
on Debian's CPython when it is installed (graded, as the ``oci`` section does) and on the
development venv's interpreter. ``quick`` shrinks everything (4 x 64 MiB, 4,000 files, a
1 GiB file) and repeats less.
"""

from __future__ import annotations

import hashlib
import mmap
import multiprocessing
import os
import statistics
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
from attest_step.hashing.file import BUFFER_SIZE
from attest_step.walk import Excludes, walk_tree
from hack.wheel_install import build_wheel, system_python, wheel_install

GIB = 1 << 30
MIB = 1 << 20
ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ANCHOR_SOURCE = ROOT / "hack" / "anchor" / "sha256read.c"


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


def _ceiling_work(nbytes: int) -> float:
    """Hash ``nbytes`` of the in-memory buffer; returns the CPU seconds it took."""
    started = time.thread_time()
    digest = hashlib.sha256()
    view = memoryview(_buffer)
    done = 0
    while done < nbytes:
        step = min(len(view), nbytes - done)
        digest.update(view[:step])
        done += step
    digest.hexdigest()
    return time.thread_time() - started


class Ceiling:
    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.pool = multiprocessing.get_context("fork").Pool(workers, initializer=_ceiling_init)
        self.pool.map(_ceiling_work, [MIB] * workers)  # start and warm every worker

    def measure(self, nbytes: int) -> tuple[float, float]:
        """(wall seconds, CPU seconds of all workers) to hash ``nbytes`` in memory."""
        share = nbytes // self.workers
        started = time.perf_counter()
        cpu = self.pool.map(_ceiling_work, [share] * self.workers, chunksize=1)
        return time.perf_counter() - started, sum(cpu)

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
    return _run_timed(argv, cwd)[0]


def _run_timed(argv: list[str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds user + system) of a command and all its threads and
    reaped children, output discarded; raises if it fails."""
    with tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        proc = subprocess.Popen(
            argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=errors, env=_child_env()
        )
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            errors.seek(0)
            detail = errors.read(500).decode(errors="replace")
            raise RuntimeError(f"{argv[0]} exited {proc.returncode}: {detail}")
    return elapsed, usage.ru_utime + usage.ru_stime


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


def _compile_anchor(work: Path) -> tuple[Path | None, str]:
    """The C anchor built with the machine's gcc against libcrypto, or None and why not."""
    binary = work / "sha256read"
    argv = ["gcc", "-O2", "-pthread", str(ANCHOR_SOURCE), "-o", str(binary), "-lcrypto"]
    try:
        subprocess.run(argv, check=True, capture_output=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as err:
        detail = getattr(err, "stderr", b"") or b""
        return None, f"{' '.join(argv)} failed: {err} {detail.decode(errors='replace')[:300]}"
    return binary, " ".join(argv)


# One process per CPU (the parent forks the others), each running hashlib.file_digest over
# its share of the files: the limit for a Python program that reads files.
_FILE_DIGEST_ANCHOR = (
    "import hashlib, os, sys\n"
    "cpus, files = int(sys.argv[1]), sys.argv[2:]\n"
    "def share(k):\n"
    "    for path in files[k::cpus]:\n"
    "        with open(path, 'rb', buffering=0) as handle:\n"
    "            print(hashlib.file_digest(handle, 'sha256').hexdigest(), path, flush=True)\n"
    "kids = []\n"
    "for k in range(1, cpus):\n"
    "    pid = os.fork()\n"
    "    if pid == 0:\n"
    "        share(k)\n"
    "        os._exit(0)\n"
    "    kids.append(pid)\n"
    "share(0)\n"
    "sys.exit(max(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in kids or [0]))\n"
)


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _timing(what: str, seconds: list[float], nbytes: int) -> dict[str, Any]:
    return {
        "what": what,
        "median_seconds": round(_median(seconds), 4),
        "best_seconds": round(min(seconds), 4),
        "median_gib_s": _gib_s(nbytes, _median(seconds)),
        "best_gib_s": _gib_s(nbytes, min(seconds)),
        "all_seconds": [round(s, 4) for s in seconds],
    }


def _ratios(fast: list[float], slow: list[float]) -> dict[str, Any]:
    """How close ``slow`` comes to ``fast`` (times of the same rounds): per round, and best."""
    per_round = [f / s for f, s in zip(fast, slow, strict=True)]
    return {
        "best_to_best": round(min(fast) / min(slow), 3),
        "per_round_median": round(_median(per_round), 3),
        "per_round_min": round(min(per_round), 3),
        "per_round_max": round(max(per_round), 3),
    }


# ---- ways of reading one file, in one thread: CPU seconds, so other load matters less ----


def _by_readv(path: Path, buffer_size: int) -> str:
    """What the engine does: ``readv`` into one reused buffer, ``update`` on a view."""
    digest = hashlib.sha256()
    view = memoryview(bytearray(buffer_size))
    fd = os.open(path, os.O_RDONLY)
    try:
        while count := os.readv(fd, [view]):
            digest.update(view[:count])
    finally:
        os.close(fd)
    return digest.hexdigest()


def _by_file_digest(path: Path) -> str:
    with open(path, "rb", buffering=0) as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _by_mmap(path: Path) -> str:
    with (
        open(path, "rb", buffering=0) as handle,
        mmap.mmap(handle.fileno(), 0, prot=mmap.PROT_READ) as mapped,
    ):
        mapped.madvise(mmap.MADV_SEQUENTIAL)
        return hashlib.sha256(mapped).hexdigest()


def _in_memory(nbytes: int, buffer_size: int) -> Callable[[], str]:
    data = memoryview(os.urandom(buffer_size))

    def run() -> str:
        digest = hashlib.sha256()
        for _ in range(nbytes // buffer_size):
            digest.update(data)
        return digest.hexdigest()

    return run


def read_methods(path: Path, rounds: int) -> dict[str, Any]:
    """CPU seconds (this thread, user + system) to hash the file at ``path`` in one thread,
    per way of reading it, best of ``rounds`` interleaved, and each one's ratio to hashing
    the same number of bytes from the ceiling's 64 MiB in-memory buffer."""
    nbytes = path.stat().st_size
    methods: dict[str, Callable[[], str]] = {
        "in_memory_64mib_buffer": _in_memory(nbytes, _BLOCK),
        "in_memory_1mib_buffer_cache_resident": _in_memory(nbytes, MIB),
        "readv_1mib_buffer": lambda: _by_readv(path, MIB),
        "readv_engine_buffer": lambda: _by_readv(path, BUFFER_SIZE),
        "file_digest": lambda: _by_file_digest(path),
        "mmap": lambda: _by_mmap(path),
    }
    cpu: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(rounds):
        for name, method in methods.items():
            started = time.thread_time()
            method()
            cpu[name].append(time.thread_time() - started)
    base = min(cpu["in_memory_64mib_buffer"])
    return {
        "bytes": nbytes,
        "what": "one thread; CPU seconds best of the rounds; ratio = in_memory_64mib / method",
        "engine_buffer_bytes": BUFFER_SIZE,
        "cpu_seconds": {name: round(min(values), 4) for name, values in cpu.items()},
        "ratio_to_in_memory_64mib": {
            name: round(base / min(values), 3) for name, values in cpu.items()
        },
    }


def _python_of(binary: Path) -> Path:
    """The interpreter of a venv's console script (the venv's ``python``)."""
    return binary.parent / "python"


def startup(work: Path, binary: Path, rounds: int) -> dict[str, Any]:
    """Median wall seconds of what every run of ``attest-step hash`` pays before and after
    hashing, on the graded interpreter: the floor below attest-step's own start-up."""
    python = str(_python_of(binary))
    tiny = work / "tiny.txt"
    tiny.write_bytes(b"x\n")
    argvs = {
        "python_S_pass": [python, "-S", "-c", "pass"],
        "python_pass": [python, "-c", "pass"],
        "python_import_click": [python, "-c", "import click"],
        "attest_step_version": [str(binary), "--version"],
        "attest_step_hash_tiny_file": [str(binary), "hash", str(tiny)],
    }
    times: dict[str, list[float]] = {label: [] for label in argvs}
    for _ in range(rounds):
        for label, argv in argvs.items():
            times[label].append(_run_child(argv, work))
    return {
        "what": "median wall seconds of whole processes, interleaved rounds",
        "rounds": rounds,
        **{label: round(_median(values), 4) for label, values in times.items()},
    }


def big_files(work: Path, quick: bool, ours: dict[str, Path]) -> dict[str, Any]:
    """4 files, warm page cache: every program below is timed as a whole process, in
    interleaved rounds, against the in-memory ceiling of the same round."""
    count, size = (4, 64 * MIB) if quick else (4, 512 * MIB)
    rounds = 3 if quick else 7
    tree = work / "big"
    nbytes = _write_big_files(tree, count, size)
    _warm(tree)
    cpus = usable_cpus()
    files = [str(path) for path in sorted(tree.iterdir())]
    anchor_bin, anchor_build = _compile_anchor(work)
    programs: dict[str, tuple[str, list[str]]] = {}
    if anchor_bin is not None:
        programs["c_read_anchor"] = (
            f"C, {cpus} threads x (read(2) into a {BUFFER_SIZE >> 10} KiB buffer + OpenSSL "
            "SHA-256)",
            [str(anchor_bin), "-t", str(cpus), "-b", str(BUFFER_SIZE), *files],
        )
    graded = next(iter(ours))
    programs["file_digest_anchor"] = (
        f"python -S (the graded interpreter), {cpus} processes x hashlib.file_digest per file",
        [str(_python_of(ours[graded])), "-S", "-c", _FILE_DIGEST_ANCHOR, str(cpus), *files],
    )
    for label, binary in ours.items():
        programs[label] = (f"{binary} hash DIR (whole process)", [str(binary), "hash", str(tree)])
    times: dict[str, list[float]] = {label: [] for label in programs}
    cpu: dict[str, list[float]] = {label: [] for label in programs}
    ceil_s: list[float] = []
    ceil_cpu: list[float] = []
    library_s: list[float] = []
    ceiling = Ceiling(cpus)
    try:
        for _ in range(rounds):
            wall, used = ceiling.measure(nbytes)
            ceil_s.append(wall)
            ceil_cpu.append(used)
            for label, (_, argv) in programs.items():
                wall, used = _run_timed(argv, work)
                times[label].append(wall)
                cpu[label].append(used)
            library_s.append(_best(lambda: hash_paths([tree]), 1))
    finally:
        ceiling.close()
    anchor = "file_digest_anchor"
    result: dict[str, Any] = {
        "files": count,
        "file_bytes": size,
        "bytes": nbytes,
        "rounds": rounds,
        "workers": cpus,
        "anchor_build": anchor_build,
        "anchor": anchor,
        "graded": graded,
        "ceiling": _timing(
            f"{cpus} processes x hashlib.sha256 over in-memory bytes (already started)",
            ceil_s,
            nbytes,
        ),
        "library_in_process": _timing("hash_paths([tree]) in this process", library_s, nbytes),
        "programs": {
            label: _timing(what, times[label], nbytes) for label, (what, _) in programs.items()
        },
        "vs_anchor": {label: _ratios(times[anchor], times[label]) for label in programs},
        "vs_c_anchor": (
            {label: _ratios(times["c_read_anchor"], times[label]) for label in programs}
            if "c_read_anchor" in programs
            else None
        ),
        "vs_ceiling": {label: _ratios(ceil_s, times[label]) for label in programs},
        "cpu_seconds": {
            "what": "user + system CPU seconds per run (less sensitive to other load than wall)",
            "ceiling": [round(s, 3) for s in ceil_cpu],
            **{label: [round(s, 3) for s in cpu[label]] for label in programs},
        },
        "cpu_vs_anchor": {label: _ratios(cpu[anchor], cpu[label]) for label in programs},
        "cpu_vs_ceiling": {label: _ratios(ceil_cpu, cpu[label]) for label in programs},
    }
    result["vs_ceiling"]["library_in_process"] = _ratios(ceil_s, library_s)
    result["read_methods"] = read_methods(Path(files[0]), rounds)
    result["startup"] = startup(work, ours[graded], 5 if quick else 20)
    return result


def small_files(work: Path, quick: bool, binary: Path) -> dict[str, Any]:
    count, size = (4000, 16 * 1024) if quick else (20000, 16 * 1024)
    repeat = 2 if quick else 5
    tree = work / "small"
    nbytes = _write_small_files(tree, count, size)
    _warm(tree)
    ours_argv = [str(binary), "hash", str(tree), "--output", "json"]
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
    startup = min(_run_child([str(binary), "--version"], work) for _ in range(3))
    return {
        "files": count,
        "file_bytes": size,
        "bytes": nbytes,
        "attest_step_cli": {
            "seconds": round(min(ours), 4),
            "median_seconds": round(_median(ours), 4),
            "files_per_s": round(count / min(ours)),
            "all_seconds": [round(s, 4) for s in ours],
        },
        "in_toto_run": {
            "seconds": round(min(theirs), 4),
            "median_seconds": round(_median(theirs), 4),
            "files_per_s": round(count / min(theirs)),
            "all_seconds": [round(s, 4) for s in theirs],
        },
        "library_hash_paths": {"seconds": round(library, 4), "files_per_s": round(count / library)},
        "library_one_worker": {"seconds": round(single, 4), "files_per_s": round(count / single)},
        "cli_startup_version_seconds": round(startup, 4),
        "speedup_vs_in_toto": round(min(theirs) / min(ours), 2),
        "speedup_vs_in_toto_per_round": _ratios(theirs, ours),
    }


def memory(work: Path, quick: bool, ours: Path) -> dict[str, Any]:
    size = GIB if quick else 4 * GIB
    path = work / "sparse.bin"
    with open(path, "wb") as handle:
        handle.truncate(size)
    started = time.perf_counter()
    rss = _peak_rss([str(ours), "hash", str(path)], work)
    seconds = time.perf_counter() - started
    baseline = _peak_rss([str(ours), "--version"], work)
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


def _installs(work: Path) -> dict[str, Path]:
    """attest-step as users run it (see hack/bench_oci.py): the wheel in a fresh venv, on
    Debian's CPython first when it is installed (graded, as the oci section grades), then
    on the development venv's interpreter. ``ATTEST_STEP_BENCH_BIN`` times that one."""
    chosen = os.environ.get("ATTEST_STEP_BENCH_BIN")
    if chosen:
        return {"attest_step": Path(chosen)}
    wheel = build_wheel(work / "dist")
    pythons: dict[str, str] = {}
    system = system_python()
    if system:
        pythons["attest_step_system_python"] = system
    pythons["attest_step"] = sys.executable
    return {label: wheel_install(wheel, work / label, python) for label, python in pythons.items()}


def run(quick: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="attest-step-bench-") as tmp:
        work = Path(tmp)
        ours = _installs(work)
        graded = next(iter(ours.values()))
        big = big_files(work, quick, ours)
        small = small_files(work, quick, graded)
        mem = memory(work, quick, graded)
    anchor_ratio = big["vs_anchor"][big["graded"]]["best_to_best"]
    ceiling_ratio = big["vs_ceiling"][big["graded"]]["best_to_best"]
    references: list[dict[str, Any]] = []
    if big["vs_c_anchor"] is not None:
        references.append(
            {
                "name": "big_files_vs_c_anchor",
                "measured": big["vs_c_anchor"][big["graded"]]["best_to_best"],
                "unit": f"x c_read_anchor (whole processes, best of {big['rounds']})",
                "why": "the floor of any program; not graded, see docs/decisions.md",
            }
        )
    start = big["startup"]
    references.append(
        {
            "name": "startup_hash_tiny_file",
            "measured": start["attest_step_hash_tiny_file"],
            "unit": (
                f"s (python -c pass {start['python_pass']} s, "
                f"python -c 'import click' {start['python_import_click']} s; medians)"
            ),
            "why": "start-up and exit, paid once per run",
        }
    )
    return {
        "references": references,
        "big_files": big,
        "small_files": small,
        "memory": mem,
        "installs": {label: str(path) for label, path in ours.items()},
        "targets": [
            {
                "name": "big_files_vs_anchor",
                "measured": anchor_ratio,
                "target": 0.95,
                "unit": f"x {big['anchor']} (whole processes, best of {big['rounds']})",
                "better": "higher",
            },
            {
                "name": "big_files_vs_ceiling",
                "measured": ceiling_ratio,
                "target": 0.85,
                "unit": f"x in-memory ceiling (best of {big['rounds']})",
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
