"""The Rekor v2 entry of a DSSE envelope: a ``hashedrekord`` v0.0.2.

rekor-tiles v2.3.0 (the version cosign v3.1 builds against) logs one entry type,
``hashedrekord`` v0.0.2: a digest, a signature over it and the verifier (public key). A
DSSE envelope is logged as the digest of its PAE (``DSSEv1 <len> <type> <len> <payload>``)
with the envelope's signature, which is what sigstore-go reconstructs when it verifies a
bundle. The leaf the log hashes is the RFC 8785 (JCS) canonical JSON of the protobuf-JSON
``Entry``; every field here is a string, so sorted keys and no spaces are that form.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from attest_step.errors import AttestStepError

KIND = "hashedrekord"
API_VERSION = "0.0.2"

_HASH_ENUM = {"sha256": "SHA2_256", "sha384": "SHA2_384", "sha512": "SHA2_512"}


@dataclass(frozen=True)
class KeyAlgorithm:
    """How a key signs, in the names of sigstore's ``PublicKeyDetails`` and ``HashAlgorithm``."""

    key_details: str
    hash_name: str  # hashlib name of the digest the signature is over

    @property
    def hash_enum(self) -> str:
        return _HASH_ENUM[self.hash_name]


def key_algorithm(public_key_der: bytes) -> KeyAlgorithm:
    """The algorithm attest-step's signers use with this key (see attest_step.keys.signer).

    Rekor v2 only logs signatures over a digest it can check: ECDSA P-256/P-384 and RSA
    PKCS#1 v1.5 (SHA-256). Pure Ed25519 (what attest-step signs with an Ed25519 key) is not
    one of them: refused with one line."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: PLC0415

    key = serialization.load_der_public_key(public_key_der)
    if isinstance(key, ec.EllipticCurvePublicKey):
        if isinstance(key.curve, ec.SECP256R1):
            return KeyAlgorithm("PKIX_ECDSA_P256_SHA_256", "sha256")
        if isinstance(key.curve, ec.SECP384R1):
            return KeyAlgorithm("PKIX_ECDSA_P384_SHA_384", "sha384")
    if isinstance(key, rsa.RSAPublicKey) and key.key_size in (2048, 3072, 4096):
        return KeyAlgorithm(f"PKIX_RSA_PKCS1V15_{key.key_size}_SHA256", "sha256")
    raise AttestStepError(
        "Rekor v2 logs ECDSA P-256/P-384 and RSA (2048, 3072, 4096) "
        "signatures; this key is none of them: sign with such a key, or give --tlog-upload=false"
    )


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


@dataclass(frozen=True)
class SignedDigest:
    """What one hashedrekord entry records."""

    digest: bytes
    signature: bytes
    public_key_der: bytes
    algorithm: KeyAlgorithm


def of_envelope(envelope: dict[str, Any], public_key_der: bytes) -> SignedDigest:
    """The signed digest of a single-signature DSSE envelope (ValueError when malformed)."""
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list) or len(signatures) != 1:
        raise ValueError("the envelope must carry exactly one signature")
    payload_type = envelope.get("payloadType")
    payload_b64 = envelope.get("payload")
    sig_b64 = signatures[0].get("sig") if isinstance(signatures[0], dict) else None
    if not isinstance(payload_type, str) or not isinstance(payload_b64, str):
        raise ValueError("the envelope has no payload or payloadType")
    if not isinstance(sig_b64, str):
        raise ValueError("the envelope's signature is not a string")
    payload = base64.b64decode(payload_b64, validate=True)
    signature = base64.b64decode(sig_b64, validate=True)
    algorithm = key_algorithm(public_key_der)
    digest = hashlib.new(algorithm.hash_name, pae(payload_type, payload)).digest()
    return SignedDigest(digest, signature, public_key_der, algorithm)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _signature(signed: SignedDigest) -> dict[str, Any]:
    return {
        "content": _b64(signed.signature),
        "verifier": {
            "publicKey": {"rawBytes": _b64(signed.public_key_der)},
            "keyDetails": signed.algorithm.key_details,
        },
    }


def create_request(signed: SignedDigest) -> dict[str, Any]:
    """The ``CreateEntryRequest`` (protobuf JSON) for ``POST /api/v2/log/entries``."""
    return {
        "hashedRekordRequestV002": {"digest": _b64(signed.digest), "signature": _signature(signed)}
    }


def canonical_body(signed: SignedDigest) -> bytes:
    """The bytes the log hashes as the entry's leaf (JCS of the protobuf-JSON Entry)."""
    entry = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "spec": {
            "hashedRekordV002": {
                "data": {"algorithm": signed.algorithm.hash_enum, "digest": _b64(signed.digest)},
                "signature": _signature(signed),
            }
        },
    }
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
