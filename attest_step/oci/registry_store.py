"""The registry backend of :class:`attest_step.oci.store.Store`: one repository, through
:class:`attest_step.oci.registry.RegistryClient` (oras' session and token auth, the retry
policy, the deadline, the size limits and the digest checks all live there)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from attest_step.errors import AttestStepError, RegistryError
from attest_step.imageref import ImageRef
from attest_step.oci.blobstream import Readable, VerifiedStream
from attest_step.oci.registry import RegistryClient
from attest_step.oci.store import Background, Manifest
from attest_step.oci.types import Descriptor


class RegistryStore:
    """``host/repository`` of a registry as a :class:`~attest_step.oci.store.Store`."""

    kind = "registry"
    exclusive = False

    def __init__(self, client: RegistryClient, repository: str) -> None:
        self.client = client
        self.repository = repository
        self.name = f"{client.host}/{repository}"

    def location(self, reference: str) -> str:
        return f"{self.name}{'@' if ':' in reference else ':'}{reference}"

    def get_manifest(self, reference: str, *, size: int | None = None) -> Manifest | None:
        return self.client.get_manifest(self.repository, reference, size=size)

    def manifest_digest(self, reference: str) -> str | None:
        return self.client.manifest_digest(self.repository, reference)

    def put_manifest(self, reference: str, data: bytes, media_type: str) -> str:
        return self.client.put_manifest(self.repository, reference, data, media_type)

    def list_tags(self) -> list[str]:
        return self.client.list_tags(self.repository)

    def referrers(self, digest: str) -> list[dict[str, Any]] | None:
        return self.client.referrers(self.repository, digest)

    def get_blob(self, digest: str, *, size: int | None = None) -> bytes:
        return self.client.get_blob(self.repository, digest, size=size)

    def put_blob(self, data: bytes) -> str:
        return self.client.put_blob(self.repository, data).digest

    def open_blob(self, digest: str, size: int) -> AbstractContextManager[VerifiedStream]:
        return self.client.open_blob(self.repository, digest, size)

    def put_blob_stream(self, desc: Descriptor, reader: Readable) -> str:
        return self.client.put_blob_stream(self.repository, desc, reader)

    def put_blob_background(self, data: bytes) -> Background:
        return self.client.put_blob_background(self.repository, data)

    def note_image(self, image: ImageRef) -> None:
        """Nothing to do: the registry holds the image under its own tags."""

    def missing_image(self, image: ImageRef) -> AttestStepError:
        return RegistryError(
            f"{image}: the image is not in the registry; push the image before signing or "
            "attesting it"
        )
