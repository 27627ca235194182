#!/usr/bin/env python3
"""Extract the scripts embedded in catalog YAML and lint them.

Every `script` of a Task, StepAction or inline taskSpec (tests and samples included) is written
to a temporary file. Shell scripts (`#!/usr/bin/env sh|bash`, `#!/bin/sh`, ...) go through
`shellcheck -s sh|bash` and `sh -n`/`bash -n`; Python scripts go through `ruff check` (catlin's
regex skips `#!/usr/bin/env python3`, so we lint them ourselves). Tekton's `$(...)` variables are
replaced by a plain placeholder first, as Tekton would substitute them before the shell runs.

Usage: hack/catalog_scripts.py [--shellcheck] [--list] [--extract DIR] [PATH...]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
TEKTON_VAR = re.compile(r"\$\((?:params|results|steps|step|workspaces|context|tasks)\.[^)]*\)")
PYTHON_RULES = "E,F,W,B,UP,SIM,PL"


@dataclass(frozen=True)
class Script:
    file: Path
    owner: str
    step: str
    text: str

    @property
    def shell(self) -> str | None:
        first = self.text.lstrip().splitlines()[0] if self.text.strip() else ""
        if not first.startswith("#!"):
            return "sh"  # Tekton runs a script without a shebang with sh
        if "python" in first:
            return None
        return "bash" if "bash" in first else "sh"

    @property
    def name(self) -> str:
        return f"{self.file}: {self.owner}: step {self.step}"


def _specs(doc: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    kind = doc.get("kind")
    meta = doc.get("metadata") or {}
    owner = f"{kind}/{meta.get('name') or meta.get('generateName')}"
    spec = doc.get("spec") or {}
    if kind == "StepAction":
        yield owner, {"steps": [{"name": "(stepaction)", **spec}]}
    elif kind == "Task":
        yield owner, spec
    elif kind == "TaskRun" and spec.get("taskSpec"):
        yield owner, spec["taskSpec"]
    elif kind in {"Pipeline", "PipelineRun"}:
        pipeline = spec if kind == "Pipeline" else spec.get("pipelineSpec") or {}
        for section in ("tasks", "finally"):
            for task in pipeline.get(section) or []:
                if task.get("taskSpec"):
                    yield f"{owner}: task {task.get('name')}", task["taskSpec"]


def scripts(paths: Sequence[Path]) -> list[Script]:
    found: list[Script] = []
    files: list[Path] = []
    for path in paths:
        files += sorted(path.rglob("*.yaml")) if path.is_dir() else [path]
    for file in files:
        for doc in yaml.safe_load_all(file.read_text(encoding="utf-8")):
            if not isinstance(doc, Mapping):
                continue
            for owner, spec in _specs(doc):
                for step in [*(spec.get("steps") or []), *(spec.get("sidecars") or [])]:
                    text = step.get("script")
                    if isinstance(text, str):
                        found.append(Script(file, owner, str(step.get("name")), text))
    return found


def lint(script: Script, workdir: Path) -> list[str]:
    """Problems found in one script (empty when clean)."""
    text = TEKTON_VAR.sub("/tekton/placeholder", script.text)
    shell = script.shell
    suffix = ".py" if shell is None else ".sh"
    target = workdir / f"script{suffix}"
    target.write_text(text, encoding="utf-8")
    commands: list[list[str]]
    if shell is None:
        ruff = shutil.which("ruff") or str(REPO_ROOT / ".venv" / "bin" / "ruff")
        commands = [
            [sys.executable, "-m", "py_compile", str(target)],
            [ruff, "check", "--isolated", "--select", PYTHON_RULES, "--ignore", "PLR2004",
             "--line-length", "120", "--target-version", "py311", "--quiet", str(target)],
        ]  # fmt: skip
    else:
        commands = [["shellcheck", "-s", shell, str(target)], [shell, "-n", str(target)]]
    problems = []
    for argv in commands:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            output = (proc.stdout + proc.stderr).replace(str(target), "<script>").strip()
            problems.append(f"{script.name}: {Path(argv[0]).name} failed:\n{output}")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Lint scripts embedded in catalog YAML.")
    parser.add_argument("--shellcheck", action="store_true", help="lint every script (default)")
    parser.add_argument("--list", action="store_true", help="only list the scripts found")
    parser.add_argument("--extract", type=Path, help="write each script into this directory")
    parser.add_argument("paths", nargs="*", type=Path)
    args = parser.parse_args(argv)
    paths: list[Path] = args.paths or [REPO_ROOT / "catalog"]
    found = scripts(paths)
    if args.list:
        for script in found:
            print(f"{script.name} ({script.shell or 'python'})")
        return 0
    if args.extract is not None:
        extract: Path = args.extract
        extract.mkdir(parents=True, exist_ok=True)
        for index, script in enumerate(found):
            suffix = "py" if script.shell is None else "sh"
            (extract / f"{index:03d}-{script.step}.{suffix}").write_text(script.text)
        return 0
    if shutil.which("shellcheck") is None:
        print("catalog_scripts: shellcheck is not installed", file=sys.stderr)
        return 3
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for script in found:
            problems += lint(script, Path(tmp))
    for problem in problems:
        print(problem)
    print(f"catalog_scripts: {len(found)} scripts, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
