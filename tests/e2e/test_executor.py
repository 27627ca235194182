"""The local executor against fixture Tasks/Pipelines: Tekton semantics, real processes.

Needs Go (to build hack/tekton-render and Tekton's entrypoint once), root (mount
namespaces) and docker-registry (a real endpoint the hermetic step must not reach).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.executor import Executor, RenderError, ToolMissing, ensure_built
from tests.fixtures.registry import LocalRegistry
from tests.fixtures.tools import REPO_ROOT, require_machine

FIXTURES = Path(__file__).parent / "fixtures"

pytestmark = [pytest.mark.e2e, pytest.mark.netns]


@pytest.fixture(scope="session")
def built() -> None:
    require_machine(
        os.geteuid() == 0 and shutil.which("unshare") is not None,
        "root and unshare (mount namespaces) for the local executor",
    )
    try:
        ensure_built()
    except ToolMissing as err:
        require_machine(False, str(err))


def _taskrun(task: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "tekton.dev/v1",
        "kind": "TaskRun",
        "metadata": {"generateName": f"{task}-run-"},
        "spec": {"taskRef": {"name": task}, **spec},
    }


def test_task_features(built: None, tmp_path: Path, registry: LocalRegistry) -> None:
    ex = Executor([FIXTURES / "features.yaml"], tmp_path)
    outcome = ex.run(
        _taskrun(
            "fixture-features",
            params=[
                {"name": "words", "value": ["alpha", "beta"]},
                {"name": "target", "value": {"host": "127.0.0.1", "port": str(registry.port)}},
            ],
            workspaces=[
                {
                    "name": "data",
                    "volumeClaimTemplate": {"spec": {"accessModes": ["ReadWriteOnce"]}},
                },
                {"name": "creds", "secret": {"secretName": "fixture-creds"}},
            ],
        )
    )
    assert outcome.succeeded, outcome.message
    # StepAction ref with params (its default too), step result lifted to a Task result.
    assert outcome.result("greeting") == "hello world!"
    # Array param expanded into args; array result parsed by Tekton.
    assert outcome.result("words") == ["alpha", "beta"]
    name, uid, template, cwd = outcome.result("context").split(" ")
    assert name == outcome.name and uid == f"local-{outcome.name}"
    assert template == "template-value"  # stepTemplate env
    assert cwd == "/workspace/data/sub"  # workingDir from a workspace path
    # Workspace secret in every step; emptyDir volume shared by the steps mounting it;
    # onError: continue keeps going and records the exit code.
    assert outcome.result("seen") == "creds=s3cr3t scratch=scratch-data exit=3"
    # TEKTON_HERMETIC=1: Tekton's entrypoint gave the step its own network namespace.
    assert outcome.result("netns") == "unreachable"
    steps = {s["name"]: s for s in outcome.obj["status"]["steps"]}
    assert steps["fails-but-continues"]["terminated"]["exitCode"] == 3
    # The workspace (volumeClaimTemplate -> a PVC directory) kept what was written.
    written = list((tmp_path / "cluster" / "pvc").glob("*/written"))
    assert [p.read_text() for p in written] == ["in-workspace\n"]


def test_host_network_without_hermetic(
    built: None, tmp_path: Path, registry: LocalRegistry
) -> None:
    """The same probe without TEKTON_HERMETIC reaches the registry: isolation is real."""
    text = (FIXTURES / "features.yaml").read_text()
    copy = tmp_path / "features-open.yaml"
    copy.write_text(
        text.replace(
            'name: TEKTON_HERMETIC\n          value: "1"',
            'name: NOT_HERMETIC\n          value: "1"',
        )
    )
    ex = Executor([copy], tmp_path / "run")
    outcome = ex.run(
        _taskrun(
            "fixture-features",
            params=[{"name": "target", "value": {"host": "127.0.0.1", "port": str(registry.port)}}],
            workspaces=[
                {"name": "data", "emptyDir": {}},
                {"name": "creds", "secret": {"secretName": "fixture-creds"}},
            ],
        )
    )
    assert outcome.succeeded, outcome.message
    assert outcome.result("netns") == "reachable"


def test_secret_volume_only_in_mounting_step(built: None, tmp_path: Path) -> None:
    ex = Executor([FIXTURES / "secret-steps.yaml", FIXTURES / "features.yaml"], tmp_path)
    outcome = ex.run(_taskrun("fixture-secret-steps"))
    assert outcome.succeeded, outcome.message
    assert outcome.result("with") == "present"
    assert outcome.result("without") == "absent"


def _pipelinerun(**params: str) -> dict[str, Any]:
    return {
        "apiVersion": "tekton.dev/v1",
        "kind": "PipelineRun",
        "metadata": {"name": "fixture-pr"},
        "spec": {
            "pipelineRef": {"name": "fixture-pipeline"},
            "params": [{"name": k, "value": v} for k, v in params.items()],
            "workspaces": [
                {
                    "name": "shared",
                    "volumeClaimTemplate": {"spec": {"accessModes": ["ReadWriteOnce"]}},
                }
            ],
        },
    }


def test_pipeline_dag_results_when_finally(built: None, tmp_path: Path) -> None:
    ex = Executor([FIXTURES / "pipeline.yaml"], tmp_path)
    outcome = ex.run(_pipelinerun(value="v1"))
    assert outcome.succeeded, outcome.message
    # Result passing between tasks, through a shared volumeClaimTemplate workspace.
    assert outcome.result("combined") == "v1-result+v1"
    ran = [tr["metadata"]["labels"]["tekton.dev/pipelineTask"] for tr in outcome.taskruns]
    assert ran.index("produce") < ran.index("consume") < ran.index("report")
    skipped = {s["name"]: s["reason"] for s in outcome.obj["status"]["skippedTasks"]}
    assert skipped == {"only-if-xyz": "When Expressions evaluated to false"}
    assert outcome.result("summary", task="report") == "Completed/Succeeded"


def test_pipeline_failure_still_runs_finally(built: None, tmp_path: Path) -> None:
    ex = Executor([FIXTURES / "pipeline.yaml"], tmp_path)
    outcome = ex.run(_pipelinerun(**{"fail-last": "yes"}))
    assert not outcome.succeeded
    assert outcome.reason == "Failed"
    assert outcome.result("summary", task="report") == "Failed/Succeeded"


def test_tekton_validation_refuses(built: None, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: tekton.dev/v1\nkind: Task\nmetadata: {name: bad}\nspec:\n"
        "  steps:\n    - name: s\n      image: alpine\n      script: echo $(params.missing)\n"
    )
    with pytest.raises(RenderError, match=r"non-existent variable.*params\.missing"):
        Executor([bad], tmp_path / "run").run(_taskrun("bad"))


def test_missing_param_refused(built: None, tmp_path: Path) -> None:
    with pytest.raises(RenderError, match="value"):
        Executor([FIXTURES / "pipeline.yaml"], tmp_path).run(_taskrun("fixture-produce"))


def test_volume_over_an_ancestor_of_the_checkout_keeps_tools_visible(
    built: None, tmp_path: Path
) -> None:
    """An emptyDir mounted over a directory holding the checkout (e.g. /tmp in CI) must not
    hide the venv's attest-step or the Tekton binaries from the step."""
    ancestor = str(REPO_ROOT.parent)
    ex = Executor([], tmp_path)
    outcome = ex.run(
        {
            "apiVersion": "tekton.dev/v1",
            "kind": "TaskRun",
            "metadata": {"name": "shadowed-checkout"},
            "spec": {
                "taskSpec": {
                    "results": [{"name": "version"}],
                    "volumes": [{"name": "scratch", "emptyDir": {}}],
                    "steps": [
                        {
                            "name": "tool",
                            "image": "registry.local:5000/tools:1@sha256:" + "0" * 64,
                            "volumeMounts": [{"name": "scratch", "mountPath": ancestor}],
                            "script": (
                                "#!/bin/sh\nset -e\n"
                                'test -z "$(ls -A '
                                + ancestor
                                + ' | grep -v "^'
                                + REPO_ROOT.name
                                + '$")"\n'
                                "attest-step --version | tr -d '\\n' "
                                "> $(results.version.path)\n"
                            ),
                        }
                    ],
                }
            },
        }
    )
    assert outcome.succeeded, outcome.message
    assert outcome.result("version").startswith("attest-step, version ")
