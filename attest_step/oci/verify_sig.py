"""Verify an image's signatures from the registry (or an OCI layout directory).

A signature counts when, as ``cosign verify --key --insecure-ignore-tlog`` checks:
- ``.sig`` layer: the signature annotation verifies over the payload blob with the key, the
  payload's ``docker-manifest-digest`` equals the image digest, every ``-a k=v`` equals
  ``optional[k]``;
- Sigstore bundle with a cosign ``sign/v1`` statement: the DSSE signature verifies, a
  subject's ``digest.sha256`` equals the image hex, every ``-a k=v`` is in that subject's
  annotations. (cosign v3 also accepts any other bundle, e.g. an attestation, as a
  signature; attest-step does not.)

The key is ``--key``'s, or (certificate mode, :mod:`attest_step.keys.certmode`) the key of
a certificate checked against the given roots and identity: ``--certificate``'s, or the one
the signature carries. With ``--key``, a certificate the signature carries is not checked,
as in cosign, and the result says so.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from attest_step.dsse import verify_envelope
from attest_step.errors import VerificationError
from attest_step.imageref import ImageRef
from attest_step.keys.certmode import KeyMode, Mode
from attest_step.keys.signer import Verifier
from attest_step.oci.certmaterial import from_annotations
from attest_step.oci.fetch import fetch_signature_bundles, fetch_signatures
from attest_step.oci.options import RegistryOptions
from attest_step.oci.simplesigning import check_claims
from attest_step.oci.types import COSIGN_SIGN_PREDICATE, SIGNATURE_ANNOTATION

if TYPE_CHECKING:
    from attest_step.tlog.trustedroot import TrustedLog


@dataclass(frozen=True)
class VerifiedSignature:
    source: str  # "tag" or "bundle"
    location: str
    claims: dict[str, Any]
    certificate: dict[str, Any] | None = None  # what was (or was not) checked of its x509
    tlog: dict[str, Any] | None = None  # tlog hook: the verified log entry (--trusted-root)


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
    verifier: Verifier | Mode,
    annotations: dict[str, str],
    registry: RegistryOptions,
    tlog_logs: Sequence[TrustedLog] | None = None,
) -> list[VerifiedSignature]:
    """Every signature of ``image`` that verifies; VerificationError when there is none.
    ``tlog_logs`` (from ``--trusted-root``): a signature counts only with a transparency log
    entry that verifies against one of them (attest_step.tlog.entry), so only bundles can."""
    from attest_step.keys.certmode import CertificateMode  # noqa: PLC0415

    mode = verifier if isinstance(verifier, KeyMode | CertificateMode) else KeyMode(verifier)
    verified: list[VerifiedSignature] = []
    reasons: list[str] = []
    for sig in fetch_signatures(image, registry):
        if tlog_logs is not None:  # tlog hook: a .sig layer carries no Rekor v2 entry
            reasons.append("a .sig tag layer has no transparency log entry")
            continue
        try:
            carried = from_annotations(sig.descriptor.annotations)
            key, cert = mode.for_signature(carried.leaf_pem, carried.chain_pem)
            claims = _check_tag_layer(
                sig.payload,
                sig.descriptor.annotations.get(SIGNATURE_ANNOTATION),
                key,
                image.digest,
                annotations,
            )
        except VerificationError as err:
            reasons.append(str(err))
            continue
        verified.append(VerifiedSignature("tag", sig.location, claims, cert))
    for fetched in fetch_signature_bundles(image, registry):
        if fetched.predicate_type not in (None, COSIGN_SIGN_PREDICATE):
            continue
        try:
            carried = fetched.certificate
            key, cert = mode.for_signature(carried.leaf_pem, carried.chain_pem)
            statement = _check_bundle(fetched.envelope, key, image, annotations)
            logged = None
            if tlog_logs is not None:  # tlog hook
                from attest_step.tlog.entry import require_entry  # noqa: PLC0415

                entry = require_entry(fetched.tlog_entries, fetched.envelope, tlog_logs, "bundle")
                logged = entry.to_dict()
        except (VerificationError, ValueError) as err:
            reasons.append(str(err))
            continue
        verified.append(VerifiedSignature("bundle", fetched.location, statement, cert, logged))
    if not verified:
        detail = f" ({'; '.join(sorted(set(reasons)))})" if reasons else ""
        if isinstance(mode, KeyMode):
            what, hint = "the given key", "check the key"
        else:
            what, hint = "a checked certificate", "check the certificate flags"
        raise VerificationError(
            f"{image}: no signature verifies with {what}{detail}; {hint} and that the image "
            "was signed"
        )
    return verified
