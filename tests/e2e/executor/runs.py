"""Run TaskRuns and PipelineRuns locally with Tekton's semantics.

Tekton decides (through ``hack/tekton-render``): validation, Task/StepAction
resolution, substitution, the Pod, the TaskRun status and results, and for a
PipelineRun the next TaskRuns (DAG, ``when``, result passing, ``finally``), the skipped
tasks and the PipelineRun condition. This module only executes: it runs each Pod with
:class:`~tests.e2e.executor.pod.PodRunner`, one TaskRun at a time, and feeds the
finished TaskRuns back to Tekton's reconcile logic until the PipelineRun is done.
"""

from __future__ import annotations

import copy
import json
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.executor.pod import Cluster, ContainerHook, PodRunner
from tests.e2e.executor.render import REPO_ROOT, Renderer

KANIKO_COMMAND = "/kaniko/executor"
STANDIN = REPO_ROOT / "tests" / "e2e" / "executor" / "kaniko_standin.py"
KANIKO_IMAGE = re.compile(r"(^|/)(kaniko-project/executor|kaniko)(:|@|$)")


def load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]


def kaniko_hook(python: str = sys.executable) -> ContainerHook:
    """LOCAL STAND-IN for kaniko: same entrypoint wrapper and arguments, but the program
    is tests/e2e/executor/kaniko_standin.py (kaniko needs a container runtime)."""

    def hook(container: dict[str, Any]) -> dict[str, Any]:
        if not KANIKO_IMAGE.search(str(container.get("image", ""))):
            return container
        c = copy.deepcopy(container)
        args = list(c.get("args") or [])
        for i, a in enumerate(args[:-1]):
            if a == "-entrypoint" and args[i + 1] == KANIKO_COMMAND:
                args[i + 1] = python
                sep = args.index("--")
                args.insert(sep + 1, str(STANDIN))
                break
        c["args"] = args
        return c

    return hook


@dataclass
class RunOutcome:
    kind: str
    name: str
    succeeded: bool
    reason: str
    message: str
    obj: dict[str, Any]
    taskruns: list[dict[str, Any]] = field(default_factory=list)
    logs: dict[str, str] = field(default_factory=dict)

    def result(self, name: str, task: str | None = None) -> Any:
        """A result of the run (or of the TaskRun of pipeline task ``task``)."""
        obj = self.obj
        if task is not None:
            obj = next(
                tr
                for tr in self.taskruns
                if tr["metadata"].get("labels", {}).get("tekton.dev/pipelineTask") == task
            )
        for r in obj.get("status", {}).get("results") or []:
            if r["name"] == name:
                return r["value"]
        raise KeyError(name)


def _condition(obj: dict[str, Any]) -> tuple[str, str, str]:
    for c in obj.get("status", {}).get("conditions") or []:
        if c.get("type") == "Succeeded":
            return str(c.get("status")), str(c.get("reason", "")), str(c.get("message", ""))
    return "Unknown", "", ""


class Executor:
    """Runs the TaskRuns/PipelineRuns of one test directory against ``files``."""

    def __init__(
        self,
        files: Iterable[Path],
        workdir: Path,
        *,
        namespace: str = "default",
        rewrites: dict[str, str] | None = None,
        feature_flags: dict[str, str] | None = None,
        hooks: list[ContainerHook] | None = None,
        extra_env: dict[str, str] | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.workdir = workdir
        self.cluster = Cluster(workdir / "cluster")
        self.rewrites = rewrites or {}
        self.hooks = hooks if hooks is not None else [kaniko_hook()]
        self.extra_env = extra_env or {}
        self.log = log or (lambda line: print(line, file=sys.stderr))
        self._counter = 0
        rendered = workdir / "objects"
        rendered.mkdir(parents=True, exist_ok=True)
        copies = []
        for i, f in enumerate(files):
            text = self._rewrite(Path(f).read_text())
            dst = rendered / f"{i:03d}-{Path(f).name}"
            dst.write_text(text)
            copies.append(dst)
            for doc in yaml.safe_load_all(text):
                if isinstance(doc, dict):
                    self.cluster.add_object(doc)
        self.renderer = Renderer(
            files=copies,
            namespace=namespace,
            feature_flags=feature_flags or {},
            image_commands={},
        )

    def _rewrite(self, text: str) -> str:
        for old, new in self.rewrites.items():
            text = text.replace(old, new)
        return text

    def add_secret(self, name: str, data: dict[str, bytes]) -> None:
        self.cluster.secrets[name] = data

    def _image_commands(self, taskrun: dict[str, Any]) -> None:
        # kaniko's image ENTRYPOINT is /kaniko/executor; Tekton would read it from the
        # registry. Other images without command/script are refused by tekton-render.
        text = json.dumps(taskrun)
        images = set(re.findall(r'"image":\s*"([^"]+)"', text))
        for doc_file in self.renderer.files:
            images.update(re.findall(r"image:\s*['\"]?([^\s'\"]+)", doc_file.read_text()))
        for image in images:
            if KANIKO_IMAGE.search(image):
                self.renderer.image_commands[image] = [KANIKO_COMMAND]

    def _kaniko_defaults(self) -> None:
        # Params defaults hold images too; cover those named in Task params.
        for doc_file in self.renderer.files:
            for doc in load_yaml_docs(doc_file):
                for p in (doc.get("spec") or {}).get("params") or []:
                    d = p.get("default")
                    if isinstance(d, str) and KANIKO_IMAGE.search(d):
                        self.renderer.image_commands[d] = [KANIKO_COMMAND]

    # -- TaskRun ---------------------------------------------------------------------
    def run_taskrun(self, taskrun: dict[str, Any]) -> RunOutcome:
        taskrun = json.loads(self._rewrite(json.dumps(taskrun)))
        self._name(taskrun)
        self._image_commands(taskrun)
        self._kaniko_defaults()
        tr, pod = self.renderer.taskrun(taskrun)
        name = tr["metadata"]["name"]
        self.log(f"== TaskRun {name}: pod {pod['metadata']['name']}")
        self._counter += 1
        runner = PodRunner(
            pod,
            self.workdir / "pods" / f"{self._counter:02d}-{name}",
            self.cluster,
            hooks=self.hooks,
            log=self.log,
            extra_env=self.extra_env,
        )
        done_pod = runner.run()
        final = self.renderer.taskrun_status(tr, done_pod)
        status, reason, message = _condition(final)
        self.log(f"== TaskRun {name}: {reason or status} {message}".rstrip())
        logs = {
            c.name: (c / "log").read_text(errors="replace")
            for c in sorted((runner.workdir / "containers").iterdir())
        }
        return RunOutcome("TaskRun", name, status == "True", reason, message, final, [final], logs)

    def _name(self, obj: dict[str, Any]) -> None:
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            prefix = meta.get("generateName") or obj["kind"].lower() + "-"
            self._counter += 1
            meta["name"] = f"{prefix}local{self._counter:03d}"
            meta.pop("generateName", None)

    # -- PipelineRun -----------------------------------------------------------------
    def run_pipelinerun(self, pipelinerun: dict[str, Any]) -> RunOutcome:
        pr = json.loads(self._rewrite(json.dumps(pipelinerun)))
        self._name(pr)
        self._kaniko_defaults()
        done_runs: list[dict[str, Any]] = []
        logs: dict[str, str] = {}
        status_pr: dict[str, Any] = pr
        for _ in range(200):
            status_pr, create, done = self.renderer.pipelinerun(copy.deepcopy(pr), done_runs)
            if done:
                break
            if not create:
                raise RuntimeError(
                    f"PipelineRun {pr['metadata']['name']}: nothing to run and not done: "
                    f"{json.dumps(status_pr.get('status', {}).get('conditions'))}"
                )
            for tr in create:
                outcome = self.run_taskrun(tr)
                done_runs.append(outcome.obj)
                for k, v in outcome.logs.items():
                    logs[f"{outcome.name}/{k}"] = v
        status, reason, message = _condition(status_pr)
        self.log(f"== PipelineRun {pr['metadata']['name']}: {reason or status} {message}".rstrip())
        for skipped in status_pr.get("status", {}).get("skippedTasks") or []:
            self.log(f"   skipped {skipped['name']}: {skipped.get('reason', '')}")
        return RunOutcome(
            "PipelineRun",
            pr["metadata"]["name"],
            status == "True",
            reason,
            message,
            status_pr,
            done_runs,
            logs,
        )

    def run(self, obj: dict[str, Any]) -> RunOutcome:
        kind = obj.get("kind")
        if kind == "TaskRun":
            return self.run_taskrun(obj)
        if kind == "PipelineRun":
            return self.run_pipelinerun(obj)
        raise ValueError(f"not a run: {kind}")


def runs_in(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """The TaskRuns and PipelineRuns in YAML files (other kinds are resources)."""
    out = []
    for p in paths:
        for doc in load_yaml_docs(p):
            if doc.get("kind") in ("TaskRun", "PipelineRun"):
                out.append(doc)
    return out
