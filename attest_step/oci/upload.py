"""Upload spooled signatures and attestations to registries (or an OCI layout directory).

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

from attest_step.errors import RegistryError
from attest_step.imageref import ImageRef
from attest_step.oci.options import RegistryOptions
from attest_step.oci.registry import Background, RegistryClient
from attest_step.oci.retry import Deadline, RetryPolicy
from attest_step.oci.rmw import Read
from attest_step.oci.routing import (
    TAG_SUFFIX,
    envelope_of,
    tlog_entries_of,
    wants_bundle,
    wants_tag,
)
from attest_step.oci.spool import SpoolItem, read_spool
from attest_step.oci.tag_layout import Layer, append_layer, prefetch_append
from attest_step.oci.types import BUNDLE_TYPE_PREFIX, Descriptor, tag_for
from attest_step.tlog.options import TlogOptions

if TYPE_CHECKING:
    from attest_step.oci.bundle_layout import ReferrersRead

# The bundle layout and the OCI layout target are imported where used: ``sign`` loads this
# module while its key is decrypted, and with ``--registry-layout tag`` needs neither
# (``auto`` needs the bundle layout's referrers listing).


class _Uploader:
    def __init__(self, options: RegistryOptions, policy: RetryPolicy | None = None) -> None:
        self.options = options
        self.deadline = Deadline(options.timeout_seconds)
        self.policy = policy
        self._clients: dict[str, RegistryClient] = {}
        self._subjects: dict[str, Descriptor] = {}
        self._layouts: dict[str, str] = {}
        self._first_reads: dict[tuple[str, str, str], Read] = {}
        """(host, repository, tag) -> a read of the tag taken by :meth:`prefetch_signature`."""
        self._referrers_reads: dict[str, ReferrersRead] = {}
        """Image -> its referrers as :meth:`prefetch_signature` read them."""

    def set_policy(self, policy: RetryPolicy) -> None:
        self.policy = policy
        for client in self._clients.values():
            client.policy = policy

    def prefetch_signature(self, image: ImageRef, payload: bytes) -> None:
        """The registry work of uploading a signature of ``image`` over ``payload`` that does
        not need the signature: resolve the layout, read the ``.sig`` tag and upload the
        payload and config blobs (tag layout); fetch the subject and upload the empty config
        (bundle layout). Nothing is written at a tag or as a manifest."""
        client = self.client(image.registry)
        tag_part: Background | None = None
        if self.options.layout == "auto":
            # ``auto`` resolves to ``tag`` or ``both``: the tag part is needed either way,
            # so it runs while the referrers are listed.
            tag_part = Background(lambda: self._prefetch_tag(client, image, payload))
        try:
            layout = self.layout_for(image)
        finally:
            if tag_part is not None:
                tag_part.wait()
        if layout in ("tag", "both") and tag_part is None:
            self._prefetch_tag(client, image, payload)
        if layout in ("bundle", "both"):
            from attest_step.oci.bundle_layout import prefetch_referrer  # noqa: PLC0415

            self.subject(image)
            referrers = prefetch_referrer(client, image.repository, image.digest)
            self._referrers_reads[str(image)] = referrers

    def _prefetch_tag(self, client: RegistryClient, image: ImageRef, payload: bytes) -> None:
        tag = tag_for(image.digest, TAG_SUFFIX["signature"])
        read = prefetch_append(client, image.repository, tag, payload)
        self._first_reads[image.registry, image.repository, tag] = read

    def layout_for(self, image: ImageRef) -> str:
        """The layout to use for ``image``: the option, with ``auto`` resolved."""
        if self.options.layout != "auto":
            return self.options.layout
        key = str(image)
        if key not in self._layouts:
            from attest_step.oci.bundle_layout import list_referrers  # noqa: PLC0415

            client = self.client(image.registry)
            found = list_referrers(client, image.repository, image.digest)
            has = any((d.artifact_type or "").startswith(BUNDLE_TYPE_PREFIX) for d in found)
            self._layouts[key] = "both" if has else "tag"
        return self._layouts[key]

    def client(self, host: str) -> RegistryClient:
        if host not in self._clients:
            self._clients[host] = RegistryClient(
                host, self.options, deadline=self.deadline, policy=self.policy
            )
        return self._clients[host]

    def subject(self, image: ImageRef) -> Descriptor:
        key = str(image)
        if key not in self._subjects:
            manifest = self.client(image.registry).get_manifest(image.repository, image.digest)
            if manifest is None:
                raise RegistryError(
                    f"{image}: the image is not in the registry; push the image before "
                    "signing or attesting it"
                )
            self._subjects[key] = manifest.descriptor()
        return self._subjects[key]

    def push_tag(self, item: SpoolItem) -> dict[str, Any]:
        image = item.image
        tag = tag_for(image.digest, TAG_SUFFIX[item.kind])
        result = append_layer(
            self.client(image.registry),
            image.repository,
            tag,
            Layer(item.data, item.media_type, item.annotations),
            first=self._first_reads.pop((image.registry, image.repository, tag), None),
        )
        return {
            "kind": item.kind,
            "image": str(image),
            "layout": "tag",
            "location": f"{image.name}:{tag}",
            "manifestDigest": result.manifest_digest,
            "status": result.status,
            "attempts": result.attempts,
        }

    def push_bundle(self, item: SpoolItem) -> dict[str, Any]:
        from attest_step.oci.bundle_layout import bundle_bytes, push_referrer  # noqa: PLC0415

        image = item.image
        # tlog: the entries attest_step.tlog.spool.attach put in the item (none when unlogged)
        bundle = bundle_bytes(envelope_of(item), item.public_key_hint, tlog_entries_of(item))
        result = push_referrer(
            self.client(image.registry),
            image.repository,
            subject=self.subject(image),
            bundle=bundle,
            predicate_type=item.predicate_type or "",
            created=item.created,
            prefetched=self._referrers_reads.pop(str(image), None),
        )
        record: dict[str, Any] = {
            "kind": item.kind,
            "image": str(image),
            "layout": "bundle",
            "location": f"{image.name}@{result.manifest_digest}",
            "manifestDigest": result.manifest_digest,
            "status": result.status,
        }
        if result.fallback_tag:
            record["referrersTag"] = f"{image.name}:{result.fallback_tag}"
        return record


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
    the spool) before any registry push (attest_step.tlog.spool)."""
    # tlog hook: log what is pending, attach the entries to the items (bundles carry them)
    from attest_step.tlog.spool import attach  # noqa: PLC0415

    items = attach(items, tlog or TlogOptions())
    if registry.oci_layout_dir:
        from attest_step.oci.oci_layout import write_items  # noqa: PLC0415

        return write_items(Path(registry.oci_layout_dir), items, registry.layout)
    uploader = prefetch.uploader() if prefetch is not None else _Uploader(registry)
    out: list[dict[str, Any]] = []
    for item in items:
        layout = uploader.layout_for(item.image)
        if wants_tag(item, layout):
            out.append(uploader.push_tag(item))
        if wants_bundle(item, layout):
            out.append(uploader.push_bundle(item))
    return out


def push_spool(
    out_dir: Path, registry: RegistryOptions, tlog: TlogOptions | None = None
) -> list[dict[str, Any]]:
    """Upload everything spooled in ``out_dir``; return one record per upload."""
    return push_items(read_spool(out_dir), registry, tlog=tlog)
