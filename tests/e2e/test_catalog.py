"""The catalog's own test runs (catalog/*/*/*/tests/*.yaml), run locally with real parts.

Real registry (registry.local:5000 in the runs is mapped to it), a fresh cosign key pair
made with real cosign and served as the Secret ``signing-secrets``, kaniko replaced by
the LOCAL STAND-IN (tests/e2e/executor/kaniko_standin.py).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.e2e.executor import runs_in
from tests.e2e.executor.catalog import catalog_test_dirs, catalog_test_files, executor_for
from tests.e2e.test_executor import built  # noqa: F401  (fixture)
from tests.fixtures.registry import LocalRegistry
from tests.fixtures.tools import cosign_v3

pytestmark = [pytest.mark.e2e, pytest.mark.netns, pytest.mark.registry, pytest.mark.slow]

DIRS = [d for d in catalog_test_dirs() if runs_in(catalog_test_files(d))]


@pytest.mark.parametrize(
    "test_dir", DIRS, ids=[str(d.parent.relative_to(d.parents[3])) for d in DIRS]
)
def test_catalog_runs(
    built: None,  # noqa: F811
    test_dir: Path,
    tmp_path: Path,
    registry: LocalRegistry,
) -> None:
    cosign = cosign_v3()
    keys = tmp_path / "keys"
    keys.mkdir()
    subprocess.run(
        [str(cosign), "generate-key-pair"],
        cwd=keys,
        env={**os.environ, "COSIGN_PASSWORD": "e2e-password"},
        check=True,
        capture_output=True,
    )
    ex = executor_for(test_dir, tmp_path / "run", registry=registry.host)
    ex.add_secret(
        "signing-secrets",
        {
            "cosign.key": (keys / "cosign.key").read_bytes(),
            "cosign.pub": (keys / "cosign.pub").read_bytes(),
            "cosign.password": b"e2e-password",
        },
    )
    ex.cluster.configmaps["signing-public-key"] = {"cosign.pub": (keys / "cosign.pub").read_bytes()}
    failures = []
    for run in runs_in(catalog_test_files(test_dir)):
        outcome = ex.run(run)
        if not outcome.succeeded:
            tail = "\n".join(f"--- {k}\n{v[-1500:]}" for k, v in outcome.logs.items() if v.strip())
            failures.append(
                f"{outcome.kind} {outcome.name}: {outcome.reason}: {outcome.message}\n{tail}"
            )
    assert not failures, "\n\n".join(failures)
