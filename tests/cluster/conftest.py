"""The real-cluster tier: fixtures that talk to the cluster hack/cluster/up.sh started.

Run by ``make e2e-cluster`` (hack/cluster/e2e.sh), never by ``make test``: it needs root,
the cached Kubernetes/Tekton builds and a running cluster.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.tools import REPO_ROOT

CACHE = Path(os.environ.get("ATTEST_CLUSTER_CACHE", "/var/cache/attest-step-cluster"))
STATE = Path(os.environ.get("ATTEST_CLUSTER_STATE", str(CACHE / "state")))
REGISTRY = "10.244.0.1:5055"
COSIGN = REPO_ROOT / ".tools" / "bin" / "cosign"


@dataclass(frozen=True)
class Cluster:
    kubeconfig: Path
    bin: Path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.bin / "kubectl"), *args],
            input=stdin, env=self.env, capture_output=True, text=True, check=False,
            timeout=timeout,
        )  # fmt: skip
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {proc.stderr.strip()}")
        return proc

    def json(self, *args: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.kubectl(*args, "-o", "json").stdout)
        return data

    def tool(self, name: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        binary = COSIGN if name == "cosign" else self.bin / name
        return subprocess.run(
            [str(binary), *args], env=self.env, capture_output=True, text=True, check=False,
            timeout=timeout,
        )  # fmt: skip


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    kubeconfig = STATE / "pki" / "admin.kubeconfig"
    if not kubeconfig.exists():
        pytest.fail(f"no cluster: {kubeconfig} is missing; run make e2e-cluster (or cluster-up)")
    c = Cluster(kubeconfig=kubeconfig, bin=CACHE / "bin")
    c.kubectl("get", "--raw", "/readyz")
    _persistent_volumes(c, 16)
    yield c


def _persistent_volumes(c: Cluster, count: int) -> None:
    """hostPath PersistentVolumes for the runs' volumeClaimTemplates (no provisioner here)."""
    base = STATE / "pv"
    docs = []
    for n in range(count):
        path = base / f"pv{n}"
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o777)
        docs.append({
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": f"attest-step-pv{n}", "labels": {"attest-step/tier": "cluster"}},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                     "persistentVolumeReclaimPolicy": "Retain",
                     "storageClassName": "", "hostPath": {"path": str(path)}},
        })  # fmt: skip
    c.kubectl(
        "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs})
    )
    # Volumes a deleted namespace released: empty them and make them available again.
    for pv in c.json("get", "pv", "-l", "attest-step/tier=cluster")["items"]:
        if pv["status"].get("phase") == "Released":
            path = Path(pv["spec"]["hostPath"]["path"])
            if path.is_relative_to(base):
                shutil.rmtree(path)
                path.mkdir(mode=0o777)
                path.chmod(0o777)
            c.kubectl("patch", "pv", pv["metadata"]["name"], "--type", "json",
                      "-p", '[{"op": "remove", "path": "/spec/claimRef"}]')  # fmt: skip
