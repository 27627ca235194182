"""An OCI image-layout directory as a storage target, in the shape ``cosign save`` writes.

``index.json`` lists (each entry's ``org.opencontainers.image.ref.name`` makes it usable as
``skopeo ... oci:DIR:<name>`` and ``oras ... --oci-layout DIR:<name>``):

- the image, annotated ``kind: dev.cosignproject.cosign/image`` (when its manifest is in
  the layout: build into the layout, or ``skopeo copy`` the image in first);
- the signatures manifest (same bytes as the ``.sig`` tag), ``kind:
  dev.cosignproject.cosign/sigs``, ref name ``sha256-<hex>.sig``;
- the attestations manifest, ``kind: dev.cosignproject.cosign/atts``, ref name
  ``sha256-<hex>.att``;
- Sigstore-bundle referrers (manifests with ``subject``), ref name
  ``sha256-<hex>.bundle.<n>``, annotated with their artifactType.

``cosign verify --local-image DIR`` and ``cosign verify-attestation --local-image DIR`` read
the image/sigs/atts entries. Updates hold an exclusive lock on ``DIR/.attest-step.lock``.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from attest_step.errors import AttestStepError, RegistryError
from attest_step.fileio import write_atomically
from attest_step.imageref import ImageRef
from attest_step.oci.bundle_layout import bundle_bytes, index_bytes, referrer_manifest
from attest_step.oci.documents import check_content, index_entries, json_object, parse_manifest
from attest_step.oci.options import DEFAULT_MAX_BLOB_BYTES
from attest_step.oci.routing import (
    TAG_SUFFIX,
    envelope_of,
    tlog_entries_of,
    wants_bundle,
    wants_tag,
)
from attest_step.oci.spool import SpoolItem
from attest_step.oci.tag_layout import config_blob, manifest_bytes
from attest_step.oci.types import (
    BUNDLE_PREDICATE_ANNOTATION,
    BUNDLE_TYPE,
    BUNDLE_TYPE_PREFIX,
    EMPTY_JSON,
    INDEX_TYPE,
    MANIFEST_TYPE,
    SIGNATURE_ANNOTATION,
    Descriptor,
    compact_json,
    sha256_digest,
    tag_for,
)

KIND = "kind"
KIND_IMAGE = "dev.cosignproject.cosign/image"
KIND_SIGS = "dev.cosignproject.cosign/sigs"
KIND_ATTS = "dev.cosignproject.cosign/atts"
REF_NAME = "org.opencontainers.image.ref.name"
_KIND_FOR_SUFFIX = {".sig": KIND_SIGS, ".att": KIND_ATTS}


class _Layout:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs" / "sha256"

    def init(self) -> None:
        try:
            self.blobs.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise AttestStepError(
                f"--oci-layout {self.root}: cannot create it ({err.strerror}); "
                "give a writable directory"
            ) from err
        marker = self.root / "oci-layout"
        if not marker.exists():
            marker.write_text('{"imageLayoutVersion":"1.0.0"}')
        if not (self.root / "index.json").exists():
            self.write_index([])

    def blob_path(self, digest: str) -> Path:
        return self.blobs / digest.split(":", 1)[1]

    def put(self, data: bytes) -> str:
        digest = sha256_digest(data)
        path = self.blob_path(digest)
        if not path.exists():
            write_atomically(path, data)
        return digest

    def get(self, digest: str) -> bytes | None:
        path = self.blob_path(digest)
        if not path.is_file():
            return None
        what = f"--oci-layout {self.root}: blob {digest}"
        if path.stat().st_size > DEFAULT_MAX_BLOB_BYTES:
            raise RegistryError(f"{what}: larger than {DEFAULT_MAX_BLOB_BYTES} bytes; not read")
        data = path.read_bytes()
        check_content(data, digest, what)
        return data

    def index(self) -> list[dict[str, Any]]:
        path = self.root / "index.json"
        if not path.is_file():
            return []
        try:
            data = path.read_bytes()
        except OSError as err:
            raise AttestStepError(
                f"--oci-layout {self.root}: cannot read index.json ({err.strerror})"
            ) from err
        return index_entries(data, f"--oci-layout {self.root}: index.json")

    def write_index(self, manifests: list[dict[str, Any]]) -> None:
        doc = {"schemaVersion": 2, "mediaType": INDEX_TYPE, "manifests": manifests}
        write_atomically(self.root / "index.json", compact_json(doc))

    @contextmanager
    def locked(self) -> Iterator[None]:
        self.init()
        with (self.root / ".attest-step.lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _entry_by_name(entries: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    for entry in entries:
        if (entry.get("annotations") or {}).get(REF_NAME) == name:
            return entry
    return None


def _mark_image(layout: _Layout, entries: list[dict[str, Any]], image: ImageRef) -> None:
    """Give the image's entry cosign's ``kind`` (add the entry if only its blob is here)."""
    for entry in entries:
        if entry.get("digest") == image.digest:
            entry.setdefault("annotations", {})[KIND] = KIND_IMAGE
            return
    data = layout.get(image.digest)
    if data is None:
        return
    media = str(
        json_object(data, f"--oci-layout: {image.digest}").get("mediaType") or MANIFEST_TYPE
    )
    entries.insert(
        0,
        {
            "mediaType": media,
            "digest": image.digest,
            "size": len(data),
            "annotations": {KIND: KIND_IMAGE, REF_NAME: image.tag or image.digest},
        },
    )


def _append_tag_layer(
    layout: _Layout,
    entries: list[dict[str, Any]],
    *,
    image: ImageRef,
    suffix: str,
    layer: Descriptor,
    data: bytes,
) -> str:
    name = tag_for(image.digest, suffix)
    entry = _entry_by_name(entries, name)
    layers: list[Descriptor] = []
    if entry is not None:
        current = layout.get(str(entry["digest"]))
        if current is not None:
            layers = parse_manifest(current, f"--oci-layout {layout.root}: {name}").layers
    for existing in layers:
        if existing.digest == layer.digest and existing.annotations.get(
            SIGNATURE_ANNOTATION
        ) == layer.annotations.get(SIGNATURE_ANNOTATION):
            return "present"
    layout.put(data)
    merged = [*layers, layer]
    config = config_blob([d.digest for d in merged])
    layout.put(config)
    manifest = manifest_bytes(merged, config)
    digest = layout.put(manifest)
    new_entry = {
        "mediaType": MANIFEST_TYPE,
        "digest": digest,
        "size": len(manifest),
        "annotations": {KIND: _KIND_FOR_SUFFIX[suffix], REF_NAME: name},
    }
    if entry is not None:
        entries[entries.index(entry)] = new_entry
    else:
        entries.append(new_entry)
    return "pushed"


def _add_bundle(
    layout: _Layout,
    entries: list[dict[str, Any]],
    *,
    image: ImageRef,
    bundle: bytes,
    predicate_type: str,
    created: str,
) -> tuple[str, str]:
    image_data = layout.get(image.digest)
    if image_data is not None:
        subject = Descriptor(
            str(
                json_object(image_data, f"--oci-layout: {image.digest}").get("mediaType")
                or MANIFEST_TYPE
            ),
            image.digest,
            len(image_data),
        )
    else:
        raise AttestStepError(
            f"--oci-layout: {image} is not in the layout, so a bundle cannot reference it; "
            "copy the image in first (skopeo copy docker://IMAGE oci:DIR) or use "
            "--registry-layout tag"
        )
    manifest = referrer_manifest(bundle, subject, predicate_type, created)
    digest = sha256_digest(manifest)
    if any(e.get("digest") == digest for e in entries):
        return digest, "present"
    layout.put(EMPTY_JSON)
    layout.put(bundle)
    layout.put(manifest)
    count = sum(1 for e in entries if e.get("subject", {}).get("digest") == image.digest)
    annotations = dict(json.loads(manifest)["annotations"])
    annotations[REF_NAME] = f"{tag_for(image.digest)}.bundle.{count}"
    entries.append(
        {
            "mediaType": MANIFEST_TYPE,
            "digest": digest,
            "size": len(manifest),
            "artifactType": BUNDLE_TYPE,
            "annotations": annotations,
            "subject": {
                "mediaType": subject.media_type,
                "digest": subject.digest,
                "size": subject.size,
            },
        }
    )
    _refresh_fallback_index(layout, entries, image.digest)
    return digest, "pushed"


def _refresh_fallback_index(layout: _Layout, entries: list[dict[str, Any]], subject: str) -> None:
    """Keep the referrers fallback index ``sha256-HEX`` of ``subject`` listing every referrer
    the layout holds for it, as a registry without the referrers API has it (cosign and
    regctl's ``ocidir://`` look there)."""
    referrers = [
        {
            "mediaType": e["mediaType"],
            "digest": e["digest"],
            "size": e["size"],
            "artifactType": e["artifactType"],
            "annotations": {k: v for k, v in (e.get("annotations") or {}).items() if k != REF_NAME},
        }
        for e in entries
        if e.get("subject", {}).get("digest") == subject and e.get("artifactType")
    ]
    data = index_bytes(referrers)
    layout.put(data)
    tag = tag_for(subject)
    entries[:] = [e for e in entries if (e.get("annotations") or {}).get(REF_NAME) != tag]
    entries.append(
        {
            "mediaType": INDEX_TYPE,
            "digest": sha256_digest(data),
            "size": len(data),
            "annotations": {REF_NAME: tag},
        }
    )


def write_items(root: Path, items: list[SpoolItem], layout_choice: str) -> list[dict[str, Any]]:
    """Store spool items into the layout at ``root``; one record per item and layout."""
    layout = _Layout(root)
    out: list[dict[str, Any]] = []
    with layout.locked():
        entries = layout.index()
        for item in items:
            _mark_image(layout, entries, item.image)
            chosen = layout_choice
            if chosen == "auto":
                has = any(
                    (e.get("subject") or {}).get("digest") == item.image.digest for e in entries
                )
                chosen = "both" if has else "tag"
            if wants_tag(item, chosen):
                suffix = TAG_SUFFIX[item.kind]
                desc = Descriptor(
                    item.media_type, item.blob_digest, len(item.data), item.annotations
                )
                status = _append_tag_layer(
                    layout, entries, image=item.image, suffix=suffix, layer=desc, data=item.data
                )
                name = tag_for(item.image.digest, suffix)
                out.append(
                    {
                        "kind": item.kind,
                        "image": str(item.image),
                        "layout": "oci-layout",
                        "location": f"oci:{root}:{name}",
                        "status": status,
                    }
                )
            if wants_bundle(item, chosen):
                # tlog: the entries attest_step.tlog.spool.attach put in the item
                bundle = bundle_bytes(
                    envelope_of(item), item.public_key_hint, tlog_entries_of(item)
                )
                digest, status = _add_bundle(
                    layout,
                    entries,
                    image=item.image,
                    bundle=bundle,
                    predicate_type=item.predicate_type or "",
                    created=item.created,
                )
                out.append(
                    {
                        "kind": item.kind,
                        "image": str(item.image),
                        "layout": "oci-layout-bundle",
                        "location": f"oci:{root}@{digest}",
                        "status": status,
                    }
                )
        layout.write_index(entries)
    return out


def read_tag_layers(root: Path, image: ImageRef, tag: str) -> list[tuple[Descriptor, bytes]]:
    layout = _Layout(root)
    entry = _entry_by_name(layout.index(), tag)
    if entry is None:
        return []
    manifest = layout.get(str(entry["digest"]))
    if manifest is None:
        return []
    out: list[tuple[Descriptor, bytes]] = []
    for desc in parse_manifest(manifest, f"--oci-layout {root}: {tag}").layers:
        data = layout.get(desc.digest)
        if data is not None:
            out.append((desc, data))
    return out


def read_bundles(root: Path, image: ImageRef) -> list[tuple[str, str | None, dict[str, Any]]]:
    layout = _Layout(root)
    out: list[tuple[str, str | None, dict[str, Any]]] = []
    for entry in layout.index():
        if (entry.get("subject") or {}).get("digest") != image.digest:
            continue
        manifest = layout.get(str(entry.get("digest")))
        if manifest is None:
            continue
        doc = parse_manifest(manifest, f"--oci-layout {root}: {entry.get('digest')}")
        layers = [d for d in doc.layers if d.media_type.startswith(BUNDLE_TYPE_PREFIX)]
        if len(layers) != 1:
            continue
        data = layout.get(layers[0].digest)
        if data is None:
            continue
        try:
            bundle = json.loads(data)
        except (ValueError, RecursionError):
            continue
        if isinstance(bundle, dict):
            predicate = doc.annotations.get(BUNDLE_PREDICATE_ANNOTATION)
            out.append((str(entry["digest"]), predicate, bundle))
    return out
