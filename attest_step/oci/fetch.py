"""Read signatures and attestations back, in both layouts (registry or OCI layout dir)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from attest_step.errors import UsageError
from attest_step.imageref import ImageRef, image_ref_from_parts, parse_image_ref
from attest_step.oci.backends import Stores
from attest_step.oci.bundle_doc import bundle_contents
from attest_step.oci.bundle_layout import fetch_bundles
from attest_step.oci.certmaterial import NONE, CarriedCertificate, from_annotations
from attest_step.oci.options import RegistryOptions
from attest_step.oci.registry import RegistryClient
from attest_step.oci.retry import Deadline
from attest_step.oci.store import Store
from attest_step.oci.tag_layout import read_layers
from attest_step.oci.types import (
    COSIGN_SIGN_PREDICATE,
    DSSE_TYPE,
    SIMPLESIGNING_TYPE,
    Descriptor,
    tag_for,
)


@dataclass(frozen=True)
class FetchedEnvelope:
    """A DSSE envelope and where it was found."""

    envelope: dict[str, Any]
    source: str  # "tag" (.att layer) or "bundle" (Sigstore bundle referrer)
    location: str
    predicate_type: str | None  # from the layer/manifest annotation (unverified)
    certificate: CarriedCertificate = NONE  # x509 material found with it (unchecked)
    tlog_entries: Any = None  # tlog hook: a bundle's verificationMaterial.tlogEntries (raw)


@dataclass(frozen=True)
class FetchedSignature:
    """One simple-signing layer of the ``.sig`` tag (nothing verified yet)."""

    payload: bytes
    descriptor: Descriptor
    location: str


def _store(image: ImageRef, registry: RegistryOptions) -> Store:
    """The store holding ``image``'s signatures: its registry repository or the layout."""
    return Stores(registry).for_image(image)


def _json_object(data: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(data)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def fetch_attestations(
    image: ImageRef, registry: RegistryOptions, *, include_signatures: bool = False
) -> list[FetchedEnvelope]:
    """Every DSSE envelope attached to ``image``, with where it came from.

    Bundles first (the order cosign v3 reads), then ``.att`` layers. Bundles annotated as
    cosign signatures (predicateType ``https://sigstore.dev/cosign/sign/v1``) are left out
    unless ``include_signatures``. Nothing is verified: the caller checks signatures,
    subjects and predicate types.
    """
    store = _store(image, registry)
    out: list[FetchedEnvelope] = []
    for found in fetch_bundles(store, image.digest):
        if found.predicate_type == COSIGN_SIGN_PREDICATE and not include_signatures:
            continue
        got = bundle_contents(found.bundle)
        if got is not None:
            where = f"{image.name}@{found.manifest_digest}"
            out.append(
                FetchedEnvelope(
                    got.envelope,
                    "bundle",
                    where,
                    found.predicate_type,
                    got.certificate,
                    got.tlog_entries,
                )
            )
    att_tag = tag_for(image.digest, ".att")
    for desc, data in read_layers(store, att_tag):
        if desc.media_type != DSSE_TYPE:
            continue
        doc = _json_object(data)
        if doc is not None:
            where = f"{image.name}:{att_tag}"
            predicate = desc.annotations.get("predicateType")
            carried = from_annotations(desc.annotations)
            out.append(FetchedEnvelope(doc, "tag", where, predicate, carried))
    return out


def fetch_attestation_envelopes(image: ImageRef, registry: RegistryOptions) -> list[dict[str, Any]]:
    """Every DSSE envelope attached to ``image`` (``.att`` tag and Sigstore bundles)."""
    return [f.envelope for f in fetch_attestations(image, registry)]


def fetch_signatures(image: ImageRef, registry: RegistryOptions) -> list[FetchedSignature]:
    """Every simple-signing layer at ``sha256-<hex>.sig`` (unverified)."""
    tag = tag_for(image.digest, ".sig")
    return [
        FetchedSignature(data, desc, f"{image.name}:{tag}")
        for desc, data in read_layers(_store(image, registry), tag)
        if desc.media_type == SIMPLESIGNING_TYPE
    ]


def fetch_signature_bundles(image: ImageRef, registry: RegistryOptions) -> list[FetchedEnvelope]:
    """Sigstore-bundle signatures (cosign v3 ``sign``): every bundle's DSSE envelope."""
    found = fetch_attestations(image, registry, include_signatures=True)
    return [f for f in found if f.source == "bundle"]


def resolve_image(value: str, registry: RegistryOptions) -> ImageRef:
    """``REPO@sha256:HEX`` as given, or ``REPO[:TAG]`` resolved to its digest (as cosign does)."""
    if "@" in value:
        return parse_image_ref(value, what="IMAGE")
    name = value.strip()
    tag = "latest"
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, _, tag = name.rpartition(":")
    probe = image_ref_from_parts(name, "sha256:" + "0" * 64, what="IMAGE")
    if registry.oci_layout_dir:
        raise UsageError(f"IMAGE {value!r}: give the digest (REPO@sha256:HEX) with --oci-layout")
    client = RegistryClient(probe.registry, registry, deadline=Deadline(registry.timeout_seconds))
    manifest = client.get_manifest(probe.repository, tag)
    if manifest is None:
        raise UsageError(f"IMAGE {value!r}: tag {tag} not found in {probe.name}")
    return ImageRef(probe.registry, probe.repository, manifest.digest, tag)
