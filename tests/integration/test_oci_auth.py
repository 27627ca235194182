"""Credentials from the docker config (DOCKER_CONFIG), against a registry with htpasswd auth."""

from __future__ import annotations

import base64
import json
import warnings
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
from tests.fixtures.registry import LocalRegistry
from tests.fixtures.tools import require_tool

pytestmark = pytest.mark.registry

USER, PASSWORD = "builder", "s3cret-pass"


def _bcrypt(password: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # noqa: PLC0415 - deprecated module, test-only (cheap bcrypt via libcrypt)

        return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))


@pytest.fixture
def auth_registry(tmp_path: Path) -> Iterator[LocalRegistry]:
    binary = require_tool("docker-registry", hint="apt-get install docker-registry")
    reg = LocalRegistry(binary, tmp_path / "reg", htpasswd=f"{USER}:{_bcrypt(PASSWORD)}\n")
    reg.start()
    try:
        yield reg
    finally:
        reg.stop()


def _docker_config(directory: Path, host: str) -> Path:
    directory.mkdir()
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (directory / "config.json").write_text(json.dumps({"auths": {host: {"auth": token}}}))
    return directory


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

    monkeypatch.setenv("DOCKER_CONFIG", str(_docker_config(tmp_path / "cfg", auth_registry.host)))
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
