"""Network-evidence records: their format, what contradicts isolation, atomic writing, loading.

A record is one JSON object (see docs/hermetic.md, "Evidence record"). ``attest-step run``
writes one with ``producer.verb == "run"``; ``attest-step probe --output json`` or
``--evidence-file`` writes one with ``producer.verb == "probe"``. Each *view* in a record is a
snapshot of one network namespace, labelled with who looked at it and when.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attest_step import __version__
from attest_step.errors import AttestStepError
from attest_step.hermetic import procnet

EVIDENCE_MEDIA_TYPE = "application/vnd.attest-step.network-evidence.v1+json"
MAX_RECORD_BYTES = 4 * 1024 * 1024


def producer(verb: str) -> dict[str, str]:
    return {"name": "attest-step", "version": __version__, "verb": verb}


def view(
    *,
    observer: str,
    at: str,
    netns: str | None,
    dev: str,
    route: str,
    ipv6_route: str | None,
    with_flags: bool,
) -> dict[str, Any]:
    """One snapshot of a namespace from the text of its ``net/dev``, ``route``, ``ipv6_route``.

    ``with_flags`` reads interface flags with an ioctl, which only describes the CALLER's
    namespace: pass it only when the texts were read from ``/proc/self/net``.
    """
    interfaces = procnet.parse_dev(dev)
    if with_flags:
        for interface in interfaces:
            interface["flags"] = procnet.interface_flags(interface["name"])
    return {
        "observer": observer,
        "at": at,
        "netns": netns,
        "interfaces": interfaces,
        "ipv4Routes": procnet.parse_route(route),
        "ipv6Routes": None if ipv6_route is None else procnet.parse_ipv6_route(ipv6_route),
    }


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def view_contradictions(snapshot: Mapping[str, Any]) -> list[str]:
    """Facts in one view that contradict "this namespace had no network but loopback"."""
    found: list[str] = []
    for interface in snapshot.get("interfaces") or []:
        name = str(interface.get("name"))
        if name == "lo":
            continue
        flags = interface.get("flags")
        if isinstance(flags, list) and "UP" in flags:
            found.append(f"interface {name} is UP")
        if int(interface.get("rxPackets", 0)) + int(interface.get("txPackets", 0)):
            found.append(f"interface {name} carried traffic")
    for family, key in (("IPv4", "ipv4Routes"), ("IPv6", "ipv6Routes")):
        for route in snapshot.get(key) or []:
            if route.get("iface") == "lo" or "REJECT" in (route.get("flags") or []):
                continue
            found.append(f"{family} route {route.get('destination')} via {route.get('iface')}")
    return found


def contradictions(record: Mapping[str, Any]) -> list[str]:
    """Everything in a record that contradicts network isolation; empty when nothing does.

    Each fact appears once, followed by the views that showed it.
    """
    seen_in: dict[str, list[str]] = {}
    for snapshot in record.get("views") or []:
        where = f"{snapshot.get('observer', '?')}, {snapshot.get('at', '?')}"
        for fact in view_contradictions(snapshot):
            seen_in.setdefault(fact, []).append(where)
    found = [f"{fact} [{'; '.join(views)}]" for fact, views in seen_in.items()]
    command = record.get("command") or {}
    parent, child = record.get("parentNetns"), command.get("netns")
    if parent and child and parent == child:
        found.append(f"command ran in its parent's network namespace {parent}")
    for attempt in record.get("connects") or []:
        address = str(attempt.get("address") or "")
        if attempt.get("ok") and not _is_loopback(address):
            target = attempt.get("target")
            found.append(f"{attempt.get('protocol')} connect to {target} ({address}) succeeded")
    for lookup in record.get("resolves") or []:
        addresses = [a for a in lookup.get("addresses") or [] if not _is_loopback(str(a))]
        if lookup.get("ok") and addresses and lookup.get("viaDns"):
            found.append(f"DNS lookup of {lookup.get('name')} answered {addresses[0]}")
    return found


def validate(record: Any, *, source: str) -> dict[str, Any]:
    """Check the shape of a loaded record; ``source`` names it in the one-line error."""
    if not isinstance(record, dict) or record.get("mediaType") != EVIDENCE_MEDIA_TYPE:
        raise AttestStepError(
            f"{source}: not a network-evidence record (mediaType must be "
            f"{EVIDENCE_MEDIA_TYPE}); pass a file written by 'attest-step run' or "
            "'attest-step probe --output json'"
        )
    verb = (record.get("producer") or {}).get("verb")
    if verb not in ("run", "probe"):
        raise AttestStepError(f"{source}: producer.verb must be 'run' or 'probe', got {verb!r}")
    if not isinstance(record.get("views"), list):
        raise AttestStepError(f"{source}: 'views' must be a list; regenerate the evidence file")
    step = record.get("step")
    if step is not None and not isinstance(step, str):
        raise AttestStepError(f"{source}: 'step' must be a string or null")
    return record


def load(path: Path) -> dict[str, Any]:
    """Read and validate one evidence file."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_RECORD_BYTES + 1)
    except OSError as err:
        raise AttestStepError(
            f"evidence file {path}: cannot read it ({err.strerror}); check the path"
        ) from err
    if len(data) > MAX_RECORD_BYTES:
        raise AttestStepError(f"evidence file {path}: larger than {MAX_RECORD_BYTES} bytes")
    try:
        record = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise AttestStepError(f"evidence file {path}: not valid JSON ({err})") from err
    return validate(record, source=f"evidence file {path}")


def dumps(record: Mapping[str, Any]) -> bytes:
    return (json.dumps(record, indent=2, sort_keys=True) + "\n").encode()


@dataclass
class EvidenceTarget:
    """Where a record will go, with its directory opened up front.

    Opening the directory before the command runs means a command that renames or replaces
    the directory afterwards cannot redirect the write. The record is written to a fresh
    temporary file (O_EXCL, O_NOFOLLOW), fsynced, then renamed over the final name, so a
    file or symlink the command left at that name is replaced, never followed or appended to.
    """

    path: Path
    dir_fd: int

    @classmethod
    def open(cls, path: Path) -> EvidenceTarget:
        directory = path.parent if str(path.parent) else Path(".")
        try:
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as err:
            raise AttestStepError(
                f"--evidence-file {path}: directory {directory} is not usable ({err.strerror}); "
                "create it first"
            ) from err
        return cls(path=path, dir_fd=fd)

    def write(self, data: bytes) -> None:
        name = self.path.name
        temp = f".{name}.{os.getpid()}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp, dir_fd=self.dir_fd)
            fd = os.open(temp, flags, 0o644, dir_fd=self.dir_fd)
            try:
                view_ = memoryview(data)
                while view_:
                    view_ = view_[os.write(fd, view_) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
            os.fsync(self.dir_fd)
        except OSError as err:
            raise AttestStepError(
                f"--evidence-file {self.path}: cannot write it ({err.strerror}); "
                "choose a writable path that is not a directory"
            ) from err

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.dir_fd)


def write_atomic(path: Path, record: Mapping[str, Any]) -> None:
    """Write ``record`` to ``path`` by rename (see :class:`EvidenceTarget`)."""
    target = EvidenceTarget.open(path)
    try:
        target.write(dumps(record))
    finally:
        target.close()


def step_of(record: Mapping[str, Any], path: Path) -> str:
    """The build step a record describes: its ``step`` field, else the file name's stem."""
    step = record.get("step")
    return step if isinstance(step, str) and step else path.stem


def summary(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """All contradictions across ``records``."""
    return [item for record in records for item in contradictions(record)]
