"""``attest-step run`` under the schedules a loaded machine produces, with real namespaces.

Once seen as a build command that "printed nothing" in tests/integration/
test_evidence_attacks.py under load: the run had stopped before the command started, with
"the isolated init did not start". C1 sent a message after forking the init, the init sent
its own to the same pipe, and the parent took the second message read for the init's; when
C1's fork returned late, the order was the other way round. strace's ``delay_exit`` makes
every fork return late to its caller, so that order is the one tested here every time.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.fixtures.tools import require_machine, require_tool

pytestmark = pytest.mark.netns
CLI = [sys.executable, "-m", "attest_step"]
FORKS = "clone,clone3,fork,vfork"


def _strace() -> list[str]:
    """strace following every process, making each fork return 0.3 s late to its caller."""
    strace = str(require_tool("strace"))
    works = subprocess.run([strace, "-qq", "-o", "/dev/null", "true"], check=False)
    require_machine(works.returncode == 0, "ptrace (strace cannot trace here)")
    return [
        strace,
        *("-f", "-qq", "-o", "/dev/null", "-e", f"trace={FORKS}"),
        *("-e", f"inject={FORKS}:delay_exit=300000"),
    ]


def _run(
    network: str, inner: list[str], evidence: Path, *, wrapper: Sequence[str] = ()
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [
            *wrapper,
            *CLI,
            *("run", "--network", network, "--step-name", "build"),
            *("--evidence-file", str(evidence), "--", *inner),
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("network", ["none", "host"])
def test_a_fork_that_returns_late_does_not_stop_the_run(tmp_path: Path, network: str) -> None:
    evidence = tmp_path / "record.json"
    proc = _run(
        network, ["sh", "-c", "echo out; echo err >&2; exit 3"], evidence, wrapper=_strace()
    )
    assert proc.stdout == b"out\n", proc.stderr.decode()
    assert proc.stderr == b"err\n"
    assert proc.returncode == 3
    record = json.loads(evidence.read_text())
    assert record["command"]["exitCode"] == 3
    assert record["isolation"]["network"] == network


def test_many_short_runs_each_print_before_they_exit() -> None:
    """A command that writes one line and exits at once, 100 times in a row in one process."""
    script = (
        "import sys\n"
        "from attest_step.hermetic import isolate\n"
        "for i in range(100):\n"
        "    result = isolate.run(['printf', '%s\\n', str(i)], network='host')\n"
        "    assert result.exit_code == 0, result\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(i) for i in range(100)]


def test_large_output_right_before_exit_passes_through_whole(tmp_path: Path) -> None:
    proc = _run("none", ["sh", "-c", "head -c 3000000 /dev/zero; exit 5"], tmp_path / "r.json")
    assert proc.returncode == 5, proc.stderr.decode()
    assert len(proc.stdout) == 3000000
    assert proc.stdout.count(b"\0") == 3000000


def test_the_command_gets_sigpipe_and_sigxfsz_at_their_default(tmp_path: Path) -> None:
    """Python ignores both and an ignored signal stays ignored across exec: without the
    reset, ``yes`` in ``yes | head -1`` would complain of a broken pipe instead of ending."""
    proc = _run("none", ["grep", "^SigIgn:", "/proc/self/status"], tmp_path / "r.json")
    assert proc.returncode == 0, proc.stderr.decode()
    ignored = int(proc.stdout.split()[1], 16)
    for signum in (signal.SIGPIPE, signal.SIGXFSZ):
        assert not ignored & (1 << (signum - 1)), signum.name
    proc = _run("none", ["sh", "-c", "yes | head -1"], tmp_path / "r2.json")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"y\n", b"")
