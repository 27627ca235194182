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

from pathlib import Path
from typing import Any

from attest_step.errors import RegistryError
from attest_step.imageref import ImageRef
from attest_step.oci.bundle_layout import bundle_bytes, list_referrers, push_referrer
from attest_step.oci.oci_layout import write_items
from attest_step.oci.options import RegistryOptions
from attest_step.oci.registry import RegistryClient
from attest_step.oci.retry import Deadline
from attest_step.oci.routing import TAG_SUFFIX, envelope_of, wants_bundle, wants_tag
from attest_step.oci.spool import SpoolItem, read_spool
from attest_step.oci.tag_layout import Layer, append_layer
from attest_step.oci.types import BUNDLE_TYPE_PREFIX, Descriptor, tag_for


class _Uploader:
    def __init__(self, options: RegistryOptions) -> None:
        self.options = options
        self.deadline = Deadline(options.timeout_seconds)
        self._clients: dict[str, RegistryClient] = {}
        self._subjects: dict[str, Descriptor] = {}
        self._layouts: dict[str, str] = {}

    def layout_for(self, image: ImageRef) -> str:
        """The layout to use for ``image``: the option, with ``auto`` resolved."""
        if self.options.layout != "auto":
            return self.options.layout
        key = str(image)
        if key not in self._layouts:
            client = self.client(image.registry)
            found = list_referrers(client, image.repository, image.digest)
            has = any((d.artifact_type or "").startswith(BUNDLE_TYPE_PREFIX) for d in found)
            self._layouts[key] = "both" if has else "tag"
        return self._layouts[key]

    def client(self, host: str) -> RegistryClient:
        if host not in self._clients:
            self._clients[host] = RegistryClient(host, self.options, deadline=self.deadline)
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
        image = item.image
        bundle = bundle_bytes(envelope_of(item), item.public_key_hint)
        result = push_referrer(
            self.client(image.registry),
            image.repository,
            subject=self.subject(image),
            bundle=bundle,
            predicate_type=item.predicate_type or "",
            created=item.created,
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


def push_items(items: list[SpoolItem], registry: RegistryOptions) -> list[dict[str, Any]]:
    """Upload ``items`` as ``registry.layout`` says; one record per upload."""
    if registry.oci_layout_dir:
        return write_items(Path(registry.oci_layout_dir), items, registry.layout)
    uploader = _Uploader(registry)
    out: list[dict[str, Any]] = []
    for item in items:
        layout = uploader.layout_for(item.image)
        if wants_tag(item, layout):
            out.append(uploader.push_tag(item))
        if wants_bundle(item, layout):
            out.append(uploader.push_bundle(item))
    return out


def push_spool(out_dir: Path, registry: RegistryOptions) -> list[dict[str, Any]]:
    """Upload everything spooled in ``out_dir``; return one record per upload."""
    return push_items(read_spool(out_dir), registry)
