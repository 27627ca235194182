"""The catalog passes Tekton's own validation and our checks; broken fixtures do not."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.tools import require_tool

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "catalog"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
VALIDATE = ROOT / "hack" / "tekton-validate" / "run.sh"


def run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], cwd=ROOT, capture_output=True, text=True, check=False, timeout=1800
    )


@pytest.mark.slow
@pytest.mark.parametrize("line", ["lts", "newest"])
def test_tekton_validation_accepts_the_catalog(line: str) -> None:
    require_tool("go")
    proc = run(VALIDATE, "--line", line, CATALOG)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " 0 errors" in proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("line", ["lts", "newest"])
def test_tekton_validation_rejects_a_broken_task(line: str) -> None:
    require_tool("go")
    proc = run(VALIDATE, "--line", line, FIXTURES / "bad" / "tekton-invalid.yaml")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "image cannot be used with Ref" in proc.stdout
    assert "script cannot be used with command" in proc.stdout
    assert "tekton-invalid.yaml" in proc.stdout


def test_catalog_check_accepts_the_catalog() -> None:
    proc = run(sys.executable, ROOT / "hack" / "catalog_check.py")
    assert proc.returncode == 0, proc.stdout
    assert "0 problems" in proc.stdout


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("script-params.yaml", "$(params...) inside script"),
        ("script-params.yaml", "is not registry/name:tag@sha256"),
        ("script-params.yaml", "no securityContext"),
        ("script-params.yaml", "no computeResources"),
        ("script-params.yaml", "mounts Secret volume(s) signing-secrets"),
        ("not-restricted.yaml", "runAsNonRoot must be true"),
        ("not-restricted.yaml", "allowPrivilegeEscalation must be false"),
        ("not-restricted.yaml", "seccompProfile.type must be RuntimeDefault"),
        ("not-restricted.yaml", "capabilities must drop [ALL]"),
    ],
)
def test_catalog_check_rejects_broken_steps(fixture: str, expected: str) -> None:
    proc = run(sys.executable, ROOT / "hack" / "catalog_check.py", FIXTURES / "bad" / fixture)
    assert proc.returncode == 1
    assert expected in proc.stdout


@pytest.mark.parametrize(
    "expected",
    [
        "version directory '1' is not X.Y",
        "README.md is missing",
        "tests/ has no *.yaml",
        "label app.kubernetes.io/version must be '1'",
        "tekton.dev/pipelines.minVersion must be '1.0.0'",
        "category 'Not A Category' is not in the Hub's list",
        "platform 'linux-amd64' is not OS/ARCH",
        "spec.description is missing",
    ],
)
def test_catalog_check_rejects_bad_layout_and_metadata(expected: str) -> None:
    root = FIXTURES / "badmeta"
    proc = run(sys.executable, ROOT / "hack" / "catalog_check.py", "--root", root, root / "catalog")
    assert proc.returncode == 1
    assert expected in proc.stdout


def test_own_image_is_one_reference(tmp_path: Path) -> None:
    other = "ghcr.io/attest-step/attest-step:0.2.0@sha256:" + "1" * 64
    text = (CATALOG / "task" / "verify-provenance" / "0.1" / "verify-provenance.yaml").read_text()
    match = re.search(r"ghcr\.io/attest-step/attest-step:[^@\s]+@sha256:[0-9a-f]{64}", text)
    assert match is not None
    own = match.group(0)
    (tmp_path / "a.yaml").write_text(text)
    (tmp_path / "b.yaml").write_text(text.replace(own, other).replace("verify-provenance", "v2"))
    proc = run(sys.executable, ROOT / "hack" / "catalog_check.py", tmp_path)
    assert proc.returncode == 1
    assert "one single reference" in proc.stdout


def test_embedded_scripts_are_lint_clean() -> None:
    require_tool("shellcheck")
    proc = run(sys.executable, ROOT / "hack" / "catalog_scripts.py", "--shellcheck")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " 0 problems" in proc.stdout


def test_embedded_script_linter_rejects_a_broken_script() -> None:
    require_tool("shellcheck")
    fixture = FIXTURES / "bad" / "shellcheck-bad.yaml"
    proc = run(sys.executable, ROOT / "hack" / "catalog_scripts.py", "--shellcheck", fixture)
    assert proc.returncode == 1
    assert "shellcheck failed" in proc.stdout
    assert "SC2086" in proc.stdout
    assert "sh failed" in proc.stdout


def test_every_catalog_step_uses_a_pinned_digest() -> None:
    for file in CATALOG.rglob("*.yaml"):
        for line in file.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith("image:") and "$(" not in stripped:
                assert "@sha256:" in stripped, f"{file}: {stripped}"
