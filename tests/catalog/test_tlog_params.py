"""The transparency-log params reach every place that stores or checks signatures.

The attest StepAction takes REKOR_URL (and TLOG_TIMEOUT, and BUNDLE_FILE for an envelope
written only to a file); every Task with an attest step must offer REKOR_URL and pass it
through, or its users cannot log: one that stores in a registry logs the bundles stored there,
one that writes a file (UPLOAD "false", hermetic-build) must also give BUNDLE_FILE beside its
envelope, where the entry goes. A Pipeline must pass REKOR_URL on to such a Task, and
TRUSTED_ROOT to every verify-provenance task; one that verifies an envelope file must give the
bundle the build wrote (BUNDLE_PATH). The end-to-end behaviour is
tests/e2e/test_rekor_catalog.py and tests/e2e/test_rekor_files_catalog.py.
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


def _step_params(step: dict[str, Any]) -> dict[str, Any]:
    return {p["name"]: p["value"] for p in step.get("params") or []}


def _attesting_tasks(*, upload: bool) -> list[Path]:
    """Tasks with an attest step that stores in a registry (``upload``) or only in a file."""
    tasks = []
    for path in sorted((CATALOG / "task").glob("*/*/*.yaml")):
        step = _attest_step(_load(path))
        if step is None:
            continue
        if (_step_params(step).get("UPLOAD", "true") != "false") == upload:
            tasks.append(path)
    return tasks


UPLOADING = _attesting_tasks(upload=True)
FILE_ONLY = _attesting_tasks(upload=False)
ATTESTING = sorted(UPLOADING + FILE_ONLY)
PIPELINES = sorted((CATALOG / "pipeline").glob("*/*/*.yaml"))


def test_the_stepaction_takes_the_log_params_empty_by_default() -> None:
    doc = _load(STEPACTION)
    params = _params(doc)
    for name in ("REKOR_URL", "TLOG_TIMEOUT"):
        assert params[name]["default"] == "", name  # no log unless one is named
        env = {e["name"]: e.get("value") for e in doc["spec"]["env"]}
        assert env[f"PARAM_{name}"] == f"$(params.{name})"


def test_the_stepaction_takes_a_bundle_file_empty_by_default() -> None:
    doc = _load(STEPACTION)
    assert _params(doc)["BUNDLE_FILE"]["default"] == ""
    env = {e["name"]: e.get("value") for e in doc["spec"]["env"]}
    assert env["PARAM_BUNDLE_FILE"] == "$(params.BUNDLE_FILE)"


def test_kaniko_chains_stores_in_a_registry_and_hermetic_build_in_a_file() -> None:
    assert "kaniko-chains" in {p.parent.parent.name for p in UPLOADING}
    assert "hermetic-build" in {p.parent.parent.name for p in FILE_ONLY}


@pytest.mark.parametrize("path", ATTESTING, ids=[p.parent.parent.name for p in ATTESTING])
def test_a_task_that_attests_passes_rekor_url_through(path: Path) -> None:
    doc = _load(path)
    assert _params(doc).get("REKOR_URL", {}).get("default") == "", (
        f"{path.name}: no REKOR_URL param with an empty default"
    )
    step = _attest_step(doc)
    assert step is not None
    given = _step_params(step)
    assert given.get("REKOR_URL") == "$(params.REKOR_URL)", f"{path.name}: REKOR_URL not passed"


@pytest.mark.parametrize("path", FILE_ONLY, ids=[p.parent.parent.name for p in FILE_ONLY])
def test_a_task_that_writes_a_file_gives_a_bundle_file_beside_it(path: Path) -> None:
    """The log's entry for a file envelope lives in BUNDLE_FILE: a fixed path, distinct from
    the envelope, that a verifier can be pointed at."""
    step = _attest_step(_load(path))
    assert step is not None
    given = _step_params(step)
    bundle = str(given.get("BUNDLE_FILE", ""))
    assert bundle.endswith(".sigstore.json"), f"{path.name}: BUNDLE_FILE {bundle!r}"
    assert "$(" not in bundle, f"{path.name}: BUNDLE_FILE should be a fixed path"
    assert given.get("OUTPUT_FILE"), f"{path.name}: BUNDLE_FILE needs OUTPUT_FILE"


def _newest_task(name: str) -> dict[str, Any]:
    return _load(sorted((CATALOG / "task" / name).glob("*/*.yaml"))[-1])


def _task_params(name: str) -> set[str]:
    return set(_params(_newest_task(name)))


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
        if name == "verify-provenance":
            wanted.append("TRUSTED_ROOT")
        for param in wanted:
            assert given.get(param) == f"$(params.{param})", (
                f"{path.name}: task {task['name']} does not get {param}"
            )
            assert _params(doc)[param]["default"] == "", f"{path.name}: {param} default"


@pytest.mark.parametrize("path", PIPELINES, ids=[p.parent.parent.name for p in PIPELINES])
def test_a_pipeline_gate_on_a_file_gets_the_bundle_its_build_wrote(path: Path) -> None:
    """A verify-provenance task given ENVELOPE_PATH also gets BUNDLE_PATH, and both name the
    files the Pipeline's file-writing build task writes (its OUTPUT_FILE default and its
    BUNDLE_FILE), so TRUSTED_ROOT finds the log's entry."""
    tasks = _load(path)["spec"].get("tasks") or []
    written: set[tuple[str, str]] = set()
    for task in tasks:
        name = (task.get("taskRef") or {}).get("name")
        step = _attest_step(_newest_task(name)) if name else None
        if step is None:
            continue
        given = _step_params(step)
        if "BUNDLE_FILE" in given:
            output = str(given["OUTPUT_FILE"])
            if output.startswith("$(params."):
                defaults = _params(_newest_task(str(name)))
                output = str(defaults[output[len("$(params.") : -1]]["default"])
            written.add((output, str(given["BUNDLE_FILE"])))
    for task in tasks:
        if (task.get("taskRef") or {}).get("name") != "verify-provenance":
            continue
        given = {p["name"]: p["value"] for p in task.get("params") or []}
        if "ENVELOPE_PATH" not in given:
            continue
        pair = (given["ENVELOPE_PATH"], given.get("BUNDLE_PATH"))
        assert pair in written, f"{path.name}: task {task['name']} verifies {pair}, built {written}"
