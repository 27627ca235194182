"""The log's answers kept beside the spooled items, so that nothing is lost when the log is
down: ``push --from`` uploads what is still pending, and never logs an item twice.

For a spool record ``<stem>.oci.json`` of a DSSE item (``attestation`` or
``signature-bundle``), ``<stem>.tlog.json`` holds (indented JSON)::

    {"tlogVersion": 1, "rekorUrl": "<log URL>", "publicKey": "<PEM of the signing key>",
     "entry": <the TransparencyLogEntry, protobuf JSON> (once logged)}

It is written at sign time (before any network), then again with ``entry`` once the log
answered. The bundle pushed to the registry carries ``entry`` in
``verificationMaterial.tlogEntries``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attest_step.errors import AttestStepError, UsageError
from attest_step.fileio import read_small_file, write_atomically
from attest_step.oci.routing import TLOG_ENTRIES_KEY
from attest_step.oci.spool import SpoolItem
from attest_step.tlog.options import TlogOptions

if TYPE_CHECKING:
    from attest_step.tlog.client import LogClient

TLOG_VERSION = 1
SUFFIX = ".tlog.json"
MAX_SIDECAR = 1 << 20
LOGGED_KINDS = ("attestation", "signature-bundle")


def sidecar_of(record_path: Path) -> Path:
    name = record_path.name.removesuffix(".oci.json")
    return record_path.with_name(name + SUFFIX)


def write_sidecar(path: Path, doc: dict[str, Any]) -> None:
    try:
        write_atomically(path, json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n")
    except OSError as err:
        raise AttestStepError(
            f"spool file {path}: cannot write it ({err.strerror}); give a writable --spool-dir"
        ) from err


def read_spool_file(path: Path, limit: int) -> bytes | None:
    """The file at ``path`` (None when there is none): a regular file in the spool, never
    through a link (as the spool's own files, attest_step.oci.spool), at most ``limit``."""
    try:
        if stat.S_ISLNK(os.lstat(path).st_mode):
            raise UsageError(
                f"spool file {path}: a symbolic link; a spool holds only regular files written "
                "by attest-step: remove it"
            )
        return read_small_file(path, "spool file", limit=limit)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise UsageError(f"spool file {path}: cannot read it ({err.strerror})") from err


def read_sidecar(path: Path) -> dict[str, Any] | None:
    """The sidecar at ``path`` (None when there is none), at most 1 MiB."""
    data = read_spool_file(path, MAX_SIDECAR)
    if data is None:
        return None
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        doc = None
    if (
        not isinstance(doc, dict)
        or doc.get("tlogVersion") != TLOG_VERSION
        or not isinstance(doc.get("publicKey"), str)
        or not isinstance(doc.get("rekorUrl"), str)
    ):
        raise UsageError(
            f"spool file {path}: not a transparency-log record of this attest-step; remove "
            "it and sign again"
        )
    return doc


def check_signer_key(public_key_pem: bytes) -> None:
    """UsageError (exit 2) when the log cannot take signatures of this key (before signing)."""
    from attest_step.tlog.hashedrekord import key_algorithm  # noqa: PLC0415

    try:
        key_algorithm(_public_key_der(public_key_pem.decode("ascii"), Path("--key")))
    except AttestStepError as err:
        raise UsageError(f"--rekor-url: {err}") from err


def prepare(record_path: Path, public_key_pem: bytes, rekor_url: str) -> None:
    """Record, before any network, that the item of ``record_path`` goes to the log.
    UsageError (exit 2) when the log cannot take this key's signatures."""
    check_signer_key(public_key_pem)
    path = sidecar_of(record_path)
    existing = read_sidecar(path)
    if existing is not None and existing.get("entry") is not None:
        return  # logged already: same item, same stem
    doc = {
        "tlogVersion": TLOG_VERSION,
        "rekorUrl": rekor_url,
        "publicKey": public_key_pem.decode("ascii"),
    }
    write_sidecar(path, doc)


def _public_key_der(pem_text: str, path: Path) -> bytes:
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    try:
        key = serialization.load_pem_public_key(pem_text.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as err:
        raise UsageError(f"spool file {path}: publicKey is not a PEM public key") from err
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def attach(items: Sequence[SpoolItem], options: TlogOptions) -> list[SpoolItem]:
    """``items`` with their log entries (``extra["tlogEntries"]``), logging what is pending.

    An item is logged when its sidecar says so (it was signed with a log) or when
    ``options`` ask for it; ``--tlog-upload=false`` logs nothing (entries already there are
    still attached). The same envelope spooled for several images is logged once. An item
    the options want logged but that has no sidecar cannot be: its public key is not in the
    spool (one-line error)."""
    from attest_step.oci.routing import envelope_of  # noqa: PLC0415

    docs: dict[Path, dict[str, Any] | None] = {}
    logged: dict[str, dict[str, Any]] = {}  # blob digest -> entry
    for item in items:
        if item.kind in LOGGED_KINDS:
            doc = docs[item.record_path] = read_sidecar(sidecar_of(item.record_path))
            if doc is not None and isinstance(doc.get("entry"), dict):
                logged.setdefault(item.blob_digest, doc["entry"])
    clients: dict[str, LogClient] = {}
    out: list[SpoolItem] = []
    for item in items:
        doc = docs.get(item.record_path)
        if item.kind not in LOGGED_KINDS or (doc is None and not options.upload_requested):
            out.append(item)
            continue
        if doc is None:
            raise UsageError(
                f"spool record {item.record_path}: signed without a transparency log, so "
                "its public key is not in the spool; sign again with --rekor-url"
            )
        path = sidecar_of(item.record_path)
        entry = settle(
            doc, path, envelope_of(item), options, clients, known=logged.get(item.blob_digest)
        )
        if entry is None:
            out.append(item)
            continue
        logged[item.blob_digest] = entry
        out.append(dataclasses.replace(item, extra={**item.extra, TLOG_ENTRIES_KEY: [entry]}))
    return out


def settle(
    doc: dict[str, Any],
    path: Path,
    envelope: dict[str, Any],
    options: TlogOptions,
    clients: dict[str, LogClient],
    *,
    known: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """The log entry of the envelope whose sidecar ``doc`` is at ``path``: the one kept
    there, else ``known`` (the same envelope logged for another item), else logged now
    (unless ``--tlog-upload=false``: None). It is checked, then kept in the sidecar before
    anything uses it, so that it is never logged twice. ``clients``: one per log URL."""
    entry = doc.get("entry") or known
    if entry is None and options.upload is not False:
        from attest_step.tlog.client import LogClient, LogTarget  # noqa: PLC0415

        url = options.rekor_url or str(doc["rekorUrl"])
        if url not in clients:
            clients[url] = LogClient(LogTarget(url, options.timeout_seconds))
        entry = clients[url].upload(envelope, _public_key_der(doc["publicKey"], path))
    if entry is None:
        return None
    _check_kept(entry, envelope, path)
    if doc.get("entry") is None:
        write_sidecar(path, {**doc, "entry": entry})
    return dict(entry)


def _check_kept(entry: Any, envelope: dict[str, Any], path: Path) -> None:
    """An entry read back from the spool goes into a bundle only if it is one of this
    envelope whose proof leads to the root it names (the log's key is not known here)."""
    from attest_step.tlog.entry import check_response  # noqa: PLC0415

    try:
        check_response(entry, envelope)
    except ValueError as err:
        raise UsageError(
            f"spool file {path}: its transparency log entry is not one of this envelope "
            f'({err}); remove the file\'s "entry" to log the envelope again'
        ) from err


def has_sidecars(out_dir: Path) -> bool:
    """Whether anything spooled in ``out_dir`` for a registry was signed for a
    transparency log (a sidecar beside a record; attest_step.tlog.filelog's have none)."""
    try:
        return any(
            path.with_name(path.name.removesuffix(SUFFIX) + ".oci.json").exists()
            for path in out_dir.glob("*" + SUFFIX)
        )
    except OSError:
        return False
