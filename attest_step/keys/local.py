"""Signers and verifiers over in-memory keys, with the hashes cosign uses.

ECDSA P-256 -> SHA-256, P-384 -> SHA-384, signatures ASN.1 DER; RSA (2048-4096 bits) ->
PKCS#1 v1.5 with SHA-256; Ed25519 -> pure Ed25519. Everything else is refused.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from attest_step.keys import der

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey

_EC_HASH: dict[str, type[hashes.HashAlgorithm]] = {
    "secp256r1": hashes.SHA256,
    "secp384r1": hashes.SHA384,
}
RSA_MIN_BITS = 2048
RSA_MAX_BITS = 4096
SUPPORTED = "ECDSA P-256/P-384, RSA 2048-4096 or Ed25519"


class UnsupportedKeyError(ValueError):
    """The key's algorithm, curve or size is not one attest-step signs with."""


def algorithm_name(key: PrivateKey | PublicKey) -> str:
    """A short human name: ``ecdsa-p256``, ``ecdsa-p384``, ``rsa-3072``, ``ed25519``."""
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return {"secp256r1": "ecdsa-p256", "secp384r1": "ecdsa-p384"}[key.curve.name]
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return f"rsa-{key.key_size}"
    return "ed25519"


def check_public(key: object) -> PublicKey:
    """Return ``key`` typed as a supported public key or raise UnsupportedKeyError."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in _EC_HASH:
            raise UnsupportedKeyError(f"ECDSA curve {key.curve.name} is not supported")
        return key
    if isinstance(key, rsa.RSAPublicKey):
        if not RSA_MIN_BITS <= key.key_size <= RSA_MAX_BITS:
            raise UnsupportedKeyError(f"RSA key size {key.key_size} is not supported")
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    raise UnsupportedKeyError(f"key type {type(key).__name__} is not supported")


def check_private(key: object) -> PrivateKey:
    """Return ``key`` typed as a supported private key or raise UnsupportedKeyError."""
    if isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        check_public(key.public_key())
        return key
    raise UnsupportedKeyError(f"key type {type(key).__name__} is not supported")


def private_key_from_pkcs8(data: bytes) -> PrivateKey:
    """Load PKCS#8 DER (v1, or v2 for Ed25519) and refuse SEC1/PKCS#1 as cosign does.

    Raises der.DerError for a structure that is not PKCS#8, UnsupportedKeyError for a
    well-formed key of an unsupported type.
    """
    info = der.parse_pkcs8(data)
    if info.algorithm_oid == der.ED25519_OID:
        return ed25519.Ed25519PrivateKey.from_private_bytes(der.ed25519_seed(info))
    try:
        key = serialization.load_der_private_key(data, password=None)
    except UnsupportedAlgorithm as err:
        raise UnsupportedKeyError("the key algorithm or curve is not supported") from err
    except ValueError as err:
        raise der.DerError("the PKCS#8 key could not be parsed") from err
    return check_private(key)


def parse_der_certificate(data: bytes) -> x509.Certificate:
    """An x509 certificate from DER; ValueError for anything cryptography cannot use.

    cryptography raises InvalidVersion (not a ValueError) for a bad version field.
    """
    try:
        return x509.load_der_x509_certificate(data)
    except x509.InvalidVersion as err:
        raise ValueError(f"invalid certificate version: {err}") from err


def public_key_of(source: x509.Certificate | bytes) -> object:
    """The public key of a certificate, or of PKIX ``SubjectPublicKeyInfo`` DER.

    ValueError for a malformed key or one of an algorithm cryptography does not know
    (its UnsupportedAlgorithm is not a ValueError); check_public() then checks the type.
    """
    try:
        if isinstance(source, x509.Certificate):
            return source.public_key()
        return serialization.load_der_public_key(source)
    except UnsupportedAlgorithm as err:
        raise ValueError(f"unsupported public key: {err}") from err


def public_pem(key: PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def pkcs8_der(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def sign_with(key: PrivateKey, data: bytes) -> bytes:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(_EC_HASH[key.curve.name]()))
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    return key.sign(data)


def verify_with(key: PublicKey, signature: bytes, data: bytes) -> bool:
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(_EC_HASH[key.curve.name]()))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        else:
            key.verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True


class LocalSigner:
    """A Signer over a private key held in memory, with an optional x509 chain."""

    def __init__(self, key: PrivateKey, chain: list[bytes] | None = None) -> None:
        self._key = check_private(key)
        self._chain = list(chain or [])
        self.algorithm = algorithm_name(self._key)

    def sign(self, data: bytes) -> bytes:
        return sign_with(self._key, data)

    def public_key_pem(self) -> bytes:
        return public_pem(self._key.public_key())

    def certificate_chain_pem(self) -> list[bytes]:
        return list(self._chain)

    def verifier(self) -> PublicKeyVerifier:
        return PublicKeyVerifier(self._key.public_key())

    def __repr__(self) -> str:  # never show key material
        return f"LocalSigner({self.algorithm})"


class PublicKeyVerifier:
    """A Verifier over a public key."""

    def __init__(self, key: PublicKey) -> None:
        self._key = check_public(key)
        self.algorithm = algorithm_name(self._key)

    def verify(self, signature: bytes, data: bytes) -> bool:
        return verify_with(self._key, signature, data)

    def public_key_pem(self) -> bytes:
        return public_pem(self._key)

    def __repr__(self) -> str:
        return f"PublicKeyVerifier({self.algorithm})"


def generate_p256() -> ec.EllipticCurvePrivateKey:
    """A new ECDSA P-256 key, the only type cosign generate-key-pair makes."""
    return ec.generate_private_key(ec.SECP256R1())
