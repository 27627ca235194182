"""cosign's encrypted key format, PEM and the PKCS#8 structure check, incl. fuzzing."""

from __future__ import annotations

import base64
import contextlib
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from attest_step.keys import cosign_format, der, pem
from attest_step.keys.local import UnsupportedKeyError, pkcs8_der, private_key_from_pkcs8

PASSWORD = b"s3cret"


def _pem_json(doc: object, label: str = cosign_format.SIGSTORE_LABEL) -> bytes:
    return pem.encode(label, json.dumps(doc).encode())


@pytest.fixture(scope="module")
def encrypted() -> bytes:
    return cosign_format.encrypt(pkcs8_der(ec.generate_private_key(ec.SECP256R1())), PASSWORD)


def test_written_layout_matches_cosign(encrypted: bytes) -> None:
    block = pem.single_block(encrypted, cosign_format.ENCRYPTED_LABELS)
    assert block is not None
    assert block.label == "ENCRYPTED SIGSTORE PRIVATE KEY"
    assert encrypted.startswith(b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
    assert all(len(line) <= 64 for line in encrypted.splitlines())
    doc = json.loads(block.der)
    assert list(doc) == ["kdf", "cipher", "ciphertext"]
    assert doc["kdf"]["name"] == "scrypt"
    assert doc["kdf"]["params"] == {"N": 65536, "r": 8, "p": 1}
    assert len(base64.b64decode(doc["kdf"]["salt"])) == 32
    assert doc["cipher"]["name"] == "nacl/secretbox"
    assert len(base64.b64decode(doc["cipher"]["nonce"])) == 24


@pytest.mark.parametrize("n", [32768, 65536])
@pytest.mark.parametrize("label", cosign_format.ENCRYPTED_LABELS)
def test_round_trip(n: int, label: str) -> None:
    plaintext = b"0123456789abcdef" * 9
    data = cosign_format.encrypt(plaintext, b"", n=n, label=label)
    parsed = cosign_format.parse(data.replace(b"\n", b"\r\n"))  # CRLF is accepted too
    assert (parsed.label, parsed.n, parsed.r, parsed.p) == (label, n, 8, 1)
    assert cosign_format.decrypt(parsed, b"") == plaintext
    with pytest.raises(cosign_format.WrongPasswordError):
        cosign_format.decrypt(parsed, b"x")


def test_wrong_password(encrypted: bytes) -> None:
    with pytest.raises(cosign_format.WrongPasswordError):
        cosign_format.decrypt(cosign_format.parse(encrypted), b"s3cret\n")


def _doc(encrypted: bytes) -> dict[str, object]:
    block = pem.single_block(encrypted, cosign_format.ENCRYPTED_LABELS)
    assert block is not None
    loaded = json.loads(block.der)
    assert isinstance(loaded, dict)
    return loaded


@pytest.mark.parametrize(
    ("params", "accepted"),
    [
        ({"N": 32768, "r": 8, "p": 1}, True),
        ({"N": 131072, "r": 8, "p": 1}, True),
        ({"N": 16384, "r": 8, "p": 1}, False),
        ({"N": 65536, "r": 16, "p": 1}, False),
        ({"N": 65536, "r": 8, "p": 2}, False),
        ({"N": 1 << 30, "r": 8, "p": 1}, False),
        ({"N": "65536", "r": 8, "p": 1}, False),
        ({"N": True, "r": 8, "p": 1}, False),
        ({"r": 8, "p": 1}, False),
    ],
)
def test_only_cosigns_scrypt_parameters(
    encrypted: bytes, params: dict[str, object], accepted: bool
) -> None:
    doc = _doc(encrypted)
    doc["kdf"]["params"] = params  # type: ignore[index]
    data = _pem_json(doc)
    if accepted:
        assert cosign_format.parse(data).n == params["N"]
    else:
        with pytest.raises(cosign_format.EncryptedKeyFormatError):
            cosign_format.parse(data)


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d["kdf"].__setitem__("name", "argon2"),
        lambda d: d["cipher"].__setitem__("name", "aes-gcm"),
        lambda d: d["cipher"].__setitem__("nonce", base64.b64encode(b"short").decode()),
        lambda d: d.__setitem__("ciphertext", "not base64!"),
        lambda d: d.__setitem__("ciphertext", ""),
        lambda d: d.pop("kdf"),
        lambda d: d.__setitem__("cipher", []),
    ],
)
def test_malformed_documents(encrypted: bytes, edit: object) -> None:
    doc = _doc(encrypted)
    edit(doc)  # type: ignore[operator]
    with pytest.raises(cosign_format.EncryptedKeyFormatError):
        cosign_format.parse(_pem_json(doc))


def test_other_labels_and_non_json() -> None:
    with pytest.raises(cosign_format.EncryptedKeyFormatError):
        cosign_format.parse(pem.encode("ENCRYPTED PRIVATE KEY", b"{}"))
    with pytest.raises(cosign_format.EncryptedKeyFormatError):
        cosign_format.parse(pem.encode(cosign_format.SIGSTORE_LABEL, b"\xff\x00"))


@given(st.binary(max_size=300))
def test_parse_fuzz_raises_only_format_errors(body: bytes) -> None:
    for data in (body, pem.encode(cosign_format.COSIGN_LABEL, body or b"x")):
        with contextlib.suppress(cosign_format.EncryptedKeyFormatError, pem.PemError):
            cosign_format.parse(data)


@given(
    st.recursive(
        st.none() | st.integers() | st.text(max_size=8),
        lambda c: (
            st.lists(c, max_size=3)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "kdf",
                        "cipher",
                        "ciphertext",
                        "name",
                        "params",
                        "N",
                        "r",
                        "p",
                        "salt",
                        "nonce",
                    ]
                ),
                c,
                max_size=4,
            )
        ),
        max_leaves=12,
    )
)
def test_parse_fuzz_json_shapes(doc: object) -> None:
    with contextlib.suppress(cosign_format.EncryptedKeyFormatError):
        cosign_format.parse(_pem_json(doc))


# ---------------------------------------------------------------- PEM


@given(
    st.sampled_from(["PUBLIC KEY", "CERTIFICATE", "ENCRYPTED SIGSTORE PRIVATE KEY"]),
    st.binary(min_size=1, max_size=500),
)
def test_pem_round_trip(label: str, body: bytes) -> None:
    encoded = pem.encode(label, body)
    assert [(b.label, b.der) for b in pem.blocks(b"junk\n" + encoded + encoded)] == [
        (label, body),
        (label, body),
    ]
    assert pem.blocks(encoded.replace(b"\n", b"\r\n"))[0].der == body


@given(st.binary(max_size=300))
def test_pem_fuzz(data: bytes) -> None:
    with contextlib.suppress(pem.PemError):
        pem.blocks(b"-----BEGIN X-----\n" + data + b"\n-----END X-----\n")


def test_pem_headers_refused() -> None:
    with pytest.raises(pem.PemError, match="headers"):
        pem.blocks(b"-----BEGIN X-----\nProc-Type: 4,ENCRYPTED\n\nQUJD\n-----END X-----\n")


# ---------------------------------------------------------------- PKCS#8


def test_sec1_and_pkcs1_are_refused() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    sec1 = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    with pytest.raises(der.DerError):
        private_key_from_pkcs8(sec1)
    assert isinstance(private_key_from_pkcs8(pkcs8_der(key)), ec.EllipticCurvePrivateKey)


def _tlv(tag: int, value: bytes) -> bytes:
    length = len(value)
    if length < 0x80:
        return bytes([tag, length]) + value
    size = (length.bit_length() + 7) // 8
    return bytes([tag, 0x80 | size]) + length.to_bytes(size, "big") + value


def test_pkcs8_v2_ed25519_is_read() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    seed = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    v2 = _tlv(
        0x30,
        _tlv(0x02, b"\x01")
        + _tlv(0x30, _tlv(0x06, der.ED25519_OID))
        + _tlv(0x04, _tlv(0x04, seed))
        + _tlv(0x81, b"\x00" + public),
    )
    loaded = private_key_from_pkcs8(v2)
    assert isinstance(loaded, ed25519.Ed25519PrivateKey)
    assert loaded.public_key() == key.public_key()


@pytest.mark.parametrize("curve", [ec.SECP256K1(), ec.SECP521R1()])
def test_unsupported_curves(curve: ec.EllipticCurve) -> None:
    with pytest.raises(UnsupportedKeyError, match=curve.name):
        private_key_from_pkcs8(pkcs8_der(ec.generate_private_key(curve)))


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_pkcs8_fuzz_raises_only_known_errors(data: bytes) -> None:
    with contextlib.suppress(der.DerError, UnsupportedKeyError):
        private_key_from_pkcs8(data)
