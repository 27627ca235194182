"""Policy files: schema validation and each rule."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from attest_step.errors import UsageError
from attest_step.hermetic.declare import Evaluated, parse
from attest_step.hermetic.record import descriptor, step_record
from attest_step.policy import evaluate_policy, load_policy, normalize_repo

GOLANG = "a" * 64


def _statement(*, hermetic: bool = True, declared: bool = True) -> dict[str, Any]:
    entry = {
        "source": "observed",
        "origin": "file build.json",
        "sha256": "0" * 64,
        "contradictions": [] if hermetic else ["interface eth0 is UP [probe]"],
        "record": {"producer": {"verb": "run"}, "command": {"netns": "net:[2]", "exitCode": 0}},
    }
    declarations = [Evaluated(parse("build"), True)] if declared else []
    isolation = descriptor(step_record("build", declarations, [entry]))
    return {
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "resolvedDependencies": [
                    {
                        "uri": "git+https://github.com/example/app.git",
                        "digest": {"sha1": "1" * 40},
                    },
                    {"uri": "oci://docker.io/library/golang", "digest": {"sha256": GOLANG}},
                ]
            },
            "runDetails": {
                "builder": {"id": "https://example.com/builder/v1"},
                "byproducts": [isolation],
            },
        },
    }


def test_load_yaml_and_json(tmp_path: Path) -> None:
    yaml_file = tmp_path / "p.yaml"
    yaml_file.write_text("requireHermetic: true\nallowedBuilderIds: [https://b/1]\n")
    assert load_policy(yaml_file) == {"requireHermetic": True, "allowedBuilderIds": ["https://b/1"]}
    json_file = tmp_path / "p.json"
    json_file.write_text(json.dumps({"deniedBuildToolImages": ["sha256:" + GOLANG]}))
    assert load_policy(json_file)["deniedBuildToolImages"] == ["sha256:" + GOLANG]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("requireHermetik: true\n", "Additional properties"),
        ("requireHermetic: 'yes'\n", "requireHermetic"),
        ("allowedBuilderIds: [a, a]\n", "allowedBuilderIds"),
        ("- a list\n", "(top level)"),
        ("requireHermetic: [\n", "not valid YAML at line 2"),
    ],
)
def test_invalid_policy_is_one_line(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(UsageError) as caught:
        load_policy(path)
    message = str(caught.value)
    assert needle in message
    assert str(path) in message
    assert "\n" not in message


def test_missing_policy_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read it"):
        load_policy(tmp_path / "absent.yaml")


def test_satisfied_policy() -> None:
    policy = {
        "requireHermetic": True,
        "requireObservedIsolation": True,
        "hermeticSteps": ["build"],
        "allowedBuilderIds": ["https://example.com/builder/v1"],
        "allowedSourceRepos": ["https://github.com/example/app"],
        "deniedBuildToolImages": ["docker.io/library/gcc", "sha256:" + "b" * 64],
        "requiredPredicateType": "https://slsa.dev/provenance/v1",
    }
    assert evaluate_policy(_statement(), policy) == []


def test_each_rule_reports_a_violation() -> None:
    statement = _statement(hermetic=False)
    assert evaluate_policy(statement, {"allowedBuilderIds": ["https://other"]}) == [
        "builder.id 'https://example.com/builder/v1' is not in allowedBuilderIds"
    ]
    assert evaluate_policy(statement, {"allowedSourceRepos": ["https://github.com/x/y"]}) == [
        "source git+https://github.com/example/app.git is not in allowedSourceRepos"
    ]
    for rule in (
        "sha256:" + GOLANG,
        "docker.io/library/golang",
        "oci://docker.io/library/gol",
        f"docker.io/library/golang@sha256:{GOLANG}",
    ):
        (violation,) = evaluate_policy(statement, {"deniedBuildToolImages": [rule]})
        assert "matches deniedBuildToolImages" in violation
    assert evaluate_policy(statement, {"requiredPredicateType": "x"})[0].startswith(
        "predicateType is"
    )
    (violation,) = evaluate_policy(statement, {"requireHermetic": True})
    assert violation.startswith("step build: not recorded as network-isolated (observed:")
    assert evaluate_policy(statement, {"hermeticSteps": ["build", "test"]}) == [
        "hermeticSteps: step build has no hermetic network-isolation record",
        "hermeticSteps: step test has no hermetic network-isolation record",
    ]


def test_undeclared_step_is_not_hermetic() -> None:
    (violation,) = evaluate_policy(_statement(declared=False), {"requireHermetic": True})
    assert "not declared hermetic in the Task spec" in violation


def test_require_hermetic_without_any_record() -> None:
    statement = _statement()
    statement["predicate"]["runDetails"]["byproducts"] = []
    assert evaluate_policy(statement, {"requireHermetic": True}) == [
        "requireHermetic: the provenance has no network-isolation record of a build step"
    ]


def test_tampered_summary_is_caught() -> None:
    statement = _statement(hermetic=False)
    statement["predicate"]["runDetails"]["byproducts"][0]["annotations"]["hermetic"] = True
    (violation,) = evaluate_policy(statement, {"requireHermetic": True})
    assert "content and summary disagree" in violation


@pytest.mark.parametrize(
    "uri",
    [
        "git+https://github.com/example/app.git",
        "git+https://GitHub.com/example/app@refs/heads/main",
        "https://github.com/example/app/",
    ],
)
def test_normalize_repo(uri: str) -> None:
    assert normalize_repo(uri) == "https://github.com/example/app"
