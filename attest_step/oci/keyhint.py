"""The ``publicKey.hint`` of a key-signed Sigstore bundle."""

from __future__ import annotations

import base64
import hashlib

from attest_step.errors import AttestStepError


def public_key_hint(public_key_pem: bytes) -> str:
    """cosign's hint: standard base64 of sha256(SubjectPublicKeyInfo DER)."""
    # Imported here so that importing the spool (``attest-step sign`` before it decrypts
    # the key) does not load cryptography's serialization modules.
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    try:
        key = serialization.load_pem_public_key(public_key_pem)
    except ValueError as err:
        raise AttestStepError("public key: not a PEM PUBLIC KEY; check the signing key") from err
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(der).digest()).decode("ascii")
