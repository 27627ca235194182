"""``attest-step copy``: an OCI layout to the real local registry and back, with auth,
corrupt and incomplete layouts, bad references and a registry that is down."""

from __future__ import annotations

import json
import os
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from attest_step.oci.layout_store import LayoutStore
from attest_step.oci.options import RegistryOptions
from attest_step.oci.registry import RegistryClient
from attest_step.oci.retry import Deadline
from tests.fixtures.hostile_http import ATTEST_STEP, TamperingProxy
from tests.fixtures.oci_image import OciImage, build_image, push_image, sha256_digest
from tests.fixtures.registry import LocalRegistry, login_registry, write_docker_config

pytestmark = pytest.mark.registry

USER, PASSWORD = "pusher", "copy-s3cret"
INSECURE = "--allow-insecure-registry"


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ATTEST_STEP, "copy", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


def _layout(root: Path, image: OciImage, tag: str = "app") -> Path:
    store = LayoutStore(root)
    with store.locked():
        for data in image.blobs.values():
            store.put_blob(data)
        store.put_manifest(tag, image.manifest, "application/vnd.oci.image.manifest.v1+json")
    return root


def _registry_has(host: str, repository: str, reference: str) -> bool:
    client = RegistryClient(
        host, RegistryOptions(allow_insecure_registry=True), deadline=Deadline(20)
    )
    return client.get_manifest(repository, reference) is not None


def _one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("attest-step: error: ")
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_copies_a_layout_to_the_registry_and_reports_the_digest(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    image = build_image(label="copy")
    layout = _layout(tmp_path / "out", image)
    repo = registry.repo("copy")
    digest_file = tmp_path / "digest"
    proc = _run(
        "--from-oci-layout",
        f"{layout}:app",
        f"{repo}:v1",
        "--allow-insecure-registry",
        "--digest-file",
        str(digest_file),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{repo}@{image.digest}\n"
    assert digest_file.read_text() == image.digest
    host, _, path = repo.partition("/")
    assert _registry_has(host, path, "v1")
    assert _registry_has(host, path, image.digest)

    # Again, as JSON, into another tag: idempotent, same digest.
    proc = _run(
        "--from-oci-layout",
        str(layout),
        f"{repo}:v2",
        "--allow-insecure-registry",
        "--output",
        "json",
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["digest"] == image.digest
    assert doc["image"] == f"{repo}@{image.digest}"
    assert doc["blobs"] == 2
    assert doc["tag"] == "v2"


def test_copies_from_the_registry_into_a_layout_by_digest(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    pushed = push_image(registry.repo("pull"))
    name = pushed.repository
    proc = _run(
        "--to-oci-layout",
        f"{name}@{pushed.digest}",
        f"{tmp_path / 'deps'}:base",
        "--allow-insecure-registry",
    )
    assert proc.returncode == 0, proc.stderr
    store = LayoutStore(tmp_path / "deps")
    found = store.get_manifest("base")
    assert found is not None
    assert found.digest == pushed.digest
    for digest, data in pushed.image.blobs.items():
        assert store.get_blob(digest) == data
    # And back to another repository: the same image, byte for byte.
    other = registry.repo("again")
    proc = _run(
        "--from-oci-layout",
        f"{tmp_path / 'deps'}@{pushed.digest}",
        other,
        "--allow-insecure-registry",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{other}@{pushed.digest}\n"


def test_blobs_a_layout_has_are_not_downloaded_again(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    """A blob is fetched on its first read: the second copy into the same layout reads
    the manifest and downloads nothing (through a recording proxy)."""
    gets: list[str] = []

    def record(method: str, path: str, status: int, body: bytes) -> bytes:
        if method == "GET" and "/blobs/" in path:
            gets.append(path)
        return body

    proxy = TamperingProxy(registry.host, record)
    try:
        image = build_image({"big.bin": os.urandom(64 << 10)}, label="nodl")
        pushed = push_image(registry.repo("nodl"), image)
        ref = f"{proxy.host}/{pushed.repository.partition('/')[2]}@{pushed.digest}"
        for tag in ("one", "two"):
            gets.clear()
            proc = _run("--to-oci-layout", ref, f"{tmp_path / 'deps'}:{tag}", INSECURE)
            assert proc.returncode == 0, proc.stderr
            if tag == "one":
                assert len(gets) == len(image.blobs), gets
        assert gets == []
        store = LayoutStore(tmp_path / "deps")
        assert store.list_tags() == ["one", "two"]
        for digest, data in image.blobs.items():
            assert store.get_blob(digest) == data
    finally:
        proxy.stop()


def test_a_corrupt_layout_blob_is_refused_and_nothing_is_tagged(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    image = build_image(label="corrupt")
    layout = _layout(tmp_path / "out", image)
    manifest = json.loads(image.manifest)
    layer = manifest["layers"][0]["digest"]
    path = layout / "blobs" / "sha256" / layer.split(":")[1]
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    repo = registry.repo("corrupt")
    proc = _run("--from-oci-layout", f"{layout}:app", f"{repo}:v1", "--allow-insecure-registry")
    assert proc.returncode == 2
    assert layer in _one_error_line(proc)
    host, _, path_ = repo.partition("/")
    assert not _registry_has(host, path_, "v1")
    # The config was not uploaded either: every blob is checked before the first upload.
    config = manifest["config"]["digest"]
    client = RegistryClient(
        host, RegistryOptions(allow_insecure_registry=True), deadline=Deadline(20)
    )
    with pytest.raises(Exception, match="404"):
        client.get_blob(path_, config)


def test_a_missing_blob_is_refused(registry: LocalRegistry, tmp_path: Path) -> None:
    image = build_image(label="missing")
    layout = _layout(tmp_path / "out", image)
    config = json.loads(image.manifest)["config"]["digest"]
    (layout / "blobs" / "sha256" / config.split(":")[1]).unlink()
    repo = registry.repo("missing")
    proc = _run("--from-oci-layout", f"{layout}:app", f"{repo}:v1", "--allow-insecure-registry")
    assert proc.returncode == 2
    line = _one_error_line(proc)
    assert config in line
    assert "not in the layout" in line


def test_an_index_is_refused_in_one_line(registry: LocalRegistry, tmp_path: Path) -> None:
    image = build_image(label="index")
    layout = _layout(tmp_path / "out", image)
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": image.digest,
                    "size": len(image.manifest),
                }
            ],
        }
    ).encode()
    store = LayoutStore(layout)
    with store.locked():
        store.put_manifest("multi", index, "application/vnd.oci.image.index.v1+json")
    proc = _run(
        "--from-oci-layout", f"{layout}:multi", registry.repo("idx"), "--allow-insecure-registry"
    )
    assert proc.returncode == 2
    assert "not a single image manifest" in _one_error_line(proc)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--from-oci-layout", "{layout}:app", "Upper/Case:v1"], "not a valid image name"),
        (["--from-oci-layout", "{layout}:app", "{repo}@sha256:12"], "not a digest"),
        (["--from-oci-layout", "{layout}:no-such-tag", "{repo}:v1"], "no such image"),
        (["--from-oci-layout", "{layout}@sha256:zz", "{repo}:v1"], "not a digest"),
        (["--from-oci-layout", "{tmp}/nowhere:app", "{repo}:v1"], "not an OCI image layout"),
        (["--from-oci-layout", "{layout}", "{repo}@sha256:" + "ab" * 32], "has digest"),
        (["--from-oci-layout", "{layout}", "{repo}:v1@sha256:" + "ab" * 32], "has digest"),
        (["{layout}:app", "{repo}:v1"], "exactly one of"),
        (["--from-oci-layout", "{layout}:app", "127.0.0.1:99999/x:v1"], "not a TCP port"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    registry: LocalRegistry, tmp_path: Path, args: list[str], needle: str
) -> None:
    layout = _layout(tmp_path / "out", build_image(label="bad"))
    values = {"layout": str(layout), "repo": registry.repo("bad"), "tmp": str(tmp_path)}
    proc = _run(*[a.format(**values) for a in args], "--allow-insecure-registry")
    assert proc.returncode == 2, proc.stderr
    assert needle in _one_error_line(proc)


def test_registry_down_is_exit_75(private_registry: LocalRegistry, tmp_path: Path) -> None:
    layout = _layout(tmp_path / "out", build_image(label="down"))
    repo = private_registry.repo("down")
    private_registry.stop()
    proc = _run(
        "--from-oci-layout",
        f"{layout}:app",
        f"{repo}:v1",
        "--allow-insecure-registry",
        "--timeout",
        "3s",
    )
    assert proc.returncode == 75, proc.stderr
    _one_error_line(proc)


@pytest.fixture
def auth_registry(tmp_path: Path) -> Iterator[LocalRegistry]:
    with login_registry(tmp_path / "reg", USER, PASSWORD) as reg:
        yield reg


def test_credentials_come_from_the_docker_config(
    auth_registry: LocalRegistry, tmp_path: Path
) -> None:
    # A layer over 16 KiB: streamed (PUT body and GET spool), sent again after the 401.
    big = random.Random(7).randbytes(256 << 10)
    image = build_image({"big.bin": big}, label="auth")
    layout = _layout(tmp_path / "out", image)
    repo = auth_registry.repo("auth")
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = _run(
        "--from-oci-layout",
        f"{layout}:app",
        f"{repo}:v1",
        "--allow-insecure-registry",
        env={"DOCKER_CONFIG": str(empty)},
    )
    assert proc.returncode == 2
    assert "HTTP 401" in _one_error_line(proc)
    config = write_docker_config(tmp_path / "cfg", auth_registry.host, USER, PASSWORD)
    back = tmp_path / "back"
    logged_in = {"DOCKER_CONFIG": str(config)}
    pushed = _run("--from-oci-layout", f"{layout}:app", f"{repo}:v1", INSECURE, env=logged_in)
    assert pushed.returncode == 0, pushed.stderr
    assert pushed.stdout == f"{repo}@{image.digest}\n"
    assert PASSWORD not in pushed.stderr
    assert sha256_digest(image.manifest) == image.digest
    pulled = _run("--to-oci-layout", f"{repo}:v1", f"{back}:v1", INSECURE, env=logged_in)
    assert pulled.returncode == 0, pulled.stderr
    for digest, data in image.blobs.items():
        assert (back / "blobs" / "sha256" / digest[7:]).read_bytes() == data


def test_blobs_the_registry_has_are_not_sent_again_and_a_bad_layout_sends_nothing(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    """Every request, through a recording proxy in front of the real registry."""
    seen: list[str] = []

    def record(method: str, path: str, status: int, body: bytes) -> bytes:
        seen.append(f"{method} {path.split('?', maxsplit=1)[0]}")
        return body

    proxy = TamperingProxy(registry.host, record)
    try:
        image = build_image({"big.bin": os.urandom(64 << 10)}, label="skip")
        layer = json.loads(image.manifest)["layers"][0]["digest"]
        layout = _layout(tmp_path / "out", image)
        repo = f"{proxy.host}/{registry.repo('skip').partition('/')[2]}"
        uploads = []
        for tag in ("v1", "v2"):
            seen.clear()
            proc = _run("--from-oci-layout", f"{layout}:app", f"{repo}:{tag}", INSECURE)
            assert proc.returncode == 0, proc.stderr
            uploads.append(len([s for s in seen if s.startswith("POST ")]))
        # The second copy asked about the 64 KiB layer (HEAD) and did not send it again;
        # the small config is sent without asking (a HEAD would cost the same round trip).
        assert any(s.startswith("HEAD ") and s.endswith(layer) for s in seen), seen
        assert uploads == [2, 1], seen
        assert [s for s in seen if s.startswith("PUT ")] == [
            f"PUT /v2/{repo.partition('/')[2]}/manifests/v2"
        ], seen

        path = layout / "blobs" / "sha256" / layer.split(":")[1]
        data = path.read_bytes()
        path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
        seen.clear()
        proc = _run("--from-oci-layout", f"{layout}:app", f"{repo}:v3", INSECURE)
        assert proc.returncode == 2
        assert seen == []
    finally:
        proxy.stop()
