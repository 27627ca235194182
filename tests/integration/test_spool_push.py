"""``push --from DIR`` against a real registry: what a spool may not make it upload.

Issue 11, section 3: a symlinked blob in the spool made ``push`` upload the file it pointed
at (a secret outside the spool). The attacks below plant things in a spool written by
attest-step, the way a hostile build step sharing the workspace could.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from attest_step.dsse import sign_envelope
from attest_step.imageref import ImageRef, parse_image_ref
from attest_step.keys.local import LocalSigner
from attest_step.oci.spool import write_attestation
from tests.fixtures.oci_image import push_image, slsa_statement
from tests.fixtures.registry import LocalRegistry

pytestmark = pytest.mark.registry

SECRET = b"password=hunter2-do-not-upload\n"


def _attest_step(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "attest-step"), *args],
        capture_output=True, text=True, check=False, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def _spool(tmp_path: Path, registry: LocalRegistry) -> tuple[Path, ImageRef, Path, Path]:
    """A spool with one attestation for a pushed image: (spool, image, record, blob)."""
    image = push_image(registry.repo("spool"))
    ref = parse_image_ref(image.ref)
    signer = LocalSigner(ec.generate_private_key(ec.SECP256R1()))
    statement = json.dumps(slsa_statement(ref.name, ref.hex)).encode()
    envelope = json.dumps(sign_envelope(statement, signer)).encode()
    spool = tmp_path / "spool"
    blob = write_attestation(spool, envelope, ref, "https://slsa.dev/provenance/v1")
    record = blob.with_name(blob.name.removesuffix(".dsse.json") + ".oci.json")
    return spool, ref, record, blob


def _point_record_at(record: Path, data: bytes) -> tuple[Path, Path]:
    """Rewrite ``record`` for a blob holding ``data``, as a hostile step could: blobDigest,
    the file names that carry the digest, and the blob field all agree, so only the check of
    what the blob file *is* stands between the spool and the upload. Returns the new record
    path and the (not yet existing) blob path it names."""
    doc = json.loads(record.read_text())
    hexdigest = hashlib.sha256(data).hexdigest()
    kind, image_hex, _ = record.name.removesuffix(".oci.json").rsplit("-", 2)
    stem = f"{kind}-{image_hex}-{hexdigest[:16]}"
    doc["blobDigest"] = f"sha256:{hexdigest}"
    doc["blob"] = f"{stem}.dsse.json"
    record.unlink()
    new_record = record.with_name(f"{stem}.oci.json")
    new_record.write_text(json.dumps(doc))
    return new_record, record.with_name(doc["blob"])


def _uploaded_anywhere(registry: LocalRegistry, data: bytes) -> bool:
    """Whether the registry stores a blob with these bytes, in any repository."""
    hexdigest = hashlib.sha256(data).hexdigest()
    blobs = registry.storage / "docker" / "registry" / "v2" / "blobs" / "sha256"
    return (blobs / hexdigest[:2] / hexdigest / "data").exists()


def _tag_exists(ref: ImageRef, tag: str) -> bool:
    url = f"http://{ref.registry}/v2/{ref.repository}/manifests/{tag}"
    request = urllib.request.Request(url, method="HEAD")
    request.add_header("Accept", "application/vnd.oci.image.manifest.v1+json")
    try:
        with urllib.request.urlopen(request, timeout=5):
            return True
    except urllib.error.HTTPError as err:
        if err.code == 404:
            return False
        raise


def _push(spool: Path) -> subprocess.CompletedProcess[str]:
    return _attest_step("push", "--from", str(spool), "--allow-insecure-registry")


def _assert_refused(proc: subprocess.CompletedProcess[str], needle: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert needle in proc.stderr
    assert "hunter2" not in proc.stdout + proc.stderr


def test_attack_symlinked_blob_uploads_a_secret_outside_the_spool(
    tmp_path: Path, registry: LocalRegistry
) -> None:
    spool, ref, record, blob = _spool(tmp_path, registry)
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_bytes(SECRET)
    blob.unlink()
    _, blob = _point_record_at(record, SECRET)
    blob.symlink_to(secret)
    proc = _push(spool)
    _assert_refused(proc, "a symbolic link")
    assert not _uploaded_anywhere(registry, SECRET), "the secret reached the registry"
    assert not _tag_exists(ref, f"sha256-{ref.hex}.att")


def test_attack_symlinked_record_is_refused(tmp_path: Path, registry: LocalRegistry) -> None:
    spool, ref, record, _ = _spool(tmp_path, registry)
    elsewhere = tmp_path / "elsewhere.oci.json"
    record.rename(elsewhere)
    record.symlink_to(elsewhere)
    _assert_refused(_push(spool), "a symbolic link")
    assert not _tag_exists(ref, f"sha256-{ref.hex}.att")


def test_attack_fifo_blob_is_refused_without_hanging(
    tmp_path: Path, registry: LocalRegistry
) -> None:
    spool, _, _, blob = _spool(tmp_path, registry)
    blob.unlink()
    os.mkfifo(blob)
    _assert_refused(_push(spool), "a FIFO")


def test_attack_blob_swapped_for_other_bytes_is_refused(
    tmp_path: Path, registry: LocalRegistry
) -> None:
    spool, ref, _, blob = _spool(tmp_path, registry)
    blob.write_bytes(SECRET)
    _assert_refused(_push(spool), "does not match blobDigest")
    assert not _uploaded_anywhere(registry, SECRET)
    assert not _tag_exists(ref, f"sha256-{ref.hex}.att")


def test_attack_record_naming_another_file_as_its_blob_is_refused(
    tmp_path: Path, registry: LocalRegistry
) -> None:
    """A regular file of the spool directory, but not this record's blob (e.g. a key left
    there): the record names its own blob only."""
    spool, _, record, _ = _spool(tmp_path, registry)
    (spool / "cosign.key").write_bytes(SECRET)
    doc = json.loads(record.read_text())
    doc["blob"] = "cosign.key"
    doc["blobDigest"] = "sha256:" + hashlib.sha256(SECRET).hexdigest()
    record.write_text(json.dumps(doc))
    _assert_refused(_push(spool), "its blob must be")
    assert not _uploaded_anywhere(registry, SECRET)


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("annotations", ["a", "b"], "annotations must be an object of strings"),
        ("annotations", {"a": 1}, "annotations must be an object of strings"),
        ("mediaType", "application/octet-stream", "mediaType must be"),
        ("image", 7, "image must be a string"),
        ("predicateType", ["x"], "predicateType must be a non-empty string"),
        ("spoolVersion", True, "not a spool record of version 1"),
        ("blobDigest", None, "blobDigest must be a string"),
        ("image", "127.0.0.1:5000/other@sha256:" + "e" * 64, "its file name does not match"),
    ],
)
def test_malformed_spool_record_is_an_input_error_not_an_internal_one(
    tmp_path: Path, registry: LocalRegistry, field: str, value: object, needle: str
) -> None:
    """A malformed spool exited 70 ("internal error")."""
    spool, _, record, _ = _spool(tmp_path, registry)
    doc = json.loads(record.read_text())
    doc[field] = value
    record.write_text(json.dumps(doc))
    _assert_refused(_push(spool), needle)


def test_a_clean_spool_still_pushes(tmp_path: Path, registry: LocalRegistry) -> None:
    spool, ref, _, blob = _spool(tmp_path, registry)
    proc = _push(spool)
    assert proc.returncode == 0, proc.stderr
    assert _uploaded_anywhere(registry, blob.read_bytes())
    assert _tag_exists(ref, f"sha256-{ref.hex}.att")
