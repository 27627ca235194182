"""Property tests of the evidence parsers: whatever a build step writes, they answer cleanly.

Contracts (evidence files, the evidence volume's names, mountinfo, declarations are all
outside input):

- ``evidence.parse`` returns a record or raises AttestStepError, for any bytes; what it
  returns, ``contradictions``, ``run_record_gaps`` and the provenance's per-step record read
  without raising;
- a complete record of the isolating parent has no gaps, and loses that status when any one
  required part is taken away or given the wrong type;
- ``shield.parse_mountinfo`` never raises and undoes the kernel's octal escapes;
  ``paths_reaching`` finds the mount point of every mount that shows the directory;
- ``declare.parse`` returns a declaration or raises UsageError.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attest_step.errors import AttestStepError, UsageError
from attest_step.hermetic import declare, evidence, record, shield

PROPERTY = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
MEDIA = evidence.EVIDENCE_MEDIA_TYPE

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
names = st.sampled_from(["lo", "eth0", "sit0", ""]) | st.text(max_size=6)
interfaces = st.fixed_dictionaries(
    {"name": names},
    optional={
        "rxPackets": st.integers(0, 5),
        "txPackets": st.integers(0, 5),
        "rxBytes": st.integers(0, 500),
        "txBytes": st.integers(0, 500),
        "flags": st.lists(st.sampled_from(["UP", "LOOPBACK", "RUNNING"]), max_size=3) | st.none(),
    },
)
routes = st.fixed_dictionaries(
    {},
    optional={
        "iface": names | st.none(),
        "destination": st.text(max_size=12),
        "flags": st.lists(st.sampled_from(["UP", "GATEWAY", "REJECT"]), max_size=3),
    },
)


def views(shape: list[tuple[str, str]] | None = None) -> st.SearchStrategy[list[dict[str, Any]]]:
    def one(observer: st.SearchStrategy[str], at: st.SearchStrategy[str]) -> Any:
        return st.fixed_dictionaries(
            {
                "observer": observer,
                "at": at,
                "netns": st.just("net:[2]"),
                "interfaces": st.lists(interfaces, max_size=3),
            },
            optional={
                "ipv4Routes": st.lists(routes, max_size=2) | st.none(),
                "ipv6Routes": st.lists(routes, max_size=2) | st.none(),
            },
        )

    if shape is None:
        return st.lists(one(st.text(max_size=8), st.text(max_size=8)), max_size=3)
    return st.tuples(*(one(st.just(o), st.just(a)) for o, a in shape)).map(list)


probe_records = st.fixed_dictionaries(
    {
        "mediaType": st.just(MEDIA),
        "producer": st.fixed_dictionaries({"verb": st.just("probe")}),
        "views": views(),
    },
    optional={
        "step": st.text(max_size=8) | st.none(),
        "connects": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "ok": st.booleans(),
                    "address": st.sampled_from(["127.0.0.1", "::1", "10.0.0.1", "x"]),
                    "target": st.text(max_size=8),
                    "protocol": st.sampled_from(["tcp", "udp"]),
                },
            ),
            max_size=2,
        ),
        "resolves": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "ok": st.booleans(),
                    "name": st.text(max_size=8),
                    "viaDns": st.booleans(),
                    "addresses": st.lists(st.sampled_from(["127.0.0.1", "192.0.2.1"]), max_size=2),
                },
            ),
            max_size=2,
        ),
    },
)
run_records = st.fixed_dictionaries(
    {
        "mediaType": st.just(MEDIA),
        "producer": st.just({"name": "attest-step", "version": "0.1.0", "verb": "run"}),
        "step": st.just("build"),
        "isolation": st.fixed_dictionaries(
            {
                "network": st.just("none"),
                "namespaces": st.permutations(["user", "mnt", "pid", "net"]),
                "nestedUserNamespace": st.just(True),
                "evidenceHidden": st.just(["/workspace/attest-evidence"]),
                "procfs": st.sampled_from(["fresh", "outer"]),
                "landlock": st.none() | st.integers(1, 7),
            }
        ),
        "parentNetns": st.just("net:[1]"),
        "command": st.fixed_dictionaries(
            {
                "argv": st.lists(st.text(max_size=6), min_size=1, max_size=3),
                "exitCode": st.integers(0, 255),
                "netns": st.just("net:[2]"),
            }
        ),
        "views": views(list(evidence.RUN_VIEWS)),
        "startedOn": st.just("2026-01-01T00:00:00.000Z"),
        "finishedOn": st.just("2026-01-01T00:00:01.000Z"),
        "evidenceVolume": st.just({"dir": "/workspace/attest-evidence", "file": "build.json"}),
    }
)


def _mutate(value: Any, path: list[Any], replacement: Any) -> Any:
    """``value`` with the item at ``path`` replaced (or removed when replacement is ...)."""
    out = copy.deepcopy(value)
    target = out
    for key in path[:-1]:
        target = target[key]
    if replacement is ...:
        del target[path[-1]]
    else:
        target[path[-1]] = replacement
    return out


def _paths(value: Any, prefix: list[Any] | None = None) -> list[list[Any]]:
    prefix = prefix or []
    found: list[list[Any]] = []
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return found
    for key, item in items:
        found.append([*prefix, key])
        found.extend(_paths(item, [*prefix, key]))
    return found


def _everything_reads(loaded: dict[str, Any]) -> None:
    """What the consumer does with an accepted record must not raise."""
    assert all(isinstance(item, str) for item in evidence.contradictions(loaded))
    assert all(isinstance(item, str) for item in evidence.run_record_gaps(loaded))
    entry = record.evidence_entry(loaded, "reported", "fuzz")
    full = record.step_record("build", [], [entry])
    record.descriptor(full)


@PROPERTY
@given(data=st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_any_bytes_parse_or_raise_attest_step_error(data: bytes) -> None:
    try:
        loaded = evidence.parse(data, source="fuzz")
    except AttestStepError as err:
        assert "\n" not in str(err)
        return
    _everything_reads(loaded)


@PROPERTY
@given(base=probe_records | run_records, data=st.data())
def test_any_field_replaced_by_any_json_parses_or_raises(base: dict[str, Any], data: Any) -> None:
    path = data.draw(st.sampled_from(_paths(base)))
    mutated = _mutate(base, path, data.draw(json_values))
    try:
        loaded = evidence.parse(json.dumps(mutated).encode(), source="fuzz")
    except AttestStepError:
        return
    _everything_reads(loaded)


# Views as a hostile build would write them: every field that contradictions() reads may hold
# any JSON value instead of the right type.
hostile_interfaces = st.lists(
    st.fixed_dictionaries(
        {"name": names | json_values},
        optional={
            "rxPackets": st.integers(0, 5) | json_values,
            "txPackets": st.integers(0, 5) | json_values,
            "flags": st.lists(st.sampled_from(["UP", "LOOPBACK"]), max_size=2) | json_values,
        },
    )
    | json_values,
    max_size=3,
)
hostile_routes = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "iface": names | json_values,
            "destination": json_values,
            "flags": st.lists(st.sampled_from(["UP", "REJECT"]), max_size=2) | json_values,
        },
    )
    | json_values,
    max_size=2,
)
hostile_views = st.lists(
    st.fixed_dictionaries(
        {"observer": st.text(max_size=6) | json_values, "at": st.text(max_size=6) | json_values},
        optional={
            "netns": st.text(max_size=6) | json_values,
            "interfaces": hostile_interfaces | json_values,
            "ipv4Routes": hostile_routes | json_values,
            "ipv6Routes": hostile_routes | json_values,
        },
    )
    | json_values,
    max_size=3,
)


@PROPERTY
@given(base=probe_records | run_records, hostile=hostile_views)
def test_hostile_views_parse_or_raise(base: dict[str, Any], hostile: list[Any]) -> None:
    mutated = dict(base, views=hostile)
    try:
        loaded = evidence.parse(json.dumps(mutated).encode(), source="fuzz")
    except AttestStepError:
        return
    _everything_reads(loaded)


@PROPERTY
@given(
    base=run_records,
    view=st.integers(0, 2),
    field=st.sampled_from(["rxPackets", "txPackets", "flags", "name"]),
    route_field=st.sampled_from(["iface", "flags", "destination"]),
    value=json_values,
)
def test_one_hostile_field_in_a_view_parses_or_raises(
    base: dict[str, Any], view: int, field: str, route_field: str, value: Any
) -> None:
    """Exactly one wrong field next to an otherwise valid interface and route."""
    mutated = copy.deepcopy(base)
    interface: dict[str, Any] = {"name": "eth0", "rxPackets": 1, "txPackets": 1, field: value}
    route: dict[str, Any] = {"iface": "eth0", "destination": "0.0.0.0/0", route_field: value}
    mutated["views"][view]["interfaces"].append(interface)
    mutated["views"][view]["ipv4Routes"] = [route]
    try:
        loaded = evidence.parse(json.dumps(mutated).encode(), source="fuzz")
    except AttestStepError:
        return
    _everything_reads(loaded)


@PROPERTY
@given(base=probe_records | run_records)
def test_records_round_trip(base: dict[str, Any]) -> None:
    loaded = evidence.parse(evidence.dumps(base), source="fuzz")
    assert loaded == json.loads(json.dumps(base))
    _everything_reads(loaded)


@PROPERTY
@given(base=run_records)
def test_a_complete_run_record_has_no_gaps(base: dict[str, Any]) -> None:
    assert evidence.run_record_gaps(base) == []


REQUIRED = [
    ["producer", "verb"],
    ["producer", "name"],
    ["step"],
    ["isolation"],
    ["isolation", "network"],
    ["isolation", "namespaces"],
    ["isolation", "nestedUserNamespace"],
    ["isolation", "evidenceHidden"],
    ["parentNetns"],
    ["command", "netns"],
    ["command", "exitCode"],
    ["views", 0],
    ["views", 2, "observer"],
    ["views", 1, "at"],
    ["views", 0, "netns"],
    ["startedOn"],
    ["finishedOn"],
    ["evidenceVolume"],
    ["evidenceVolume", "file"],
]


@pytest.mark.parametrize("path", REQUIRED, ids=lambda p: "/".join(map(str, p)))
@settings(PROPERTY, max_examples=12)
@given(
    base=run_records,
    replacement=st.sampled_from([..., None, False, 0, [], {}]),
)
def test_a_run_record_missing_any_required_part_is_incomplete(
    path: list[Any], base: dict[str, Any], replacement: Any
) -> None:
    mutated = _mutate(base, path, replacement)
    try:
        loaded = evidence.parse(json.dumps(mutated).encode(), source="fuzz")
    except AttestStepError:
        return  # refused outright: even better
    if loaded == base:
        return  # the replacement was the value already there
    if path == ["command", "exitCode"] and type(replacement) is int:
        # Any integer is a real exit status: 0 over a generated 1 is another valid record.
        assert evidence.run_record_gaps(loaded) == []
        return
    assert evidence.run_record_gaps(loaded), (path, replacement)


def _views_reordered(views: list[Any]) -> list[Any]:
    return [views[1], views[0], views[2]]


@pytest.mark.parametrize(
    "change",
    [
        lambda views: views[:2],
        lambda views: [*views, views[2]],
        _views_reordered,
        lambda views: [dict(views[0], observer="attest-step probe (self)"), *views[1:]],
        lambda views: [*views[:2], dict(views[2], at="before-command")],
    ],
    ids=["a view missing", "a view more", "reordered", "other observer", "no after view"],
)
@settings(PROPERTY, max_examples=5)
@given(base=run_records)
def test_a_run_record_without_the_three_views_is_incomplete(
    change: Any, base: dict[str, Any]
) -> None:
    mutated = dict(base, views=change(copy.deepcopy(base["views"])))
    loaded = evidence.parse(json.dumps(mutated).encode(), source="fuzz")
    assert any("three views" in gap for gap in evidence.run_record_gaps(loaded))


@PROPERTY
@given(text=st.text(max_size=400))
def test_mountinfo_any_text_parses(text: str) -> None:
    for entry in shield.parse_mountinfo(text):
        assert isinstance(entry.mount_point, str) and isinstance(entry.mount_id, int)


path_parts = st.lists(
    st.text(alphabet=st.sampled_from("ab \t\\\nx-"), min_size=1, max_size=5).filter(
        lambda p: p not in (".", "..")
    ),
    max_size=4,
)


def _escape(path: str) -> str:
    return "".join(f"\\{ord(c):03o}" if c in " \t\n\\" else c for c in path)


@PROPERTY
@given(root=path_parts, point=path_parts, below=path_parts)
def test_mountinfo_escapes_and_paths_reaching(
    root: list[str], point: list[str], below: list[str]
) -> None:
    root_path = "/" + "/".join(root)
    point_path = "/" + "/".join(point)
    text = (
        f"36 25 8:1 {_escape(root_path)} {_escape(point_path)} rw,relatime shared:1 - ext4 "
        "/dev/sda1 rw\n"
        "37 25 0:5 / /proc rw - proc proc rw\n"
    )
    (entry, proc) = shield.parse_mountinfo(text)
    assert (entry.root, entry.mount_point, entry.device) == (root_path, point_path, "8:1")
    assert proc.fstype == "proc"
    inside = (root_path.rstrip("/") + "/" + "/".join(below)).rstrip("/") or "/"
    reached = shield.paths_reaching([entry, proc], "8:1", inside)
    expected = (point_path.rstrip("/") + "/" + "/".join(below)).rstrip("/") or "/"
    assert reached == [expected.replace("//", "/")] or reached == [expected]
    assert shield.paths_reaching([entry, proc], "9:9", inside) == []


@PROPERTY
@given(text=st.text(max_size=80))
def test_declaration_parses_or_raises_usage_error(text: str) -> None:
    try:
        item = declare.parse(text)
    except UsageError as err:
        assert "\n" not in str(err)
        return
    assert item.mechanism in (None, "run", "tekton")
    assert text.startswith(item.step)
    if item.param is not None:
        assert text.endswith(f":{item.param}={item.value}")


@pytest.mark.parametrize(
    ("text", "step", "mechanism", "param", "value"),
    [
        ("build", "build", None, None, None),
        ("build/run", "build", "run", None, None),
        ("build/tekton:TEKTON_HERMETIC=1", "build", "tekton", "TEKTON_HERMETIC", "1"),
        ("build:MODE=a=b", "build", None, "MODE", "a=b"),
        ("build/run:X=", "build", "run", "X", ""),
    ],
)
def test_declaration_examples(
    text: str, step: str, mechanism: str | None, param: str | None, value: str | None
) -> None:
    item = declare.parse(text)
    assert (item.step, item.mechanism, item.param, item.value) == (step, mechanism, param, value)
