"""The catalog's own tests (catalog/*/*/*/tests) under the real Tekton controller.

For each test directory, as a user would: a namespace with Pod Security enforced, the catalog
applied with ``kubectl apply``, the signing Secret made by real ``cosign generate-key-pair
k8s://NS/signing-secrets``, the test's runs created, waited for, and checked: Succeeded, the
Secret mounted only into attest steps, every reported image verified by real cosign.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.conftest import COSIGN, REGISTRY, STATE, Cluster
from tests.fixtures.tools import REPO_ROOT

CATALOG = REPO_ROOT / "catalog"
UPSTREAM_MAP: dict[str, str] = json.loads((REPO_ROOT / "images" / "upstream-map.json").read_text())[
    "map"
]
TEST_DIRS = sorted(CATALOG.glob("*/*/*/tests"))
PASSWORD = "cluster-tier"


def local_images() -> dict[str, str]:
    """Local image name -> its reference by digest in the cluster registry (images.sh)."""
    built: dict[str, str] = json.loads((STATE / "images.json").read_text())
    return built


def localize(text: str) -> str:
    """Catalog YAML as the tier applies it: upstream pins -> the local builds named by the one
    mapping, images/upstream-map.json; the kind registry name the tests use -> the cluster's.
    attest-step's own pin is left alone: the cluster's registry holds that very digest."""
    built = local_images()
    for upstream, name in UPSTREAM_MAP.items():
        if "@sha256:" in upstream and name in built:
            text = text.replace(upstream, built[name])
    return text.replace("registry.local:5000", REGISTRY)


def catalog_resources() -> list[Path]:
    return sorted(p for p in CATALOG.glob("*/*/*/*.yaml"))


def run_documents(test_dir: Path) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(localize((test_dir / "run.yaml").read_text())) if d]
    return [d for d in docs if d.get("kind") in {"TaskRun", "PipelineRun"}]


def namespace_for(c: Cluster, test_dir: Path, level: str) -> str:
    name = "t-" + re.sub(r"[^a-z0-9-]", "-", "-".join(test_dir.parts[-4:-1]))[:50].strip("-")
    c.kubectl("delete", "namespace", name, "--ignore-not-found", "--wait=true", timeout=300)
    c.kubectl("create", "namespace", name)
    c.kubectl("label", "namespace", name, f"pod-security.kubernetes.io/enforce={level}",
              "pod-security.kubernetes.io/enforce-version=latest")  # fmt: skip
    return name


def apply_catalog(c: Cluster, ns: str, paths: list[Path]) -> None:
    for path in paths:
        c.kubectl("-n", ns, "apply", "-f", "-", stdin=localize(path.read_text()))


def make_signing_secret(c: Cluster, ns: str, work: Path) -> Path:
    """Replace the test's throwaway Secret with one made by real cosign, as users do."""
    c.kubectl("-n", ns, "delete", "secret", "signing-secrets", "--ignore-not-found")
    proc = subprocess.run(
        [str(COSIGN), "generate-key-pair", f"k8s://{ns}/signing-secrets"],
        cwd=work, env={**c.env, "COSIGN_PASSWORD": PASSWORD},
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    pub = work / "cosign.pub"
    assert pub.exists(), "cosign generate-key-pair k8s:// writes cosign.pub locally"
    manifest = c.kubectl(
        "-n",
        ns,
        "create",
        "configmap",
        "signing-public-key",
        f"--from-file=cosign.pub={pub}",
        "--dry-run=client",
        "-o",
        "yaml",
    ).stdout
    c.kubectl("-n", ns, "apply", "-f", "-", stdin=manifest)
    return pub


def wait_done(c: Cluster, ns: str, kind: str, name: str, timeout: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        obj = c.json("-n", ns, "get", kind.lower(), name)
        for cond in obj.get("status", {}).get("conditions") or []:
            if cond.get("type") == "Succeeded" and cond.get("status") in {"True", "False"}:
                return obj
        time.sleep(2)
    raise AssertionError(f"{kind} {name} did not finish within {timeout}s")


def pods_of(c: Cluster, ns: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = c.json("-n", ns, "get", "pods")["items"]
    return items


def secret_mounts_outside_attest(pods: list[dict[str, Any]]) -> list[str]:
    """Containers that mount the signing Secret but are not an attest step."""
    found = []
    for pod in pods:
        secret_volumes = {
            v["name"] for v in pod["spec"].get("volumes") or []
            if (v.get("secret") or {}).get("secretName") == "signing-secrets"
        }  # fmt: skip
        containers = pod["spec"].get("containers", []) + pod["spec"].get("initContainers", [])
        for container in containers:
            mounts = {m["name"] for m in container.get("volumeMounts") or []}
            if mounts & secret_volumes and container["name"] not in {"step-attest"}:
                found.append(f"{pod['metadata']['name']}/{container['name']}")
    return found


def reported_images(objs: list[dict[str, Any]]) -> set[str]:
    images = set()
    for obj in objs:
        results = {r["name"]: r["value"] for r in obj.get("status", {}).get("results") or []}
        if "IMAGE_URL" in results and "IMAGE_DIGEST" in results:
            url = str(results["IMAGE_URL"])
            repo = url.rsplit(":", 1)[0] if ":" in url.rsplit("/", 1)[-1] else url
            images.add(f"{repo}@{results['IMAGE_DIGEST']}")
    return images


def describe_failure(c: Cluster, ns: str, obj: dict[str, Any]) -> str:
    events = c.kubectl("-n", ns, "get", "events", "--sort-by=.lastTimestamp", check=False).stdout
    conds = obj.get("status", {}).get("conditions")
    logs = []
    for pod in pods_of(c, ns):
        for container in pod["spec"]["containers"]:
            out = c.kubectl("-n", ns, "logs", pod["metadata"]["name"], "-c", container["name"],
                            check=False).stdout  # fmt: skip
            if out.strip():
                logs.append(f"--- {pod['metadata']['name']}/{container['name']}\n{out[-1200:]}")
    return f"{conds}\n{events[-3000:]}\n" + "\n".join(logs)


def uses_kaniko(test_dir: Path) -> bool:
    return "kaniko" in str(test_dir) or "kaniko-chains" in (test_dir / "run.yaml").read_text()


def pod_security_level(test_dir: Path) -> str:
    """restricted, except where a catalog Task needs more (measured; docs/e2e.md):
    hermetic builds need user namespaces, which containerd's RuntimeDefault seccomp profile
    refuses without CAP_SYS_ADMIN, so their build step is seccomp Unconfined (privileged);
    kaniko runs as root (baseline)."""
    text = (test_dir / "run.yaml").read_text() + str(test_dir)
    if "hermetic-build" in text or "hermetic-image" in text:
        return "privileged"
    return "baseline" if "kaniko" in text else "restricted"


@pytest.mark.parametrize(
    "test_dir", TEST_DIRS, ids=[str(d.parent.relative_to(CATALOG)) for d in TEST_DIRS]
)
def test_catalog_test_runs_on_the_real_controller(
    cluster: Cluster, test_dir: Path, tmp_path: Path
) -> None:
    if uses_kaniko(test_dir) and "kaniko" not in local_images():
        pytest.skip("kaniko: no kaniko image was built (set KANIKO_SRC to a kaniko source "
                    "checkout); the tier never substitutes a stand-in for kaniko")  # fmt: skip
    ns = namespace_for(cluster, test_dir, pod_security_level(test_dir))
    apply_catalog(cluster, ns, catalog_resources())
    cluster.kubectl(
        "-n", ns, "apply", "-f", "-", stdin=localize((test_dir / "resources.yaml").read_text())
    )
    pub = make_signing_secret(cluster, ns, tmp_path)
    runs = run_documents(test_dir)
    assert runs, f"{test_dir}/run.yaml has no TaskRun or PipelineRun"
    finished = []
    for run in runs:
        cluster.kubectl("-n", ns, "create", "-f", "-", stdin=json.dumps(run))
        obj = wait_done(cluster, ns, run["kind"], run["metadata"]["name"])
        cond = next(c for c in obj["status"]["conditions"] if c["type"] == "Succeeded")
        assert cond["status"] == "True", describe_failure(cluster, ns, obj)
        finished.append(obj)
    assert secret_mounts_outside_attest(pods_of(cluster, ns)) == []
    for image in reported_images(finished):
        for verb in (["verify"], ["verify-attestation", "--type", "slsaprovenance1"]):
            proc = cluster.tool("cosign", *verb, "--key", str(pub), "--insecure-ignore-tlog",
                                "--allow-insecure-registry", image)  # fmt: skip
            assert proc.returncode == 0, proc.stderr


def test_a_step_that_mounts_the_secret_makes_the_tier_fail(
    cluster: Cluster, tmp_path: Path
) -> None:
    """A deliberately broken fixture: the attest StepAction test with its first step also
    mounting the signing Secret. The run itself succeeds; the tier's Secret check must catch it."""
    test_dir = CATALOG / "stepaction" / "attest" / "0.1" / "tests"
    ns = namespace_for(cluster, test_dir.parent / "broken" / "x", "restricted")
    apply_catalog(cluster, ns, catalog_resources())
    cluster.kubectl(
        "-n", ns, "apply", "-f", "-", stdin=localize((test_dir / "resources.yaml").read_text())
    )
    make_signing_secret(cluster, ns, tmp_path)
    (run,) = run_documents(test_dir)
    first = run["spec"]["taskSpec"]["steps"][0]
    first.setdefault("volumeMounts", []).append(
        {"name": "signing-secrets", "mountPath": "/secret", "readOnly": True}
    )
    cluster.kubectl("-n", ns, "create", "-f", "-", stdin=json.dumps(run))
    wait_done(cluster, ns, run["kind"], run["metadata"]["name"])
    leaks = secret_mounts_outside_attest(pods_of(cluster, ns))
    assert leaks == [f"{run['metadata']['name']}-pod/step-{first['name']}"]
