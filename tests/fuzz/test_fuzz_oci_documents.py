"""Property tests of the registry document parsers (attest_step/oci/documents.py).

Contract: any bytes, and any JSON, either parse into the documented value or raise
RegistryError (exit 2) with one line, never another exception; a descriptor is accepted
exactly when the OCI image spec's rules restated here hold; valid documents round trip;
content is accepted for a digest exactly when it hashes to it.

Budget: 100 derandomized examples per property in ``make test``; ``ATTEST_STEP_FUZZ=long``
(``make fuzz``) runs 2000 with a fresh seed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attest_step.errors import RegistryError
from attest_step.oci.documents import (
    check_content,
    index_entries,
    json_object,
    parse_descriptor,
    parse_index,
    parse_manifest,
    parse_tag_list,
)
from attest_step.oci.types import INDEX_TYPE, MANIFEST_TYPE, Descriptor

_LONG = os.environ.get("ATTEST_STEP_FUZZ") == "long"
fuzz = settings(
    max_examples=2000 if _LONG else 100,
    derandomize=not _LONG,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
hex64 = st.text("0123456789abcdef", min_size=64, max_size=64)
digests = hex64.map(lambda h: f"sha256:{h}")
annotation_maps = st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3)
descriptors = st.builds(
    Descriptor,
    media_type=st.text(min_size=1, max_size=30),
    digest=digests,
    size=st.integers(0, 1 << 40),
    annotations=annotation_maps,
    artifact_type=st.none() | st.text(min_size=1, max_size=20),
)
# Values a descriptor field may take: valid ones and every other kind of JSON.
field_values = (
    json_values
    | json_scalars
    | digests
    | st.sampled_from(["sha256:" + "A" * 64, "sha256:abc", "sha512:" + "0" * 128, "md5:x"])
    | st.sampled_from([True, False, -1, 1.0, "1", [], {}, {"a": 1}, {"a": None}])
)
DESCRIPTOR_KEYS = ["mediaType", "digest", "size", "annotations", "artifactType"]
ABSENT = object()


def _manifest_doc(layers: list[Descriptor], config: Descriptor, subject: Descriptor | None) -> Any:
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": config.to_dict(),
        "layers": [d.to_dict() for d in layers],
    }
    if subject is not None:
        doc["subject"] = subject.to_dict()
    return doc


def _parses_or_refuses(call: Any, *args: Any) -> Any:
    """``call(*args)``'s value, or None when it raised RegistryError with one line."""
    try:
        return call(*args)
    except RegistryError as err:
        assert "\n" not in str(err)
        return None


@fuzz
@given(st.binary(max_size=300))
def test_any_bytes_parse_or_raise_registry_error(data: bytes) -> None:
    for parse in (json_object, parse_manifest, parse_index, index_entries, parse_tag_list):
        _parses_or_refuses(parse, data, "fuzz")


@fuzz
@given(json_values)
def test_any_json_parses_or_raises_registry_error(value: Any) -> None:
    data = json.dumps(value).encode()
    for parse in (parse_manifest, parse_index, index_entries, parse_tag_list):
        _parses_or_refuses(parse, data, "fuzz")
    _parses_or_refuses(parse_descriptor, value, "fuzz")


@fuzz
@given(
    st.lists(descriptors, max_size=4),
    descriptors,
    st.none() | descriptors,
    st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "config",
                    "layers",
                    "subject",
                    "schemaVersion",
                    "mediaType",
                    "annotations",
                    "artifactType",
                ]
            ),
            json_values,
        ),
        max_size=2,
    ),
)
def test_valid_manifests_with_fields_replaced_parse_or_raise_registry_error(
    layers: list[Descriptor],
    config: Descriptor,
    subject: Descriptor | None,
    replaced: list[tuple[str, Any]],
) -> None:
    doc = _manifest_doc(layers, config, subject)
    for key, value in replaced:
        doc[key] = value
    _parses_or_refuses(parse_manifest, json.dumps(doc).encode(), "fuzz")


@fuzz
@given(st.lists(descriptors, max_size=4), descriptors, st.none() | descriptors)
def test_valid_manifests_round_trip(
    layers: list[Descriptor], config: Descriptor, subject: Descriptor | None
) -> None:
    parsed = parse_manifest(json.dumps(_manifest_doc(layers, config, subject)).encode(), "m")
    assert parsed.layers == layers
    assert parsed.config == config
    assert parsed.subject == subject


@fuzz
@given(st.lists(descriptors, max_size=5))
def test_valid_indexes_round_trip(entries: list[Descriptor]) -> None:
    doc = {"schemaVersion": 2, "mediaType": INDEX_TYPE, "manifests": [d.to_dict() for d in entries]}
    assert parse_index(json.dumps(doc).encode(), "i") == entries
    assert index_entries(json.dumps(doc).encode(), "i") == [d.to_dict() for d in entries]


_DIGEST_GRAMMAR = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")


def _spec_accepts(doc: dict[str, Any]) -> bool:
    """The OCI image spec's descriptor rules, restated independently of the parser."""
    digest = doc.get("digest")
    if not isinstance(digest, str) or not _DIGEST_GRAMMAR.fullmatch(digest):
        return False
    algorithm, encoded = digest.split(":", 1)
    lengths = {"sha256": 64, "sha512": 128}
    if algorithm in lengths and not (
        len(encoded) == lengths[algorithm] and set(encoded) <= set("0123456789abcdef")
    ):
        return False
    size = doc.get("size")
    notes = doc.get("annotations")
    return (
        isinstance(doc.get("mediaType"), str)
        and type(size) is int
        and size >= 0
        and (
            notes is None
            or (isinstance(notes, dict) and all(isinstance(v, str) for v in notes.values()))
        )
        and (doc.get("artifactType") is None or isinstance(doc.get("artifactType"), str))
    )


@pytest.mark.parametrize("key", DESCRIPTOR_KEYS)
@fuzz
@given(descriptors, field_values | st.just(ABSENT), st.sampled_from(DESCRIPTOR_KEYS), field_values)
def test_a_descriptor_is_accepted_exactly_when_the_spec_allows_it(
    key: str, valid: Descriptor, value: Any, other_key: str, other: Any
) -> None:
    """Field ``key`` replaced by anything or removed; then one more field replaced."""
    doc = valid.to_dict()
    if value is ABSENT:
        doc.pop(key, None)
    else:
        doc[key] = value
    parsed = _parses_or_refuses(parse_descriptor, doc, "fuzz")
    assert (parsed is not None) == _spec_accepts(doc), doc
    if parsed is not None:
        assert parsed.digest == doc["digest"] and parsed.size == doc["size"]
    doc[other_key] = other
    parsed = _parses_or_refuses(parse_descriptor, doc, "fuzz")
    assert (parsed is not None) == _spec_accepts(doc), doc


@fuzz
@given(st.binary(max_size=200), st.binary(max_size=200), st.text(max_size=80))
def test_content_is_accepted_for_a_digest_exactly_when_it_hashes_to_it(
    data: bytes, other: bytes, text: str
) -> None:
    right = {
        "sha256:" + hashlib.sha256(data).hexdigest(),
        "sha512:" + hashlib.sha512(data).hexdigest(),
    }
    for digest in right:
        check_content(data, digest, "c")
    for candidate in (text, "sha256:" + hashlib.sha256(other).hexdigest()):
        if candidate in right:
            continue
        with pytest.raises(RegistryError):
            check_content(data, candidate, "c")
