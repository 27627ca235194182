"""``attest-step copy --platform``: one image out of an index (OCI index or Docker manifest
list) pushed to the real local registry, by the index digest a user pins."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from attest_step.oci.layout_store import LayoutStore
from tests.fixtures.hostile_http import ATTEST_STEP
from tests.fixtures.oci_image import DOCKER_LIST_TYPE, INDEX_TYPE, OciImage, build_image, push_index
from tests.fixtures.registry import LocalRegistry

pytestmark = pytest.mark.registry

INSECURE = "--allow-insecure-registry"


def _copy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ATTEST_STEP, "copy", *args, INSECURE],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
        check=False,
    )


def _error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("attest-step: error: ")
    return lines[0]


def _images() -> dict[str, OciImage]:
    return {
        "linux/amd64": build_image(label="amd64", platform="linux/amd64"),
        "linux/arm64/v8": build_image(label="arm64", platform="linux/arm64/v8"),
        "linux/arm/v7": build_image(label="armv7", platform="linux/arm/v7"),
    }


def _assert_layout_holds(root: Path, image: OciImage, tag: str) -> None:
    """The layout's tag names ``image`` and every file under blobs/ hashes to its name."""
    found = LayoutStore(root).get_manifest(tag)
    assert found is not None
    assert found.digest == image.digest
    assert found.data == image.manifest
    for digest, data in {**image.blobs, image.digest: image.manifest}.items():
        blob = (root / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()
        assert blob == data
        assert "sha256:" + hashlib.sha256(blob).hexdigest() == digest


@pytest.mark.parametrize("media_type", [INDEX_TYPE, DOCKER_LIST_TYPE])
@pytest.mark.parametrize(
    ("platform", "key"),
    [
        ("linux/amd64", "linux/amd64"),
        ("linux/arm64", "linux/arm64/v8"),
        ("linux/arm/v7", "linux/arm/v7"),
    ],
)
def test_the_image_for_the_platform_is_copied_by_the_index_digest(
    registry: LocalRegistry, tmp_path: Path, media_type: str, platform: str, key: str
) -> None:
    images = _images()
    repo = registry.repo("multi")
    index = push_index(repo, images, media_type=media_type)
    digest_file = tmp_path / "digest"
    proc = _copy(
        "--to-oci-layout",
        "--platform",
        platform,
        f"{repo}@{index}",
        f"{tmp_path / 'deps'}:base",
        "--digest-file",
        str(digest_file),
    )
    assert proc.returncode == 0, proc.stderr
    wanted = images[key]
    assert proc.stdout == f"{repo}@{wanted.digest}\n"
    assert f"copied {platform} image {wanted.digest}, listed in the index {index}" in proc.stderr
    assert digest_file.read_text() == wanted.digest
    _assert_layout_holds(tmp_path / "deps", wanted, "base")
    others = {d for k, img in images.items() if k != key for d in img.blobs}
    present = {f"sha256:{p.name}" for p in (tmp_path / "deps" / "blobs" / "sha256").iterdir()}
    assert not others & present


def test_json_reports_the_index_and_the_image(registry: LocalRegistry, tmp_path: Path) -> None:
    images = _images()
    repo = registry.repo("multi-json")
    index = push_index(repo, images, tag="v1")
    proc = _copy(
        "--to-oci-layout",
        "--platform",
        "linux/arm/v7",
        f"{repo}:v1",
        str(tmp_path / "deps"),
        "--output",
        "json",
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    wanted = images["linux/arm/v7"]
    assert doc["digest"] == wanted.digest
    assert doc["image"] == f"{repo}@{wanted.digest}"
    assert doc["index"] == index
    assert doc["platform"] == "linux/arm/v7"
    assert doc["blobs"] == 2
    assert proc.stderr == ""
    _assert_layout_holds(tmp_path / "deps", wanted, "v1")


def test_the_copied_image_goes_back_to_a_registry_with_its_digest(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    images = _images()
    repo = registry.repo("multi-back")
    index = push_index(repo, images)
    layout = f"{tmp_path / 'deps'}:base"
    assert (
        _copy("--to-oci-layout", "--platform", "linux/arm64", f"{repo}@{index}", layout).returncode
        == 0
    )
    wanted = images["linux/arm64/v8"]
    proc = _copy("--from-oci-layout", layout, f"{registry.repo('single')}@{wanted.digest}")
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    ("platform", "needles"),
    [
        (
            "linux/s390x",
            ["no manifest for platform linux/s390x", "linux/amd64, linux/arm/v7, linux/arm64/v8"],
        ),
        ("linux/arm64/v9", ["no manifest for platform linux/arm64/v9"]),
        ("windows/amd64", ["no manifest"]),
    ],
)
def test_no_image_for_the_platform_is_refused_naming_those_listed(
    registry: LocalRegistry, tmp_path: Path, platform: str, needles: list[str]
) -> None:
    repo = registry.repo("multi-none")
    index = push_index(repo, _images())
    proc = _copy("--to-oci-layout", "--platform", platform, f"{repo}@{index}", str(tmp_path / "d"))
    line = _error(proc)
    for needle in needles:
        assert needle in line
    blobs = tmp_path / "d" / "blobs" / "sha256"
    assert not blobs.exists() or not any(blobs.iterdir())


def test_several_images_for_the_platform_are_refused(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    repo = registry.repo("multi-twice")
    images = {
        "linux/arm/v6": build_image(label="v6", platform="linux/arm/v6"),
        "linux/arm/v7": build_image(label="v7", platform="linux/arm/v7"),
    }
    index = push_index(repo, images)
    line = _error(
        _copy("--to-oci-layout", "--platform", "linux/arm", f"{repo}@{index}", str(tmp_path / "d"))
    )
    assert "2 manifests for platform linux/arm" in line
    assert "linux/arm/v6, linux/arm/v7" in line
    assert "with its variant" in line
    proc = _copy(
        "--to-oci-layout", "--platform", "linux/arm/v6", f"{repo}@{index}", str(tmp_path / "d")
    )
    assert proc.returncode == 0, proc.stderr


def test_an_index_without_platform_is_refused_suggesting_it(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    repo = registry.repo("multi-noflag")
    index = push_index(repo, _images())
    line = _error(_copy("--to-oci-layout", f"{repo}@{index}", str(tmp_path / "d")))
    assert "an index (multi-platform image)" in line
    assert "--platform OS/ARCH[/VARIANT]" in line


def test_platform_on_a_single_image_checks_its_config(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    repo = registry.repo("single-platform")
    images = {"linux/arm64/v8": build_image(label="only", platform="linux/arm64/v8")}
    push_index(repo, images)
    image = images["linux/arm64/v8"]
    ok = _copy(
        "--to-oci-layout",
        "--platform",
        "linux/arm64",
        f"{repo}@{image.digest}",
        str(tmp_path / "d"),
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stderr == ""
    line = _error(
        _copy(
            "--to-oci-layout",
            "--platform",
            "linux/amd64",
            f"{repo}@{image.digest}",
            str(tmp_path / "e"),
        )
    )
    assert "a single image for linux/arm64/v8, not linux/amd64" in line


def test_a_malformed_platform_is_refused_before_any_request(tmp_path: Path) -> None:
    line = _error(
        _copy(
            "--to-oci-layout",
            "--platform",
            "linux",
            "127.0.0.1:1/x@sha256:" + "ab" * 32,
            str(tmp_path),
        )
    )
    assert "--platform 'linux': not OS/ARCH[/VARIANT]" in line


def test_platform_selects_from_an_index_in_a_layout(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    images = _images()
    repo = registry.repo("multi-src")
    index = push_index(repo, images)
    # Bring the whole index into a layout, then copy one platform out of it.
    layout = LayoutStore(tmp_path / "src")
    with layout.locked():
        for img in images.values():
            for data in img.blobs.values():
                layout.put_blob(data)
            layout.put_manifest(
                img.digest, img.manifest, "application/vnd.oci.image.manifest.v1+json"
            )
        body = _fetch_index(repo, index)
        layout.put_manifest("multi", body, INDEX_TYPE)
    (tmp_path / "src" / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    target = registry.repo("one")
    proc = _copy(
        "--from-oci-layout",
        "--platform",
        "linux/amd64",
        f"{tmp_path / 'src'}:multi",
        f"{target}:v1",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{target}@{images['linux/amd64'].digest}\n"


def _fetch_index(repo: str, digest: str) -> bytes:
    from attest_step.oci.options import RegistryOptions  # noqa: PLC0415
    from attest_step.oci.registry import RegistryClient  # noqa: PLC0415
    from attest_step.oci.retry import Deadline  # noqa: PLC0415

    host, _, path = repo.partition("/")
    client = RegistryClient(
        host, RegistryOptions(allow_insecure_registry=True), deadline=Deadline(20)
    )
    found = client.get_manifest(path, digest)
    assert found is not None
    return found.data
