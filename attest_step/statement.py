"""Strict parsing of an in-toto Statement, as cosign's protojson parser reads it.

Only ``_type``, ``subject``, ``predicateType`` and ``predicate`` may appear at the top level,
and a subject may only carry the ResourceDescriptor fields. Duplicate JSON keys are refused:
parsers disagree on which one wins, and protojson rejects them.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from attest_step.errors import UsageError, VerificationError
from attest_step.model import Subject

STATEMENT_TYPES = ("https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1")
"""v1 is what ``attest`` writes; cosign still writes v0.1 and never checks ``_type``."""

PREDICATE_TYPES: dict[str, str] = {
    "custom": "https://cosign.sigstore.dev/attestation/v1",
    "slsaprovenance": "https://slsa.dev/provenance/v0.2",
    "slsaprovenance02": "https://slsa.dev/provenance/v0.2",
    "slsaprovenance1": "https://slsa.dev/provenance/v1",
    "spdx": "https://spdx.dev/Document",
    "spdxjson": "https://spdx.dev/Document",
    "cyclonedx": "https://cyclonedx.org/bom",
    "link": "https://in-toto.io/Link/v1",
    "vuln": "https://cosign.sigstore.dev/attestation/vuln/v1",
    "openvex": "https://openvex.dev/ns",
}
"""cosign's ``--type`` names (sigstore/cosign options/predicate.go)."""

_TOP_LEVEL = frozenset({"_type", "subject", "predicateType", "predicate"})
_DESCRIPTOR_STRINGS = frozenset({"name", "uri", "downloadLocation", "mediaType"})
_DESCRIPTOR_FIELDS = _DESCRIPTOR_STRINGS | {"digest", "content", "annotations"}
_HEX_LENGTHS = {"sha1": 40, "sha224": 56, "sha256": 64, "sha384": 96, "sha512": 128}
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s]+$")


def predicate_type_uri(name: str) -> str:
    """Map a cosign ``--type`` name to its URI; any other absolute URI is used literally."""
    uri = PREDICATE_TYPES.get(name)
    if uri is not None:
        return uri
    if _URI.fullmatch(name) is None:
        names = "|".join(PREDICATE_TYPES)
        raise UsageError(f"--type: {name!r} is neither one of {names} nor an absolute URI")
    return name


@dataclass(frozen=True)
class Statement:
    """A parsed statement; ``raw`` is the JSON object exactly as decoded."""

    type: str
    subjects: tuple[Subject, ...]
    predicate_type: str
    predicate: dict[str, Any]
    raw: dict[str, Any]


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise VerificationError(f"statement: the JSON key {key!r} appears twice")
        out[key] = value
    return out


def _reject_constant(name: str) -> Any:
    raise VerificationError(f"statement: {name} is not valid JSON")


def load_json_strict(data: bytes, *, what: str) -> Any:
    """Decode UTF-8 JSON, refusing duplicate keys and NaN/Infinity."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise VerificationError(f"{what}: not UTF-8 ({err.reason})") from err
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except json.JSONDecodeError as err:
        raise VerificationError(f"{what}: not valid JSON ({err.msg} at {err.pos})") from err
    except RecursionError as err:
        raise VerificationError(f"{what}: JSON nested too deeply") from err


def _check_digest(digest: object, where: str) -> dict[str, str]:
    if not isinstance(digest, dict) or not digest:
        raise VerificationError(f"statement: {where} needs a non-empty digest object")
    for alg, value in digest.items():
        if not isinstance(value, str) or not value:
            raise VerificationError(f"statement: {where} digest {alg!r} is not a string")
        expected = _HEX_LENGTHS.get(alg)
        if expected is not None and re.fullmatch(rf"[0-9a-f]{{{expected}}}", value) is None:
            raise VerificationError(
                f"statement: {where} digest {alg!r} is not {expected} lowercase hex digits"
            )
    return dict(digest)


def check_descriptor(item: object, where: str, *, digest_required: bool) -> dict[str, Any]:
    """Check one ResourceDescriptor: known fields only, each of the right JSON type."""
    if not isinstance(item, dict):
        raise VerificationError(f"statement: {where} is not a JSON object")
    unknown = sorted(set(item) - _DESCRIPTOR_FIELDS)
    if unknown:
        raise VerificationError(f"statement: {where} has unknown field(s) {', '.join(unknown)}")
    for key in _DESCRIPTOR_STRINGS & set(item):
        if not isinstance(item[key], str):
            raise VerificationError(f"statement: {where} {key} is not a string")
    if "annotations" in item and not isinstance(item["annotations"], dict):
        raise VerificationError(f"statement: {where} annotations is not a JSON object")
    if "content" in item:
        content = item["content"]
        try:
            if not isinstance(content, str):
                raise TypeError
            base64.b64decode(content, validate=True)
        except (TypeError, binascii.Error, ValueError) as err:
            raise VerificationError(f"statement: {where} content is not base64") from err
    if "digest" in item or digest_required:
        _check_digest(item.get("digest"), where)
    if not (item.get("name") or item.get("uri") or item.get("digest")):
        raise VerificationError(f"statement: {where} needs a name, uri or digest")
    return item


def parse_statement(payload: bytes) -> Statement:
    """Parse and check a DSSE payload as an in-toto Statement; raise VerificationError."""
    data = load_json_strict(payload, what="statement")
    if not isinstance(data, dict):
        raise VerificationError("statement: the payload is not a JSON object")
    unknown = sorted(set(data) - _TOP_LEVEL)
    if unknown:
        raise VerificationError(
            f"statement: unknown top-level field(s) {', '.join(unknown)} "
            "(cosign accepts only _type, subject, predicateType, predicate)"
        )
    missing = sorted(_TOP_LEVEL - set(data))
    if missing:
        raise VerificationError(f"statement: missing field(s) {', '.join(missing)}")
    type_ = data["_type"]
    if type_ not in STATEMENT_TYPES:
        raise VerificationError(f"statement: _type {type_!r} is not an in-toto Statement type")
    predicate_type = data["predicateType"]
    if not isinstance(predicate_type, str) or _URI.fullmatch(predicate_type) is None:
        raise VerificationError("statement: predicateType is not a URI string")
    predicate = data["predicate"]
    if not isinstance(predicate, dict):
        raise VerificationError("statement: predicate is not a JSON object")
    raw_subjects = data["subject"]
    if not isinstance(raw_subjects, list) or not raw_subjects:
        raise VerificationError("statement: subject must be a non-empty list")
    subjects = []
    for index, item in enumerate(raw_subjects):
        where = f"subject[{index}]"
        checked = check_descriptor(item, where, digest_required=True)
        subjects.append(
            Subject(
                name=checked.get("name", ""),
                digest=dict(checked["digest"]),
                annotations={
                    key: value
                    for key, value in checked.get("annotations", {}).items()
                    if isinstance(value, str)
                },
            )
        )
    return Statement(
        type=type_,
        subjects=tuple(subjects),
        predicate_type=predicate_type,
        predicate=predicate,
        raw=data,
    )
