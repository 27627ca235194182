"""Tekton's real entrypoint with TEKTON_HERMETIC=1: probe inside it, and failing closed."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.tools import require_machine, require_tool

pytestmark = pytest.mark.netns
PY = sys.executable


def _entrypoint(tmp_path: Path, args: list[str], *, hermetic: bool) -> list[str]:
    entrypoint = require_tool("tekton-entrypoint")
    return [
        str(entrypoint),
        *("-entrypoint", PY, "-post_file", str(tmp_path / "post")),
        *("-termination_path", str(tmp_path / "term")),
        *("-step_metadata_dir", str(tmp_path / "meta"), "--", *args),
    ]


def _env(hermetic: bool) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("TEKTON_RESOURCE_NAME", None)
    if hermetic:
        env["TEKTON_HERMETIC"] = "1"
    else:
        env.pop("TEKTON_HERMETIC", None)
    return env


def test_probe_under_tekton_hermetic_entrypoint(tmp_path: Path) -> None:
    args = ["-m", "attest_step", "probe", "--output", "json", "--require-isolated"]
    args += ["--connect", "127.0.0.1:9", "--timeout", "0.3"]
    proc = subprocess.run(
        _entrypoint(tmp_path, args, hermetic=True),
        env=_env(True),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    (view,) = record["views"]
    assert [i["name"] for i in view["interfaces"]] == ["lo"]
    assert view["interfaces"][0]["flags"] == ["LOOPBACK"]  # Tekton leaves lo DOWN
    assert record["connects"][0]["errno"] == "ENETUNREACH"
    assert record["environment"]["TEKTON_HERMETIC"] == "1"
    assert record["contradictions"] == []


def test_without_hermetic_the_probe_sees_network(tmp_path: Path) -> None:
    others = [n for n in os.listdir("/sys/class/net") if n != "lo"]
    require_machine(bool(others), "a network interface besides lo")
    args = ["-m", "attest_step", "probe", "--require-isolated"]
    proc = subprocess.run(
        _entrypoint(tmp_path, args, hermetic=False),
        env=_env(False),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 1


def test_no_user_namespaces_fails_closed(tmp_path: Path) -> None:
    """With user namespaces exhausted, neither Tekton nor `run` starts the command."""
    unshare = require_tool("unshare", hint="install util-linux")
    marker = tmp_path / "ran"
    tekton = _entrypoint(tmp_path, ["-c", f"open({str(marker)!r}, 'w')"], hermetic=True)
    run = [PY, "-m", "attest_step", "run", "--", PY, "-c", f"open({str(marker)!r}, 'w')"]
    script = (
        "echo 0 > /proc/sys/user/max_user_namespaces || exit 99; "
        f'{shlex.join(tekton)}; echo "tekton=$?"; {shlex.join(run)}; echo "run=$?"'
    )
    proc = subprocess.run(
        [str(unshare), "--user", "--map-root-user", "sh", "-c", script],
        env=_env(True),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    require_machine(
        proc.returncode != 99, "a writable user.max_user_namespaces inside a user namespace"
    )
    assert "tekton=1" in proc.stdout
    assert "run=1" in proc.stdout
    assert (tmp_path / "post.err").exists()  # Tekton marks the step failed
    assert "the command was NOT run" in proc.stderr
    assert not marker.exists()
