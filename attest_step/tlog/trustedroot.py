"""The transparency logs of a Sigstore TrustedRoot (``--trusted-root``, the JSON of
``dev.sigstore.trustedroot.v1.TrustedRoot``, as cosign v3 reads it).

Only ``tlogs`` is read: each log's ``baseUrl``, ``hashAlgorithm`` (SHA2_256),
``publicKey.rawBytes`` (base64 SubjectPublicKeyInfo DER) and ``logId.keyId`` (base64; how
an entry names its log). A Rekor v2 log signs checkpoints with the hostname of its
``baseUrl`` as the origin, as sigstore-go assumes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from attest_step.decode import b64_field, json_object
from attest_step.errors import UsageError
from attest_step.fileio import read_small_file

MAX_TRUSTED_ROOT = 4 << 20
"""The most a trusted root file may hold (4 MiB; the public-good one is ~10 KiB)."""
MAX_LOGS = 1000


@dataclass(frozen=True)
class TrustedLog:
    base_url: str
    origin: str
    public_key_der: bytes
    log_id: bytes


def _log(doc: Any, index: int) -> TrustedLog:
    where = f"tlogs[{index}]"
    if not isinstance(doc, dict):
        raise ValueError(f"{where} is not an object")
    if doc.get("hashAlgorithm", "SHA2_256") != "SHA2_256":
        raise ValueError(f"{where}.hashAlgorithm is not SHA2_256")
    base_url = doc.get("baseUrl")
    origin = urlsplit(base_url).hostname if isinstance(base_url, str) else None
    if not isinstance(base_url, str) or not origin:
        raise ValueError(f"{where}.baseUrl is not a URL")
    key = doc.get("publicKey")
    log_id = doc.get("logId")
    return TrustedLog(
        base_url=base_url,
        origin=origin,
        public_key_der=b64_field(
            key.get("rawBytes") if isinstance(key, dict) else None,
            f"{where}.publicKey.rawBytes",
            empty_ok=False,
        ),
        log_id=b64_field(
            log_id.get("keyId") if isinstance(log_id, dict) else None,
            f"{where}.logId.keyId",
            empty_ok=False,
        ),
    )


def parse_trusted_root(data: bytes) -> list[TrustedLog]:
    """The logs of a TrustedRoot document (ValueError when it is not one)."""
    doc = json_object(data, "the document")
    media_type = doc.get("mediaType", "")
    if not isinstance(media_type, str) or not media_type.startswith(
        "application/vnd.dev.sigstore.trustedroot"
    ):
        raise ValueError("mediaType is not application/vnd.dev.sigstore.trustedroot+json")
    tlogs = doc.get("tlogs") or []
    if not isinstance(tlogs, list) or len(tlogs) > MAX_LOGS:
        raise ValueError(f"tlogs is not a list of at most {MAX_LOGS} logs")
    return [_log(item, i) for i, item in enumerate(tlogs)]


def load_trusted_root(path: Path) -> list[TrustedLog]:
    """``--trusted-root FILE``'s logs; one-line UsageError when it cannot be used."""
    try:
        data = read_small_file(path, "--trusted-root", limit=MAX_TRUSTED_ROOT)
    except OSError as err:
        raise UsageError(f"--trusted-root {path}: cannot read it ({err.strerror})") from err
    try:
        logs = parse_trusted_root(data)
    except ValueError as err:
        raise UsageError(
            f"--trusted-root {path}: not a Sigstore TrustedRoot ({err}); give the "
            "trusted_root.json cosign uses"
        ) from err
    if not logs:
        raise UsageError(
            f"--trusted-root {path}: names no transparency log (tlogs is empty); add the "
            "log, or give --insecure-ignore-tlog"
        )
    return logs
