"""Network isolation in a real pod, observed from outside it, and the deploy gate on it.

A TCP listener on the node, on the pod bridge's gateway (10.244.0.1, which every pod can
reach), counts connections. The catalog's hermetic-build Pipeline (git-source, hermetic-build,
verify-provenance with ``REQUIRE_HERMETIC=true``) builds a script that connects to it:

- default mode (``attest-step run --network none``): the build step fails and the listener
  sees **no** connection;
- isolation off: the same script reaches the listener (so the failure above is the isolation's
  doing), the build is attested as it ran, and the gate refuses it: not hermetic.

The passing gate on a hermetic build is the catalog's own tests (pipeline/hermetic-build,
task/verify-provenance) and test_user_flow.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.conftest import Cluster
from tests.cluster.test_catalog_on_cluster import (
    CATALOG,
    apply_catalog,
    catalog_resources,
    localize,
    make_signing_secret,
    namespace_for,
    wait_done,
)
from tests.fixtures.counting_server import CountingServer

GATEWAY = "10.244.0.1"
SOURCE_RESULT = "$(tasks.fetch-source.results.CHAINS-GIT_%s)"
TESTS = CATALOG / "pipeline" / "hermetic-build" / "0.1" / "tests"
NET_BUILD = """\
#!/bin/sh
set -eu
python3 - <<'EOF'
import socket, sys
try:
    socket.create_connection(("GATEWAY", PORT), timeout=5).close()
except OSError as err:
    sys.exit(f"build: cannot reach the server on the node: {err}")
print("build: reached the server on the node")
EOF
mkdir -p out
printf 'built with network\\n' >out/app.txt
"""


@pytest.fixture
def listener() -> Iterator[CountingServer]:
    s = CountingServer(GATEWAY)
    try:
        yield s
    finally:
        s.close()


def pipeline_run(mode: str) -> dict[str, Any]:
    run_isolated = "true" if mode == "isolated" else "false"
    return {
        "apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
        "metadata": {"name": f"net-build-{mode}"},
        "spec": {
            "pipelineSpec": {
                "workspaces": [{"name": "source"}, {"name": "seed"}, {"name": "public-key"}],
                "tasks": [
                    {"name": "fetch-source", "taskRef": {"name": "git-source"},
                     "workspaces": [{"name": "output", "workspace": "source"},
                                    {"name": "seed", "workspace": "seed"}]},
                    {"name": "build", "taskRef": {"name": "hermetic-build"},
                     "params": [
                         {"name": "DEPENDENCIES_FILE", "value": ""},
                         {"name": "TEKTON_HERMETIC", "value": "0"},
                         {"name": "RUN_ISOLATED", "value": run_isolated},
                         {"name": "CHAINS-GIT_URL", "value": SOURCE_RESULT % "URL"},
                         {"name": "CHAINS-GIT_COMMIT", "value": SOURCE_RESULT % "COMMIT"}],
                     "workspaces": [{"name": "source", "workspace": "source"}]},
                    {"name": "verify", "runAfter": ["build"],
                     "taskRef": {"name": "verify-provenance"},
                     "params": [
                         {"name": "ENVELOPE_PATH", "value": ".attest/provenance.dsse.json"},
                         {"name": "SUBJECT_PATHS", "value": "out"},
                         {"name": "REQUIRE_HERMETIC", "value": "true"},
                         {"name": "ALLOWED_SOURCE_REPOS", "value": "file:///workspace/seed"}],
                     "workspaces": [{"name": "public-key", "workspace": "public-key"},
                                    {"name": "artifacts", "workspace": "source"}]},
                ],
            },
            "taskRunTemplate": {
                "serviceAccountName": "attest-step-builder",
                "podTemplate": {"automountServiceAccountToken": False,
                                "securityContext": {"fsGroup": 65532}},
            },
            "workspaces": [
                {"name": "source", "volumeClaimTemplate": {"spec": {
                    "accessModes": ["ReadWriteOnce"], "storageClassName": "",
                    "resources": {"requests": {"storage": "100Mi"}}}}},
                {"name": "seed", "configMap": {"name": "net-seed"}},
                {"name": "public-key", "configMap": {"name": "signing-public-key"}},
            ],
        },
    }  # fmt: skip


def child(c: Cluster, ns: str, run: str, task: str) -> dict[str, Any]:
    items = c.json("-n", ns, "get", "taskruns", "-l", f"tekton.dev/pipelineRun={run}")["items"]
    found = [t for t in items if t["metadata"]["labels"].get("tekton.dev/pipelineTask") == task]
    assert found, f"no TaskRun for {task} in {run}"
    obj: dict[str, Any] = found[0]
    return obj


def status_of(obj: dict[str, Any]) -> str:
    cond = next(c for c in obj["status"]["conditions"] if c["type"] == "Succeeded")
    return str(cond["status"])


def setup(c: Cluster, listener: CountingServer, tmp_path: Path) -> str:
    ns = namespace_for(c, TESTS.parent / "isolation" / "x", "privileged")
    apply_catalog(c, ns, catalog_resources())
    c.kubectl("-n", ns, "apply", "-f", "-", stdin=localize((TESTS / "resources.yaml").read_text()))
    make_signing_secret(c, ns, tmp_path)
    script = NET_BUILD.replace("GATEWAY", GATEWAY).replace("PORT", str(listener.port))
    seed = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "net-seed"},
            "data": {"build.sh": script}}  # fmt: skip
    c.kubectl("-n", ns, "apply", "-f", "-", stdin=json.dumps(seed))
    return ns


def test_isolated_build_cannot_reach_the_node_and_the_gate_refuses_a_non_hermetic_one(
    cluster: Cluster, listener: CountingServer, tmp_path: Path
) -> None:
    ns = setup(cluster, listener, tmp_path)
    # Isolated (the Task's default): the build step fails; nothing reached the listener.
    cluster.kubectl("-n", ns, "create", "-f", "-", stdin=json.dumps(pipeline_run("isolated")))
    done = wait_done(cluster, ns, "PipelineRun", "net-build-isolated")
    build = child(cluster, ns, "net-build-isolated", "build")
    assert status_of(done) == "False" and status_of(build) == "False"
    exits = {s["name"]: s.get("terminated", {}).get("exitCode") for s in build["status"]["steps"]}
    assert exits["build"] not in (0, None), exits
    assert listener.connections == 0, "an isolated build step reached the node"
    # Isolation off: the same script reaches the listener, and the gate says not hermetic.
    cluster.kubectl("-n", ns, "create", "-f", "-", stdin=json.dumps(pipeline_run("off")))
    done = wait_done(cluster, ns, "PipelineRun", "net-build-off")
    assert listener.connections >= 1, "the control build did not reach the node: test is void"
    build = child(cluster, ns, "net-build-off", "build")
    assert status_of(build) == "True", build["status"]["conditions"]
    verify = child(cluster, ns, "net-build-off", "verify")
    assert status_of(verify) == "False" and status_of(done) == "False"
    res = {r["name"]: r["value"] for r in verify["status"].get("results") or []}
    assert res.get("VERIFIED") == "false", res
    assert "hermetic" in str(res.get("REASON", "")).lower(), res
