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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from attest_step.errors import AttestStepError, UsageError
from attest_step.fileio import write_atomically
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
    stem = f"{kind}-{image.hex[:16]}-{digest.split(':', 1)[1][:16]}"
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
    if record_path.exists():  # same item spooled before: keep its creation time
        with contextlib.suppress(OSError, ValueError, KeyError):
            record["created"] = json.loads(record_path.read_text())["created"]
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


def read_item(record_path: Path) -> SpoolItem:
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as err:
        raise _bad(record_path, f"unreadable ({type(err).__name__})") from err
    if not isinstance(record, dict) or record.get("spoolVersion") != SPOOL_VERSION:
        raise _bad(record_path, f"not a spool record of version {SPOOL_VERSION}")
    kind = record.get("kind")
    if kind not in KINDS:
        raise _bad(record_path, f"unknown kind {kind!r}")
    blob_name = str(record.get("blob", ""))
    blob_path = record_path.parent / blob_name
    if "/" in blob_name or not blob_path.is_file():
        raise _bad(record_path, f"its blob {blob_name!r} is missing")
    data = blob_path.read_bytes()
    if sha256_digest(data) != record.get("blobDigest"):
        raise _bad(record_path, f"{blob_name} does not match blobDigest (file changed?)")
    annotations = record.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(
        isinstance(v, str) for v in annotations.values()
    ):
        raise _bad(record_path, "its annotations are not a map of strings")
    predicate_type = record.get("predicateType")
    if predicate_type is not None and not isinstance(predicate_type, str):
        raise _bad(record_path, "its predicateType is not a string")
    return SpoolItem(
        record_path=record_path,
        kind=str(kind),
        image=parse_image_ref(str(record.get("image", "")), what=f"spool record {record_path}"),
        data=data,
        media_type=str(record.get("mediaType", "")),
        annotations=dict(annotations),
        predicate_type=predicate_type,
        public_key_hint=str(record.get("publicKeyHint", "")),
        created=str(record.get("created", "")),
    )


def read_spool(out_dir: Path) -> list[SpoolItem]:
    """Every item spooled in ``out_dir``, in file-name order."""
    if not out_dir.is_dir():
        raise AttestStepError(
            f"spool directory {out_dir}: not found; give the directory an earlier run wrote"
        )
    return [read_item(p) for p in sorted(out_dir.glob(f"*{RECORD_SUFFIX}"))]
