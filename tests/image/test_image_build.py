"""Reproducibility, the lock and the SBOM of the built image."""

from __future__ import annotations

import json
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

from hack.image import lockfile
from tests.fixtures.tools import REPO_ROOT
from tests.image.conftest import BuiltImage, build_image

pytestmark = [pytest.mark.image, pytest.mark.slow]

LOCK = REPO_ROOT / "images" / "attest-step" / "image.lock"


def test_two_builds_from_the_same_lock_have_the_same_digest(
    built_image: BuiltImage, tmp_path: Path
) -> None:
    again = build_image(tmp_path / "out", reuse=False)
    print(f"manifest digest: {built_image.digest} (twice)")
    assert again["digest"] == built_image.digest
    assert again["key"] == built_image.info["key"]


def _layer_members(image: BuiltImage) -> tarfile.TarFile:
    index = json.loads((image.layout / "index.json").read_text())
    manifest = json.loads(
        (image.layout / "blobs" / index["manifests"][0]["digest"].replace(":", "/")).read_bytes()
    )
    (layer,) = manifest["layers"]
    return tarfile.open(image.layout / "blobs" / layer["digest"].replace(":", "/"), "r:gz")


def test_sbom_is_spdx_and_matches_the_lock(built_image: BuiltImage) -> None:
    lock = lockfile.read(LOCK)
    with _layer_members(built_image) as tar:
        member = tar.extractfile("./usr/share/attest-step/sbom.spdx.json")
        assert member is not None
        inside = member.read()
    beside = (built_image.layout.parent / "sbom.spdx.json").read_bytes()
    assert inside == beside
    doc = json.loads(inside)
    assert doc["spdxVersion"] == "SPDX-2.3"
    assert doc["dataLicense"] == "CC0-1.0"
    assert doc["SPDXID"] == "SPDXRef-DOCUMENT"
    assert re.fullmatch(r"https://\S+", doc["documentNamespace"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", doc["creationInfo"]["created"])
    ids = [p["SPDXID"] for p in doc["packages"]]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"SPDXRef-[A-Za-z0-9.-]+", i) for i in ids)
    purls = {
        ref["referenceLocator"]
        for p in doc["packages"]
        for ref in p.get("externalRefs", [])
        if ref["referenceType"] == "purl"
    }
    debs = {
        p.split("@")[0].removeprefix("pkg:deb/debian/") for p in purls if p.startswith("pkg:deb/")
    }
    assert debs == set(lock.packages)
    pypi = {p.removeprefix("pkg:pypi/") for p in purls if p.startswith("pkg:pypi/")}
    assert {f"{w.name}@{w.version}" for w in lock.wheels} | {"attest-step@0.1.0"} == pypi
    related = {r["relatedSpdxElement"] for r in doc["relationships"]}
    assert set(ids) <= related | {"SPDXRef-Image"} and "SPDXRef-Image" in related


def test_image_dpkg_status_is_the_locked_package_set(built_image: BuiltImage) -> None:
    lock = lockfile.read(LOCK)
    with _layer_members(built_image) as tar:
        member = tar.extractfile("./var/lib/dpkg/status")
        assert member is not None
        status = member.read().decode()
        names = tar.getnames()
    got = dict(re.findall(r"^Package: (\S+)\n(?:.+\n)*?Version: (\S+)", status, re.M))
    assert got == lock.packages
    assert not set(lock.build_only) & set(got)
    for forbidden in ("./usr/bin/dpkg", "./usr/bin/apt", "./usr/bin/perl", "./usr/bin/pip3"):
        assert forbidden not in names


def test_a_lock_with_a_version_the_mirror_lacks_fails_with_the_refresh_command(
    tmp_path: Path,
) -> None:
    lock = lockfile.read(LOCK)
    lock.packages["base-files"] = "0.0-not-served"
    broken = tmp_path / "images" / "attest-step" / "image.lock"
    lock.write(broken)
    proc = subprocess.run(
        [
            "/usr/bin/python3",
            "-c",
            "import sys; sys.path.insert(0, sys.argv[1]); "
            "import hack.image.cli as c, pathlib; "
            "c.lock_path = lambda n: pathlib.Path(sys.argv[2]); "
            "sys.exit(c.main(['build', '--unlocked-dev-wheel', '--out', sys.argv[3]]))",
            str(REPO_ROOT),
            str(broken),
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.endswith("run make image-lock"), proc.stderr
    assert "mirror no longer serves a locked version" in last


def test_the_catalog_pin_is_what_this_source_builds(built_image: BuiltImage) -> None:
    """When attest-step's wheel is the locked one, the build is the released image, bit for bit."""
    lock = lockfile.read(LOCK)
    release = json.loads((LOCK.parent / "release.json").read_text())
    assert lock.project is not None
    assert built_image.info["projectWheelSha256"] == lock.project.sha256, (
        "source changed since the lock: run make image-lock image release-pin (see docs/image.md)"
    )
    assert built_image.digest == release["digest"]
