"""Network-evidence files (attest_step/hermetic/evidence.py), which a build step can write.

Contract: evidence.load returns a record or raises AttestStepError for any file; what it
accepts, contradictions() reads without raising; a record dumped and loaded is unchanged;
``attest --network-evidence FILE`` exits 0, 1 or 2 with one line, whatever FILE holds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from attest_step.errors import AttestStepError
from attest_step.hermetic import evidence
from tests.fixtures.keys import private_pem
from tests.fuzz.support import Scratch, assert_cli_contract, fuzz, json_values, run_cli

MEDIA = evidence.EVIDENCE_MEDIA_TYPE
interfaces = st.lists(
    st.fixed_dictionaries(
        {"name": st.sampled_from(["lo", "eth0"]) | json_values},
        optional={
            "flags": st.lists(st.sampled_from(["UP", "LOOPBACK"]), max_size=2) | json_values,
            "rxPackets": st.integers(0, 10) | json_values,
            "txPackets": st.integers(0, 10) | json_values,
        },
    )
    | json_values,
    max_size=3,
)
routes = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "iface": st.sampled_from(["lo", "eth0"]) | json_values,
            "destination": st.text(max_size=10) | json_values,
            "flags": st.lists(st.sampled_from(["UP", "REJECT"]), max_size=2) | json_values,
        },
    )
    | json_values,
    max_size=2,
)
views = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "observer": st.text(max_size=10) | json_values,
            "at": st.text(max_size=10),
            "netns": st.text(max_size=10) | st.none(),
            "interfaces": interfaces | json_values,
            "ipv4Routes": routes | json_values,
            "ipv6Routes": routes | st.none(),
        },
    )
    | json_values,
    max_size=3,
)
records = st.fixed_dictionaries(
    {
        "mediaType": st.just(MEDIA),
        "producer": st.fixed_dictionaries({"verb": st.sampled_from(["run", "probe"])}),
        "views": views,
    },
    optional={
        "step": st.text(max_size=10) | st.none(),
        "parentNetns": st.text(max_size=10) | json_values,
        "command": st.fixed_dictionaries(
            {}, optional={"netns": json_values, "exitCode": json_values}
        )
        | json_values,
        "connects": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "ok": json_values,
                    "address": json_values,
                    "target": json_values,
                    "protocol": json_values,
                },
            )
            | json_values,
            max_size=2,
        )
        | json_values,
        "resolves": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "ok": json_values,
                    "addresses": json_values,
                    "viaDns": json_values,
                    "name": json_values,
                },
            )
            | json_values,
            max_size=2,
        )
        | json_values,
    },
)
files = (
    records.map(lambda r: json.dumps(r).encode())
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.binary(max_size=100)
)


def _file(tmp: Scratch, data: bytes) -> Path:
    path = tmp("evidence") / "build.json"
    path.write_bytes(data)
    return path


@fuzz
@given(data=files)
def test_any_evidence_file_loads_or_raises_attest_step_error(data: bytes, scratch: Scratch) -> None:
    try:
        record = evidence.load(_file(scratch, data))
    except AttestStepError:
        return
    found = evidence.contradictions(record)
    assert all(isinstance(item, str) for item in found)


@fuzz
@given(record=records)
def test_records_round_trip(record: dict[str, Any], scratch: Scratch) -> None:
    path = _file(scratch, evidence.dumps(record))
    try:
        loaded = evidence.load(path)
    except AttestStepError:
        return  # a stricter validator may refuse a generated shape; it must say so cleanly
    assert loaded == json.loads(json.dumps(record))


@fuzz
@given(data=files)
def test_attest_cli_with_any_evidence_file(data: bytes, scratch: Scratch) -> None:
    work = scratch("attest")
    (work / "key.pem").write_bytes(private_pem(ec.generate_private_key(ec.SECP256R1())))
    (work / "a.txt").write_text("a\n")
    (work / "build.json").write_bytes(data)
    result = run_cli(
        [
            *["attest", "--key", str(work / "key.pem"), "--subject-path", str(work / "a.txt")],
            *["--network-evidence", str(work / "build.json"), "--declare-hermetic", "build"],
            *["--no-upload", "--output-file", str(work / "out.json")],
        ]
    )
    assert_cli_contract(result)
