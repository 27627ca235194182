"""The OCI image-layout backend of :class:`attest_step.oci.store.Store`, in the shape
``cosign save`` writes.

A tag is an ``index.json`` entry whose ``org.opencontainers.image.ref.name`` is the tag
(so ``skopeo ... oci:DIR:<tag>`` and ``oras ... --oci-layout DIR:<tag>`` find it); blobs
and manifests are files under ``blobs/<algorithm>/``. On top of the plain layout, as
cosign reads it:

- a ``sha256-HEX.sig`` / ``.att`` tag entry carries ``kind: dev.cosignproject.cosign/sigs``
  / ``atts``, and the signed image's entry ``kind: dev.cosignproject.cosign/image``
  (:meth:`LayoutStore.note_image`);
- a manifest with a ``subject`` stored by digest (a Sigstore-bundle referrer) gets an entry
  with its ``artifactType``, annotations and ``subject``, named ``sha256-HEX.bundle.N``.

A directory has no referrers API (:meth:`LayoutStore.referrers` is None), so the layouts
keep the referrers tag schema's ``sha256-HEX`` index, where regctl's ``ocidir://`` looks.
Writes happen inside :meth:`LayoutStore.locked` (an exclusive lock on
``DIR/.attest-step.lock``); ``index.json`` is rewritten once, when the lock is released
after the work succeeded.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attest_step.errors import AttestStepError, RegistryError
from attest_step.fileio import write_atomically
from attest_step.imageref import ImageRef
from attest_step.oci import blobstream
from attest_step.oci.documents import (
    check_content,
    check_digest_syntax,
    index_entries,
    json_object,
    parse_manifest,
)
from attest_step.oci.options import DEFAULT_MAX_BLOB_BYTES, MAX_MANIFEST_BYTES
from attest_step.oci.store import Background, Manifest
from attest_step.oci.types import (
    INDEX_TYPE,
    MANIFEST_TYPE,
    compact_json,
    sha256_digest,
    tag_for,
)

if TYPE_CHECKING:
    from attest_step.oci.types import Descriptor

KIND = "kind"
KIND_IMAGE = "dev.cosignproject.cosign/image"
KIND_SIGS = "dev.cosignproject.cosign/sigs"
KIND_ATTS = "dev.cosignproject.cosign/atts"
REF_NAME = "org.opencontainers.image.ref.name"
_KIND_FOR_SUFFIX = {".sig": KIND_SIGS, ".att": KIND_ATTS}


def _annotations(entry: dict[str, Any]) -> dict[str, str]:
    found = entry.get("annotations")
    return found if isinstance(found, dict) else {}


def _subject_digest(doc: dict[str, Any]) -> str | None:
    subject = doc.get("subject")
    digest = subject.get("digest") if isinstance(subject, dict) else None
    return digest if isinstance(digest, str) else None


def _read_file(path: Path, limit: int, what: str) -> bytes | None:
    """At most ``limit`` bytes of ``path`` (more: refused), None when it does not exist."""
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise AttestStepError(f"{what}: cannot read it ({err.strerror})") from err
    if len(data) > limit:
        raise RegistryError(f"{what}: larger than {limit} bytes; not read")
    return data


class LayoutStore:
    """An OCI image-layout directory as a :class:`~attest_step.oci.store.Store`."""

    kind = "oci-layout"
    exclusive = True

    def __init__(self, root: Path, *, max_blob_bytes: int = DEFAULT_MAX_BLOB_BYTES) -> None:
        self.root = root
        self.name = f"--oci-layout {root}"
        self.max_blob_bytes = max_blob_bytes
        self._entries: list[dict[str, Any]] | None = None
        """``index.json`` while locked (written back on release when ``_dirty``)."""
        self._dirty = False

    # --- the directory ----------------------------------------------------------------
    def _init(self) -> None:
        try:
            (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise AttestStepError(
                f"--oci-layout {self.root}: cannot create it ({err.strerror}); "
                "give a writable directory"
            ) from err
        marker = self.root / "oci-layout"
        if not marker.exists():
            marker.write_text('{"imageLayoutVersion":"1.0.0"}')
        if not (self.root / "index.json").exists():
            self._write_index([])

    @contextmanager
    def locked(self) -> Iterator[LayoutStore]:
        """Hold the layout's exclusive lock; write ``index.json`` back if the work in the
        block succeeded and changed it."""
        self._init()
        with (self.root / ".attest-step.lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                self._entries, self._dirty = self._read_index(), False
                yield self
                if self._dirty:
                    self._write_index(self._entries)
            finally:
                self._entries = None
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _read_index(self) -> list[dict[str, Any]]:
        what = f"{self.name}: index.json"
        data = _read_file(self.root / "index.json", self.max_blob_bytes, what)
        return [] if data is None else index_entries(data, what)

    def _write_index(self, manifests: list[dict[str, Any]]) -> None:
        doc = {"schemaVersion": 2, "mediaType": INDEX_TYPE, "manifests": manifests}
        write_atomically(self.root / "index.json", compact_json(doc))

    def _index(self) -> list[dict[str, Any]]:
        return self._entries if self._entries is not None else self._read_index()

    def _writable(self) -> list[dict[str, Any]]:
        if self._entries is None:
            raise RuntimeError(f"{self.name}: written outside LayoutStore.locked()")
        self._dirty = True
        return self._entries

    def _entry(self, tag: str) -> dict[str, Any] | None:
        for entry in self._index():
            if _annotations(entry).get(REF_NAME) == tag:
                return entry
        return None

    def _path(self, digest: str) -> Path:
        algorithm, _, encoded = check_digest_syntax(digest, self.name).partition(":")
        return self.root / "blobs" / algorithm / encoded

    def _read(self, digest: str, limit: int, what: str) -> bytes | None:
        """The blob ``digest`` (checked against it), None when absent; at most ``limit``."""
        data = _read_file(self._path(digest), limit, what)
        if data is not None:
            check_content(data, digest, what)
        return data

    # --- Store ------------------------------------------------------------------------
    def location(self, reference: str) -> str:
        return f"oci:{self.root}{'@' if ':' in reference else ':'}{reference}"

    def get_manifest(self, reference: str, *, size: int | None = None) -> Manifest | None:
        what = f"{self.name}: {reference}"
        if ":" in reference:
            digest, media = reference, None
        else:
            entry = self._entry(reference)
            if entry is None:
                return None
            digest, media, size = str(entry["digest"]), str(entry["mediaType"]), entry["size"]
        if size is not None and size > MAX_MANIFEST_BYTES:
            raise RegistryError(
                f"{what}: its descriptor says {size} bytes, more than the {MAX_MANIFEST_BYTES} "
                "bytes a manifest may have; not read"
            )
        data = self._read(digest, MAX_MANIFEST_BYTES, what)
        if data is None and media is not None:
            raise RegistryError(f"{what}: index.json names {digest}, which the layout lacks")
        if data is None:
            return None
        if size is not None and len(data) != size:
            raise RegistryError(f"{what}: {len(data)} bytes, its descriptor says {size}")
        if media is None:
            media = str(json_object(data, what).get("mediaType") or MANIFEST_TYPE)
        return Manifest(data=data, media_type=media, digest=digest, source=what)

    def manifest_digest(self, reference: str) -> str | None:
        entry = self._entry(reference)
        return None if entry is None else str(entry["digest"])

    def put_manifest(self, reference: str, data: bytes, media_type: str) -> str:
        entries = self._writable()
        digest = self.put_blob(data)
        if ":" in reference:
            if reference != digest:
                raise RegistryError(f"{self.name}: {reference} is not the digest of the manifest")
            self._add_referrer(entries, digest, data, media_type)
            return digest
        annotations = {REF_NAME: reference}
        kind = _KIND_FOR_SUFFIX.get(reference[-4:])
        if kind is not None and reference.startswith("sha256-"):
            annotations = {KIND: kind, **annotations}
        entry = {
            "mediaType": media_type,
            "digest": digest,
            "size": len(data),
            "annotations": annotations,
        }
        current = self._entry(reference)
        if current is None:
            entries.append(entry)
        else:
            entries[entries.index(current)] = entry
        return digest

    def _add_referrer(
        self, entries: list[dict[str, Any]], digest: str, data: bytes, media_type: str
    ) -> None:
        """Name a manifest with a ``subject`` in ``index.json`` (cosign's and skopeo's way
        to reach it in a layout); a manifest without one stays a blob, as in a registry."""
        doc = parse_manifest(data, f"{self.name}: {digest}")
        if doc.subject is None or any(e.get("digest") == digest for e in entries):
            return
        subject = doc.subject.digest
        count = sum(1 for e in entries if _subject_digest(e) == subject)
        entry: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": len(data)}
        if doc.artifact_type:
            entry["artifactType"] = doc.artifact_type
        entry["annotations"] = {**doc.annotations, REF_NAME: f"{tag_for(subject)}.bundle.{count}"}
        entry["subject"] = {
            "mediaType": doc.subject.media_type,
            "digest": subject,
            "size": doc.subject.size,
        }
        entries.append(entry)

    def only_image(self) -> str:
        """The digest of the one manifest ``index.json`` lists (for ``DIR`` without a tag
        or digest); refused when it lists none or several."""
        entries = self._index()
        if len(entries) != 1:
            names = ", ".join(_annotations(e).get(REF_NAME) or str(e["digest"]) for e in entries)
            raise RegistryError(
                f"{self.name}: index.json lists {len(entries)} manifests ({names or 'none'}); "
                "name one as DIR:TAG or DIR@sha256:HEX"
            )
        return str(entries[0]["digest"])

    def list_tags(self) -> list[str]:
        names = (_annotations(e).get(REF_NAME) for e in self._index())
        return [n for n in names if n]

    def referrers(self, digest: str) -> list[dict[str, Any]] | None:
        return None

    def get_blob(self, digest: str, *, size: int | None = None) -> bytes:
        what = f"{self.name}: blob {digest}"
        limit = self.max_blob_bytes
        if size is not None and size > limit:
            raise RegistryError(
                f"{what}: its descriptor says {size} bytes, more than --max-blob-size "
                f"({limit} bytes); not read"
            )
        data = self._read(digest, limit, what)
        if data is None:
            raise RegistryError(f"{what}: not in the layout; the layout is incomplete")
        if size is not None and len(data) != size:
            raise RegistryError(f"{what}: {len(data)} bytes, its descriptor says {size}")
        return data

    def put_blob(self, data: bytes) -> str:
        digest = sha256_digest(data)
        path = self._path(digest)
        if not path.exists():
            write_atomically(path, data)
        return digest

    def put_blob_background(self, data: bytes) -> Background:
        return Background(lambda: self.put_blob(data))

    @contextmanager
    def open_blob(self, digest: str, size: int) -> Iterator[blobstream.VerifiedStream]:
        what = f"{self.name}: blob {digest}"
        desc = blobstream.blob_descriptor(digest, size)
        blobstream.check_blob_size(desc, self.max_blob_bytes, what)
        try:
            handle = self._path(digest).open("rb")
        except FileNotFoundError:
            raise RegistryError(f"{what}: not in the layout; the layout is incomplete") from None
        except OSError as err:
            raise AttestStepError(f"{what}: cannot read it ({err.strerror})") from err
        with handle:
            found = os.fstat(handle.fileno()).st_size
            if found != size:
                raise RegistryError(f"{what}: {found} bytes, its descriptor says {size}")
            yield blobstream.VerifiedStream(handle, desc, what)

    def put_blob_stream(self, desc: Descriptor, reader: blobstream.Readable) -> str:
        """Copy the stream into a temporary file beside its final name, renamed to the
        digest only once the whole stream was checked against ``desc``."""
        what = f"{self.name}: blob {desc.digest}"
        blobstream.check_blob_size(desc, self.max_blob_bytes, what)
        path = self._path(desc.digest)
        if path.exists():
            return desc.digest
        inside = self.root.resolve() / path.parent.relative_to(self.root)
        if path.parent.resolve() != inside:
            raise RegistryError(
                f"{what}: {path.parent} is or passes through a symbolic link; not written "
                "(a layout's blobs stay inside its directory)"
            )
        stream = blobstream.verified(reader, desc, what)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".partial-")
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(blobstream.CHUNK):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException as err:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if isinstance(err, OSError):
                raise AttestStepError(f"{what}: cannot write it ({err.strerror})") from err
            raise
        return desc.digest

    def note_image(self, image: ImageRef) -> None:
        entries = self._writable()
        for entry in entries:
            if entry.get("digest") == image.digest:
                annotations = entry.setdefault("annotations", {})
                annotations[KIND] = KIND_IMAGE
                return
        data = self._read(image.digest, MAX_MANIFEST_BYTES, f"{self.name}: {image.digest}")
        if data is None:
            return
        doc = json_object(data, f"{self.name}: {image.digest}")
        entries.insert(
            0,
            {
                "mediaType": str(doc.get("mediaType") or MANIFEST_TYPE),
                "digest": image.digest,
                "size": len(data),
                "annotations": {KIND: KIND_IMAGE, REF_NAME: image.tag or image.digest},
            },
        )

    def missing_image(self, image: ImageRef) -> AttestStepError:
        return AttestStepError(
            f"--oci-layout: {image} is not in the layout, so a bundle cannot reference it; "
            "copy the image in first (skopeo copy docker://IMAGE oci:DIR) or use "
            "--registry-layout tag"
        )
