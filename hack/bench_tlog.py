"""Bench section ``tlog``: sign one image and log it in a Rekor v2 log, attest-step against
cosign v3.

Both tools run as whole processes against the same local registry and the same local log
(rekor-tiles v2.3.0's POSIX server, as the tests run it: batches of at most 20 ms, a
checkpoint every 100 ms), with the same cosign-generated key, interleaved round by round:

- ``attest-step sign --registry-layout bundle --rekor-url LOG``;
- ``cosign sign --signing-config CONFIG`` (a SigningConfig whose only Rekor is LOG);
- ``attest-step sign --registry-layout bundle`` without a log, for the log's own cost.

Each round signs a fresh image. Reported: medians, the ratio to cosign, and what the log adds
to attest-step's sign. Informational (no target in the issue); attest-step runs from the
development venv (editable install, ~13 ms slower to start than the wheel, see bench_oci).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hack.bench_oci import timed  # noqa: E402
from tests.fixtures.oci_image import push_image  # noqa: E402
from tests.fixtures.registry import LocalRegistry  # noqa: E402
from tests.fixtures.rekor import LocalRekor  # noqa: E402

ATTEST_STEP = REPO / ".venv" / "bin" / "attest-step"
COSIGN = REPO / ".tools" / "bin" / "cosign"
REKOR = REPO / ".tools" / "bin" / "rekor-server-posix"
PASSWORD = "bench"


def run(quick: bool = False) -> dict[str, Any]:
    rounds = 3 if quick else 10
    with tempfile.TemporaryDirectory(prefix="bench-tlog-") as tmp_name:
        tmp = Path(tmp_name)
        env = {
            **os.environ,
            "COSIGN_PASSWORD": PASSWORD,
            "SIGSTORE_NO_CACHE": "1",
            "TUF_ROOT": str(tmp / "tuf"),
        }
        subprocess.run(
            [str(COSIGN), "generate-key-pair"], cwd=tmp, env=env, check=True, capture_output=True
        )
        registry = LocalRegistry(Path("/usr/bin/docker-registry"), tmp / "registry")
        log = LocalRekor(REKOR, tmp / "rekor")
        registry.start()
        log.start()
        try:
            root = log.trusted_root(tmp / "trusted_root.json")
            config = log.signing_config(tmp / "signing_config.json")
            reg = ["--allow-insecure-registry"]
            times: dict[str, list[float]] = {
                "attest_step_log": [],
                "cosign_log": [],
                "attest_step": [],
            }
            for n in range(rounds):
                refs = {name: push_image(registry.repo(f"bench-{name}-{n}")).ref for name in times}
                key = str(tmp / "cosign.key")
                runs = {
                    "attest_step_log": [str(ATTEST_STEP), "sign", "--key", key,
                                        "--registry-layout", "bundle", "--rekor-url", log.url,
                                        *reg, refs["attest_step_log"]],
                    "cosign_log": [str(COSIGN), "sign", "--key", key, "--signing-config",
                                   str(config), "--trusted-root", str(root), *reg, "-y",
                                   refs["cosign_log"]],
                    "attest_step": [str(ATTEST_STEP), "sign", "--key", key,
                                    "--registry-layout", "bundle", *reg, refs["attest_step"]],
                }  # fmt: skip
                for name, args in runs.items():
                    times[name].append(timed(args, env))
        finally:
            log.stop()
            registry.stop()
    medians = {name: statistics.median(values) for name, values in times.items()}
    return {
        "rounds": rounds,
        "median_seconds": {k: round(v, 3) for k, v in medians.items()},
        "ratio_attest_step_to_cosign_with_log": round(
            medians["attest_step_log"] / medians["cosign_log"], 3
        ),
        "log_adds_seconds": round(medians["attest_step_log"] - medians["attest_step"], 3),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
