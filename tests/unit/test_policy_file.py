"""Loading policy files: regressions named after the attacks (issue 11, section 3) and
property tests of the loader (section 6). Rule evaluation is tested in test_policy.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attest_step.errors import UsageError
from attest_step.policy import POLICY_SCHEMA, load_policy

NO_RULES = "the policy has no rules"


def _load(tmp_path: Path, text: str | bytes, name: str = "policy.yaml") -> dict[str, Any]:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return load_policy(path)


def _refused(tmp_path: Path, text: str | bytes, name: str = "policy.yaml") -> str:
    with pytest.raises(UsageError) as caught:
        _load(tmp_path, text, name)
    message = str(caught.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------- regressions


def test_attack_duplicate_key_weakens_a_yaml_policy(tmp_path: Path) -> None:
    """The last of two equal keys won: `requireHermetic: false` further down undid it."""
    text = "requireHermetic: true\nallowedBuilderIds: [https://b/1]\nrequireHermetic: false\n"
    message = _refused(tmp_path, text)
    assert "'requireHermetic' appears twice in one mapping (line 3)" in message


def test_attack_duplicate_key_weakens_a_json_policy(tmp_path: Path) -> None:
    text = '{"requireHermetic": true, "requireHermetic": false}'
    message = _refused(tmp_path, text, "policy.json")
    assert "'requireHermetic' appears twice" in message


def test_attack_duplicate_key_in_json_syntax_in_a_yaml_file(tmp_path: Path) -> None:
    message = _refused(tmp_path, '{"requireHermetic": true, "requireHermetic": false}')
    assert "appears twice" in message


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n\n   \n",
        "# requireHermetic: true\n",
        "---\n# only a comment\n...\n",
        "{}\n",
        "apiVersion: attest-step.dev/v1\nkind: Policy\n",
        "null\n",
    ],
    ids=["empty", "blank", "comment", "document-markers", "empty-mapping", "header-only", "null"],
)
def test_attack_empty_or_comment_only_policy_is_refused_alike(tmp_path: Path, text: str) -> None:
    """An empty file meant "no rules" while a comment-only file was a schema error."""
    assert NO_RULES in _refused(tmp_path, text)


def test_empty_json_policy_is_refused_alike(tmp_path: Path) -> None:
    for text in ("{}", "", " \n", "# a comment\n"):
        assert NO_RULES in _refused(tmp_path, text, "policy.json")


def test_attack_policy_with_aliases_is_refused(tmp_path: Path) -> None:
    text = "hermeticSteps: &steps [build]\nallowedBuilderIds: *steps\n"
    assert "aliases (*name) are not allowed" in _refused(tmp_path, text)


def test_attack_list_of_mappings_is_refused_before_the_quadratic_schema_check(
    tmp_path: Path,
) -> None:
    """jsonschema's uniqueItems compares unsortable items pairwise: 0.5 MB of
    ``[{a: 0}, {a: 1}, ...]`` kept verify-attestation busy for minutes."""
    text = "hermeticSteps: [" + ", ".join(f"{{a: {n}}}" for n in range(200)) + "]\n"
    message = _refused(tmp_path, text)
    assert "hermeticSteps/0: {'a': 0} is not a string" in message


def test_attack_deeply_nested_policy_is_an_input_error(tmp_path: Path) -> None:
    """A RecursionError in the parser used to surface as an internal error (exit 70)."""
    depth = 100_000
    assert "nested too deeply" in _refused(tmp_path, "[" * depth + "]" * depth)
    assert "nested too deeply" in _refused(tmp_path, "[" * depth + "]" * depth, "p.json")


def test_attack_huge_value_does_not_make_a_huge_message(tmp_path: Path) -> None:
    message = _refused(tmp_path, "requireHermetic: '" + "x" * 100_000 + "'\n")
    assert "requireHermetic" in message
    assert len(message) < 400


def test_valid_policies_still_load(tmp_path: Path) -> None:
    assert _load(tmp_path, "requireHermetic: true\n# a comment\n") == {"requireHermetic": True}
    assert _load(tmp_path, '{"hermeticSteps": ["build"]}', "p.json") == {"hermeticSteps": ["build"]}
    assert _load(tmp_path, "kind: Policy\nrequireHermetic: false\n") == {
        "kind": "Policy",
        "requireHermetic": False,
    }


# ---------------------------------------------------------------- properties

# Not NUL and not YAML's extra line breaks: PyYAML's emitter writes NEL (U+0085) unquoted,
# and its reader then folds it into a space (a dumper bug, not the loader's).
_RULE_STRINGS = st.text(
    st.characters(codec="utf-8", exclude_characters="\x00\x85\u2028\u2029"),
    min_size=1,
)
_LIST_KEYS = [k for k, v in POLICY_SCHEMA["properties"].items() if v.get("type") == "array"]
_BOOL_KEYS = [k for k, v in POLICY_SCHEMA["properties"].items() if v.get("type") == "boolean"]


@st.composite
def policies(draw: st.DrawFn) -> dict[str, Any]:
    """Any policy the schema accepts that has at least one rule."""
    out: dict[str, Any] = {}
    for key in draw(st.lists(st.sampled_from(_BOOL_KEYS), unique=True)):
        out[key] = draw(st.booleans())
    for key in draw(st.lists(st.sampled_from(_LIST_KEYS), unique=True)):
        out[key] = draw(st.lists(_RULE_STRINGS, unique=True, max_size=5))
    if draw(st.booleans()) or not out:
        out["requiredPredicateType"] = draw(_RULE_STRINGS)
    if draw(st.booleans()):
        out["apiVersion"] = "attest-step.dev/v1"
        out["kind"] = "Policy"
    return out


def _dump(policy: dict[str, Any], as_json: bool) -> tuple[bytes, str]:
    if as_json:
        return json.dumps(policy).encode(), "policy.json"
    return yaml.safe_dump(policy, allow_unicode=True).encode(), "policy.yaml"


_FIXTURE_OK = settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)


@_FIXTURE_OK
@given(policy=policies(), as_json=st.booleans())
def test_every_valid_policy_round_trips(
    tmp_path: Path, policy: dict[str, Any], as_json: bool
) -> None:
    data, name = _dump(policy, as_json)
    assert _load(tmp_path, data, name) == policy


@_FIXTURE_OK
@given(policy=policies(), as_json=st.booleans(), data=st.data())
def test_a_repeated_key_is_always_refused(
    tmp_path: Path, policy: dict[str, Any], as_json: bool, data: st.DataObject
) -> None:
    """Whatever the policy, writing one of its keys a second time is an error."""
    key = data.draw(st.sampled_from(sorted(policy)))
    if as_json:
        body = json.dumps(policy)
        text = body[:-1] + f", {json.dumps(key)}: {json.dumps(policy[key])}}}"
        name = "policy.json"
    else:
        text = yaml.safe_dump(policy, allow_unicode=True)
        text += yaml.safe_dump({key: policy[key]}, allow_unicode=True)
        name = "policy.yaml"
    assert "appears twice" in _refused(tmp_path, text, name)


@_FIXTURE_OK
@given(
    lines=st.lists(
        st.one_of(
            st.just(""),
            st.text(st.sampled_from(" \t"), max_size=3),
            st.text(max_size=30)
            .filter(lambda t: "\n" not in t and "\r" not in t)
            .map(lambda t: "# " + t),
        ),
        max_size=8,
    )
)
def test_blank_and_comment_only_files_have_no_rules(tmp_path: Path, lines: list[str]) -> None:
    text = "\n".join(lines)
    assert NO_RULES in _refused(tmp_path, text)
    assert NO_RULES in _refused(tmp_path, text, "policy.json")


_YAMLISH = st.lists(
    st.sampled_from([*"{}[]:,-#&*!|>'\"\n\t ?%@`abcxyz019.", "requireHermetic", "true"]),
    max_size=40,
).map("".join)


@_FIXTURE_OK
@given(
    content=st.one_of(_YAMLISH, st.binary(max_size=200), st.text(max_size=80)),
    as_json=st.booleans(),
)
def test_any_input_loads_as_a_valid_policy_or_fails_in_one_line(
    tmp_path: Path, content: str | bytes, as_json: bool
) -> None:
    name = "policy.json" if as_json else "policy.yaml"
    try:
        loaded = _load(tmp_path, content, name)
    except UsageError as err:
        message = str(err)
        assert "\n" not in message and len(message) < 600
        assert message.startswith("--policy ")
        return
    assert isinstance(loaded, dict) and set(loaded) <= set(POLICY_SCHEMA["properties"])
    assert set(loaded) - {"apiVersion", "kind"}


@_FIXTURE_OK
@given(
    value=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
        ),
        max_leaves=20,
    ),
    key=st.sampled_from(sorted(POLICY_SCHEMA["properties"])),
)
def test_wrong_shapes_fail_in_one_line(tmp_path: Path, value: Any, key: str) -> None:
    """Any JSON value under any known key: accepted only when the schema allows it."""
    try:
        loaded = _load(tmp_path, json.dumps({key: value}), "policy.json")
    except UsageError as err:
        assert "\n" not in str(err)
        return
    assert loaded == {key: value}
