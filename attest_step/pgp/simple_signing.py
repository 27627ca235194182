"""Sign an image into a lookaside directory, and verify what a lookaside holds for it.

The signed message is what ``skopeo standalone-sign`` and ``podman push --sign-by`` write:
an inline-signed OpenPGP message (not a detached or cleartext signature) whose literal data
is the atomic payload. Acceptance follows containers/image's ``signedBy`` rule with the
default ``matchRepoDigestOrExact`` identity: the signing key is one of the given keys, the
payload names the image's digest, and its docker-reference carries a tag or a digest (a bare
repository is never accepted) and names, for an image named by digest, the same repository
(for an image named by tag, exactly that repository and tag).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attest_step import __version__
from attest_step.errors import UsageError, VerificationError
from attest_step.imageref import DOCKER_HUB, ImageRef, image_ref_from_parts
from attest_step.oci.simplesigning import atomic_payload_bytes, check_atomic_claims
from attest_step.pgp.lookaside import add_signature, image_dir, read_signatures

if TYPE_CHECKING:
    import pysequoia

    from attest_step.pgp.keys import PgpSigner

CREATOR = f"attest-step {__version__}"
_ANY_DIGEST = "sha256:" + "0" * 64


def docker_reference(image: ImageRef, *, pin: bool = True) -> str:
    """The reference containers/image matches (``docker.io`` for Docker Hub).

    With ``pin``: ``REPO:TAG`` if the image has a tag (accepted for pulls by that tag and by
    digest), else ``REPO@sha256:HEX`` (accepted for pulls by digest). containers/image never
    accepts a bare ``REPO`` in a signature.
    """
    registry = "docker.io" if image.registry == DOCKER_HUB else image.registry
    name = f"{registry}/{image.repository}"
    if not pin:
        return name
    return f"{name}:{image.tag}" if image.tag else f"{name}@{image.digest}"


def sign_to_lookaside(
    image: ImageRef,
    signer: PgpSigner,
    lookaside: Path,
    *,
    identity: str | None = None,
    timestamp: int | None = None,
) -> dict[str, Any]:
    """Sign ``image`` (its digest, as ``identity``) and add the signature to ``lookaside``."""
    import pysequoia  # noqa: PLC0415

    signed_identity = identity or docker_reference(image)
    if identity is not None:
        ref, pinned = _parse_reference(identity, "--sign-container-identity")
        if ref.tag is None and not pinned:
            raise UsageError(
                f"--sign-container-identity {identity!r}: give REPOSITORY:TAG or "
                "REPOSITORY@sha256:HEX; podman and skopeo never accept a bare repository"
            )
    payload = atomic_payload_bytes(
        signed_identity,
        image.digest,
        creator=CREATOR,
        timestamp=int(time.time()) if timestamp is None else timestamp,
    )
    message = pysequoia.sign(signer.signer, payload, armor=False)
    # Read back what was signed before storing it, and learn which key signed.
    try:
        (made,) = pysequoia.verify(bytes=message, store=lambda _ids: [signer.cert]).valid_sigs
    except (RuntimeError, ValueError):
        raise UsageError(
            f"--pgp-key {signer.fingerprint}: the signature it made does not verify with its "
            "own certificate; use another key"
        ) from None
    path = add_signature(lookaside, image, message)
    return {
        "signing_key": made.signing_key.upper(),
        "status": "written",
        "kind": "pgp signature",
        "layout": "lookaside",
        "location": str(path),
        "fingerprint": signer.fingerprint,
        "identity": signed_identity,
        "image": str(image),
    }


def _parse_reference(value: str, what: str) -> tuple[ImageRef, bool]:
    """The reference and whether it carries a digest."""
    name, at, digest = value.partition("@")
    return image_ref_from_parts(name, digest if at else _ANY_DIGEST, what=what), bool(at)


def identity_matches(signed: str, image: ImageRef) -> bool:
    """containers/image's matchRepoDigestOrExact for ``image`` and the signed reference."""
    try:
        ref, pinned = _parse_reference(signed, "the signed docker-reference")
    except UsageError:
        return False
    if ref.tag is None and not pinned:
        return False  # a bare repository
    if docker_reference(ref, pin=False) != docker_reference(image, pin=False):
        return False
    # Named by tag: exactly that tag; named by digest: any tag or digest of the repository.
    return image.tag is None or (ref.tag == image.tag and not pinned)


@dataclass(frozen=True)
class VerifiedPgp:
    location: str
    fingerprint: str
    """The primary key of the certificate that made the signature (upper-case hex)."""
    identity: str
    claims: dict[str, Any]


def _verify_one(
    data: bytes, certs: list[pysequoia.Cert], image: ImageRef
) -> tuple[str, str, dict[str, Any]]:
    import pysequoia  # noqa: PLC0415

    try:
        result = pysequoia.verify(bytes=data, store=lambda _ids: certs)
    except (RuntimeError, ValueError):
        raise VerificationError("not a valid signature by any of the given keys") from None
    if not result.valid_sigs or result.bytes is None:
        raise VerificationError("not a valid signature by any of the given keys")
    fingerprint = result.valid_sigs[0].certificate.upper()
    signed, claims = check_atomic_claims(result.bytes, image.digest)
    if not identity_matches(signed, image):
        raise VerificationError(
            f"signed for {signed!r}, which does not match {image.name}"
            + (f":{image.tag}" if image.tag else "")
            + " (matchRepoDigestOrExact)"
        )
    return fingerprint, signed, claims


def verify_lookaside(
    image: ImageRef, certs: list[pysequoia.Cert], lookaside: Path
) -> list[VerifiedPgp]:
    """The signatures of ``image`` in the ``lookaside`` directory that hold; VerificationError
    if none."""
    first = f"{image_dir(lookaside, image)}/signature-1"
    found = [(str(path), data) for path, data in read_signatures(lookaside, image)]
    return verify_found(image, certs, found, where=str(lookaside), first=first)


def verify_found(
    image: ImageRef,
    certs: list[pysequoia.Cert],
    found: list[tuple[str, bytes]],
    *,
    where: str,
    first: str,
) -> list[VerifiedPgp]:
    """The signatures in ``found`` (location, bytes), read from the lookaside ``where``
    (``first`` is where signature-1 was looked for), that hold; VerificationError if none."""
    if not found:
        raise VerificationError(
            f"no signatures for {image} in --lookaside {where} (looked for {first})"
        )
    verified: list[VerifiedPgp] = []
    reasons: list[str] = []
    for location, data in found:
        try:
            fingerprint, signed, claims = _verify_one(data, certs, image)
        except VerificationError as err:
            reasons.append(f"{location.rsplit('/', 1)[-1]}: {err}")
            continue
        verified.append(VerifiedPgp(location, fingerprint, signed, claims))
    if not verified:
        raise VerificationError(
            f"no valid signature for {image} in --lookaside {where}: " + "; ".join(reasons)
        )
    return verified
