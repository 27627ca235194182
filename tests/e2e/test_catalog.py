"""The catalog's own test runs (catalog/*/*/*/tests/*.yaml), run locally with real parts.

Real registry (registry.local:5000 in the runs is mapped to it), a fresh cosign key pair
made with real cosign and served as the Secret ``signing-secrets``, kaniko replaced by
the LOCAL STAND-IN (tests/e2e/executor/kaniko_standin.py). Every image a run reports
(IMAGE_URL/IMAGE_DIGEST results) is then checked from the registry with ``attest-step
verify``, real ``cosign verify`` and ``cosign verify-attestation``, and must fail with
another key pair.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.executor import RunOutcome, runs_in
from tests.e2e.executor.catalog import (
    catalog_test_dirs,
    catalog_test_files,
    executor_for,
    use_signing_keys,
)
from tests.e2e.test_executor import built  # noqa: F401  (fixture)
from tests.fixtures.registry import LocalRegistry
from tests.fixtures.tools import cosign_v3

pytestmark = [pytest.mark.e2e, pytest.mark.netns, pytest.mark.registry, pytest.mark.slow]

DIRS = [d for d in catalog_test_dirs() if runs_in(catalog_test_files(d))]


ATTEST_STEP = str(Path(sys.executable).parent / "attest-step")


def make_keys(cosign: Path, where: Path, password: str) -> Path:
    where.mkdir()
    subprocess.run(
        [str(cosign), "generate-key-pair"],
        cwd=where,
        env={**os.environ, "COSIGN_PASSWORD": password},
        check=True,
        capture_output=True,
    )
    return where


def reported_images(outcome: RunOutcome) -> dict[str, str]:
    """``REPOSITORY@sha256:HEX`` -> the IMAGE_URL of each run/TaskRun reporting an image."""
    images = {}
    for obj in [outcome.obj, *outcome.taskruns]:
        results = {r["name"]: r["value"] for r in obj.get("status", {}).get("results") or []}
        if "IMAGE_URL" in results and "IMAGE_DIGEST" in results:
            url = str(results["IMAGE_URL"])
            repository = url.rsplit(":", 1)[0] if ":" in url.rsplit("/", 1)[-1] else url
            images[f"{repository}@{results['IMAGE_DIGEST']}"] = url
    return images


def verify_from_registry(
    image: str, pub: Path, cosign: Path
) -> dict[str, subprocess.CompletedProcess[str]]:
    """The three real checks of a pushed image, by the commands a user runs."""
    insecure = "--allow-insecure-registry"
    commands = {
        "attest-step verify": [ATTEST_STEP, "verify", "--key", str(pub), insecure, image],
        "attest-step verify-attestation": [
            ATTEST_STEP,
            "verify-attestation",
            "--key",
            str(pub),
            "--type",
            "slsaprovenance1",
            insecure,
            "--output",
            "json",
            image,
        ],
        "cosign verify": [
            str(cosign),
            "verify",
            "--key",
            str(pub),
            "--insecure-ignore-tlog",
            insecure,
            image,
        ],
        "cosign verify-attestation": [
            str(cosign),
            "verify-attestation",
            "--key",
            str(pub),
            "--type",
            "slsaprovenance1",
            "--insecure-ignore-tlog",
            insecure,
            image,
        ],
    }
    return {
        what: subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
        for what, argv in commands.items()
    }


def check_images(
    outcomes: list[RunOutcome], keys: Path, other_keys: Path, cosign: Path, *, kaniko: bool
) -> None:
    for outcome in outcomes:
        for image, url in reported_images(outcome).items():
            good = verify_from_registry(image, keys / "cosign.pub", cosign)
            for what, proc in good.items():
                assert proc.returncode == 0, f"{what} {image}: {proc.stdout}{proc.stderr}"
            statement: dict[str, Any] = json.loads(good["attest-step verify-attestation"].stdout)[
                "statement"
            ]
            assert {s["digest"]["sha256"] for s in statement["subject"]} == {
                image.rsplit("@sha256:", 1)[1]
            }
            # The StepAction's PARAMS reached externalParameters.params.
            params = statement["predicate"]["buildDefinition"]["externalParameters"]["params"]
            assert params["IMAGE"] == url, params
            assert params["ALLOW_INSECURE_REGISTRY"] == "true"
            if kaniko:  # the array param that changes what kaniko builds (issue 14)
                assert params["EXTRA_ARGS"] == ["--insecure", "--skip-tls-verify"], params
            # Another key pair (made by cosign) must not verify anything.
            for what, proc in verify_from_registry(
                image, other_keys / "cosign.pub", cosign
            ).items():
                assert proc.returncode != 0, f"{what} {image} verified with the wrong key"


@pytest.mark.parametrize(
    "test_dir", DIRS, ids=[str(d.parent.relative_to(d.parents[3])) for d in DIRS]
)
def test_catalog_runs(
    built: None,  # noqa: F811
    test_dir: Path,
    tmp_path: Path,
    registry: LocalRegistry,
) -> None:
    cosign = cosign_v3()
    keys = make_keys(cosign, tmp_path / "keys", "e2e-password")
    ex = executor_for(test_dir, tmp_path / "run", registry=registry.host)
    use_signing_keys(ex, keys, b"e2e-password")
    failures = []
    outcomes = []
    for run in runs_in(catalog_test_files(test_dir)):
        outcome = ex.run(run)
        outcomes.append(outcome)
        if not outcome.succeeded:
            tail = "\n".join(f"--- {k}\n{v[-1500:]}" for k, v in outcome.logs.items() if v.strip())
            failures.append(
                f"{outcome.kind} {outcome.name}: {outcome.reason}: {outcome.message}\n{tail}"
            )
    assert not failures, "\n\n".join(failures)
    if "kaniko-chains" in test_dir.parts:
        assert any(reported_images(o) for o in outcomes), "the kaniko runs reported no image"
    if any(reported_images(o) for o in outcomes):
        other = make_keys(cosign, tmp_path / "other-keys", "other")
        check_images(outcomes, keys, other, cosign, kaniko="kaniko-chains" in test_dir.parts)
