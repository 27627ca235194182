"""The catalog with a transparency log, locally: REKOR_URL and TRUSTED_ROOT.

Local only (the catalog's own tests/ must succeed on a cluster, which has no log): TaskRuns
of the real catalog Tasks, built here, with the real registry, a real Rekor v2 log
(rekor-tiles v2.3.0, tests/fixtures/rekor.py, on the host's 127.0.0.1, which the executor's
steps share) and the throwaway key pair of kaniko-chains' tests/resources.yaml. kaniko is the
LOCAL STAND-IN (tests/e2e/executor/kaniko_standin.py).

- kaniko-chains with REKOR_URL: the signature and the attestation are logged (two entries),
  the Task's REKOR_URL is an externalParameter, real cosign v3 ``verify`` and
  ``verify-attestation --trusted-root`` accept the stored bundles, and verify-provenance with
  TRUSTED_ROOT passes;
- TRUSTED_ROOT naming no file of the workspace, or given with an envelope file and no bundle:
  refused (the bundle of a file attestation: tests/e2e/test_rekor_files_catalog.py);
- kaniko-chains without REKOR_URL: cosign with the trusted root refuses, verify-provenance
  with TRUSTED_ROOT refuses (VERIFIED "false"), and without TRUSTED_ROOT it passes as before;
- the log down: the build's attest step fails (exit 75) instead of storing unlogged output;
- the StepAction passes TLOG_TIMEOUT on, and refuses a REKOR_URL it would not use (an image
  not uploaded, a file envelope without BUNDLE_FILE), a TLOG_TIMEOUT without a log and a
  BUNDLE_FILE with an image or without OUTPUT_FILE.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.executor import Executor, RunOutcome
from tests.e2e.executor.catalog import CATALOG, claim, config_map, executor_for, task_run
from tests.e2e.test_executor import built  # noqa: F401  (fixture)
from tests.fixtures.oci_image import push_image
from tests.fixtures.registry import LocalRegistry
from tests.fixtures.rekor import LocalRekor
from tests.fixtures.tools import cosign_v3, require_tool

pytestmark = [pytest.mark.e2e, pytest.mark.netns, pytest.mark.registry, pytest.mark.cosign]

TESTS = CATALOG / "task" / "kaniko-chains" / "0.1" / "tests"
ATTEST_STEP = str(Path(sys.executable).parent / "attest-step")
TRUST = "rekor-trust"  # the ConfigMap with cosign.pub and trusted_root.json
SOURCE = "https://example.invalid/app.git"  # recorded by the build, required by the gate


def make_executor(tmp_path: Path, registry: LocalRegistry, rekor: LocalRekor) -> Executor:
    ex = executor_for(TESTS, tmp_path / "run", registry=registry.host)
    public_key = ex.cluster.configmaps["signing-public-key"]["cosign.pub"]
    root = json.dumps(rekor.trusted_root_doc()).encode()
    ex.cluster.configmaps[TRUST] = {"cosign.pub": public_key, "trusted_root.json": root}
    (tmp_path / "cosign.pub").write_bytes(public_key)
    rekor.trusted_root(tmp_path / "trusted_root.json")
    return ex


def build(ex: Executor, repository: str, name: str, **params: str) -> RunOutcome:
    """A kaniko-chains TaskRun of a one-file image (its content differs by ``name``) pushed
    to ``repository`` with tag 0.1."""
    source = ex.cluster.claim_dir(f"source-{name}")
    (source / "hello.txt").write_text(f"hello from {name}\n")
    (source / "Dockerfile").write_text("FROM scratch\nCOPY hello.txt /hello.txt\n")
    given = {
        "IMAGE": f"{repository}:0.1",
        "EXTRA_ARGS": ["--insecure", "--skip-tls-verify"],
        "ALLOW_INSECURE_REGISTRY": "true",
        "CHAINS-GIT_URL": SOURCE,
        "CHAINS-GIT_COMMIT": "0123456789abcdef0123456789abcdef01234567",
        **params,
    }
    workspaces = {"source": claim(f"source-{name}")}
    return ex.run(task_run(f"kaniko-chains-{name}", "kaniko-chains", given, workspaces))


def image_of(outcome: RunOutcome) -> str:
    assert outcome.succeeded, f"{outcome.message}\n{outcome.logs}"
    repository = str(outcome.result("IMAGE_URL")).rsplit(":", 1)[0]
    return f"{repository}@{outcome.result('IMAGE_DIGEST')}"


def gate(ex: Executor, name: str, image: str, **params: str) -> RunOutcome:
    """verify-provenance on ``image`` with the trust ConfigMap as its public-key workspace."""
    require_tool("opa")  # the Task's rego step always runs
    repository, digest = image.split("@")
    given = {
        "IMAGE_URL": repository,
        "IMAGE_DIGEST": digest,
        "ALLOW_INSECURE_REGISTRY": "true",
        "ALLOWED_SOURCE_REPOS": SOURCE,
        **params,
    }
    workspaces = {"public-key": config_map(TRUST)}
    return ex.run(task_run(f"verify-provenance-{name}", "verify-provenance", given, workspaces))


def cosign(verb: str, image: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Real cosign v3 with a trusted root naming only the test log."""
    extra = ["--type", "slsaprovenance1"] if verb == "verify-attestation" else []
    return subprocess.run(
        [str(cosign_v3()), verb, *extra, "--key", str(tmp_path / "cosign.pub"),
         "--trusted-root", str(tmp_path / "trusted_root.json"), "--allow-insecure-registry",
         image],
        capture_output=True, text=True, check=False, timeout=120, stdin=subprocess.DEVNULL,
        env={**os.environ, "SIGSTORE_NO_CACHE": "1", "TUF_ROOT": str(tmp_path / "no-tuf")},
    )  # fmt: skip


def recorded_params(image: str, tmp_path: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [ATTEST_STEP, "verify-attestation", "--key", str(tmp_path / "cosign.pub"),
         "--type", "slsaprovenance1", "--allow-insecure-registry", "--output", "json", image],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    statement = json.loads(proc.stdout)["statement"]
    params: dict[str, Any] = statement["predicate"]["buildDefinition"]["externalParameters"][
        "params"
    ]
    return params


def step_log(outcome: RunOutcome, step: str) -> str:
    return "\n".join(v for k, v in outcome.logs.items() if k.endswith(f"step-{step}"))


def test_a_logged_build_passes_cosign_and_the_gate_with_a_trusted_root(
    built: None,  # noqa: F811
    tmp_path: Path,
    registry: LocalRegistry,
    rekor: LocalRekor,
) -> None:
    ex = make_executor(tmp_path, registry, rekor)
    image = image_of(build(ex, registry.repo("rekor-logged"), "logged", REKOR_URL=rekor.url))
    assert rekor.tree_size() == 2  # the image signature and the attestation
    assert recorded_params(image, tmp_path)["REKOR_URL"] == rekor.url
    for verb in ("verify", "verify-attestation"):
        proc = cosign(verb, image, tmp_path)
        assert proc.returncode == 0, f"cosign {verb}: {proc.stderr[-1500:]}"

    outcome = gate(ex, "logged", image, TRUSTED_ROOT="trusted_root.json")
    assert outcome.succeeded, f"{outcome.message}\n{outcome.logs}"
    assert outcome.result("VERIFIED") == "true"
    assert outcome.result("REASON") == f"verified {image} (transparency log entries checked)"
    assert f"transparency log entry: {rekor.url} index" in step_log(outcome, "verify")


def test_an_unlogged_build_is_refused_with_a_trusted_root_only(
    built: None,  # noqa: F811
    tmp_path: Path,
    registry: LocalRegistry,
    rekor: LocalRekor,
) -> None:
    ex = make_executor(tmp_path, registry, rekor)
    image = image_of(build(ex, registry.repo("rekor-unlogged"), "unlogged"))
    assert rekor.tree_size() == 0
    assert recorded_params(image, tmp_path)["REKOR_URL"] == ""
    for verb in ("verify", "verify-attestation"):
        proc = cosign(verb, image, tmp_path)
        assert proc.returncode != 0, f"cosign {verb} accepted an unlogged bundle"

    refused = gate(ex, "unlogged", image, TRUSTED_ROOT="trusted_root.json")
    assert not refused.succeeded
    assert refused.result("VERIFIED") == "false"
    reason = refused.result("REASON")
    assert reason.startswith("image signature:"), reason
    assert "no transparency log entry" in reason, reason
    # empty TRUSTED_ROOT: today's gate, which does not check the log
    before = gate(ex, "unlogged-no-root", image)
    assert before.succeeded, f"{before.message}\n{before.logs}"
    assert before.result("REASON") == f"verified {image}"


def test_a_trusted_root_missing_or_for_an_envelope_file_fails_closed(
    built: None,  # noqa: F811
    tmp_path: Path,
    registry: LocalRegistry,
    rekor: LocalRekor,
) -> None:
    ex = make_executor(tmp_path, registry, rekor)
    image = image_of(build(ex, registry.repo("rekor-no-root"), "no-root-file", REKOR_URL=rekor.url))
    outcome = gate(ex, "no-root-file", image, TRUSTED_ROOT="other_root.json")
    assert not outcome.succeeded
    assert outcome.result("VERIFIED") == "false"
    assert outcome.result("REASON") == (
        "TRUSTED_ROOT: no file other_root.json in the public-key workspace"
    )
    # an envelope file carries no entry: TRUSTED_ROOT with ENVELOPE_PATH alone cannot pass
    require_tool("opa")
    envelope_mode = ex.run(
        task_run(
            "verify-provenance-envelope-root",
            "verify-provenance",
            {
                "ENVELOPE_PATH": ".attest/provenance.dsse.json",
                "ALLOWED_SOURCE_REPOS": SOURCE,
                "TRUSTED_ROOT": "trusted_root.json",
            },
            {"public-key": config_map(TRUST)},
        )
    )
    assert not envelope_mode.succeeded
    assert envelope_mode.result("VERIFIED") == "false"
    assert "a DSSE envelope file alone carries no transparency log entry" in (
        envelope_mode.result("REASON")
    )


def test_with_the_log_down_the_build_fails_instead_of_storing_unlogged_output(
    built: None,  # noqa: F811
    tmp_path: Path,
    registry: LocalRegistry,
    rekor: LocalRekor,
) -> None:
    ex = make_executor(tmp_path, registry, rekor)
    rekor.stop()
    repository = registry.repo("rekor-log-down")
    outcome = build(ex, repository, "log-down", REKOR_URL=rekor.url)
    assert not outcome.succeeded
    log = step_log(outcome, "attest")
    assert "gave up after 4 attempt(s)" in log, outcome.logs
    steps = {s["name"]: s for s in outcome.obj["status"]["steps"]}
    assert steps["attest"]["terminated"]["exitCode"] == 75
    # kaniko pushed the image; no signature or attestation was stored for it
    path = repository.split("/", 1)[1]
    request = urllib.request.Request(
        f"{registry.url}/v2/{path}/manifests/0.1",
        method="HEAD",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        image = f"{repository}@{answer.headers['Docker-Content-Digest']}"
    with urllib.request.urlopen(f"{registry.url}/v2/{path}/tags/list", timeout=30) as tags:
        assert json.load(tags)["tags"] == ["0.1"]  # no .sig/.att tag, no referrers fallback tag
    for verb in ("verify", "verify-attestation"):
        proc = subprocess.run(
            [ATTEST_STEP, verb, "--key", str(tmp_path / "cosign.pub"),
             "--allow-insecure-registry", image],
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
        assert proc.returncode != 0, f"{verb}: {proc.stdout}"


def run_stepaction(ex: Executor, name: str, params: dict[str, str]) -> tuple[RunOutcome, Path]:
    """A Task of one step, the attest StepAction with ``params``, over a workspace holding
    out.txt; the run's outcome and that workspace."""
    work = ex.cluster.claim_dir(f"work-{name}")
    (work / "out.txt").write_text("an output\n")
    given = {
        "WORKING_DIR": "$(workspaces.work.path)",
        "OUTPUT_FILE": "out.dsse.json",
        "ALLOW_INSECURE_REGISTRY": "true",
        **params,
    }
    taskrun = {
        "apiVersion": "tekton.dev/v1",
        "kind": "TaskRun",
        "metadata": {"name": f"attest-{name}"},
        "spec": {
            "serviceAccountName": "attest-step-builder",
            "taskSpec": {
                "workspaces": [{"name": "work"}],
                "volumes": [
                    {"name": "attest-tmp", "emptyDir": {}},
                    {"name": "signing-secrets", "secret": {"secretName": "signing-secrets"}},
                ],
                "steps": [
                    {
                        "name": "attest",
                        "ref": {"name": "attest"},
                        "params": [{"name": k, "value": v} for k, v in given.items()],
                    }
                ],
            },
            "workspaces": [
                {"name": "work", "persistentVolumeClaim": {"claimName": f"work-{name}"}}
            ],
        },
    }
    return ex.run(taskrun), work


def test_tlog_timeout_reaches_the_cli(
    built: None,  # noqa: F811
    tmp_path: Path,
    registry: LocalRegistry,
    rekor: LocalRekor,
) -> None:
    """TLOG_TIMEOUT becomes --tlog-timeout: the error names that deadline."""
    ex = make_executor(tmp_path, registry, rekor)
    pushed = push_image(registry.repo("rekor-stepaction"))
    rekor.stop()
    params = {"IMAGE_URL": pushed.repository, "IMAGE_DIGEST": pushed.digest}
    outcome, _ = run_stepaction(
        ex, "timeout", {**params, "REKOR_URL": rekor.url, "TLOG_TIMEOUT": "2"}
    )
    assert not outcome.succeeded
    assert "(deadline 2s)" in step_log(outcome, "attest"), outcome.logs


# An image that need not exist: every refusal comes before any registry or log.
IMAGE = {"IMAGE_URL": "registry.invalid/app", "IMAGE_DIGEST": "sha256:" + "a" * 64}


@pytest.mark.parametrize(
    ("name", "params", "refusal"),
    [
        # a file only: the entry needs a bundle file, so the step asks for one
        ("file-only", {"SUBJECT_PATHS": "out.txt", "UPLOAD": "false", "REKOR_URL": "LOG"},
         "REKOR_URL is set with no IMAGE_URL: the OUTPUT_FILE envelope is logged into a "
         "Sigstore bundle file; set OUTPUT_FILE and BUNDLE_FILE"),
        ("file-no-output", {"SUBJECT_PATHS": "out.txt", "OUTPUT_FILE": "", "REKOR_URL": "LOG"},
         "set OUTPUT_FILE and BUNDLE_FILE"),
        # an image not uploaded: the CLI would log nothing
        ("image-no-upload", {**IMAGE, "UPLOAD": "false", "REKOR_URL": "LOG"},
         "REKOR_URL is set with IMAGE_URL but UPLOAD is not \"true\""),
        ("bundle-with-image", {**IMAGE, "BUNDLE_FILE": "out.sigstore.json", "REKOR_URL": "LOG"},
         "BUNDLE_FILE is for an attestation written only to a file"),
        ("bundle-no-output", {"SUBJECT_PATHS": "out.txt", "OUTPUT_FILE": "",
                              "BUNDLE_FILE": "out.sigstore.json"},
         "BUNDLE_FILE needs OUTPUT_FILE"),
        ("timeout-alone", {"SUBJECT_PATHS": "out.txt", "UPLOAD": "false", "TLOG_TIMEOUT": "5"},
         "TLOG_TIMEOUT is set but REKOR_URL is empty"),
    ],
)  # fmt: skip
def test_the_stepaction_refuses_log_params_it_would_not_use(
    built: None,  # noqa: F811
    tmp_path: Path,
    registry: LocalRegistry,
    rekor: LocalRekor,
    name: str,
    params: dict[str, str],
    refusal: str,
) -> None:
    ex = make_executor(tmp_path, registry, rekor)
    given = {k: rekor.url if v == "LOG" else v for k, v in params.items()}
    outcome, work = run_stepaction(ex, name, given)
    assert not outcome.succeeded
    assert refusal in step_log(outcome, "attest"), outcome.logs
    assert not (work / "out.dsse.json").exists()
    assert not (work / "out.sigstore.json").exists()
    assert rekor.tree_size() == 0
