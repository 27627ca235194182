"""`make bench` section ``cluster``: signature latency, attest-step in the pod vs Tekton Chains.

Opt-in (``ATTEST_BENCH_CLUSTER=1``) and needs the real-cluster tier running (``make
cluster-up``, root); otherwise the section says so and measures nothing. Figures: docs/e2e.md.
For each of N kaniko-chains TaskRuns (default 10; 3 with ``--quick``),
each pushing to its own repository so nothing else writes there, a poller reads the
repository's cosign tags (``sha256-<digest>.sig`` / ``.att``) every 0.2 s and records when the
first and the second layer appear. The first is attest-step's (written by the attest step,
before the TaskRun completes: checked), the second is Chains' (written by its controller after
completion: checked). Latency is measured from the build step's end (``finishedAt`` of
``build-and-push``, whole seconds, so each figure is rounded down by up to 1 s, the same for
both writers).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("ATTEST_CLUSTER_CACHE", "/var/cache/attest-step-cluster"))
STATE = Path(os.environ.get("ATTEST_CLUSTER_STATE", str(CACHE / "state")))
REGISTRY = "10.244.0.1:5055"
NS = "bench-latency"
POLL = 0.2
PASSWORD = "bench-only"


class Cluster:
    def __init__(self) -> None:
        self.kubeconfig = STATE / "pki" / "admin.kubeconfig"
        self.env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        proc = subprocess.run(
            [str(CACHE / "bin" / "kubectl"), *args], input=stdin, env=self.env,
            capture_output=True, text=True, check=False, timeout=300,
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args[:3])}: {proc.stderr.strip()[:300]}")
        return proc.stdout

    def json(self, *args: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.kubectl(*args, "-o", "json"))
        return data


def running(c: Cluster) -> bool:
    if not c.kubeconfig.exists() or not (STATE / "images.json").exists():
        return False
    try:
        c.kubectl("get", "--raw", "/readyz")
    except (RuntimeError, subprocess.TimeoutExpired):
        return False
    return True


def localize(text: str, built: dict[str, str]) -> str:
    mapping = json.loads((REPO / "images" / "upstream-map.json").read_text())["map"]
    for upstream, name in mapping.items():
        if "@sha256:" in upstream and name in built:
            text = text.replace(upstream, built[name])
    return text.replace("registry.local:5000", REGISTRY)


def setup(c: Cluster, built: dict[str, str]) -> None:
    c.kubectl("delete", "namespace", NS, "--ignore-not-found", "--wait=true")
    c.kubectl("create", "namespace", NS)
    c.kubectl("label", "namespace", NS, "pod-security.kubernetes.io/enforce=baseline")
    for path in ["stepaction/attest/0.1/attest.yaml", "task/git-source/0.1/git-source.yaml",
                 "task/kaniko-chains/0.1/kaniko-chains.yaml"]:  # fmt: skip
        c.kubectl(
            "-n",
            NS,
            "apply",
            "-f",
            "-",
            stdin=localize((REPO / "catalog" / path).read_text(), built),
        )
    resources = (REPO / "catalog/pipeline/kaniko-chains/0.1/tests/resources.yaml").read_text()
    seed = next(d for d in resources.split("\n---\n") if "name: source-seed" in d)
    c.kubectl("-n", NS, "apply", "-f", "-", stdin=seed)
    with tempfile.TemporaryDirectory() as work:
        proc = subprocess.run(
            [str(REPO / ".tools" / "bin" / "cosign"), "generate-key-pair", f"k8s://{NS}/signing-secrets"],
            cwd=work, env={**c.env, "COSIGN_PASSWORD": PASSWORD},
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"cosign generate-key-pair: {proc.stderr.strip()[:300]}")
    c.kubectl("-n", NS, "create", "serviceaccount", "builder")
    c.kubectl("-n", NS, "apply", "-f", "-", stdin=json.dumps({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "source"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "",
                 "resources": {"requests": {"storage": "100Mi"}}}}))  # fmt: skip
    run = taskrun("seed", {"name": "git-source"}, [], [
        {"name": "output", "persistentVolumeClaim": {"claimName": "source"}},
        {"name": "seed", "configMap": {"name": "source-seed"}}])  # fmt: skip
    c.kubectl("-n", NS, "create", "-f", "-", stdin=json.dumps(run))
    wait(c, "seed", 300)


def taskrun(name: str, ref: dict[str, str], params: list[dict[str, Any]],
            workspaces: list[dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    return {
        "apiVersion": "tekton.dev/v1", "kind": "TaskRun", "metadata": {"name": name},
        "spec": {"taskRef": ref, "params": params, "workspaces": workspaces,
                 "serviceAccountName": "builder",
                 "podTemplate": {"automountServiceAccountToken": False,
                                 "securityContext": {"fsGroup": 65532}}},
    }  # fmt: skip


def wait(c: Cluster, name: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        obj = c.json("-n", NS, "get", "taskrun", name)
        for cond in obj.get("status", {}).get("conditions") or []:
            if cond.get("type") == "Succeeded" and cond.get("status") == "True":
                return obj
            if cond.get("type") == "Succeeded" and cond.get("status") == "False":
                raise RuntimeError(f"TaskRun {name} failed: {cond.get('message', '')[:300]}")
        time.sleep(1)
    raise RuntimeError(f"TaskRun {name} did not finish in {timeout}s")


def get_json(url: str, accept: str = "") -> dict[str, Any] | None:
    req = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            data: dict[str, Any] = json.loads(resp.read(1 << 20))
            return data
    except OSError:
        return None


MANIFEST = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


def layers(repo: str, tag: str) -> int:
    doc = get_json(f"http://{REGISTRY}/v2/{repo}/manifests/{tag}", MANIFEST)
    return len(doc.get("layers") or []) if doc else 0


def parse_time(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def one_run(c: Cluster, n: int, token: str) -> dict[str, Any]:
    name = f"latency-{n}"
    # A repository and an image of this bench run alone: the registry outlives the cluster,
    # and tags left by an earlier run would be seen at once (negative latencies).
    repo = f"bench/latency-{token}-{n}"
    if (get_json(f"http://{REGISTRY}/v2/{repo}/tags/list") or {}).get("tags"):
        return {"run": name, "complete": False, "fresh": False}
    seen: dict[str, float] = {}
    run = taskrun(name, {"name": "kaniko-chains"}, [
        {"name": "IMAGE", "value": f"{REGISTRY}/{repo}:latest"},
        {"name": "EXTRA_ARGS",
         "value": ["--insecure", "--skip-tls-verify", f"--label=bench-run={token}-{n}"]},
        {"name": "ALLOW_INSECURE_REGISTRY", "value": "true"}],
        [{"name": "source", "persistentVolumeClaim": {"claimName": "source"}}])  # fmt: skip
    c.kubectl("-n", NS, "create", "-f", "-", stdin=json.dumps(run))
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and len(seen) < 4:
        tags = (get_json(f"http://{REGISTRY}/v2/{repo}/tags/list") or {}).get("tags") or []
        now = time.time()
        for tag in tags:
            for kind in ("sig", "att"):
                if tag.endswith(f".{kind}"):
                    count = layers(repo, tag)
                    for i in (1, 2):
                        if count >= i:
                            seen.setdefault(f"{kind}{i}", now)
        time.sleep(POLL)
    obj = wait(c, name, 60)
    build = next(s for s in obj["status"]["steps"] if s["name"] == "build-and-push")
    build_end = parse_time(build["terminated"]["finishedAt"])
    completed = parse_time(obj["status"]["completionTime"])
    out: dict[str, Any] = {"run": name, "complete": len(seen) == 4, "fresh": True}
    for key, when in seen.items():
        out[f"{key}_after_build_s"] = round(when - build_end, 2)
    # Who wrote what: the first layers before the TaskRun completed (the pod), the second after.
    out["first_before_completion"] = all(
        seen.get(k, 1e18) <= completed + 1 for k in ("sig1", "att1")
    )
    out["second_after_completion"] = all(seen.get(k, 0) >= completed - 1 for k in ("sig2", "att2"))
    return out


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {"n": len(values), "median": round(statistics.median(values), 2), "min": min(values),
            "max": max(values), "stdev": round(statistics.pstdev(values), 2)}  # fmt: skip


def run(quick: bool = False) -> dict[str, Any]:
    if os.environ.get("ATTEST_BENCH_CLUSTER") != "1":
        return {"skipped": "opt-in: ATTEST_BENCH_CLUSTER=1 with the real-cluster tier running "
                "(make cluster-up, root; docs/e2e.md)"}  # fmt: skip
    c = Cluster()
    if not running(c):
        return {"skipped": "no real-cluster tier running (make cluster-up, root; docs/e2e.md)"}
    built = json.loads((STATE / "images.json").read_text())
    if "kaniko" not in built:
        return {"skipped": "no kaniko image in the tier (KANIKO_SRC unset); never a stand-in"}
    count = int(os.environ.get("BENCH_CLUSTER_RUNS", "3" if quick else "10"))
    setup(c, built)
    token = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S")
    runs = [one_run(c, n, token) for n in range(count)]
    section: dict[str, Any] = {
        "runs": runs,
        "poll_interval_s": POLL,
        "clock": "build step finishedAt (1 s resolution) to the first poll that saw the layer",
    }
    for key, label in [("sig1", "attest_step_signature"), ("att1", "attest_step_attestation"),
                       ("sig2", "chains_signature"), ("att2", "chains_attestation")]:  # fmt: skip
        section[label] = summary(
            [r[f"{key}_after_build_s"] for r in runs if f"{key}_after_build_s" in r]
        )
    c.kubectl("delete", "namespace", NS, "--wait=false")
    return section
