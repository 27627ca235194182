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
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema

from attest_step import __version__
from attest_step.errors import AttestStepError
from attest_step.fileio import write_new_file
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


_STR = {"type": "string", "maxLength": 4096}
_STR_OR_NULL = {"type": ["string", "null"], "maxLength": 4096}
_COUNT = {"type": "integer", "minimum": 0}
_STRINGS = {"type": "array", "items": _STR, "maxItems": 64}
_INTERFACE = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": _STR,
        "rxBytes": _COUNT,
        "txBytes": _COUNT,
        "rxPackets": _COUNT,
        "txPackets": _COUNT,
        "flags": {"type": ["array", "null"], "items": _STR, "maxItems": 64},
    },
}
_ROUTE = {
    "type": "object",
    "properties": {"iface": _STR_OR_NULL, "destination": _STR_OR_NULL, "flags": _STRINGS},
}
_VIEW = {
    "type": "object",
    "required": ["observer", "at", "interfaces"],
    "properties": {
        "observer": _STR,
        "at": _STR,
        "netns": _STR_OR_NULL,
        "interfaces": {"type": "array", "items": _INTERFACE, "maxItems": 4096},
        "ipv4Routes": {"type": ["array", "null"], "items": _ROUTE, "maxItems": 65536},
        "ipv6Routes": {"type": ["array", "null"], "items": _ROUTE, "maxItems": 65536},
    },
}


def _probe_results(**fields: Any) -> dict[str, Any]:
    """The schema of a list of probe attempts: objects with ``ok`` and ``fields``."""
    item = {"type": "object", "properties": {"ok": {"type": "boolean"}, **fields}}
    return {"type": "array", "maxItems": 4096, "items": item}


EVIDENCE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "attest-step network-evidence record v1 (the fields attest-step reads)",
    "type": "object",
    "required": ["mediaType", "producer", "views"],
    "properties": {
        "mediaType": {"const": EVIDENCE_MEDIA_TYPE},
        "producer": {
            "type": "object",
            "required": ["verb"],
            "properties": {
                "name": _STR,
                "version": _STR,
                "verb": {"enum": ["run", "probe"]},
            },
        },
        "step": _STR_OR_NULL,
        "views": {"type": "array", "items": _VIEW, "maxItems": 64},
        "parentNetns": _STR_OR_NULL,
        "command": {
            "type": "object",
            "properties": {
                "argv": _STRINGS,
                "exitCode": {"type": ["integer", "null"]},
                "netns": _STR_OR_NULL,
            },
        },
        "connects": _probe_results(
            address=_STR_OR_NULL, target=_STR_OR_NULL, protocol=_STR_OR_NULL
        ),
        "resolves": _probe_results(
            name=_STR_OR_NULL, viaDns={"type": "boolean"}, addresses=_STRINGS
        ),
    },
}
_VALIDATOR = jsonschema.Draft202012Validator(EVIDENCE_SCHEMA)


def validate(record: Any, *, source: str) -> dict[str, Any]:
    """Check the shape of a loaded record; ``source`` names it in the one-line error.

    Every field that :func:`contradictions` or the provenance reads is type-checked here, so
    no record that passes can make them fail.
    """
    if not isinstance(record, dict) or record.get("mediaType") != EVIDENCE_MEDIA_TYPE:
        raise AttestStepError(
            f"{source}: not a network-evidence record (mediaType must be "
            f"{EVIDENCE_MEDIA_TYPE}); pass a file written by 'attest-step run' or "
            "'attest-step probe --output json'"
        )
    producer_ = record.get("producer")
    verb = producer_.get("verb") if isinstance(producer_, dict) else None
    if verb not in ("run", "probe"):
        raise AttestStepError(f"{source}: producer.verb must be 'run' or 'probe', got {verb!r}")
    error = jsonschema.exceptions.best_match(_VALIDATOR.iter_errors(record))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise AttestStepError(
            f"{source}: {where}: {_short(error.message)}; regenerate the evidence file"
        )
    return record


def _short(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# What the isolating parent of `attest-step run` writes: views in this order, by these observers.
RUN_VIEWS = (
    ("attest-step run init (inside, PID 1)", "before-command"),
    ("attest-step run (outside, /proc/<pid>/net)", "before-command"),
    ("attest-step run (outside, /proc/<pid>/net)", "after-process-tree-ended"),
)


def run_record_gaps(record: Mapping[str, Any]) -> list[str]:
    """What a ``run`` record lacks to be a complete record of the isolating parent.

    Complete: producer attest-step/run; the step; the isolation with a nested user namespace
    and the evidence hidden; the parent's and the command's network namespaces; the exit
    status; the three views; where in the evidence volume it was written.
    """
    gaps: list[str] = []
    producer_ = record.get("producer") or {}
    if producer_.get("name") != "attest-step" or producer_.get("verb") != "run":
        gaps.append("producer is not attest-step run")
    if not isinstance(record.get("step"), str) or not record.get("step"):
        gaps.append("no step")
    isolation = record.get("isolation")
    if not isinstance(isolation, Mapping):
        gaps.append("no isolation")
        isolation = {}
    namespaces = isolation.get("namespaces")
    wanted = {"user", "mnt", "pid"} | ({"net"} if isolation.get("network") == "none" else set())
    if isolation.get("network") not in ("none", "host"):
        gaps.append("no isolation.network")
    if not isinstance(namespaces, list) or not wanted <= set(map(str, namespaces)):
        gaps.append("isolation.namespaces incomplete")
    if isolation.get("nestedUserNamespace") is not True:
        gaps.append("no nested user namespace")
    hidden = isolation.get("evidenceHidden")
    if not isinstance(hidden, list) or not hidden or not all(isinstance(h, str) for h in hidden):
        gaps.append("evidence not hidden from the command")
    command = record.get("command") or {}
    if not isinstance(record.get("parentNetns"), str) or not isinstance(command.get("netns"), str):
        gaps.append("no namespace ids")
    if not isinstance(command.get("exitCode"), int) or isinstance(command.get("exitCode"), bool):
        gaps.append("no exit status")
    views = record.get("views") or []
    seen = tuple((v.get("observer"), v.get("at")) for v in views)
    if seen != RUN_VIEWS or not all(isinstance(v.get("netns"), str) for v in views):
        gaps.append("not the three views (inside before, outside before, outside after)")
    for key in ("startedOn", "finishedOn"):
        if not isinstance(record.get(key), str):
            gaps.append(f"no {key}")
    volume = record.get("evidenceVolume")
    if not isinstance(volume, Mapping) or not isinstance(volume.get("file"), str):
        gaps.append("no evidenceVolume")
    return gaps


def parse(data: bytes, *, source: str) -> dict[str, Any]:
    """A record from the bytes of an evidence file (at most MAX_RECORD_BYTES)."""
    if len(data) > MAX_RECORD_BYTES:
        raise AttestStepError(f"{source}: larger than {MAX_RECORD_BYTES} bytes")
    try:
        record = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise AttestStepError(f"{source}: not valid JSON ({_short(str(err))})") from None
    return validate(record, source=source)


def load(path: Path) -> dict[str, Any]:
    """Read and validate one evidence file (a regular file, at most MAX_RECORD_BYTES)."""
    source = f"evidence file {path}"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as err:
        raise AttestStepError(f"{source}: cannot read it ({err.strerror}); check the path") from err
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise AttestStepError(f"{source}: not a regular file")
        data = read_bounded(fd, MAX_RECORD_BYTES)
    except OSError as err:
        raise AttestStepError(f"{source}: cannot read it ({err.strerror})") from err
    finally:
        os.close(fd)
    return parse(data, source=source)


def read_bounded(fd: int, limit: int) -> bytes:
    """At most ``limit`` + 1 bytes from ``fd`` (one more than allowed, to detect excess)."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = os.read(fd, min(1 << 20, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


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
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp, dir_fd=self.dir_fd)
            write_new_file(self.dir_fd, temp, data)
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
