"""The ``ATTESTATION`` result against a real registry (issue 14, D1).

Tekton Chains' OCI storage turns every ``*ARTIFACT_OUTPUTS`` result into
``name.NewDigest(uri + "@" + digest)``; the old ``ATTESTATION_ARTIFACT_OUTPUTS`` had a uri
that already held ``@sha256:`` and made Chains fail (``chains.tekton.dev/signed: failed``).
The result is now named so that Chains ignores it, and its value is a bare repository and the
digest of the manifest that holds the attestation: ``uri@digest`` is a reference that
resolves, in the registry, to exactly that manifest.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from attest_step.imageref import parse_image_ref
from tests.fixtures.keys import PemKey
from tests.fixtures.oci_image import push_image
from tests.fixtures.registry import LocalRegistry

pytestmark = pytest.mark.registry

CLI = [sys.executable, "-m", "attest_step"]


def _manifest(registry: LocalRegistry, repository: str, digest: str) -> bytes:
    accept = "application/vnd.oci.image.manifest.v1+json"
    request = urllib.request.Request(
        f"{registry.url}/v2/{repository}/manifests/{digest}", headers={"Accept": accept}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return bytes(answer.read())


@pytest.mark.parametrize("layout", ["bundle", "tag"])
def test_the_attestation_result_is_a_reference_that_resolves(
    layout: str, registry: LocalRegistry, pem_keys: dict[str, PemKey], tmp_path: Path
) -> None:
    image = push_image(registry.repo("result"))
    results = tmp_path / "results"
    envelope = tmp_path / "envelope.json"
    proc = subprocess.run(
        [
            *CLI,
            *("attest", "--key", str(pem_keys["ecdsa-p256"].key), "--image", image.ref),
            *("--allow-insecure-registry", "--registry-layout", layout),
            *("--results-dir", str(results), "--output-file", str(envelope)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert not (results / "ATTESTATION_ARTIFACT_OUTPUTS").exists()
    value = json.loads((results / "ATTESTATION").read_bytes())
    assert set(value) == {"uri", "digest"}
    repository = image.ref.split("@", 1)[0]
    assert value["uri"] == repository  # bare: no tag, no digest
    ref = parse_image_ref(f"{value['uri']}@{value['digest']}")  # what Chains would build
    manifest = _manifest(registry, ref.repository, value["digest"])
    assert "sha256:" + hashlib.sha256(manifest).hexdigest() == value["digest"]
    envelope_digest = "sha256:" + hashlib.sha256(envelope.read_bytes()).hexdigest()
    if layout == "tag":
        # the .att manifest: one of its layers is this envelope
        layers = [layer["digest"] for layer in json.loads(manifest)["layers"]]
        assert envelope_digest in layers
    else:
        # the bundle referrer: its one layer is a Sigstore bundle holding this envelope
        doc = json.loads(manifest)
        assert doc["subject"]["digest"] == image.digest
        bundle = json.loads(_blob(registry, ref.repository, doc["layers"][0]["digest"]))
        stored = bundle["dsseEnvelope"]
        mine = json.loads(envelope.read_bytes())
        assert stored["payload"] == mine["payload"]
        assert base64.b64decode(stored["signatures"][0]["sig"]) == base64.b64decode(
            mine["signatures"][0]["sig"]
        )


def _blob(registry: LocalRegistry, repository: str, digest: str) -> bytes:
    url = f"{registry.url}/v2/{repository}/blobs/{digest}"
    with urllib.request.urlopen(url, timeout=10) as answer:
        return bytes(answer.read())
