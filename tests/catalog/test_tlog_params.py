"""The transparency-log params reach every place that stores or checks signatures.

The attest StepAction takes REKOR_URL (and TLOG_TIMEOUT); a Task whose attest step stores in a
registry must offer REKOR_URL and pass it through, or its users cannot log; a Pipeline must
pass it on to such a Task, and TRUSTED_ROOT to a verify-provenance task that verifies an image.
Envelopes written only to a file are not logged (docs/transparency.md), so a Task with UPLOAD
"false" (hermetic-build) has no REKOR_URL. The end-to-end behaviour is
tests/e2e/test_rekor_catalog.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

CATALOG = Path(__file__).resolve().parents[2] / "catalog"
STEPACTION = CATALOG / "stepaction" / "attest" / "0.1" / "attest.yaml"


def _load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    return doc


def _params(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in doc["spec"].get("params") or []}


def _attest_step(doc: dict[str, Any]) -> dict[str, Any] | None:
    steps = [
        s for s in doc["spec"].get("steps") or [] if (s.get("ref") or {}).get("name") == "attest"
    ]
    return steps[0] if steps else None


def _uploading_tasks() -> list[Path]:
    tasks = []
    for path in sorted((CATALOG / "task").glob("*/*/*.yaml")):
        step = _attest_step(_load(path))
        if step is None:
            continue
        given = {p["name"]: p["value"] for p in step.get("params") or []}
        if given.get("UPLOAD", "true") != "false":
            tasks.append(path)
    return tasks


UPLOADING = _uploading_tasks()
PIPELINES = sorted((CATALOG / "pipeline").glob("*/*/*.yaml"))


def test_the_stepaction_takes_the_log_params_empty_by_default() -> None:
    doc = _load(STEPACTION)
    params = _params(doc)
    for name in ("REKOR_URL", "TLOG_TIMEOUT"):
        assert params[name]["default"] == "", name  # no log unless one is named
        env = {e["name"]: e.get("value") for e in doc["spec"]["env"]}
        assert env[f"PARAM_{name}"] == f"$(params.{name})"


def test_kaniko_chains_stores_in_a_registry() -> None:
    assert "kaniko-chains" in {p.parent.parent.name for p in UPLOADING}


@pytest.mark.parametrize("path", UPLOADING, ids=[p.parent.parent.name for p in UPLOADING])
def test_a_task_that_stores_in_a_registry_passes_rekor_url_through(path: Path) -> None:
    doc = _load(path)
    assert _params(doc).get("REKOR_URL", {}).get("default") == "", (
        f"{path.name}: no REKOR_URL param with an empty default"
    )
    step = _attest_step(doc)
    assert step is not None
    given = {p["name"]: p["value"] for p in step.get("params") or []}
    assert given.get("REKOR_URL") == "$(params.REKOR_URL)", f"{path.name}: REKOR_URL not passed"


def _task_params(name: str) -> set[str]:
    newest = sorted((CATALOG / "task" / name).glob("*/*.yaml"))[-1]
    return set(_params(_load(newest)))


@pytest.mark.parametrize("path", PIPELINES, ids=[p.parent.parent.name for p in PIPELINES])
def test_a_pipeline_passes_the_log_params_on(path: Path) -> None:
    doc = _load(path)
    for task in doc["spec"].get("tasks") or []:
        name = (task.get("taskRef") or {}).get("name")
        if name is None:
            continue
        given = {p["name"]: p["value"] for p in task.get("params") or []}
        wanted = []
        if "REKOR_URL" in _task_params(name):
            wanted.append("REKOR_URL")
        if name == "verify-provenance" and "IMAGE_URL" in given:
            wanted.append("TRUSTED_ROOT")
        for param in wanted:
            assert given.get(param) == f"$(params.{param})", (
                f"{path.name}: task {task['name']} does not get {param}"
            )
            assert _params(doc)[param]["default"] == "", f"{path.name}: {param} default"
