"""cosign's encrypted private key file: PEM around scrypt + NaCl secretbox JSON.

Layout (as written by sigstore's Go code and read by cosign ``--key``)::

    -----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----
    base64({"kdf":{"name":"scrypt","params":{"N":65536,"r":8,"p":1},"salt":"<b64>"},
            "cipher":{"name":"nacl/secretbox","nonce":"<b64>"},"ciphertext":"<b64>"})
    -----END ENCRYPTED SIGSTORE PRIVATE KEY-----

The secretbox key is ``scrypt(password, salt, N, r, p, 32)``; the plaintext is PKCS#8 DER.
Only the three scrypt cost settings cosign's Go code accepts are accepted here.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any, NamedTuple, Protocol

from attest_step.decode import b64_field
from attest_step.keys import pem, scrypt, secretbox

SIGSTORE_LABEL = "ENCRYPTED SIGSTORE PRIVATE KEY"
COSIGN_LABEL = "ENCRYPTED COSIGN PRIVATE KEY"
ENCRYPTED_LABELS = (SIGSTORE_LABEL, COSIGN_LABEL)

# (N, r, p) triples cosign's Go decoder accepts: legacy, standard (the default), OWASP.
ACCEPTED_SCRYPT_PARAMS = frozenset({(32768, 8, 1), (65536, 8, 1), (131072, 8, 1)})
DEFAULT_SCRYPT_N = 65536
SALT_SIZE = 32
KEY_SIZE = 32


class KeyDerivation(Protocol):
    """Computes scrypt(password, salt, N, r, p) to KEY_SIZE bytes, e.g. one started early
    (:class:`attest_step.keys.early_kdf.KdfPrefetch`)."""

    def derive(self, password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes: ...


class EncryptedKeyFormatError(ValueError):
    """The file is not a well-formed cosign encrypted key (message names the problem)."""


class WrongPasswordError(ValueError):
    """The password does not open the key (or the ciphertext was altered)."""


class EncryptedKey(NamedTuple):
    """The parsed, still encrypted content of a cosign key file."""

    label: str
    n: int
    r: int
    p: int
    salt: bytes
    nonce: bytes
    ciphertext: bytes


def _b64_field(obj: dict[str, Any], name: str) -> bytes:
    return b64_field(obj.get(name), f"field {name!r}", error=EncryptedKeyFormatError)


def _object(obj: Any, name: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise EncryptedKeyFormatError(f"field {name!r} is missing or not an object")
    return obj


def _int_param(params: dict[str, Any], name: str) -> int:
    value = params.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise EncryptedKeyFormatError(f"scrypt parameter {name!r} is missing or not an integer")
    return value


def parse(data: bytes) -> EncryptedKey:
    """Parse an encrypted key PEM; raise EncryptedKeyFormatError on any deviation."""
    block = pem.single_block(data, ENCRYPTED_LABELS)
    if block is None:
        raise EncryptedKeyFormatError("no ENCRYPTED SIGSTORE/COSIGN PRIVATE KEY PEM block")
    try:
        doc = json.loads(block.der)
    except (UnicodeDecodeError, ValueError) as err:
        raise EncryptedKeyFormatError("the PEM body is not JSON") from err
    doc = _object(doc, "(top level)")
    kdf = _object(doc.get("kdf"), "kdf")
    cipher = _object(doc.get("cipher"), "cipher")
    if kdf.get("name") != "scrypt":
        raise EncryptedKeyFormatError("kdf.name must be 'scrypt'")
    if cipher.get("name") != "nacl/secretbox":
        raise EncryptedKeyFormatError("cipher.name must be 'nacl/secretbox'")
    params = _object(kdf.get("params"), "kdf.params")
    n, r, p = (_int_param(params, k) for k in ("N", "r", "p"))
    if (n, r, p) not in ACCEPTED_SCRYPT_PARAMS:
        raise EncryptedKeyFormatError(
            f"unsupported scrypt parameters N={n} r={r} p={p} "
            "(cosign accepts N=32768, 65536 or 131072 with r=8, p=1)"
        )
    salt = _b64_field(kdf, "salt")
    nonce = _b64_field(cipher, "nonce")
    ciphertext = _b64_field(doc, "ciphertext")
    if len(nonce) != secretbox.NONCE_SIZE:
        raise EncryptedKeyFormatError("cipher.nonce must be 24 bytes")
    if len(ciphertext) < secretbox.MAC_SIZE:
        raise EncryptedKeyFormatError("ciphertext is too short")
    return EncryptedKey(block.label, n, r, p, salt, nonce, ciphertext)


def _derive(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return scrypt.derive(password, salt, n, r, p, size=KEY_SIZE)


def decrypt(key: EncryptedKey, password: bytes, *, kdf: KeyDerivation | None = None) -> bytes:
    """Return the plaintext (PKCS#8 DER expected); raise WrongPasswordError if it won't open.

    ``kdf`` computes the scrypt key instead of this module (same result)."""
    derive = _derive if kdf is None else kdf.derive
    secret = derive(password, key.salt, key.n, key.r, key.p)
    try:
        return secretbox.open_box(secret, key.nonce, key.ciphertext)
    except secretbox.SecretBoxError as err:
        raise WrongPasswordError("decryption failed") from err


def encrypt(
    plaintext: bytes,
    password: bytes,
    *,
    n: int = DEFAULT_SCRYPT_N,
    label: str = SIGSTORE_LABEL,
) -> bytes:
    """Encrypt ``plaintext`` (PKCS#8 DER) into a cosign key PEM, fields in Go's order."""
    if (n, 8, 1) not in ACCEPTED_SCRYPT_PARAMS:
        raise ValueError(f"scrypt N={n} is not one cosign accepts")
    if label not in ENCRYPTED_LABELS:
        raise ValueError(f"unknown label {label!r}")
    salt = os.urandom(SALT_SIZE)
    nonce = os.urandom(secretbox.NONCE_SIZE)
    sealed = secretbox.seal(_derive(password, salt, n, 8, 1), nonce, plaintext)

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode("ascii")

    doc = {
        "kdf": {"name": "scrypt", "params": {"N": n, "r": 8, "p": 1}, "salt": b64(salt)},
        "cipher": {"name": "nacl/secretbox", "nonce": b64(nonce)},
        "ciphertext": b64(sealed),
    }
    body = json.dumps(doc, separators=(",", ":")).encode("ascii")
    return pem.encode(label, body)
