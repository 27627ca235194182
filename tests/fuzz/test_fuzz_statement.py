"""in-toto Statements (attest_step/statement.py) and whole attestations (attest_step/verify.py).

Contract: parse_statement returns a Statement or raises VerificationError for any bytes;
a well-formed statement round-trips; verify_attestation of a signed statement returns a
result or raises VerificationError, whatever the statement holds.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from attest_step.dsse import sign_envelope
from attest_step.errors import VerificationError
from attest_step.keys.local import LocalSigner
from attest_step.model import Subject
from attest_step.provenance import SLSA_PROVENANCE_V1
from attest_step.statement import parse_statement
from attest_step.verify import verify_attestation
from tests.fuzz.support import edits, fuzz, json_values, mutate

SIGNER = LocalSigner(ec.generate_private_key(ec.SECP256R1()))


def _hex(length: int) -> st.SearchStrategy[str]:
    return st.text(alphabet="0123456789abcdef", min_size=length, max_size=length)


digests = st.fixed_dictionaries(
    {"sha256": _hex(64)}, optional={"sha512": _hex(128), "gitCommit": _hex(40)}
)
subjects = st.lists(
    st.fixed_dictionaries({"name": st.text(max_size=20), "digest": digests}), min_size=1, max_size=3
)
statements = st.fixed_dictionaries(
    {
        "_type": st.just("https://in-toto.io/Statement/v1"),
        "subject": subjects,
        "predicateType": st.sampled_from([SLSA_PROVENANCE_V1, "https://example.com/p/v1"]),
        "predicate": st.dictionaries(st.text(max_size=8), json_values, max_size=3),
    }
)


@st.composite
def statement_like(draw: st.DrawFn) -> Any:
    """A valid statement with one to three places replaced by any JSON value: a top-level
    field, a subject, a subject's field or digest, or a whole new field."""
    doc: dict[str, Any] = draw(statements)
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(["top", "subject", "subject-field", "digest", "extra"]))
        value = draw(json_values)
        subject = doc["subject"] if isinstance(doc.get("subject"), list) else None
        if where == "top":
            doc[draw(st.sampled_from(["_type", "subject", "predicateType", "predicate"]))] = value
        elif where == "subject" and subject:
            subject[draw(st.integers(0, len(subject) - 1))] = value
        elif where in ("subject-field", "digest") and subject and isinstance(subject[0], dict):
            if where == "digest" and isinstance(subject[0].get("digest"), dict):
                subject[0]["digest"][draw(st.sampled_from(["sha256", "sha512", "x"]))] = value
            else:
                field = draw(st.sampled_from(["name", "uri", "digest", "annotations", "content"]))
                subject[0][field] = value
        else:
            doc[draw(st.text(max_size=6))] = value
    return doc


@fuzz
@given(data=st.binary(max_size=400) | statement_like().map(lambda s: json.dumps(s).encode()))
def test_any_payload_parses_or_raises_verification_error(data: bytes) -> None:
    try:
        statement = parse_statement(data)
    except VerificationError:
        return
    assert statement.subjects
    assert isinstance(statement.predicate, dict)


@fuzz
@given(statement=statements)
def test_well_formed_statements_round_trip(statement: dict[str, Any]) -> None:
    parsed = parse_statement(json.dumps(statement).encode())
    assert parsed.raw == statement
    assert parsed.predicate_type == statement["predicateType"]
    assert [s.digest for s in parsed.subjects] == [s["digest"] for s in statement["subject"]]


@fuzz
@given(statement=statements, changes=edits)
def test_mutated_statements_parse_or_raise(
    statement: dict[str, Any], changes: list[tuple[int, int]]
) -> None:
    data = mutate(json.dumps(statement).encode(), changes)
    with contextlib.suppress(VerificationError):
        parse_statement(data)


@fuzz
@given(
    statement=statement_like() | statements,
    predicate_type=st.sampled_from([SLSA_PROVENANCE_V1, "https://example.com/p/v1"]),
)
def test_signed_statements_verify_or_raise_verification_error(
    statement: dict[str, Any], predicate_type: str
) -> None:
    envelope = sign_envelope(json.dumps(statement).encode(), SIGNER)
    artifact = Subject("a", {"sha256": "0" * 64})
    try:
        result = verify_attestation(
            envelope, SIGNER.verifier(), predicate_type=predicate_type, artifacts=[artifact]
        )
    except VerificationError:
        return
    assert result.statement.predicate_type == predicate_type
