"""``attest-step run`` with real namespaces against servers this test runs on 127.0.0.1/::1."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from attest_step.hermetic.declare import evaluate
from attest_step.hermetic.record import isolation_byproducts
from attest_step.policy import evaluate_policy

pytestmark = pytest.mark.netns
CLI = [sys.executable, "-m", "attest_step"]


@dataclass
class Servers:
    """A TCP server on 127.0.0.1 and ::1 and a UDP echo server on 127.0.0.1, counting hits."""

    tcp4: int = 0
    tcp6: int | None = None
    udp4: int = 0
    hits: list[str] = field(default_factory=list)


def _serve_tcp(sock: socket.socket, hits: list[str], label: str) -> None:
    while True:
        try:
            conn, _ = sock.accept()
        except OSError:
            return
        hits.append(label)
        conn.close()


def _serve_udp(sock: socket.socket, hits: list[str]) -> None:
    while True:
        try:
            data, peer = sock.recvfrom(512)
        except OSError:
            return
        hits.append("udp4")
        sock.sendto(data, peer)


@pytest.fixture
def servers() -> Iterator[Servers]:
    out = Servers()
    sockets: list[socket.socket] = []
    tcp4 = socket.create_server(("127.0.0.1", 0))
    sockets.append(tcp4)
    out.tcp4 = tcp4.getsockname()[1]
    threading.Thread(target=_serve_tcp, args=(tcp4, out.hits, "tcp4"), daemon=True).start()
    try:
        tcp6 = socket.create_server(("::1", 0), family=socket.AF_INET6)
        sockets.append(tcp6)
        out.tcp6 = tcp6.getsockname()[1]
        threading.Thread(target=_serve_tcp, args=(tcp6, out.hits, "tcp6"), daemon=True).start()
    except OSError:
        out.tcp6 = None
    udp4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp4.bind(("127.0.0.1", 0))
    sockets.append(udp4)
    out.udp4 = udp4.getsockname()[1]
    threading.Thread(target=_serve_udp, args=(udp4, out.hits), daemon=True).start()
    yield out
    for sock in sockets:
        sock.close()


def _probe_args(servers: Servers) -> list[str]:
    args = [
        "probe",
        "--output",
        "json",
        "--timeout",
        "0.5",
        "--connect",
        f"127.0.0.1:{servers.tcp4}",
        "--connect",
        f"udp://127.0.0.1:{servers.udp4}",
        "--resolve",
        "attest-step-test.invalid",
    ]
    if servers.tcp6 is not None:
        args += ["--connect", f"[::1]:{servers.tcp6}"]
    return args


def _run(tmp_path: Path, network: str, inner: list[str]) -> tuple[int, dict[str, Any], Path]:
    """Exit status, the probe's JSON and the evidence file; stderr goes to ours (shown on
    failure)."""
    evidence_file = tmp_path / f"{network}.json"
    proc = subprocess.run(
        [
            *CLI,
            *("run", "--network", network, "--step-name", "build"),
            *("--evidence-file", str(evidence_file), "--", *inner),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    sys.stderr.write(proc.stderr)
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else {}, evidence_file


def test_isolated_command_reaches_nothing(tmp_path: Path, servers: Servers) -> None:
    code, probe, evidence_file = _run(tmp_path, "none", [*CLI, *_probe_args(servers)])
    assert code == 0
    by_target = {c["target"]: c for c in probe["connects"]}
    # 127.0.0.1 inside the new namespace is the child's own loopback (UP): nobody listens.
    assert by_target[f"tcp://127.0.0.1:{servers.tcp4}"]["errno"] == "ECONNREFUSED"
    assert by_target[f"udp://127.0.0.1:{servers.udp4}"]["ok"] is False
    if servers.tcp6 is not None:
        assert by_target[f"tcp://[::1]:{servers.tcp6}"]["ok"] is False
    assert all(not c["ok"] for c in probe["connects"])
    assert probe["resolves"][0]["ok"] is False
    assert [i["name"] for i in probe["views"][0]["interfaces"]] == ["lo"]
    assert probe["contradictions"] == []
    time.sleep(0.1)
    assert servers.hits == [], "the host's servers saw a connection from the isolated child"

    record = json.loads(evidence_file.read_text())
    assert record["producer"]["verb"] == "run"
    assert record["command"]["exitCode"] == 0
    assert record["command"]["netns"] != record["parentNetns"]
    assert [v["at"] for v in record["views"]] == [
        "before-command",
        "before-command",
        "after-process-tree-ended",
    ]
    for view in record["views"]:
        assert [i["name"] for i in view["interfaces"]] == ["lo"]
        assert view["ipv4Routes"] == []
    assert record["contradictions"] == []

    # A run record read from a plain file (--network-evidence), not from the evidence volume,
    # is reported: the command could have reached that path.
    (item,) = isolation_byproducts(
        evaluate(["build"], {}, ["build"]), evidence_files=[evidence_file]
    )
    assert item["annotations"]["hermetic"] is True
    assert item["annotations"]["sources"] == ["declared", "reported"]
    assert item["annotations"]["observedIsolation"] is False
    statement = {"predicate": {"runDetails": {"byproducts": [item]}}}
    assert evaluate_policy(statement, {"requireHermetic": True}) == []


def test_same_command_with_network_succeeds_and_is_not_hermetic(
    tmp_path: Path, servers: Servers
) -> None:
    code, probe, evidence_file = _run(tmp_path, "host", [*CLI, *_probe_args(servers)])
    assert code == 0
    assert all(c["ok"] for c in probe["connects"]), probe["connects"]
    assert "tcp4" in servers.hits
    assert "udp4" in servers.hits
    record = json.loads(evidence_file.read_text())
    assert record["command"]["netns"] == record["parentNetns"]
    assert any("parent's network namespace" in c for c in record["contradictions"])

    # Declared hermetic, but the evidence contradicts it: not attested as hermetic.
    (item,) = isolation_byproducts(
        evaluate(["build"], {}, ["build"]), evidence_files=[evidence_file]
    )
    assert item["annotations"]["declared"] is True
    assert item["annotations"]["hermetic"] is False
    statement = {"predicate": {"runDetails": {"byproducts": [item]}}}
    (violation,) = evaluate_policy(statement, {"requireHermetic": True})
    assert "step build: not recorded as network-isolated" in violation


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["sh", "-c", "exit 7"], 7),
        (["sh", "-c", "kill -TERM $$"], 128 + 15),
        (["attest-step-no-such-command"], 127),
    ],
)
def test_exit_status_is_the_commands(tmp_path: Path, command: list[str], expected: int) -> None:
    code, _, evidence_file = _run(tmp_path, "none", command)
    assert code == expected
    assert json.loads(evidence_file.read_text())["command"]["exitCode"] == expected


def test_child_cannot_alter_the_record(tmp_path: Path) -> None:
    evidence_file = tmp_path / "none.json"
    marker = tmp_path / "background-still-alive"
    script = (
        f"echo forged > {evidence_file}; "
        f"(sleep 0.5; echo forged-later > {evidence_file}; touch {marker}) & "
        "exit 0"
    )
    started = time.monotonic()
    code, _, _ = _run(tmp_path, "none", ["sh", "-c", script])
    assert code == 0
    assert time.monotonic() - started < 5
    time.sleep(1.0)
    record = json.loads(evidence_file.read_text())
    assert record["mediaType"] == "application/vnd.attest-step.network-evidence.v1+json"
    assert record["command"]["leftoverProcessesKilled"] >= 1
    assert not marker.exists(), "a background process outlived the isolated command"


def test_child_symlink_at_evidence_path_is_replaced_not_followed(tmp_path: Path) -> None:
    evidence_file = tmp_path / "none.json"
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    code, _, _ = _run(tmp_path, "none", ["ln", "-sf", str(victim), str(evidence_file)])
    assert code == 0
    assert victim.read_text() == "untouched"
    assert not evidence_file.is_symlink()
    assert json.loads(evidence_file.read_text())["producer"]["verb"] == "run"
