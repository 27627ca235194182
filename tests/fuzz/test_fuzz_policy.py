"""Policy files (attest_step/policy.py) and their evaluation.

Contract: load_policy returns a dict or raises UsageError for any file content (YAML or
JSON); a loaded policy dumped as JSON loads back equal; evaluate_policy of a loaded policy
over any statement returns a list of sentences; ``verify-attestation --policy`` exits 0,
1 or 2 with one line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from attest_step.errors import UsageError
from attest_step.policy import evaluate_policy, load_policy
from tests.fuzz.support import Scratch, assert_cli_contract, fuzz, json_values, run_cli

# printable text: YAML (which also reads the JSON policies) refuses control characters
printable = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Co", "Cn")), min_size=1, max_size=12
)
strings = st.lists(printable, max_size=3, unique=True)
policies = st.fixed_dictionaries(
    {},
    optional={
        "apiVersion": st.just("attest-step.dev/v1"),
        "kind": st.just("Policy"),
        "requireHermetic": st.booleans(),
        "requireObservedIsolation": st.booleans(),
        "hermeticSteps": strings,
        "allowedBuilderIds": strings,
        "allowedSourceRepos": strings,
        "deniedBuildToolImages": strings,
        "requiredPredicateType": printable,
    },
)
yaml_texts = st.text(alphabet="abc:- #[]{}\"'\n\t&*!|>%@`01", max_size=80)


def _file(tmp: Scratch, data: bytes) -> Path:
    path = tmp("policy") / "policy.yaml"
    path.write_bytes(data)
    return path


@fuzz
@given(
    data=st.binary(max_size=120)
    | yaml_texts.map(str.encode)
    | json_values.map(lambda v: json.dumps(v).encode())
)
def test_any_policy_file_loads_or_raises_usage_error(data: bytes, scratch: Scratch) -> None:
    try:
        policy = load_policy(_file(scratch, data))
    except UsageError:
        return
    assert isinstance(policy, dict)


@fuzz
@given(policy=policies, as_yaml=st.booleans())
def test_valid_policies_round_trip(policy: dict[str, Any], as_yaml: bool, scratch: Scratch) -> None:
    text = yaml.safe_dump(policy) if as_yaml else json.dumps(policy, ensure_ascii=False)
    try:
        loaded = load_policy(_file(scratch, text.encode()))
    except UsageError as err:
        # a policy without rules is refused, like an empty or comment-only file (issue 11)
        assert not set(policy) - {"apiVersion", "kind"}, err
        return
    assert loaded == policy


def test_json_policy_with_escaped_astral_characters_round_trips(tmp_path: Path) -> None:
    policy = {"hermeticSteps": ["build-\U00010000"]}
    assert load_policy(_file_at(tmp_path, json.dumps(policy).encode())) == policy


def _file_at(directory: Path, data: bytes) -> Path:
    path = directory / "policy.json"
    path.write_bytes(data)
    return path


statement_like = st.fixed_dictionaries(
    {},
    optional={
        "predicateType": st.text(max_size=10) | json_values,
        "predicate": st.fixed_dictionaries(
            {},
            optional={
                "buildDefinition": st.fixed_dictionaries(
                    {},
                    optional={
                        "resolvedDependencies": json_values,
                        "externalParameters": json_values,
                    },
                )
                | json_values,
                "runDetails": st.fixed_dictionaries(
                    {}, optional={"builder": json_values, "byproducts": json_values}
                )
                | json_values,
            },
        )
        | json_values,
    },
)


@fuzz
@given(policy=policies, statement=statement_like)
def test_evaluating_a_loaded_policy_never_raises(
    policy: dict[str, Any], statement: dict[str, Any]
) -> None:
    violations = evaluate_policy(statement, policy)
    assert all(isinstance(v, str) for v in violations)


@fuzz
@given(data=yaml_texts.map(str.encode) | policies.map(lambda p: json.dumps(p).encode()))
def test_verify_attestation_cli_with_any_policy_file(data: bytes, scratch: Scratch) -> None:
    work = scratch("cli")
    (work / "policy.yaml").write_bytes(data)
    (work / "envelope.json").write_text("{}")
    (work / "pub.pem").write_text("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    result = run_cli(
        [
            "verify-attestation",
            "--key",
            str(work / "pub.pem"),
            "--envelope",
            str(work / "envelope.json"),
            "--policy",
            str(work / "policy.yaml"),
        ]
    )
    assert_cli_contract(result, allowed=(1, 2))
