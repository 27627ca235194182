"""The OPA image of the verify-provenance Task's ``rego`` step, built from the Go module proxy.

``go build`` of ``github.com/open-policy-agent/opa@VERSION`` (the module proxy and its checksum
database check what is fetched; go.sum pins OPA's dependencies), ``CGO_ENABLED=0 -trimpath``:
one static binary, laid out like upstream's ``-static`` image: ``/opa``, ``/`` on PATH,
entrypoint ``/opa``, nonroot user 65532, an empty ``/tmp``. No shell, no CA bundle (the Task's
OPA never opens a connection). The timestamp is the tag's commit time from the module proxy, so
the same version and Go toolchain give the same digest.

  python hack/image/opa.py [--version v1.22.4] [--out build/image]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from hack.image import ocilayout, wheels  # noqa: E402
from hack.image.recipes import Recipe  # noqa: E402

MODULE = "github.com/open-policy-agent/opa"
OPA = Recipe(
    name="opa",
    include=(),
    keep=(),
    entrypoint=("/opa",),
    env=("PATH=/usr/local/bin:/usr/bin:/bin:/",),
    description="OPA built from the Go module proxy (CGO_ENABLED=0, -trimpath)",
)


def _go_env(work: Path) -> dict[str, str]:
    return {
        **os.environ,
        "CGO_ENABLED": "0",
        "GOFLAGS": "-mod=mod",
        "GOTOOLCHAIN": "local",
        "GOCACHE": os.environ.get("GOCACHE") or str(work / "gocache"),
    }


def tag_time(version: str, work: Path) -> int:
    """The commit time of ``version`` as the module proxy reports it (the image's epoch)."""
    proc = subprocess.run(
        ["go", "list", "-m", "-json", f"{MODULE}@{version}"],
        cwd=work,
        env=_go_env(work),
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    when = json.loads(proc.stdout)["Time"]
    return int(datetime.fromisoformat(when.replace("Z", "+00:00")).timestamp())


def build(version: str, out: Path) -> dict[str, object]:
    work = out / "opa"
    root = work / "rootfs"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    (root / "tmp").mkdir(mode=0o1777)
    (root / "etc").mkdir()
    (root / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532::/tmp:/sbin/nologin\n"
    )
    (root / "etc/group").write_text("root:x:0:\nnonroot:x:65532:\n")
    # `go build pkg@version` is refused outside a module; `go install` is the module-proxy way
    gobin = work / "bin"
    subprocess.run(
        ["go", "install", "-trimpath", "-ldflags=-s -w", f"{MODULE}@{version}"],
        cwd=work,
        env={**_go_env(work), "GOBIN": str(gobin)},
        check=True,
        timeout=3600,
    )
    binary = root / "opa"
    shutil.copyfile(gobin / "opa", binary)
    binary.chmod(0o755)
    epoch = tag_time(version, work)
    record: dict[str, object] = {
        "module": f"{MODULE}@{version}",
        "epoch": epoch,
        "opaSha256": wheels.sha256(binary),
    }
    return ocilayout.from_root(OPA, root, work, version.lstrip("v"), epoch, record)


def main() -> int:
    parser = argparse.ArgumentParser(prog="hack/image/opa.py")
    parser.add_argument("--version", default="v1.22.4")
    parser.add_argument("--out", type=Path, default=REPO / "build" / "image")
    args = parser.parse_args()
    os.umask(0o022)  # file modes end up in the layer
    out = args.out.resolve()
    (out / "opa").mkdir(parents=True, exist_ok=True)
    print(json.dumps(build(args.version, out), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
