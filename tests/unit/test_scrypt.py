"""scrypt for cosign keys (attest_step.keys.scrypt): libsodium through PyNaCl's public API,
with OpenSSL (cryptography) as fallback."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attest_step.keys import scrypt

# RFC 7914, section 12: scrypt(P="password", S="NaCl", N=1024, r=8, p=16, dkLen=64).
RFC7914_KEY = bytes.fromhex(
    "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162"
    "2eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640"
)


def _openssl_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scrypt, "_libsodium", lambda *args, **kwargs: None)


def test_libsodium_is_the_implementation_used_here() -> None:
    # PyNaCl's wheels carry libsodium with scrypt; the speed claim in docs/oci-storage.md
    # rests on it. A PyNaCl without it would silently fall back, so this says so instead.
    key = scrypt._libsodium(b"password", b"NaCl", 1024, 8, 16, size=64)
    assert key == RFC7914_KEY


def test_cosign_cost_settings_fit_the_memory_bound() -> None:
    for n in (32768, 65536, 131072):
        assert scrypt._libsodium(b"pw", bytes(32), n, 8, 1, size=32) is not None


def test_no_private_module_of_a_dependency_is_imported() -> None:
    """Issue 15: documented APIs only (PyNaCl's nacl.bindings and nacl.secret)."""
    code = (
        "import sys; from attest_step.keys import scrypt, secretbox;"
        "scrypt.derive(b'p', b's', 1024, 8, 1); secretbox.seal(bytes(32), bytes(24), b'x');"
        "print(sorted(m for m in sys.modules if m.startswith('nacl.') and"
        " m.split('.')[1].startswith('_') and m != 'nacl._sodium'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_rfc7914_vector() -> None:
    assert scrypt.derive(b"password", b"NaCl", 1024, 8, 16, size=64) == RFC7914_KEY


def test_rfc7914_vector_through_the_openssl_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    _openssl_only(monkeypatch)
    assert scrypt.derive(b"password", b"NaCl", 1024, 8, 16, size=64) == RFC7914_KEY


@settings(max_examples=60, deadline=None)
@given(
    password=st.binary(max_size=64),
    salt=st.binary(max_size=64),
    log_n=st.integers(min_value=1, max_value=10),
    r=st.integers(min_value=1, max_value=8),
    p=st.integers(min_value=1, max_value=3),
    size=st.integers(min_value=1, max_value=96),
)
def test_same_bytes_as_hashlib(
    password: bytes, salt: bytes, log_n: int, r: int, p: int, size: int
) -> None:
    expected = hashlib.scrypt(password, salt=salt, n=1 << log_n, r=r, p=p, dklen=size)
    assert scrypt.derive(password, salt, 1 << log_n, r, p, size=size) == expected


def test_cosign_cost_settings_match_hashlib() -> None:
    password, salt = b"correct horse", bytes(range(32))
    expected = hashlib.scrypt(password, salt=salt, n=65536, r=8, p=1, maxmem=1 << 28, dklen=32)
    assert scrypt.derive(password, salt, 65536, 8, 1) == expected


def test_parameters_libsodium_refuses_fall_back_to_openssl() -> None:
    # N must be a power of two for both; OpenSSL's error is the one reported.
    with pytest.raises(ValueError):
        scrypt.derive(b"pw", b"salt", 1000, 8, 1)


def test_derivation_releases_the_gil() -> None:
    """Another thread runs while a derivation computes (sign overlaps its registry work
    with it). With a long switch interval, a deriving thread that kept the GIL would let
    the main thread run only after the derivation returned: no spin before ``done``."""
    started, done = threading.Event(), threading.Event()
    spins = 0

    def work() -> None:
        started.set()
        scrypt.derive(b"pw", b"salt" * 8, 16384, 8, 1)
        done.set()

    thread = threading.Thread(target=work)
    previous = sys.getswitchinterval()
    sys.setswitchinterval(0.5)
    try:
        thread.start()
        started.wait()
        while not done.is_set():
            spins += 1
        thread.join()
    finally:
        sys.setswitchinterval(previous)
    assert spins > 1000


def test_modules_load_only_the_standard_library() -> None:
    code = (
        "import sys, attest_step.keys.scrypt, attest_step.keys.secretbox;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('nacl','cryptography')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
