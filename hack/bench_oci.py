"""Bench section ``oci``: sign + attach + verify one image, attest-step against cosign.

Both tools run as whole processes (start-up, key decryption, registry traffic) against the
same local registry, with the same cosign-generated key, interleaved round by round so load
changes hit both alike. Compared like for like:

- ``tag``: ``attest-step sign --registry-layout tag`` vs ``cosign sign
  --new-bundle-format=false --tlog-upload=false`` (the ``.sig`` tag), then each tool's
  ``verify`` of its own signature;
- ``bundle``: ``attest-step sign --registry-layout bundle`` vs cosign v3's default
  (Sigstore bundle referrer, empty signing config).

Target (issue 15): attest-step's median sign time is at most 1.2x cosign's, documented APIs
only.
``load_average_1min`` (before, after) says how busy the machine was.

attest-step is timed as users run it: the wheel (``pip wheel``), installed non-editable in
a fresh virtual environment whose dependencies are the development venv's (a ``.pth``
line), as the step image installs it; cosign is timed as ``go install`` built it. The
editable development install pays ~13 ms more per process for its import hook.
When Debian's CPython of the same version is installed too (``/usr/bin/pythonX.Y``), the
wheel is also installed on it and timed in the same rounds (``attest_step_system_python``),
and the target is graded on that installation: the step image's CPython is an optimised
build (PGO and LTO) like Debian's, which runs pure Python ~35 % faster than a plain source
build such as pyenv's default. ``ratios`` reports both installations.
``ATTEST_STEP_BENCH_BIN=/path/to/attest-step`` times that one installation instead.
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

from hack.wheel_install import build_wheel, system_python, wheel_install  # noqa: E402
from tests.fixtures.oci_image import build_image, push_image  # noqa: E402
from tests.fixtures.registry import LocalRegistry  # noqa: E402

COSIGN = REPO / ".tools" / "bin" / "cosign"
PASSWORD = "bench"


def timed(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    res = subprocess.run(args, env=env, capture_output=True, text=True, check=False, timeout=120)
    elapsed = time.perf_counter() - started
    if res.returncode != 0:
        raise RuntimeError(f"{Path(args[0]).name} {args[1]} failed: {res.stderr.strip()[-300:]}")
    return elapsed


def _interpreter(python: str) -> str:
    """e.g. ``CPython 3.11.2 /usr/bin/python3.11`` for a venv's python."""
    code = (
        "import sys, platform; print(platform.python_implementation(), "
        "platform.python_version(), getattr(sys, '_base_executable', sys.executable))"
    )
    done = subprocess.run([python, "-c", code], check=True, capture_output=True, text=True)
    return done.stdout.strip()


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def run(quick: bool = False) -> dict[str, Any]:
    if not COSIGN.exists():
        return {"skipped": f"{COSIGN} not installed (run hack/install-tools.sh)"}
    rounds = 3 if quick else 9
    with tempfile.TemporaryDirectory(prefix="bench-oci-") as tmp:
        work = Path(tmp)
        chosen = os.environ.get("ATTEST_STEP_BENCH_BIN")
        installs: dict[str, Path] = {}
        interpreters: dict[str, str] = {}
        if chosen:
            installs["attest_step"] = Path(chosen)
            interpreters["attest_step"] = chosen
        else:
            wheel = build_wheel(work / "dist")
            pythons = {"attest_step": sys.executable}
            system = system_python()
            if system:
                pythons["attest_step_system_python"] = system
            for label, python in pythons.items():
                installs[label] = wheel_install(wheel, work / label, python)
                interpreters[label] = _interpreter(str(installs[label].parent / "python"))
        load_before = os.getloadavg()[0]
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
                    images = {
                        label: push_image(
                            registry.repo("ours"), build_image(label=f"{label}{layout}{i}")
                        )
                        for label in installs
                    }
                    theirs = push_image(registry.repo("cos"), build_image(label=f"c{layout}{i}"))
                    for label, binary in installs.items():
                        record(
                            f"{label}_sign_{layout}",
                            timed(
                                [
                                    str(binary),
                                    "sign",
                                    "--key",
                                    key,
                                    "--allow-insecure-registry",
                                    "--registry-layout",
                                    layout,
                                    images[label].ref,
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
                        timed(
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
                        timed(
                            [
                                str(installs["attest_step"]),
                                "verify",
                                "--key",
                                pub,
                                "--allow-insecure-registry",
                                images["attest_step"].ref,
                            ],
                            env,
                        ),
                    )
                    record(
                        f"cosign_verify_{layout}",
                        timed(
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
    # The target is graded on the installation closest to the step image: its CPython is an
    # optimised build (PGO, LTO), like Debian's and unlike a plain source build such as
    # pyenv's default; the other installation's ratios are reported beside it.
    graded = (
        "attest_step_system_python" if "attest_step_system_python" in installs else "attest_step"
    )
    targets = [
        {
            "name": f"sign_{layout}_time_vs_cosign",
            "measured": round(
                medians[f"{graded}_sign_{layout}"] / medians[f"cosign_sign_{layout}"], 3
            ),
            "target": 1.2,
            "unit": "x cosign",
            "better": "lower",
        }
        for layout in ("tag", "bundle")
    ]
    ratios = {
        f"{label}_sign_{layout}_ratio": round(
            medians[f"{label}_sign_{layout}"] / medians[f"cosign_sign_{layout}"], 3
        )
        for label in installs
        for layout in ("tag", "bundle")
    }
    ratios.update(
        {
            f"attest_step_verify_{layout}_ratio": round(
                medians[f"attest_step_verify_{layout}"] / medians[f"cosign_verify_{layout}"], 3
            )
            for layout in ("tag", "bundle")
        }
    )
    return {
        "rounds": rounds,
        "graded_installation": graded,
        "installations": {
            label: f"{interpreters[label]} ({'as given' if chosen else 'wheel, fresh venv'})"
            for label in installs
        },
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
