"""`make demo` (hack/demo.py) end to end, into a temporary directory: both pipelines run,
every verification (attest-step and real cosign) passes, the summary says what it must."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.e2e.executor.render import REPO_ROOT
from tests.e2e.test_executor import built  # noqa: F401  (fixture)
from tests.fixtures.tools import cosign_v3, require_tool

pytestmark = [pytest.mark.e2e, pytest.mark.netns, pytest.mark.registry, pytest.mark.slow]

DEMO = REPO_ROOT / "hack" / "demo.py"


def load_demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("attest_step_demo", DEMO)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_demo_runs_both_pipelines_and_verifies(built: None, tmp_path: Path) -> None:  # noqa: F811
    cosign_v3()
    require_tool("docker-registry", hint="apt-get install docker-registry")
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, str(DEMO), "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    summary = proc.stdout
    assert proc.returncode == 0, summary + proc.stderr
    assert "FAILED" not in summary
    assert len(summary.splitlines()) <= 30
    # 1. hermetic: the output's digest, the isolation record, both verifications.
    app = (out / "hermetic-workspace" / "out" / "app.txt").read_bytes()
    assert f"built: out/app.txt  sha256:{hashlib.sha256(app).hexdigest()}" in summary
    assert "hermetic yes" in summary
    assert (
        "declared: declared hermetic by the Task spec (--declare-hermetic "
        "build/run:RUN_ISOLATED=true" in summary
    )
    # The Task's default isolation, attest-step run, is observed from outside the build, and
    # its record read from the evidence volume, which the build cannot reach.
    assert (
        "observed: attest-step run, evidence volume /workspace/attest-evidence, file build.json"
        in summary
    )
    assert "reported: none" in summary
    assert (
        "attest-step verify-attestation --require-hermetic: OK; "
        "cosign verify-blob-attestation: OK" in summary
    )
    # 2. kaniko-chains: image digest, tags, the four verifications, the cosign commands.
    digest = re.search(r"digest: sha256:([0-9a-f]{64}) \(subject", summary)
    assert digest, summary
    assert f"sha256-{digest.group(1)[:6]}….sig = signature" in summary
    assert f"sha256-{digest.group(1)[:6]}….att = attestation" in summary
    assert (
        "attest-step verify: OK; attest-step verify-attestation: OK; cosign verify: OK; "
        "cosign verify-attestation: OK" in summary
    )
    assert re.search(r"\$ cosign verify --key \S+cosign.pub --insecure-ignore-tlog", summary)
    assert "$ cosign verify-attestation --key" in summary
    assert (out / "run.log").stat().st_size > 0
    # The PipelineRun's context reaches the attest step through its TaskRun's labels
    # (issue 14, D3): a Task cannot see $(context.pipelineRun.*).
    envelope = json.loads(
        (out / "hermetic-workspace" / ".attest" / "provenance.dsse.json").read_bytes()
    )
    predicate = json.loads(base64.b64decode(envelope["payload"]))["predicate"]
    build = predicate["buildDefinition"]
    assert build["externalParameters"]["pipeline"] == {"name": "hermetic-build"}
    pipeline_run = build["internalParameters"]["tekton"]["pipelineRun"]
    assert pipeline_run["name"] and pipeline_run["uid"], pipeline_run


def test_demo_check_reports_a_failed_verification(tmp_path: Path) -> None:
    """A verification that fails (here: another key pair) is recorded, so main() exits 1."""
    cosign = cosign_v3()
    demo_module = load_demo()
    keys = tmp_path / "keys"
    keys.mkdir()
    env = {**os.environ, "COSIGN_PASSWORD": "x"}
    subprocess.run(
        [str(cosign), "generate-key-pair"], cwd=keys, env=env, check=True, capture_output=True
    )
    blob = tmp_path / "blob.txt"
    blob.write_text("blob\n")
    envelope = tmp_path / "envelope.json"
    subprocess.run(
        [
            str(Path(sys.executable).parent / "attest-step"),
            "attest",
            "--key",
            str(keys / "cosign.key"),
            "--subject-path",
            str(blob),
            "--no-upload",
            "--output-file",
            str(envelope),
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    other = tmp_path / "other"
    other.mkdir()
    subprocess.run(
        [str(cosign), "generate-key-pair"], cwd=other, env=env, check=True, capture_output=True
    )
    with (tmp_path / "log").open("w") as log:
        for key_dir, expect in ((keys, "OK"), (other, "FAILED")):
            demo = demo_module.Demo(log, tmp_path, key_dir, env, cosign)
            argv = [
                "cosign",
                "verify-blob-attestation",
                "--key",
                str(key_dir / "cosign.pub"),
                "--signature",
                str(envelope),
                "--type",
                "slsaprovenance1",
                "--insecure-ignore-tlog",
                str(blob),
            ]
            assert demo.cosign_check(argv) == f"cosign verify-blob-attestation: {expect}"
            assert bool(demo.failures) == (expect == "FAILED")
