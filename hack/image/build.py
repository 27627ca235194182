"""Build attest-step's step image reproducibly, from Debian packages and wheels, without Docker.

    python hack/image/build.py build [--dev] [--out DIR]   build from the lock (make image)
    python hack/image/build.py lock                          re-resolve and rewrite the lock
    python hack/image/build.py hook ROOT                     mmdebstrap's customize hook (internal)

The recipe (docs/image.md): mmdebstrap makes a Debian bookworm root filesystem (variant
"essential" plus python3) with SOURCE_DATE_EPOCH from the lock; its customize hook installs
the locked wheels with the host's pip (no pip lands in the image), compiles them with the
image's own Python (unchecked-hash .pyc, so a read-only root starts fast), adds the
non-root user, writes the SBOM and deletes the package manager. umoci turns the tarball into
a one-layer OCI image with fixed timestamps and no history. Two builds from one lock give
one manifest digest.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

from sbom import spdx_document  # noqa: E402

LOCK = ROOT / "images" / "attest-step" / "image.lock.json"
DEFAULT_OUT = ROOT / "build" / "image"
PYTHON_SITE = "usr/local/lib/python3.11/dist-packages"
SBOM_IN_IMAGE = "usr/share/attest-step/sbom.spdx.json"
LAUNCHER = "usr/local/bin/attest-step"
UID = 65532
TARGET_PLATFORMS = (
    "manylinux_2_36_x86_64",
    "manylinux_2_34_x86_64",
    "manylinux_2_28_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
)
# What the image must not keep: the package manager's programs and state it no longer needs.
# /var/lib/dpkg/status stays: scanners and the SBOM read it.
REMOVE = (
    "usr/bin/dpkg",
    "usr/bin/dpkg-deb",
    "usr/bin/dpkg-divert",
    "usr/bin/dpkg-maintscript-helper",
    "usr/bin/dpkg-query",
    "usr/bin/dpkg-realpath",
    "usr/bin/dpkg-split",
    "usr/bin/dpkg-statoverride",
    "usr/bin/dpkg-trigger",
    "usr/bin/update-alternatives",
    "usr/share/dpkg",
    "usr/lib/dpkg",
    "var/lib/dpkg/info",
    "var/lib/dpkg/triggers",
    "var/lib/dpkg/updates",
    "var/lib/dpkg/alternatives",
    "var/lib/dpkg/diversions",
    "var/lib/dpkg/statoverride",
    "var/lib/dpkg/status-old",
    "var/lib/dpkg/available",
    "var/cache/debconf",
    "var/log",
    "etc/apt",
    "var/lib/apt",
    "var/cache/apt",
    "var/cache/ldconfig/aux-cache",
)
PATH_EXCLUDES = (
    "/usr/share/doc/*",
    "/usr/share/man/*",
    "/usr/share/info/*",
    "/usr/share/locale/*",
    "/usr/share/lintian/*",
    "/usr/share/linda/*",
)
PATH_INCLUDES = ("/usr/share/doc/*/copyright",)


class BuildError(Exception):
    """A build failure a maintainer can act on; printed as one line."""


@dataclass(frozen=True)
class Lock:
    suite: str
    epoch: int
    mirrors: list[str]
    include: list[str]
    debian: dict[str, str]
    wheels: list[dict[str, str]]
    attest_step_wheel: str
    image_digest: str

    @staticmethod
    def read(path: Path = LOCK) -> Lock:
        data = json.loads(path.read_text())
        return Lock(
            suite=data["suite"],
            epoch=int(data["epoch"]),
            mirrors=list(data["mirrors"]),
            include=list(data["include"]),
            debian=dict(data["debian"]),
            wheels=list(data["wheels"]),
            attest_step_wheel=data["attestStepWheel"],
            image_digest=data.get("imageDigest", ""),
        )

    def write(self, path: Path = LOCK) -> None:
        data = {
            "comment": "Inputs of the step image; `make image` builds from them, "
            "`make image-lock` re-resolves them. See docs/image.md.",
            "suite": self.suite,
            "epoch": self.epoch,
            "mirrors": self.mirrors,
            "include": self.include,
            "debian": dict(sorted(self.debian.items())),
            "wheels": sorted(self.wheels, key=lambda w: w["filename"]),
            "attestStepWheel": self.attest_step_wheel,
            "imageDigest": self.image_digest,
        }
        path.write_text(json.dumps(data, indent=2) + "\n")


def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, text=True, capture_output=True, check=False, **kwargs)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise BuildError(f"{cmd[0]} {cmd[1] if len(cmd) > 1 else ''} failed: {' | '.join(tail)}")
    return proc


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build_wheel(out: Path, epoch: int) -> Path:
    """Our wheel, reproducibly (SOURCE_DATE_EPOCH fixes the zip timestamps)."""
    wheels = out / "own-wheel"
    shutil.rmtree(wheels, ignore_errors=True)
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch)}
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels)]
    run([*pip_wheel, str(ROOT)], env=env)
    (wheel,) = wheels.glob("attest_step-*.whl")
    return wheel


def pip_download(dest: Path, args: list[str]) -> None:
    platforms = [f"--platform={p}" for p in TARGET_PLATFORMS]
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--only-binary=:all:",
            *platforms,
            "--python-version=3.11",
            "--implementation=cp",
            "--abi=cp311",
            "--abi=abi3",
            "--abi=none",
            "-d",
            str(dest),
            *args,
        ],
        env={k: v for k, v in os.environ.items() if k != "PIP_FIND_LINKS"},
    )


_WHEEL_NAME = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)-")


def download_locked_wheels(lock: Lock, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    requirements = dest / "requirements.txt"
    lines = []
    for wheel in lock.wheels:
        match = _WHEEL_NAME.match(wheel["filename"])
        if not match:
            raise BuildError(f"lock: bad wheel file name {wheel['filename']}; run make image-lock")
        lines.append(f"{match['name']}=={match['version']} --hash=sha256:{wheel['sha256']}")
    requirements.write_text("\n".join(lines) + "\n")
    try:
        pip_download(dest, ["--no-deps", "--require-hashes", "-r", str(requirements)])
    except BuildError as err:
        raise BuildError(
            f"a locked wheel could not be downloaded or its hash changed ({err}); "
            "run `make image-lock` to refresh the lock"
        ) from None
    requirements.unlink()
    got = {p.name: sha256_of(p) for p in dest.glob("*.whl")}
    want = {w["filename"]: w["sha256"] for w in lock.wheels}
    if got != want:
        raise BuildError("downloaded wheels differ from the lock; run `make image-lock`")


def mmdebstrap(lock: Lock, tarball: Path, hook_env: dict[str, str], cache: Path) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    cmd = [
        "mmdebstrap", "--mode=root", "--variant=essential", "--format=tar",
        "--architectures=amd64", "--components=main", "--quiet",
        f"--include={','.join(lock.include)}",
        *(f"--dpkgopt=path-exclude={p}" for p in PATH_EXCLUDES),
        *(f"--dpkgopt=path-include={p}" for p in PATH_INCLUDES),
        "--skip=download/empty",
        "--setup-hook=mkdir -p \"$1\"/var/cache/apt/archives/",
        f"--setup-hook=sync-in {cache} /var/cache/apt/archives/",
        f"--customize-hook=sync-out /var/cache/apt/archives {cache}",
        f"--customize-hook={sys.executable} {HERE / 'build.py'} hook \"$1\"",
        lock.suite, str(tarball), *lock.mirrors,
    ]  # fmt: skip
    env = {**os.environ, **hook_env, "SOURCE_DATE_EPOCH": str(lock.epoch)}
    run(cmd, env=env)


def _fields(stanza: str) -> dict[str, str]:
    """The single-line fields of a deb822 stanza (continuation lines are skipped)."""
    pairs = (line.split(": ", 1) for line in stanza.splitlines() if line and line[0] != " ")
    return {pair[0]: pair[1] for pair in pairs if len(pair) == 2}


def dpkg_versions(status: Path) -> dict[str, str]:
    versions: dict[str, str] = {}
    for stanza in status.read_text().split("\n\n"):
        fields = _fields(stanza)
        if fields.get("Status", "").endswith(" installed") and "Package" in fields:
            versions[fields["Package"]] = fields["Version"]
    return versions


def deb_hashes(lists: Path, packages: dict[str, str]) -> dict[str, dict[str, str]]:
    """Each installed package's .deb: its SHA256 and file name, from apt's signed indexes."""
    found: dict[str, dict[str, str]] = {}
    for index in sorted(lists.glob("*_Packages")):
        for stanza in index.read_text(errors="replace").split("\n\n"):
            fields = _fields(stanza)
            name = fields.get("Package", "")
            if name in packages and fields.get("Version") == packages[name]:
                found[name] = {
                    "version": packages[name],
                    "sha256": fields.get("SHA256", ""),
                    "filename": fields.get("Filename", ""),
                }
    missing = sorted(set(packages) - set(found))
    if missing:
        raise BuildError(f"no .deb hash in apt's indexes for: {', '.join(missing[:5])}")
    return found


def hook(root: Path) -> None:
    """mmdebstrap's customize hook: runs on the host with the finished rootfs at ``root``."""
    wheels = Path(os.environ["ATTEST_IMAGE_WHEELS"])
    site = root / PYTHON_SITE
    run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--no-compile",
         "--target", str(site), *sorted(str(p) for p in wheels.glob("*.whl"))])  # fmt: skip
    shutil.rmtree(site / "bin", ignore_errors=True)
    for extra in site.glob("*.dist-info/direct_url.json"):
        extra.unlink()
    for record in site.glob("*.dist-info/RECORD"):
        # pip lists direct_url.json and the (removed) scripts; keep RECORD true to the files.
        lines = [
            line for line in record.read_text().splitlines()
            if "direct_url.json" not in line and not line.startswith("../../../bin/")
            and not line.startswith("bin/")
        ]  # fmt: skip
        record.write_text("\n".join(lines) + "\n")
    launcher = root / LAUNCHER
    launcher.write_text(
        "#!/usr/bin/python3 -sP\n"
        "import sys\n"
        "from attest_step.cli.main import main\n"
        "sys.exit(main())\n"
    )
    launcher.chmod(0o755)
    run(["chroot", str(root), "/usr/bin/python3", "-m", "compileall", "-q", "-j", "1",
         "--invalidation-mode", "unchecked-hash", "/" + PYTHON_SITE])  # fmt: skip
    with (root / "etc/passwd").open("a") as handle:
        handle.write(f"nonroot:x:{UID}:{UID}:nonroot:/tmp:/usr/sbin/nologin\n")
    with (root / "etc/group").open("a") as handle:
        handle.write(f"nonroot:x:{UID}:\n")
    packages = dpkg_versions(root / "var/lib/dpkg/status")
    debs = deb_hashes(root / "var/lib/apt/lists", packages)
    (root / "var/lib/dpkg/status").write_text(_trimmed_status(root / "var/lib/dpkg/status"))
    sbom = spdx_document(
        packages=packages,
        site=site,
        epoch=int(os.environ["SOURCE_DATE_EPOCH"]),
        name="attest-step-image",
    )
    target = root / SBOM_IN_IMAGE
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(sbom, indent=2, sort_keys=True) + "\n")
    (Path(os.environ["ATTEST_IMAGE_OUT"]) / "sbom.spdx.json").write_text(target.read_text())
    (Path(os.environ["ATTEST_IMAGE_OUT"]) / "dpkg.json").write_text(
        json.dumps(packages, indent=2, sort_keys=True) + "\n"
    )
    (Path(os.environ["ATTEST_IMAGE_OUT"]) / "debs.json").write_text(
        json.dumps(debs, indent=2, sort_keys=True) + "\n"
    )


def filter_tar(source: Path, target: Path) -> None:
    """Copy mmdebstrap's tarball without the paths in REMOVE (removed after its own cleanup)."""
    prefixes = tuple(f"./{r}" for r in REMOVE)
    with tarfile.open(source) as src, tarfile.open(target, "w", format=tarfile.PAX_FORMAT) as dst:
        for member in src:
            name = member.name if member.name.startswith("./") else f"./{member.name}"
            if any(name == p or name.startswith(p + "/") for p in prefixes):
                continue
            dst.addfile(member, src.extractfile(member) if member.isreg() else None)


def _trimmed_status(status: Path) -> str:
    """dpkg's status with only installed packages (what scanners read), unchanged otherwise."""
    stanzas = [s for s in status.read_text().split("\n\n") if "Status: install ok installed" in s]
    return "\n\n".join(s.strip("\n") for s in stanzas) + "\n"


def umoci_image(tarball: Path, layout: Path, lock: Lock, tag: str) -> str:
    shutil.rmtree(layout, ignore_errors=True)
    created = datetime.fromtimestamp(lock.epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    image = f"{layout}:{tag}"
    run(["umoci", "init", "--layout", str(layout)])
    run(["umoci", "new", "--image", image])
    run(["umoci", "raw", "add-layer", "--image", image, "--no-history", str(tarball)])
    run(["umoci", "config", "--image", image, "--no-history", "--created", created,
         "--author", "attest-step", "--os", "linux", "--architecture", "amd64",
         "--config.user", f"{UID}:{UID}", "--config.workingdir", "/tmp",
         "--config.env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
         "--config.env", "HOME=/tmp", "--config.env", "TMPDIR=/tmp",
         "--config.env", "PYTHONDONTWRITEBYTECODE=1", "--config.env", "PYTHONUNBUFFERED=1",
         "--config.entrypoint", "/" + LAUNCHER,
         "--config.label", "org.opencontainers.image.source=https://github.com/attest-step/attest-step",
         "--config.label", "org.opencontainers.image.title=attest-step",
         ])  # fmt: skip
    run(["umoci", "gc", "--layout", str(layout)])
    index = json.loads((layout / "index.json").read_text())
    digest: str = index["manifests"][0]["digest"]
    return digest


def version() -> str:
    match = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    if not match:
        raise BuildError("pyproject.toml has no version")
    return match.group(1)


def build(out: Path, *, dev: bool, lock_path: Path = LOCK) -> dict[str, Any]:
    lock = Lock.read(lock_path)
    out.mkdir(parents=True, exist_ok=True)
    out = out.resolve()
    wheel = build_wheel(out, lock.epoch)
    wheel_hash = sha256_of(wheel)
    if wheel_hash != lock.attest_step_wheel and not dev:
        raise BuildError(
            f"attest-step's wheel ({wheel_hash[:12]}) is not the locked one "
            f"({lock.attest_step_wheel[:12]}): the source changed since the lock. "
            "Run `make image-lock` and `make release-pin` to release it, or `make image-dev` "
            "for an unreleased image"
        )
    with tempfile.TemporaryDirectory(prefix="attest-image-") as tmp:
        stage = Path(tmp)
        wheels = stage / "wheels"
        download_locked_wheels(lock, wheels)
        shutil.copy2(wheel, wheels / wheel.name)
        raw = stage / "mmdebstrap.tar"
        tarball = stage / "rootfs.tar"
        mmdebstrap(
            lock,
            raw,
            {"ATTEST_IMAGE_WHEELS": str(wheels), "ATTEST_IMAGE_OUT": str(out)},
            out.parent / "debs",
        )
        filter_tar(raw, tarball)
        raw.unlink()
        packages = json.loads((out / "dpkg.json").read_text())
        if packages != lock.debian:
            changed = sorted(set(packages.items()) ^ set(lock.debian.items()))[:4]
            raise BuildError(
                "the mirror no longer serves the locked Debian packages "
                f"(differences: {', '.join(f'{n}={v}' for n, v in changed)}); "
                "run `make image-lock` to refresh the lock"
            )
        digest = umoci_image(tarball, out / "oci", lock, version())
        tar_size = tarball.stat().st_size
    manifest = json.loads(_blob(out / "oci", digest))
    layer = manifest["layers"][0]
    result = {
        "image": f"ghcr.io/attest-step/attest-step:{version()}",
        "digest": digest,
        "layout": str(out / "oci"),
        "tag": version(),
        "compressedBytes": layer["size"],
        "uncompressedBytes": tar_size,
        "attestStepWheel": wheel_hash,
        "locked": wheel_hash == lock.attest_step_wheel,
        "debianPackages": len(packages),
        "wheels": sorted(p.name for p in (out / "own-wheel").glob("*.whl"))
        + sorted(w["filename"] for w in lock.wheels),
    }
    (out / "build.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _blob(layout: Path, digest: str) -> bytes:
    algorithm, hexdigest = digest.split(":", 1)
    return (layout / "blobs" / algorithm / hexdigest).read_bytes()


def lock_command(out: Path) -> dict[str, Any]:
    """Re-resolve every input from the mirror and PyPI, build once, and rewrite the lock."""
    old = Lock.read() if LOCK.exists() else None
    epoch = int(run(["git", "-C", str(ROOT), "log", "-1", "--format=%ct"]).stdout.strip())
    base = old or Lock(
        suite="bookworm",
        epoch=epoch,
        mirrors=[
            "deb http://deb.debian.org/debian bookworm main",
            "deb http://deb.debian.org/debian bookworm-updates main",
            "deb http://deb.debian.org/debian-security bookworm-security main",
        ],
        include=["python3"],
        debian={},
        wheels=[],
        attest_step_wheel="",
        image_digest="",
    )
    out.mkdir(parents=True, exist_ok=True)
    out = out.resolve()
    wheel = build_wheel(out, epoch)
    with tempfile.TemporaryDirectory(prefix="attest-lock-") as tmp:
        deps = Path(tmp)
        pip_download(deps, [str(wheel)])
        wheels = [
            {"filename": p.name, "sha256": sha256_of(p)}
            for p in sorted(deps.glob("*.whl"))
            if not p.name.startswith("attest_step-")
        ]
    fresh = Lock(
        suite=base.suite,
        epoch=epoch,
        mirrors=base.mirrors,
        include=base.include,
        debian={},
        wheels=wheels,
        attest_step_wheel=sha256_of(wheel),
        image_digest="",
    )
    fresh.write()
    with tempfile.TemporaryDirectory(prefix="attest-lock-stage-") as tmp:
        stage = Path(tmp)
        download_locked_wheels(fresh, stage / "wheels")
        shutil.copy2(wheel, stage / "wheels" / wheel.name)
        mmdebstrap(
            fresh,
            stage / "rootfs.tar",
            {"ATTEST_IMAGE_WHEELS": str(stage / "wheels"), "ATTEST_IMAGE_OUT": str(out)},
            out.parent / "debs",
        )
    packages = json.loads((out / "dpkg.json").read_text())
    locked = Lock(**{**fresh.__dict__, "debian": packages})
    locked.write()
    result = build(out, dev=False)
    Lock(**{**locked.__dict__, "image_digest": result["digest"]}).write()
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="hack/image/build.py")
    sub = parser.add_subparsers(dest="verb", required=True)
    b = sub.add_parser("build")
    b.add_argument("--dev", action="store_true", help="allow a wheel that is not the locked one")
    b.add_argument("--out", type=Path, default=DEFAULT_OUT)
    b.add_argument("--lock", type=Path, default=LOCK, help="the lock file to build from")
    lk = sub.add_parser("lock")
    lk.add_argument("--out", type=Path, default=DEFAULT_OUT)
    h = sub.add_parser("hook")
    h.add_argument("root", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.verb == "hook":
            hook(args.root)
            return 0
        if args.verb == "build":
            result = build(args.out, dev=args.dev, lock_path=args.lock)
        else:
            result = lock_command(args.out)
    except BuildError as err:
        print(f"image: error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
