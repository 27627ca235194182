"""The catalog's hermetic-build Task, locally: a build that needs the network must fail.

Local-only (the catalog's own tests/ must all succeed on kind): the TaskRuns are built here,
against the real catalog (Task, StepAction) and the test key pair in its tests/resources.yaml.
A TCP server on the host's 127.0.0.1 stands in for anything the build could reach:

- the normal build succeeds and its provenance records the isolation of step ``build``
  (declared + reported) and the Task's params;
- a build script that connects to the server fails under ``TEKTON_HERMETIC=1`` and the
  server sees no connection; the attest step never runs;
- the same script with ``TEKTON_HERMETIC=0`` reaches the server, and the provenance then
  says ``hermetic: false`` (the build's own probe contradicts the declaration).
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.executor import Executor, RunOutcome
from tests.e2e.executor.catalog import CATALOG, claim, executor_for, task_run
from tests.e2e.test_executor import built  # noqa: F401  (fixture)
from tests.fixtures.counting_server import CountingServer

pytestmark = [pytest.mark.e2e, pytest.mark.netns]

TESTS = CATALOG / "task" / "hermetic-build" / "0.1" / "tests"
ATTEST_STEP = str(Path(sys.executable).parent / "attest-step")
BUILD = """\
set -eu
mkdir -p out
printf 'built without network\\n' >out/app.txt
"""
# Needs the network: connect to the host's server, fail when that is impossible.
NET_BUILD = """\
set -eu
python3 - "$TARGET_PORT" <<'EOF'
import socket, sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5).close()
except OSError as err:
    sys.exit(f"build: cannot reach the download server: {err}")
print("build: reached the download server")
EOF
mkdir -p out
printf 'built with network\\n' >out/app.txt
"""


@pytest.fixture
def server() -> Iterator[CountingServer]:
    s = CountingServer("127.0.0.1")
    try:
        yield s
    finally:
        s.close()


# The Task's isolation modes: (TEKTON_HERMETIC, RUN_ISOLATED). "run" is the default.
MODES = {"tekton": ("1", "false"), "run": ("0", "true"), "off": ("0", "false")}


def run_build(
    tmp_path: Path, script: str, port: int, mode: str, values: tuple[str, str] | None = None
) -> tuple[RunOutcome, Path]:
    tekton_hermetic, run_isolated = values or MODES[mode]
    ex: Executor = executor_for(TESTS, tmp_path / "run")
    source = ex.cluster.claim_dir("hermetic-source")
    # The build script comes from the source; the port is written into it.
    (source / "build.sh").write_text(script.replace("$TARGET_PORT", str(port)))
    taskrun = task_run(
        f"hermetic-build-local-{mode}"[:63],
        "hermetic-build",
        {
            "DEPENDENCIES_FILE": "",
            "TEKTON_HERMETIC": tekton_hermetic,
            "RUN_ISOLATED": run_isolated,
            "CHAINS-GIT_URL": "https://example.invalid/app.git",
            "CHAINS-GIT_COMMIT": "0123456789abcdef0123456789abcdef01234567",
        },
        {"source": claim("hermetic-source")},
    )
    return ex.run(taskrun), source


def catalog_test_public_key() -> bytes:
    for doc in yaml.safe_load_all((TESTS / "resources.yaml").read_text()):
        if doc and doc.get("kind") == "Secret" and doc["metadata"]["name"] == "signing-secrets":
            return str(doc["stringData"]["cosign.pub"]).encode()
    raise AssertionError("no Secret signing-secrets in the test resources")


def statement_of(source: Path, *, require_hermetic: bool) -> dict[str, Any]:
    """The statement, after attest-step verified the envelope against the outputs."""
    pub = source.parent / "cosign.pub"
    pub.write_bytes(catalog_test_public_key())
    argv = [
        ATTEST_STEP,
        "verify-attestation",
        "--key",
        str(pub),
        "--envelope",
        ".attest/provenance.dsse.json",
        "--subject-path",
        "out",
        "--output",
        "json",
    ]
    if require_hermetic:
        argv.append("--require-hermetic")
    proc = subprocess.run(argv, cwd=source, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    statement: dict[str, Any] = json.loads(proc.stdout)["statement"]
    return statement


def isolation_record(statement: dict[str, Any], step: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(annotations, decoded content) of byproduct attest-step/network-isolation/<step>."""
    (byproduct,) = [
        b
        for b in statement["predicate"]["runDetails"]["byproducts"]
        if b["name"] == f"attest-step/network-isolation/{step}"
    ]
    content: dict[str, Any] = json.loads(base64.b64decode(byproduct["content"]))
    return byproduct["annotations"], content


def step_exit_codes(outcome: RunOutcome) -> dict[str, Any]:
    return {
        s["name"]: s.get("terminated", {}).get("exitCode")
        for s in outcome.obj["status"].get("steps") or []
    }


def test_hermetic_build_provenance_records_isolation_and_params(
    built: None,  # noqa: F811
    tmp_path: Path,
    server: CountingServer,
) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    outcome, source = run_build(tmp_path, BUILD, server.port, "tekton")
    after = datetime.now(UTC)
    assert outcome.succeeded, outcome.message
    statement = statement_of(source, require_hermetic=True)
    # startedOn from Tekton's prepared steps, not the host's PID 1 (issue 14, D2)
    metadata = statement["predicate"]["runDetails"]["metadata"]
    started, finished = (
        datetime.strptime(metadata[k], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        for k in ("startedOn", "finishedOn")
    )
    assert before <= started <= finished <= after, (metadata, before, after)
    # A TaskRun of its own has no PipelineRun labels: nothing recorded, nothing invented.
    build = statement["predicate"]["buildDefinition"]
    assert "pipeline" not in build["externalParameters"]
    assert "pipelineRun" not in build["internalParameters"]["tekton"]
    annotations, record = isolation_record(statement, "build")
    assert annotations["hermetic"] is True and annotations["declared"] is True
    assert annotations["sources"] == ["declared", "reported"]
    assert record["hermetic"] is True and record["contradictions"] == []
    claims = {c["source"]: c for c in record["claims"]}
    assert claims["declared"]["value"] is True
    assert claims["reported"]["value"] is True and claims["reported"]["by"] == "attest-step probe"
    (evidence,) = record["evidence"]
    assert evidence["source"] == "reported"
    assert evidence["record"]["environment"] == {"TEKTON_HERMETIC": "1"}
    assert [i["name"] for i in evidence["record"]["views"][0]["interfaces"]] == ["lo"]
    # The Task's params, through the StepAction's PARAMS, in externalParameters.
    params = statement["predicate"]["buildDefinition"]["externalParameters"]["params"]
    assert params["BUILD_SCRIPT"] == "build.sh"
    assert params["DEPENDENCIES_FILE"] == ""
    assert params["OUTPUT_PATHS"] == "out"
    assert params["TEKTON_HERMETIC"] == "1"
    assert params["CHAINS-GIT_URL"] == "https://example.invalid/app.git"
    assert "SIGNING_SECRET" in params and "KEY" in params
    assert server.connections == 0


def test_default_mode_attest_step_run_records_observed_isolation(
    built: None,  # noqa: F811
    tmp_path: Path,
    server: CountingServer,
) -> None:
    """The Task's default: the build under `attest-step run --network none` (works non-root)."""
    outcome, source = run_build(tmp_path, BUILD, server.port, "run")
    assert outcome.succeeded, outcome.message
    statement = statement_of(source, require_hermetic=True)
    annotations, record = isolation_record(statement, "build")
    assert annotations["hermetic"] is True and annotations["declared"] is True
    assert "observed" in annotations["sources"]
    claims = {c["source"]: c for c in record["claims"]}
    assert claims["observed"]["value"] is True
    params = statement["predicate"]["buildDefinition"]["externalParameters"]["params"]
    assert params["RUN_ISOLATED"] == "true" and params["TEKTON_HERMETIC"] == "0"
    assert server.connections == 0


@pytest.mark.parametrize("mode", ["tekton", "run"])
def test_build_that_needs_the_network_fails(
    built: None,  # noqa: F811
    tmp_path: Path,
    server: CountingServer,
    mode: str,
) -> None:
    outcome, source = run_build(tmp_path, NET_BUILD, server.port, mode)
    assert not outcome.succeeded
    assert outcome.reason == "StepFailed"
    assert '"step-build" exited with code 1' in outcome.message
    codes = step_exit_codes(outcome)
    assert codes["prefetch"] == 0
    assert codes["build"] == 1
    (log,) = [v for k, v in outcome.logs.items() if k.endswith("-step-build")]
    assert "cannot reach the download server" in log
    # Tekton skipped the attest step: nothing was attested.
    steps = {s["name"]: s for s in outcome.obj["status"]["steps"]}
    assert steps["attest"]["terminationReason"] == "Skipped", steps["attest"]
    assert not (source / ".attest" / "provenance.dsse.json").exists()
    assert server.connections == 0


def test_same_build_with_network_is_recorded_as_not_hermetic(
    built: None,  # noqa: F811
    tmp_path: Path,
    server: CountingServer,
) -> None:
    """Control: without TEKTON_HERMETIC the script reaches the server (so the failure above
    is the isolation's doing), and the provenance does not claim a hermetic build."""
    outcome, source = run_build(tmp_path, NET_BUILD, server.port, "off")
    assert outcome.succeeded, outcome.message
    assert server.connections == 1
    statement = statement_of(source, require_hermetic=False)
    annotations, record = isolation_record(statement, "build")
    assert annotations["hermetic"] is False
    assert record["contradictions"], record
    params = statement["predicate"]["buildDefinition"]["externalParameters"]["params"]
    assert params["TEKTON_HERMETIC"] == "0"


# (TEKTON_HERMETIC, RUN_ISOLATED) -> how the build step is declared hermetic. The build
# script isolates with `attest-step run` when RUN_ISOLATED is exactly "true", Tekton's
# entrypoint when TEKTON_HERMETIC is exactly "1"; anything else is no isolation.
PARAM_CASES = {
    ("0", "true"): ["run"],
    ("1", "false"): ["tekton"],
    ("1", "true"): ["run", "tekton"],
    ("0", "false"): [],
    ("yes", "TRUE"): [],
    ("", ""): [],
}


@pytest.mark.parametrize(("tekton_hermetic", "run_isolated"), list(PARAM_CASES))
def test_declaration_follows_the_params(
    built: None,  # noqa: F811
    tmp_path: Path,
    server: CountingServer,
    tekton_hermetic: str,
    run_isolated: str,
) -> None:
    mechanisms = PARAM_CASES[(tekton_hermetic, run_isolated)]
    outcome, source = run_build(
        tmp_path,
        BUILD,
        server.port,
        f"params-{list(PARAM_CASES).index((tekton_hermetic, run_isolated))}",
        (tekton_hermetic, run_isolated),
    )
    assert outcome.succeeded, outcome.message
    statement = statement_of(source, require_hermetic=bool(mechanisms))
    annotations, record = isolation_record(statement, "build")
    declared = sorted(c["mechanism"] for c in record["claims"] if c["source"] == "declared")
    assert declared == mechanisms
    assert annotations["declared"] is bool(mechanisms)
    assert annotations["hermetic"] is bool(mechanisms)
    assert annotations["observedIsolation"] is ("run" in mechanisms)
    if not mechanisms:
        assert annotations["status"] == "not-declared"
        assert "not declared hermetic in the Task spec" in record["reasons"]
        assert any("does not hold" in reason for reason in record["reasons"])
    params = statement["predicate"]["buildDefinition"]["externalParameters"]["params"]
    assert (params["TEKTON_HERMETIC"], params["RUN_ISOLATED"]) == (tekton_hermetic, run_isolated)


def test_attack_networked_build_deletes_its_probe_file(
    built: None,  # noqa: F811
    tmp_path: Path,
    server: CountingServer,
) -> None:
    """Isolation off by the params, the build reaches the network and deletes the probe file
    that shows it: the step is not recorded as hermetic (it is not declared: the params say
    no isolation), and the gate refuses it."""
    script = NET_BUILD + "rm -f .attest/evidence/build-probe.json\n"
    outcome, source = run_build(tmp_path, script, server.port, "off")
    assert outcome.succeeded, outcome.message
    assert server.connections == 1
    statement = statement_of(source, require_hermetic=False)
    annotations, record = isolation_record(statement, "build")
    assert annotations["hermetic"] is False and annotations["status"] == "not-declared"
    assert record["evidence"] == []
    _, stderr = verify(source, "--require-hermetic")
    assert "step build: not recorded as network-isolated" in stderr


FORGED_RUN_RECORD = {
    "mediaType": "application/vnd.attest-step.network-evidence.v1+json",
    "producer": {"name": "attest-step", "version": "0.1.0", "verb": "run"},
    "step": "build",
    "isolation": {
        "network": "none",
        "namespaces": ["user", "mnt", "pid", "net"],
        "nestedUserNamespace": True,
        "evidenceHidden": ["/workspace/attest-evidence"],
    },
    "parentNetns": "net:[1]",
    "command": {"argv": ["FORGED"], "exitCode": 0, "netns": "net:[2]"},
    "views": [
        {"observer": o, "at": a, "netns": "net:[2]", "interfaces": [{"name": "lo"}]}
        for o, a in [
            ("attest-step run init (inside, PID 1)", "before-command"),
            ("attest-step run (outside, /proc/<pid>/net)", "before-command"),
            ("attest-step run (outside, /proc/<pid>/net)", "after-process-tree-ended"),
        ]
    ],
    "startedOn": "2026-01-01T00:00:00Z",
    "finishedOn": "2026-01-01T00:00:01Z",
    "evidenceVolume": {"dir": "/workspace/attest-evidence", "file": "build.json"},
}


def test_attack_build_replaces_its_evidence(
    built: None,  # noqa: F811
    tmp_path: Path,
    server: CountingServer,
) -> None:
    """The build (under attest-step run, the Task's default) moves the evidence directory
    away and writes forged records everywhere it can think of. None is taken as observed:
    the only observed record is the isolating parent's, with the real command line."""
    forged = json.dumps(FORGED_RUN_RECORD)
    script = (
        BUILD
        + "mv .attest/evidence .attest/moved 2>/dev/null || true\n"
        + "mkdir -p .attest/evidence\n"
        + "for f in .attest/evidence/build-run.json .attest/evidence/build-probe.json "
        + "/workspace/attest-evidence/build.json /workspace/attest-evidence/build.2.json; do\n"
        + f"  printf '%s' '{forged}' >\"$f\" 2>/dev/null || echo \"cannot write $f\"\n"
        + "done\n"
        + "mv /workspace/attest-evidence /workspace/moved 2>/dev/null || echo 'cannot move'\n"
    )
    outcome, source = run_build(tmp_path, script, server.port, "run")
    assert outcome.succeeded, outcome.message
    (log,) = [v for k, v in outcome.logs.items() if k.endswith("-step-build")]
    assert "cannot write /workspace/attest-evidence/build.json" in log
    assert "cannot move" in log
    statement = statement_of(source, require_hermetic=True)
    _, record = isolation_record(statement, "build")
    observed = [e for e in record["evidence"] if e["source"] == "observed"]
    (genuine,) = observed
    assert genuine["record"]["command"]["argv"] == ["sh", "build.sh"]
    assert genuine["origin"] == "evidence volume /workspace/attest-evidence, file build.json"
    forged_entries = [
        e
        for e in record["evidence"]
        if (e["record"].get("command") or {}).get("argv") == ["FORGED"]
    ]
    assert forged_entries, "the forged probe file in the workspace was not even read"
    assert {e["source"] for e in forged_entries} == {"reported"}


def verify(source: Path, *extra: str) -> tuple[int, str]:
    pub = source.parent / "cosign.pub"
    pub.write_bytes(catalog_test_public_key())
    proc = subprocess.run(
        [
            ATTEST_STEP,
            *("verify-attestation", "--key", str(pub)),
            *("--envelope", ".attest/provenance.dsse.json", "--subject-path", "out"),
            *extra,
        ],
        cwd=source,
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.returncode, proc.stderr
