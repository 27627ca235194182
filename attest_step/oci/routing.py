"""Which layouts receive which spool item (see upload.py for the table)."""

from __future__ import annotations

import json
from typing import Any

from attest_step.errors import UsageError
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
    except (ValueError, RecursionError) as err:
        raise UsageError(
            f"{item.record_path}: the DSSE envelope is not JSON; re-run the step that wrote it"
        ) from err
    signatures = doc.get("signatures") if isinstance(doc, dict) else None
    if (
        not isinstance(doc, dict)
        or not isinstance(doc.get("payload"), str)
        or not isinstance(doc.get("payloadType"), str)
        or not isinstance(signatures, list)
        or not all(isinstance(s, dict) for s in signatures)
    ):
        raise UsageError(f"{item.record_path}: not a DSSE envelope; re-run the step that wrote it")
    return doc


# tlog hook: attest_step.tlog.spool.attach puts the log's entries of an item here.
TLOG_ENTRIES_KEY = "tlogEntries"


def tlog_entries_of(item: SpoolItem) -> list[dict[str, Any]]:
    """The transparency-log entries to put in the item's bundle (none when not logged)."""
    entries = item.extra.get(TLOG_ENTRIES_KEY)
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []
