"""``copy``: move one image between an OCI image-layout directory and a registry
(``oras cp --from-oci-layout`` / ``--to-oci-layout``, with attest-step's registry client)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from attest_step.cli.common import emit_json
from attest_step.cli.digest_file import digest_file_option, write_digest_file
from attest_step.cli.options import output_option
from attest_step.errors import UsageError
from attest_step.imageref import ImageRef, image_ref_from_parts
from attest_step.oci.copy import Copied, copy_image, parse_layout_ref
from attest_step.oci.options import RegistryOptions, transfer_options
from attest_step.oci.platform import Platform, parse_platform

if TYPE_CHECKING:
    from attest_step.oci.layout_store import LayoutStore

_NO_DIGEST = "sha256:" + "0" * 64


def _registry_ref(value: str) -> tuple[ImageRef, str | None]:
    """``REGISTRY/REPO[:TAG][@sha256:HEX]``: the repository (with the tag, if any) and the
    digest given (None when none)."""
    name, at, digest = value.strip().partition("@")
    ref = image_ref_from_parts(name, digest if at else _NO_DIGEST, what=f"REF {value!r}")
    return ref, ref.digest if at else None


def _layout_store(directory: str, registry: RegistryOptions, *, source: bool) -> LayoutStore:
    from attest_step.oci.layout_store import LayoutStore  # noqa: PLC0415 (when used)

    root = Path(directory)
    if source and not (root / "oci-layout").is_file():
        raise UsageError(
            f"--from-oci-layout {directory}: not an OCI image layout (no oci-layout file); "
            "give the directory holding oci-layout, index.json and blobs/"
        )
    return LayoutStore(root, max_blob_bytes=registry.max_blob_bytes)


@click.command("copy")
@click.option(
    "--from-oci-layout",
    "from_layout",
    is_flag=True,
    help="SRC is an OCI image-layout directory: DIR, DIR:TAG or DIR@sha256:HEX "
    "(DIR alone: the one image its index.json lists).",
)
@click.option(
    "--to-oci-layout",
    "to_layout",
    is_flag=True,
    help="DST is an OCI image-layout directory: DIR or DIR:TAG (default tag: SRC's, else latest).",
)
@click.option(
    "--platform",
    "platform_arg",
    metavar="OS/ARCH[/VARIANT]",
    default=None,
    help="When SRC is an index (multi-platform image), copy the one image it lists for this "
    "platform (exact os and architecture; the variant when given). A single image must "
    "declare it in its config.",
)
@digest_file_option("the copied manifest's")
@output_option
@transfer_options
@click.argument("src")
@click.argument("dst")
def copy_command(
    *,
    src: str,
    dst: str,
    from_layout: bool,
    to_layout: bool,
    digest_file: Path | None,
    output: str,
    registry: RegistryOptions,
    platform_arg: str | None,
) -> None:
    """Copy one image (its manifest and blobs) from an OCI layout to a registry, or back.

    \b
      attest-step copy --from-oci-layout out:app ghcr.io/org/app:1.0
      attest-step copy --to-oci-layout ghcr.io/org/base@sha256:HEX deps/base:base

    Every blob is checked against its digest and size before it is written (from a
    layout: all of them before the first upload), blobs the destination has are not
    sent again, and the manifest goes last: a failed copy never leaves a tag on an
    incomplete image. Blobs stream through (a download is spooled to a temporary file
    in TMPDIR), so memory does not grow with their size; each is at most
    --max-blob-size. Prints REGISTRY/REPO@sha256:HEX. Only single
    image manifests are copied: an index (OCI index or Docker manifest list, e.g. the
    digest `docker pull` prints) needs --platform, which picks the one image the index
    lists for it (read by the digest the index names; stderr says which). Credentials
    come from the docker config (DOCKER_CONFIG); exit 2 on bad input or a refusal (no
    or several images for --platform), 75 when the registry gave no answer in --timeout
    (retry later).

    \b
      attest-step copy --to-oci-layout --platform linux/arm64 \\
        docker.io/library/debian@sha256:HEX deps/base:base
    """
    from attest_step.oci.registry import RegistryClient  # noqa: PLC0415 - ~100 ms
    from attest_step.oci.registry_store import RegistryStore  # noqa: PLC0415
    from attest_step.oci.retry import Deadline  # noqa: PLC0415

    if from_layout == to_layout:
        raise UsageError("copy: give exactly one of --from-oci-layout and --to-oci-layout")
    platform: Platform | None = None if platform_arg is None else parse_platform(platform_arg)
    layout_arg, remote_arg = (src, dst) if from_layout else (dst, src)
    what = "--from-oci-layout SRC" if from_layout else "--to-oci-layout DST"
    place = parse_layout_ref(layout_arg, what=what)
    image, digest = _registry_ref(remote_arg)
    layout = _layout_store(place.path, registry, source=from_layout)
    client = RegistryClient(image.registry, registry, deadline=Deadline(registry.timeout_seconds))
    remote = RegistryStore(client, image.repository)
    if from_layout:
        reference = place.reference or layout.only_image()
        copied = copy_image(
            layout, reference, remote, image.tag or digest, expected=digest, platform=platform
        )
    else:
        tag = place.reference or image.tag or "latest"
        with layout.locked():
            copied = copy_image(
                remote, digest or image.tag or "latest", layout, tag, platform=platform
            )
    write_digest_file(digest_file, copied.digest)
    _report(copied, image, output, source=src)


def _report(copied: Copied, image: ImageRef, output: str, *, source: str) -> None:
    pinned = f"{image.name}@{copied.digest}"
    if copied.index_digest is not None and output != "json":
        click.echo(
            f"attest-step: copied {copied.platform} image {copied.digest}, listed in the "
            f"index {copied.index_digest} ({source})",
            err=True,
        )
    if output == "json":
        emit_json(
            {
                "image": pinned,
                "digest": copied.digest,
                "mediaType": copied.media_type,
                "size": copied.size,
                "tag": image.tag,
                "blobs": copied.blobs,
                "blobBytes": copied.bytes,
                "index": copied.index_digest,
                "platform": copied.platform,
            }
        )
        return
    click.echo(pinned)
