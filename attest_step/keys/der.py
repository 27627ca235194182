"""Just enough DER to tell PKCS#8 from SEC1/PKCS#1 and to read PKCS#8 v2 Ed25519 keys.

``cryptography`` silently accepts SEC1 and PKCS#1 where cosign insists on PKCS#8, and it
refuses PKCS#8 v2 (OneAsymmetricKey with the public key) Ed25519 keys, which Go reads.
"""

from __future__ import annotations

from typing import NamedTuple

SEQUENCE = 0x30
INTEGER = 0x02
OCTET_STRING = 0x04
OBJECT_IDENTIFIER = 0x06

# DER of OID 1.3.101.112 (id-Ed25519), without tag and length.
ED25519_OID = bytes.fromhex("2b6570")


class DerError(ValueError):
    """The bytes are not the DER structure expected."""


class Tlv(NamedTuple):
    tag: int
    value: bytes
    end: int  # offset just past this element in the buffer it was read from


def read_tlv(data: bytes, offset: int = 0) -> Tlv:
    """Read one definite-length DER element starting at ``offset``."""
    if offset + 2 > len(data):
        raise DerError("truncated element")
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        raise DerError("multi-byte tags are not supported")
    first = data[offset + 1]
    pos = offset + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4:
            raise DerError("indefinite or oversized length")
        if pos + count > len(data):
            raise DerError("truncated length")
        length = int.from_bytes(data[pos : pos + count], "big")
        if length < 0x80 or data[pos] == 0:
            raise DerError("non-minimal length encoding")
        pos += count
    end = pos + length
    if end > len(data):
        raise DerError("truncated value")
    return Tlv(tag, data[pos:end], end)


def children(value: bytes) -> list[Tlv]:
    """The elements inside a constructed value."""
    out: list[Tlv] = []
    pos = 0
    while pos < len(value):
        tlv = read_tlv(value, pos)
        out.append(tlv)
        pos = tlv.end
    return out


class PrivateKeyInfo(NamedTuple):
    version: int
    algorithm_oid: bytes
    private_key: bytes  # content of the privateKey OCTET STRING


def parse_pkcs8(data: bytes) -> PrivateKeyInfo:
    """Check ``data`` is PKCS#8 (v1 or v2) and return its main fields; DerError otherwise."""
    outer = read_tlv(data)
    if outer.tag != SEQUENCE or outer.end != len(data):
        raise DerError("not a single DER SEQUENCE")
    parts = children(outer.value)
    if len(parts) < 3:
        raise DerError("too few elements for PKCS#8")
    version, algorithm, private_key = parts[0], parts[1], parts[2]
    if version.tag != INTEGER or version.value not in (b"\x00", b"\x01"):
        raise DerError("PKCS#8 version must be 0 or 1")
    if algorithm.tag != SEQUENCE:
        raise DerError("second element is not an AlgorithmIdentifier (SEC1 or PKCS#1?)")
    if private_key.tag != OCTET_STRING:
        raise DerError("third element is not an OCTET STRING")
    alg_parts = children(algorithm.value)
    if not alg_parts or alg_parts[0].tag != OBJECT_IDENTIFIER:
        raise DerError("AlgorithmIdentifier has no OID")
    return PrivateKeyInfo(version.value[0], alg_parts[0].value, private_key.value)


def ed25519_seed(info: PrivateKeyInfo) -> bytes:
    """The 32-byte seed of an Ed25519 PKCS#8 key (CurvePrivateKey is an OCTET STRING)."""
    if info.algorithm_oid != ED25519_OID:
        raise DerError("not an Ed25519 key")
    inner = read_tlv(info.private_key)
    if inner.tag != OCTET_STRING or inner.end != len(info.private_key) or len(inner.value) != 32:
        raise DerError("Ed25519 private key is not a 32-byte OCTET STRING")
    return inner.value
