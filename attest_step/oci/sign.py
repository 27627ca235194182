"""Sign an image the way cosign does, spool the result, then upload it.

Two signatures are made with the same key, one per layout:
- the simple-signing payload (``.sig`` tag layout, read by cosign v2 and by v3's fallback);
- a DSSE envelope over an in-toto statement with predicateType
  ``https://sigstore.dev/cosign/sign/v1`` (what ``cosign sign`` v3 stores as a bundle).
``RegistryOptions.layout`` decides which are uploaded; both are always spooled.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attest_step.dsse import sign_envelope
from attest_step.imageref import ImageRef
from attest_step.keys.signer import Signer
from attest_step.oci.options import RegistryOptions
from attest_step.oci.simplesigning import payload_bytes
from attest_step.oci.spool import read_item, write_signature, write_signature_bundle
from attest_step.oci.types import COSIGN_SIGN_PREDICATE
from attest_step.tlog.options import NO_TLOG, TlogOptions

if TYPE_CHECKING:
    from attest_step.oci.prefetch import SignaturePrefetch


def sign_statement(image: ImageRef, annotations: dict[str, str]) -> bytes:
    """The in-toto statement cosign v3 ``sign`` signs into a bundle."""
    subject: dict[str, Any] = {"name": image.name, "digest": {"sha256": image.hex}}
    if annotations:
        subject["annotations"] = dict(sorted(annotations.items()))
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [subject],
        "predicateType": COSIGN_SIGN_PREDICATE,
        "predicate": {},
    }
    return json.dumps(statement, separators=(",", ":")).encode("utf-8")


def spool_signature(
    out_dir: Path,
    image: ImageRef,
    signer: Signer,
    annotations: dict[str, str],
    tlog: TlogOptions = NO_TLOG,
) -> list[Path]:
    """Sign ``image`` (both forms) into ``out_dir``; return the record files written."""
    payload = payload_bytes(image, annotations)
    signature = base64.b64encode(signer.sign(payload)).decode("ascii")
    sig_blob = write_signature(
        out_dir,
        payload,
        signature,
        image,
        certificate_chain_pem=signer.certificate_chain_pem(),
    )
    envelope = sign_envelope(sign_statement(image, annotations), signer)
    bundle_blob = write_signature_bundle(
        out_dir,
        json.dumps(envelope, separators=(",", ":")).encode("utf-8"),
        image,
        public_key_pem=signer.public_key_pem(),
    )
    records = [_record_of(sig_blob), _record_of(bundle_blob)]
    if tlog.enabled:  # tlog hook: the DSSE form goes to the log at push time
        from attest_step.tlog.spool import prepare  # noqa: PLC0415

        prepare(records[1], signer.public_key_pem(), str(tlog.rekor_url))
    return records


def _record_of(blob: Path) -> Path:
    stem = blob.name.split(".", 1)[0]
    return blob.with_name(f"{stem}.oci.json")


def sign_image(
    image: ImageRef,
    signer: Signer,
    annotations: dict[str, str],
    *,
    out_dir: Path,
    registry: RegistryOptions,
    prefetch: SignaturePrefetch | None = None,
    tlog: TlogOptions = NO_TLOG,
) -> list[dict[str, Any]]:
    """Sign, spool into ``out_dir``, upload; return the upload records. ``prefetch``: the
    registry work started before signing (:mod:`attest_step.oci.prefetch`) for ``image``
    and ``annotations``."""
    # The registry client (requests, oras) is imported here, not at module level:
    # ``attest-step sign`` imports it in the background while the key is decrypted.
    from attest_step.oci.upload import push_items  # noqa: PLC0415

    records = spool_signature(out_dir, image, signer, annotations, tlog)
    items = [read_item(r) for r in records]
    return push_items(items, registry, prefetch=prefetch.result() if prefetch else None, tlog=tlog)
