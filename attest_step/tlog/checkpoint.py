"""C2SP signed notes and the checkpoints they carry (transparency-dev/formats' format).

A signed note is its text (lines, each ending in ``\\n``), one empty line, then one or more
signature lines ``— <name> <base64(4-byte key hash || signature)>\\n``. A checkpoint is a
note whose text is ``<origin>\\n<tree size>\\n<base64 root hash>\\n`` and optional
extension lines. The log's signature is the one whose name is the log's origin and whose
key hash is the log key's; it is over the text, ``\\n`` included.

Key hashes, as rekor-tiles computes them (pkg/note): ECDSA, the first 4 bytes of
SHA-256(SubjectPublicKeyInfo DER); Ed25519, of SHA-256(name || ``\\n`` || 0x01 || key).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

MAX_NOTE = 1 << 16
"""The most a checkpoint note may hold (64 KiB; Rekor's are ~300 bytes)."""
MAX_SIGNATURES = 100
_SIG_PREFIX = "\u2014 "
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,19}")


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_hash: bytes  # 4 bytes
    signature: bytes


@dataclass(frozen=True)
class SignedNote:
    text: str
    signatures: tuple[NoteSignature, ...]


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...]


def _valid_name(name: str) -> bool:
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def parse_note(note: str) -> SignedNote:
    """Split a signed note into text and signatures (ValueError when malformed)."""
    if len(note.encode("utf-8")) > MAX_NOTE:
        raise ValueError(f"the note is larger than {MAX_NOTE} bytes")
    split = note.rfind("\n\n")
    if split < 0:
        raise ValueError("the note has no empty line before its signatures")
    text, sig_block = note[: split + 1], note[split + 2 :]
    if not sig_block.endswith("\n"):
        raise ValueError("the note's last signature line does not end with a newline")
    signatures: list[NoteSignature] = []
    for line in sig_block[:-1].split("\n"):
        if not line.startswith(_SIG_PREFIX):
            raise ValueError("a signature line does not start with '\u2014 '")
        name, sep, b64 = line[len(_SIG_PREFIX) :].partition(" ")
        if not sep or not _valid_name(name) or " " in b64:
            raise ValueError("a signature line is not '\u2014 NAME BASE64'")
        try:
            raw = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError) as err:
            raise ValueError("a note signature is not base64") from err
        if len(raw) < 5:
            raise ValueError("a note signature is shorter than its key hash")
        signatures.append(NoteSignature(name, raw[:4], raw[4:]))
        if len(signatures) > MAX_SIGNATURES:
            raise ValueError(f"the note has more than {MAX_SIGNATURES} signatures")
    return SignedNote(text, tuple(signatures))


def parse_checkpoint(text: str) -> Checkpoint:
    """The checkpoint in a note's text (ValueError when malformed)."""
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise ValueError("the checkpoint has fewer than 3 lines")
    origin, size, root_b64, *extensions = lines[:-1]
    if not origin:
        raise ValueError("the checkpoint's origin line is empty")
    if not _DECIMAL.fullmatch(size) or int(size) >= 1 << 63:
        raise ValueError("the checkpoint's tree size is not a decimal number")
    try:
        root = base64.b64decode(root_b64, validate=True)
    except (binascii.Error, ValueError) as err:
        raise ValueError("the checkpoint's root hash is not base64") from err
    if len(root) != 32:
        raise ValueError("the checkpoint's root hash is not 32 bytes")
    if any(not line for line in extensions):
        raise ValueError("the checkpoint has an empty extension line")
    return Checkpoint(origin, int(size), root, tuple(extensions))


def key_hash(name: str, public_key_der: bytes) -> bytes:
    """The 4-byte key hash a log's signature line carries (module docstring)."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ed25519  # noqa: PLC0415

    key = serialization.load_der_public_key(public_key_der)
    if isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return hashlib.sha256(name.encode() + b"\n\x01" + raw).digest()[:4]
    return hashlib.sha256(public_key_der).digest()[:4]


def _signature_valid(public_key_der: bytes, signature: bytes, message: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature  # noqa: PLC0415
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa  # noqa: PLC0415

    key = serialization.load_der_public_key(public_key_der)
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            # sigstore-go verifies every log key's signatures over SHA-256
            key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        else:
            return False
    except InvalidSignature:
        return False
    return True


def verify_checkpoint(note: str, origin: str, public_key_der: bytes) -> Checkpoint:
    """The checkpoint of ``note`` when the log (``origin``, key) signed it; ValueError else."""
    signed = parse_note(note)
    checkpoint = parse_checkpoint(signed.text)
    if checkpoint.origin != origin:
        raise ValueError(
            f"the checkpoint's origin {checkpoint.origin!r} is not the log's ({origin!r})"
        )
    expected = key_hash(origin, public_key_der)
    message = signed.text.encode("utf-8")
    for sig in signed.signatures:
        if sig.name != origin or sig.key_hash != expected:
            continue
        if _signature_valid(public_key_der, sig.signature, message):
            return checkpoint
        raise ValueError("the checkpoint's signature by the log does not verify")
    raise ValueError(f"the checkpoint has no signature by the log {origin!r}")
