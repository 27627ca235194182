"""Which layouts receive which spool item (see upload.py for the table)."""

from __future__ import annotations

import json
from typing import Any

from attest_step.errors import AttestStepError
from attest_step.oci.spool import SpoolItem

TAG_SUFFIX = {"signature": ".sig", "attestation": ".att"}


def wants_tag(item: SpoolItem, layout: str) -> bool:
    return item.kind in TAG_SUFFIX and layout in ("tag", "both")


def wants_bundle(item: SpoolItem, layout: str) -> bool:
    return item.kind in ("attestation", "signature-bundle") and layout in ("bundle", "both")


def envelope_of(item: SpoolItem) -> dict[str, Any]:
    """The spooled DSSE envelope as a dict (for wrapping into a bundle)."""
    try:
        doc = json.loads(item.data)
    except ValueError as err:
        raise AttestStepError(
            f"{item.record_path}: the DSSE envelope is not JSON; re-run the step that wrote it"
        ) from err
    if not isinstance(doc, dict) or "payload" not in doc or "payloadType" not in doc:
        raise AttestStepError(
            f"{item.record_path}: not a DSSE envelope; re-run the step that wrote it"
        )
    return doc
