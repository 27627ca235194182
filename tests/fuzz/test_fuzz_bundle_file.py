"""The ``--bundle FILE`` parser (attest_step.oci.bundle_doc.parse_bundle), outside input.

Contract: any bytes, and any JSON document in the places a bundle has fields, parse or
raise ValueError (never another exception); a bundle as attest-step builds it parses back
to the same envelope signatures and log entries.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from attest_step.oci.bundle_doc import bundle_bytes, parse_bundle
from tests.fuzz.support import edits, fuzz, json_values, mutate

VALID = bundle_bytes(
    {"payload": "e30=", "payloadType": "application/vnd.in-toto+json",
     "signatures": [{"keyid": "", "sig": "AAAA"}]},
    "aGludA==",
    [{"logIndex": "1"}],
)  # fmt: skip


@fuzz
@given(st.binary(max_size=300) | st.builds(mutate, st.just(VALID), edits))
def test_any_bytes_parse_or_raise_value_error(data: bytes) -> None:
    with contextlib.suppress(ValueError):
        parse_bundle(data)


@fuzz
@given(
    st.sampled_from(["mediaType", "verificationMaterial", "dsseEnvelope", "tlogEntries"]),
    json_values,
)
def test_any_field_value_parses_or_raises_value_error(field: str, value: Any) -> None:
    doc = json.loads(VALID)
    if field == "tlogEntries":
        doc["verificationMaterial"][field] = value
    else:
        doc[field] = value
    try:
        got = parse_bundle(json.dumps(doc).encode())
    except ValueError:
        return
    assert isinstance(got.envelope, dict)


@fuzz
@given(
    st.text(max_size=40),
    st.lists(st.text(max_size=20), min_size=1, max_size=3),
    st.lists(st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3), max_size=3),
)
def test_a_built_bundle_parses_back(
    payload: str, sigs: list[str], entries: list[dict[str, Any]]
) -> None:
    envelope = {"payload": payload, "payloadType": "t", "signatures": [{"sig": s} for s in sigs]}
    got = parse_bundle(bundle_bytes(envelope, "hint", entries))
    assert got.envelope == envelope
    assert got.tlog_entries == entries
    assert not got.certificate.present


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not json", "not JSON"),
        (b"[]", "not a JSON object"),
        (json.dumps({"mediaType": "application/json"}).encode(), "mediaType is not"),
        (
            json.dumps({"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json"}).encode(),
            "holds no DSSE envelope",
        ),
    ],
)
def test_what_is_not_an_attestation_bundle_says_why(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_bundle(data)
