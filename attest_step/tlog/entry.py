"""Check a Rekor v2 TransparencyLogEntry (protobuf JSON, as a bundle's ``tlogEntries[]``
holds it) against the DSSE envelope it should log and the logs of a trusted root.

An entry counts when, as sigstore-go checks it for cosign v3:
1. its ``logId.keyId`` names a log of the trusted root;
2. its checkpoint (``inclusionProof.checkpoint.envelope``) is signed by that log's key,
   with the log's origin (the hostname of its ``baseUrl``);
3. its inclusion proof leads from the leaf hash of its ``canonicalizedBody`` at
   ``logIndex`` to the checkpoint's root hash, for the checkpoint's tree size;
4. that body is, byte for byte, the ``hashedrekord`` v0.0.2 entry of this envelope (the
   digest of its PAE, its signature) with the body's key, and that key verifies the
   envelope's signature. (The caller checks the signature with the key it trusts.)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from attest_step.decode import b64_field
from attest_step.errors import AttestStepError
from attest_step.tlog import checkpoint, hashedrekord, merkle
from attest_step.tlog.trustedroot import TrustedLog

MAX_ENTRIES = 32
"""The most transparency-log entries one bundle may carry (sigstore-go's limit)."""


@dataclass(frozen=True)
class VerifiedEntry:
    log: str  # the log's baseUrl
    log_index: int
    tree_size: int

    def to_dict(self) -> dict[str, Any]:
        return {"log": self.log, "logIndex": self.log_index, "treeSize": self.tree_size}


def _obj(doc: Any, key: str) -> dict[str, Any]:
    value = doc.get(key) if isinstance(doc, dict) else None
    if not isinstance(value, dict):
        raise ValueError(f"{key} is missing")
    return value


def _int(value: Any, what: str) -> int:
    # protobuf JSON writes int64 as a decimal string (a JSON integer is accepted too) and
    # leaves out a field at its default, 0 (cosign does, for the log's first entry)
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.isdigit() and len(value) <= 20:
        number = int(value)
    else:
        raise ValueError(f"{what} is not a number")
    if not 0 <= number < 1 << 63:
        raise ValueError(f"{what} is out of range")
    return number


def _body_key(body: bytes) -> bytes:
    try:
        doc = json.loads(body)
    except ValueError as err:
        raise ValueError("canonicalizedBody is not JSON") from err
    if not isinstance(doc, dict) or doc.get("kind") != hashedrekord.KIND:
        raise ValueError("the entry is not a hashedrekord")
    spec = _obj(_obj(doc, "spec"), "hashedRekordV002")
    verifier = _obj(_obj(spec, "signature"), "verifier")
    return b64_field(_obj(verifier, "publicKey").get("rawBytes"), "the entry's public key")


def _check_body(body: bytes, envelope: dict[str, Any]) -> None:
    from cryptography.exceptions import UnsupportedAlgorithm  # noqa: PLC0415

    key_der = _body_key(body)
    try:
        signed = hashedrekord.of_envelope(envelope, key_der)
    except (AttestStepError, UnsupportedAlgorithm) as err:
        raise ValueError(f"the entry's key cannot be used: {err}") from err
    if hashedrekord.canonical_body(signed) != body:
        raise ValueError("the entry does not log this envelope's signature and PAE digest")
    if not _signature_valid(signed):
        raise ValueError("the entry's key does not verify the envelope's signature")


def _signature_valid(signed: hashedrekord.SignedDigest) -> bool:
    from cryptography.exceptions import InvalidSignature  # noqa: PLC0415
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils  # noqa: PLC0415

    algorithm = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}[
        signed.algorithm.hash_name
    ]
    prehashed = utils.Prehashed(algorithm)
    key = serialization.load_der_public_key(signed.public_key_der)
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signed.signature, signed.digest, ec.ECDSA(prehashed))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signed.signature, signed.digest, padding.PKCS1v15(), prehashed)
        else:
            return False
    except InvalidSignature:
        return False
    return True


@dataclass(frozen=True)
class _Parsed:
    log_id: bytes
    body: bytes
    index: int
    note: str
    tree_size: int
    root_hash: bytes
    path: list[bytes]


def _parse(entry: Any) -> _Parsed:
    if not isinstance(entry, dict):
        raise ValueError("the entry is not an object")
    log_id = b64_field(_obj(entry, "logId").get("keyId"), "logId.keyId")
    kind = _obj(entry, "kindVersion")
    if (kind.get("kind"), kind.get("version")) != (hashedrekord.KIND, hashedrekord.API_VERSION):
        raise ValueError("the entry is not a Rekor v2 hashedrekord v0.0.2")
    body = b64_field(entry.get("canonicalizedBody"), "canonicalizedBody")
    proof = _obj(entry, "inclusionProof")
    index = _int(entry.get("logIndex"), "logIndex")
    if _int(proof.get("logIndex"), "inclusionProof.logIndex") != index:
        raise ValueError("the inclusion proof is for another log index")
    note = _obj(proof, "checkpoint").get("envelope")
    if not isinstance(note, str):
        raise ValueError("the inclusion proof has no checkpoint")
    hashes = proof.get("hashes") or []
    if not isinstance(hashes, list) or len(hashes) > merkle.MAX_PROOF_HASHES:
        raise ValueError("inclusionProof.hashes is not a list of hashes")
    return _Parsed(
        log_id=log_id,
        body=body,
        index=index,
        note=note,
        tree_size=_int(proof.get("treeSize"), "inclusionProof.treeSize"),
        root_hash=b64_field(proof.get("rootHash"), "inclusionProof.rootHash"),
        path=[b64_field(h, "an inclusion proof hash") for h in hashes],
    )


def check_response(entry: Any, envelope: dict[str, Any]) -> None:
    """What a signer can check of the log's answer without the log's key: the entry logs
    this envelope, and its inclusion proof leads to the root hash it states (ValueError)."""
    parsed = _parse(entry)
    leaf = merkle.leaf_hash(parsed.body)
    merkle.verify_inclusion(parsed.index, parsed.tree_size, leaf, parsed.path, parsed.root_hash)
    _check_body(parsed.body, envelope)


def verify_entry(entry: Any, envelope: dict[str, Any], logs: Sequence[TrustedLog]) -> VerifiedEntry:
    """The checked entry; ValueError saying which check failed."""
    parsed = _parse(entry)
    log = next((item for item in logs if item.log_id == parsed.log_id), None)
    if log is None:
        raise ValueError("the entry's log is not in the trusted root")
    point = checkpoint.verify_checkpoint(parsed.note, log.origin, log.public_key_der)
    if parsed.tree_size != point.size or parsed.root_hash != point.root_hash:
        raise ValueError("the inclusion proof's tree is not the checkpoint's")
    leaf = merkle.leaf_hash(parsed.body)
    merkle.verify_inclusion(parsed.index, point.size, leaf, parsed.path, point.root_hash)
    _check_body(parsed.body, envelope)
    return VerifiedEntry(log.base_url, parsed.index, point.size)


def verify_any_entry(
    entries: Any, envelope: dict[str, Any], logs: Sequence[TrustedLog]
) -> VerifiedEntry:
    """The first of a bundle's ``tlogEntries`` that verifies; ValueError naming why none did."""
    if not isinstance(entries, list) or not entries:
        raise ValueError("the bundle has no transparency log entry")
    if len(entries) > MAX_ENTRIES:
        raise ValueError(f"the bundle has more than {MAX_ENTRIES} transparency log entries")
    reasons: list[str] = []
    for entry in entries:
        try:
            return verify_entry(entry, envelope, logs)
        except ValueError as err:
            reasons.append(str(err))
    raise ValueError("; ".join(sorted(set(reasons))))


def require_entry(
    entries: Any, envelope: dict[str, Any], logs: Sequence[TrustedLog], source: str
) -> VerifiedEntry:
    """:func:`verify_any_entry` for a verifier: a one-line VerificationError when no entry
    verifies, or when the envelope did not come from a bundle (``source``: "bundle", "tag"
    for a ``.att``/``.sig`` layer, "file" for ``--envelope``: they carry none)."""
    from attest_step.errors import VerificationError  # noqa: PLC0415

    if source != "bundle":
        what = "a DSSE envelope file" if source == "file" else "a .att/.sig tag layer"
        raise VerificationError(
            f"no transparency log entry: {what} carries none (only Sigstore bundles do)"
        )
    try:
        return verify_any_entry(entries, envelope, logs)
    except ValueError as err:
        raise VerificationError(f"transparency log: {err}") from err
