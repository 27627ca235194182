"""NaCl secretbox (XSalsa20-Poly1305), the cipher of cosign's encrypted key files.

PyNaCl's ``SecretBox``: the box is the MAC followed by the ciphertext, as Go's
``secretbox.Seal`` writes it. Loaded on first use only.
"""

from __future__ import annotations

KEY_SIZE = 32
NONCE_SIZE = 24
MAC_SIZE = 16


class SecretBoxError(ValueError):
    """The box does not open with this key and nonce (wrong key, or altered)."""


def _check(key: bytes, nonce: bytes) -> None:
    if len(key) != KEY_SIZE or len(nonce) != NONCE_SIZE:
        raise ValueError(f"secretbox needs a {KEY_SIZE}-byte key and a {NONCE_SIZE}-byte nonce")


def open_box(key: bytes, nonce: bytes, box: bytes) -> bytes:
    """The plaintext sealed in ``box``; SecretBoxError if it does not authenticate."""
    _check(key, nonce)
    if len(box) < MAC_SIZE:
        raise SecretBoxError("the box is shorter than its MAC")
    import nacl.exceptions  # noqa: PLC0415 - loaded on first use
    import nacl.secret  # noqa: PLC0415

    try:
        return bytes(nacl.secret.SecretBox(key).decrypt(box, nonce))
    except nacl.exceptions.CryptoError as err:
        raise SecretBoxError("decryption failed") from err


def seal(key: bytes, nonce: bytes, plaintext: bytes) -> bytes:
    """``plaintext`` sealed with ``key`` and ``nonce``: MAC, then ciphertext."""
    _check(key, nonce)
    import nacl.secret  # noqa: PLC0415 - key generation only

    return bytes(nacl.secret.SecretBox(key).encrypt(plaintext, nonce).ciphertext)
