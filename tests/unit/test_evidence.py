"""Evidence records: /proc parsing, contradictions, atomic writing, loading."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from attest_step.errors import AttestStepError
from attest_step.hermetic import evidence, procnet

DEV = """Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0
  eth0: 646832   403    0    0    0     0          0         0  31510   289    0    0    0     0       0          0
  sit0:      0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
"""  # noqa: E501
ROUTE = (
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
    "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
    "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
)
IPV6 = (
    "00000000000000000000000000000001 80 00000000000000000000000000000000 00 "
    "00000000000000000000000000000000 00000000 00000002 00000000 80200001       lo\n"
    "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
    "00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n"
)


def test_parse_proc_net() -> None:
    interfaces = procnet.parse_dev(DEV)
    assert [i["name"] for i in interfaces] == ["lo", "eth0", "sit0"]
    assert interfaces[1]["rxPackets"] == 403
    assert interfaces[1]["txBytes"] == 31510
    routes = procnet.parse_route(ROUTE)
    assert routes[0] == {
        "iface": "eth0",
        "destination": "0.0.0.0/0",
        "gateway": "192.0.2.1",
        "flags": ["UP", "GATEWAY"],
    }
    assert routes[1]["destination"] == "192.0.2.0/24"
    six = procnet.parse_ipv6_route(IPV6)
    assert six[0]["destination"] == "::1/128"
    assert six[1]["flags"] == ["REJECT"]
    assert procnet.parse_resolv_conf("# c\nnameserver 10.0.0.1\nsearch a b\n") == {
        "nameservers": ["10.0.0.1"],
        "search": ["a", "b"],
    }


def _view(dev: str, route: str = "", ipv6: str = IPV6) -> dict[str, object]:
    return evidence.view(
        observer="test",
        at="now",
        netns="net:[1]",
        dev=dev,
        route=route,
        ipv6_route=ipv6,
        with_flags=False,
    )


def test_loopback_only_has_no_contradiction() -> None:
    lo_only = "\n".join(DEV.splitlines()[:3] + DEV.splitlines()[4:]) + "\n"
    record = {"views": [_view(lo_only)]}
    # sit0 (a tunnel fallback device, down, no traffic, no route) is not network.
    assert evidence.contradictions(record) == []


def test_network_is_contradiction() -> None:
    record = {
        "views": [_view(DEV, ROUTE), _view(DEV, ROUTE)],
        "parentNetns": "net:[1]",
        "command": {"netns": "net:[1]"},
        "connects": [
            {"protocol": "tcp", "target": "tcp://10.0.0.1:443", "address": "10.0.0.1", "ok": True},
            {"protocol": "tcp", "target": "tcp://127.0.0.1:1", "address": "127.0.0.1", "ok": True},
        ],
        "resolves": [{"name": "x.test", "ok": True, "viaDns": True, "addresses": ["192.0.2.7"]}],
    }
    found = evidence.contradictions(record)
    assert found == [
        "interface eth0 carried traffic [test, now; test, now]",
        "IPv4 route 0.0.0.0/0 via eth0 [test, now; test, now]",
        "IPv4 route 192.0.2.0/24 via eth0 [test, now; test, now]",
        "command ran in its parent's network namespace net:[1]",
        "tcp connect to tcp://10.0.0.1:443 (10.0.0.1) succeeded",
        "DNS lookup of x.test answered 192.0.2.7",
    ]


def test_write_atomic_replaces_symlink_and_leaves_no_temp(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep")
    target = tmp_path / "e.json"
    target.symlink_to(victim)
    record = {"mediaType": evidence.EVIDENCE_MEDIA_TYPE, "producer": {"verb": "probe"}, "views": []}
    evidence.write_atomic(target, record)
    assert victim.read_text() == "keep"
    assert not target.is_symlink()
    assert evidence.load(target)["producer"]["verb"] == "probe"
    assert sorted(os.listdir(tmp_path)) == ["e.json", "victim"]


def test_target_survives_directory_swap(tmp_path: Path) -> None:
    directory = tmp_path / "out"
    directory.mkdir()
    target = evidence.EvidenceTarget.open(directory / "e.json")
    directory.rename(tmp_path / "moved")
    (tmp_path / "out").mkdir()
    try:
        target.write(b"{}\n")
    finally:
        target.close()
    assert (tmp_path / "moved" / "e.json").read_text() == "{}\n"
    assert not (tmp_path / "out" / "e.json").exists()


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("not json", "not valid JSON"),
        (json.dumps({"mediaType": "x"}), "not a network-evidence record"),
        (
            json.dumps({"mediaType": evidence.EVIDENCE_MEDIA_TYPE, "producer": {"verb": "x"}}),
            "producer.verb",
        ),
    ],
)
def test_load_rejects_bad_files(tmp_path: Path, content: str, needle: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(AttestStepError) as caught:
        evidence.load(path)
    assert needle in str(caught.value)
    assert str(path) in str(caught.value)


def test_step_falls_back_to_file_stem(tmp_path: Path) -> None:
    assert evidence.step_of({"step": None}, tmp_path / "compile.json") == "compile"
    assert evidence.step_of({"step": "build"}, tmp_path / "compile.json") == "build"
