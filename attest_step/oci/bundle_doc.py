"""The Sigstore bundle v0.3 JSON around a DSSE envelope: built once for every place a bundle
goes (a registry referrer, an OCI layout, a ``--bundle`` file), and read back for a
verifier (nothing is checked here: the caller checks signatures and log entries).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attest_step.oci.certmaterial import CarriedCertificate, from_bundle
from attest_step.oci.types import BUNDLE_TYPE, BUNDLE_TYPE_PREFIX, compact_json

MAX_BUNDLE_FILE = 64 << 20
"""The most a ``--bundle`` file may hold (as an envelope file, attest_step.verify)."""


def bundle_bytes(
    envelope: dict[str, Any], hint: str, tlog_entries: Sequence[dict[str, Any]] = ()
) -> bytes:
    """A key-signed Sigstore bundle v0.3 around a DSSE envelope: the verification material
    is the key's ``hint``, with ``tlog_entries`` (transparency-log entries, none by
    default). The one place a bundle is built, for every store and for files."""
    signatures = []
    for sig in envelope.get("signatures") or []:
        entry: dict[str, str] = {"sig": str(sig.get("sig", ""))}
        if sig.get("keyid"):
            entry["keyid"] = str(sig["keyid"])
        signatures.append(entry)
    doc = {
        "mediaType": BUNDLE_TYPE,
        "verificationMaterial": {
            "publicKey": {"hint": hint},
            "tlogEntries": list(tlog_entries),
        },
        "dsseEnvelope": {
            "payload": envelope["payload"],
            "payloadType": envelope["payloadType"],
            "signatures": signatures,
        },
    }
    return compact_json(doc)


@dataclass(frozen=True)
class BundleContents:
    """What a bundle carries for a verifier (unchecked)."""

    envelope: dict[str, Any]
    certificate: CarriedCertificate
    tlog_entries: Any  # verificationMaterial.tlogEntries, raw (attest_step.tlog.entry checks)


def bundle_contents(bundle: Mapping[str, Any]) -> BundleContents | None:
    """The DSSE envelope of ``bundle`` with its x509 material and log entries; None when the
    bundle holds no DSSE envelope (a message signature)."""
    envelope = bundle.get("dsseEnvelope")
    if not isinstance(envelope, dict):
        return None
    material = bundle.get("verificationMaterial")
    entries = material.get("tlogEntries") if isinstance(material, dict) else None
    return BundleContents(envelope, from_bundle(bundle), entries)


def parse_bundle(data: bytes) -> BundleContents:
    """The contents of a Sigstore bundle JSON with a DSSE envelope (ValueError else)."""
    from attest_step.decode import json_object  # noqa: PLC0415

    try:
        doc = json_object(data, "the file")
    except RecursionError as err:
        raise ValueError("the file is nested too deeply") from err
    media_type = doc.get("mediaType")
    if not isinstance(media_type, str) or not media_type.startswith(BUNDLE_TYPE_PREFIX):
        raise ValueError(f"mediaType is not {BUNDLE_TYPE_PREFIX}.*")
    got = bundle_contents(doc)
    if got is None:
        raise ValueError("it holds no DSSE envelope (dsseEnvelope)")
    return got


def read_bundle_file(path: Path, what: str = "--bundle") -> BundleContents:
    """``--bundle FILE``'s contents; one-line VerificationError when it is not a bundle."""
    from attest_step.errors import VerificationError  # noqa: PLC0415
    from attest_step.fileio import read_input_file  # noqa: PLC0415

    data = read_input_file(path, what, limit=MAX_BUNDLE_FILE)
    try:
        return parse_bundle(data)
    except ValueError as err:
        raise VerificationError(
            f"{what} {path}: not a Sigstore bundle of an attestation ({err}); give the file "
            "attest --bundle or cosign attest-blob --bundle wrote"
        ) from err
