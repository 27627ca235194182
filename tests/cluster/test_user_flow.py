"""docs/catalog.md's "On a cluster" steps, run as a user runs them: real ``tkn``, real cosign.

One namespace, set up exactly as the docs say (catalog applied with ``kubectl apply``, Pod
Security label, ``cosign generate-key-pair k8s://NS/signing-secrets``, a ServiceAccount with no
token), then:

- ``tkn task start git-source`` fills a PVC, ``tkn task start kaniko-chains`` builds, pushes,
  signs and attests from it; ``cosign verify`` / ``verify-attestation --key k8s://NS/...``;
- ``tkn pipeline start kaniko-chains`` runs the whole flow (source, build, verify, report);
- the deploy gate, ``tkn task start verify-provenance``, passes on that image and fails when
  the policy requires a hermetic build (kaniko's build is not one);
- Tekton Chains, beside us, signs the same TaskRun (``slsa/v1``, OCI storage): its signature and
  attestation verify with the Chains key, and both statements are kept for
  ``hack/cluster/chains_compare.py`` (docs/chains-comparison.md).

The commands are the docs' own, with this cluster's registry (plain HTTP, hence
``ALLOW_INSECURE_REGISTRY`` and cosign's ``--allow-insecure-registry``).
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.conftest import CACHE, COSIGN, REGISTRY, STATE, Cluster
from tests.cluster.test_catalog_on_cluster import (
    CATALOG,
    PASSWORD,
    local_images,
    localize,
    pods_of,
    secret_mounts_outside_attest,
)
from tests.fixtures.tools import REPO_ROOT

NS = "build"
DOCS = REPO_ROOT / "docs" / "catalog.md"
RESULTS = CACHE / "results"
# The files docs/catalog.md step 1 applies, in its order.
CATALOG_FILES = [
    "stepaction/attest/0.1/attest.yaml",
    "task/git-source/0.1/git-source.yaml",
    "task/kaniko-chains/0.1/kaniko-chains.yaml",
    "task/verify-provenance/0.1/verify-provenance.yaml",
    "pipeline/kaniko-chains/0.1/kaniko-chains.yaml",
]
SEED = CATALOG / "pipeline" / "kaniko-chains" / "0.1" / "tests" / "resources.yaml"
INSECURE = ["-p", "ALLOW_INSECURE_REGISTRY=true"]
KANIKO_ARGS = ["-p", "EXTRA_ARGS=--insecure,--skip-tls-verify"]


@dataclass(frozen=True)
class Flow:
    cluster: Cluster
    work: Path

    def tkn(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        proc = self.cluster.tool("tkn", "-n", NS, *args, timeout=timeout)
        assert proc.returncode == 0, f"tkn {' '.join(args)}: {proc.stdout[-2000:]}{proc.stderr}"
        return proc

    def cosign(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.cluster.tool("cosign", *args)

    def last(self, kind: str, timeout: float = 120) -> dict[str, Any]:
        """The newest run of KIND in the namespace (what ``tkn ... describe --last`` shows),
        once it has finished: ``tkn --showlog`` returns when the logs end, which can be a
        moment before the controller records the outcome."""
        deadline = time.monotonic() + timeout
        while True:
            items = self.cluster.json(
                "-n", NS, "get", kind, "--sort-by=.metadata.creationTimestamp"
            )
            assert items["items"], f"no {kind} in {NS}"
            last: dict[str, Any] = items["items"][-1]
            if finished(last) or time.monotonic() > deadline:
                return last
            time.sleep(1)


def finished(obj: dict[str, Any]) -> bool:
    conditions = obj.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Succeeded" and c.get("status") != "Unknown" for c in conditions)


def succeeded(obj: dict[str, Any]) -> bool:
    conds = obj.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Succeeded" and c.get("status") == "True" for c in conds)


def results(obj: dict[str, Any]) -> dict[str, Any]:
    return {r["name"]: r["value"] for r in obj.get("status", {}).get("results") or []}


def image_of(obj: dict[str, Any]) -> str:
    res = results(obj)
    return f"{res['IMAGE_URL'].rsplit(':', 1)[0]}@{res['IMAGE_DIGEST']}"


@pytest.fixture(scope="module")
def flow(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    if "kaniko" not in local_images():
        pytest.skip("kaniko: no kaniko image was built (set KANIKO_SRC to a kaniko source "
                    "checkout); the tier never substitutes a stand-in for kaniko")  # fmt: skip
    work = tmp_path_factory.mktemp("user-flow")
    c = cluster
    # 1. The catalog, Tekton's set-security-context flag (tekton.sh), the namespace.
    c.kubectl("delete", "namespace", NS, "--ignore-not-found", "--wait=true", timeout=300)
    c.kubectl("create", "namespace", NS)
    for name in CATALOG_FILES:
        c.kubectl("-n", NS, "apply", "-f", "-", stdin=localize((CATALOG / name).read_text()))
    c.kubectl("label", "namespace", NS, "pod-security.kubernetes.io/enforce=baseline")
    # 2. The signing key, made by cosign straight into a Secret.
    proc = subprocess.run(
        [str(COSIGN), "generate-key-pair", f"k8s://{NS}/signing-secrets"],
        cwd=work, env={**c.env, "COSIGN_PASSWORD": PASSWORD},
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    c.kubectl(
        "-n",
        NS,
        "create",
        "configmap",
        "signing-public-key",
        f"--from-file=cosign.pub={work / 'cosign.pub'}",
    )  # fmt: skip (docs: from cwd)
    # 3. A ServiceAccount with no Secret rights and no token.
    c.kubectl("-n", NS, "create", "serviceaccount", "builder")
    c.kubectl("-n", NS, "patch", "serviceaccount", "builder",
              "-p", '{"automountServiceAccountToken": false}')  # fmt: skip
    # The build context: the catalog tests' seed, committed by git-source into a PVC.
    seed = [d for d in SEED.read_text().split("\n---\n") if "name: source-seed" in d]
    c.kubectl("-n", NS, "apply", "-f", "-", stdin=seed[0])
    pvc = work / "pvc.yaml"
    pvc.write_text(json.dumps({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "source-pvc"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "",
                 "resources": {"requests": {"storage": "100Mi"}}},
    }))  # fmt: skip
    c.kubectl("-n", NS, "apply", "-f", str(pvc))
    yield Flow(c, work)


def test_docs_name_the_commands_this_test_runs() -> None:
    """The test follows the docs; if the docs change, this test must change with them."""
    text = " ".join(DOCS.read_text().replace("\\\n", " ").split())
    for fragment in [
        "cosign generate-key-pair k8s://build/signing-secrets",
        "kubectl -n build create serviceaccount builder",
        "tkn -n build task start kaniko-chains --showlog --use-param-defaults -s builder",
        "-w name=source,claimName=source-pvc",
        "tkn -n build pipeline start kaniko-chains --showlog --use-param-defaults -s builder",
        "-w name=public-key,config=signing-public-key",
        "kubectl -n build create configmap signing-public-key --from-file=cosign.pub",
        "tkn -n build task start verify-provenance --showlog --use-param-defaults -s builder",
        "tkn -n build taskrun describe --last -o jsonpath=",
        "cosign verify --key k8s://build/signing-secrets --insecure-ignore-tlog",
        "--type slsaprovenance1",
    ]:
        assert fragment in text, f"docs/catalog.md no longer says: {fragment}"


def last_result(flow: Flow, name: str) -> str:
    """docs/catalog.md's ``last``: a result of the newest TaskRun, read by tkn."""
    jsonpath = '{.status.results[?(@.name=="%s")].value}' % name  # noqa: UP031
    return flow.tkn("taskrun", "describe", "--last", "-o", f"jsonpath={jsonpath}").stdout.strip()


def test_tkn_task_start_builds_signs_and_attests(flow: Flow) -> None:
    flow.tkn("task", "start", "git-source", "--showlog", "--use-param-defaults", "-s", "builder",
             "-w", "name=output,claimName=source-pvc",
             "-w", "name=seed,config=source-seed")  # fmt: skip
    assert succeeded(flow.last("taskruns")), "git-source did not succeed"
    image = f"{REGISTRY}/demo/app:latest"
    flow.tkn("task", "start", "kaniko-chains", "--showlog", "--use-param-defaults", "-s", "builder",
             "-p", f"IMAGE={image}",
             "-p", f"CHAINS-GIT_URL={last_result(flow, 'CHAINS-GIT_URL')}",
             "-p", f"CHAINS-GIT_COMMIT={last_result(flow, 'CHAINS-GIT_COMMIT')}",
             *KANIKO_ARGS, *INSECURE, "-w", "name=source,claimName=source-pvc")  # fmt: skip
    run = flow.last("taskruns")
    assert succeeded(run), json.dumps(run.get("status", {}).get("conditions"))
    ref = f"{REGISTRY}/demo/app@{last_result(flow, 'IMAGE_DIGEST')}"
    assert ref == image_of(run)
    for verb in (["verify"], ["verify-attestation", "--type", "slsaprovenance1"]):
        proc = flow.cosign(*verb, "--key", f"k8s://{NS}/signing-secrets", "--insecure-ignore-tlog",
                           "--allow-insecure-registry", ref)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    assert secret_mounts_outside_attest(pods_of(flow.cluster, NS)) == []
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "kaniko-taskrun.json").write_text(json.dumps(run, indent=1))


def test_tkn_pipeline_start_runs_the_whole_flow(flow: Flow) -> None:
    pvc = flow.work / "pvc.yaml"
    pvc.write_text(json.dumps({
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "",
                 "resources": {"requests": {"storage": "100Mi"}}},
    }))  # fmt: skip
    flow.tkn("pipeline", "start", "kaniko-chains", "--showlog", "--use-param-defaults",
             "-s", "builder",
             "-p", f"IMAGE={REGISTRY}/demo/app:pipeline", *KANIKO_ARGS, *INSECURE,
             "-p", "ALLOWED_SOURCE_REPOS=file:///workspace/seed",
             "-w", f"name=source,volumeClaimTemplateFile={pvc}",
             "-w", "name=seed,config=source-seed",
             "-w", "name=public-key,config=signing-public-key")  # fmt: skip
    run = flow.last("pipelineruns")
    assert succeeded(run), json.dumps(run.get("status", {}).get("conditions"))
    assert results(run)["VERIFIED"] == "true"
    assert secret_mounts_outside_attest(pods_of(flow.cluster, NS)) == []


def gate(flow: Flow, ref: str, *extra: str) -> dict[str, Any]:
    url, digest = ref.split("@")
    proc = flow.cluster.tool("tkn", "-n", NS, "task", "start", "verify-provenance", "--showlog",
                             "--use-param-defaults", "-s", "builder",
                             "-p", f"IMAGE_URL={url}", "-p", f"IMAGE_DIGEST={digest}",
                             *INSECURE, "-p", "ALLOWED_SOURCE_REPOS=file:///workspace/seed",
                             "-w", "name=public-key,config=signing-public-key", *extra,
                             timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return flow.last("taskruns")


def test_verify_provenance_gate_passes_and_refuses_a_non_hermetic_build(flow: Flow) -> None:
    build = next(
        t for t in reversed(flow.cluster.json("-n", NS, "get", "taskruns",
                                              "--sort-by=.metadata.creationTimestamp")["items"])
        if t["spec"].get("taskRef", {}).get("name") == "kaniko-chains" and succeeded(t)
    )  # fmt: skip
    ref = image_of(build)
    passed = gate(flow, ref)
    assert succeeded(passed), json.dumps(passed["status"].get("conditions"))
    assert results(passed)["VERIFIED"] == "true"
    refused = gate(flow, ref, "-p", "REQUIRE_HERMETIC=true")
    assert not succeeded(refused), "a kaniko (non-hermetic) build passed a hermetic-only gate"
    assert results(refused).get("VERIFIED") == "false"
    assert "hermetic" in str(results(refused).get("REASON", "")).lower(), results(refused)


# Chains v0.26 writes cosign's legacy .sig/.att tags, and cosign v3 reads them only without
# the new bundle format (by default it reads the referrers, where our bundles are).
LEGACY = "--new-bundle-format=false"


def chains_statement(flow: Flow, ref: str, key: Path) -> dict[str, Any]:
    proc = flow.cosign("verify-attestation", "--key", str(key), "--insecure-ignore-tlog", LEGACY,
                       "--allow-insecure-registry", "--type", "slsaprovenance", ref)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return decode_statement(proc.stdout)


def decode_statement(stdout: str) -> dict[str, Any]:
    """The first statement in cosign verify-attestation's output (one DSSE envelope a line)."""
    for line in stdout.splitlines():
        if line.strip().startswith("{"):
            envelope = json.loads(line)
            statement: dict[str, Any] = json.loads(base64.b64decode(envelope["payload"]))
            return statement
    raise AssertionError(f"no envelope in cosign output: {stdout[:500]}")


def test_chains_signs_the_same_taskrun(flow: Flow) -> None:
    path = RESULTS / "kaniko-taskrun.json"
    if not path.exists():
        pytest.fail("test_tkn_task_start_builds_signs_and_attests did not record its TaskRun")
    name = json.loads(path.read_text())["metadata"]["name"]
    deadline = time.monotonic() + 180
    while True:
        run = flow.cluster.json("-n", NS, "get", "taskrun", name)
        signed = run["metadata"].get("annotations", {}).get("chains.tekton.dev/signed")
        if signed in {"true", "failed"} or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert signed == "true", f"Chains: chains.tekton.dev/signed={signed!r}"
    # issue 14: no result of ours is a Chains *ARTIFACT_OUTPUTS hint any more
    names = [r["name"] for r in run["status"].get("results") or []]
    assert not [n for n in names if n.endswith("ARTIFACT_OUTPUTS")], names
    ref = image_of(run)
    chains_key = STATE / "chains" / "cosign.pub"
    proc = flow.cosign("verify", "--key", str(chains_key), "--insecure-ignore-tlog", LEGACY,
                       "--allow-insecure-registry", ref)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    theirs = chains_statement(flow, ref, chains_key)
    ours_out = flow.cosign("verify-attestation", "--key", str(flow.work / "cosign.pub"),
                           "--insecure-ignore-tlog", "--allow-insecure-registry",
                           "--type", "slsaprovenance1", ref)  # fmt: skip
    assert ours_out.returncode == 0, ours_out.stderr
    ours = decode_statement(ours_out.stdout)
    # Chains' subjects: the image alone (our attestation is no subject of theirs)
    assert [s["digest"]["sha256"] for s in theirs["subject"]] == [ref.split("sha256:")[1]]
    assert ours["subject"][0]["digest"]["sha256"] == ref.split("sha256:")[1]
    (RESULTS / "chains-statement.json").write_text(json.dumps(theirs, indent=1))
    (RESULTS / "ours-statement.json").write_text(json.dumps(ours, indent=1))
    (RESULTS / "kaniko-taskrun.json").write_text(json.dumps(run, indent=1))
    versions = {"Kubernetes": flow.cluster.json("version")["serverVersion"]["gitVersion"]}
    controllers = [
        ("Tekton Pipelines", "tekton-pipelines", "tekton-pipelines-controller"),
        ("Tekton Chains", "tekton-chains", "tekton-chains-controller"),
    ]
    for label, ns, deploy in controllers:
        labels = flow.cluster.json("-n", ns, "get", "deploy", deploy)["metadata"]["labels"]
        versions[label] = labels.get("app.kubernetes.io/version", "?")
    versions["attest-step image"] = local_images()["attest-step"]
    (RESULTS / "versions.json").write_text(json.dumps(versions, indent=1))
