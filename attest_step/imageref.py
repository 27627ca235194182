"""Image references pinned by digest: ``registry/repository[:tag]@sha256:<hex>``."""

from __future__ import annotations

import re
from typing import NamedTuple

from attest_step.digests import parse_sha256_digest
from attest_step.errors import UsageError

DOCKER_HUB = "index.docker.io"

# The distribution/reference grammar, as go-containerregistry and Chains apply it.
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_REGISTRY = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?"
)
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_MAX_NAME = 255


class ImageRef(NamedTuple):
    """An image in a registry, identified by the digest of its manifest or index."""

    registry: str
    """Host and optional port, e.g. ``127.0.0.1:5000`` or ``ghcr.io``."""
    repository: str
    """Path inside the registry, e.g. ``org/app`` (``library/x`` on Docker Hub)."""
    digest: str
    """``sha256:<hex>``."""
    tag: str | None = None

    @property
    def name(self) -> str:
        """``registry/repository``: the subject name Tekton Chains and cosign use."""
        return f"{self.registry}/{self.repository}"

    @property
    def hex(self) -> str:
        return self.digest.split(":", 1)[1]

    def __str__(self) -> str:
        return f"{self.name}@{self.digest}"


def _split_registry(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    # Docker Hub short names, as go-containerregistry normalises them.
    repo = name if "/" in name else f"library/{name}"
    return DOCKER_HUB, repo


def parse_image_ref(value: str, *, what: str = "--image") -> ImageRef:
    """Parse ``REF@sha256:HEX``; a reference without a digest is a UsageError."""
    text = value.strip()
    name, at, digest = text.partition("@")
    if not at:
        raise UsageError(
            f"{what}: {text!r} has no digest; give it as REPOSITORY@sha256:<hex> "
            "(the IMAGE_DIGEST result of the build)"
        )
    return image_ref_from_parts(name, digest, what=what)


def image_ref_from_parts(url: str, digest: str, *, what: str) -> ImageRef:
    """Build an ImageRef from Tekton's ``IMAGE_URL`` and ``IMAGE_DIGEST`` results.

    A tag on the URL is kept in ``tag`` and ignored for identity, as Chains does.
    """
    name = url.strip()
    for prefix in ("oci://", "docker://"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    if not name:
        raise UsageError(f"{what}: the image name is empty; give REPOSITORY@sha256:<hex>")
    hexpart = parse_sha256_digest(digest, what=what)
    tag: str | None = None
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        base, _, tag = name.rpartition(":")
        name = base
        if _TAG.fullmatch(tag) is None:
            raise UsageError(f"{what}: {url!r} has an invalid tag {tag!r}")
    registry, repository = _split_registry(name)
    if (
        _REGISTRY.fullmatch(registry) is None
        or _REPOSITORY.fullmatch(repository) is None
        or len(f"{registry}/{repository}") > _MAX_NAME
    ):
        raise UsageError(
            f"{what}: {url!r} is not a valid image name; expected REGISTRY/REPOSITORY with a "
            "lowercase path such as ghcr.io/org/app"
        )
    return ImageRef(registry=registry, repository=repository, digest=f"sha256:{hexpart}", tag=tag)
