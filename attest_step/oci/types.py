"""Media types, annotation keys and descriptors of the layouts cosign reads."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST_TYPE = "application/vnd.docker.distribution.manifest.list.v2+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_JSON = b"{}"

SIMPLESIGNING_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE_TYPE = "application/vnd.dsse.envelope.v1+json"
BUNDLE_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
BUNDLE_TYPE_PREFIX = "application/vnd.dev.sigstore.bundle"

SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION = "dev.sigstore.cosign/chain"
PREDICATE_TYPE_ANNOTATION = "predicateType"
BUNDLE_CONTENT_ANNOTATION = "dev.sigstore.bundle.content"
BUNDLE_PREDICATE_ANNOTATION = "dev.sigstore.bundle.predicateType"
CREATED_ANNOTATION = "org.opencontainers.image.created"

COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"

MANIFEST_ACCEPT = ", ".join([MANIFEST_TYPE, INDEX_TYPE, DOCKER_MANIFEST_TYPE, DOCKER_LIST_TYPE])


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def compact_json(obj: Any) -> bytes:
    """JSON without spaces, keys in insertion order (the order Go structs marshal)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def tag_for(digest: str, suffix: str = "") -> str:
    """``sha256:<hex>`` -> ``sha256-<hex><suffix>`` (cosign's tag scheme)."""
    algorithm, _, hexpart = digest.partition(":")
    return f"{algorithm}-{hexpart}{suffix}"


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict)
    artifact_type: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest}
        out["size"] = self.size
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        return out

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Descriptor:
        return cls(
            media_type=str(doc.get("mediaType", "")),
            digest=str(doc.get("digest", "")),
            size=int(doc.get("size", 0)),
            annotations={str(k): str(v) for k, v in (doc.get("annotations") or {}).items()},
            artifact_type=doc.get("artifactType"),
        )
