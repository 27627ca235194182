"""``attest-step append``: one reproducible layer of a directory on a base image, in OCI
layouts, no network."""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attest_step.oci.append import layer_tar
from attest_step.oci.layout_store import LayoutStore
from tests.fixtures.hostile_http import ATTEST_STEP
from tests.fixtures.oci_image import OciImage, build_image

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ATTEST_STEP, "append", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


def _base(
    root: Path, image: OciImage, media: str = "application/vnd.oci.image.manifest.v1+json"
) -> Path:
    store = LayoutStore(root)
    with store.locked():
        for data in image.blobs.values():
            store.put_blob(data)
        store.put_manifest("base", image.manifest, media)
    return root


def _tree(root: Path, mtime: int) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "app").write_text("#!/bin/sh\necho hi\n")
    (root / "bin" / "app").chmod(0o700)
    (root / "share").mkdir()
    (root / "share" / "data.txt").write_text("data\n")
    (root / "share" / "data.txt").chmod(0o600)
    (root / "current").symlink_to("bin/app")
    for path in [*root.rglob("*"), root]:
        os.utime(path, (mtime, mtime), follow_symlinks=False)
    return root


def _image(layout: Path, tag: str) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    store = LayoutStore(layout)
    found = store.get_manifest(tag)
    assert found is not None
    manifest = found.json()
    config = json.loads(store.get_blob(manifest["config"]["digest"]))
    layer = store.get_blob(manifest["layers"][-1]["digest"])
    return manifest, config, layer


def test_the_layer_is_reproducible_and_normalised(tmp_path: Path) -> None:
    base = _base(tmp_path / "base", build_image(label="append"))
    one = _tree(tmp_path / "one", 1_700_000_000)
    two = _tree(tmp_path / "two", 1_600_000_000)
    first = _run(
        "--base",
        f"{base}:base",
        "--to-oci-layout",
        f"{tmp_path / 'img'}:app",
        "--prefix",
        "/app",
        str(one),
    )
    second = _run(
        "--base",
        str(base),
        "--to-oci-layout",
        f"{tmp_path / 'img2'}:app",
        "--prefix",
        "app",
        str(two),
        "--digest-file",
        str(tmp_path / "d"),
    )
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert first.stdout.rsplit("@", 1)[1] == second.stdout.rsplit("@", 1)[1]
    assert (tmp_path / "d").read_text() == second.stdout.strip().rsplit("@", 1)[1]
    manifest, config, layer = _image(tmp_path / "img", "app")
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        members = [(m.name, m.type, m.mode, m.uid, m.gid, m.mtime, m.linkname) for m in tar]
    assert members == [
        ("app", tarfile.DIRTYPE, 0o755, 0, 0, 0, ""),
        ("app/bin", tarfile.DIRTYPE, 0o755, 0, 0, 0, ""),
        ("app/bin/app", tarfile.REGTYPE, 0o755, 0, 0, 0, ""),
        ("app/current", tarfile.SYMTYPE, 0o777, 0, 0, 0, "bin/app"),
        ("app/share", tarfile.DIRTYPE, 0o755, 0, 0, 0, ""),
        ("app/share/data.txt", tarfile.REGTYPE, 0o644, 0, 0, 0, ""),
    ]
    rootfs = config["rootfs"]
    assert isinstance(rootfs, dict)
    assert len(rootfs["diff_ids"]) == 2
    assert rootfs["diff_ids"][-1] == manifest["layers"][-1]["digest"]
    assert config["created"] == "1970-01-01T00:00:00Z"
    annotations = manifest["annotations"]
    assert isinstance(annotations, dict)
    assert annotations["org.opencontainers.image.base.digest"] == build_image(label="append").digest


def test_source_date_epoch_sets_every_time(tmp_path: Path) -> None:
    base = _base(tmp_path / "base", build_image(label="epoch"))
    tree = _tree(tmp_path / "t", 5)
    proc = _run(
        "--base",
        str(base),
        "--to-oci-layout",
        str(tmp_path / "img"),
        str(tree),
        env={"SOURCE_DATE_EPOCH": "1700000000"},
    )
    assert proc.returncode == 0, proc.stderr
    _, config, layer = _image(tmp_path / "img", "latest")
    assert config["created"] == "2023-11-14T22:13:20Z"
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        assert {m.mtime for m in tar} == {1_700_000_000}


def test_a_docker_base_is_written_as_oci(tmp_path: Path) -> None:
    image = build_image(label="docker")
    doc = json.loads(image.manifest)
    doc["mediaType"] = DOCKER_MANIFEST
    doc["config"]["mediaType"] = "application/vnd.docker.container.image.v1+json"
    for layer in doc["layers"]:
        layer["mediaType"] = "application/vnd.docker.image.rootfs.diff.tar.gzip"
    docker = OciImage(manifest=json.dumps(doc).encode(), blobs=image.blobs)
    base = _base(tmp_path / "base", docker, DOCKER_MANIFEST)
    proc = _run(
        "--base",
        f"{base}:base",
        "--to-oci-layout",
        str(tmp_path / "img"),
        str(_tree(tmp_path / "t", 0)),
    )
    assert proc.returncode == 0, proc.stderr
    manifest, _, _ = _image(tmp_path / "img", "latest")
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    types = [d["mediaType"] for d in manifest["layers"]]
    assert types == [
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.v1.tar",
    ]


@pytest.mark.parametrize(
    ("setup", "args", "needle"),
    [
        ("fifo", [], "not a file, directory or symbolic link"),
        ("big", ["--max-blob-size", "1KiB"], "raise --max-blob-size"),
        ("none", [], "not an OCI image layout"),
        ("corrupt", [], "does not match its digest"),
        ("plain", ["--prefix", "../etc"], "'..' is not allowed"),
        ("plain", ["--to-oci-layout-digest"], ""),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, setup: str, args: list[str], needle: str) -> None:
    image = build_image(label="bad")
    base = tmp_path / "base"
    if setup != "none":
        _base(base, image)
    tree = tmp_path / "t"
    tree.mkdir()
    (tree / "f").write_text("x")
    if setup == "fifo":
        os.mkfifo(tree / "pipe")
    if setup == "big":
        (tree / "big").write_bytes(b"\0" * 4096)
    if setup == "corrupt":
        layer = json.loads(image.manifest)["layers"][0]["digest"]
        path = base / "blobs" / "sha256" / layer.split(":")[1]
        data = path.read_bytes()
        path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    if args == ["--to-oci-layout-digest"]:
        args, needle = ["--to-oci-layout", f"{tmp_path / 'x'}@sha256:{'a' * 64}"], "not a digest"
        proc = _run("--base", str(base), *args, str(tree))
    else:
        proc = _run("--base", str(base), "--to-oci-layout", str(tmp_path / "img"), *args, str(tree))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("attest-step: error: "), proc.stderr
    assert needle in lines[0]


_names = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,8}", fullmatch=True)


def _no_file_is_a_directory(files: dict[str, bytes]) -> bool:
    return not any(other.startswith(f"{name}/") for name in files for other in files)


_trees = st.dictionaries(
    st.lists(_names, min_size=1, max_size=3).map("/".join), st.binary(max_size=64), max_size=8
).filter(_no_file_is_a_directory)


@settings(max_examples=30, deadline=None)
@given(_trees, st.randoms(use_true_random=False))
def test_the_same_content_gives_the_same_layer_whatever_the_order_and_times(
    files: dict[str, bytes], rnd: random.Random
) -> None:
    layers = []
    for attempt in range(2):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            items = list(files.items())
            rnd.shuffle(items)
            for rel, data in items:
                path = root / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                path.chmod(0o600 if attempt else 0o664)
                os.utime(path, (attempt * 1000, attempt * 1000))
            with tempfile.TemporaryFile() as out:
                layer_tar(root, "/", 0, 1 << 20, out)
                out.seek(0)
                layers.append(out.read())
    assert layers[0] == layers[1]
