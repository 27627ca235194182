"""NaCl secretbox (XSalsa20-Poly1305), the cipher of cosign's encrypted key files.

Opening, which ``sign`` does on every run, calls libsodium on PyNaCl's compiled binding
(:mod:`attest_step.keys.libsodium`) and falls back to PyNaCl's ``SecretBox``; sealing, done
only by ``generate-key-pair``, uses ``SecretBox``. The box is the MAC followed by the
ciphertext, as Go's ``secretbox.Seal`` and PyNaCl write it.
"""

from __future__ import annotations

from attest_step.keys import libsodium

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
    binding = libsodium.binding()
    if binding is None:
        return _open_with_pynacl(key, nonce, box)
    ffi, lib = binding
    size = len(box) - MAC_SIZE
    out = ffi.new("unsigned char[]", max(size, 1))
    if lib.crypto_secretbox_open_easy(out, box, len(box), nonce, key) != 0:
        raise SecretBoxError("decryption failed")
    return bytes(ffi.buffer(out, size))


def _open_with_pynacl(key: bytes, nonce: bytes, box: bytes) -> bytes:
    import nacl.exceptions  # noqa: PLC0415 - fallback only
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
