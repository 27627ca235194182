"""The step image, built once per test session, and the container engines that run it.

The image is built with ``hack/image/build.py build --dev`` (the recipe of ``make image``,
allowing the working tree's wheel) into ``build/image-test``, under a file lock so that the
xdist workers of one session share one build. podman runs with a private configuration and
storage in the session's temp dir; the host's podman settings and images are never used.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures.tools import REPO_ROOT, require_machine, require_tool

BUILD = REPO_ROOT / "hack" / "image" / "build.py"
CACHE = REPO_ROOT / "build" / "image-test"


@dataclass(frozen=True)
class BuiltImage:
    layout: Path
    tag: str
    digest: str
    info: dict[str, object]
    out: Path

    @property
    def oci(self) -> str:
        return f"oci:{self.layout}:{self.tag}"


def build_image(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BUILD), "build", "--dev", "--out", str(out), *extra],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )


@pytest.fixture(scope="session")
def image_tools() -> None:
    require_machine(os.geteuid() == 0, "root, for mmdebstrap --mode=root and runc")
    for tool in ("mmdebstrap", "umoci", "skopeo", "podman", "runc"):
        require_tool(tool, hint="hack/install-tools.sh installs it")


@pytest.fixture(scope="session")
def built_image(image_tools: None, testrun_uid: str) -> BuiltImage:
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE.parent / "image-test.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp = CACHE / "session"
        if not (stamp.exists() and stamp.read_text() == testrun_uid):
            proc = build_image(CACHE)
            assert proc.returncode == 0, proc.stderr
            stamp.write_text(testrun_uid)
    info = json.loads((CACHE / "build.json").read_text())
    return BuiltImage(
        layout=CACHE / "oci", tag=str(info["tag"]), digest=str(info["digest"]), info=info, out=CACHE
    )


@dataclass(frozen=True)
class Podman:
    env: dict[str, str]
    image_id: str

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["podman", "run", "--rm", "--pull=never", *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )


@pytest.fixture(scope="session")
def podman(built_image: BuiltImage, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    """podman with a private configuration, storage and runtime dir, holding the image."""
    base = tmp_path_factory.mktemp("podman")
    for name in ("tmp", "net", "graph", "run"):
        (base / name).mkdir()
    (base / "containers.conf").write_text(
        "[containers]\n"
        'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n'
        "[engine]\n"
        'cgroup_manager = "cgroupfs"\n'
        'events_logger = "file"\n'
        f'events_logfile_path = "{base}/events.log"\n'
        'runtime = "runc"\n'
        f'tmp_dir = "{base}/tmp"\n'
        "[network]\n"
        f'network_config_dir = "{base}/net"\n'
    )
    (base / "storage.conf").write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{base}/graph"\nrunroot = "{base}/run"\n'
    )
    (base / "registries.conf").write_text(
        'unqualified-search-registries = []\nshort-name-mode = "disabled"\n'
    )
    env = {
        **os.environ,
        "CONTAINERS_CONF": str(base / "containers.conf"),
        "CONTAINERS_STORAGE_CONF": str(base / "storage.conf"),
        "CONTAINERS_REGISTRIES_CONF": str(base / "registries.conf"),
    }
    pulled = subprocess.run(
        ["podman", "pull", "-q", built_image.oci],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert pulled.returncode == 0, pulled.stderr
    try:
        yield Podman(env=env, image_id=pulled.stdout.strip().splitlines()[-1])
    finally:
        # Remove what this private storage holds (unmounting its layers); the files go with
        # the temp dir.
        for args in (["rm", "--all", "--force"], ["rmi", "--all", "--force"]):
            subprocess.run(["podman", *args], env=env, capture_output=True, check=False)
