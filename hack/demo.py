"""`make demo`: the catalog's hermetic pipeline, locally, signed, attested and verified.

Sets up what it needs (a local registry when docker-registry is installed, a fresh key pair
from `attest-step generate-key-pair`), runs catalog/pipeline/hermetic-build's test
PipelineRun through the local executor (tests/e2e/executor: Tekton's own code decides,
steps run as local processes) and prints a short summary. Output: demo-out/.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e.executor import runs_in  # noqa: E402
from tests.e2e.executor.catalog import catalog_test_files, executor_for  # noqa: E402
from tests.fixtures.registry import LocalRegistry  # noqa: E402

OUT = REPO / "demo-out"
TEST_DIR = REPO / "catalog" / "pipeline" / "hermetic-build" / "0.1" / "tests"
PASSWORD = "demo-password"


def main() -> int:
    start = time.monotonic()
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir()
    env = {**os.environ, "COSIGN_PASSWORD": PASSWORD}
    keys = OUT / "keys"
    keys.mkdir()
    subprocess.run(
        ["attest-step", "generate-key-pair", "--output-key-prefix", str(keys / "cosign")],
        env=env,
        check=True,
    )
    registry: LocalRegistry | None = None
    binary = shutil.which("docker-registry")
    if binary:
        registry = LocalRegistry(Path(binary), OUT / "registry")
        registry.start()
    try:
        ex = executor_for(TEST_DIR, OUT / "run", registry=registry.host if registry else None)
        pub = (keys / "cosign.pub").read_bytes()
        ex.add_secret(
            "signing-secrets",
            {
                "cosign.key": (keys / "cosign.key").read_bytes(),
                "cosign.pub": pub,
                "cosign.password": PASSWORD.encode(),
            },
        )
        ex.cluster.configmaps["signing-public-key"] = {"cosign.pub": pub}
        logs = OUT / "run.log"
        with logs.open("w") as log:
            ex.log = lambda line: print(line, file=log)
            outcomes = [ex.run(r) for r in runs_in(catalog_test_files(TEST_DIR))]
    finally:
        if registry:
            registry.stop()
    ok = all(o.succeeded for o in outcomes)
    print(summary(outcomes, keys, logs, time.monotonic() - start))
    return 0 if ok else 1


def summary(outcomes: list[Any], keys: Path, logs: Path, seconds: float) -> str:
    lines = []
    for o in outcomes:
        lines.append(f"{o.kind} {o.name}: {'Succeeded' if o.succeeded else 'FAILED'} ({o.message})")
        for tr in o.taskruns:
            task = (
                tr["metadata"]
                .get("labels", {})
                .get("tekton.dev/pipelineTask", tr["metadata"]["name"])
            )
            cond: dict[str, Any] = next(
                (c for c in tr["status"].get("conditions", []) if c["type"] == "Succeeded"), {}
            )
            lines.append(f"  task {task:<13} {cond.get('reason', '?')}")
            pod_dirs = sorted((OUT / "run" / "pods").glob(f"*-{tr['metadata']['name']}"))
            for script in sorted(pod_dirs[0].glob("containers/*/run.sh")) if pod_dirs else []:
                if "TEKTON_HERMETIC=1" in script.read_text():
                    step = script.parent.name.split("-", 1)[1]
                    lines.append(
                        f"    {step}: network-isolated (TEKTON_HERMETIC=1: Tekton's entrypoint "
                        "started it in new net/pid/user/mount namespaces, loopback only)"
                    )
            for r in tr["status"].get("results") or []:
                value = r["value"] if isinstance(r["value"], str) else json.dumps(r["value"])
                lines.append(f"    result {r['name']} = {value}")
        skipped = o.obj.get("status", {}).get("skippedTasks") or []
        for s in skipped:
            lines.append(f"  skipped {s['name']}: {s.get('reason')}")
    pvc = sorted((OUT / "run" / "cluster" / "pvc").glob("*/.attest/provenance.dsse.json"))
    if pvc:
        lines.append(f"provenance envelope: {pvc[0]}")
        lines.append(
            f"check it: attest-step verify-attestation --key {keys / 'cosign.pub'} "
            f"--type slsaprovenance1 --envelope {pvc[0]}"
        )
    lines.append(f"keys: {keys}/cosign.key (password {PASSWORD!r}), cosign.pub")
    lines.append(f"full log: {logs}   time: {seconds:.1f}s")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
