"""The spool: what ``sign``/``attest`` leave on disk and ``push --from DIR`` uploads
(attest_step/oci/spool.py).

Contract: reading any spool directory returns its items or raises AttestStepError; what
write_attestation/write_signature spool reads back byte for byte; ``push --from DIR`` into an
OCI layout exits 0, 1 or 2 with one line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from attest_step.errors import AttestStepError
from attest_step.imageref import parse_image_ref
from attest_step.oci.spool import read_spool, write_attestation, write_signature
from attest_step.oci.types import sha256_digest
from tests.fuzz.support import Scratch, assert_cli_contract, fuzz, json_values, run_cli

IMAGE = parse_image_ref(f"ghcr.io/o/app@sha256:{'e' * 64}")
BLOB = b'{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[]}'

VALID_RECORD: dict[str, Any] = {
    "spoolVersion": 1,
    "kind": "attestation",
    "image": str(IMAGE),
    "blob": "blob.dsse.json",
    "blobDigest": sha256_digest(BLOB),
    "mediaType": "application/vnd.dsse.envelope.v1+json",
    "annotations": {"predicateType": "https://slsa.dev/provenance/v1"},
    "predicateType": "https://slsa.dev/provenance/v1",
    "publicKeyHint": "",
    "created": "2026-01-01T00:00:00Z",
}
FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "spoolVersion": st.sampled_from([0, 2, "1", None]),
    "kind": st.sampled_from(["signature", "signature-bundle", "other", ""]),
    "image": st.text(max_size=30),
    "blob": st.sampled_from(["../outside", "missing", "sub/blob", "", ".", "..", "/etc/hostname"]),
    "blobDigest": st.text(max_size=20),
    "mediaType": st.text(max_size=20),
    "annotations": st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=2),
    "predicateType": st.text(max_size=20),
    "publicKeyHint": st.text(max_size=10),
    "created": st.text(max_size=20),
}


@st.composite
def record_like(draw: st.DrawFn) -> Any:
    """A valid record with one to three fields replaced, removed, or of any JSON type."""
    record = dict(VALID_RECORD)
    for _ in range(draw(st.integers(1, 3))):
        field = draw(st.sampled_from(sorted(FIELD_VALUES)))
        action = draw(st.sampled_from(["value", "any", "remove"]))
        if action == "remove":
            record.pop(field, None)
        else:
            record[field] = draw(FIELD_VALUES[field] if action == "value" else json_values)
    return draw(st.just(record) | json_values)


record_bytes = record_like().map(lambda r: json.dumps(r).encode()) | st.binary(max_size=80)


def _spool(root: Path, records: list[bytes], blob: bytes | None) -> Path:
    root.mkdir(parents=True)
    if blob is not None:
        (root / "blob.dsse.json").write_bytes(blob)
    for number, record in enumerate(records):
        (root / f"item-{number}.oci.json").write_bytes(record)
    return root


@fuzz
@given(
    records=st.lists(record_bytes, min_size=1, max_size=3),
    blob=st.none() | st.just(BLOB) | st.binary(max_size=40),
)
def test_any_spool_reads_or_raises_attest_step_error(
    records: list[bytes], blob: bytes | None, scratch: Scratch
) -> None:
    root = _spool(scratch("spool") / "s", records, blob)
    try:
        items = read_spool(root)
    except AttestStepError:
        return
    for item in items:
        assert item.blob_digest == sha256_digest(item.data)
        assert item.record_path.parent == root


@fuzz
@given(
    envelope=st.builds(
        lambda payload, payload_type, sigs: json.dumps(
            {"payload": payload, "payloadType": payload_type, "signatures": sigs}
        ).encode(),
        st.text(max_size=60),
        st.text(max_size=20),
        st.lists(st.fixed_dictionaries({"sig": st.text(max_size=20)}), max_size=2),
    ),
    predicate_type=st.text(min_size=1, max_size=30),
    payload=st.dictionaries(st.text(max_size=8), st.text(max_size=8)).map(
        lambda doc: json.dumps(doc).encode()
    ),
    signature=st.text(alphabet="ABCDEFabcdef0123456789+/=", min_size=1, max_size=40),
)
def test_spooled_items_read_back_unchanged(
    envelope: bytes,
    predicate_type: str,
    payload: bytes,
    signature: str,
    scratch: Scratch,
) -> None:
    root = scratch("spool")
    write_attestation(root, envelope, IMAGE, predicate_type)
    write_signature(root, payload, signature, IMAGE)
    items = {item.kind: item for item in read_spool(root)}
    assert items["attestation"].data == envelope
    assert items["attestation"].predicate_type == predicate_type
    assert items["signature"].data == payload
    assert items["signature"].image == IMAGE


@fuzz
@given(records=st.lists(record_bytes, min_size=1, max_size=2), blob=st.none() | st.just(BLOB))
def test_push_cli_from_any_spool(
    records: list[bytes], blob: bytes | None, scratch: Scratch
) -> None:
    work = scratch("push")
    root = _spool(work / "s", records, blob)
    result = run_cli(
        [
            "push",
            "--from",
            str(root),
            "--oci-layout",
            str(work / "layout"),
            "--registry-layout",
            "tag",
        ]
    )
    assert_cli_contract(result)


@fuzz
@given(kind=st.sampled_from(["link-outside", "link-inside"]))
def test_blobs_are_only_read_from_regular_files_in_the_spool(kind: str, scratch: Scratch) -> None:
    work = scratch("links")
    secret = work / "secret.txt"
    secret.write_bytes(BLOB)
    root = work / "s"
    root.mkdir()
    write_attestation(root, BLOB, IMAGE, "https://slsa.dev/provenance/v1")
    (blob,) = (p for p in root.iterdir() if not p.name.endswith(".oci.json"))
    blob.rename(root / "real.bin")
    blob.symlink_to(secret if kind == "link-outside" else root / "real.bin")
    try:
        items = read_spool(root)
    except AttestStepError as err:
        assert "link" in str(err), err
        return
    raise AssertionError(f"a symlinked blob was read: {items[0].record_path}")


@pytest.mark.parametrize("annotations", [1, [], "x"])
def test_a_record_with_non_object_annotations_is_refused(annotations: Any, tmp_path: Path) -> None:
    write_attestation(tmp_path, BLOB, IMAGE, "https://slsa.dev/provenance/v1")
    (record_path,) = tmp_path.glob("*.oci.json")
    record = json.loads(record_path.read_bytes())
    record["annotations"] = annotations
    record_path.write_text(json.dumps(record))
    with pytest.raises(AttestStepError, match="annotations"):
        read_spool(tmp_path)
