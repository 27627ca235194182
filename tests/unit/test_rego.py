"""attest_step.rego without OPA: staging a policy, the decision reference, the denials shown."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from attest_step import rego
from attest_step.errors import UsageError

TASK = (
    Path(__file__).resolve().parents[2]
    / "catalog/task/verify-provenance/0.1/verify-provenance.yaml"
)


def configmap_volume(root: Path, files: dict[str, str]) -> Path:
    """The layout the kubelet gives a ConfigMap volume: ..<timestamp>/ files, ..data link,
    and a link per key."""
    stamp = root / "..2026_12_04_07_00_00.123456789"
    stamp.mkdir(parents=True)
    for name, text in files.items():
        (stamp / name).write_text(text)
    os.symlink(stamp.name, root / "..data")
    for name in files:
        os.symlink(f"..data/{name}", root / name)
    return root


def test_stage_tree_copies_a_configmap_once(tmp_path: Path) -> None:
    volume = configmap_volume(
        tmp_path / "ws",
        {
            "release.rego": "package p\n",
            "rule_data.yml": "rule_data: {}\n",
            "policy.yaml": "x: 1\n",
        },
    )
    dest = tmp_path / "staged"
    rego.stage_tree(volume, ["release.rego", "rule_data.yml"], dest)
    assert sorted(p.name for p in dest.rglob("*")) == ["release.rego", "rule_data.yml"]
    assert not (dest / "release.rego").is_symlink()

    everything = tmp_path / "all"
    rego.stage_tree(volume, ["."], everything)
    assert sorted(p.name for p in everything.rglob("*")) == [
        "policy.yaml",
        "release.rego",
        "rule_data.yml",
    ]


@pytest.mark.parametrize("name", ["../secret.rego", "/etc/passwd", "a/../../b.rego"])
def test_stage_tree_stays_in_the_workspace(tmp_path: Path, name: str) -> None:
    (tmp_path / "ws").mkdir()
    with pytest.raises(UsageError, match="inside the policy workspace"):
        rego.stage_tree(tmp_path / "ws", [name], tmp_path / "dest")


def test_stage_needs_a_rego_module_and_a_known_suffix(tmp_path: Path) -> None:
    (tmp_path / "data.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(UsageError, match=r"no Rego module \(\.rego\)"):
        rego.stage_roots([tmp_path / "data.json"], tmp_path / "a")
    with pytest.raises(UsageError, match="not a Rego module or data file"):
        rego.stage_roots([tmp_path / "notes.txt"], tmp_path / "b")
    with pytest.raises(UsageError, match="cannot read it"):
        rego.stage_roots([tmp_path / "missing.rego"], tmp_path / "c")
    os.mkfifo(tmp_path / "fifo.rego")  # refused before it is opened: no hang
    with pytest.raises(UsageError, match="not a file or directory"):
        rego.stage_roots([tmp_path / "fifo.rego"], tmp_path / "d")


def test_stage_is_bounded_in_files(tmp_path: Path) -> None:
    tree = tmp_path / "many"
    tree.mkdir()
    for i in range(rego.MAX_POLICY_FILES + 1):
        (tree / f"m{i}.rego").write_text(f"package m{i}\n")
    with pytest.raises(UsageError, match="more than 256 policy files"):
        rego.stage_roots([tree], tmp_path / "dest")


def test_stage_roots_keeps_each_root_apart(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "a.rego").write_text("package a\n")
    (tmp_path / "p" / ".hidden.rego").write_text("package hidden\n")
    (tmp_path / "d.yml").write_text("k: v\n")
    roots = rego.stage_roots([tmp_path / "p", tmp_path / "d.yml"], tmp_path / "dest")
    assert [original for _, original in roots] == [tmp_path / "p", tmp_path / "d.yml"]
    assert (roots[0][0] / "a.rego").is_file() and not (roots[0][0] / ".hidden.rego").exists()
    assert roots[1][0].name == "d.yml" and roots[1][0].is_file()


@pytest.mark.parametrize(
    "query", ["data.a.deny", "data.attest_step.tekton_step.deny", "data._x.y1"]
)
def test_queries_accepted(query: str) -> None:
    assert rego.check_query(query) == query
    assert f"denials := {query}\n" in rego.gate_module(query)


@pytest.mark.parametrize(
    "query", ["", "data", "input.x", "data.x; true", "data.x[_]", 'data["x"]', "data.x\ny := 1"]
)
def test_queries_refused(query: str) -> None:
    with pytest.raises(UsageError, match="--policy-query"):
        rego.check_query(query)


def test_the_tasks_opa_step_asks_the_gate_query() -> None:
    task = yaml.safe_load(TASK.read_text())
    (step,) = [s for s in task["spec"]["steps"] if s["name"] == "rego"]
    assert step["command"] == ["opa"]
    assert step["args"][-1] == rego.GATE_QUERY
    assert "--fail" in step["args"] and step["onError"] == "continue"


def test_denials_are_shown_as_sentences() -> None:
    shown = rego.render_denials(
        [
            {"code": "attest_step.hermetic", "msg": 'Step "build"\nnot isolated'},
            "builder is not ours",
            {"no": "msg"},
            *(["more"] * 12),
        ]
    )
    assert shown[:3] == [
        'attest_step.hermetic: Step "build" not isolated',
        "builder is not ours",
        '{"no":"msg"}',
    ]
    assert len(shown) == rego.SHOWN_DENIALS + 1 and shown[-1] == "and 5 more"


_json: Any = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(st.lists(_json, max_size=15))
def test_any_denial_renders_as_short_single_lines(values: list[Any]) -> None:
    for line in rego.render_denials(values):
        assert "\n" not in line and len(line) <= 300


def test_stage_tree_makes_each_name_a_root_and_refuses_collisions(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "policy" / "release").mkdir(parents=True)
    (ws / "policy" / "data" / "more").mkdir(parents=True)
    (ws / "policy" / "release" / "rules.rego").write_text("package p\n")
    (ws / "policy" / "data" / "rule_data.yml").write_text("rule_data: {}\n")
    (ws / "policy" / "data" / "more" / "x.json").write_text("{}")
    (ws / ".git").mkdir()
    (ws / ".git" / "config.json").write_text("{}")
    dest = tmp_path / "dest"
    rego.stage_tree(ws, ["policy/release", "policy/data"], dest)
    staged = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert staged == ["more/x.json", "rule_data.yml", "rules.rego"]

    (ws / "policy" / "data" / "rules.rego").write_text("package q\n")
    with pytest.raises(UsageError, match=r"also holds rules\.rego"):
        rego.stage_tree(ws, ["policy/release", "policy/data"], tmp_path / "again")
