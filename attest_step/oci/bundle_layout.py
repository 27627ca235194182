"""Sigstore bundle v0.3 attached as an OCI 1.1 referrer (the layout cosign v3 reads first).

Push: the bundle JSON is the only layer of an image manifest with ``artifactType`` = the
bundle media type, the empty config and ``subject`` = the signed image; it is pushed by
digest. When the registry has no referrers API (404 on ``/v2/<name>/referrers/<digest>``,
as distribution 2.8), the referrers *tag schema* is maintained: an OCI index at tag
``sha256-<hex>`` listing every referrer, updated by read-modify-write with the same race
detection as the tag layout. An OCI layout directory has no referrers API either, so it
gets the same index (regctl's ``ocidir://`` reads referrers only from there).

Written once against :class:`~attest_step.oci.store.Store` (registry or OCI layout).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from attest_step.errors import RegistryError
from attest_step.oci.documents import parse_descriptor
from attest_step.oci.rmw import Read, Update, read_modify_write, read_tag
from attest_step.oci.store import Manifest, Store
from attest_step.oci.types import (
    BUNDLE_CONTENT_ANNOTATION,
    BUNDLE_PREDICATE_ANNOTATION,
    BUNDLE_TYPE,
    BUNDLE_TYPE_PREFIX,
    CREATED_ANNOTATION,
    EMPTY_JSON,
    EMPTY_TYPE,
    INDEX_TYPE,
    MANIFEST_TYPE,
    Descriptor,
    compact_json,
    sha256_digest,
    tag_for,
)


def referrer_manifest(
    bundle: bytes, subject: Descriptor, predicate_type: str, created: str
) -> bytes:
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "artifactType": BUNDLE_TYPE,
        "config": {"mediaType": EMPTY_TYPE, "digest": sha256_digest(EMPTY_JSON), "size": 2},
        "layers": [
            {"mediaType": BUNDLE_TYPE, "digest": sha256_digest(bundle), "size": len(bundle)}
        ],
        "subject": {
            "mediaType": subject.media_type,
            "digest": subject.digest,
            "size": subject.size,
        },
        "annotations": {
            BUNDLE_CONTENT_ANNOTATION: "dsse-envelope",
            BUNDLE_PREDICATE_ANNOTATION: predicate_type,
            CREATED_ANNOTATION: created,
        },
    }
    return compact_json(doc)


@dataclass(frozen=True)
class ReferrerResult:
    manifest_digest: str
    status: str  # "pushed" or "present"
    fallback_tag: str | None  # the tag-schema index maintained, if any


def index_bytes(manifests: list[dict[str, Any]]) -> bytes:
    """An OCI image index of ``manifests``: the referrers fallback (``sha256-HEX``) document."""
    return compact_json({"schemaVersion": 2, "mediaType": INDEX_TYPE, "manifests": manifests})


def list_referrers(store: Store, digest: str) -> list[Descriptor]:
    """Referrers of ``digest``: the store's own index when it has one, else the fallback tag."""
    api = store.referrers(digest)
    if api is None:
        api = _entries(store.get_manifest(tag_for(digest)))
    return [parse_descriptor(d, f"referrers of {store.name}@{digest}") for d in api]


def _is_bundle(desc: Descriptor) -> bool:
    return (desc.artifact_type or "").startswith(BUNDLE_TYPE_PREFIX)


@dataclass(frozen=True)
class ReferrersRead:
    """The referrers of a subject as :func:`prefetch_referrer` read them."""

    bundles: dict[str, str | None]
    """Digest of each bundle referrer -> the digest of its bundle blob."""
    fallback: Read | None
    """The referrers fallback tag as read; None when the registry has the referrers API."""


def prefetch_referrer(
    store: Store,
    subject_digest: str,
) -> ReferrersRead:
    """What :func:`push_referrer` can do before the bundle (the signature) exists: upload
    the empty config, list the referrers (reading the fallback tag when the registry has no
    referrers API) and the bundle each one holds. Nothing is written at a tag or as a
    manifest; the result is for ``push_referrer(prefetched=...)``."""
    upload = store.put_blob_background(EMPTY_JSON)
    try:
        fallback: Read | None = None
        found = store.referrers(subject_digest)
        if found is None:
            fallback = read_tag(store, tag_for(subject_digest))
            found = _entries(fallback.manifest)
        descriptors = [parse_descriptor(d, f"referrers of {subject_digest}") for d in found]
        bundles = dict(_bundle_digests(store, subject_digest, descriptors))
        upload.wait()
    finally:
        with contextlib.suppress(Exception):
            upload.wait()
    return ReferrersRead(bundles, fallback)


def push_referrer(
    store: Store,
    *,
    subject: Descriptor,
    bundle: bytes,
    predicate_type: str,
    created: str,
    prefetched: ReferrersRead | None = None,
) -> ReferrerResult:
    """Attach ``bundle`` to ``subject``; idempotent (a referrer with the same bundle is kept).

    ``prefetched``: the referrers as :func:`prefetch_referrer` read them shortly before.
    """
    bundle_digest = sha256_digest(bundle)
    # The bundle blob is uploaded while the existing referrers are listed (an upload of a
    # blob the registry has is a HEAD; the blob is harmless if the bundle is attached).
    upload = store.put_blob_background(bundle)
    try:
        existing = (
            prefetched.bundles.items()
            if prefetched is not None
            else _bundle_digests(store, subject.digest, list_referrers(store, subject.digest))
        )
        for referrer, digest_in_it in existing:
            if digest_in_it == bundle_digest:
                return ReferrerResult(referrer, "present", None)
        store.put_blob(EMPTY_JSON)
        upload.wait()
    finally:
        with contextlib.suppress(Exception):
            upload.wait()  # joined on every path; its error, if any, was raised already
    data = referrer_manifest(bundle, subject, predicate_type, created)
    digest = store.put_manifest(sha256_digest(data), data, MANIFEST_TYPE)
    if store.referrers(subject.digest) is not None:
        return ReferrerResult(digest, "pushed", None)
    entry = Descriptor(
        MANIFEST_TYPE,
        digest,
        len(data),
        annotations=json.loads(data)["annotations"],
        artifact_type=BUNDLE_TYPE,
    ).to_dict()
    tag = tag_for(subject.digest)
    first = prefetched.fallback if prefetched is not None else None
    _add_to_fallback_index(store, tag=tag, entry=entry, first=first)
    return ReferrerResult(digest, "pushed", tag)


def _bundle_digests(
    store: Store, subject_digest: str, referrers: list[Descriptor]
) -> Iterator[tuple[str, str | None]]:
    """(referrer digest, digest of the bundle it holds) of each bundle referrer, fetched
    one by one as the caller iterates."""
    for desc in referrers:
        if _is_bundle(desc):
            yield desc.digest, _bundle_digest(store, subject_digest, desc)


def _bundle_digest(store: Store, subject_digest: str, desc: Descriptor) -> str | None:
    """The digest of the bundle a referrer holds; None when it holds none or refers to
    another subject."""
    manifest = store.get_manifest(desc.digest, size=desc.size)
    if manifest is None:
        return None
    doc = manifest.manifest()
    if len(doc.layers) != 1 or doc.subject is None or doc.subject.digest != subject_digest:
        return None
    return doc.layers[0].digest


def _add_to_fallback_index(
    store: Store,
    *,
    tag: str,
    entry: dict[str, Any],
    first: Read | None = None,
) -> None:
    seen: dict[str, dict[str, Any]] = {}

    def complete(index: Manifest | None) -> bool:
        entries = _entries(index)
        digests = {str(e.get("digest")) for e in entries}
        for e in entries:
            seen.setdefault(str(e.get("digest")), e)
        return entry["digest"] in digests and set(seen) <= digests

    def build(current: Manifest | None) -> bytes:
        entries = _entries(current)
        present = {str(e.get("digest")) for e in entries}
        restored = [e for d, e in seen.items() if d not in present and d != entry["digest"]]
        mine = [] if entry["digest"] in present else [entry]
        return index_bytes([*entries, *restored, *mine])

    update = Update(build, complete, INDEX_TYPE, "the referrers index")
    read_modify_write(store, tag, update, first=first)


def _entries(index: Manifest | None) -> list[dict[str, Any]]:
    """The entries of the referrers fallback index as served (each a valid descriptor)."""
    if index is None:
        return []
    if index.media_type != INDEX_TYPE:
        raise RegistryError(
            f"{index.source} ({index.digest}) is not an OCI index; it cannot hold the "
            "referrers fallback"
        )
    return index.index_entries()


@dataclass(frozen=True)
class FetchedBundle:
    manifest_digest: str
    predicate_type: str | None
    bundle: dict[str, Any]


def fetch_bundles(store: Store, digest: str) -> list[FetchedBundle]:
    """Every Sigstore bundle attached to ``digest`` (cosign's reader rules: one bundle layer)."""
    out: list[FetchedBundle] = []
    for desc in list_referrers(store, digest):
        if desc.artifact_type and not _is_bundle(desc):
            continue
        manifest = store.get_manifest(desc.digest, size=desc.size)
        if manifest is None:
            continue
        doc = manifest.manifest()
        layers = [d for d in doc.layers if d.media_type.startswith(BUNDLE_TYPE_PREFIX)]
        if len(layers) != 1:
            continue
        if doc.subject is None or doc.subject.digest != digest:
            continue
        raw = store.get_blob(layers[0].digest, size=layers[0].size)
        try:
            bundle = json.loads(raw)
        except (ValueError, RecursionError):
            continue
        if not isinstance(bundle, dict):
            continue
        out.append(
            FetchedBundle(manifest.digest, doc.annotations.get(BUNDLE_PREDICATE_ANNOTATION), bundle)
        )
    return out
