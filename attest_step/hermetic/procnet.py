"""Parse the kernel's per-network-namespace files under ``/proc/<pid>/net``.

``/proc/<pid>/net/*`` shows the network namespace of process ``<pid>`` (``self`` for the
caller). ``/sys/class/net`` is NOT used: it shows the namespace of whoever mounted sysfs,
which in a fresh network namespace is still the host's.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Iterable, Iterator
from typing import Any

# linux/route.h
_RTF_UP = 0x0001
_RTF_GATEWAY = 0x0002
_RTF_HOST = 0x0004
_RTF_REJECT = 0x0200
_ROUTE_FLAGS = {_RTF_UP: "UP", _RTF_GATEWAY: "GATEWAY", _RTF_HOST: "HOST", _RTF_REJECT: "REJECT"}

# linux/if.h, linux/sockios.h
_IFF_FLAGS = {
    0x1: "UP",
    0x2: "BROADCAST",
    0x8: "LOOPBACK",
    0x10: "POINTOPOINT",
    0x40: "RUNNING",
    0x1000: "MULTICAST",
}
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def _flag_names(value: int, table: dict[int, str]) -> list[str]:
    return [name for bit, name in table.items() if value & bit]


def parse_dev(text: str) -> list[dict[str, Any]]:
    """Interfaces and counters from ``net/dev`` (two header lines, then ``name: counters``)."""
    interfaces: list[dict[str, Any]] = []
    for line in text.splitlines()[2:]:
        name, sep, rest = line.partition(":")
        if not sep:
            continue
        fields = rest.split()
        if len(fields) < 10:
            continue
        interfaces.append(
            {
                "name": name.strip(),
                "rxBytes": int(fields[0]),
                "rxPackets": int(fields[1]),
                "txBytes": int(fields[8]),
                "txPackets": int(fields[9]),
            }
        )
    return interfaces


def _rows(lines: Iterable[str], width: int) -> Iterator[list[str]]:
    """The whitespace-separated fields of each line that has at least ``width`` of them."""
    for line in lines:
        fields = line.split()
        if len(fields) >= width:
            yield fields


def _ipv4_from_hex(value: str) -> str:
    return socket.inet_ntoa(struct.pack("<I", int(value, 16)))


def parse_route(text: str) -> list[dict[str, Any]]:
    """IPv4 routes of the main table from ``net/route`` (little-endian hex addresses)."""
    routes: list[dict[str, Any]] = []
    for fields in _rows(text.splitlines()[1:], 8):
        destination = _ipv4_from_hex(fields[1])
        mask = _ipv4_from_hex(fields[7])
        prefix = ipaddress.IPv4Network(f"0.0.0.0/{mask}").prefixlen
        routes.append(
            {
                "iface": fields[0],
                "destination": f"{destination}/{prefix}",
                "gateway": _ipv4_from_hex(fields[2]),
                "flags": _flag_names(int(fields[3], 16), _ROUTE_FLAGS),
            }
        )
    return routes


def _ipv6_from_hex(value: str) -> str:
    return str(ipaddress.IPv6Address(bytes.fromhex(value)))


def parse_ipv6_route(text: str) -> list[dict[str, Any]]:
    """IPv6 routes of all tables from ``net/ipv6_route`` (big-endian hex, no header)."""
    return [
        {
            "iface": fields[9],
            "destination": f"{_ipv6_from_hex(fields[0])}/{int(fields[1], 16)}",
            "nextHop": _ipv6_from_hex(fields[4]),
            "flags": _flag_names(int(fields[8], 16), _ROUTE_FLAGS),
        }
        for fields in _rows(text.splitlines(), 10)
    ]


def interface_flags(name: str) -> list[str] | None:
    """Flags of interface ``name`` in the CALLER's network namespace (None if unreadable)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            import fcntl  # noqa: PLC0415 - Linux only, imported where used

            request = struct.pack("16sH", name.encode()[:15], 0)
            answer = fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, request)
    except OSError:
        return None
    (flags,) = struct.unpack_from("H", answer, 16)
    return _flag_names(flags, _IFF_FLAGS)


def bring_loopback_up() -> None:
    """Set ``lo`` UP in the caller's network namespace (needs CAP_NET_ADMIN there)."""
    import fcntl  # noqa: PLC0415 - Linux only, imported where used

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        answer = fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, struct.pack("16sH", b"lo", 0))
        (flags,) = struct.unpack_from("H", answer, 16)
        fcntl.ioctl(sock.fileno(), SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | IFF_UP))


def parse_resolv_conf(text: str) -> dict[str, list[str]]:
    """Nameservers and search domains from resolv.conf text."""
    nameservers: list[str] = []
    search: list[str] = []
    for raw in text.splitlines():
        fields = raw.split("#", 1)[0].split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            nameservers.append(fields[1])
        elif fields and fields[0] in ("search", "domain"):
            search = fields[1:]
    return {"nameservers": nameservers, "search": search}
