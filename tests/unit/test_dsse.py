"""DSSE: PAE bytes, envelope shape, and rejection of every single-byte change."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from hypothesis import given
from hypothesis import strategies as st

from attest_step import dsse
from attest_step.errors import VerificationError
from attest_step.keys.local import LocalSigner, PrivateKey


def test_pae_matches_the_spec_example() -> None:
    assert (
        dsse.pae("http://example.com/HelloWorld", b"hello world")
        == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_pae_counts_bytes_not_characters() -> None:
    assert dsse.pae("t\u00e9", b"") == b"DSSEv1 3 t\xc3\xa9 0 "


@given(st.text(max_size=40), st.binary(max_size=200))
def test_pae_layout(payload_type: str, payload: bytes) -> None:
    encoded = dsse.pae(payload_type, payload)
    type_bytes = payload_type.encode()
    head = f"DSSEv1 {len(type_bytes)} ".encode()
    assert encoded.startswith(head + type_bytes + f" {len(payload)} ".encode())
    assert encoded.endswith(payload)
    assert len(encoded) == len(head) + len(type_bytes) + len(f" {len(payload)} ") + len(payload)


@pytest.fixture(params=["ecdsa-p256", "ed25519"])
def signer(request: pytest.FixtureRequest) -> LocalSigner:
    key: PrivateKey = (
        ec.generate_private_key(ec.SECP256R1())
        if request.param == "ecdsa-p256"
        else ed25519.Ed25519PrivateKey.generate()
    )
    return LocalSigner(key)


PAYLOAD = b'{"_type":"https://in-toto.io/Statement/v1"}'


def test_envelope_shape_and_round_trip(signer: LocalSigner) -> None:
    envelope = dsse.sign_envelope(PAYLOAD, signer)
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    assert base64.b64decode(envelope["payload"]) == PAYLOAD
    assert [set(s) for s in envelope["signatures"]] == [{"keyid", "sig"}]
    assert envelope["signatures"][0]["keyid"] == ""
    signature = base64.b64decode(envelope["signatures"][0]["sig"])
    assert signer.verifier().verify(signature, dsse.pae(dsse.INTOTO_PAYLOAD_TYPE, PAYLOAD))
    json.dumps(envelope)  # serialisable as is
    assert dsse.verify_envelope(envelope, signer.verifier()) == PAYLOAD


def _with_bytes(envelope: dict[str, Any], field: str, raw: bytes) -> dict[str, Any]:
    changed = copy.deepcopy(envelope)
    encoded = base64.b64encode(raw).decode()
    if field == "payload":
        changed["payload"] = encoded
    else:
        changed["signatures"][0]["sig"] = encoded
    return changed


def test_every_single_byte_change_is_rejected(signer: LocalSigner) -> None:
    envelope = dsse.sign_envelope(PAYLOAD, signer)
    verifier = signer.verifier()
    originals = {
        "payload": PAYLOAD,
        "sig": base64.b64decode(envelope["signatures"][0]["sig"]),
    }
    checked = 0
    for field, raw in originals.items():
        for index in range(len(raw)):
            for mask in (0x01, 0x80, 0xFF):
                mutated = bytearray(raw)
                mutated[index] ^= mask
                with pytest.raises(VerificationError):
                    dsse.verify_envelope(_with_bytes(envelope, field, bytes(mutated)), verifier)
                checked += 1
    type_bytes = envelope["payloadType"].encode()
    for index in range(len(type_bytes)):
        mutated = bytearray(type_bytes)
        mutated[index] ^= 0x01
        other_type = mutated.decode("latin-1")
        changed = dict(envelope, payloadType=other_type)
        # refused for the type itself, and the signature does not cover the other type either
        with pytest.raises(VerificationError, match="payloadType"):
            dsse.verify_envelope(changed, verifier)
        with pytest.raises(VerificationError, match="none of the 1"):
            dsse.verify_envelope(changed, verifier, payload_type=other_type)
        checked += 2
    assert checked == 3 * (len(PAYLOAD) + len(originals["sig"])) + 2 * len(type_bytes)


def test_url_safe_base64_is_accepted(signer: LocalSigner) -> None:
    payload = b"\xfb\xff\xfe" * 7  # encodes to '+' and '/' in standard base64
    envelope = dsse.sign_envelope(payload, signer, payload_type="application/x")
    envelope["payload"] = base64.urlsafe_b64encode(payload).decode()
    sig = base64.b64decode(envelope["signatures"][0]["sig"])
    envelope["signatures"][0]["sig"] = base64.urlsafe_b64encode(sig).decode()
    assert "-" in envelope["payload"] or "_" in envelope["payload"]
    assert (
        dsse.verify_envelope(envelope, signer.verifier(), payload_type="application/x") == payload
    )


def test_one_good_signature_among_bad_ones_is_enough(signer: LocalSigner) -> None:
    other = LocalSigner(ec.generate_private_key(ec.SECP256R1()))
    envelope = dsse.sign_envelope(PAYLOAD, signer)
    foreign = dsse.sign_envelope(PAYLOAD, other)["signatures"][0]
    envelope["signatures"] = [foreign, {"sig": "!!notbase64"}, "junk", envelope["signatures"][0]]
    assert dsse.verify_envelope(envelope, signer.verifier()) == PAYLOAD
    # keyid does not select keys: a cosign v3 envelope without keyid verifies too
    del envelope["signatures"][3]["keyid"]
    assert dsse.verify_envelope(envelope, signer.verifier()) == PAYLOAD


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda e: e.pop("payloadType"), "payloadType"),
        (lambda e: e.__setitem__("payload", "%%%"), "payload is not valid base64"),
        (lambda e: e.__setitem__("payload", 7), "payload is not a string"),
        (lambda e: e.__setitem__("signatures", []), "no signatures"),
        (lambda e: e.pop("signatures"), "no signatures"),
        (lambda e: e["signatures"][0].__setitem__("sig", ""), "none of the 1"),
    ],
)
def test_malformed_envelopes_give_reasons(signer: LocalSigner, mutate: Any, reason: str) -> None:
    envelope = dsse.sign_envelope(PAYLOAD, signer)
    mutate(envelope)
    with pytest.raises(VerificationError, match=reason):
        dsse.verify_envelope(envelope, signer.verifier())


def test_wrong_key_is_rejected(signer: LocalSigner) -> None:
    envelope = dsse.sign_envelope(PAYLOAD, signer)
    other = LocalSigner(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(VerificationError):
        dsse.verify_envelope(envelope, other.verifier())


@given(st.dictionaries(st.text(max_size=5), st.text(max_size=5) | st.integers(), max_size=4))
def test_verify_never_crashes_on_junk(junk: dict[str, Any]) -> None:
    verifier = LocalSigner(ed25519.Ed25519PrivateKey.generate()).verifier()
    with pytest.raises(VerificationError):
        dsse.verify_envelope(junk, verifier)
