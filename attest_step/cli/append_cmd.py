"""``append``: a base image in an OCI layout plus one reproducible layer of a directory,
written to an OCI layout (``crane append``, without network)."""

from __future__ import annotations

from pathlib import Path

import click

from attest_step.cli.common import emit_json
from attest_step.cli.digest_file import digest_file_option, write_digest_file
from attest_step.cli.options import output_option
from attest_step.errors import UsageError
from attest_step.oci.copy import parse_layout_ref
from attest_step.oci.options import max_blob_size_option


@click.command("append")
@click.option(
    "--base",
    required=True,
    metavar="DIR[:TAG|@DIGEST]",
    help="The base image, in an OCI layout directory (DIR alone: its only image), e.g. "
    "what `copy --to-oci-layout` fetched.",
)
@click.option(
    "--to-oci-layout",
    "target",
    required=True,
    metavar="DIR[:TAG]",
    help="OCI layout directory (created if needed) to write the new image to, at TAG "
    "(default latest).",
)
@click.option(
    "--prefix",
    metavar="PATH",
    default="/",
    show_default=True,
    help="Where DIR's content goes in the image's filesystem, e.g. /app.",
)
@click.option(
    "--base-name",
    default=None,
    help="The base image's name, recorded as annotation org.opencontainers.image.base.name.",
)
@digest_file_option("the new manifest's")
@output_option
@max_blob_size_option
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def append_command(
    *,
    base: str,
    target: str,
    prefix: str,
    base_name: str | None,
    digest_file: Path | None,
    output: str,
    max_blob_bytes: int,
    directory: Path,
) -> None:
    """Add one layer holding DIRECTORY to the base image; no network.

    \b
      attest-step append --base deps/base:base --to-oci-layout image:app out

    The layer is reproducible: an uncompressed tar in byte order of the paths, owner 0:0,
    mtimes SOURCE_DATE_EPOCH (else 0), modes 0644/0755, symbolic links kept (devices,
    FIFOs and sockets refused). The base's blobs are checked against their digests.
    Push the result with `attest-step copy --from-oci-layout DIR:TAG REF`. Prints the new
    image as oci:DIR@sha256:HEX.
    """
    from attest_step.oci.append import append_layer  # noqa: PLC0415
    from attest_step.oci.layout_store import LayoutStore  # noqa: PLC0415

    source = parse_layout_ref(base, what="--base")
    dest = parse_layout_ref(target, what="--to-oci-layout")
    if dest.reference is not None and ":" in dest.reference:
        raise UsageError(f"--to-oci-layout {target!r}: give DIR or DIR:TAG, not a digest")
    if not (Path(source.path) / "oci-layout").is_file():
        raise UsageError(
            f"--base {base}: not an OCI image layout (no oci-layout file); "
            "fetch the base with `attest-step copy --to-oci-layout REF@sha256:HEX DIR:TAG`"
        )
    base_store = LayoutStore(Path(source.path), max_blob_bytes=max_blob_bytes)
    out = LayoutStore(Path(dest.path), max_blob_bytes=max_blob_bytes)
    reference = source.reference or base_store.only_image()
    tag = dest.reference or "latest"
    with out.locked():
        done = append_layer(
            base_store,
            reference,
            directory,
            out,
            tag,
            prefix=prefix,
            base_name=base_name,
            limit=max_blob_bytes,
        )
    write_digest_file(digest_file, done.digest)
    if output == "json":
        emit_json(
            {
                "image": out.location(done.digest),
                "digest": done.digest,
                "size": done.size,
                "tag": tag,
                "layer": {"digest": done.layer_digest, "size": done.layer_size},
                "entries": done.files,
            }
        )
        return
    click.echo(out.location(done.digest))
