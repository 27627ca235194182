"""RFC 6962 Merkle tree hashes and inclusion proofs (the algorithm of RFC 9162 §2.1.3.2)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

MAX_PROOF_HASHES = 64
"""A tree of at most 2**64 leaves has proofs of at most 64 hashes."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root a proof leads to from ``leaf`` at ``index`` in a tree of ``size`` leaves.

    ValueError when the proof cannot be one for that index and size (too short, too long,
    index out of range, a hash that is not 32 bytes)."""
    if size <= 0 or not 0 <= index < size:
        raise ValueError(f"index {index} is not in a tree of size {size}")
    if len(proof) > MAX_PROOF_HASHES or any(len(h) != 32 for h in proof):
        raise ValueError("the proof hashes are not 32-byte SHA-256 values")
    fn, sn, node = index, size - 1, leaf
    for sibling in proof:
        if sn == 0:
            raise ValueError("the proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            node = node_hash(sibling, node)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            node = node_hash(node, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ValueError("the proof is shorter than the tree is deep")
    return node


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """ValueError unless ``proof`` shows ``leaf`` at ``index`` in the tree with ``root``."""
    if root_from_inclusion_proof(index, size, leaf, proof) != root:
        raise ValueError("the inclusion proof does not lead to the checkpoint's root hash")
