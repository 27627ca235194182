"""NaCl secretbox for cosign key files (attest_step.keys.secretbox): PyNaCl's SecretBox, the
layout Go's secretbox writes."""

from __future__ import annotations

import os

import nacl.secret
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attest_step.keys import secretbox

KEY = bytes(range(32))
NONCE = bytes(range(100, 124))


@settings(max_examples=50, deadline=None)
@given(plaintext=st.binary(max_size=2048), key=st.binary(min_size=32, max_size=32))
def test_opens_what_pynacl_seals(plaintext: bytes, key: bytes) -> None:
    box = bytes(nacl.secret.SecretBox(key).encrypt(plaintext, NONCE).ciphertext)
    assert secretbox.open_box(key, NONCE, box) == plaintext
    assert secretbox.seal(key, NONCE, plaintext) == box


def test_round_trip() -> None:
    for plaintext in (b"", b"x", os.urandom(1000)):
        box = secretbox.seal(KEY, NONCE, plaintext)
        assert len(box) == len(plaintext) + secretbox.MAC_SIZE
        assert secretbox.open_box(KEY, NONCE, box) == plaintext


def test_every_flipped_byte_is_refused() -> None:
    box = secretbox.seal(KEY, NONCE, b"private key bytes")
    for index in range(len(box)):
        bad = bytearray(box)
        bad[index] ^= 0x01
        with pytest.raises(secretbox.SecretBoxError):
            secretbox.open_box(KEY, NONCE, bytes(bad))


def test_wrong_key_or_nonce_is_refused() -> None:
    box = secretbox.seal(KEY, NONCE, b"data")
    with pytest.raises(secretbox.SecretBoxError):
        secretbox.open_box(bytes(32), NONCE, box)
    with pytest.raises(secretbox.SecretBoxError):
        secretbox.open_box(KEY, bytes(24), box)


def test_short_box_and_bad_sizes() -> None:
    with pytest.raises(secretbox.SecretBoxError):
        secretbox.open_box(KEY, NONCE, b"\0" * 15)
    with pytest.raises(ValueError, match="32-byte key"):
        secretbox.open_box(b"short", NONCE, b"\0" * 16)
    with pytest.raises(ValueError, match="24-byte nonce"):
        secretbox.seal(KEY, b"short", b"")
