"""OpenPGP simple signing: the payload, the lookaside layout, identity matching, keys."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pysequoia
import pytest

from attest_step.errors import UsageError, VerificationError
from attest_step.imageref import parse_image_ref
from attest_step.oci.simplesigning import atomic_payload_bytes, check_atomic_claims
from attest_step.pgp.keys import PgpSigner, load_pgp_signer
from attest_step.pgp.lookaside import (
    MAX_SIGNATURE_BYTES,
    add_signature,
    image_dir,
    read_signatures,
)
from attest_step.pgp.simple_signing import (
    docker_reference,
    identity_matches,
    sign_to_lookaside,
    verify_lookaside,
)

HEX = "0123456789abcdef" * 4
DIGEST = f"sha256:{HEX}"


def test_atomic_payload_is_what_containers_image_reads() -> None:
    payload = atomic_payload_bytes("127.0.0.1:5000/a/b:v1", DIGEST, creator="c", timestamp=7)
    assert payload == (
        b'{"critical":{"identity":{"docker-reference":"127.0.0.1:5000/a/b:v1"},'
        b'"image":{"docker-manifest-digest":"' + DIGEST.encode() + b'"},'
        b'"type":"atomic container signature"},"optional":{"creator":"c","timestamp":7}}'
    )
    reference, doc = check_atomic_claims(payload, DIGEST)
    assert reference == "127.0.0.1:5000/a/b:v1"
    assert doc["optional"]["timestamp"] == 7


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (lambda d: d.__setitem__("optional", None), "optional is not a JSON object"),
        (lambda d: d["critical"].__setitem__("type", "cosign container image signature"), "type"),
        (lambda d: d["critical"].__setitem__("extra", 1), "exactly"),
        (
            lambda d: d["critical"]["image"].__setitem__("docker-manifest-digest", "sha256:00"),
            "for",
        ),
        (lambda d: d.pop("optional"), "exactly"),
    ],
)
def test_atomic_claims_are_as_strict_as_containers_image(edit: object, says: str) -> None:
    doc = json.loads(atomic_payload_bytes("r.io/a:v1", DIGEST, creator="c"))
    edit(doc)  # type: ignore[operator]
    with pytest.raises(VerificationError, match=says):
        check_atomic_claims(json.dumps(doc).encode(), DIGEST)


def test_lookaside_layout_has_the_repository_path_without_the_host(tmp_path: Path) -> None:
    image = parse_image_ref(f"127.0.0.1:5000/org/app:v1@{DIGEST}")
    assert image_dir(tmp_path, image) == tmp_path / f"org/app@sha256={HEX}"
    hub = parse_image_ref(f"busybox@{DIGEST}")
    assert image_dir(tmp_path, hub) == tmp_path / f"library/busybox@sha256={HEX}"


def test_docker_reference_pins_a_tag_or_the_digest() -> None:
    assert docker_reference(parse_image_ref(f"busybox:1@{DIGEST}")) == "docker.io/library/busybox:1"
    assert docker_reference(parse_image_ref(f"r.io/a@{DIGEST}")) == f"r.io/a@{DIGEST}"


@pytest.mark.parametrize(
    ("signed", "image", "ok"),
    [
        ("r.io/a:v1", f"r.io/a@{DIGEST}", True),
        (f"r.io/a@{DIGEST}", f"r.io/a@{DIGEST}", True),
        ("r.io/a:v1", f"r.io/a:v1@{DIGEST}", True),
        ("r.io/a:v2", f"r.io/a:v1@{DIGEST}", False),
        (f"r.io/a@{DIGEST}", f"r.io/a:v1@{DIGEST}", False),
        ("r.io/a", f"r.io/a@{DIGEST}", False),  # a bare repository: never
        ("r.io/b:v1", f"r.io/a@{DIGEST}", False),
        ("docker.io/library/busybox:1", f"busybox@{DIGEST}", True),
        ("busybox:1", f"index.docker.io/library/busybox@{DIGEST}", True),
        ("NOT A REF", f"r.io/a@{DIGEST}", False),
    ],
)
def test_identity_follows_match_repo_digest_or_exact(signed: str, image: str, ok: bool) -> None:
    assert identity_matches(signed, parse_image_ref(image)) is ok


def test_signatures_are_numbered_without_gaps_and_read_in_order(tmp_path: Path) -> None:
    image = parse_image_ref(f"r.io/a@{DIGEST}")
    paths = [add_signature(tmp_path, image, bytes([n])) for n in range(3)]
    assert [p.name for p in paths] == ["signature-1", "signature-2", "signature-3"]
    paths[1].unlink()  # readers stop at the first gap, as containers/image does
    assert [data for _, data in read_signatures(tmp_path, image)] == [b"\x00"]
    assert not list(image_dir(tmp_path, image).glob(".tmp-*"))
    assert oct(paths[0].stat().st_mode & 0o777) == "0o644"


def test_an_oversized_or_odd_signature_file_is_refused(tmp_path: Path) -> None:
    image = parse_image_ref(f"r.io/a@{DIGEST}")
    directory = image_dir(tmp_path, image)
    directory.mkdir(parents=True)
    with (directory / "signature-1").open("wb") as handle:
        handle.truncate(MAX_SIGNATURE_BYTES + 1)
    with pytest.raises(UsageError, match="larger than"):
        read_signatures(tmp_path, image)
    (directory / "signature-1").unlink()
    os.mkfifo(directory / "signature-1")
    with pytest.raises(UsageError, match="not a regular file"):
        read_signatures(tmp_path, image)


def test_unwritable_lookaside_is_a_usage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UsageError, match="--lookaside"):
        add_signature(blocker, parse_image_ref(f"r.io/a@{DIGEST}"), b"sig")


def test_sign_and_verify_round_trip_with_a_sequoia_key(tmp_path: Path) -> None:
    tsk = pysequoia.Tsk.generate("Unit <unit@example.com>")
    cert = tsk.extract_certificate()
    signer = PgpSigner(tsk.signer(), cert)
    image = parse_image_ref(f"r.io/a:v1@{DIGEST}")
    record = sign_to_lookaside(image, signer, tmp_path)
    assert record["identity"] == "r.io/a:v1"
    (verified,) = verify_lookaside(image, [cert], tmp_path)
    assert verified.fingerprint == cert.fingerprint.upper()
    other = pysequoia.Tsk.generate("Other <other@example.com>").extract_certificate()
    with pytest.raises(VerificationError, match="not a valid signature"):
        verify_lookaside(image, [other], tmp_path)
    assert "PRIVATE" not in repr(signer)


def test_an_unencrypted_key_needs_no_passphrase(tmp_path: Path) -> None:
    tsk = pysequoia.Tsk.generate("Plain <plain@example.com>")
    cert = tsk.extract_certificate()
    key = tmp_path / "key.asc"
    key.write_text(str(tsk))
    signer = load_pgp_signer(str(key), environ={})
    assert signer.fingerprint == cert.fingerprint.upper()


def test_a_subkey_signature_is_made_and_noted(tmp_path: Path) -> None:
    """Sequoia signs with a signing subkey when the key has one; the note says which
    verifiers refuse that (containers/image before July 2025 accepts only primary keys)."""
    from click.testing import CliRunner  # noqa: PLC0415

    from attest_step.cli.main import cli  # noqa: PLC0415

    tsk = pysequoia.Tsk.generate("Sub <sub@example.com>")
    key = tmp_path / "key.asc"
    key.write_text(str(tsk))
    result = CliRunner().invoke(
        cli,
        ["sign", "--pgp-key", str(key), "--lookaside", str(tmp_path / "l"), "--output", "json",
         f"r.io/a:v1@{DIGEST}"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (record,) = json.loads(result.stdout)
    assert record["signing_key"] != record["fingerprint"]
    assert f"signed by subkey {record['signing_key']}" in result.stderr
