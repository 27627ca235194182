"""Key interop with the real cosign v3 binary: both directions, keys and blob signatures."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from attest_step.keys.load import load_signer, load_verifier
from tests.fixtures.keys import KeyPair
from tests.fixtures.tools import cosign_v3

pytestmark = pytest.mark.cosign
BLOB = b"attest-step interop blob\n"


def cosign(args: list[str], cwd: Path, password: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COSIGN_PASSWORD": password}
    return subprocess.run(
        [str(cosign_v3()), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )


def test_cosign_generated_key_loads_and_signs(
    real_cosign_key_pair: KeyPair, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("COSIGN_PASSWORD", real_cosign_key_pair.password)
    assert b"ENCRYPTED SIGSTORE PRIVATE KEY" in real_cosign_key_pair.key.read_bytes()
    signer = load_signer(str(real_cosign_key_pair.key))
    assert signer.public_key_pem() == real_cosign_key_pair.pub.read_bytes()
    # our signature verifies with cosign verify-blob
    (tmp_path / "blob").write_bytes(BLOB)
    (tmp_path / "blob.sig").write_text(base64.b64encode(signer.sign(BLOB)).decode())
    done = cosign(
        [
            "verify-blob",
            "--key",
            str(real_cosign_key_pair.pub),
            "--signature",
            "blob.sig",
            "--insecure-ignore-tlog",
            "blob",
        ],
        tmp_path,
        real_cosign_key_pair.password,
    )
    assert done.returncode == 0, done.stderr
    assert "Verified OK" in done.stderr + done.stdout


def test_attest_step_key_works_in_cosign(tmp_path: Path) -> None:
    password = "interop pw"
    made = subprocess.run(
        [sys.executable, "-m", "attest_step", "generate-key-pair", "--output-key-prefix", "ours"],
        cwd=tmp_path,
        env={**os.environ, "COSIGN_PASSWORD": password},
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    shown = cosign(["public-key", "--key", "ours.key"], tmp_path, password)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == (tmp_path / "ours.pub").read_text()
    assert cosign(["public-key", "--key", "ours.key"], tmp_path, "wrong").returncode != 0

    # cosign signs a blob with our key; our verifier accepts the signature
    (tmp_path / "blob").write_bytes(BLOB)
    signed = cosign(
        [
            "sign-blob",
            "--key",
            "ours.key",
            "--use-signing-config=false",
            "--tlog-upload=false",
            "--bundle",
            "blob.bundle.json",
            "--yes",
            "blob",
        ],
        tmp_path,
        password,
    )
    assert signed.returncode == 0, signed.stderr
    bundle = json.loads((tmp_path / "blob.bundle.json").read_text())
    signature = base64.b64decode(bundle["messageSignature"]["signature"])
    verifier = load_verifier(str(tmp_path / "ours.pub"))
    assert verifier.verify(signature, BLOB)
    assert not verifier.verify(signature, BLOB + b"x")
    # and cosign verifies its own bundle with the public key we wrote
    checked = cosign(
        [
            "verify-blob",
            "--key",
            "ours.pub",
            "--bundle",
            "blob.bundle.json",
            "--insecure-ignore-tlog",
            "blob",
        ],
        tmp_path,
        password,
    )
    assert checked.returncode == 0, checked.stderr


def test_cosign_rejects_a_tampered_signature_of_ours(
    cosign_key_pair: KeyPair, tmp_path: Path
) -> None:
    signer = load_signer(str(cosign_key_pair.key), password_value=cosign_key_pair.password.encode())
    (tmp_path / "blob").write_bytes(BLOB)
    (tmp_path / "blob.sig").write_text(base64.b64encode(signer.sign(BLOB + b"other")).decode())
    done = cosign(
        [
            "verify-blob",
            "--key",
            str(cosign_key_pair.pub),
            "--signature",
            "blob.sig",
            "--insecure-ignore-tlog",
            "blob",
        ],
        tmp_path,
        cosign_key_pair.password,
    )
    assert done.returncode != 0
