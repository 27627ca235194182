"""Fixtures for the image tests: the built image (once per session), podman and runc runners.

The image is built by ``hack/image/cli.py build --unlocked-dev-wheel --reuse`` into
``build/image-test/`` (gitignored): Debian packages and third-party wheels come from the lock,
attest-step's own wheel from the working tree. The build is skipped when the lock and the
wheel are unchanged since the last one, so a warm session costs no build. xdist workers share
it through a file lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.private_var_lib import with_private_var_lib
from tests.fixtures.tools import REPO_ROOT, require_machine, require_tool

BUILD_OUT = REPO_ROOT / "build" / "image-test"
HOST_PYTHON = "/usr/bin/python3"


@dataclass(frozen=True)
class BuiltImage:
    layout: Path
    tag: str
    digest: str
    info: dict[str, Any]

    @property
    def oci_ref(self) -> str:
        return f"{self.layout}:{self.tag}"


def require_image_tools() -> None:
    for tool, package in (("mmdebstrap", "mmdebstrap"), ("umoci", "umoci"), ("skopeo", "skopeo")):
        require_tool(tool, hint=f"apt-get install {package}")
    require_machine(os.geteuid() == 0, "root, to build the image (mmdebstrap root mode, chroot)")


def build_image(out: Path, *, reuse: bool) -> dict[str, Any]:
    cmd = [HOST_PYTHON, str(REPO_ROOT / "hack/image/cli.py"), "build", "--unlocked-dev-wheel"]
    cmd += ["--out", str(out)]
    if reuse:
        cmd.append("--reuse")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


@pytest.fixture(scope="session")
def built_image() -> BuiltImage:
    require_image_tools()
    BUILD_OUT.mkdir(parents=True, exist_ok=True)
    with (BUILD_OUT / ".lock").open("w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        info = build_image(BUILD_OUT, reuse=True)
    return BuiltImage(Path(info["layout"]), str(info["tag"]), str(info["digest"]), info)


_CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
tmp_dir = "{tmp}"
[network]
network_config_dir = "{net}"
"""
_STORAGE_CONF = """\
[storage]
driver = "overlay"
graphroot = "{graph}"
runroot = "{run}"
"""
_REGISTRIES_CONF = """\
unqualified-search-registries = []
short-name-mode = "disabled"
"""


class Podman:
    """podman with private containers.conf, storage.conf and registries.conf in a temp dir."""

    def __init__(self, base: Path) -> None:
        self.binary = require_tool("podman", hint="apt-get install podman")
        self.base = base
        for sub in ("graph", "run", "tmp", "net"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        conf = base / "containers.conf"
        conf.write_text(_CONTAINERS_CONF.format(tmp=base / "tmp", net=base / "net"))
        storage = base / "storage.conf"
        storage.write_text(_STORAGE_CONF.format(graph=base / "graph", run=base / "run"))
        registries = base / "registries.conf"
        registries.write_text(_REGISTRIES_CONF)
        self.env = {
            **os.environ,
            "CONTAINERS_CONF": str(conf),
            "CONTAINERS_STORAGE_CONF": str(storage),
            "CONTAINERS_REGISTRIES_CONF": str(registries),
        }

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        # pull writes containers/image's blob-info cache to /var/lib as root: keep it private
        argv = [str(self.binary), *args]
        if args[:1] == ("pull",):
            argv = with_private_var_lib(argv, self.base / "var-lib")
        return subprocess.run(
            argv,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )

    def load(self, image: BuiltImage, name: str) -> str:
        proc = self("pull", "-q", f"oci:{image.oci_ref}")
        assert proc.returncode == 0, proc.stderr
        image_id = proc.stdout.strip().splitlines()[-1]
        proc = self("tag", image_id, name)
        assert proc.returncode == 0, proc.stderr
        return name

    def cleanup(self) -> None:
        self("rm", "-a", "-f")
        self("rmi", "-a", "-f")
        # overlay mounts under the private graphroot must not outlive the test
        subprocess.run(
            ["umount", "-R", str(self.base / "graph" / "overlay")], capture_output=True, check=False
        )


@pytest.fixture(scope="session")
def podman(
    tmp_path_factory: pytest.TempPathFactory, built_image: BuiltImage
) -> Iterator[tuple[Podman, str]]:
    require_machine(os.geteuid() == 0, "root, for podman with cgroupfs and runc")
    runner = Podman(tmp_path_factory.mktemp("podman"))
    try:
        name = runner.load(built_image, f"localhost/attest-step-test:{uuid.uuid4().hex[:8]}")
        yield runner, name
    finally:
        runner.cleanup()


class Runc:
    """runc on a bundle unpacked by umoci; config.json edited per run."""

    def __init__(self, bundle: Path) -> None:
        self.binary = require_tool("runc", hint="apt-get install runc")
        self.bundle = bundle
        self.base_config = json.loads((bundle / "config.json").read_text())

    def run(
        self,
        args: list[str],
        *,
        mounts: list[tuple[Path, str, bool]] = (),  # type: ignore[assignment]
        env: dict[str, str] | None = None,
        cwd: str = "/tmp",
        edit: Any = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        config = json.loads(json.dumps(self.base_config))
        process = config["process"]
        process["terminal"] = False
        process["args"] = [*process["args"][:1], *args] if args[:1] != ["--"] else args[1:]
        process["cwd"] = cwd
        process["env"] = [*process["env"], *(f"{k}={v}" for k, v in (env or {}).items())]
        config["root"]["readonly"] = True
        config["mounts"].append(
            {
                "destination": "/tmp",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "nodev", "mode=1777"],
            }
        )
        for source, target, readonly in mounts:
            options = ["rbind", "ro" if readonly else "rw"]
            config["mounts"].append(
                {"destination": target, "type": "bind", "source": str(source), "options": options}
            )
        if edit is not None:
            edit(config)
        (self.bundle / "config.json").write_text(json.dumps(config))
        name = f"attest-step-test-{uuid.uuid4().hex[:12]}"
        try:
            return subprocess.run(
                [str(self.binary), "run", "--bundle", str(self.bundle), name],
                capture_output=True,
                text=True,
                check=False,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
        finally:
            subprocess.run(
                [str(self.binary), "delete", "--force", name], capture_output=True, check=False
            )


@pytest.fixture(scope="session")
def runc(tmp_path_factory: pytest.TempPathFactory, built_image: BuiltImage) -> Runc:
    require_machine(os.geteuid() == 0, "root, for runc with cgroupfs")
    require_tool("runc", hint="apt-get install runc")
    bundle = tmp_path_factory.mktemp("runc") / "bundle"
    subprocess.run(
        ["umoci", "unpack", "--image", built_image.oci_ref, str(bundle)],
        check=True,
        capture_output=True,
    )
    return Runc(bundle)
