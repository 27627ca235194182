"""The spool: what ``sign``/``attest`` leave on disk and ``push --from DIR`` uploads
(attest_step/oci/spool.py).

Contract: reading any spool directory returns its items or raises AttestStepError; what
write_attestation/write_signature spool reads back byte for byte; ``push --from DIR`` into an
OCI layout exits 0, 1 or 2 with one line.
"""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from attest_step.errors import AttestStepError
from attest_step.imageref import parse_image_ref
from attest_step.oci.spool import read_spool, write_attestation, write_signature
from attest_step.oci.types import sha256_digest
from tests.fuzz.support import Scratch, assert_cli_contract, fuzz, json_values, run_cli

IMAGE = parse_image_ref(f"ghcr.io/o/app@sha256:{'e' * 64}")
BLOB = b'{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[]}'

record_like = st.fixed_dictionaries(
    {},
    optional={
        "spoolVersion": st.just(1) | json_values,
        "kind": st.sampled_from(["attestation", "signature", "signature-bundle"]) | json_values,
        "image": st.just(str(IMAGE)) | st.text(max_size=30) | json_values,
        "blob": st.sampled_from(["blob.dsse.json", "../outside", "missing", "sub/blob"])
        | json_values,
        "blobDigest": st.just(sha256_digest(BLOB)) | json_values,
        "mediaType": st.text(max_size=20) | json_values,
        "annotations": st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=2)
        | json_values,
        "predicateType": st.text(max_size=20) | json_values,
        "publicKeyHint": st.text(max_size=10) | json_values,
        "created": st.text(max_size=20) | json_values,
    },
)
record_bytes = record_like.map(lambda r: json.dumps(r).encode()) | st.binary(max_size=80)


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
    envelope=st.binary(min_size=1, max_size=300),
    predicate_type=st.text(min_size=1, max_size=30),
    payload=st.binary(min_size=1, max_size=200),
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
