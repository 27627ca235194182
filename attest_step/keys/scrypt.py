"""scrypt, the key derivation of cosign's encrypted key files.

Computed by libsodium (:mod:`attest_step.keys.libsodium`): its scrypt picks a SIMD
implementation at run time and derives a cosign key (N=65536, r=8, p=1) ~15-20 % faster
than OpenSSL's, and its binding loads in ~1 ms instead of ~9 ms for cryptography's scrypt
module. Both matter: ``sign`` waits for this derivation before anything can be signed. The
call releases the GIL. When the binding cannot be used (a PyNaCl built without scrypt, or
a future PyNaCl that moved its binding), cryptography's scrypt (OpenSSL) computes the same
bytes.

Loads nothing beyond the standard library until first used, so
:mod:`attest_step.keys.early_kdf` can start a derivation before anything else is loaded.
"""

from __future__ import annotations

from attest_step.keys import libsodium

KEY_SIZE = 32


def _libsodium(password: bytes, salt: bytes, n: int, r: int, p: int, *, size: int) -> bytes | None:
    binding = libsodium.binding()
    if binding is None:
        return None
    ffi, lib = binding
    out = ffi.new("uint8_t[]", size)
    status = lib.crypto_pwhash_scryptsalsa208sha256_ll(
        password, len(password), salt, len(salt), n, r, p, out, size
    )
    if status != 0:  # out of memory or parameters libsodium refuses: let OpenSSL decide
        return None
    return bytes(ffi.buffer(out, size))


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
    if libsodium.binding() is None:
        import cryptography.hazmat.primitives.kdf.scrypt  # noqa: F401, PLC0415
