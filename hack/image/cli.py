"""``make image`` / ``make image-lock``: build an image from its lock, or re-resolve the lock.

  python -m hack.image.cli lock  [--image NAME]   re-resolve, rewrite images/NAME/image.lock
  python -m hack.image.cli build [--image NAME] [--unlocked-dev-wheel] [--out DIR]
  python -m hack.image.cli pin   (rewrite the catalog's attest-step reference to the built digest)

A locked build fails (exit 1, one line) when the mirror or PyPI no longer serves a locked
version, when the installed package set differs from the lock, or when attest-step's own wheel
differs from the lock (the source changed). ``--unlocked-dev-wheel`` accepts a changed
attest-step wheel (for tests that need *an* image); everything else stays locked.
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
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from hack.image import dpkgdb, ocilayout, rootfs, sbom, wheels  # noqa: E402
from hack.image.lockfile import Lock, LockError, diff, read  # noqa: E402
from hack.image.recipes import RECIPES, Recipe  # noqa: E402

SUITE = "bookworm"
BUILD_REQUIREMENTS = ["setuptools==80.9.0", "wheel==0.45.1"]
CATALOG_REF = re.compile(r"ghcr\.io/attest-step/attest-step:[^@\s\"']+@sha256:[0-9a-f]{64}")


def lock_path(name: str) -> Path:
    return REPO / "images" / name / "image.lock"


def project_version() -> str:
    match = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M)
    return match.group(1) if match else "0.0.0"


def project_requirements() -> list[str]:
    text = (REPO / "pyproject.toml").read_text()
    block = re.search(r"^dependencies = \[(.*?)^\]", text, re.S | re.M)
    return re.findall(r'"([^"]+)"', block.group(1)) if block else []


def apt_sources() -> list[str]:
    """One-line ``deb`` entries for the Debian suites in this machine's apt sources."""
    found: list[str] = []
    files = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in files:
        if not path.is_file() or not path.name.endswith((".list", ".sources")):
            continue
        text = path.read_text()
        if path.name.endswith(".sources"):
            for stanza in text.split("\n\n"):
                fields = dict(
                    (k.strip(), v.strip())
                    for k, _, v in (line.partition(":") for line in stanza.splitlines())
                    if not k.startswith("#")
                )
                if "deb" not in fields.get("Types", "").split():
                    continue
                for uri in fields.get("URIs", "").split():
                    for suite in fields.get("Suites", "").split():
                        if suite.startswith(SUITE):
                            found.append(f"deb {uri} {suite} main")
        else:
            for line in text.splitlines():
                parts = line.split()
                if len(parts) >= 3 and parts[0] == "deb" and parts[2].startswith(SUITE):
                    found.append(f"deb {parts[1]} {parts[2]} main")
    if not found:
        raise LockError(f"no Debian {SUITE} entry in /etc/apt/sources.list*")
    return sorted(dict.fromkeys(found))


def source_epoch() -> int:
    """Commit time of the newest commit touching what goes into the wheel."""
    out = subprocess.run(
        [
            "git",
            "-C",
            str(REPO),
            "log",
            "-1",
            "--format=%ct",
            "--",
            "attest_step",
            "pyproject.toml",
            "README.md",
            "LICENSE",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return int(out or "0")


class Builder:
    def __init__(self, recipe: Recipe, out: Path) -> None:
        self.recipe = recipe
        self.out = out
        self.work = out / recipe.name
        self.cache = out / "cache"

    def log(self, message: str) -> None:
        print(f"image {self.recipe.name}: {message}", file=sys.stderr, flush=True)

    def project_wheel(self, lock: Lock) -> Path:
        build_dir = self.cache / "build-wheels"
        wheels.fetch(lock.build_wheels, build_dir)
        return wheels.build_project(REPO, lock.epoch, build_dir, self.work / "project")

    def build(self, lock: Lock, *, dev_wheel: bool, reuse: bool = False) -> dict[str, object]:
        started = time.monotonic()
        recipe = self.recipe
        os.environ["SOURCE_DATE_EPOCH"] = str(lock.epoch)
        requirements = ""
        wheel_dir = self.work / "wheels"
        project_sha = None
        if recipe.python:
            wheels.fetch(lock.wheels, self.cache / "wheels")
            if wheel_dir.exists():
                shutil.rmtree(wheel_dir)
            wheel_dir.mkdir(parents=True)
            for w in lock.wheels:
                shutil.copyfile(self.cache / "wheels" / w.filename, wheel_dir / w.filename)
            requirements = wheels.requirements_text(lock.wheels)
        if recipe.project_wheel:
            built = wheels.parse(self.project_wheel(lock))
            project_sha = built.sha256
            if lock.project is None or built.sha256 != lock.project.sha256:
                if not dev_wheel:
                    raise LockError(
                        "source changed since the lock (attest-step wheel "
                        f"sha256:{built.sha256[:12]}… is not the locked one): "
                        "run make image-lock, then hack/release.sh"
                    )
                self.log(f"unlocked dev build: attest-step wheel sha256:{built.sha256}")
            shutil.copyfile(self.work / "project" / built.filename, wheel_dir / built.filename)
            requirements += wheels.requirements_text([built])
        key = hashlib.sha256(
            lock_path(recipe.name).read_bytes() + str(project_sha).encode()
        ).hexdigest()
        previous = self.work / "build.json"
        if reuse and previous.is_file() and (self.work / "oci" / "index.json").is_file():
            cached: dict[str, object] = json.loads(previous.read_text())
            if cached.get("key") == key:
                self.log("reusing the previous build (same lock and wheel)")
                return cached
        root = self.work / "rootfs"
        self.log("mmdebstrap")
        try:
            rootfs.mmdebstrap(
                recipe, lock.suite, lock.sources, lock.epoch, lock.all_packages(), root
            )
        except rootfs.MirrorError as err:
            raise LockError(
                f"the mirror no longer serves a locked version ({err}): run make image-lock"
            ) from None
        got = dpkgdb.versions(root)
        if got != lock.all_packages():
            raise LockError(
                f"installed packages differ from the lock ({diff(lock.all_packages(), got)}): "
                "run make image-lock"
            )
        debs = rootfs.deb_hashes(root, got)
        if debs != lock.deb_sha256:
            raise LockError(
                f"the archive's .deb hashes differ from the lock ({diff(lock.deb_sha256, debs)}): "
                "run make image-lock"
            )
        if requirements:
            rootfs.install_wheels(
                root, wheel_dir, requirements, "attest-step" if recipe.project_wheel else None
            )
        removed = rootfs.purge(root, recipe)
        if removed != lock.build_only or dpkgdb.versions(root) != lock.packages:
            raise LockError(
                f"purged set differs from the lock ({diff(lock.build_only, removed)}): "
                "run make image-lock"
            )
        self.finish_rootfs(root, lock.epoch)
        document = sbom.generate(root, recipe.name, project_version(), lock.epoch, lock.suite)
        data = sbom.write(root, document)
        (self.work / "sbom.spdx.json").write_bytes(data)
        rootfs.clean(root)
        tar = self.work / "rootfs.tar"
        rootfs.tar(root, tar, lock.epoch)
        layout = self.work / "oci"
        digest = ocilayout.build(recipe, tar, layout, project_version(), lock.epoch)
        compressed, uncompressed = ocilayout.sizes(layout)
        result: dict[str, object] = {
            "image": recipe.name,
            "digest": digest,
            "layout": str(layout),
            "tag": project_version(),
            "compressedBytes": compressed,
            "uncompressedBytes": uncompressed,
            "locked": project_sha is None
            or (lock.project is not None and project_sha == lock.project.sha256),
            "projectWheelSha256": project_sha,
            "seconds": round(time.monotonic() - started, 1),
            "key": key,
        }
        (self.work / "build.json").write_text(json.dumps(result, indent=2) + "\n")
        shutil.rmtree(root)
        tar.unlink()
        return result

    def finish_rootfs(self, root: Path, epoch: int) -> None:
        del epoch
        rootfs.compile_python(root)
        rootfs.add_user(root)

    def lock(self, previous: Lock | None) -> Lock:
        recipe = self.recipe
        epoch = (
            source_epoch()
            if recipe.project_wheel
            else (previous.epoch if previous else source_epoch())
        )
        sources = apt_sources()
        os.environ["SOURCE_DATE_EPOCH"] = str(epoch)
        lock = Lock(recipe.name, epoch, SUITE, "amd64", sources, {})
        with tempfile.TemporaryDirectory(dir=self.out) as tmp:
            if recipe.python:
                self.log("resolving wheels on PyPI")
                reqs = project_requirements() if recipe.project_wheel else []
                lock.wheels = wheels.resolve(reqs, Path(tmp) / "wheels")
                lock.build_wheels = wheels.resolve(BUILD_REQUIREMENTS, Path(tmp) / "build")
                (self.cache / "wheels").mkdir(parents=True, exist_ok=True)
                for w in lock.wheels:
                    shutil.copyfile(
                        Path(tmp) / "wheels" / w.filename, self.cache / "wheels" / w.filename
                    )
            if recipe.project_wheel:
                lock.project = wheels.parse(self.project_wheel(lock))
            root = self.work / "rootfs"
            self.log("mmdebstrap (unpinned)")
            rootfs.mmdebstrap(recipe, SUITE, sources, epoch, {}, root)
            everything = dpkgdb.versions(root)
            lock.deb_sha256 = rootfs.deb_hashes(root, everything)
            if set(lock.deb_sha256) != set(everything):
                raise LockError(
                    "the apt indexes lack a sha256 for some packages "
                    f"({diff(everything, lock.deb_sha256)})"
                )
            lock.build_only = {
                n: v
                for n, v in everything.items()
                if n not in dpkgdb.closure(dpkgdb.installed(root), recipe.keep, recipe.drop_deps)
            }
            lock.packages = {n: v for n, v in everything.items() if n not in lock.build_only}
            shutil.rmtree(root)
        return lock


def dependencies(lock: Lock) -> list[str]:
    """The lock as ``URI@sha256:HEX`` lines for ``attest-step attest --resolved-dependency``."""
    lines = []
    distro = f"debian-{lock.suite}"
    for name, version in sorted(lock.all_packages().items()):
        sha = lock.deb_sha256.get(name)
        if not sha:
            raise LockError(f"no .deb sha256 for {name} in the lock; run make image-lock")
        qualifiers = f"arch={lock.architecture}&distro={distro}"
        purl = f"pkg:deb/debian/{name}@{quote(version, safe='')}?{qualifiers}"
        lines.append(f"{purl}@sha256:{sha}")
    for w in sorted(
        [*lock.wheels, *([lock.project] if lock.project else [])], key=lambda w: w.name
    ):
        lines.append(
            f"pkg:pypi/{w.name}@{w.version}?file_name={quote(w.filename, safe='')}"
            f"@sha256:{w.sha256}"
        )
    return lines


def pin(digest: str, tag: str) -> list[Path]:
    """Rewrite every attest-step image reference in catalog/ to ``...:TAG@DIGEST``."""
    ref = f"ghcr.io/attest-step/attest-step:{tag}@{digest}"
    changed = []
    for path in sorted((REPO / "catalog").rglob("*")):
        if not path.is_file() or path.suffix not in {".yaml", ".yml", ".md"}:
            continue
        text = path.read_text()
        new = CATALOG_REF.sub(ref, text)
        if new != text:
            path.write_text(new)
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hack/image/cli.py")
    parser.add_argument("command", choices=["build", "lock", "pin", "deps"])
    parser.add_argument("--image", default="attest-step", choices=sorted(RECIPES))
    parser.add_argument("--out", type=Path, default=REPO / "build" / "image")
    parser.add_argument(
        "--unlocked-dev-wheel",
        action="store_true",
        help="accept an attest-step wheel that differs from the lock (dev/test images only)",
    )
    parser.add_argument(
        "--reuse", action="store_true", help="skip the build when the last one had the same inputs"
    )
    args = parser.parse_args(argv)
    # File modes end up in the wheel and the layer: never inherit the caller's umask.
    os.umask(0o022)
    recipe = RECIPES[args.image]
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    builder = Builder(recipe, out)
    try:
        if args.command == "lock":
            try:
                previous: Lock | None = read(lock_path(recipe.name))
            except LockError:
                previous = None
            lock = builder.lock(previous)
            lock.write(lock_path(recipe.name))
            print(
                f"wrote {lock_path(recipe.name).relative_to(REPO)}: {len(lock.packages)} packages, "
                f"{len(lock.wheels)} wheels, epoch {lock.epoch}"
            )
            return 0
        if args.command == "deps":
            print("\n".join(dependencies(read(lock_path(recipe.name)))))
            return 0
        if args.command == "pin":
            build = json.loads((out / recipe.name / "build.json").read_text())
            if not build.get("locked"):
                print(
                    "image: the last build was an unlocked dev build; run make image first",
                    file=sys.stderr,
                )
                return 1
            changed = pin(str(build["digest"]), str(build["tag"]))
            release = {
                "image": "ghcr.io/attest-step/attest-step",
                "tag": build["tag"],
                "digest": build["digest"],
                "lockSha256": hashlib.sha256(lock_path(recipe.name).read_bytes()).hexdigest(),
            }
            (lock_path(recipe.name).parent / "release.json").write_text(
                json.dumps(release, indent=2) + "\n"
            )
            print(f"pinned {len(changed)} catalog files to {build['digest']}")
            return 0
        result = builder.build(
            read(lock_path(recipe.name)), dev_wheel=args.unlocked_dev_wheel, reuse=args.reuse
        )
        print(json.dumps(result, indent=2))
        return 0
    except LockError as err:
        print(f"image {recipe.name}: {err}", file=sys.stderr)
        return 1
    except (RuntimeError, subprocess.CalledProcessError) as err:
        detail = getattr(err, "stderr", None)
        tail = (
            detail.decode(errors="replace").strip().splitlines()[-1:]
            if isinstance(detail, bytes)
            else []
        )
        print(f"image {recipe.name}: build failed: {err} {' '.join(tail)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
