"""Verify an image's signatures from the registry (or an OCI layout directory).

A signature counts when, as ``cosign verify --key --insecure-ignore-tlog`` checks:
- ``.sig`` layer: the signature annotation verifies over the payload blob with the key, the
  payload's ``docker-manifest-digest`` equals the image digest, every ``-a k=v`` equals
  ``optional[k]``;
- Sigstore bundle with a cosign ``sign/v1`` statement: the DSSE signature verifies, a
  subject's ``digest.sha256`` equals the image hex, every ``-a k=v`` is in that subject's
  annotations. (cosign v3 also accepts any other bundle, e.g. an attestation, as a
  signature; attest-step does not.)
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from attest_step.dsse import verify_envelope
from attest_step.errors import VerificationError
from attest_step.imageref import ImageRef
from attest_step.keys.signer import Verifier
from attest_step.oci.fetch import fetch_signature_bundles, fetch_signatures
from attest_step.oci.options import RegistryOptions
from attest_step.oci.simplesigning import check_claims
from attest_step.oci.types import COSIGN_SIGN_PREDICATE, SIGNATURE_ANNOTATION


@dataclass(frozen=True)
class VerifiedSignature:
    source: str  # "tag" or "bundle"
    location: str
    claims: dict[str, Any]


def _check_tag_layer(
    payload: bytes, signature_b64: str | None, verifier: Verifier, digest: str, ann: dict[str, str]
) -> dict[str, Any]:
    if not signature_b64:
        raise VerificationError("layer has no signature annotation")
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError) as err:
        raise VerificationError("signature annotation is not base64") from err
    if not verifier.verify(signature, payload):
        raise VerificationError("signature does not verify with the key")
    return check_claims(payload, digest, ann)


def _check_bundle(
    envelope: dict[str, Any], verifier: Verifier, image: ImageRef, ann: dict[str, str]
) -> dict[str, Any]:
    statement = json.loads(verify_envelope(envelope, verifier))
    if not isinstance(statement, dict) or statement.get("predicateType") != COSIGN_SIGN_PREDICATE:
        raise VerificationError("bundle is not a cosign signature statement")
    for subject in statement.get("subject") or []:
        if (subject.get("digest") or {}).get("sha256") != image.hex:
            continue
        have = subject.get("annotations") or {}
        if all(have.get(k) == v for k, v in ann.items()):
            return statement
        raise VerificationError("annotations do not match")
    raise VerificationError(f"no subject of the statement has digest {image.digest}")


def verify_image_signatures(
    image: ImageRef,
    verifier: Verifier,
    annotations: dict[str, str],
    registry: RegistryOptions,
) -> list[VerifiedSignature]:
    """Every signature of ``image`` that verifies; VerificationError when there is none."""
    verified: list[VerifiedSignature] = []
    reasons: list[str] = []
    for sig in fetch_signatures(image, registry):
        try:
            claims = _check_tag_layer(
                sig.payload,
                sig.descriptor.annotations.get(SIGNATURE_ANNOTATION),
                verifier,
                image.digest,
                annotations,
            )
        except VerificationError as err:
            reasons.append(str(err))
            continue
        verified.append(VerifiedSignature("tag", sig.location, claims))
    for fetched in fetch_signature_bundles(image, registry):
        if fetched.predicate_type not in (None, COSIGN_SIGN_PREDICATE):
            continue
        try:
            statement = _check_bundle(fetched.envelope, verifier, image, annotations)
        except (VerificationError, ValueError) as err:
            reasons.append(str(err))
            continue
        verified.append(VerifiedSignature("bundle", fetched.location, statement))
    if not verified:
        detail = f" ({'; '.join(sorted(set(reasons)))})" if reasons else ""
        raise VerificationError(
            f"{image}: no signature verifies with the given key{detail}; "
            "check the key and that the image was signed"
        )
    return verified
