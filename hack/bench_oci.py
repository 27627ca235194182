"""Bench section ``oci``: sign + attach + verify one image, attest-step against cosign.

Both tools run as whole processes (start-up, key decryption, registry traffic) against the
same local registry, with the same cosign-generated key, interleaved round by round so load
changes hit both alike. Compared like for like:

- ``tag``: ``attest-step sign --registry-layout tag`` vs ``cosign sign
  --new-bundle-format=false --tlog-upload=false`` (the ``.sig`` tag), then each tool's
  ``verify`` of its own signature;
- ``bundle``: ``attest-step sign --registry-layout bundle`` vs cosign v3's default
  (Sigstore bundle referrer, empty signing config).

Target: attest-step's median sign time is no more than cosign's (ratio <= 1.0).
``load_average_1min`` (before, after) says how busy the machine was.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fixtures.oci_image import build_image, push_image  # noqa: E402
from tests.fixtures.registry import LocalRegistry  # noqa: E402

ATTEST_STEP = Path(
    os.environ.get("ATTEST_STEP_BENCH_BIN") or REPO / ".venv" / "bin" / "attest-step"
)
COSIGN = REPO / ".tools" / "bin" / "cosign"
PASSWORD = "bench"


def _timed(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    res = subprocess.run(args, env=env, capture_output=True, text=True, check=False, timeout=120)
    elapsed = time.perf_counter() - started
    if res.returncode != 0:
        raise RuntimeError(f"{Path(args[0]).name} {args[1]} failed: {res.stderr.strip()[-300:]}")
    return elapsed


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def run(quick: bool = False) -> dict[str, Any]:
    if not COSIGN.exists():
        return {"skipped": f"{COSIGN} not installed (run hack/install-tools.sh)"}
    rounds = 3 if quick else 7
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-oci-") as tmp:
        work = Path(tmp)
        env = {**os.environ, "COSIGN_PASSWORD": PASSWORD, "TUF_ROOT": str(work / "tuf")}
        subprocess.run(
            [str(COSIGN), "generate-key-pair"], cwd=work, env=env, check=True, capture_output=True
        )
        subprocess.run(
            [str(COSIGN), "signing-config", "create", "--out", str(work / "sc.json")],
            env=env,
            check=True,
            capture_output=True,
        )
        key, pub = str(work / "cosign.key"), str(work / "cosign.pub")
        registry = LocalRegistry(Path("/usr/bin/docker-registry"), work / "registry")
        registry.start()
        try:
            times: dict[str, list[float]] = {}

            def record(name: str, seconds: float) -> None:
                times.setdefault(name, []).append(seconds)

            for i in range(rounds):
                for layout in ("tag", "bundle"):
                    ours = push_image(registry.repo("ours"), build_image(label=f"o{layout}{i}"))
                    theirs = push_image(registry.repo("cos"), build_image(label=f"c{layout}{i}"))
                    record(
                        f"attest_step_sign_{layout}",
                        _timed(
                            [
                                str(ATTEST_STEP),
                                "sign",
                                "--key",
                                key,
                                "--allow-insecure-registry",
                                "--registry-layout",
                                layout,
                                ours.ref,
                            ],
                            env,
                        ),
                    )
                    cosign_flags = (
                        [
                            "--new-bundle-format=false",
                            "--tlog-upload=false",
                            "--use-signing-config=false",
                        ]
                        if layout == "tag"
                        else ["--signing-config", str(work / "sc.json")]
                    )
                    record(
                        f"cosign_sign_{layout}",
                        _timed(
                            [
                                str(COSIGN),
                                "sign",
                                "--key",
                                key,
                                "--allow-insecure-registry",
                                "-y",
                                *cosign_flags,
                                theirs.ref,
                            ],
                            env,
                        ),
                    )
                    record(
                        f"attest_step_verify_{layout}",
                        _timed(
                            [
                                str(ATTEST_STEP),
                                "verify",
                                "--key",
                                pub,
                                "--allow-insecure-registry",
                                ours.ref,
                            ],
                            env,
                        ),
                    )
                    record(
                        f"cosign_verify_{layout}",
                        _timed(
                            [
                                str(COSIGN),
                                "verify",
                                "--key",
                                pub,
                                "--insecure-ignore-tlog",
                                "--allow-insecure-registry",
                                theirs.ref,
                            ],
                            env,
                        ),
                    )
        finally:
            registry.stop()
    medians = {name: _median(values) for name, values in sorted(times.items())}
    targets = []
    for layout in ("tag", "bundle"):
        ours_s = medians[f"attest_step_sign_{layout}"]
        cos_s = medians[f"cosign_sign_{layout}"]
        targets.append(
            {
                "name": f"sign_{layout}_time_vs_cosign",
                "measured": round(ours_s / cos_s, 3),
                "target": 1.0,
                "unit": "x cosign",
                "better": "lower",
            }
        )
    ratios = {
        f"{step}_{layout}_ratio": round(
            medians[f"attest_step_{step}_{layout}"] / medians[f"cosign_{step}_{layout}"], 3
        )
        for step in ("sign", "verify")
        for layout in ("tag", "bundle")
    }
    return {
        "rounds": rounds,
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "median_seconds": medians,
        "all_seconds": {
            name: [round(v, 3) for v in values] for name, values in sorted(times.items())
        },
        "ratios": ratios,
        "targets": targets,
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
