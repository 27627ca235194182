"""Strict statement parsing and cosign's ``--type`` names."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st
from in_toto_attestation.v1 import statement_pb2

from attest_step.errors import UsageError, VerificationError
from attest_step.statement import PREDICATE_TYPES, parse_statement, predicate_type_uri

HEX = "ab" * 32


def good() -> dict[str, Any]:
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "app", "digest": {"sha256": HEX}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {"x": 1},
    }


def encode(data: Any) -> bytes:
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    ("name", "uri"),
    [
        ("custom", "https://cosign.sigstore.dev/attestation/v1"),
        ("slsaprovenance", "https://slsa.dev/provenance/v0.2"),
        ("slsaprovenance02", "https://slsa.dev/provenance/v0.2"),
        ("slsaprovenance1", "https://slsa.dev/provenance/v1"),
        ("spdx", "https://spdx.dev/Document"),
        ("spdxjson", "https://spdx.dev/Document"),
        ("cyclonedx", "https://cyclonedx.org/bom"),
        ("link", "https://in-toto.io/Link/v1"),
        ("vuln", "https://cosign.sigstore.dev/attestation/vuln/v1"),
        ("openvex", "https://openvex.dev/ns"),
        ("https://example.com/my/predicate/v2", "https://example.com/my/predicate/v2"),
        ("urn:example:thing", "urn:example:thing"),
    ],
)
def test_predicate_type_names(name: str, uri: str) -> None:
    assert predicate_type_uri(name) == uri


def test_every_cosign_name_is_mapped() -> None:
    assert set(PREDICATE_TYPES) == {
        "custom",
        "slsaprovenance",
        "slsaprovenance02",
        "slsaprovenance1",
        "spdx",
        "spdxjson",
        "cyclonedx",
        "link",
        "vuln",
        "openvex",
    }


@pytest.mark.parametrize("name", ["", "SLSAprovenance1", "slsa provenance", "provenance", "://x"])
def test_unknown_type_names_are_usage_errors(name: str) -> None:
    with pytest.raises(UsageError, match="--type"):
        predicate_type_uri(name)


def test_good_statement_parses() -> None:
    parsed = parse_statement(encode(good()))
    assert parsed.type == "https://in-toto.io/Statement/v1"
    assert parsed.predicate_type == "https://slsa.dev/provenance/v1"
    assert [(s.name, s.digest) for s in parsed.subjects] == [("app", {"sha256": HEX})]
    assert parsed.raw == good()


def test_cosign_v01_statements_parse() -> None:
    data = good()
    data["_type"] = "https://in-toto.io/Statement/v0.1"
    assert parse_statement(encode(data)).type == "https://in-toto.io/Statement/v0.1"


def _variant(change: str) -> bytes:
    data = good()
    subject = data["subject"][0]
    if change == "extra top-level":
        data["signatures"] = []
    elif change == "missing predicate":
        del data["predicate"]
    elif change == "missing subject":
        del data["subject"]
    elif change == "wrong _type":
        data["_type"] = "https://in-toto.io/Statement/v2"
    elif change == "predicateType not a URI":
        data["predicateType"] = "slsa provenance"
    elif change == "predicate not an object":
        data["predicate"] = [1]
    elif change == "subject empty":
        data["subject"] = []
    elif change == "subject not a list":
        data["subject"] = {"name": "x"}
    elif change == "subject extra field":
        subject["sha256"] = HEX
    elif change == "subject without digest":
        del subject["digest"]
    elif change == "empty digest":
        subject["digest"] = {}
    elif change == "digest not hex":
        subject["digest"] = {"sha256": "zz" * 32}
    elif change == "digest upper case":
        subject["digest"] = {"sha256": HEX.upper()}
    elif change == "digest too short":
        subject["digest"] = {"sha256": HEX[:-1]}
    elif change == "digest value not a string":
        subject["digest"] = {"sha256": 5}
    elif change == "name not a string":
        subject["name"] = 5
    elif change == "content not base64":
        subject["content"] = "***"
    elif change == "annotations not an object":
        subject["annotations"] = "x"
    elif change == "subject not an object":
        data["subject"] = ["app"]
    elif change == "payload not an object":
        return b"[1, 2]"
    elif change == "not json":
        return b"{"
    elif change == "not utf-8":
        return b'{"_type": "\xff"}'
    elif change == "NaN":
        return encode(good()).replace(b'"x": 1', b'"x": NaN')
    elif change == "duplicate key":
        return encode(good()).replace(b'"_type"', b'"predicateType": "urn:x", "_type"', 1)
    elif change == "duplicate nested key":
        return encode(good()).replace(b'"name": "app"', b'"name": "app", "name": "other"')
    else:
        raise AssertionError(change)
    return encode(data)


CHANGES = [
    "extra top-level",
    "missing predicate",
    "missing subject",
    "wrong _type",
    "predicateType not a URI",
    "predicate not an object",
    "subject empty",
    "subject not a list",
    "subject extra field",
    "subject without digest",
    "empty digest",
    "digest not hex",
    "digest upper case",
    "digest too short",
    "digest value not a string",
    "name not a string",
    "content not base64",
    "annotations not an object",
    "subject not an object",
    "payload not an object",
    "not json",
    "not utf-8",
    "NaN",
    "duplicate key",
    "duplicate nested key",
]


@pytest.mark.parametrize("change", CHANGES)
def test_bad_statements_are_rejected_with_one_line(change: str) -> None:
    with pytest.raises(VerificationError) as info:
        parse_statement(_variant(change))
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("statement")


def test_all_descriptor_fields_are_accepted() -> None:
    data = good()
    data["subject"][0].update(
        {
            "uri": "https://x/y",
            "content": "aGVsbG8=",
            "downloadLocation": "https://x/y",
            "mediaType": "text/plain",
            "annotations": {"k": "v", "n": {"deep": True}},
        }
    )
    data["subject"].append({"digest": {"dirHash": "anything", "sha512": "c" * 128}})
    parsed = parse_statement(encode(data))
    assert parsed.subjects[0].annotations == {"k": "v"}
    assert parsed.subjects[1].name == ""


def test_deeply_nested_json_is_a_verification_error() -> None:
    deep = b'{"predicate": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(VerificationError):
        parse_statement(deep)


# --- property tests: our parser never accepts what cosign's protojson would reject ----------

_json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8))
_json = st.recursive(
    _json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
_keys = st.sampled_from(
    ["name", "uri", "digest", "content", "downloadLocation", "mediaType", "annotations", "x"]
)
_digest = st.one_of(
    st.just({"sha256": HEX}),
    st.dictionaries(st.sampled_from(["sha256", "sha1", "gitCommit"]), st.text(max_size=64)),
    _json,
)
_descriptor = st.dictionaries(_keys, st.one_of(_json, _digest), max_size=4).map(
    lambda d: {**d, "digest": d.get("digest", {"sha256": HEX})}
)
_statement = st.fixed_dictionaries(
    {
        "_type": st.sampled_from(["https://in-toto.io/Statement/v1", "x", 3]),
        "subject": st.one_of(st.lists(_descriptor, max_size=3), _json),
        "predicateType": st.sampled_from(["https://slsa.dev/provenance/v1", "urn:a", "", 1]),
        "predicate": st.one_of(st.dictionaries(st.text(max_size=5), _json, max_size=3), _json),
    },
    optional={"extra": _json},
)


@settings(max_examples=300, deadline=None)
@given(_statement)
def test_accepted_statements_are_accepted_by_the_protobuf_binding(data: dict[str, Any]) -> None:
    try:
        parsed = parse_statement(encode(data))
    except VerificationError:
        return
    pb = json_format.ParseDict(data, statement_pb2.Statement(), ignore_unknown_fields=False)
    assert pb.predicate_type == parsed.predicate_type
    assert len(pb.subject) == len(parsed.subjects) > 0
    assert all(len(s.digest) > 0 for s in pb.subject)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_escape_as_another_exception(data: bytes) -> None:
    with contextlib.suppress(VerificationError):
        parse_statement(data)
