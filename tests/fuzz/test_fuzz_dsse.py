"""DSSE envelopes (attest_step/dsse.py) and envelope files (verify.read_envelopes, the CLI).

Contract: verify_envelope returns the payload or raises VerificationError, for any value;
sign/verify round-trips for any payload and payload type; a changed byte never verifies.
"""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from attest_step.dsse import b64decode, pae, sign_envelope, verify_envelope
from attest_step.errors import AttestStepError, VerificationError
from attest_step.keys.local import LocalSigner, public_pem
from attest_step.verify import read_envelopes
from tests.fuzz.support import (
    Scratch,
    assert_cli_contract,
    edits,
    fuzz,
    json_values,
    mutate,
    run_cli,
)

SIGNER = LocalSigner(ec.generate_private_key(ec.SECP256R1()))
VERIFIER = SIGNER.verifier()
TYPE = "application/vnd.in-toto+json"

b64_text = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ \n", max_size=40
)
envelope_like = st.fixed_dictionaries(
    {},
    optional={
        "payloadType": st.just(TYPE) | st.text(max_size=10) | json_values,
        "payload": b64_text | json_values,
        "signatures": st.lists(
            st.fixed_dictionaries(
                {}, optional={"sig": b64_text | json_values, "keyid": json_values}
            )
            | json_values,
            max_size=3,
        )
        | json_values,
    },
)


@fuzz
@given(envelope=envelope_like | json_values)
def test_any_envelope_verifies_or_raises_verification_error(envelope: object) -> None:
    try:
        payload = verify_envelope(envelope, VERIFIER)  # type: ignore[arg-type]
    except VerificationError:
        return
    raise AssertionError(f"an unsigned envelope verified: {payload!r}")


@fuzz
@given(value=st.text(max_size=60) | json_values)
def test_base64_fields_decode_or_raise_verification_error(value: object) -> None:
    try:
        decoded = b64decode(value, "payload")
    except VerificationError:
        return
    assert isinstance(decoded, bytes)


@fuzz
@given(payload=st.binary(max_size=512), payload_type=st.text(max_size=40))
def test_sign_then_verify_round_trips(payload: bytes, payload_type: str) -> None:
    envelope = sign_envelope(payload, SIGNER, payload_type)
    assert verify_envelope(json.loads(json.dumps(envelope)), VERIFIER, payload_type) == payload
    length = len(payload_type.encode())
    assert pae(payload_type, payload).startswith(b"DSSEv1 %d " % length)


@fuzz
@given(
    payload=st.binary(min_size=1, max_size=256),
    changes=edits,
    field=st.sampled_from(["payload", "sig"]),
)
def test_a_changed_byte_never_verifies(
    payload: bytes, changes: list[tuple[int, int]], field: str
) -> None:
    envelope = sign_envelope(payload, SIGNER)
    original = payload if field == "payload" else base64.b64decode(envelope["signatures"][0]["sig"])
    changed = mutate(original, changes)
    if changed == original:
        return
    encoded = base64.b64encode(changed).decode()
    if field == "payload":
        envelope["payload"] = encoded
    else:
        envelope["signatures"][0]["sig"] = encoded
    with pytest.raises(VerificationError):
        verify_envelope(envelope, VERIFIER)


@fuzz
@given(data=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_envelope_files_parse_or_raise_attest_step_error(data: bytes, scratch: Scratch) -> None:
    path = scratch("env") / "envelope.json"
    path.write_bytes(data)
    try:
        envelopes = read_envelopes(path)
    except AttestStepError:
        return
    assert envelopes and all(isinstance(e, dict) for e in envelopes)


@fuzz
@given(data=st.binary(max_size=300) | envelope_like.map(lambda v: json.dumps(v).encode()))
def test_verify_attestation_cli_on_any_envelope_file(data: bytes, scratch: Scratch) -> None:
    work = scratch("cli")
    (work / "pub.pem").write_bytes(public_pem(ec.generate_private_key(ec.SECP256R1()).public_key()))
    (work / "envelope.json").write_bytes(data)
    result = run_cli(
        [
            "verify-attestation",
            "--key",
            str(work / "pub.pem"),
            "--envelope",
            str(work / "envelope.json"),
        ]
    )
    assert_cli_contract(result, allowed=(1, 2))
