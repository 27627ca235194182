"""Append one reproducible layer holding a directory to an image in an OCI layout, as
``crane append`` does for a registry image, without network and byte for byte
reproducible.

The layer is an uncompressed tar (``application/vnd.oci.image.layer.v1.tar``, so its
digest is its diff_id) of the directory's tree under a path prefix:

- entries in byte order of their paths, directories before what they hold;
- owner 0:0 with no user or group names, mtime fixed (``SOURCE_DATE_EPOCH`` or 0);
- regular files keep only their executable bits (0755 or 0644), directories are 0755,
  symbolic links are stored as links; anything else (devices, FIFOs, sockets) is refused,
  and so is a tree larger than the size limit.

The config is the base's with the layer's diff_id and one history entry appended and
``created`` set to the same fixed time; the manifest is the base's with the new config
and layer, and annotations ``org.opencontainers.image.base.digest`` (and ``base.name``
when given). A Docker schema 2 base is written as OCI (same layer bytes, OCI media types).
Every base blob is read checked against its digest and size.
"""

from __future__ import annotations

import os
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

from attest_step.errors import AttestStepError, UsageError
from attest_step.oci.blobstream import HashingWriter
from attest_step.oci.documents import json_object
from attest_step.oci.store import Manifest, Store
from attest_step.oci.types import CONFIG_TYPE, MANIFEST_TYPE, Descriptor, compact_json

LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"
GZIP_LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
BASE_DIGEST_ANNOTATION = "org.opencontainers.image.base.digest"
BASE_NAME_ANNOTATION = "org.opencontainers.image.base.name"
# Docker schema 2 media types -> their OCI equivalents (same bytes).
_TO_OCI = {
    "application/vnd.docker.distribution.manifest.v2+json": MANIFEST_TYPE,
    "application/vnd.docker.container.image.v1+json": CONFIG_TYPE,
    "application/vnd.docker.image.rootfs.diff.tar.gzip": GZIP_LAYER_TYPE,
    "application/vnd.docker.image.rootfs.diff.tar": LAYER_TYPE,
}


class Appended(NamedTuple):
    digest: str
    size: int
    layer_digest: str
    layer_size: int
    files: int


def source_date_epoch() -> int:
    """``SOURCE_DATE_EPOCH`` (reproducible-builds.org), else 0."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not value:
        return 0
    if not value.isdigit():
        raise UsageError(
            f"SOURCE_DATE_EPOCH {value!r}: not a number of seconds since 1970; unset or fix it"
        )
    return int(value)


def _prefix(value: str) -> str:
    parts = [p for p in value.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UsageError(f"--prefix {value!r}: '..' is not allowed; give a path like /app")
    return "/".join(parts)


def _walk_under(root: Path, rel: str) -> Iterator[tuple[str, os.stat_result]]:
    try:
        names = sorted(os.listdir(root / rel), key=os.fsencode)
    except OSError as err:
        raise AttestStepError(f"{root / rel}: cannot list it ({err.strerror})") from err
    for name in names:
        path = f"{rel}/{name}"
        info = os.lstat(root / path)
        yield path, info
        if stat.S_ISDIR(info.st_mode):
            yield from _walk_under(root, path)


def _entries(root: Path) -> Iterator[tuple[str, os.stat_result]]:
    try:
        names = sorted(os.listdir(root), key=os.fsencode)
    except OSError as err:
        raise UsageError(
            f"{root}: cannot list it ({err.strerror}); give the output directory"
        ) from err
    for name in names:
        info = os.lstat(root / name)
        yield name, info
        if stat.S_ISDIR(info.st_mode):
            yield from _walk_under(root, name)


def _header(name: str, kind: bytes, mode: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = kind, mode, mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


class Layer(NamedTuple):
    """A layer tar written to a file: its descriptor and how many entries it has."""

    desc: Descriptor
    files: int


def layer_tar(root: Path, prefix: str, mtime: int, limit: int, out: BinaryIO) -> Layer:
    """Write the reproducible tar of ``root`` under ``prefix`` to ``out``, hashed as it
    is written (never held in memory)."""
    base = _prefix(prefix)
    writer = HashingWriter(out)
    count = 0
    total = 0
    with tarfile.open(fileobj=writer, mode="w", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        if base:
            parts = base.split("/")
            for i in range(len(parts)):
                tar.addfile(_header("/".join(parts[: i + 1]), tarfile.DIRTYPE, 0o755, mtime))
        for rel, info in _entries(root):
            name = f"{base}/{rel}" if base else rel
            path = root / rel
            if stat.S_ISDIR(info.st_mode):
                tar.addfile(_header(name, tarfile.DIRTYPE, 0o755, mtime))
            elif stat.S_ISLNK(info.st_mode):
                entry = _header(name, tarfile.SYMTYPE, 0o777, mtime)
                entry.linkname = os.readlink(path)
                tar.addfile(entry)
            elif stat.S_ISREG(info.st_mode):
                total += info.st_size
                if total > limit:
                    raise UsageError(
                        f"{root}: more than {limit} bytes of files; raise --max-blob-size "
                        "if the output is genuine"
                    )
                mode = 0o755 if info.st_mode & 0o111 else 0o644
                entry = _header(name, tarfile.REGTYPE, mode, mtime)
                entry.size = info.st_size
                with path.open("rb") as handle:
                    tar.addfile(entry, handle)
            else:
                raise UsageError(
                    f"{path}: not a file, directory or symbolic link; a layer holds only those"
                )
            count += 1
    writer.flush()
    return Layer(Descriptor(LAYER_TYPE, writer.digest, writer.size), count)


def _oci(desc: dict[str, Any]) -> dict[str, Any]:
    media = str(desc.get("mediaType", ""))
    return {**desc, "mediaType": _TO_OCI.get(media, media)}


def _new_config(config: dict[str, Any], layer_digest: str, mtime: int, where: str) -> bytes:
    """The base's config with the layer's diff_id, one history entry and ``created``."""
    created = datetime.fromtimestamp(mtime, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    rootfs = config.get("rootfs")
    if not isinstance(rootfs, dict) or not isinstance(rootfs.get("diff_ids"), list):
        raise UsageError(f"{where}: its config has no rootfs.diff_ids")
    rootfs["diff_ids"] = [*rootfs["diff_ids"], layer_digest]
    history = config.get("history")
    entry = {"created": created, "created_by": "attest-step append", "comment": "build output"}
    config["history"] = [*(history if isinstance(history, list) else []), entry]
    config["created"] = created
    return compact_json(config)


def _new_manifest(
    base: Manifest, config: Descriptor, layer: Descriptor, base_name: str | None
) -> bytes:
    """The base's manifest (as OCI) with the new config and one more layer, annotated."""
    manifest = json_object(base.data, base.source)
    annotations = dict(manifest.get("annotations") or {})
    annotations[BASE_DIGEST_ANNOTATION] = base.digest
    if base_name:
        annotations[BASE_NAME_ANNOTATION] = base_name
    new: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {**_oci(manifest["config"]), "digest": config.digest, "size": config.size},
        "layers": [*(_oci(d) for d in manifest["layers"]), layer.to_dict()],
        "annotations": annotations,
    }
    return compact_json(new)


def append_layer(
    source: Store,
    reference: str,
    directory: Path,
    target: Store,
    tag: str,
    *,
    prefix: str = "/",
    base_name: str | None = None,
    limit: int,
) -> Appended:
    """Write to ``target`` at ``tag`` the image at ``reference`` of ``source`` plus one
    layer holding ``directory`` (see the module docstring). Blobs stream: the base's
    layers from source to target, the new layer through a temporary file."""
    if not directory.is_dir():
        raise UsageError(f"{directory}: not a directory; give the build's output directory")
    base = source.get_manifest(reference)
    if base is None:
        raise UsageError(f"{source.location(reference)}: no such image; check the tag or digest")
    parsed = base.manifest()  # refuses an index with a one-line error
    config_data = source.get_blob(parsed.config.digest, size=parsed.config.size)
    config = json_object(config_data, f"{source.location(parsed.config.digest)} config")
    mtime = source_date_epoch()
    with tempfile.TemporaryFile(prefix="attest-step-layer-") as spool:
        layer = layer_tar(directory, prefix, mtime, limit, spool)
        new_config = _new_config(config, layer.desc.digest, mtime, source.location(reference))
        for desc in parsed.layers:
            with source.open_blob(desc.digest, desc.size) as reader:
                target.put_blob_stream(desc, reader)
        spool.seek(0)
        target.put_blob_stream(layer.desc, spool)
    config_desc = Descriptor(CONFIG_TYPE, target.put_blob(new_config), len(new_config))
    data = _new_manifest(base, config_desc, layer.desc, base_name)
    digest = target.put_manifest(tag, data, MANIFEST_TYPE)
    return Appended(digest, len(data), layer.desc.digest, layer.desc.size, layer.files)
