"""DSSE envelopes: PAE, signing and verification (DSSE protocol v1).

Signatures carry ``"keyid": ""``: cosign's bundle path (sigstore-go) skips a signature whose
non-empty keyid differs from the key's fingerprint, and the legacy ``.att`` path ignores it.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from attest_step.errors import VerificationError
from attest_step.keys.signer import Signer, Verifier

INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"


def pae(payload_type: str, payload: bytes) -> bytes:
    """Pre-Authentication Encoding, exactly as the DSSE v1 spec defines it.

    ``"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body``, lengths in bytes as ASCII decimal.
    """
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(payload), payload)


def _b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def b64decode(value: object, what: str) -> bytes:
    """Standard base64 (padded), falling back to URL-safe, as Go's DSSE verifier does."""
    if not isinstance(value, str):
        raise VerificationError(f"DSSE envelope {what} is not a string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        pass
    try:
        return base64.b64decode(value.encode("ascii"), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError) as err:
        raise VerificationError(f"DSSE envelope {what} is not valid base64") from err


def sign_envelope(
    payload: bytes, signer: Signer, payload_type: str = INTOTO_PAYLOAD_TYPE
) -> dict[str, Any]:
    """Return ``{"payloadType", "payload", "signatures": [{"keyid": "", "sig"}]}``."""
    signature = signer.sign(pae(payload_type, payload))
    return {
        "payloadType": payload_type,
        "payload": _b64encode(payload),
        "signatures": [{"keyid": "", "sig": _b64encode(signature)}],
    }


def verify_envelope(
    envelope: dict[str, Any],
    verifier: Verifier,
    payload_type: str = INTOTO_PAYLOAD_TYPE,
) -> bytes:
    """Check a signature over the PAE; return the decoded payload or raise VerificationError.

    The envelope's ``payloadType`` must equal ``payload_type`` (cosign requires the in-toto
    type). One valid signature is enough; ``keyid`` is not used to pick keys.
    """
    if not isinstance(envelope, dict):
        raise VerificationError("DSSE envelope is not a JSON object")
    found_type = envelope.get("payloadType")
    if found_type != payload_type:
        raise VerificationError(
            f"DSSE envelope payloadType is {found_type!r}, expected {payload_type!r}"
        )
    payload = b64decode(envelope.get("payload"), "payload")
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list) or not signatures:
        raise VerificationError("DSSE envelope has no signatures")
    message = pae(payload_type, payload)
    for entry in signatures:
        if not isinstance(entry, dict):
            continue
        try:
            signature = b64decode(entry.get("sig"), "signature")
        except VerificationError:
            continue
        if verifier.verify(signature, message):
            return payload
    raise VerificationError(
        f"none of the {len(signatures)} DSSE signature(s) verifies with the given key"
    )
