"""The built image under plain runc: umoci unpacks it to a bundle, config.json is edited per run."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.image import scenario
from tests.image.conftest import Runc

pytestmark = [pytest.mark.image, pytest.mark.slow]


def restricted(config: dict[str, Any]) -> None:
    """No capabilities at all and no_new_privs, like the catalog's securityContext."""
    config["process"]["capabilities"] = {
        k: [] for k in ("bounding", "effective", "permitted", "ambient")
    }
    config["process"]["noNewPrivileges"] = True


def runner(runc: Runc) -> scenario.Runner:
    def run(args: list[str], mounts: list[scenario.Mount]) -> subprocess.CompletedProcess[str]:
        return runc.run(args, mounts=mounts, edit=restricted)

    return run


def test_help(runc: Runc) -> None:
    scenario.check_help(runner(runc))


def test_hash_of_a_mounted_workspace(runc: Runc, tmp_path: Path) -> None:
    scenario.check_hash(runner(runc), scenario.make_workspace(tmp_path))


def test_attest_with_a_read_only_secret_and_verify(
    runc: Runc, tmp_path: Path, secret_mount: Path
) -> None:
    scenario.check_attest_and_verify(runner(runc), scenario.make_workspace(tmp_path), secret_mount)


def test_run_network_none_without_capabilities(runc: Runc, tmp_path: Path) -> None:
    """runc's bundle has its own netns with only lo; no seccomp profile, no capability."""
    workspace = scenario.make_workspace(tmp_path)
    proc = scenario.check_run_network_none(runner(runc), workspace)
    assert proc.returncode == 0, proc.stderr
    assert scenario.interfaces(workspace) == ["lo"]


def test_no_package_manager_pip_or_compiler(runc: Runc) -> None:
    script = (
        "import shutil, importlib.util as u; "
        "tools = ('apt','apt-get','dpkg','pip','pip3','gcc','cc','perl'); "
        "print([t for t in tools if shutil.which(t)], "
        "[m for m in ('pip','setuptools','ensurepip') if u.find_spec(m)])"
    )
    proc = runc.run(["--", "/usr/bin/python3", "-c", script], edit=restricted)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[] []"
    proc = runc.run(
        ["--", "/bin/sh", "-c", "test -s /var/lib/dpkg/status && id -u && echo $HOME"],
        edit=restricted,
    )
    assert proc.stdout.split() == ["65532", "/tmp"], proc.stderr
