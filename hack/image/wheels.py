"""Python wheels for the image: resolve from PyPI, fetch by hash, build ours reproducibly."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from hack.image.lockfile import Wheel

HOST_PYTHON = "/usr/bin/python3"  # Debian's python3 + python3-pip: same scheme as the image
PLATFORMS = [f"manylinux_2_{n}_x86_64" for n in range(36, 16, -1)] + ["manylinux2014_x86_64"]
TARGET = [
    "--only-binary=:all:",
    "--python-version=3.11",
    "--implementation=cp",
    "--abi=cp311",
    "--abi=abi3",
    "--abi=none",
    *[f"--platform={p}" for p in PLATFORMS],
    "--platform=any",
]


def pip_env() -> dict[str, str]:
    """The environment for pip: PyPI only, no machine-local find-links or caches."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_NO_CACHE_DIR"] = "1"
    for key in ("PIP_CERT", "PIP_DEFAULT_TIMEOUT"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def parse(path: Path) -> Wheel:
    parts = path.name.split("-")
    if not path.name.endswith(".whl") or len(parts) < 5:
        raise ValueError(f"{path.name}: not a wheel file name")
    name = re.sub(r"[-_.]+", "-", parts[0]).lower()
    return Wheel(name, parts[1], path.name, sha256(path))


def resolve(requirements: list[str], dest: Path) -> list[Wheel]:
    """Download the newest wheels satisfying ``requirements`` (with dependencies)."""
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [HOST_PYTHON, "-m", "pip", "download", "-q", "--dest", str(dest), *TARGET, *requirements],
        check=True,
        env=pip_env(),
    )
    return [parse(p) for p in sorted(dest.glob("*.whl"))]


def requirements_text(wheels: list[Wheel]) -> str:
    return "".join(f"{w.name}=={w.version} --hash=sha256:{w.sha256}\n" for w in wheels)


def fetch(wheels: list[Wheel], dest: Path) -> None:
    """Make sure ``dest`` holds exactly these files (by sha256), downloading the missing ones."""
    dest.mkdir(parents=True, exist_ok=True)
    missing = [w for w in wheels if not _present(dest / w.filename, w.sha256)]
    if not missing:
        return
    with tempfile.TemporaryDirectory() as tmp:
        req = Path(tmp) / "requirements.txt"
        req.write_text(requirements_text(missing))
        got = Path(tmp) / "got"
        result = subprocess.run(
            [
                HOST_PYTHON,
                "-m",
                "pip",
                "download",
                "-q",
                "--no-deps",
                "--require-hashes",
                "--dest",
                str(got),
                *TARGET,
                "-r",
                str(req),
            ],
            env=pip_env(),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["pip download failed"])[-1]
            raise RuntimeError(f"locked wheels cannot be fetched ({last}); run make image-lock")
        for w in missing:
            src = got / w.filename
            if not _present(src, w.sha256):
                raise RuntimeError(f"{w.filename}: PyPI served another file; run make image-lock")
            shutil.copyfile(src, dest / w.filename)


def _present(path: Path, digest: str) -> bool:
    return path.is_file() and sha256(path) == digest


def source_tree(repo: Path, dest: Path) -> None:
    """Copy the files git tracks (their working-tree content) to ``dest``."""
    listing = subprocess.run(
        ["git", "-C", str(repo), "ls-files", "-z"], check=True, capture_output=True
    ).stdout
    for name in listing.decode().split("\0"):
        src = repo / name
        if not name or not src.is_file() or name.startswith((".tools", "catalog/", "tests/")):
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
        target.chmod(0o644)


def build_project(repo: Path, epoch: int, build_wheels: Path, out: Path) -> Path:
    """Build attest-step's wheel from a clean copy with pinned setuptools; return its path."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("attest_step-*.whl"):
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        source_tree(repo, src)
        env = {**pip_env(), "SOURCE_DATE_EPOCH": str(epoch), "PYTHONHASHSEED": "0"}
        subprocess.run(
            [
                HOST_PYTHON,
                "-m",
                "pip",
                "wheel",
                "-q",
                "--no-deps",
                "--no-index",
                "--find-links",
                str(build_wheels),
                "-w",
                str(out),
                str(src),
            ],
            check=True,
            env=env,
            cwd=tmp,
        )
    (wheel,) = out.glob("attest_step-*.whl")
    return wheel
