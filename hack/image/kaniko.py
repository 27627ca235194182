"""The kaniko executor image, built from a kaniko source checkout (``KANIKO_SRC``) offline.

The maintained fork (github.com/osscontainertools/kaniko) vendors every module, so
``go build -mod=vendor ./cmd/executor`` needs no module proxy. The image follows upstream's
layout: ``/kaniko/executor``, CA bundle in ``/kaniko/ssl/certs`` (certifi's, locked by sha256 in
images/attest-step/image.lock), ``DOCKER_CONFIG=/kaniko/.docker/``, root, entrypoint the
executor. Without ``KANIKO_SRC`` nothing is built: no stand-in is ever put where kaniko is named.

``-buildvcs=false``: the binary depends on the source files only, not on how they were checked
out. By default Go stamps a git checkout's revision, commit time, "modified" flag and tag (as
the main module's version) into the binary, so the same tree as a clone, a worktree or an
export gave different executors, hence different image digests (images/README.md).

  python hack/image/kaniko.py --src DIR --version v1.27.6 --epoch EPOCH [--out build/image]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from hack.image import ocilayout, wheels  # noqa: E402
from hack.image.lockfile import read  # noqa: E402
from hack.image.recipes import Recipe  # noqa: E402

KANIKO = Recipe(
    name="kaniko",
    include=(),
    keep=(),
    entrypoint=("/kaniko/executor",),
    user="0:0",
    env=(
        "PATH=/usr/local/bin:/kaniko",
        "HOME=/root",
        "USER=root",
        "SSL_CERT_DIR=/kaniko/ssl/certs",
        "DOCKER_CONFIG=/kaniko/.docker/",
    ),
    description="kaniko executor built from source (go build -mod=vendor)",
)


def build(src: Path, version: str, out: Path, epoch: int) -> dict[str, object]:
    work = out / "kaniko"
    root = work / "rootfs"
    if root.exists():
        shutil.rmtree(root)
    (root / "kaniko/ssl/certs").mkdir(parents=True)
    (root / "kaniko/.docker").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "tmp").mkdir(mode=0o1777)
    (root / "workspace").mkdir()
    env = {
        **os.environ,
        "CGO_ENABLED": "0",
        "GOFLAGS": "-mod=vendor",
        "GOTOOLCHAIN": "local",
        "GOCACHE": os.environ.get("GOCACHE") or str(work / "gocache"),
    }
    ldflags = f"-X github.com/osscontainertools/kaniko/pkg/version.version={version} -w -s"
    executor = root / "kaniko/executor"
    subprocess.run(
        [
            "go",
            "build",
            "-trimpath",
            "-buildvcs=false",
            "-ldflags",
            ldflags,
            "-o",
            str(executor),
            "./cmd/executor",
        ],
        cwd=src,
        env=env,
        check=True,
    )
    lock = read(REPO / "images/attest-step/image.lock")
    (certifi,) = [w for w in lock.wheels if w.name == "certifi"]
    wheels.fetch([certifi], out / "cache" / "wheels")
    with zipfile.ZipFile(out / "cache" / "wheels" / certifi.filename) as archive:
        bundle = archive.read("certifi/cacert.pem")
    (root / "kaniko/ssl/certs/ca-certificates.crt").write_bytes(bundle)
    (root / "etc/nsswitch.conf").write_text("hosts: files dns\n")
    record: dict[str, object] = {"source": str(src), "executorSha256": wheels.sha256(executor)}
    commit = subprocess.run(
        ["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    )
    if commit.returncode == 0:
        record["sourceCommit"] = commit.stdout.strip()
    return ocilayout.from_root(KANIKO, root, work, version.lstrip("v"), epoch, record)


def main() -> int:
    parser = argparse.ArgumentParser(prog="hack/image/kaniko.py")
    parser.add_argument("--src", type=Path, default=os.environ.get("KANIKO_SRC"))
    parser.add_argument("--version", default="v1.27.6")
    parser.add_argument("--out", type=Path, default=REPO / "build" / "image")
    parser.add_argument(
        "--epoch",
        type=int,
        default=int(os.environ.get("SOURCE_DATE_EPOCH", "0")),
        help="timestamp for the image (default SOURCE_DATE_EPOCH; use the tag's commit time)",
    )
    args = parser.parse_args()
    os.umask(0o022)  # file modes end up in the layer
    if not args.src:
        print("kaniko: not built: set KANIKO_SRC to a kaniko source checkout", file=sys.stderr)
        return 2
    print(
        json.dumps(
            build(Path(args.src).resolve(), args.version, args.out.resolve(), args.epoch), indent=2
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
