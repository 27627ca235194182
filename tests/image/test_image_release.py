"""Dogfood: hack/release.sh pushes the image, signs and attests it with attest-step; real cosign
verifies the signature and the SLSA v1 provenance in a real registry."""

from __future__ import annotations

import base64
import json
import os
import subprocess

import pytest

from tests.fixtures.keys import KeyPair
from tests.fixtures.registry import LocalRegistry
from tests.fixtures.tools import REPO_ROOT, cosign_v3
from tests.image.conftest import BUILD_OUT, BuiltImage

pytestmark = [pytest.mark.image, pytest.mark.slow, pytest.mark.registry, pytest.mark.cosign]


def test_release_is_verified_by_real_cosign(
    built_image: BuiltImage, registry: LocalRegistry, real_cosign_key_pair: KeyPair
) -> None:
    cosign = cosign_v3()
    repository = registry.repo("attest-step")
    env = {**real_cosign_key_pair.env(), "ATTEST_STEP": str(REPO_ROOT / ".venv/bin/attest-step")}
    proc = subprocess.run(
        [
            str(REPO_ROOT / "hack/release.sh"),
            "--key",
            str(real_cosign_key_pair.key),
            "--repository",
            repository,
            "--allow-insecure-registry",
            "--out",
            str(BUILD_OUT),
            "--unlocked-dev-wheel",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        env=env,
        cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    image = f"{repository}@{built_image.digest}"
    common = [
        "--key",
        str(real_cosign_key_pair.pub),
        "--insecure-ignore-tlog",
        "--allow-insecure-registry",
    ]
    verify = subprocess.run(
        [str(cosign), "verify", *common, image],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stderr
    attested = subprocess.run(
        [str(cosign), "verify-attestation", "--type", "slsaprovenance1", *common, image],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert attested.returncode == 0, attested.stderr
    statement = json.loads(base64.b64decode(json.loads(attested.stdout.splitlines()[0])["payload"]))
    assert statement["subject"][0]["digest"]["sha256"] == built_image.digest.removeprefix("sha256:")
    deps = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    uris = [d["uri"] for d in deps]
    assert any(u.startswith("pkg:deb/debian/python3.11@") for u in uris)
    assert any(u.startswith("pkg:pypi/cryptography@") for u in uris)
    assert any(u.startswith("pkg:pypi/attest-step@") for u in uris)
    assert all(len(next(iter(d["digest"].values()))) in (40, 64) for d in deps)
    assert os.path.exists(BUILD_OUT / "attest-step" / "provenance.dsse.json")
