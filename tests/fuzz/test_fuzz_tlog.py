"""The transparency-log parsers (attest_step/tlog/): inclusion proofs, signed-note
checkpoints, TrustedRoot documents and TransparencyLogEntry objects, all outside input.

Contract: any input parses or raises ValueError (never another exception); a proof built
for any leaf of any tree (by the straightforward RFC 6962 definition, restated here)
verifies, and one changed hash, index or size does not; a checkpoint signed by the log
verifies, and one changed byte of it does not.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import assume, given
from hypothesis import strategies as st

from attest_step.tlog import checkpoint, entry, merkle, trustedroot
from tests.fuzz.support import edits, fuzz, json_values, mutate

# ------------------------------------------------------------------ Merkle trees (RFC 6962 §2.1)


def _mth(leaves: list[bytes]) -> bytes:
    if len(leaves) == 1:
        return merkle.leaf_hash(leaves[0])
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return merkle.node_hash(_mth(leaves[:k]), _mth(leaves[k:]))


def _path(index: int, leaves: list[bytes]) -> list[bytes]:
    if len(leaves) == 1:
        return []
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    if index < k:
        return [*_path(index, leaves[:k]), _mth(leaves[k:])]
    return [*_path(index - k, leaves[k:]), _mth(leaves[:k])]


trees = st.lists(st.binary(max_size=8), min_size=1, max_size=40)


@fuzz
@given(trees, st.data())
def test_every_leaf_of_any_tree_has_a_proof_that_verifies(leaves: list[bytes], data: Any) -> None:
    index = data.draw(st.integers(0, len(leaves) - 1))
    root, proof = _mth(leaves), _path(index, leaves)
    merkle.verify_inclusion(index, len(leaves), merkle.leaf_hash(leaves[index]), proof, root)


@fuzz
@given(trees, st.data())
def test_a_changed_proof_does_not_verify(leaves: list[bytes], data: Any) -> None:
    index = data.draw(st.integers(0, len(leaves) - 1))
    root, proof = _mth(leaves), _path(index, leaves)
    leaf = merkle.leaf_hash(leaves[index])
    change = data.draw(st.sampled_from(["hash", "index", "size", "drop", "add"]))
    size = len(leaves)
    if change == "hash":
        assume(proof)
        at = data.draw(st.integers(0, len(proof) - 1))
        proof[at] = bytes([proof[at][0] ^ 1]) + proof[at][1:]
    elif change == "index":
        other = data.draw(st.integers(0, size - 1))
        assume(other != index and leaves[other] != leaves[index])
        index = other
    elif change == "size":
        other = data.draw(st.integers(1, 64))
        assume(other != size)
        size = other
    elif change == "drop":
        assume(proof)
        proof = proof[:-1]
    else:
        proof = [*proof, hashlib.sha256(b"extra").digest()]
    with pytest.raises(ValueError):
        merkle.verify_inclusion(index, size, leaf, proof, root)


@fuzz
@given(
    st.integers(-5, 1 << 70),
    st.integers(-5, 1 << 70),
    st.lists(st.binary(min_size=0, max_size=40), max_size=70),
)
def test_any_proof_gives_a_root_or_value_error(index: int, size: int, proof: list[bytes]) -> None:
    try:
        root = merkle.root_from_inclusion_proof(index, size, b"\x00" * 32, proof)
    except ValueError:
        return
    assert len(root) == 32


# ------------------------------------------------------------------ checkpoints (signed notes)

_KEY = ec.generate_private_key(ec.SECP256R1())
_DER = _KEY.public_key().public_bytes(
    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
)
ORIGIN = "log.example"


def _note(text: str, name: str = ORIGIN) -> str:
    sig = _KEY.sign(text.encode(), ec.ECDSA(hashes.SHA256()))
    blob = base64.b64encode(checkpoint.key_hash(name, _DER) + sig).decode()
    return f"{text}\n\u2014 {name} {blob}\n"


def _checkpoint_text(size: int, root: bytes, extensions: list[str]) -> str:
    lines = [ORIGIN, str(size), base64.b64encode(root).decode(), *extensions]
    return "".join(line + "\n" for line in lines)


extension_lines = st.lists(
    st.text(st.characters(blacklist_characters="\n", blacklist_categories=["Cs"]), min_size=1),
    max_size=3,
)


@fuzz
@given(st.integers(0, (1 << 63) - 1), st.binary(min_size=32, max_size=32), extension_lines)
def test_signed_checkpoints_verify_and_round_trip(
    size: int, root: bytes, extensions: list[str]
) -> None:
    note = _note(_checkpoint_text(size, root, extensions))
    point = checkpoint.verify_checkpoint(note, ORIGIN, _DER)
    assert (point.origin, point.size, point.root_hash) == (ORIGIN, size, root)
    assert list(point.extensions) == extensions


@fuzz
@given(st.integers(0, 1 << 40), st.binary(min_size=32, max_size=32), edits)
def test_a_changed_checkpoint_does_not_verify(size: int, root: bytes, changes: Any) -> None:
    note = _note(_checkpoint_text(size, root, []))
    changed = mutate(note.encode(), changes).decode("utf-8", "replace")
    assume(changed != note)
    try:
        checkpoint.verify_checkpoint(changed, ORIGIN, _DER)
    except ValueError:
        return
    # Only a different spelling of the same signed bytes may pass (base64's unused bits)
    assert checkpoint.parse_note(changed) == checkpoint.parse_note(note)


def test_a_checkpoint_signed_for_another_origin_does_not_verify() -> None:
    text = _checkpoint_text(3, b"\x01" * 32, []).replace(ORIGIN, "other.example", 1)
    with pytest.raises(ValueError, match="origin"):
        checkpoint.verify_checkpoint(_note(text, "other.example"), ORIGIN, _DER)


@fuzz
@given(st.text(max_size=300))
def test_any_note_parses_or_raises_value_error(text: str) -> None:
    try:
        note = checkpoint.parse_note(text)
        checkpoint.parse_checkpoint(note.text)
    except ValueError:
        return


# ------------------------------------------------------------------ trusted roots and entries

VALID_ROOT: dict[str, Any] = {
    "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
    "tlogs": [
        {
            "baseUrl": f"http://{ORIGIN}:3000",
            "hashAlgorithm": "SHA2_256",
            "publicKey": {"rawBytes": base64.b64encode(_DER).decode()},
            "logId": {"keyId": base64.b64encode(hashlib.sha256(_DER).digest()).decode()},
        }
    ],
}


def test_a_trusted_root_names_its_logs_origin_from_the_base_url() -> None:
    [log] = trustedroot.parse_trusted_root(json.dumps(VALID_ROOT).encode())
    assert (log.origin, log.public_key_der) == (ORIGIN, _DER)


@fuzz
@given(st.sampled_from(["mediaType", "tlogs", "baseUrl", "publicKey", "logId"]), json_values)
def test_any_trusted_root_parses_or_raises_value_error(field: str, value: Any) -> None:
    doc = json.loads(json.dumps(VALID_ROOT))
    if field in ("mediaType", "tlogs"):
        doc[field] = value
    else:
        doc["tlogs"][0][field] = value
    try:
        trustedroot.parse_trusted_root(json.dumps(doc).encode())
    except ValueError:
        return


ENVELOPE = {"payloadType": "text/plain", "payload": "aGk=", "signatures": [{"sig": "AAAA"}]}
ENTRY_FIELDS = ["logIndex", "logId", "kindVersion", "inclusionProof", "canonicalizedBody"]


@fuzz
@given(st.dictionaries(st.sampled_from(ENTRY_FIELDS), json_values, max_size=5))
def test_any_entry_is_refused_with_value_error(doc: dict[str, Any]) -> None:
    logs = trustedroot.parse_trusted_root(json.dumps(VALID_ROOT).encode())
    with pytest.raises(ValueError):
        entry.verify_entry(doc, ENVELOPE, logs)
    with pytest.raises(ValueError):
        entry.verify_any_entry([doc], ENVELOPE, logs)
