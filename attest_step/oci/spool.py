"""Signed output on disk before any push; ``push --from DIR`` uploads it later.

Spool format (version 1), all files directly in the spool directory:

- ``<stem>.oci.json``: one record per item to upload (compact-free, indented JSON)::

    {"spoolVersion": 1, "kind": "attestation" | "signature" | "signature-bundle",
     "image": "REGISTRY/REPO@sha256:HEX", "blob": "<stem>.<ext>", "blobDigest": "sha256:..",
     "mediaType": "<layer media type>", "annotations": {...},
     "predicateType": "<URI>" (attestations, bundles), "publicKeyHint": "<b64>" or "",
     "created": "RFC 3339 UTC"}

- ``<stem>.<ext>``: the exact bytes uploaded as the layer: the DSSE envelope
  (``.dsse.json``) or the simple-signing payload (``.payload.json``).

``stem`` = ``<kind>-<first 16 hex of the image digest>-<first 16 hex of the blob digest>``,
so writing the same item twice gives the same files and pushing is idempotent. Records
are written last (after their blob, atomically by rename), so a record always has its blob.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from attest_step.errors import AttestStepError, UsageError
from attest_step.fileio import describe, write_atomically
from attest_step.imageref import ImageRef, parse_image_ref
from attest_step.oci.keyhint import public_key_hint
from attest_step.oci.types import (
    CERTIFICATE_ANNOTATION,
    CHAIN_ANNOTATION,
    COSIGN_SIGN_PREDICATE,
    DSSE_TYPE,
    PREDICATE_TYPE_ANNOTATION,
    SIGNATURE_ANNOTATION,
    SIMPLESIGNING_TYPE,
    sha256_digest,
)

SPOOL_VERSION = 1
RECORD_SUFFIX = ".oci.json"
KINDS = ("attestation", "signature", "signature-bundle")
_BLOB_SUFFIX = {
    "attestation": ".dsse.json",
    "signature": ".payload.json",
    "signature-bundle": ".dsse.json",
}
_MEDIA_TYPE = {
    "attestation": DSSE_TYPE,
    "signature": SIMPLESIGNING_TYPE,
    "signature-bundle": DSSE_TYPE,
}
MAX_RECORD = 1 << 20
"""The most a record file may hold (1 MiB; a record with a certificate chain is ~4 KiB)."""
MAX_BLOB = 64 << 20
"""The most a blob may hold: the registry blob limit (64 MiB)."""
MAX_RECORDS = 10_000
MAX_TOTAL = 256 << 20
"""The most bytes one ``push --from`` reads into memory, over all blobs."""


@dataclass(frozen=True)
class SpoolItem:
    """One record of the spool and the bytes it uploads."""

    record_path: Path
    kind: str
    image: ImageRef
    data: bytes
    media_type: str
    annotations: dict[str, str]
    predicate_type: str | None = None
    public_key_hint: str = ""
    created: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def blob_digest(self) -> str:
        return sha256_digest(self.data)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _stem(kind: str, image: ImageRef, blob_digest: str) -> str:
    """A record's and its blob's file name without the suffix (see the module docstring)."""
    return f"{kind}-{image.hex[:16]}-{blob_digest.split(':', 1)[-1][:16]}"


def _write_item(
    out_dir: Path,
    *,
    kind: str,
    image: ImageRef,
    data: bytes,
    ext: str,
    media_type: str,
    annotations: dict[str, str],
    predicate_type: str | None,
    public_key_hint: str,
) -> Path:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise AttestStepError(
            f"spool directory {out_dir}: cannot create it ({err.strerror}); "
            "give a writable directory"
        ) from err
    digest = sha256_digest(data)
    stem = _stem(kind, image, digest)
    blob_path = out_dir / f"{stem}{ext}"
    record_path = out_dir / f"{stem}{RECORD_SUFFIX}"
    record: dict[str, Any] = {
        "spoolVersion": SPOOL_VERSION,
        "kind": kind,
        "image": str(image),
        "blob": blob_path.name,
        "blobDigest": digest,
        "mediaType": media_type,
        "annotations": annotations,
        "publicKeyHint": public_key_hint,
        "created": _now(),
    }
    if predicate_type is not None:
        record["predicateType"] = predicate_type
    with contextlib.suppress(OSError):  # the same item spooled before: keep its time
        record["created"] = _previous_created(record_path) or record["created"]
    write_atomically(blob_path, data)
    write_atomically(record_path, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
    return blob_path


def _hint(public_key_pem: bytes | None) -> str:
    if not public_key_pem:
        return ""
    return public_key_hint(public_key_pem)


def write_attestation(
    out_dir: Path,
    envelope: bytes,
    image: ImageRef,
    predicate_type: str,
    *,
    public_key_pem: bytes | None = None,
) -> Path:
    """Write the envelope and what is needed to upload it later; return the envelope file.

    ``envelope`` is the DSSE envelope JSON exactly as it should be stored in the ``.att``
    layer; ``public_key_pem`` (optional) fills the bundle's ``publicKey.hint``.
    """
    return _write_item(
        out_dir,
        kind="attestation",
        image=image,
        data=envelope,
        ext=".dsse.json",
        media_type=DSSE_TYPE,
        annotations={PREDICATE_TYPE_ANNOTATION: predicate_type, SIGNATURE_ANNOTATION: ""},
        predicate_type=predicate_type,
        public_key_hint=_hint(public_key_pem),
    )


def write_signature(
    out_dir: Path,
    payload: bytes,
    signature_b64: str,
    image: ImageRef,
    *,
    certificate_chain_pem: list[bytes] | None = None,
) -> Path:
    """Spool a simple-signing signature (tag layout); return the payload file."""
    annotations = {SIGNATURE_ANNOTATION: signature_b64}
    chain = certificate_chain_pem or []
    if chain:
        annotations[CERTIFICATE_ANNOTATION] = chain[0].decode("ascii")
        if len(chain) > 1:
            annotations[CHAIN_ANNOTATION] = b"".join(chain[1:]).decode("ascii")
    return _write_item(
        out_dir,
        kind="signature",
        image=image,
        data=payload,
        ext=".payload.json",
        media_type=SIMPLESIGNING_TYPE,
        annotations=annotations,
        predicate_type=None,
        public_key_hint="",
    )


def write_signature_bundle(
    out_dir: Path, envelope: bytes, image: ImageRef, *, public_key_pem: bytes | None = None
) -> Path:
    """Spool the DSSE form of a signature (cosign v3's bundle layout); return its file."""
    return _write_item(
        out_dir,
        kind="signature-bundle",
        image=image,
        data=envelope,
        ext=".dsse.json",
        media_type=DSSE_TYPE,
        annotations={},
        predicate_type=COSIGN_SIGN_PREDICATE,
        public_key_hint=_hint(public_key_pem),
    )


def _bad(path: Path, why: str) -> UsageError:
    return UsageError(f"spool record {path}: {why}; remove it or re-run the step that wrote it")


def _open_dir(out_dir: Path) -> int:
    try:
        return os.open(out_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise UsageError(
            f"spool directory {out_dir}: not found; give the directory an earlier run wrote"
        ) from None
    except NotADirectoryError:
        raise UsageError(f"spool directory {out_dir}: not a directory") from None
    except OSError as err:
        raise UsageError(f"spool directory {out_dir}: cannot open it ({err.strerror})") from None


def _read_entry(dir_fd: int, out_dir: Path, name: str, limit: int) -> bytes:
    """The bytes of the regular file ``name`` directly in the spool, never through a link.

    ``lstat`` first (a FIFO or device is refused unopened), then ``O_NOFOLLOW`` and an
    ``fstat`` of what was opened, so a link swapped in meanwhile is refused too; at most
    ``limit`` bytes are read.
    """
    path = out_dir / name
    try:
        mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
        if not stat.S_ISREG(mode):
            raise UsageError(
                f"spool {path}: {describe(mode)}; a spool holds only regular files written by "
                "attest-step (links are never followed): remove it"
            )
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
        fd = os.open(name, flags, dir_fd=dir_fd)
    except UsageError:
        raise
    except OSError as err:
        raise UsageError(f"spool {path}: cannot read it ({err.strerror}); remove it") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(f"spool {path}: changed while it was being opened; run again")
        if info.st_size > limit:
            raise UsageError(f"spool {path}: larger than {limit} bytes; remove it")
        data = os.read(fd, limit + 1)
        while len(data) <= limit and (more := os.read(fd, limit + 1 - len(data))):
            data += more
        if len(data) > limit:
            raise UsageError(f"spool {path}: larger than {limit} bytes; remove it")
        return data
    finally:
        os.close(fd)


def _previous_created(record_path: Path) -> str | None:
    """The ``created`` time of a record spooled before at this path, if it is readable."""
    dir_fd = os.open(record_path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        doc = json.loads(_read_entry(dir_fd, record_path.parent, record_path.name, MAX_RECORD))
        created = doc.get("created") if isinstance(doc, dict) else None
        return created if isinstance(created, str) else None
    except (UsageError, ValueError):
        return None
    finally:
        os.close(dir_fd)


def _string(record: dict[str, Any], key: str, path: Path, *, default: str | None = None) -> str:
    value = record.get(key, default)
    if not isinstance(value, str):
        raise _bad(path, f"{key} must be a string")
    return value


def _check_blob(kind: str, data: bytes, path: Path) -> None:
    """The blob is the JSON its kind stores: a DSSE envelope, or a simple-signing payload."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        raise _bad(path, "its blob is not JSON") from None
    if not isinstance(doc, dict):
        raise _bad(path, "its blob is not a JSON object")
    if kind != "signature" and not (
        isinstance(doc.get("payload"), str)
        and isinstance(doc.get("payloadType"), str)
        and isinstance(doc.get("signatures"), list)
    ):
        raise _bad(path, "its blob is not a DSSE envelope")


def _item(dir_fd: int, out_dir: Path, name: str) -> SpoolItem:
    record_path = out_dir / name
    raw = _read_entry(dir_fd, out_dir, name, MAX_RECORD)
    try:
        record = json.loads(raw)
    except (ValueError, RecursionError):
        raise _bad(record_path, "not JSON") from None
    version = record.get("spoolVersion") if isinstance(record, dict) else None
    if type(version) is not int or version != SPOOL_VERSION:
        raise _bad(record_path, f"not a spool record of version {SPOOL_VERSION}")
    kind = record.get("kind")
    if kind not in KINDS:
        raise _bad(record_path, f"unknown kind {str(kind)[:40]!r}")
    stem = name.removesuffix(RECORD_SUFFIX)
    blob_name = _string(record, "blob", record_path)
    if blob_name != stem + _BLOB_SUFFIX[kind]:
        raise _bad(record_path, f"its blob must be {stem + _BLOB_SUFFIX[kind]!r}, beside it")
    media_type = _string(record, "mediaType", record_path)
    if media_type != _MEDIA_TYPE[kind]:
        raise _bad(record_path, f"mediaType must be {_MEDIA_TYPE[kind]} for a {kind}")
    annotations = record.get("annotations", {})
    if not isinstance(annotations, dict) or not all(
        isinstance(v, str) for v in annotations.values()
    ):
        raise _bad(record_path, "annotations must be an object of strings")
    predicate_type = record.get("predicateType")
    if kind == "signature":
        if predicate_type is not None:
            raise _bad(record_path, "a signature has no predicateType")
    elif not (isinstance(predicate_type, str) and predicate_type):
        raise _bad(record_path, "predicateType must be a non-empty string")
    expected = _string(record, "blobDigest", record_path)
    image = parse_image_ref(
        _string(record, "image", record_path), what=f"spool record {record_path}"
    )
    if stem != _stem(kind, image, expected):
        raise _bad(record_path, "its file name does not match its kind, image and blobDigest")
    data = _read_entry(dir_fd, out_dir, blob_name, MAX_BLOB)
    if sha256_digest(data) != expected:
        raise _bad(record_path, f"{blob_name} does not match blobDigest (file changed?)")
    _check_blob(kind, data, record_path)
    return SpoolItem(
        record_path,
        kind,
        image,
        data,
        media_type,
        annotations,
        predicate_type=predicate_type,
        public_key_hint=_string(record, "publicKeyHint", record_path, default=""),
        created=_string(record, "created", record_path, default=""),
    )


def read_item(record_path: Path) -> SpoolItem:
    """The item of one record file (see :func:`read_spool` for what is refused)."""
    dir_fd = _open_dir(record_path.parent)
    try:
        return _item(dir_fd, record_path.parent, record_path.name)
    finally:
        os.close(dir_fd)


def read_spool(out_dir: Path) -> list[SpoolItem]:
    """Every item spooled in ``out_dir``, in file-name order.

    Operator input, so refused with one line (UsageError, exit 2) rather than trusted: a
    record or blob that is a symbolic link or not a regular file (a link could make ``push``
    upload any file the step can read), one larger than its limit, a blob whose sha256 is not
    the record's ``blobDigest``, a field of the wrong type or value, more than
    ``MAX_RECORDS`` records or ``MAX_TOTAL`` bytes of blobs.
    """
    dir_fd = _open_dir(out_dir)
    try:
        names = sorted(n for n in os.listdir(dir_fd) if n.endswith(RECORD_SUFFIX))
        if len(names) > MAX_RECORDS:
            raise UsageError(
                f"spool directory {out_dir}: more than {MAX_RECORDS} records; "
                "is it the right directory?"
            )
        items: list[SpoolItem] = []
        total = 0
        for name in names:
            items.append(_item(dir_fd, out_dir, name))
            total += len(items[-1].data)
            if total > MAX_TOTAL:
                raise UsageError(
                    f"spool directory {out_dir}: more than {MAX_TOTAL} bytes to upload; "
                    "push it in parts"
                )
        return items
    finally:
        os.close(dir_fd)
