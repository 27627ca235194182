"""The signer and verifier interfaces every key type implements.

CONTRACT (owned by the keys module; other modules rely on exactly this):
- ``Signer.sign(data)`` returns the raw signature over ``data`` as cosign makes it:
  ECDSA -> ASN.1 DER over SHA-256 (P-256) / SHA-384 (P-384); RSA -> PKCS#1 v1.5 SHA-256;
  Ed25519 -> pure Ed25519. The caller passes the bytes to be signed (the DSSE PAE, or the
  simple-signing payload), never a pre-computed hash.
- ``Verifier.verify(signature, data)`` returns True/False and never raises on a bad signature.
"""

from __future__ import annotations

from typing import Protocol


class Signer(Protocol):
    def sign(self, data: bytes) -> bytes:
        """Sign ``data``; return the raw signature bytes."""
        ...

    def public_key_pem(self) -> bytes:
        """The PKIX ``PUBLIC KEY`` PEM of the signing key."""
        ...

    def certificate_chain_pem(self) -> list[bytes]:
        """PEM certificates that travel with the signature, leaf first; empty for bare keys."""
        ...


class Verifier(Protocol):
    def verify(self, signature: bytes, data: bytes) -> bool:
        """True when ``signature`` is valid over ``data`` for this key."""
        ...
