"""Deploy-time admission: Sigstore policy-controller on the real cluster, with our policy.

policy-controller v0.13.0 (built from the Go module proxy by hack/cluster/build.sh, installed
by hack/cluster/policy-controller.sh) runs as the cluster's admission webhook. The policy is
installed as policy/admission/README.md tells users: the public key as a Secret and
policy/admission/hermetic.rego as a ConfigMap in cosign-system, then
policy/admission/cluster-image-policy.yaml applied unchanged.

Images come from the catalog's hermetic-image Task (catalog/task/hermetic-image: prefetch of
the digest-pinned base image, a build under ``attest-step run --network none``, an isolated
assemble of the image, push with ``attest-step copy``, the catalog's attest StepAction signing
and attesting the image), run by a PipelineRun whose first task writes the build script into
the source workspace. Then, in a namespace that opts in
(``policy.sigstore.dev/include=true``), ``kubectl apply`` of a Deployment:

- the image built in isolation: admitted, and its pod runs;
- the same Task with isolation off (signed, attested, but not hermetic): denied, and the
  reason names the Rego rule;
- an image pushed directly, never signed: denied, no signature;
- the non-hermetic image's attestation with the isolated build's evidence spliced in (what a
  forger would do; the Rego policy alone would accept it): denied, the signature no longer
  verifies.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import oras.provider
import pytest
import yaml

from attest_step.oci.options import RegistryOptions
from attest_step.oci.registry import RegistryClient
from attest_step.oci.retry import Deadline
from tests.cluster.conftest import REGISTRY, Cluster
from tests.cluster.test_catalog_on_cluster import (
    CATALOG,
    describe_failure,
    localize,
    make_signing_secret,
    wait_done,
)
from tests.fixtures.oci_image import MANIFEST_TYPE, OciImage, push_image, sha256_digest
from tests.fixtures.tools import REPO_ROOT, require_tool

ADMISSION = REPO_ROOT / "policy" / "admission"
TASK = CATALOG / "task" / "hermetic-image" / "0.1" / "hermetic-image.yaml"
SYSTEM = "cosign-system"
BUILD_NS = "adm-build"
DEPLOY_NS = "adm-deploy"
POLICIES = ("attest-step-signed", "attest-step-hermetic-provenance")
ISOLATION = "application/vnd.attest-step.network-isolation.v1+json"
SLSA_V1 = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://attest-step.dev/buildtypes/tekton-step/v1"
BASE_IMAGE = f"{REGISTRY}/base/static:1"


def pinned_base() -> str:
    """BASE_IMAGE pinned by digest, as the Task requires (hack/cluster/base-images.sh pushed it)."""
    client = RegistryClient(
        REGISTRY, RegistryOptions(allow_insecure_registry=True), deadline=Deadline(60)
    )
    found = client.get_manifest("base/static", "1")
    assert found is not None, f"{BASE_IMAGE} is not in the cluster registry"
    return f"{BASE_IMAGE}@{found.digest}"


def attest_step_pin() -> str:
    """The catalog's pin of attest-step's image (the cluster's registry serves that digest)."""
    task = yaml.safe_load(
        (CATALOG / "task" / "hermetic-build" / "0.1" / "hermetic-build.yaml").read_text()
    )
    image: str = task["spec"]["steps"][0]["image"]
    return image


@dataclass(frozen=True)
class Built:
    """Images the Task built: mode -> repository@digest."""

    images: dict[str, str]


def fresh_namespace(c: Cluster, name: str, labels: dict[str, str]) -> None:
    c.kubectl("delete", "namespace", name, "--ignore-not-found", "--wait=true", timeout=300)
    c.kubectl("create", "namespace", name)
    c.kubectl("label", "namespace", name, *[f"{k}={v}" for k, v in labels.items()])


def apply_manifest(c: Cluster, ns: str, *create: str) -> None:
    """``kubectl create ... --dry-run=client -o yaml | kubectl apply -f -``: idempotent."""
    text = c.kubectl("-n", ns, "create", *create, "--dry-run=client", "-o", "yaml").stdout
    c.kubectl("-n", ns, "apply", "-f", "-", stdin=text)


def install_policy(c: Cluster, pub: Path) -> None:
    """policy/admission/README.md's steps."""
    apply_manifest(c, SYSTEM, "secret", "generic", "attest-step-signing-key",
                   f"--from-file=cosign.pub={pub}")  # fmt: skip
    apply_manifest(c, SYSTEM, "configmap", "attest-step-admission-policy",
                   f"--from-file=hermetic.rego={ADMISSION / 'hermetic.rego'}")  # fmt: skip
    c.kubectl("apply", "-f", str(ADMISSION / "cluster-image-policy.yaml"))
    # The reconciler compiles each ClusterImagePolicy (key and Rego inlined) into this
    # ConfigMap, which the admission webhook reads.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        data = c.json("-n", SYSTEM, "get", "configmap", "config-image-policies").get("data") or {}
        if all(name in data for name in POLICIES) and "isCompliant" in data[POLICIES[1]]:
            return
        time.sleep(1)
    logs = c.kubectl("-n", SYSTEM, "logs", "deploy/webhook", "--tail=40", check=False).stdout
    raise AssertionError(f"policy-controller did not compile the policies:\n{logs}")


SEED_SCRIPT = '#!/usr/bin/env sh\nprintf "%s" "$SCRIPT" >"$(workspaces.source.path)/build.sh"\n'


def build_script(mode: str, nonce: str) -> str:
    """The source's build script: output unique to this run and mode, so that each run pushes
    images of its own (the Task is reproducible: the same source gives the same digest)."""
    text = f"built for admission run {nonce} ({mode})"
    return f"set -eu\nmkdir -p out\nprintf '%s\\n' '{text}' >out/built.txt\n"


def pipeline_run(mode: str, base: str, nonce: str) -> dict[str, Any]:
    """seed (writes build.sh into the source workspace) -> the catalog's hermetic-image Task."""
    restricted = {
        "runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
    }  # fmt: skip
    seed = {
        "workspaces": [{"name": "source"}],
        "params": [{"name": "SCRIPT"}],
        "steps": [{
            "name": "seed", "image": attest_step_pin(), "securityContext": restricted,
            "env": [{"name": "SCRIPT", "value": "$(params.SCRIPT)"}],
            "script": SEED_SCRIPT,
        }],
    }  # fmt: skip
    return {
        "apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
        "metadata": {"name": f"image-{mode}"},
        "spec": {
            "pipelineSpec": {
                "workspaces": [{"name": "source"}],
                "results": [
                    {"name": "IMAGE_URL", "value": "$(tasks.build.results.IMAGE_URL)"},
                    {"name": "IMAGE_DIGEST", "value": "$(tasks.build.results.IMAGE_DIGEST)"},
                ],
                "tasks": [
                    {"name": "seed", "taskSpec": seed,
                     "params": [{"name": "SCRIPT", "value": build_script(mode, nonce)}],
                     "workspaces": [{"name": "source", "workspace": "source"}]},
                    {"name": "build", "runAfter": ["seed"],
                     "taskRef": {"name": "hermetic-image"},
                     "params": [
                         {"name": "IMAGE", "value": f"{REGISTRY}/admission/{mode}:1"},
                         {"name": "BASE_IMAGE", "value": base},
                         {"name": "DEPENDENCIES_FILE", "value": ""},
                         {"name": "IMAGE_PATH", "value": "/app"},
                         {"name": "ALLOW_INSECURE_REGISTRY", "value": "true"},
                         {"name": "RUN_ISOLATED",
                          "value": "true" if mode == "hermetic" else "false"},
                     ],
                     "workspaces": [{"name": "source", "workspace": "source"}]},
                ],
            },
            "taskRunTemplate": {"podTemplate": {"automountServiceAccountToken": False,
                                                "securityContext": {"fsGroup": 65532}}},
            "workspaces": [{"name": "source", "volumeClaimTemplate": {"spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "100Mi"}}}}}],
        },
    }  # fmt: skip


@pytest.fixture(scope="module")
def built(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    work = tmp_path_factory.mktemp("admission")
    # Isolated builds need seccomp Unconfined, which only "privileged" admits (docs/e2e.md).
    fresh_namespace(cluster, BUILD_NS, {"pod-security.kubernetes.io/enforce": "privileged"})
    attest = CATALOG / "stepaction" / "attest" / "0.1" / "attest.yaml"
    cluster.kubectl("-n", BUILD_NS, "apply", "-f", "-", stdin=localize(attest.read_text()))
    cluster.kubectl("-n", BUILD_NS, "apply", "-f", "-", stdin=localize(TASK.read_text()))
    pub = make_signing_secret(cluster, BUILD_NS, work)
    install_policy(cluster, pub)
    fresh_namespace(cluster, DEPLOY_NS, {"policy.sigstore.dev/include": "true"})
    images = {}
    base, nonce = pinned_base(), uuid.uuid4().hex
    for mode in ("hermetic", "not-hermetic"):
        run = json.dumps(pipeline_run(mode, base, nonce))
        cluster.kubectl("-n", BUILD_NS, "create", "-f", "-", stdin=run)
    for mode in ("hermetic", "not-hermetic"):
        obj = wait_done(cluster, BUILD_NS, "PipelineRun", f"image-{mode}")
        cond = next(c for c in obj["status"]["conditions"] if c["type"] == "Succeeded")
        assert cond["status"] == "True", describe_failure(cluster, BUILD_NS, obj)
        results = {r["name"]: r["value"] for r in obj["status"]["results"]}
        repo = results["IMAGE_URL"].rsplit(":", 1)[0]
        images[mode] = f"{repo}@{results['IMAGE_DIGEST']}"
    yield Built(images)


def deployment(name: str, image: str) -> str:
    return json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"automountServiceAccountToken": False,
                         "containers": [{"name": "app", "image": image}]},
            },
        },
    })  # fmt: skip


def deploy(c: Cluster, name: str, image: str) -> tuple[bool, str]:
    """``kubectl apply`` of a Deployment: (admitted, what kubectl said)."""
    proc = c.kubectl(
        "-n", DEPLOY_NS, "apply", "-f", "-", stdin=deployment(name, image), check=False
    )
    return proc.returncode == 0, proc.stdout + proc.stderr


def test_the_hermetic_build_is_admitted_and_runs(cluster: Cluster, built: Built) -> None:
    admitted, said = deploy(cluster, "hermetic", built.images["hermetic"])
    assert admitted, said
    proc = cluster.kubectl("-n", DEPLOY_NS, "rollout", "status", "deploy/hermetic",
                           "--timeout=180s", check=False, timeout=200)  # fmt: skip
    assert proc.returncode == 0, proc.stderr + describe_failure(cluster, DEPLOY_NS, {})


def test_a_signed_but_not_hermetic_build_is_denied_by_the_rego_policy(
    cluster: Cluster, built: Built
) -> None:
    admitted, said = deploy(cluster, "not-hermetic", built.images["not-hermetic"])
    assert not admitted, said
    assert 'admission webhook "policy.sigstore.dev" denied the request' in said, said
    assert "attest-step-hermetic-provenance" in said, said
    assert "attest_step.hermetic" in said and "not a hermetic build" in said, said
    # its signature is ours: the signature policy is not what refused it
    assert "attest-step-signed" not in said, said


def test_an_unsigned_image_is_denied(cluster: Cluster, built: Built) -> None:
    pushed = push_image(f"{REGISTRY}/admission/unsigned", tag="1")
    admitted, said = deploy(cluster, "unsigned", f"{pushed.repository}:1")
    assert not admitted, said
    assert 'admission webhook "policy.sigstore.dev" denied the request' in said, said
    assert "attest-step-signed" in said and "attest-step-hermetic-provenance" in said, said
    assert "no signatures found" in said and "no matching attestations" in said, said


def _registry(repository: str) -> tuple[oras.provider.Registry, str, str]:
    host, _, path = repository.partition("/")
    return oras.provider.Registry(hostname=host, insecure=True), host, path


def _get(client: oras.provider.Registry, url: str, accept: str = "*/*") -> bytes:
    resp = client.do_request(url, "GET", headers={"Accept": accept})
    assert resp.status_code == 200, f"{url}: {resp.status_code}"
    data: bytes = resp.content
    return data


def blob(repository: str, digest: str) -> bytes:
    client, host, path = _registry(repository)
    return _get(client, f"http://{host}/v2/{path}/blobs/{digest}")


def attestation_statements(image: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The ``.att`` manifest of IMAGE and the DSSE envelopes of its layers."""
    repository, _, digest = image.partition("@")
    client, host, path = _registry(repository)
    base = f"http://{host}/v2/{path}"
    manifest = json.loads(
        _get(client, f"{base}/manifests/{digest.replace(':', '-')}.att", MANIFEST_TYPE)
    )
    envelopes = [json.loads(blob(repository, layer["digest"])) for layer in manifest["layers"]]
    return manifest, envelopes


def ours(statement: dict[str, Any]) -> bool:
    """An SLSA v1 statement of our build type. The ``.att`` tag also holds Tekton Chains'
    attestation of the same TaskRun (in-toto v0.1, SLSA v0.2), signed with Chains' key."""
    build = statement.get("predicate", {}).get("buildDefinition", {})
    return bool(statement.get("predicateType") == SLSA_V1 and build.get("buildType") == BUILD_TYPE)


def build_records(statement: dict[str, Any]) -> list[dict[str, Any]]:
    byproducts = statement["predicate"]["runDetails"].get("byproducts", [])
    isolation = [r for r in byproducts if r.get("mediaType") == ISOLATION]
    return [r for r in isolation if r["annotations"].get("role") != "attest"]


def payload(envelope: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(base64.b64decode(envelope["payload"]))
    return data


def opa_eval(statement: dict[str, Any], work: Path, query: str, *args: str) -> Any:
    """``opa eval`` (the pinned OPA) of QUERY over STATEMENT with ARGS (``-d`` files)."""
    opa = require_tool("opa")
    (work / "input.json").write_text(json.dumps(statement))
    proc = subprocess.run(
        [str(opa), "eval", "-f", "json", *args, "-i", str(work / "input.json"), query],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return json.loads(proc.stdout)["result"][0]["expressions"][0]["value"]


def admission_compliant(statement: dict[str, Any], work: Path) -> bool:
    """What policy-controller's Rego step alone would say (Rego v0 mode, as it loads it)."""
    (result,) = opa_eval(statement, work, "data.sigstore.isCompliant", "--v0-compatible",
                         "-d", str(ADMISSION / "hermetic.rego"))  # fmt: skip
    return bool(result["result"] is True)


def test_the_release_policy_judges_the_cluster_attestations(built: Built, tmp_path: Path) -> None:
    """policy/release (Conforma-style Rego, ``opa eval``) over the attestations the cluster
    run stored, not only over CLI-made ones: the hermetic build passes every isolation rule,
    the other fails ``attest_step.hermetic``; both fail the source rules (no git source)."""
    rules = ["-d", str(REPO_ROOT / "policy" / "release"),
             "-d", str(REPO_ROOT / "policy" / "data" / "rule_data.yml")]  # fmt: skip
    found = {}
    for mode, image in built.images.items():
        _, envelopes = attestation_statements(image)
        (statement,) = [payload(e) for e in envelopes if ours(payload(e))]
        deny = opa_eval(statement, tmp_path, "data.attest_step.tekton_step.deny", *rules)
        found[mode] = {d["code"] for d in deny}
    isolation = {"attest_step.hermetic", "attest_step.isolation_record_consistent"}
    assert found["hermetic"] & isolation == set(), found
    assert "attest_step.hermetic" in found["not-hermetic"], found
    for codes in found.values():
        assert "attest_step.source_found" in codes, found
        assert "attest_step.slsa_builder_id_accepted" not in codes, found


def test_a_forged_attestation_is_denied(cluster: Cluster, built: Built, tmp_path: Path) -> None:
    """The not-hermetic image's own attestation, its payload given the hermetic build's
    isolation record (a record the Rego policy accepts), its signature left as it was."""
    _, good = attestation_statements(built.images["hermetic"])
    evidence = [r for env in good if ours(payload(env)) for r in build_records(payload(env))]
    assert evidence and all(r["annotations"]["hermetic"] is True for r in evidence)
    manifest, envelopes = attestation_statements(built.images["not-hermetic"])
    blobs = {}
    for layer, envelope in zip(manifest["layers"], envelopes, strict=True):
        statement = payload(envelope)
        if not ours(statement):
            continue  # Chains' attestation stays as it is (the registry holds its blob)
        assert not any(r["annotations"].get("hermetic") for r in build_records(statement))
        byproducts = [r for r in statement["predicate"]["runDetails"].get("byproducts", [])
                      if r not in build_records(statement)]  # fmt: skip
        statement["predicate"]["runDetails"]["byproducts"] = byproducts + evidence
        # the forgery is good enough for the Rego policy: only the signature can catch it
        assert admission_compliant(statement, tmp_path)
        forged = {**envelope, "payload": base64.b64encode(json.dumps(statement).encode()).decode()}
        data = json.dumps(forged).encode()
        layer.update(digest=sha256_digest(data), size=len(data))
        blobs[layer["digest"]] = data
    assert blobs, "no attestation of ours on the not-hermetic image"
    repository, _, digest = built.images["not-hermetic"].partition("@")
    forged_manifest = json.dumps(manifest).encode()
    push_image(repository, OciImage(manifest=forged_manifest, blobs=blobs),
               tag=f"{digest.replace(':', '-')}.att")  # fmt: skip
    admitted, said = deploy(cluster, "forged", built.images["not-hermetic"])
    assert not admitted, said
    assert "attest-step-hermetic-provenance" in said, said
    assert "no matching attestations" in said, said
    assert "accepted signatures do not match threshold, Found: 0, Expected 1" in said, said
    assert "attest-step-signed" not in said, said
