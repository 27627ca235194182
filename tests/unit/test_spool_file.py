"""Property tests of the spool reader (issue 11, section 6): what ``push --from`` accepts.

Every spool written by attest-step reads back as written; any change to a record or its
blob either still describes exactly what will be uploaded, or is refused in one line.
"""

from __future__ import annotations

import base64
import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attest_step.errors import UsageError
from attest_step.imageref import parse_image_ref
from attest_step.oci.spool import (
    KINDS,
    RECORD_SUFFIX,
    read_spool,
    write_attestation,
    write_signature,
    write_signature_bundle,
)
from attest_step.oci.types import DSSE_TYPE, SIMPLESIGNING_TYPE

_SETTINGS = settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
_MEDIA = {"attestation": DSSE_TYPE, "signature": SIMPLESIGNING_TYPE}

images = st.builds(
    lambda repo, digest: parse_image_ref(f"127.0.0.1:5000/{repo}@sha256:{digest}"),
    st.from_regex(r"[a-z0-9]{1,12}(/[a-z0-9]{1,8}){0,2}", fullmatch=True),
    st.binary(min_size=1, max_size=8).map(lambda b: hashlib.sha256(b).hexdigest()),
)
envelopes = st.builds(
    lambda payload, sig: json.dumps(
        {
            "payloadType": "application/vnd.in-toto+json",
            "payload": base64.b64encode(payload).decode(),
            "signatures": [{"keyid": "", "sig": base64.b64encode(sig).decode()}],
        }
    ).encode(),
    st.binary(max_size=200),
    st.binary(min_size=1, max_size=72),
)
payloads = st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3).map(
    lambda d: json.dumps({"critical": d}).encode()
)
leaves = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10)
)
json_values = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def _write(directory: Path, kind: str, image: Any, data: bytes) -> Path:
    if kind == "attestation":
        return write_attestation(directory, data, image, "https://slsa.dev/provenance/v1")
    if kind == "signature-bundle":
        return write_signature_bundle(directory, data, image)
    return write_signature(directory, data, base64.b64encode(b"sig").decode(), image)


RECORD_FIELDS = [
    *("spoolVersion", "kind", "image", "blob", "blobDigest", "mediaType", "annotations"),
    *("predicateType", "publicKeyHint", "created", "extra"),
]


@st.composite
def spooled(draw: st.DrawFn) -> tuple[str, Any, bytes]:
    kind = draw(st.sampled_from(KINDS))
    data = draw(payloads if kind == "signature" else envelopes)
    return kind, draw(images), data


@_SETTINGS
@given(items=st.lists(spooled(), min_size=1, max_size=4))
def test_what_attest_step_spools_reads_back_unchanged(items: list[tuple[str, Any, bytes]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        expected = {}
        for kind, image, data in items:
            blob = _write(directory, kind, image, data)
            expected[blob.name] = (kind, str(image), data)
        got = read_spool(directory)
        assert {(i.kind, str(i.image), i.data) for i in got} == set(expected.values())
        for item in got:
            assert item.media_type == _MEDIA.get(item.kind, DSSE_TYPE)


def _check_item(item: Any) -> None:
    """What read_spool returns is always what upload may rely on."""
    assert item.kind in KINDS
    assert item.media_type == _MEDIA.get(item.kind, DSSE_TYPE)
    assert isinstance(item.annotations, dict)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in item.annotations.items())
    assert item.predicate_type is None or isinstance(item.predicate_type, str)
    assert isinstance(item.public_key_hint, str) and isinstance(item.created, str)
    assert item.record_path.name.endswith(RECORD_SUFFIX)
    doc = json.loads(item.data)
    assert isinstance(doc, dict)


_ANY_VALUE = st.one_of(
    st.lists(leaves, max_size=3),
    st.dictionaries(st.text(max_size=6), leaves, max_size=3),
    leaves,
    st.just("<delete>"),
    json_values,
)


@pytest.mark.parametrize("field", RECORD_FIELDS)  # hypothesis favours a sampled_from's first
@_SETTINGS
@given(item=spooled(), value=_ANY_VALUE, data=st.data())
def test_an_edited_record_is_read_exactly_or_refused_in_one_line(
    field: str, item: tuple[str, Any, bytes], value: Any, data: st.DataObject
) -> None:
    """One field replaced by any JSON value (or removed), sometimes a second one too."""
    kind, image, blob_bytes = item
    edits = {field: value}
    if data.draw(st.booleans()):
        edits[data.draw(st.sampled_from(RECORD_FIELDS))] = data.draw(_ANY_VALUE)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        blob = _write(directory, kind, image, blob_bytes)
        (record,) = directory.glob(f"*{RECORD_SUFFIX}")
        doc = json.loads(record.read_text())
        for key, new in edits.items():
            if new == "<delete>":
                doc.pop(key, None)
            else:
                doc[key] = new
        record.write_text(json.dumps(doc))
        try:
            (got,) = read_spool(directory)
        except UsageError as err:
            assert "\n" not in str(err) and str(err).startswith("spool ")
            return
        _check_item(got)
        assert got.data == blob.read_bytes()
        assert "sha256:" + hashlib.sha256(got.data).hexdigest() == doc["blobDigest"]


@_SETTINGS
@given(record=st.one_of(st.binary(max_size=300), json_values.map(lambda v: json.dumps(v).encode())))
def test_any_record_bytes_are_refused_in_one_line(record: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / f"x{RECORD_SUFFIX}").write_bytes(record)
        try:
            read_spool(Path(tmp))
        except UsageError as err:
            assert "\n" not in str(err)
        else:
            raise AssertionError("a record without its blob was accepted")
