"""libsodium through PyNaCl's compiled binding, without PyNaCl's Python wrappers.

``nacl.bindings`` imports every wrapper module of PyNaCl (~5 ms) before anything can be
called; ``sign`` needs two functions (scrypt and secretbox open) while it races its key
decryption against the registry work, so they are called on the compiled module
(``nacl._sodium``) directly. It is PyNaCl's own module, but not a documented one: when it
cannot be used, :func:`binding` says so and callers use PyNaCl's public API (or
cryptography) instead, which compute the same bytes.
"""

from __future__ import annotations

from typing import Any


def binding() -> tuple[Any, Any] | None:
    """PyNaCl's (ffi, lib), initialised, with scrypt available; None when unusable."""
    try:
        from nacl._sodium import ffi, lib  # noqa: PLC0415 - loaded on first use

        if not lib.PYNACL_HAS_CRYPTO_PWHASH_SCRYPTSALSA208SHA256 or lib.sodium_init() < 0:
            return None  # a minimal libsodium; sodium_init() is idempotent
        lib.crypto_secretbox_open_easy  # noqa: B018 - present in every PyNaCl >= 1.4
    except (ImportError, AttributeError):
        return None
    return ffi, lib
