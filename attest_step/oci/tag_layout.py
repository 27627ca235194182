"""cosign's tag layout: one manifest per image at ``sha256-<hex>.sig`` / ``.att``, one layer
per signature or attestation, appended by read-modify-write (:mod:`attest_step.oci.rmw`:
check before write, verify after write, bounded retries) merging every layer seen at the
tag during the operation, so a layer another racing writer dropped is put back.

Written once against :class:`~attest_step.oci.store.Store`: the same manifest bytes go to a
registry tag and to an OCI layout's ``index.json`` entry of that name.
"""

from __future__ import annotations

import contextlib
from typing import Any, NamedTuple

from attest_step.errors import RegistryError
from attest_step.oci.rmw import Read, Update, read_modify_write, read_tag
from attest_step.oci.store import Background, Manifest, Store
from attest_step.oci.types import (
    CONFIG_TYPE,
    MANIFEST_TYPE,
    SIGNATURE_ANNOTATION,
    Descriptor,
    compact_json,
    sha256_digest,
)

SIG_SUFFIX = ".sig"
ATT_SUFFIX = ".att"
MAX_LAYERS = 1000  # cosign refuses manifests with more layers
_ZERO_TIME = "0001-01-01T00:00:00Z"


class Layer(NamedTuple):
    """One signature/attestation layer: the blob bytes and their descriptor annotations."""

    data: bytes
    media_type: str
    annotations: dict[str, str]

    def descriptor(self) -> Descriptor:
        return Descriptor(
            self.media_type, sha256_digest(self.data), len(self.data), self.annotations
        )


class AppendResult(NamedTuple):
    manifest_digest: str
    status: str  # "pushed" or "present"
    attempts: int


def config_blob(diff_ids: list[str]) -> bytes:
    """go-containerregistry's empty image config after appending layers, as cosign writes."""
    return compact_json(
        {
            "architecture": "",
            "created": _ZERO_TIME,
            "history": [{"created": _ZERO_TIME} for _ in diff_ids],
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "config": {},
        }
    )


def manifest_bytes(layers: list[Descriptor], config: bytes) -> bytes:
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {
            "mediaType": CONFIG_TYPE,
            "size": len(config),
            "digest": sha256_digest(config),
        },
        "layers": [
            {
                "mediaType": d.media_type,
                "size": d.size,
                "digest": d.digest,
                **({"annotations": d.annotations} if d.annotations else {}),
            }
            for d in layers
        ],
    }
    return compact_json(doc)


def layers_of(manifest: Manifest | None) -> list[Descriptor]:
    """The layers of the manifest at a ``.sig``/``.att`` tag (parsed strictly)."""
    if manifest is None:
        return []
    return manifest.manifest().layers


def _same(a: Descriptor, b: Descriptor) -> bool:
    """Same blob and same signature: cosign's duplicate rule."""
    return a.digest == b.digest and a.annotations.get(SIGNATURE_ANNOTATION) == b.annotations.get(
        SIGNATURE_ANNOTATION
    )


class _Seen:
    """Every layer observed at the tag during this operation, in first-seen order.

    Merging the union (not only the latest read) re-adds a layer another racing writer
    dropped, so a lost update is healed by whoever writes next.
    """

    def __init__(self) -> None:
        self.layers: list[Descriptor] = []

    def add(self, layers: list[Descriptor]) -> None:
        for d in layers:
            if not any(_same(d, x) for x in self.layers):
                self.layers.append(d)

    def missing_from(self, layers: list[Descriptor]) -> list[Descriptor]:
        return [d for d in self.layers if not any(_same(d, x) for x in layers)]


def append_layer(
    store: Store,
    tag: str,
    layer: Layer,
    *,
    first: Read | None = None,
) -> AppendResult:
    """Add ``layer`` to the manifest at ``tag`` without dropping anyone else's layer.

    ``first``: the tag as :func:`prefetch_append` read it (before the signature existed).
    """
    ours = layer.descriptor()
    # The layer blob is uploaded while the tag is read and the config uploaded.
    upload = store.put_blob_background(layer.data)
    try:
        return _append(store, tag, ours, upload, first)
    finally:
        with contextlib.suppress(Exception):
            upload.wait()  # joined on every path; its error, if any, was raised already


def _append(
    store: Store, tag: str, ours: Descriptor, upload: Background, first: Read | None
) -> AppendResult:
    seen = _Seen()

    def complete(manifest: Manifest | None) -> bool:
        layers = layers_of(manifest)
        seen.add(layers)
        return any(_same(d, ours) for d in layers) and not seen.missing_from(layers)

    def build(current: Manifest | None) -> bytes:
        layers = layers_of(current)
        merged = [*layers, *(d for d in seen.missing_from(layers) if not _same(d, ours))]
        if not any(_same(d, ours) for d in merged):
            merged.append(ours)
        if len(merged) > MAX_LAYERS:
            raise RegistryError(
                f"{store.location(tag)}: would hold {len(merged)} layers, more "
                f"than cosign accepts ({MAX_LAYERS}); remove old signatures before adding more"
            )
        config = config_blob([d.digest for d in merged])
        store.put_blob(config)
        upload.wait()
        return manifest_bytes(merged, config)

    update = Update(build, complete, MANIFEST_TYPE, "the tag")
    outcome = read_modify_write(store, tag, update, first=first)
    return AppendResult(outcome.digest, outcome.status, outcome.attempts)


def prefetch_append(
    store: Store,
    tag: str,
    layer_data: bytes,
) -> Read:
    """What :func:`append_layer` of a layer with blob ``layer_data`` can do before the
    layer's annotations (the signature) exist: read the tag, and upload the layer blob and
    the config the merge will most likely need. Nothing is written at the tag; the read is
    returned for ``append_layer(first=...)``, whose HEAD before the PUT re-reads the tag if
    it moved since."""
    layer_digest = sha256_digest(layer_data)
    upload = store.put_blob_background(layer_data)
    # The common case is a first signature: no tag yet, and a config that lists only this
    # layer. That config is uploaded while the tag is read; if the tag exists, the config
    # of the merge is uploaded after the read and the guess stays an unreferenced blob.
    first_config = config_blob([layer_digest])
    guess = store.put_blob_background(first_config)
    try:
        read = read_tag(store, tag)
        digests = [d.digest for d in layers_of(read.manifest)]
        config = config_blob([*digests, layer_digest])
        if config != first_config:
            store.put_blob(config)
        guess.wait()
        upload.wait()
    finally:
        for background in (guess, upload):
            with contextlib.suppress(Exception):
                background.wait()
    return read


def read_layers(store: Store, tag: str) -> list[tuple[Descriptor, bytes]]:
    """Each layer at ``tag`` with its blob (empty list when the tag does not exist)."""
    manifest = store.get_manifest(tag)
    return [(d, store.get_blob(d.digest, size=d.size)) for d in layers_of(manifest)]
