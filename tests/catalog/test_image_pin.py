"""The catalog runs only the attest-step image this repository built (images/attest-step)."""

from __future__ import annotations

import json
import re

from tests.fixtures.tools import REPO_ROOT

LOCK = REPO_ROOT / "images" / "attest-step" / "image.lock.json"
REF = re.compile(r"ghcr\.io/attest-step/attest-step:[^\s\"'`)]+")


def _catalog_text() -> dict[str, str]:
    return {
        str(p.relative_to(REPO_ROOT)): p.read_text()
        for p in sorted((REPO_ROOT / "catalog").rglob("*"))
        if p.suffix in {".yaml", ".yml", ".md"}
    }


def test_no_placeholder_digest_anywhere_in_the_catalog() -> None:
    placeholders = [
        path for path, text in _catalog_text().items() if re.search(r"sha256:0{64}", text)
    ]
    assert placeholders == []


def test_every_attest_step_reference_is_the_locked_build() -> None:
    lock = json.loads(LOCK.read_text())
    version = re.search(
        r'^version = "([^"]+)"', (REPO_ROOT / "pyproject.toml").read_text(), re.M
    )
    assert version is not None
    want = f"ghcr.io/attest-step/attest-step:{version.group(1)}@{lock['imageDigest']}"
    refs = {ref for text in _catalog_text().values() for ref in REF.findall(text)}
    assert refs == {want}
