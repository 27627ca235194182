"""``verify-attestation --policy FILE.rego|DIR``: a user's Rego policy, decided by the real OPA.

Real attestations (made by ``python -m attest_step attest`` with a key from real cosign), the
real OPA v1.22.4 (.tools/bin/opa). The CLI's decision on each case of
tests/integration/test_policy_engines.py is the one ``opa eval`` gives directly on the same
envelope; a user's own package works with ``--policy-query``; every way a policy can fail to
decide fails closed with one line.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from attest_step import rego
from tests.fixtures.keys import KeyPair
from tests.fixtures.tools import REPO_ROOT, require_tool
from tests.integration.test_policy_engines import (
    CASES,
    RULE_DATA,
    RULES,
    Case,
    _env,
    attest,
    codes,
    opa_deny,
)

OWN_POLICY = """package acme.release

import rego.v1

deny contains msg if {
\tinput.predicate.runDetails.builder.id != data.acme.builder
\tmsg := sprintf("builder %q is not ours", [input.predicate.runDetails.builder.id])
}
"""


@pytest.fixture(scope="module")
def opa() -> Path:
    return require_tool("opa")


@pytest.fixture(scope="module")
def envelopes(
    real_cosign_key_pair: KeyPair, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """One envelope per case, made once for the module."""
    made: dict[str, Path] = {}
    for case in CASES:
        work = tmp_path_factory.mktemp(f"rego-{case.name}")
        envelope = work / "att.json"
        attest(
            real_cosign_key_pair,
            case,
            work,
            *("--subject-path", str(work / "out"), "--output-file", str(envelope)),
        )
        made[case.name] = envelope
    return made


def verify(
    keys: KeyPair, envelope: Path, *args: str, opa: Path | None = None
) -> subprocess.CompletedProcess[str]:
    extra = ["--opa", str(opa)] if opa is not None else []
    argv = [sys.executable, "-m", "attest_step", "verify-attestation", "--key", str(keys.pub)]
    return subprocess.run(
        [*argv, "--envelope", str(envelope), *extra, *args],
        cwd=REPO_ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_the_flag_decides_as_opa_eval_does(
    opa: Path, case: Case, real_cosign_key_pair: KeyPair, envelopes: dict[str, Path]
) -> None:
    envelope = envelopes[case.name]
    expected = codes(opa_deny(envelope, RULE_DATA))
    assert expected == ({case.rule} if case.rule else set())

    proc = verify(
        real_cosign_key_pair,
        envelope,
        *("--policy", str(RULES), "--policy-data", str(RULE_DATA)),
        opa=opa,
    )
    if case.rule is None:
        assert proc.returncode == 0, proc.stderr
        assert "gave no denials at data.attest_step.tekton_step.deny" in proc.stdout
    else:
        line = one_line_error(proc)
        assert proc.returncode == 1
        assert "policy not satisfied" in line and f"{case.rule}:" in line, line

    # the whole policy/ directory the way `opa eval -d policy/release -d rule_data.yml` reads
    dirs = verify(
        real_cosign_key_pair,
        envelope,
        *("--policy", str(RULES.parent), "--policy-data", str(RULE_DATA)),
        "--output",
        "json",
        opa=opa,
    )
    assert (dirs.returncode == 0) == (case.rule is None), dirs.stderr
    if case.rule is None:
        assert json.loads(dirs.stdout)["verified"] is True


def test_a_users_own_package_and_both_policies_together(
    opa: Path, real_cosign_key_pair: KeyPair, envelopes: dict[str, Path], tmp_path: Path
) -> None:
    policy_dir = tmp_path / "acme"
    policy_dir.mkdir()
    (policy_dir / "release.rego").write_text(OWN_POLICY)
    ours = tmp_path / "ours.json"
    ours.write_text(
        json.dumps({"acme": {"builder": "https://attest-step.dev/builders/tekton-step/v1"}})
    )
    query = ("--policy-query", "data.acme.release.deny")
    good = envelopes["good"]
    passed = verify(
        real_cosign_key_pair,
        good,
        "--policy",
        str(policy_dir),
        "--policy-data",
        str(ours),
        *query,
        opa=opa,
    )
    assert passed.returncode == 0, passed.stderr

    theirs = tmp_path / "theirs.json"
    theirs.write_text(json.dumps({"acme": {"builder": "https://builders.example/ours"}}))
    denied = verify(
        real_cosign_key_pair,
        good,
        "--policy",
        str(policy_dir),
        "--policy-data",
        str(theirs),
        *query,
        opa=opa,
    )
    line = one_line_error(denied)
    assert 'builder "https://attest-step.dev/builders/tekton-step/v1" is not ours' in line

    # a built-in YAML policy and a Rego policy in one call: both must hold
    builtin = tmp_path / "policy.yaml"
    builtin.write_text("allowedBuilderIds: [https://builders.example/ours]\n")
    both = verify(
        real_cosign_key_pair,
        good,
        *("--policy", str(builtin), "--policy", str(policy_dir), "--policy-data", str(ours)),
        *query,
        opa=opa,
    )
    assert "is not in allowedBuilderIds" in one_line_error(both)


BAD_POLICIES = [
    ("syntax", 'package x\n\ndeny contains "a" if {\n', "rego_parse_error"),
    (
        "no-decision",
        'package other\n\nimport rego.v1\n\ndeny contains "a" if false\n',
        "is undefined",
    ),
    ("not-a-set", "package attest_step.tekton_step\n\ndeny := true\n", "not a set of denials"),
    (
        "compile",
        "package attest_step.tekton_step\n\nimport rego.v1\n\ndeny contains x if y\n",
        "rego_",
    ),
    (
        "too-slow",
        'package attest_step.tekton_step\n\nimport rego.v1\n\ndeny contains "never" if {\n'
        "\tsome i in numbers.range(1, 100000)\n\tsome j in numbers.range(1, 100000)\n"
        "\ti * j == -1\n}\n",
        "did not decide",
    ),
]


@pytest.mark.parametrize(("name", "source", "says"), BAD_POLICIES, ids=[b[0] for b in BAD_POLICIES])
def test_a_policy_that_cannot_decide_fails_closed(
    opa: Path,
    name: str,
    source: str,
    says: str,
    real_cosign_key_pair: KeyPair,
    envelopes: dict[str, Path],
    tmp_path: Path,
) -> None:
    policy = tmp_path / f"{name}.rego"
    policy.write_text(source)
    proc = verify(
        real_cosign_key_pair,
        envelopes["good"],
        *("--policy", str(policy), "--policy-timeout", "1"),
        opa=opa,
    )
    line = one_line_error(proc)
    assert proc.returncode == 2, line
    assert says in line, line
    if name in ("syntax", "compile"):
        assert str(policy) in line  # the user's path, not the staged copy


def test_bad_policy_paths_and_bounds(
    opa: Path, real_cosign_key_pair: KeyPair, envelopes: dict[str, Path], tmp_path: Path
) -> None:
    good = envelopes["good"]
    keys = real_cosign_key_pair
    missing = one_line_error(verify(keys, good, "--policy", str(tmp_path / "nope.rego"), opa=opa))
    assert "nope.rego: cannot read it" in missing

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not a policy")
    assert "no .rego" in one_line_error(verify(keys, good, "--policy", str(empty), opa=opa))

    data_only = one_line_error(
        verify(
            keys, good, "--policy", str(RULES), "--policy-data", str(tmp_path / "x.json"), opa=opa
        )
    )
    assert "x.json: cannot read it" in data_only

    no_rego = one_line_error(verify(keys, good, "--policy-data", str(RULE_DATA), opa=opa))
    assert "--policy-data is data for a Rego policy" in no_rego

    big = tmp_path / "big.rego"
    big.write_bytes(b"package big\n" + b"# padding\n" * (rego.MAX_POLICY_BYTES // 10 + 1))
    assert "larger than" in one_line_error(verify(keys, good, "--policy", str(big), opa=opa))

    bad_query = one_line_error(
        verify(keys, good, "--policy", str(RULES), "--policy-query", "data.x; true", opa=opa)
    )
    assert "--policy-query" in bad_query

    no_opa = one_line_error(
        verify(keys, good, "--policy", str(RULES), opa=tmp_path / "bin" / "opa")
    )
    assert "OPA not found" in no_opa


def test_the_tasks_gate_decides_as_the_cli(
    opa: Path, envelopes: dict[str, Path], tmp_path: Path
) -> None:
    """The verify-provenance Task's OPA step evaluates gate_module with `opa eval --fail`."""
    gate = tmp_path / "gate.rego"
    gate.write_text(rego.gate_module(rego.DEFAULT_QUERY))
    import base64  # noqa: PLC0415

    def gate_passes(envelope: Path, *data: Path) -> bool:
        statement = json.loads(base64.b64decode(json.loads(envelope.read_bytes())["payload"]))
        document = tmp_path / "input.json"
        document.write_text(json.dumps(statement))
        args = [str(opa), "eval", "--fail", "--format", "pretty", "-d", str(gate)]
        args += [f"--data={d}" for d in data] + ["--input", str(document), rego.GATE_QUERY]
        proc = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
        # 1: a denial or no decision; 2: OPA refused the policy (its type checker)
        assert proc.returncode in (0, 1, 2), proc.stderr
        assert proc.returncode == 2 or "denials:" in proc.stderr
        return proc.returncode == 0

    for case in CASES:
        assert gate_passes(envelopes[case.name], RULES, RULE_DATA) == (case.rule is None)
    # no decision (the rules not loaded) and a decision of the wrong type fail the gate too
    assert not gate_passes(envelopes["good"], RULE_DATA)
    wrong = tmp_path / "wrong.rego"
    wrong.write_text("package attest_step.tekton_step\n\ndeny := true\n")
    assert not gate_passes(envelopes["good"], wrong)
