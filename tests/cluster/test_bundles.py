"""The catalog as a Tekton bundle (real ``tkn bundle push``), run through Tekton's resolvers.

The catalog's hermetic-build Pipeline test runs twice with its Tasks (git-source,
hermetic-build, verify-provenance) referenced through a resolver instead of by name:

- ``resolver: bundles``, from the bundle ``tkn bundle push`` wrote to the local registry,
  pinned by digest;
- ``resolver: cluster``, from a separate namespace holding the catalog.

Both must succeed, and Tekton must record each resolved Task in the TaskRun's
``status.provenance.refSource`` (the bundle's digest; for the cluster resolver, the Task's
digest), which is what Chains turns into ``configSource`` / ``buildConfigSource``.
"""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from tests.cluster.conftest import REGISTRY, Cluster
from tests.cluster.test_catalog_on_cluster import (
    CATALOG,
    apply_catalog,
    localize,
    make_signing_secret,
    namespace_for,
    wait_done,
)

TASKS = ["git-source", "hermetic-build", "verify-provenance"]
TEST = CATALOG / "pipeline" / "hermetic-build" / "0.1" / "tests"
BUNDLE_REPO = "catalog/attest-step-tasks"
# Both manifest types: asked for OCI only, a registry holding a Docker v2 manifest (which
# tkn bundle push writes) answers with a schema1 conversion of another digest.
MANIFEST = ", ".join([
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])  # fmt: skip


def task_file(name: str) -> Path:
    return CATALOG / "task" / name / "0.1" / f"{name}.yaml"


def push_bundle(c: Cluster, tmp_path: Path) -> str:
    files = []
    for name in TASKS:
        path = tmp_path / f"{name}.yaml"
        path.write_text(localize(task_file(name).read_text()))
        files += ["-f", str(path)]
    tag = f"{REGISTRY}/{BUNDLE_REPO}:0.1"
    proc = c.tool("tkn", "bundle", "push", tag, *files, "--ctime", "2026-01-01T00:00:00Z")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    req = urllib.request.Request(
        f"http://{REGISTRY}/v2/{BUNDLE_REPO}/manifests/0.1",
        method="HEAD",
        headers={"Accept": MANIFEST},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        digest = resp.headers["Docker-Content-Digest"]
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), digest
    return f"{REGISTRY}/{BUNDLE_REPO}@{digest}"


def with_resolver(run: dict[str, Any], ref: dict[str, Any]) -> dict[str, Any]:
    """The test PipelineRun with its Pipeline inlined and each taskRef replaced by REF(name)."""
    pipeline = yaml.safe_load(localize((CATALOG / "pipeline" / "hermetic-build" / "0.1" /
                                        "hermetic-build.yaml").read_text()))  # fmt: skip
    spec = pipeline["spec"]
    for task in spec.get("tasks", []) + spec.get("finally", []):
        name = (task.get("taskRef") or {}).get("name")
        if name in TASKS:
            task["taskRef"] = json.loads(json.dumps(ref).replace("TASK", name))
    run = json.loads(json.dumps(run))
    del run["spec"]["pipelineRef"]
    run["spec"]["pipelineSpec"] = spec
    return run


def test_pipeline_runs_tasks_from_a_bundle_and_from_the_cluster_resolver(
    cluster: Cluster, tmp_path: Path
) -> None:
    bundle = push_bundle(cluster, tmp_path)
    home = namespace_for(cluster, TEST.parent / "catalog-home" / "x", "restricted")
    apply_catalog(cluster, home, [task_file(n) for n in TASKS])
    ns = namespace_for(cluster, TEST.parent / "resolvers" / "x", "privileged")
    # Only what the Tasks reference by name stays local: the attest StepAction.
    apply_catalog(cluster, ns, [CATALOG / "stepaction" / "attest" / "0.1" / "attest.yaml"])
    cluster.kubectl(
        "-n", ns, "apply", "-f", "-", stdin=localize((TEST / "resources.yaml").read_text())
    )
    make_signing_secret(cluster, ns, tmp_path)
    (base,) = [d for d in yaml.safe_load_all(localize((TEST / "run.yaml").read_text())) if d]
    refs = {
        "bundles": {"resolver": "bundles", "params": [
            {"name": "bundle", "value": bundle}, {"name": "name", "value": "TASK"},
            {"name": "kind", "value": "task"}]},
        "cluster": {"resolver": "cluster", "params": [
            {"name": "kind", "value": "task"}, {"name": "name", "value": "TASK"},
            {"name": "namespace", "value": home}]},
    }  # fmt: skip
    for resolver, ref in refs.items():
        run = with_resolver(base, ref)
        run["metadata"]["name"] = f"resolved-{resolver}"
        cluster.kubectl("-n", ns, "create", "-f", "-", stdin=json.dumps(run))
        done = wait_done(cluster, ns, "PipelineRun", run["metadata"]["name"])
        cond = next(c for c in done["status"]["conditions"] if c["type"] == "Succeeded")
        assert cond["status"] == "True", cond
        selector = f"tekton.dev/pipelineRun={run['metadata']['name']}"
        children = cluster.json("-n", ns, "get", "taskruns", "-l", selector)["items"]
        seen = {}
        for tr in children:
            task = tr["metadata"]["labels"].get("tekton.dev/task")
            source = tr["status"].get("provenance", {}).get("refSource") or {}
            if task in TASKS:
                seen[task] = source
        assert sorted(seen) == sorted(TASKS), seen
        for task, source in seen.items():
            assert re.fullmatch(r"[0-9a-f]{64}", source.get("digest", {}).get("sha256", "")), (
                f"{resolver}: {task} has no resolved digest: {source}"
            )
            if resolver == "bundles":
                assert source["uri"] == bundle.split("@")[0], source
                assert source["digest"]["sha256"] == bundle.split("sha256:")[1], source
