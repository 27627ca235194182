"""Copy one image between an OCI image-layout directory and a registry repository, as
oras-go's ``oras.Copy`` does between two targets: the manifest and the blobs it names,
through the :class:`~attest_step.oci.store.Store` interface.

What :func:`copy_image` guarantees:

- every blob streams from the source to the target (``Store.open_blob`` and
  ``put_blob_stream``, so memory does not grow with its size), checked against its
  descriptor's digest and size while it flows (refusing more than ``--max-blob-size``)
  and committed under its digest only once the whole of it checked; from an OCI layout
  every blob is checked before the first one is written, so a corrupt or incomplete
  layout sends nothing (a registry source is not read twice);
- blobs the target already has are not sent again (the registry is asked first; a layout
  looks at its files);
- the manifest is written last, byte for byte, so a tag never names an image whose blobs
  are missing, and its digest is the source's.

Only single-image manifests are copied. An index (multi-platform image, OCI index or Docker
manifest list) is refused unless a platform is given: then the one manifest it lists for that
platform (:func:`attest_step.oci.platform.select_platform`) is copied, read by the digest the
index names, so it is the one the index (and the digest pinning it) vouches for.
Source and destination references are parsed by :func:`parse_layout_ref` (``DIR``,
``DIR:TAG``, ``DIR@sha256:HEX``, as ``oras cp --from-oci-layout`` takes them).
"""

from __future__ import annotations

import re
from typing import NamedTuple

from attest_step.errors import RegistryError, UsageError
from attest_step.oci.documents import INDEX_TYPES, MANIFEST_TYPES, check_digest_syntax, json_object
from attest_step.oci.platform import Platform, config_platform, select_platform
from attest_step.oci.store import Manifest, Store
from attest_step.oci.types import Descriptor

_TAG = re.compile(r"[\w][\w.-]{0,127}")
_MAX_CONFIG_BYTES = 4 * 1024 * 1024
"""An image config read to check ``--platform`` (as large as a manifest may be)."""


class LayoutRef(NamedTuple):
    """``DIR[:TAG|@DIGEST]``: an OCI layout directory and what in it."""

    path: str
    reference: str | None
    """A tag, a digest, or None (the layout's only image)."""


def parse_layout_ref(value: str, *, what: str) -> LayoutRef:
    """Split ``DIR``, ``DIR:TAG`` or ``DIR@sha256:HEX`` (the tag is what follows the last
    ``:`` of the last path component; the digest what follows the last ``@``)."""
    if not value:
        raise UsageError(f"{what}: empty; give DIR, DIR:TAG or DIR@sha256:HEX")
    path, at, digest = value.rpartition("@")
    if at and "/" not in digest:
        if not path:
            raise UsageError(f"{what} {value!r}: no directory before '@'")
        try:
            check_digest_syntax(digest, what)
        except RegistryError:
            raise UsageError(
                f"{what} {value!r}: {digest!r} is not a digest; give DIR@sha256:<64 hex>"
            ) from None
        if not digest.startswith("sha256:"):
            raise UsageError(f"{what} {value!r}: only sha256 digests are supported")
        return LayoutRef(path, digest)
    head, slash, last = value.rpartition("/")
    name, colon, tag = last.rpartition(":")
    if not colon:
        return LayoutRef(value, None)
    if _TAG.fullmatch(tag) is None:
        raise UsageError(
            f"{what} {value!r}: {tag!r} is not a tag (letters, digits, '_', '.', '-'; "
            "at most 128, not starting with '.' or '-')"
        )
    path = f"{head}{slash}{name}"
    if not name:
        raise UsageError(f"{what} {value!r}: no directory before ':{tag}'")
    return LayoutRef(path, tag)


class Copied(NamedTuple):
    """What :func:`copy_image` did."""

    digest: str
    media_type: str
    size: int
    blobs: int
    """Blobs the manifest names (config and layers)."""
    bytes: int
    """Their total size."""
    index_digest: str | None = None
    """The index the manifest was chosen from (``--platform`` given an index), else None."""
    platform: str | None = None
    """The platform asked for (``OS/ARCH[/VARIANT]``), else None."""


def _image_manifest(
    store: Store, reference: str, platform: Platform | None
) -> tuple[Manifest, str | None]:
    """The image manifest at ``reference`` and the digest of the index it was chosen from
    (None when ``reference`` is an image)."""
    found = store.get_manifest(reference)
    if found is None:
        raise RegistryError(f"{store.location(reference)}: no such image; check the tag or digest")
    if found.media_type in INDEX_TYPES and platform is not None:
        entry = select_platform(found, platform, store.location(reference))
        image = store.get_manifest(entry.digest, size=entry.size)
        if image is None or image.media_type not in MANIFEST_TYPES:
            kind = "missing" if image is None else f"a {image.media_type or 'document'}"
            raise RegistryError(
                f"{store.location(entry.digest)}: the index lists it for {platform} but it is "
                f"{kind}, not an image manifest"
            )
        return image, found.digest
    if found.media_type in INDEX_TYPES:
        raise UsageError(
            f"{store.location(reference)}: an index (multi-platform image), not a single image "
            "manifest; give --platform OS/ARCH[/VARIANT] to copy one of its images"
        )
    if found.media_type not in MANIFEST_TYPES:
        raise RegistryError(
            f"{store.location(reference)}: a {found.media_type or 'document without mediaType'}"
            ", not a single image manifest; copy one platform's manifest by its digest"
        )
    if platform is not None:
        _check_config_platform(store, found, platform)
    return found, None


def _check_config_platform(store: Store, manifest: Manifest, platform: Platform) -> None:
    """``--platform`` given a single image: its config must declare that platform."""
    config = manifest.manifest().config
    where = store.location(manifest.digest)
    if config.size > _MAX_CONFIG_BYTES:
        raise RegistryError(
            f"{where}: its config is {config.size} bytes, over {_MAX_CONFIG_BYTES}; "
            "not an image config this copy reads for --platform"
        )
    declared = config_platform(
        json_object(store.get_blob(config.digest, size=config.size), where), where
    )
    if not platform.matches(declared):
        raise UsageError(
            f"{where}: a single image for {declared}, not {platform}; give the platform it "
            "is for, or another image"
        )


def copy_image(
    source: Store,
    reference: str,
    target: Store,
    target_ref: str | None,
    *,
    expected: str | None = None,
    platform: Platform | None = None,
) -> Copied:
    """Copy the image at ``reference`` (tag or digest) of ``source`` to ``target``, at the
    tag ``target_ref`` or, when it is a digest or None, by digest only. A digest given as
    ``target_ref`` or ``expected`` must be the manifest's (checked before any write).
    With ``platform``, an index at ``reference`` gives the manifest it lists for that
    platform, and a single image must declare that platform in its config."""
    manifest, index_digest = _image_manifest(source, reference, platform)
    target_ref = target_ref or manifest.digest
    for wanted_digest in (target_ref if ":" in target_ref else None, expected):
        if wanted_digest is not None and wanted_digest != manifest.digest:
            raise UsageError(
                f"{target.location(target_ref)}: the image copied has digest "
                f"{manifest.digest}, not {wanted_digest}; give a tag or that digest"
            )
    parsed = manifest.manifest()
    wanted: list[Descriptor] = []
    for desc in [parsed.config, *parsed.layers]:
        if desc.digest not in (d.digest for d in wanted):
            wanted.append(desc)
    if source.kind == "oci-layout":
        # Local and cheap to read twice: every blob is checked before anything is written,
        # so a corrupt layout sends nothing at all.
        for desc in wanted:
            with source.open_blob(desc.digest, desc.size) as reader:
                reader.drain()
    # Each blob streams from source to target, checked as it flows (again, for a layout:
    # it may have changed), never whole in memory; the manifest goes last, so a failure
    # leaves at most unreferenced blobs behind.
    for desc in wanted:
        with source.open_blob(desc.digest, desc.size) as reader:
            target.put_blob_stream(desc, reader)
    digest = target.put_manifest(target_ref, manifest.data, manifest.media_type)
    if digest != manifest.digest:
        raise RegistryError(
            f"{target.location(target_ref)}: stored with digest {digest}, not {manifest.digest}"
        )
    return Copied(
        digest=digest,
        media_type=manifest.media_type,
        size=len(manifest.data),
        blobs=len(wanted),
        bytes=sum(d.size for d in wanted),
        index_digest=index_digest,
        platform=None if platform is None else str(platform),
    )
