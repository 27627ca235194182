"""Credentials from the docker config (DOCKER_CONFIG), against a registry with htpasswd auth."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from attest_step.errors import RegistryError
from attest_step.imageref import parse_image_ref
from attest_step.keys.local import LocalSigner, PublicKeyVerifier
from attest_step.oci.options import RegistryOptions
from attest_step.oci.registry import RegistryClient
from attest_step.oci.retry import Deadline
from attest_step.oci.sign import sign_image
from attest_step.oci.verify_sig import verify_image_signatures
from tests.fixtures.oci_image import build_image
from tests.fixtures.registry import LocalRegistry, login_registry, write_docker_config

pytestmark = pytest.mark.registry

USER, PASSWORD = "builder", "s3cret-pass"


@pytest.fixture
def auth_registry(tmp_path: Path) -> Iterator[LocalRegistry]:
    with login_registry(tmp_path / "reg", USER, PASSWORD) as reg:
        yield reg


def test_docker_config_credentials_are_used(
    auth_registry: LocalRegistry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    p256_signer: tuple[LocalSigner, PublicKeyVerifier],
) -> None:
    signer, verifier = p256_signer
    opts = RegistryOptions(allow_insecure_registry=True, layout="both", timeout_seconds=20)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "empty"))
    ref = parse_image_ref(f"{auth_registry.repo('auth')}@{build_image().digest}")
    with pytest.raises(RegistryError, match=r"HTTP 401.*log in"):
        sign_image(ref, signer, {}, out_dir=tmp_path / "s0", registry=opts)

    monkeypatch.setenv(
        "DOCKER_CONFIG",
        str(write_docker_config(tmp_path / "cfg", auth_registry.host, USER, PASSWORD)),
    )
    image = build_image()
    _push_with_auth(auth_registry.host, ref.repository, image.blobs, image.manifest)
    sign_image(ref, signer, {"a": "b"}, out_dir=tmp_path / "s1", registry=opts)
    verified = verify_image_signatures(ref, verifier, {"a": "b"}, opts)
    assert sorted(v.source for v in verified) == ["bundle", "tag"]


def _push_with_auth(host: str, repository: str, blobs: dict[str, bytes], manifest: bytes) -> None:
    client = RegistryClient(
        host, RegistryOptions(allow_insecure_registry=True), deadline=Deadline(20)
    )
    for data in blobs.values():
        client.put_blob(repository, data)
    client.put_manifest(
        repository, "latest", manifest, "application/vnd.oci.image.manifest.v1+json"
    )
