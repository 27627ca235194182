"""Every Task that attests records the images of all its steps in resolvedDependencies.

Chains records each step's image (from the TaskRun's status) among the materials; the attest
step cannot read the TaskRun, so the Task passes the images it pins to the attest StepAction's
RESOLVED_DEPENDENCIES (issue 14). This checks that no step image is left out: a step added or
re-pinned without updating that list fails here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

CATALOG = Path(__file__).resolve().parents[2] / "catalog"
STEPACTION = CATALOG / "stepaction" / "attest" / "0.1" / "attest.yaml"


def _attesting_tasks() -> list[Path]:
    tasks = []
    for path in sorted((CATALOG / "task").glob("*/*/*.yaml")):
        doc = yaml.safe_load(path.read_text())
        steps = doc.get("spec", {}).get("steps") or []
        if any((s.get("ref") or {}).get("name") == "attest" for s in steps):
            tasks.append(path)
    return tasks


TASKS = _attesting_tasks()


def test_the_catalog_has_attesting_tasks() -> None:
    names = {p.parent.parent.name for p in TASKS}
    assert {"kaniko-chains", "hermetic-build"} <= names


@pytest.mark.parametrize("path", TASKS, ids=[p.parent.parent.name for p in TASKS])
def test_every_step_image_is_a_resolved_dependency(path: Path) -> None:
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    steps = doc["spec"]["steps"]
    stepaction_image = yaml.safe_load(STEPACTION.read_text())["spec"]["image"]
    images = {s.get("image") or stepaction_image for s in steps}
    (attest,) = [s for s in steps if (s.get("ref") or {}).get("name") == "attest"]
    params = {p["name"]: p["value"] for p in attest.get("params") or []}
    recorded = set(str(params.get("RESOLVED_DEPENDENCIES", "")).split())
    assert images <= recorded, f"not in RESOLVED_DEPENDENCIES: {sorted(images - recorded)}"
    # a param's default must be pinned, since it is what runs unless the user says otherwise
    defaults = {p["name"]: p.get("default") for p in doc["spec"].get("params") or []}
    for image in images:
        runs = image
        if image.startswith("$(params.") and image.endswith(")"):
            runs = str(defaults[image[len("$(params.") : -1]])
        assert "@sha256:" in runs, f"{path.name}: step image {runs} is not pinned by digest"


def _attest_params(doc: dict[str, Any]) -> dict[str, Any]:
    (step,) = [s for s in doc["spec"]["steps"] if (s.get("ref") or {}).get("name") == "attest"]
    return {p["name"]: p["value"] for p in step.get("params", [])}


@pytest.mark.parametrize("path", TASKS, ids=[p.parent.parent.name for p in TASKS])
def test_every_task_param_is_recorded_as_an_external_parameter(path: Path) -> None:
    """Chains records all of a TaskRun's params; the attest step records those the Task lists
    in PARAMS (NAME=$(params.NAME)) and the array in ARRAY_PARAM_NAME. A param added to the
    Task without being listed fails here."""
    doc = yaml.safe_load(path.read_text())
    given = _attest_params(doc)
    recorded = {item.split("=", 1)[0] for item in given.get("PARAMS", [])}
    for item in given.get("PARAMS", []):
        name, _, value = item.partition("=")
        assert value == f"$(params.{name})", f"{path.name}: PARAMS item {item!r}"
    if "ARRAY_PARAM_NAME" in given:
        recorded.add(given["ARRAY_PARAM_NAME"])
    declared = {p["name"] for p in doc["spec"].get("params", [])}
    assert declared - recorded == set(), f"{path.name}: params not recorded"
