"""Build an image's root filesystem: mmdebstrap, wheels, purge of build-only packages, tar."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from hack.image import dpkgdb
from hack.image.recipes import NONROOT, Recipe
from hack.image.wheels import HOST_PYTHON, pip_env

TRIM = [
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/lintian/*",
    "path-exclude=/usr/share/bash-completion/*",
]
SITE = Path("usr/local/lib/python3.11/dist-packages")
LAUNCHER = """#!/usr/bin/python3 -I
# attest-step's entry point (written by hack/image; -I: no user site, no PYTHON* variables).
import sys

from attest_step.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
"""


class MirrorError(Exception):
    """The mirror does not serve a locked package version."""


def mmdebstrap(
    recipe: Recipe, suite: str, sources: list[str], epoch: int, pins: dict[str, str], root: Path
) -> None:
    """Essential set + ``recipe.include`` (or exactly ``pins``) into the directory ``root``."""
    if root.exists():
        shutil.rmtree(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    include = [f"{n}={v}" for n, v in sorted(pins.items())] if pins else list(recipe.include)
    cmd = [
        "mmdebstrap",
        "--quiet",
        "--variant=essential",
        "--architectures=amd64",
        "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
        "--skip=cleanup/apt/lists",  # deb_hashes() reads the signed indexes; clean() removes them
        f"--include={','.join(include)}",
        *[f"--dpkgopt={opt}" for opt in TRIM],
        suite,
        str(root),
        *sources,
    ]
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch)}
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        text = result.stderr + result.stdout
        reasons = [
            line.strip()
            for line in text.splitlines()
            if line.startswith(("E: ", "W: "))
            and "setup failed" not in line
            and "mmdebstrap failed" not in line
        ]
        if pins:
            missing = [f"{n}={v}" for n, v in sorted(pins.items()) if f"'{v}' for '{n}'" in text]
            detail = "; ".join(reasons[:2]) or "apt could not install the pinned set"
            raise MirrorError(f"{', '.join(missing) or detail}")
        tail = " | ".join(text.strip().splitlines()[-3:])
        raise RuntimeError(f"mmdebstrap failed: {tail}")


def deb_hashes(root: Path, packages: dict[str, str]) -> dict[str, str]:
    """The archive's sha256 of each installed package's .deb, from the apt indexes (InRelease-
    verified by apt) left in the rootfs; by package name."""
    found: dict[str, str] = {}
    for index in sorted((root / "var/lib/apt/lists").glob("*_Packages")):
        for block in index.read_text(encoding="utf-8").split("\n\n"):
            fields = dict(
                line.split(": ", 1)
                for line in block.splitlines()
                if ": " in line and not line.startswith(" ")
            )
            name = fields.get("Package", "")
            if name in packages and fields.get("Version") == packages[name] and "SHA256" in fields:
                found[name] = fields["SHA256"]
    return found


def purge(root: Path, recipe: Recipe) -> dict[str, str]:
    """Purge every package outside the closure of ``recipe.keep``; return what was removed."""
    packages = dpkgdb.installed(root)
    keep = dpkgdb.closure(packages, recipe.keep, recipe.drop_deps)
    remove = sorted(set(packages) - keep)
    removed = {name: packages[name].version for name in remove}
    if remove:
        # Their remove scripts expect the very tools being purged (debconf, perl, sed...); the
        # image keeps none of their state, so dpkg removes the files without running them.
        info = root / "var/lib/dpkg/info"
        for name in remove:
            for script in ("prerm", "postrm"):
                for path in (info / f"{name}.{script}", info / f"{name}:amd64.{script}"):
                    path.unlink(missing_ok=True)
        subprocess.run(
            [
                "dpkg",
                f"--root={root}",
                "--purge",
                "--force-remove-essential",
                "--force-depends",
                "--force-remove-protected",
                *remove,
            ],
            check=True,
            capture_output=True,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"},
        )
    return removed


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def install_wheels(root: Path, wheel_dir: Path, requirements: str, project: str | None) -> None:
    """Install the pinned wheels with the host's Debian pip into ``root`` (no pip in the image)."""
    req = wheel_dir.parent / "requirements.txt"
    req.write_text(requirements)
    subprocess.run(
        [
            HOST_PYTHON,
            "-m",
            "pip",
            "install",
            "-q",
            "--root",
            str(root),
            "--no-index",
            "--find-links",
            str(wheel_dir),
            "--no-deps",
            "--require-hashes",
            "--no-compile",
            "--ignore-installed",
            "--break-system-packages",
            "--no-warn-script-location",
            "-r",
            str(req),
        ],
        check=True,
        env={**pip_env(), "SOURCE_DATE_EPOCH": os.environ.get("SOURCE_DATE_EPOCH", "0")},
    )
    site = root / SITE
    for extra in site.glob("*.dist-info/direct_url.json"):
        extra.unlink()
    if project:
        _write_launcher(root, site)


def _write_launcher(root: Path, site: Path) -> None:
    launcher = root / "usr/local/bin/attest-step"
    data = LAUNCHER.encode()
    launcher.write_bytes(data)
    launcher.chmod(0o755)
    (record,) = site.glob("attest_step-*.dist-info/RECORD")
    lines = []
    for entry in record.read_text().splitlines():
        path = entry.split(",")[0]
        if path.endswith("bin/attest-step"):
            entry = f"{path},{_record_hash(data)},{len(data)}"  # noqa: PLW2901
        lines.append(entry)
    record.write_text("\n".join(lines) + "\n")


def compile_python(root: Path) -> None:
    """Hash-checked-free .pyc for everything, compiled by the image's own python3."""
    dirs = ["/usr/lib/python3.11", "/usr/lib/python3/dist-packages", f"/{SITE}"]
    present = [d for d in dirs if (root / d.lstrip("/")).is_dir()]
    if not present or not (root / "usr/bin/python3").exists():
        return
    subprocess.run(
        [
            "/usr/sbin/chroot",
            str(root),
            "/usr/bin/python3",
            "-m",
            "compileall",
            "-q",
            "-f",
            "--invalidation-mode",
            "unchecked-hash",
            *present,
        ],
        check=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "0", "LC_ALL": "C.UTF-8"},
    )


def add_user(root: Path) -> None:
    """A ``nonroot`` user and group 65532 with HOME=/tmp."""
    passwd = root / "etc/passwd"
    group = root / "etc/group"
    if passwd.exists() and f":{NONROOT}:" not in passwd.read_text():
        with passwd.open("a") as handle:
            handle.write(f"nonroot:x:{NONROOT}:{NONROOT}:nonroot:/tmp:/usr/sbin/nologin\n")
    if group.exists() and f":{NONROOT}:" not in group.read_text():
        with group.open("a") as handle:
            handle.write(f"nonroot:x:{NONROOT}:\n")


def clean(root: Path) -> None:
    """Remove logs, caches and state that differ between builds or serve no purpose."""
    for pattern in (
        "var/log/*",
        "var/cache/*/*",
        "var/lib/dpkg/*-old",
        "var/lib/apt/lists/*",
        "etc/machine-id",
        "etc/hostname",
        "etc/resolv.conf",
        "tmp/*",
        "var/tmp/*",
        "root/.cache",
        "dev/*",
        "proc/*",
        "sys/*",
        "run/*",
    ):
        for path in root.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    for path in (root / "usr").rglob("__pycache__"):
        for pyc in path.glob("*.pyc"):
            if not _unchecked_hash(pyc):
                pyc.unlink()
    (root / "tmp").chmod(0o1777)


def _unchecked_hash(pyc: Path) -> bool:
    with pyc.open("rb") as handle:
        header = handle.read(8)
    return len(header) == 8 and int.from_bytes(header[4:8], "little") == 0b01


def tar(root: Path, out: Path, epoch: int) -> None:
    """A reproducible tar of ``root``: sorted, numeric owners, mtimes clamped to ``epoch``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "tar",
            "--create",
            f"--file={out}",
            f"--directory={root}",
            "--sort=name",
            f"--mtime=@{epoch}",
            "--clamp-mtime",
            "--numeric-owner",
            "--format=pax",
            "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime",
            ".",
        ],
        check=True,
        env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"},
    )
