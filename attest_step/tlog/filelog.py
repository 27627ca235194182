"""Log entries for envelopes written only to a file (``attest --output-file ENV --rekor-url
URL --bundle BUNDLE``, no image), as ``cosign attest-blob --bundle`` gives them.

The envelope is on disk (``--output-file``) before any network. The spool directory then
gets, for ``stem`` = ``file-<first 16 hex of the envelope's sha256>``:

- ``<stem>.dsse.json``: the envelope, byte for byte;
- ``<stem>.tlog.json``: the sidecar of :mod:`attest_step.tlog.spool` (log URL, public key,
  and the entry once logged) with ``"bundle"``: the absolute path of the bundle to write.

Then the envelope is logged, the entry kept in the sidecar, and the Sigstore bundle (the one
a registry referrer holds, :mod:`attest_step.oci.bundle_doc`) written to ``bundle``. With the
log down the spool is kept (exit 75) and ``push --from DIR`` does the rest later; an entry
kept in a sidecar is reused, so an envelope is never logged twice.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attest_step.errors import AttestStepError, UsageError
from attest_step.fileio import write_atomically, write_output_file
from attest_step.tlog.options import TlogOptions
from attest_step.tlog.spool import (
    SUFFIX,
    TLOG_VERSION,
    check_signer_key,
    read_sidecar,
    read_spool_file,
    settle,
    write_sidecar,
)

if TYPE_CHECKING:
    from attest_step.tlog.client import LogClient

PREFIX = "file-"
ENVELOPE_SUFFIX = ".dsse.json"
MAX_ENVELOPE = 64 << 20
"""The most a spooled envelope may hold (as a registry blob, attest_step.oci.spool)."""


def _stem(envelope: bytes) -> str:
    return PREFIX + hashlib.sha256(envelope).hexdigest()[:16]


def spool_file_envelope(
    directory: Path, envelope: bytes, public_key_pem: bytes, rekor_url: str, bundle: Path
) -> Path:
    """Record, before any network, that ``envelope`` goes to the log at ``rekor_url`` and
    its bundle to ``bundle``; return the sidecar. An entry kept from an earlier run of the
    same envelope, key and log is kept."""
    check_signer_key(public_key_pem)
    stem = _stem(envelope)
    sidecar = directory / (stem + SUFFIX)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        write_atomically(directory / (stem + ENVELOPE_SUFFIX), envelope)
    except OSError as err:
        raise AttestStepError(
            f"spool directory {directory}: cannot write it ({err.strerror}); give a writable "
            "--spool-dir"
        ) from err
    doc: dict[str, Any] = {
        "tlogVersion": TLOG_VERSION,
        "rekorUrl": rekor_url,
        "publicKey": public_key_pem.decode("ascii"),
        "bundle": str(bundle.absolute()),
    }
    existing = read_sidecar(sidecar)
    if existing is not None and all(existing.get(k) == doc[k] for k in ("publicKey", "rekorUrl")):
        doc["entry"] = existing.get("entry")  # logged there already: never twice
    write_sidecar(sidecar, {k: v for k, v in doc.items() if v is not None})
    return sidecar


def pending(directory: Path) -> list[Path]:
    """The sidecars of file envelopes in a spool directory, in name order."""
    try:
        return sorted(directory.glob(PREFIX + "*" + SUFFIX))
    except OSError:
        return []


def _envelope(sidecar: Path) -> tuple[bytes, dict[str, Any]]:
    stem = sidecar.name.removesuffix(SUFFIX)
    path = sidecar.with_name(stem + ENVELOPE_SUFFIX)
    data = read_spool_file(path, MAX_ENVELOPE)
    if data is None:
        raise UsageError(f"spool file {sidecar}: its envelope {path.name} is missing; remove it")
    if _stem(data) != stem:
        raise UsageError(f"spool file {path}: does not match its name (file changed?); remove it")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        doc = None
    if not isinstance(doc, dict) or not isinstance(doc.get("signatures"), list):
        raise UsageError(f"spool file {path}: not a DSSE envelope; remove it")
    return data, doc


def _bundle_path(doc: dict[str, Any], sidecar: Path) -> Path:
    value = doc.get("bundle")
    if not isinstance(value, str) or not Path(value).is_absolute():
        raise UsageError(
            f"spool file {sidecar}: bundle is not an absolute path; remove it and attest again"
        )
    return Path(value)


def write_bundle(
    path: Path, envelope: dict[str, Any], public_key_pem: bytes, entries: list[dict[str, Any]]
) -> None:
    """The Sigstore bundle of ``envelope`` (with ``entries``) at ``path``, atomically."""
    from attest_step.oci.bundle_doc import bundle_bytes  # noqa: PLC0415
    from attest_step.oci.keyhint import public_key_hint  # noqa: PLC0415

    data = bundle_bytes(envelope, public_key_hint(public_key_pem), entries)
    write_output_file(path, data, "--bundle", make_parents=True)


def log_file_envelope(
    sidecar: Path, options: TlogOptions, clients: dict[str, LogClient] | None = None
) -> dict[str, Any]:
    """Log the envelope of ``sidecar`` (unless its entry is kept) and write its bundle;
    return a record for ``--output json``."""
    doc = read_sidecar(sidecar)
    if doc is None:
        raise UsageError(f"spool file {sidecar}: missing; attest again")
    bundle = _bundle_path(doc, sidecar)
    _, envelope = _envelope(sidecar)
    entry = settle(doc, sidecar, envelope, options, {} if clients is None else clients)
    record: dict[str, Any] = {"kind": "file-attestation", "bundle": str(bundle)}
    if entry is None:  # --tlog-upload=false
        return {**record, "status": "pending"}
    try:
        write_bundle(bundle, envelope, str(doc["publicKey"]).encode("ascii"), [entry])
    except AttestStepError as err:
        raise type(err)(
            f"{err}; the log's entry is kept in {sidecar}: attest-step push --from "
            f"{sidecar.parent} writes the bundle"
        ) from err
    index = int(entry.get("logIndex") or 0)  # checked by settle: a decimal number
    log = options.rekor_url or doc["rekorUrl"]
    return {**record, "status": "logged", "log": log, "logIndex": index}


def log_pending(directory: Path, options: TlogOptions) -> list[dict[str, Any]]:
    """:func:`log_file_envelope` for every file envelope spooled in ``directory``."""
    clients: dict[str, LogClient] = {}
    return [log_file_envelope(sidecar, options, clients) for sidecar in pending(directory)]
