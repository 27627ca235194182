"""Upload spooled signatures and attestations to registries (or an OCI layout directory),
through one :class:`~attest_step.oci.store.Store` per image (:mod:`attest_step.oci.backends`).

Which layouts receive an item (``RegistryOptions.layout``):

========================  ===========================  ===========================
spool kind                ``tag``                       ``bundle``
========================  ===========================  ===========================
``signature``             ``sha256-<hex>.sig`` layer    (not uploaded)
``signature-bundle``      (not uploaded)               referrer (Sigstore bundle)
``attestation``           ``sha256-<hex>.att`` layer    referrer (Sigstore bundle)
========================  ===========================  ===========================

``both`` uploads to both columns. ``auto`` (the default) is ``tag`` unless the image
already has Sigstore-bundle referrers, then ``both``: cosign v2 fails on any image with
bundles (it wants a trusted root), and cosign v3 ignores the tags once a bundle exists.
Every upload is idempotent.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attest_step.imageref import ImageRef
from attest_step.oci.backends import Stores
from attest_step.oci.options import RegistryOptions
from attest_step.oci.retry import RetryPolicy
from attest_step.oci.rmw import Read
from attest_step.oci.routing import (
    TAG_SUFFIX,
    envelope_of,
    tlog_entries_of,
    wants_bundle,
    wants_tag,
)
from attest_step.oci.spool import SpoolItem, read_spool
from attest_step.oci.store import Background, Store
from attest_step.oci.tag_layout import Layer, append_layer, prefetch_append
from attest_step.oci.types import BUNDLE_TYPE_PREFIX, Descriptor, tag_for
from attest_step.tlog.options import TlogOptions

if TYPE_CHECKING:
    from attest_step.oci.bundle_layout import ReferrersRead

# The bundle layout is imported where used: ``sign`` loads this module while its key is
# decrypted, and with ``--registry-layout tag`` does not need it (``auto`` needs its
# referrers listing).

_RECORD_LAYOUT = {
    ("registry", "tag"): "tag",
    ("registry", "bundle"): "bundle",
    ("oci-layout", "tag"): "oci-layout",
    ("oci-layout", "bundle"): "oci-layout-bundle",
}
"""The ``layout`` of an upload record, by store kind and layout written."""


class _Uploader:
    def __init__(self, options: RegistryOptions, policy: RetryPolicy | None = None) -> None:
        self.options = options
        self.stores = Stores(options, policy)
        self._subjects: dict[str, Descriptor] = {}
        self._layouts: dict[str, str] = {}
        self._first_reads: dict[tuple[str, str], Read] = {}
        """(store name, tag) -> a read of the tag taken by :meth:`prefetch_signature`."""
        self._referrers_reads: dict[str, ReferrersRead] = {}
        """Image -> its referrers as :meth:`prefetch_signature` read them."""

    def set_policy(self, policy: RetryPolicy) -> None:
        self.stores.set_policy(policy)

    def prefetch_signature(self, image: ImageRef, payload: bytes) -> None:
        """The work of storing a signature of ``image`` over ``payload`` that does not need
        the signature: resolve the layout, read the ``.sig`` tag and upload the payload and
        config blobs (tag layout); fetch the subject and upload the empty config (bundle
        layout). Nothing is written at a tag or as a manifest."""
        store = self.stores.for_image(image)
        tag_part: Background | None = None
        if self.options.layout == "auto":
            # ``auto`` resolves to ``tag`` or ``both``: the tag part is needed either way,
            # so it runs while the referrers are listed.
            tag_part = Background(lambda: self._prefetch_tag(store, image, payload))
        try:
            layout = self.layout_for(image)
        finally:
            if tag_part is not None:
                tag_part.wait()
        if layout in ("tag", "both") and tag_part is None:
            self._prefetch_tag(store, image, payload)
        if layout in ("bundle", "both"):
            from attest_step.oci.bundle_layout import prefetch_referrer  # noqa: PLC0415

            self.subject(image)
            self._referrers_reads[str(image)] = prefetch_referrer(store, image.digest)

    def _prefetch_tag(self, store: Store, image: ImageRef, payload: bytes) -> None:
        tag = tag_for(image.digest, TAG_SUFFIX["signature"])
        self._first_reads[store.name, tag] = prefetch_append(store, tag, payload)

    def layout_for(self, image: ImageRef) -> str:
        """The layout to use for ``image``: the option, with ``auto`` resolved."""
        if self.options.layout != "auto":
            return self.options.layout
        key = str(image)
        if key not in self._layouts:
            from attest_step.oci.bundle_layout import list_referrers  # noqa: PLC0415

            found = list_referrers(self.stores.for_image(image), image.digest)
            has = any((d.artifact_type or "").startswith(BUNDLE_TYPE_PREFIX) for d in found)
            self._layouts[key] = "both" if has else "tag"
        return self._layouts[key]

    def subject(self, image: ImageRef) -> Descriptor:
        key = str(image)
        if key not in self._subjects:
            store = self.stores.for_image(image)
            manifest = store.get_manifest(image.digest)
            if manifest is None:
                raise store.missing_image(image)
            self._subjects[key] = manifest.descriptor()
        return self._subjects[key]

    def push_tag(self, item: SpoolItem) -> dict[str, Any]:
        image = item.image
        store = self.stores.for_image(image)
        tag = tag_for(image.digest, TAG_SUFFIX[item.kind])
        result = append_layer(
            store,
            tag,
            Layer(item.data, item.media_type, item.annotations),
            first=self._first_reads.pop((store.name, tag), None),
        )
        return {
            "kind": item.kind,
            "image": str(image),
            "layout": _RECORD_LAYOUT[store.kind, "tag"],
            "location": store.location(tag),
            "manifestDigest": result.manifest_digest,
            "status": result.status,
            "attempts": result.attempts,
        }

    def push_bundle(self, item: SpoolItem) -> dict[str, Any]:
        from attest_step.oci.bundle_doc import bundle_bytes  # noqa: PLC0415
        from attest_step.oci.bundle_layout import push_referrer  # noqa: PLC0415

        image = item.image
        store = self.stores.for_image(image)
        # tlog: the entries attest_step.tlog.spool.attach put in the item (none when unlogged)
        bundle = bundle_bytes(envelope_of(item), item.public_key_hint, tlog_entries_of(item))
        result = push_referrer(
            store,
            subject=self.subject(image),
            bundle=bundle,
            predicate_type=item.predicate_type or "",
            created=item.created,
            prefetched=self._referrers_reads.pop(str(image), None),
        )
        record: dict[str, Any] = {
            "kind": item.kind,
            "image": str(image),
            "layout": _RECORD_LAYOUT[store.kind, "bundle"],
            "location": store.location(result.manifest_digest),
            "manifestDigest": result.manifest_digest,
            "status": result.status,
        }
        if result.fallback_tag:
            record["referrersTag"] = store.location(result.fallback_tag)
        return record

    def push(self, items: list[SpoolItem]) -> list[dict[str, Any]]:
        """Store ``items`` as the layout option says; one record per item and layout."""
        out: list[dict[str, Any]] = []
        with self.stores.writing():
            for item in items:
                self.stores.for_image(item.image).note_image(item.image)
                layout = self.layout_for(item.image)
                if wants_tag(item, layout):
                    out.append(self.push_tag(item))
                if wants_bundle(item, layout):
                    out.append(self.push_bundle(item))
        return out


PREFETCH_POLICY = RetryPolicy(attempts=1, request_timeout=5.0)
"""Work done ahead of the signature is tried once: on any failure the push itself does it
again, with the full retry policy, and reports the error."""


class Prefetch:
    """:meth:`_Uploader.prefetch_signature` on a background thread (started while the key is
    decrypted); :meth:`uploader` joins it and hands over what it found."""

    def __init__(self, image: ImageRef, payload: bytes, registry: RegistryOptions) -> None:
        self._uploader = _Uploader(registry, policy=PREFETCH_POLICY)
        self._image = image
        self._payload = payload

    def run(self) -> None:
        """The prefetch itself (on the background thread); never raises."""
        # On failure the push repeats the step (with retries) and reports the error.
        with contextlib.suppress(Exception):
            self._uploader.prefetch_signature(self._image, self._payload)

    def uploader(self) -> _Uploader:
        self._uploader.set_policy(RetryPolicy())
        return self._uploader


def push_items(
    items: list[SpoolItem],
    registry: RegistryOptions,
    *,
    prefetch: Prefetch | None = None,
    tlog: TlogOptions | None = None,
) -> list[dict[str, Any]]:
    """Upload ``items`` as ``registry.layout`` says; one record per upload. ``prefetch``
    (finished): reads and uploads done ahead of the signature, for the same images.
    ``tlog``: the transparency-log flags; items are logged (or their entries read back from
    the spool) before any push (attest_step.tlog.spool)."""
    # tlog hook: log what is pending, attach the entries to the items (bundles carry them)
    from attest_step.tlog.spool import attach  # noqa: PLC0415

    items = attach(items, tlog or TlogOptions())
    uploader = prefetch.uploader() if prefetch is not None else _Uploader(registry)
    return uploader.push(items)


def push_spool(
    out_dir: Path, registry: RegistryOptions, tlog: TlogOptions | None = None
) -> list[dict[str, Any]]:
    """Upload everything spooled in ``out_dir``; return one record per upload."""
    return push_items(read_spool(out_dir), registry, tlog=tlog)
