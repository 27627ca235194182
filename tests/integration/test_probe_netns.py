"""``attest-step probe`` inside namespaces made the way Tekton's entrypoint makes them."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from attest_step.hermetic.declare import evaluate
from attest_step.hermetic.record import isolation_byproducts
from attest_step.policy import evaluate_policy
from tests.fixtures.tools import require_machine, require_tool

pytestmark = pytest.mark.netns
CLI = [sys.executable, "-m", "attest_step"]


@pytest.fixture
def tcp_server() -> Iterator[int]:
    sock = socket.create_server(("127.0.0.1", 0))
    sock.settimeout(0.2)
    yield sock.getsockname()[1]
    sock.close()


def _tekton_like() -> list[str]:
    """NEWNS|NEWPID|NEWNET|NEWUSER like TEKTON_HERMETIC=1; loopback stays DOWN, as in Tekton."""
    unshare = require_tool("unshare", hint="install util-linux")
    return [str(unshare), "--user", "--map-root-user", "--net", "--pid", "--fork", "--mount"]


def test_probe_in_tekton_like_namespaces(tmp_path: Path, tcp_server: int) -> None:
    evidence_file = tmp_path / "build.json"
    proc = subprocess.run(
        [
            *_tekton_like(),
            *CLI,
            *("probe", "--output", "json", "--require-isolated", "--timeout", "0.5"),
            *("--connect", f"127.0.0.1:{tcp_server}", "--step-name", "build"),
            *("--evidence-file", str(evidence_file)),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    (view,) = record["views"]
    assert [i["name"] for i in view["interfaces"]] == ["lo"]
    assert "UP" not in view["interfaces"][0]["flags"]
    assert view["ipv4Routes"] == []
    (attempt,) = record["connects"]
    assert attempt["errno"] == "ENETUNREACH"
    assert view["netns"] != Path("/proc/self/ns/net").readlink().name
    # A probe file written by a build step is "reported", not "observed".
    (item,) = isolation_byproducts(
        evaluate(["build"], {}, ["build"]), evidence_files=[evidence_file]
    )
    assert item["annotations"]["sources"] == ["declared", "reported"]
    assert item["annotations"]["hermetic"] is True
    assert item["annotations"]["observedIsolation"] is False


def test_probe_with_network_fails_require_isolated(tcp_server: int) -> None:
    host_interfaces = [name for _, name in socket.if_nameindex() if name != "lo"]
    require_machine(bool(host_interfaces), "a network interface besides lo")
    proc = subprocess.run(
        [*CLI, "probe", "--require-isolated", "--connect", f"127.0.0.1:{tcp_server}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("attest-step: error: probe: this process has network:")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert f"connect tcp://127.0.0.1:{tcp_server}: ok" in proc.stdout


def test_attest_step_probing_itself_in_a_hermetic_pod(tmp_path: Path) -> None:
    """In annotation mode the attest step has no network either: its own probe says so."""
    code = (
        "import json; from attest_step.hermetic.record import isolation_byproducts as b; "
        "print(json.dumps(b([], observe_self_as='attest')))"
    )
    proc = subprocess.run(
        [*_tekton_like(), sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    (item,) = json.loads(proc.stdout)
    assert item["annotations"]["observedIsolation"] is True
    assert item["annotations"]["hermetic"] is False  # observed, but not declared
    assert item["annotations"]["role"] == "attest"
    statement = {"predicate": {"runDetails": {"byproducts": [item]}}}
    # The attest step's own record is not a build step: it cannot satisfy requireHermetic.
    assert evaluate_policy(statement, {"requireHermetic": True}) == [
        "requireHermetic: the provenance has no network-isolation record of a build step"
    ]
