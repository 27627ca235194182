"""Verification of whole attestations: signature, payload type, statement, type, subjects."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from attest_step.dsse import sign_envelope
from attest_step.errors import UsageError, VerificationError
from attest_step.keys.local import LocalSigner, PublicKeyVerifier
from attest_step.model import Subject
from attest_step.provenance import (
    SLSA_PROVENANCE_V1,
    ProvenanceInputs,
    build_statement,
    serialize_statement,
)
from attest_step.verify import read_envelopes, subject_matching, verify_any, verify_attestation

Keys = tuple[LocalSigner, PublicKeyVerifier]
FILE_HEX = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"  # "hello\n"
ARTIFACT = Subject("a.txt", {"sha256": FILE_HEX})


def small_statement(digest: str = FILE_HEX) -> dict[str, Any]:
    return build_statement(
        ProvenanceInputs(
            subjects=[Subject("a.txt", {"sha256": digest})],
            finished_on=datetime(2024, 1, 1, tzinfo=UTC),
        )
    )


def signed(statement: Mapping[str, Any], signer: LocalSigner) -> dict[str, Any]:
    return sign_envelope(serialize_statement(statement), signer)


def with_payload(envelope: dict[str, Any], payload: bytes) -> dict[str, Any]:
    return {**envelope, "payload": base64.b64encode(payload).decode()}


def with_sig(envelope: dict[str, Any], sig: bytes) -> dict[str, Any]:
    return {**envelope, "signatures": [{"keyid": "", "sig": base64.b64encode(sig).decode()}]}


def check(envelope: Mapping[str, Any], verifier: PublicKeyVerifier, **kw: Any) -> Any:
    kw.setdefault("predicate_type", SLSA_PROVENANCE_V1)
    kw.setdefault("artifacts", [ARTIFACT])
    return verify_attestation(envelope, verifier, **kw)


def test_a_good_attestation_verifies(p256_signer: Keys) -> None:
    signer, verifier = p256_signer
    result = check(signed(small_statement(), signer), verifier)
    assert result.statement.predicate_type == SLSA_PROVENANCE_V1
    assert result.matched == ((ARTIFACT, ARTIFACT),)
    summary = result.to_dict()
    assert summary["verified"] is True
    assert summary["subjectsMatched"][0]["subject"] == {"name": "a.txt", "digest": ARTIFACT.digest}
    assert summary["statement"] == small_statement()


def test_every_single_byte_change_of_the_payload_is_rejected(p256_signer: Keys) -> None:
    signer, verifier = p256_signer
    envelope = signed(small_statement(), signer)
    payload = base64.b64decode(envelope["payload"])
    assert len(payload) < 1000
    for index in range(len(payload)):
        for mask in (0x01, 0x80):
            changed = bytearray(payload)
            changed[index] ^= mask
            with pytest.raises(VerificationError):
                check(with_payload(envelope, bytes(changed)), verifier)


def test_every_single_byte_change_of_the_signature_is_rejected(p256_signer: Keys) -> None:
    signer, verifier = p256_signer
    envelope = signed(small_statement(), signer)
    sig = base64.b64decode(envelope["signatures"][0]["sig"])
    for index in range(len(sig)):
        for mask in (0x01, 0x80):
            changed = bytearray(sig)
            changed[index] ^= mask
            with pytest.raises(VerificationError, match="none of the 1 DSSE signature"):
                check(with_sig(envelope, bytes(changed)), verifier)


def test_every_subject_digest_change_is_rejected_even_when_properly_signed(
    p256_signer: Keys,
) -> None:
    signer, verifier = p256_signer
    for index in range(len(FILE_HEX)):
        other = "0" if FILE_HEX[index] != "0" else "1"
        digest = FILE_HEX[:index] + other + FILE_HEX[index + 1 :]
        # A validly signed statement about other bytes does not vouch for this file ...
        with pytest.raises(VerificationError, match="is not among the subjects"):
            check(signed(small_statement(digest), signer), verifier)
        # ... and a file whose digest differs in one place is not the attested one.
        with pytest.raises(VerificationError, match="is not among the subjects"):
            check(
                signed(small_statement(), signer),
                verifier,
                artifacts=[Subject("a.txt", {"sha256": digest})],
            )


def test_every_byte_change_of_the_envelope_text_is_rejected_or_harmless(
    p256_signer: Keys,
) -> None:
    """Mutating the serialized envelope either fails verification or leaves the verified
    content (payload type and payload) exactly the same, e.g. a renamed ``keyid`` key."""
    signer, verifier = p256_signer
    envelope = signed(small_statement(), signer)
    text = json.dumps(envelope, separators=(",", ":")).encode()
    accepted = 0
    for index in range(len(text)):
        changed = bytearray(text)
        changed[index] ^= 0x01
        try:
            parsed = json.loads(bytes(changed))
            result = check(parsed, verifier)
        except (ValueError, VerificationError):
            continue
        accepted += 1
        assert result.statement.raw == small_statement()
        assert parsed["payloadType"] == envelope["payloadType"]
    assert accepted < len(text) // 20


def test_the_wrong_key_is_rejected(p256_signer: Keys) -> None:
    signer, _ = p256_signer
    other = LocalSigner(ec.generate_private_key(ec.SECP256R1())).verifier()
    with pytest.raises(VerificationError, match="verifies with the given key"):
        check(signed(small_statement(), signer), other)


def test_a_wrong_payload_type_is_rejected(p256_signer: Keys) -> None:
    signer, verifier = p256_signer
    envelope = sign_envelope(
        serialize_statement(small_statement()), signer, payload_type="application/json"
    )
    with pytest.raises(VerificationError, match="payloadType is 'application/json'"):
        check(envelope, verifier)


def test_a_different_predicate_type_is_rejected(p256_signer: Keys) -> None:
    signer, verifier = p256_signer
    with pytest.raises(VerificationError, match=r"predicateType is .* expected 'urn:x'"):
        check(signed(small_statement(), signer), verifier, predicate_type="urn:x")


def test_a_signed_statement_with_an_extra_field_is_rejected(p256_signer: Keys) -> None:
    signer, verifier = p256_signer
    statement = {**small_statement(), "extra": 1}
    with pytest.raises(VerificationError, match="unknown top-level field"):
        check(signed(statement, signer), verifier)


def test_a_signed_slsa_v1_predicate_without_builder_id_is_rejected(p256_signer: Keys) -> None:
    signer, verifier = p256_signer
    statement = small_statement()
    del statement["predicate"]["runDetails"]["builder"]["id"]
    with pytest.raises(VerificationError, match="runDetails/builder: 'id' is a required"):
        check(signed(statement, signer), verifier)
    statement = small_statement()
    statement["predicate"]["buildDefinition"]["externalParameters"] = {}
    with pytest.raises(VerificationError, match="externalParameters"):
        check(signed(statement, signer), verifier)


def test_other_predicate_types_are_not_held_to_the_slsa_shape(p256_signer: Keys) -> None:
    signer, verifier = p256_signer
    statement = {**small_statement(), "predicateType": "urn:x", "predicate": {"a": 1}}
    assert check(signed(statement, signer), verifier, predicate_type="urn:x").matched


def test_policy_violations_fail_verification(p256_signer: Keys) -> None:
    signer, verifier = p256_signer
    envelope = signed(small_statement(), signer)
    seen: list[Mapping[str, Any]] = []

    def policy(statement: Mapping[str, Any]) -> list[str]:
        seen.append(statement)
        return ["the build was not hermetic", "no source"]

    with pytest.raises(VerificationError, match="policy not satisfied: the build was not"):
        check(envelope, verifier, policy=policy)
    assert seen == [small_statement()]
    assert check(envelope, verifier, policy=lambda _: []).matched


def test_subject_matching_compares_shared_algorithms_only() -> None:
    subjects = [
        Subject("x", {"sha256": "1" * 64, "sha512": "2" * 128}),
        Subject("y", {"sha1": "3" * 40}),
    ]
    assert subject_matching(Subject("z", {"sha256": "1" * 64}), subjects) == subjects[0]
    assert (
        subject_matching(Subject("z", {"sha256": "1" * 64, "sha512": "0" * 128}), subjects) is None
    )
    assert subject_matching(Subject("z", {"sha384": "1" * 96}), subjects) is None
    assert subject_matching(Subject("z", {"sha1": "3" * 40}), subjects) == subjects[1]


def test_verify_any_takes_the_first_good_envelope_and_explains_failures(
    p256_signer: Keys,
) -> None:
    signer, verifier = p256_signer
    good = signed(small_statement(), signer)
    bad = with_sig(good, b"\x00" * 70)
    other = signed({**small_statement(), "predicateType": "urn:x"}, signer)
    result = verify_any([bad, other, good], verifier, predicate_type=SLSA_PROVENANCE_V1)
    assert result.statement.raw == small_statement()
    with pytest.raises(VerificationError) as info:
        verify_any([bad, other], verifier, predicate_type=SLSA_PROVENANCE_V1, source="img")
    message = str(info.value)
    assert message.startswith("img: #1: none of the 1 DSSE signature")
    assert "#2: predicateType is 'urn:x'" in message
    with pytest.raises(VerificationError, match="no attestations found in img"):
        verify_any([], verifier, predicate_type=SLSA_PROVENANCE_V1, source="img")


def test_read_envelopes_single_json_and_json_lines(tmp_path: Path, p256_signer: Keys) -> None:
    signer, _ = p256_signer
    env = signed(small_statement(), signer)
    single = tmp_path / "one.json"
    single.write_text(json.dumps(env, indent=2))
    assert read_envelopes(single) == [env]
    lines = tmp_path / "many.intoto.jsonl"
    lines.write_text(json.dumps(env) + "\n\n" + json.dumps(env) + "\n")
    assert read_envelopes(lines) == [env, env]


@pytest.mark.parametrize(
    ("content", "error", "message"),
    [
        (b"", VerificationError, "the file is empty"),
        (b"[]", VerificationError, "not a DSSE envelope"),
        (b"{\n", VerificationError, "line 1: not valid JSON"),
        (b'{"a": 1}\n[1]\n', VerificationError, "line 2: not a JSON object"),
        (b"\xff\xfe", VerificationError, "not UTF-8"),
    ],
)
def test_read_envelopes_rejects(
    tmp_path: Path, content: bytes, error: type[Exception], message: str
) -> None:
    path = tmp_path / "env.json"
    path.write_bytes(content)
    with pytest.raises(error, match=message):
        read_envelopes(path)


def test_read_envelopes_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read it"):
        read_envelopes(tmp_path / "nope.json")
