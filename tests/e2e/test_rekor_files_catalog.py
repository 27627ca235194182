"""The catalog logs file attestations: hermetic-build's REKOR_URL, verify-provenance's
BUNDLE_PATH with TRUSTED_ROOT, and the hermetic-build Pipeline passing both on.

Local only, like tests/e2e/test_rekor_catalog.py (whose helpers this reuses): the real
catalog's Pipeline and Tasks with the local executor, a real Rekor v2 log (rekor-tiles v2.3.0,
tests/fixtures/rekor.py, on the host's 127.0.0.1, which the executor's steps share), the
throwaway key pair of the hermetic-build Pipeline's tests/resources.yaml and its seed source.

- the Pipeline with REKOR_URL and TRUSTED_ROOT: the build's envelope is logged (one entry),
  its bundle (.attest/provenance.sigstore.json) carries the entry, REKOR_URL is an
  externalParameter, the gate passes with the log checked, and real cosign v3
  ``verify-blob-attestation --bundle --trusted-root`` accepts the bundle for the built file;
- hermetic-build without REKOR_URL: its bundle has no entry, and verify-provenance with
  TRUSTED_ROOT refuses it (as does cosign); without TRUSTED_ROOT the gate passes as before;
- the bundle missing (BUNDLE_PATH naming no file, or TRUSTED_ROOT with an envelope and no
  BUNDLE_PATH): the gate fails closed with one line naming the param; BUNDLE_PATH with an
  image is refused;
- the log down: the build's attest step fails (exit 75) with the envelope on disk and no bundle.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.executor import Executor, RunOutcome
from tests.e2e.executor.catalog import CATALOG, claim, config_map, executor_for, task_run
from tests.e2e.test_executor import built  # noqa: F401  (fixture)
from tests.e2e.test_rekor_catalog import ATTEST_STEP, step_log
from tests.fixtures.rekor import LocalRekor
from tests.fixtures.tools import cosign_v3, require_tool

pytestmark = [pytest.mark.e2e, pytest.mark.netns, pytest.mark.cosign]

TESTS = CATALOG / "pipeline" / "hermetic-build" / "0.1" / "tests"
TRUST = "rekor-trust"  # the ConfigMap with cosign.pub and trusted_root.json
SOURCE = "file:///workspace/seed"  # what git-source records for the seed workspace
ENVELOPE = ".attest/provenance.dsse.json"
BUNDLE = ".attest/provenance.sigstore.json"  # where hermetic-build writes the bundle
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def make_executor(tmp_path: Path, rekor: LocalRekor) -> Executor:
    ex = executor_for(TESTS, tmp_path / "run")
    public_key = ex.cluster.configmaps["signing-public-key"]["cosign.pub"]
    root = json.dumps(rekor.trusted_root_doc()).encode()
    ex.cluster.configmaps[TRUST] = {"cosign.pub": public_key, "trusted_root.json": root}
    (tmp_path / "cosign.pub").write_bytes(public_key)
    rekor.trusted_root(tmp_path / "trusted_root.json")
    return ex


def seed_source(ex: Executor, claim: str) -> Path:
    """A workspace holding the seed ConfigMap's files (build.sh, deps.lock, ...)."""
    source = ex.cluster.claim_dir(claim)
    for name, data in ex.cluster.configmaps["source-seed"].items():
        (source / name).write_bytes(data if isinstance(data, bytes) else str(data).encode())
    return source


def build(ex: Executor, name: str, **params: str) -> tuple[RunOutcome, Path]:
    """A hermetic-build TaskRun over a copy of the seed source."""
    source = seed_source(ex, f"source-{name}")  # deps.lock names /workspace/source/...
    given = {"CHAINS-GIT_URL": SOURCE, "CHAINS-GIT_COMMIT": COMMIT, **params}
    workspaces = {"source": claim(f"source-{name}")}
    return ex.run(task_run(f"hermetic-build-{name}", "hermetic-build", given, workspaces)), source


def gate(ex: Executor, name: str, artifacts: str, **params: str) -> RunOutcome:
    """verify-provenance on the envelope in workspace ``artifacts``, the trust ConfigMap
    bound."""
    require_tool("opa")  # the Task's rego step always runs
    given = {
        "ENVELOPE_PATH": ENVELOPE,
        "SUBJECT_PATHS": "out",
        "REQUIRE_HERMETIC": "true",
        "ALLOWED_SOURCE_REPOS": SOURCE,
        **params,
    }
    workspaces = {"public-key": config_map(TRUST), "artifacts": claim(artifacts)}
    return ex.run(task_run(f"verify-provenance-{name}", "verify-provenance", given, workspaces))


def cosign_verify_blob(
    tmp_path: Path, source: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    """Real cosign v3 on the bundle, with the built file as the artifact."""
    return subprocess.run(
        [str(cosign_v3()), "verify-blob-attestation", "--key", str(tmp_path / "cosign.pub"),
         "--trusted-root", str(tmp_path / "trusted_root.json"), "--bundle", str(source / BUNDLE),
         "--type", "slsaprovenance1", *extra, str(source / "out" / "app.txt")],
        capture_output=True, text=True, check=False, timeout=120, stdin=subprocess.DEVNULL,
        env={**os.environ, "SIGSTORE_NO_CACHE": "1", "TUF_ROOT": str(tmp_path / "no-tuf")},
    )  # fmt: skip


def verified(tmp_path: Path, source: Path, *extra: str) -> dict[str, Any]:
    """attest-step verify-attestation --bundle (and --envelope) on the build's files."""
    proc = subprocess.run(
        [ATTEST_STEP, "verify-attestation", "--key", str(tmp_path / "cosign.pub"),
         "--envelope", ENVELOPE, "--bundle", BUNDLE, "--subject-path", "out",
         "--output", "json", *extra],
        cwd=source, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def test_the_pipeline_logs_the_file_attestation_and_its_gate_requires_the_entry(
    built: None,  # noqa: F811
    tmp_path: Path,
    rekor: LocalRekor,
) -> None:
    require_tool("opa")
    ex = make_executor(tmp_path, rekor)
    run = {
        "apiVersion": "tekton.dev/v1",
        "kind": "PipelineRun",
        "metadata": {"name": "hermetic-build-logged"},
        "spec": {
            "pipelineRef": {"name": "hermetic-build"},
            "params": [
                {"name": "ALLOWED_SOURCE_REPOS", "value": SOURCE},
                {"name": "REKOR_URL", "value": rekor.url},
                {"name": "TRUSTED_ROOT", "value": "trusted_root.json"},
            ],
            "taskRunTemplate": {"serviceAccountName": "attest-step-builder"},
            "workspaces": [
                {"name": "source", "persistentVolumeClaim": {"claimName": "source-logged"}},
                {"name": "seed", "configMap": {"name": "source-seed"}},
                {"name": "public-key", "configMap": {"name": TRUST}},
            ],
        },
    }
    outcome = ex.run(run)
    assert outcome.succeeded, f"{outcome.message}\n{outcome.logs}"
    assert outcome.result("VERIFIED") == "true"
    assert outcome.result("REASON", task="verify") == (
        f"verified {ENVELOPE} and its bundle {BUNDLE} (transparency log entry checked)"
    )
    assert f"transparency log entry: {rekor.url} index 0" in step_log(outcome, "verify")
    assert rekor.tree_size() == 1  # the envelope, once
    source = ex.cluster.claim_dir("source-logged")
    result = verified(tmp_path, source, "--trusted-root", str(tmp_path / "trusted_root.json"))
    assert result["tlog"]["log"] == rekor.url
    params = result["statement"]["predicate"]["buildDefinition"]["externalParameters"]["params"]
    assert params["REKOR_URL"] == rekor.url
    proc = cosign_verify_blob(tmp_path, source)
    assert proc.returncode == 0, f"cosign verify-blob-attestation: {proc.stderr[-1500:]}"
    assert "Verified OK" in proc.stderr


def test_an_unlogged_file_attestation_is_refused_with_a_trusted_root_only(
    built: None,  # noqa: F811
    tmp_path: Path,
    rekor: LocalRekor,
) -> None:
    ex = make_executor(tmp_path, rekor)
    outcome, source = build(ex, "unlogged")
    assert outcome.succeeded, f"{outcome.message}\n{outcome.logs}"
    assert rekor.tree_size() == 0
    assert (source / BUNDLE).is_file()  # written without a log too, with no entry
    params = verified(tmp_path, source)["statement"]["predicate"]["buildDefinition"][
        "externalParameters"
    ]["params"]
    assert params["REKOR_URL"] == ""
    refused_by_cosign = cosign_verify_blob(tmp_path, source)
    assert refused_by_cosign.returncode != 0, "cosign accepted a bundle with no log entry"
    # the same bundle with the log not checked: refused above for the missing entry only
    proc = cosign_verify_blob(tmp_path, source, "--insecure-ignore-tlog")
    assert proc.returncode == 0, f"{refused_by_cosign.stderr[-800:]}\n{proc.stderr[-800:]}"

    refused = gate(ex, "unlogged", "source-unlogged", BUNDLE_PATH=BUNDLE,
                   TRUSTED_ROOT="trusted_root.json")  # fmt: skip
    assert not refused.succeeded
    assert refused.result("VERIFIED") == "false"
    reason = refused.result("REASON")
    assert reason.startswith("attestation:"), reason
    assert "no transparency log entry" in reason, reason
    # empty TRUSTED_ROOT: the bundle must hold the envelope, the log is not checked
    before = gate(ex, "unlogged-no-root", "source-unlogged", BUNDLE_PATH=BUNDLE)
    assert before.succeeded, f"{before.message}\n{before.logs}"
    assert before.result("REASON") == f"verified {ENVELOPE} and its bundle {BUNDLE}"


@pytest.mark.parametrize(
    ("name", "params", "reason"),
    [
        ("no-bundle-path", {},
         "TRUSTED_ROOT is set but a DSSE envelope file alone carries no transparency log entry: "
         "set BUNDLE_PATH"),
        ("no-bundle-file", {"BUNDLE_PATH": ".attest/other.sigstore.json"},
         "BUNDLE_PATH: no file .attest/other.sigstore.json in the artifacts workspace"),
        # an image's bundles are in the registry (refused before any registry is asked)
        ("bundle-with-image", {"IMAGE_URL": "registry.invalid/app",
                               "IMAGE_DIGEST": "sha256:" + "a" * 64, "BUNDLE_PATH": BUNDLE},
         "BUNDLE_PATH is for an envelope file; an image's bundles are in the registry"),
    ],
)  # fmt: skip
def test_a_missing_or_misplaced_bundle_fails_closed(
    built: None,  # noqa: F811
    tmp_path: Path,
    rekor: LocalRekor,
    name: str,
    params: dict[str, str],
    reason: str,
) -> None:
    ex = make_executor(tmp_path, rekor)
    outcome, _ = build(ex, name, REKOR_URL=rekor.url)
    assert outcome.succeeded, f"{outcome.message}\n{outcome.logs}"
    refused = gate(ex, name, f"source-{name}", TRUSTED_ROOT="trusted_root.json", **params)
    assert not refused.succeeded
    assert refused.result("VERIFIED") == "false"
    assert refused.result("REASON").startswith(reason), refused.result("REASON")


def test_with_the_log_down_the_build_fails_and_writes_no_bundle(
    built: None,  # noqa: F811
    tmp_path: Path,
    rekor: LocalRekor,
) -> None:
    ex = make_executor(tmp_path, rekor)
    rekor.stop()
    outcome, source = build(ex, "log-down", REKOR_URL=rekor.url)
    assert not outcome.succeeded
    assert "gave up after 4 attempt(s)" in step_log(outcome, "attest"), outcome.logs
    steps = {s["name"]: s for s in outcome.obj["status"]["steps"]}
    assert steps["attest"]["terminated"]["exitCode"] == 75
    assert (source / ENVELOPE).is_file()  # signed output on disk before any network
    assert not (source / BUNDLE).exists()
