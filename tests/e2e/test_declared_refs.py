"""hermetic-build's DECLARED_REFS reach the provenance as declared resolvedDependencies.

Local only: a TaskRun of the real catalog Task (as tests/e2e/test_hermetic_build.py builds
them) with a bundle ref for the Task and a git ref for the attest StepAction, as a Pipeline
author who resolved them would state them (docs/provenance.md: a step cannot observe
``status.provenance.refSource``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.executor.catalog import claim, executor_for, task_run
from tests.e2e.test_executor import built  # noqa: F401  (fixture)
from tests.e2e.test_hermetic_build import BUILD, TESTS, statement_of

pytestmark = [pytest.mark.e2e, pytest.mark.netns]

BUNDLE = "registry.example/catalog/hermetic-build@sha256:" + "b" * 64
GIT_REF = "git+https://github.com/example/catalog.git@sha1:" + "c" * 40


def test_declared_refs_are_recorded_as_declared(built: None, tmp_path: Path) -> None:  # noqa: F811
    ex = executor_for(TESTS, tmp_path / "run")
    source = ex.cluster.claim_dir("declared-source")
    (source / "build.sh").write_text(BUILD)
    taskrun = task_run(
        "hermetic-build-declared-refs",
        "hermetic-build",
        {
            "DEPENDENCIES_FILE": "",
            "CHAINS-GIT_URL": "https://example.invalid/app.git",
            "CHAINS-GIT_COMMIT": "0123456789abcdef0123456789abcdef01234567",
            "DECLARED_REFS": f"task={BUNDLE} stepAction/attest={GIT_REF}",
        },
        {"source": claim("declared-source")},
    )
    outcome = ex.run(taskrun)
    assert outcome.succeeded, f"{outcome.message}\n{outcome.logs}"
    deps = statement_of(source, require_hermetic=False)["predicate"]["buildDefinition"][
        "resolvedDependencies"
    ]
    declared = [d for d in deps if d.get("annotations", {}).get("attest-step.dev/recorded")]
    assert declared == [
        {
            "name": "task",
            "uri": "oci://registry.example/catalog/hermetic-build",
            "digest": {"sha256": "b" * 64},
            "annotations": {"attest-step.dev/recorded": "declared"},
        },
        {
            "name": "stepAction/attest",
            "uri": "git+https://github.com/example/catalog.git",
            "digest": {"sha1": "c" * 40},
            "annotations": {"attest-step.dev/recorded": "declared"},
        },
    ]
    # the observed/reported inputs are still there, without the annotation
    assert any(d.get("name") == "inputs/result" for d in deps)
