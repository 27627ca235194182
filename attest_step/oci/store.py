"""One storage interface for cosign's layouts: a registry repository or an OCI image layout.

The layouts (``.sig``/``.att`` tags in :mod:`attest_step.oci.tag_layout`, Sigstore-bundle
referrers and the ``sha256-HEX`` referrers index in :mod:`attest_step.oci.bundle_layout`)
and the read-modify-write of a tag (:mod:`attest_step.oci.rmw`) are written once, against
:class:`Store`, as oras-go writes copy, tag and referrers against ``oras.Target``. Two
backends implement it:

- :class:`attest_step.oci.registry_store.RegistryStore`: one repository of a registry,
  through :class:`attest_step.oci.registry.RegistryClient` (oras' session and auth; retries,
  the deadline and the size limits live there);
- :class:`attest_step.oci.layout_store.LayoutStore`: an OCI image-layout directory, its
  tags being ``index.json`` entries named by ``org.opencontainers.image.ref.name``.

:class:`attest_step.oci.backends.Stores` picks the backend from the registry options.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from attest_step.oci.documents import ImageManifest, index_entries, json_object, parse_manifest
from attest_step.oci.types import Descriptor

if TYPE_CHECKING:
    from attest_step.errors import AttestStepError
    from attest_step.imageref import ImageRef
    from attest_step.oci.blobstream import Readable, VerifiedStream


class Manifest(NamedTuple):
    """A manifest or index exactly as the store holds it."""

    data: bytes
    media_type: str
    digest: str
    source: str = "manifest"
    """Where it was read (``host/repository:reference``), for error messages."""

    def json(self) -> dict[str, Any]:
        return json_object(self.data, self.source)

    def manifest(self) -> ImageManifest:
        """Parsed strictly as an image manifest."""
        return parse_manifest(self.data, self.source)

    def index_entries(self) -> list[dict[str, Any]]:
        """The ``manifests`` of an index as served (each checked to be a descriptor)."""
        return index_entries(self.data, self.source)

    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.data))


class Background:
    """One store call running on its own thread (for a registry: its own pooled
    connection), so that independent round trips overlap; :meth:`wait` joins it and
    re-raises its error."""

    def __init__(self, call: Callable[[], object]) -> None:
        self._error: BaseException | None = None
        self._call = call
        self._thread = threading.Thread(target=self._run, name="attest-step-upload", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._call()
        except BaseException as err:  # re-raised by wait()
            self._error = err

    def wait(self) -> None:
        self._thread.join()
        error, self._error = self._error, None
        if error is not None:
            raise error


class Store(Protocol):
    """Manifests (by tag or digest) and blobs of one repository or layout.

    Reads by digest are checked against the digest; manifests are at most 4 MiB and blobs
    at most ``--max-blob-size``, refused while they are read. Errors are one-line
    :class:`~attest_step.errors.RegistryError` (exit 2) or ``RegistryUnavailable`` (75).
    """

    name: str
    """For messages: ``host/repository`` or ``--oci-layout DIR``."""
    kind: str
    """``registry`` or ``oci-layout`` (upload records name it)."""
    exclusive: bool
    """True when nobody else writes while this store does (the OCI layout under its lock):
    a read-modify-write then needs no race checks."""

    def location(self, reference: str) -> str:
        """Where ``reference`` (a tag or a digest) is, as a user can look it up."""
        ...

    def get_manifest(self, reference: str, *, size: int | None = None) -> Manifest | None:
        """The manifest at a tag or digest; None when absent."""
        ...

    def manifest_digest(self, reference: str) -> str | None:
        """The digest at a tag without its body (None: absent; ``""``: not said)."""
        ...

    def put_manifest(self, reference: str, data: bytes, media_type: str) -> str:
        """Store exactly ``data`` at a tag or digest; return its digest."""
        ...

    def list_tags(self) -> list[str]: ...

    def referrers(self, digest: str) -> list[dict[str, Any]] | None:
        """The referrers the store itself indexes (each a valid descriptor), or None when
        it has no referrers API: the ``sha256-HEX`` index (tag schema) stands in."""
        ...

    def get_blob(self, digest: str, *, size: int | None = None) -> bytes: ...

    def put_blob(self, data: bytes) -> str:
        """Store ``data`` (nothing when the store has it); return its digest."""
        ...

    def open_blob(self, digest: str, size: int) -> AbstractContextManager[VerifiedStream]:
        """The blob as a stream (``with store.open_blob(d, n) as reader``), never held
        whole in memory: refused at once when ``size`` is over ``--max-blob-size``; the
        digest and size are checked as it is read, and a mismatch raises before the last
        chunk is handed out."""
        ...

    def put_blob_stream(self, desc: Descriptor, reader: Readable) -> str:
        """Store the blob ``desc`` read from ``reader`` (nothing read when the store has
        it), checked while it streams: a stream of another digest or size raises and leaves
        nothing under the digest. Return the digest."""
        ...

    def put_blob_background(self, data: bytes) -> Background:
        """:meth:`put_blob` that may overlap other calls; ``wait()`` before relying on it."""
        ...

    def note_image(self, image: ImageRef) -> None:
        """``image`` is the one being signed (an OCI layout marks its entry as cosign's
        ``kind: dev.cosignproject.cosign/image``; a registry needs nothing)."""
        ...

    def missing_image(self, image: ImageRef) -> AttestStepError:
        """The error for a bundle whose subject ``image`` is not in the store."""
        ...
