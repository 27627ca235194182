"""Simple-signing payloads: cosign's, byte-for-byte as Go writes it, and containers/image's
"atomic container signature" (signed with OpenPGP, read by podman, skopeo and CRI-O).

Go layout (sigstore/sigstore pkg/signature/payload): struct fields in declaration order,
``optional`` map keys sorted, no spaces, ``<``, ``>``, ``&``, U+2028 and U+2029 escaped::

    {"critical":{"identity":{"docker-reference":"REPO"},"image":{"docker-manifest-digest":
    "sha256:HEX"},"type":"cosign container image signature"},"optional":null}
"""

from __future__ import annotations

import json
from typing import Any

from attest_step.decode import json_object
from attest_step.errors import VerificationError
from attest_step.imageref import ImageRef

SIGNATURE_TYPE = "cosign container image signature"
ATOMIC_SIGNATURE_TYPE = "atomic container signature"
"""containers/image's type: it refuses any other, cosign's included."""

_GO_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def go_json(obj: Any) -> str:
    """JSON as Go's encoding/json writes it (for the values used here: str, dict, None)."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    for raw, escaped in _GO_ESCAPES.items():
        text = text.replace(raw, escaped)
    return text


def payload_bytes(image: ImageRef, annotations: dict[str, str] | None = None) -> bytes:
    """The payload ``cosign sign`` signs for ``image`` with ``-a`` annotations."""
    optional = go_json(dict(sorted(annotations.items()))) if annotations else "null"
    critical = (
        '{"identity":{"docker-reference":' + go_json(image.name) + "},"
        '"image":{"docker-manifest-digest":' + go_json(image.digest) + "},"
        '"type":' + go_json(SIGNATURE_TYPE) + "}"
    )
    return ('{"critical":' + critical + ',"optional":' + optional + "}").encode("utf-8")


def check_claims(payload: bytes, digest: str, annotations: dict[str, str]) -> dict[str, Any]:
    """cosign's SimpleClaimVerifier: the digest matches and every annotation is present.

    Returns the decoded payload; raises VerificationError naming the first mismatch.
    """
    doc = json_object(payload, "signature payload", error=VerificationError)
    critical = doc.get("critical") or {}
    image = critical.get("image") if isinstance(critical, dict) else None
    got = image.get("docker-manifest-digest") if isinstance(image, dict) else None
    if got != digest:
        raise VerificationError(f"signature payload is for {got!r}, not {digest}")
    optional = doc.get("optional") or {}
    for key, value in annotations.items():
        if not isinstance(optional, dict) or optional.get(key) != value:
            raise VerificationError(f"annotation {key}={value} is not in the signature payload")
    return doc


def atomic_payload_bytes(
    identity: str, digest: str, *, creator: str, timestamp: int | None = None
) -> bytes:
    """containers/image's payload: the same ``critical`` as cosign's with the atomic type,
    and an ``optional`` object (containers/image refuses ``null`` there)."""
    optional: dict[str, Any] = {"creator": creator}
    if timestamp is not None:
        optional["timestamp"] = timestamp
    critical = (
        '{"identity":{"docker-reference":' + go_json(identity) + "},"
        '"image":{"docker-manifest-digest":' + go_json(digest) + "},"
        '"type":' + go_json(ATOMIC_SIGNATURE_TYPE) + "}"
    )
    return ('{"critical":' + critical + ',"optional":' + go_json(optional) + "}").encode()


def _exact_object(value: Any, fields: set[str], where: str) -> dict[str, Any]:
    if not isinstance(value, dict) or set(value) != fields:
        raise VerificationError(f"signature payload: {where} must have exactly {sorted(fields)}")
    return value


def check_atomic_claims(payload: bytes, digest: str) -> tuple[str, dict[str, Any]]:
    """containers/image's strict reading of an atomic payload; the digest must match.

    Returns (the signed docker-reference, the decoded payload); raises VerificationError.
    """
    try:
        doc = json.loads(payload)
    except ValueError as err:
        raise VerificationError("signature payload is not JSON") from err
    doc = _exact_object(doc, {"critical", "optional"}, "the payload")
    if not isinstance(doc["optional"], dict):
        raise VerificationError("signature payload: optional is not a JSON object")
    critical = _exact_object(doc["critical"], {"type", "image", "identity"}, "critical")
    if critical["type"] != ATOMIC_SIGNATURE_TYPE:
        raise VerificationError(
            f"signature payload type is {critical['type']!r}, not {ATOMIC_SIGNATURE_TYPE!r}"
        )
    image = _exact_object(critical["image"], {"docker-manifest-digest"}, "critical.image")
    identity = _exact_object(critical["identity"], {"docker-reference"}, "critical.identity")
    got = image["docker-manifest-digest"]
    if got != digest:
        raise VerificationError(f"signature payload is for {got!r}, not {digest}")
    reference = identity["docker-reference"]
    if not isinstance(reference, str) or not reference:
        raise VerificationError("signature payload: docker-reference is not a string")
    return reference, doc
