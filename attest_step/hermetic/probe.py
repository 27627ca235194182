"""What network the calling process actually has, observed from inside it.

Everything here describes the caller's own network namespace: ``/proc/self/ns/net``,
``/proc/self/net/{dev,route,ipv6_route}``, interface flags by ioctl, ``/etc/resolv.conf``,
and the outcome of connect attempts and name lookups with short timeouts.
"""

from __future__ import annotations

import concurrent.futures
import errno
import os
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from attest_step.errors import UsageError
from attest_step.hermetic import evidence, procnet

PROC_SELF = Path("/proc/self")


@dataclass(frozen=True)
class Target:
    """A ``[tcp|udp://]HOST:PORT`` connect target."""

    protocol: str
    host: str
    port: int

    @property
    def text(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.protocol}://{host}:{self.port}"


def parse_target(text: str) -> Target:
    """Parse ``HOST:PORT``, ``[V6]:PORT``, optionally prefixed by ``tcp://`` or ``udp://``."""
    protocol, sep, rest = text.partition("://")
    if not sep:
        protocol, rest = "tcp", text
    if protocol not in ("tcp", "udp"):
        raise UsageError(f"--connect {text}: protocol must be tcp:// or udp://")
    if rest.startswith("["):
        host, _, port_text = rest[1:].partition("]:")
    else:
        host, _, port_text = rest.rpartition(":")
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise UsageError(f"--connect {text}: expected HOST:PORT, e.g. 127.0.0.1:443 or [::1]:53")
    return Target(protocol=protocol, host=host, port=int(port_text))


def _errno_name(err: OSError) -> str:
    if isinstance(err, TimeoutError) or err.errno is None:
        return "ETIMEDOUT"
    return errno.errorcode.get(err.errno, str(err.errno))


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def connect(target: Target, timeout: float) -> dict[str, Any]:
    """One TCP connect, or one UDP exchange (connect, send a byte, wait for any reply)."""
    result: dict[str, Any] = {"target": target.text, "protocol": target.protocol, "ok": False}
    started = time.monotonic()
    kind = socket.SOCK_STREAM if target.protocol == "tcp" else socket.SOCK_DGRAM
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=kind)
    except socket.gaierror as err:
        result.update(stage="resolve", error=f"EAI {err.errno}: {err.strerror}")
        return result
    family, socktype, proto, _, address = infos[0]
    result["address"] = str(address[0])
    stage = "connect"
    try:
        with socket.socket(family, socktype, proto) as sock:
            sock.settimeout(timeout)
            sock.connect(address)
            if target.protocol == "udp":
                stage = "send"
                sock.send(b"\0")
                stage = "receive"
                sock.recv(512)
        result["ok"] = True
    except OSError as err:
        result.update(stage=stage, errno=_errno_name(err))
    result["elapsedMs"] = round((time.monotonic() - started) * 1000, 1)
    return result


def _hosts_names(text: str | None) -> set[str]:
    names: set[str] = set()
    for line in (text or "").splitlines():
        names.update(line.split("#", 1)[0].split()[1:])
    return names


def resolve(name: str, timeout: float) -> dict[str, Any]:
    """One getaddrinfo() with a deadline; a lookup still running when it expires is abandoned."""
    in_hosts = name in _hosts_names(_read(Path("/etc/hosts")))
    result: dict[str, Any] = {"name": name, "ok": False, "viaDns": not in_hosts}
    started = time.monotonic()
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        future = pool.submit(socket.getaddrinfo, name, None, type=socket.SOCK_STREAM)
        infos = future.result(timeout=timeout)
        result["ok"] = True
        result["addresses"] = sorted({str(info[4][0]) for info in infos})
    except concurrent.futures.TimeoutError:
        result["error"] = "timeout"
    except socket.gaierror as err:
        result["error"] = f"EAI {err.errno}: {err.strerror}"
    except OSError as err:
        result["error"] = _errno_name(err)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    result["elapsedMs"] = round((time.monotonic() - started) * 1000, 1)
    return result


def self_view(*, observer: str, at: str) -> dict[str, Any]:
    """A view of the caller's own namespace."""
    net = PROC_SELF / "net"
    try:
        netns: str | None = os.readlink(PROC_SELF / "ns" / "net")
    except OSError:
        netns = None
    return evidence.view(
        observer=observer,
        at=at,
        netns=netns,
        dev=_read(net / "dev") or "",
        route=_read(net / "route") or "",
        ipv6_route=_read(net / "ipv6_route"),
        with_flags=True,
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def collect(
    *,
    targets: list[Target],
    names: list[str],
    timeout: float = 1.0,
    step: str | None = None,
) -> dict[str, Any]:
    """A complete ``probe`` evidence record for the calling process."""
    started = _now()
    record: dict[str, Any] = {
        "mediaType": evidence.EVIDENCE_MEDIA_TYPE,
        "producer": evidence.producer("probe"),
        "step": step,
        "startedOn": started,
        "environment": {"TEKTON_HERMETIC": os.environ.get("TEKTON_HERMETIC")},
        "views": [self_view(observer="attest-step probe (self)", at="probe")],
        "dns": procnet.parse_resolv_conf(_read(Path("/etc/resolv.conf")) or ""),
        "connects": [connect(target, timeout) for target in targets],
        "resolves": [resolve(name, timeout) for name in names],
    }
    record["finishedOn"] = _now()
    record["contradictions"] = evidence.contradictions(record)
    return record
