"""The catalog pins attest-step's image to the digest this repository built from its lock."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "catalog"
RELEASE = ROOT / "images" / "attest-step" / "release.json"
LOCK = ROOT / "images" / "attest-step" / "image.lock"
REF = re.compile(r"ghcr\.io/attest-step/attest-step:([^@\s\"']+)@(sha256:[0-9a-f]{64})")


def _catalog_files() -> list[Path]:
    return [p for p in sorted(CATALOG.rglob("*")) if p.is_file()]


def test_no_placeholder_digest_anywhere_in_the_catalog() -> None:
    zeros = re.compile(r"sha256:0{64}")
    offenders = [
        str(p.relative_to(ROOT))
        for p in _catalog_files()
        if zeros.search(p.read_text(errors="replace"))
    ]
    assert offenders == []


def test_every_attest_step_reference_is_the_released_digest() -> None:
    release = json.loads(RELEASE.read_text())
    refs = {
        m.groups() for p in _catalog_files() for m in REF.finditer(p.read_text(errors="replace"))
    }
    assert refs == {(release["tag"], release["digest"])}


def test_the_release_was_built_from_the_committed_lock() -> None:
    release = json.loads(RELEASE.read_text())
    assert release["lockSha256"] == hashlib.sha256(LOCK.read_bytes()).hexdigest(), (
        "images/attest-step/image.lock changed since the catalog was pinned: "
        "run make image release-pin (or hack/release.sh)"
    )


def test_every_upstream_image_in_the_catalog_has_a_local_mapping() -> None:
    mapping = json.loads((ROOT / "images" / "upstream-map.json").read_text())["map"]
    pinned = re.compile(r"[a-z0-9.]+(?:/[a-z0-9._-]+)+:[A-Za-z0-9._-]+@sha256:[0-9a-f]{64}")
    found = {
        m.group(0) for p in _catalog_files() for m in pinned.finditer(p.read_text(errors="replace"))
    }
    upstream = {ref for ref in found if not ref.startswith("ghcr.io/attest-step/")}
    assert upstream <= set(mapping)
    for name in mapping.values():
        # kaniko and opa are built from source by their own recipe, the others from a lock
        built_from_source = (ROOT / "hack" / "image" / f"{name}.py").is_file()
        assert built_from_source or (ROOT / "images" / name / "image.lock").is_file()
