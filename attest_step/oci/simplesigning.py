"""cosign's simple-signing payload: build it byte-for-byte as Go does, and check its claims.

Go layout (sigstore/sigstore pkg/signature/payload): struct fields in declaration order,
``optional`` map keys sorted, no spaces, ``<``, ``>``, ``&``, U+2028 and U+2029 escaped::

    {"critical":{"identity":{"docker-reference":"REPO"},"image":{"docker-manifest-digest":
    "sha256:HEX"},"type":"cosign container image signature"},"optional":null}
"""

from __future__ import annotations

import json
from typing import Any

from attest_step.errors import VerificationError
from attest_step.imageref import ImageRef

SIGNATURE_TYPE = "cosign container image signature"

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
    try:
        doc = json.loads(payload)
    except ValueError as err:
        raise VerificationError("signature payload is not JSON") from err
    if not isinstance(doc, dict):
        raise VerificationError("signature payload is not a JSON object")
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
