"""Strict parsers for what a registry (or an OCI layout directory) serves: image manifests,
indexes (the referrers API answer and its fallback tag are indexes), descriptors and tag
lists; and the check that content fetched by digest is the content of that digest.

Everything here is outside input: anything that is not the document it should be raises a
one-line :class:`~attest_step.errors.RegistryError` naming ``what`` was read (exit 2),
never another exception. Fields this project does not use are not checked; fields it uses
must have the type the OCI image spec gives them (a ``size`` is a non-negative integer,
annotations map strings to strings, a digest is ``algorithm:encoded``).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, NamedTuple

from attest_step.errors import RegistryError
from attest_step.oci.types import (
    DOCKER_LIST_TYPE,
    DOCKER_MANIFEST_TYPE,
    INDEX_TYPE,
    MANIFEST_TYPE,
    Descriptor,
)

# The OCI image spec's digest grammar; sha256 and sha512 are the registered algorithms.
_DIGEST = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
_ENCODED = {"sha256": re.compile(r"[a-f0-9]{64}"), "sha512": re.compile(r"[a-f0-9]{128}")}
INDEX_TYPES = frozenset({INDEX_TYPE, DOCKER_LIST_TYPE})
MANIFEST_TYPES = frozenset({MANIFEST_TYPE, DOCKER_MANIFEST_TYPE})


class ImageManifest(NamedTuple):
    """The fields of an image manifest this project reads."""

    media_type: str | None
    config: Descriptor
    layers: list[Descriptor]
    subject: Descriptor | None
    annotations: dict[str, str]
    artifact_type: str | None


def _bad(what: str, why: str) -> RegistryError:
    return RegistryError(f"{what}: {why}, so it is not a valid OCI document")


def json_object(data: bytes, what: str) -> dict[str, Any]:
    """``data`` as a JSON object."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as err:
        raise _bad(what, f"not JSON ({type(err).__name__})") from err
    if not isinstance(doc, dict):
        raise _bad(what, f"a JSON {type(doc).__name__}, not an object")
    return doc


def check_digest_syntax(digest: Any, what: str) -> str:
    """``digest`` if it is an OCI digest string (sha256/sha512 with the right length)."""
    if not isinstance(digest, str) or _DIGEST.fullmatch(digest) is None:
        raise _bad(what, f"digest {_show(digest)} is not algorithm:hex")
    algorithm, _, encoded = digest.partition(":")
    pattern = _ENCODED.get(algorithm)
    if pattern is not None and pattern.fullmatch(encoded) is None:
        raise _bad(what, f"digest {_show(digest)} is not a valid {algorithm} digest")
    return digest


def _string(doc: dict[str, Any], key: str, what: str, *, required: bool = False) -> str | None:
    value = doc.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise _bad(what, f"{key} is {_show(value)}, not a string")
    return value


def _annotations(doc: dict[str, Any], what: str) -> dict[str, str]:
    value = doc.get("annotations")
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise _bad(what, "annotations are not a map of strings")
    return dict(value)


def parse_descriptor(obj: Any, what: str) -> Descriptor:
    """An OCI descriptor: ``mediaType``, ``digest`` and ``size`` are required."""
    if not isinstance(obj, dict):
        raise _bad(what, f"a descriptor is {_show(obj)}, not an object")
    media_type = _string(obj, "mediaType", what, required=True)
    digest = check_digest_syntax(obj.get("digest"), what)
    size = obj.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _bad(what, f"size {_show(size)} of {digest} is not a non-negative integer")
    assert media_type is not None
    return Descriptor(
        media_type,
        digest,
        size,
        _annotations(obj, what),
        _string(obj, "artifactType", what),
    )


def _schema_version(doc: dict[str, Any], what: str) -> None:
    version = doc.get("schemaVersion")
    if version != 2 or isinstance(version, bool):
        raise _bad(what, f"schemaVersion is {_show(version)}, not 2")


def _list(doc: dict[str, Any], key: str, what: str) -> list[Any]:
    value = doc.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _bad(what, f"{key} is {_show(value)}, not a list")
    return value


def parse_manifest(data: bytes, what: str) -> ImageManifest:
    """An OCI (or Docker schema 2) image manifest."""
    doc = json_object(data, what)
    _schema_version(doc, what)
    media_type = _string(doc, "mediaType", what)
    if media_type is not None and media_type not in MANIFEST_TYPES:
        raise _bad(what, f"mediaType {_show(media_type)} is not an image manifest")
    subject = doc.get("subject")
    return ImageManifest(
        media_type=media_type,
        config=parse_descriptor(doc.get("config"), f"{what} config"),
        layers=[parse_descriptor(d, f"{what} layer") for d in _list(doc, "layers", what)],
        subject=None if subject is None else parse_descriptor(subject, f"{what} subject"),
        annotations=_annotations(doc, what),
        artifact_type=_string(doc, "artifactType", what),
    )


def index_entries(data: bytes, what: str) -> list[dict[str, Any]]:
    """The ``manifests`` of an OCI index (or Docker manifest list) as they were served,
    each checked to be a valid descriptor (for read-modify-write, which keeps every field)."""
    doc = json_object(data, what)
    _schema_version(doc, what)
    media_type = _string(doc, "mediaType", what)
    if media_type is not None and media_type not in INDEX_TYPES:
        raise _bad(what, f"mediaType {_show(media_type)} is not an index")
    entries = _list(doc, "manifests", what)
    for entry in entries:
        parse_descriptor(entry, f"{what} entry")
    return entries


def parse_index(data: bytes, what: str) -> list[Descriptor]:
    """The ``manifests`` of an OCI index (or Docker manifest list) as descriptors."""
    return [parse_descriptor(d, f"{what} entry") for d in index_entries(data, what)]


def parse_tag_list(data: bytes, what: str) -> list[str]:
    """The ``tags`` of a ``/tags/list`` answer (``null`` or absent: none)."""
    tags = _list(json_object(data, what), "tags", what)
    if not all(isinstance(t, str) for t in tags):
        raise _bad(what, "tags are not strings")
    return tags


def check_content(data: bytes, digest: str, what: str) -> None:
    """Refuse ``data`` unless it is the content of ``digest`` (sha256 or sha512)."""
    check_digest_syntax(digest, what)
    algorithm, _, encoded = digest.partition(":")
    if algorithm not in _ENCODED:
        raise _bad(what, f"digest algorithm {algorithm!r} is not supported (sha256, sha512)")
    actual = hashlib.new(algorithm, data).hexdigest()
    if actual != encoded:
        raise RegistryError(
            f"{what}: the content served does not match its digest (got {algorithm}:"
            f"{actual}); the registry or something between is corrupting or substituting it"
        )


def _show(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, str | int | float | bool | None) else None
    if text is None:
        return f"a JSON {type(value).__name__}"
    return text if len(text) <= 80 else f"{text[:77]}..."
