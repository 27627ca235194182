"""DSSE envelopes: PAE, signing and verification. (Stub: filled in by the keys work.)"""

from __future__ import annotations

from typing import Any

from attest_step.keys.signer import Signer, Verifier

INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"


def pae(payload_type: str, payload: bytes) -> bytes:
    """Pre-Authentication Encoding, exactly as the DSSE v1 spec defines it."""
    raise NotImplementedError


def sign_envelope(
    payload: bytes, signer: Signer, payload_type: str = INTOTO_PAYLOAD_TYPE
) -> dict[str, Any]:
    """Return ``{"payloadType", "payload", "signatures": [{"keyid": "", "sig"}]}``."""
    raise NotImplementedError


def verify_envelope(envelope: dict[str, Any], verifier: Verifier) -> bytes:
    """Check a signature over the PAE; return the decoded payload or raise VerificationError."""
    raise NotImplementedError
