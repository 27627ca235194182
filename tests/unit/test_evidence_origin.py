"""The consumer (``attest``) labels evidence by where it can establish it came from, and fails
closed on missing, misdeclared or contradicting evidence."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from attest_step.cli.main import cli
from attest_step.errors import UsageError
from attest_step.hermetic import declare, evidence
from attest_step.policy import evaluate_policy
from tests.fixtures.keys import PemKey

MEDIA = evidence.EVIDENCE_MEDIA_TYPE
LO_ONLY = [{"observer": "probe", "at": "probe", "interfaces": [{"name": "lo"}]}]
WITH_NETWORK = [
    {
        "observer": "probe",
        "at": "probe",
        "interfaces": [{"name": "lo"}, {"name": "eth0", "flags": ["UP"], "rxPackets": 9}],
    }
]


@pytest.fixture
def key(pem_keys: dict[str, PemKey]) -> PemKey:
    return pem_keys["ecdsa-p256"]


def write(path: Path, record: dict[str, Any]) -> Path:
    path.write_text(json.dumps(record))
    return path


def probe(step: str, views: list[dict[str, Any]]) -> dict[str, Any]:
    return {"mediaType": MEDIA, "producer": {"verb": "probe"}, "step": step, "views": views}


def attest(key: PemKey, tmp_path: Path, *args: str) -> tuple[Result, dict[str, Any] | None]:
    subject = tmp_path / "app.txt"
    subject.write_text("app\n")
    out = tmp_path / "envelope.json"
    result = CliRunner().invoke(
        cli,
        [
            *("attest", "--key", str(key.key), "--subject-path", str(subject)),
            *("--no-upload", "--output-file", str(out), *args),
        ],
        catch_exceptions=False,
    )
    if result.exit_code != 0:
        return result, None
    statement = json.loads(base64.b64decode(json.loads(out.read_bytes())["payload"]))
    return result, statement


def isolation(statement: dict[str, Any], step: str = "build") -> dict[str, Any]:
    (item,) = [
        b
        for b in statement["predicate"]["runDetails"]["byproducts"]
        if b["name"] == f"attest-step/network-isolation/{step}"
    ]
    content: dict[str, Any] = json.loads(base64.b64decode(item["content"]))
    assert content["hermetic"] is item["annotations"]["hermetic"]
    return content


def test_attack_bare_run_file_is_not_observed(key: PemKey, tmp_path: Path) -> None:
    """The issue's attack: a file with producer.verb "run" and no views counted as observed."""
    bare = write(
        tmp_path / "build-run.json",
        {"mediaType": MEDIA, "producer": {"verb": "run"}, "step": "build", "views": []},
    )
    result, statement = attest(
        key,
        tmp_path,
        *("--network-evidence", str(bare), "--declare-hermetic", "build", "--task-step", "build"),
    )
    assert result.exit_code == 0, result.output
    assert statement is not None
    content = isolation(statement)
    assert content["observedIsolation"] is False
    (entry,) = content["evidence"]
    assert entry["source"] == "reported"
    assert "outside the evidence volume" in entry["notReportedAsObservedBecause"][0]
    (violation,) = evaluate_policy(statement, {"requireObservedIsolation": True})
    assert "no isolation observed" in violation


def test_attack_declared_step_without_evidence_is_unknown(key: PemKey, tmp_path: Path) -> None:
    result, statement = attest(key, tmp_path, "--declare-hermetic", "build", "--task-step", "build")
    assert result.exit_code == 0, result.output
    assert statement is not None
    content = isolation(statement)
    assert (content["hermetic"], content["status"]) == (False, "unknown")
    assert "no evidence of its isolation" in content["reasons"][0]
    (violation,) = evaluate_policy(statement, {"requireHermetic": True})
    assert "step build: not recorded as network-isolated" in violation


def test_attack_declared_run_step_with_only_reported_evidence_is_unknown(
    key: PemKey, tmp_path: Path
) -> None:
    """Declared to run under attest-step run: a probe file (or a run record outside the
    evidence volume) does not stand in for the isolating parent's record."""
    result, statement = attest(
        key,
        tmp_path,
        *("--declare-hermetic", "build/run", "--task-step", "build"),
        *("--network-evidence", str(write(tmp_path / "p.json", probe("build", LO_ONLY)))),
    )
    assert result.exit_code == 0, result.output
    assert statement is not None
    content = isolation(statement)
    assert content["status"] == "unknown"
    assert "evidence volume holds no complete record" in content["reasons"][0]


@pytest.mark.parametrize(
    "args",
    [
        ["--declare-hermetic", "biuld", "--task-step", "build", "--task-step", "attest"],
        ["--declare-hermetic", "build"],  # outside Tekton, with no step list
        ["--declare-hermetic", "build:RUN_ISOLATED=true", "--task-step", "build"],
        ["--declare-hermetic", "build/sandbox", "--task-step", "build"],
        ["--declare-hermetic", "Build", "--task-step", "Build"],
    ],
    ids=["no such step", "no step list", "param not recorded", "mechanism", "not a step name"],
)
def test_attack_declare_hermetic_names_a_step_that_does_not_exist(
    key: PemKey, tmp_path: Path, args: list[str]
) -> None:
    result, _ = attest(key, tmp_path, *args)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("attest-step: error: --declare-hermetic")


def test_attack_evidence_naming_the_attest_step_is_not_skipped(key: PemKey, tmp_path: Path) -> None:
    """A build writes its networked evidence under the attest step's name: it must not hide
    in the attest step's own record, which requireHermetic skips."""
    clean = write(tmp_path / "build.json", probe("build", LO_ONLY))
    networked = write(tmp_path / "attest.json", probe("attest", WITH_NETWORK))
    result, statement = attest(
        key,
        tmp_path,
        *("--declare-hermetic", "build", "--task-step", "build", "--task-step", "attest"),
        *("--network-evidence", str(clean), "--network-evidence", str(networked)),
        *("--observe-self-as", "attest"),
    )
    assert result.exit_code == 0, result.output
    assert statement is not None
    assert isolation(statement)["hermetic"] is True
    attest_record = isolation(statement, "attest")
    assert attest_record["role"] == "build"
    assert any("eth0" in c for c in attest_record["contradictions"])
    violations = evaluate_policy(statement, {"requireHermetic": True})
    assert any(v.startswith("step attest: not recorded as network-isolated") for v in violations)


def test_contradicting_reported_evidence_wins(key: PemKey, tmp_path: Path) -> None:
    result, statement = attest(
        key,
        tmp_path,
        *("--declare-hermetic", "build", "--task-step", "build"),
        *("--network-evidence", str(write(tmp_path / "a.json", probe("build", LO_ONLY)))),
        *("--network-evidence", str(write(tmp_path / "b.json", probe("build", WITH_NETWORK)))),
    )
    assert result.exit_code == 0, result.output
    assert statement is not None
    content = isolation(statement)
    assert (content["hermetic"], content["status"]) == (False, "contradicted")


@pytest.mark.parametrize(
    ("value", "declared"),
    [("true", True), ("false", False), ("TRUE", False), ("", False), ("true ", False)],
)
def test_conditional_declaration_follows_the_recorded_param(
    key: PemKey, tmp_path: Path, value: str, declared: bool
) -> None:
    result, statement = attest(
        key,
        tmp_path,
        *("--param", f"RUN_ISOLATED={value}", "--task-step", "build"),
        *("--declare-hermetic", "build:RUN_ISOLATED=true"),
        *("--network-evidence", str(write(tmp_path / "p.json", probe("build", LO_ONLY)))),
    )
    assert result.exit_code == 0, result.output
    assert statement is not None
    content = isolation(statement)
    assert content["declared"] is declared
    assert content["hermetic"] is declared
    if not declared:
        assert f"param RUN_ISOLATED is {value!r}" in " ".join(content["reasons"])


def test_task_steps_come_from_tektons_step_directory(tmp_path: Path) -> None:
    steps = tmp_path / "steps"
    steps.mkdir()
    for name in ("0", "1", "step-prefetch", "step-build", "step-attest"):
        (steps / name).symlink_to("/tekton/run/0/status")
    assert declare.task_steps([], steps) == ["attest", "build", "prefetch"]
    assert declare.task_steps(["x"], steps) == ["x"]
    assert declare.task_steps([], tmp_path / "absent") is None
    with pytest.raises(UsageError, match="has no step 'ghost'"):
        declare.evaluate(["ghost"], {}, declare.task_steps([], steps))
