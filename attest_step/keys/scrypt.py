"""scrypt, the key derivation of cosign's encrypted key files.

Computed by libsodium through PyNaCl's public low-level API
(``nacl.bindings.crypto_pwhash_scryptsalsa208sha256_ll``): libsodium picks a SIMD
implementation at run time and derives a cosign key (N=65536, r=8, p=1) about a third faster
than OpenSSL here (130 ms against 198 ms, measured in docs/oci-storage.md), and ``sign``
waits for this derivation before anything can be signed. The call releases the GIL. When
PyNaCl's libsodium lacks scrypt, cryptography's scrypt (OpenSSL) computes the same bytes.

Loads nothing beyond the standard library until first used, so
:mod:`attest_step.keys.early_kdf` can start a derivation before anything else is loaded.
"""

from __future__ import annotations

KEY_SIZE = 32


def _max_memory(n: int, r: int, p: int) -> int:
    """Room for scrypt's working set (128 * r * (N + p) bytes) with a margin; the cost
    settings are bounded by the caller (cosign's three accepted triples)."""
    return 2 * 128 * r * (n + p)


def _libsodium(password: bytes, salt: bytes, n: int, r: int, p: int, *, size: int) -> bytes | None:
    import nacl.bindings  # noqa: PLC0415 - loaded on first use (see the module docstring)
    import nacl.exceptions  # noqa: PLC0415

    if not nacl.bindings.has_crypto_pwhash_scryptsalsa208sha256:
        return None
    try:
        return bytes(
            nacl.bindings.crypto_pwhash_scryptsalsa208sha256_ll(
                password, salt, n, r, p, dklen=size, maxmem=_max_memory(n, r, p)
            )
        )
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        return None  # parameters libsodium refuses: OpenSSL decides, and reports its error


def _openssl(password: bytes, salt: bytes, n: int, r: int, p: int, *, size: int) -> bytes:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt  # noqa: PLC0415 - fallback

    return Scrypt(salt=salt, length=size, n=n, r=r, p=p).derive(password)


def derive(password: bytes, salt: bytes, n: int, r: int, p: int, *, size: int = KEY_SIZE) -> bytes:
    """scrypt(password, salt, N, r, p) to ``size`` bytes (RFC 7914)."""
    key = _libsodium(password, salt, n, r, p, size=size)
    return key if key is not None else _openssl(password, salt, n, r, p, size=size)


def prepare() -> None:
    """Load the implementation :func:`derive` will use, e.g. on the main thread before a
    derivation starts on another one (imports on two threads at once share the GIL)."""
    import nacl.bindings  # noqa: PLC0415

    if not nacl.bindings.has_crypto_pwhash_scryptsalsa208sha256:
        import cryptography.hazmat.primitives.kdf.scrypt  # noqa: F401, PLC0415
