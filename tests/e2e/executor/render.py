"""The Go side: ``hack/tekton-render`` (Tekton's own code) and Tekton's step entrypoint.

Both are built once with ``go build`` into ``.tools/bin`` and rebuilt when ``go.mod``,
``go.sum`` or ``main.go`` change (a stamp file holds their hash).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[3]
GO_MODULE = REPO_ROOT / "hack" / "tekton-render"
TOOLS_BIN = REPO_ROOT / ".tools" / "bin"
RENDER_BIN = TOOLS_BIN / "tekton-render"
ENTRYPOINT_BIN = TOOLS_BIN / "tekton-entrypoint"
WORKINGDIRINIT_BIN = TOOLS_BIN / "tekton-workingdirinit"
# Tekton's own images run /ko-app/<name>; locally, the binaries built from the same module.
KO_APPS = {"/ko-app/entrypoint": ENTRYPOINT_BIN, "/ko-app/workingdirinit": WORKINGDIRINIT_BIN}
_STAMP = TOOLS_BIN / ".tekton-render.stamp"


class RenderError(RuntimeError):
    """Tekton refused the run (validation, resolution) or the executor cannot honour it."""


class ToolMissing(RuntimeError):
    """Go is not installed and the helpers are not built."""


def _source_hash() -> str:
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum", "main.go", "tools.go"):
        path = GO_MODULE / name
        if path.exists():
            digest.update(name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def ensure_built() -> tuple[Path, Path]:
    """Build tekton-render and the Tekton entrypoint unless they are current."""
    want = _source_hash()
    if (
        RENDER_BIN.exists()
        and ENTRYPOINT_BIN.exists()
        and WORKINGDIRINIT_BIN.exists()
        and _STAMP.exists()
        and _STAMP.read_text().strip() == want
    ):
        return RENDER_BIN, ENTRYPOINT_BIN
    go = shutil.which("go") or (
        "/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None
    )
    if go is None:
        raise ToolMissing("go is not installed: cannot build hack/tekton-render")
    TOOLS_BIN.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GOFLAGS": "-mod=mod -buildvcs=false"}
    for out, pkg in (
        (RENDER_BIN, "."),
        (ENTRYPOINT_BIN, "github.com/tektoncd/pipeline/cmd/entrypoint"),
        (WORKINGDIRINIT_BIN, "github.com/tektoncd/pipeline/cmd/workingdirinit"),
    ):
        tmp = out.with_suffix(".tmp")
        subprocess.run([go, "build", "-o", str(tmp), pkg], cwd=GO_MODULE, env=env, check=True)
        tmp.replace(out)
    _STAMP.write_text(want + "\n")
    return RENDER_BIN, ENTRYPOINT_BIN


@dataclass
class Renderer:
    """Calls ``tekton-render`` with the Tekton objects in ``files``."""

    files: list[Path]
    namespace: str = "default"
    feature_flags: dict[str, str] = field(default_factory=dict)
    image_commands: dict[str, list[str]] = field(default_factory=dict)

    def call(self, op: str, **payload: Any) -> dict[str, Any]:
        binary, _ = ensure_built()
        request = {
            "op": op,
            "namespace": self.namespace,
            "files": [str(f) for f in self.files],
            "featureFlags": self.feature_flags,
            "imageCommands": self.image_commands,
            **payload,
        }
        proc = subprocess.run(
            [str(binary)],
            input=json.dumps(request).encode(),
            capture_output=True,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"tekton-render failed: {proc.stderr.decode(errors='replace')}")
        response: dict[str, Any] = json.loads(proc.stdout)
        if response.get("error"):
            raise RenderError(str(response["error"]))
        return response

    def loaded(self) -> list[str]:
        return list(self.call("load").get("loaded") or [])

    def taskrun(self, taskrun: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The defaulted TaskRun (with ``status.taskSpec``) and the Pod Tekton would create."""
        resp = self.call("taskrun", taskRun=taskrun)
        return resp["taskRun"], resp["pod"]

    def taskrun_status(self, taskrun: dict[str, Any], pod: dict[str, Any]) -> dict[str, Any]:
        resp = self.call("taskrun-status", taskRun=taskrun, pod=pod)
        result: dict[str, Any] = resp["taskRun"]
        return result

    def pipelinerun(
        self, pipelinerun: dict[str, Any], taskruns: list[dict[str, Any]]
    ) -> tuple[dict[str, Any], list[dict[str, Any]], bool]:
        """One reconcile pass: (PipelineRun with status, TaskRuns to create, done)."""
        resp = self.call("pipelinerun", pipelineRun=pipelinerun, taskRuns=taskruns)
        return resp["pipelineRun"], list(resp.get("create") or []), bool(resp.get("done"))
