"""A real PKCS#11 token (SoftHSM2) signs through securesystemslib's HSMSigner."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import pytest

from attest_step import dsse
from attest_step.errors import AttestStepError
from attest_step.keys.load import load_signer, load_verifier
from attest_step.keys.local import PublicKeyVerifier
from tests.fixtures.tools import require_machine, require_tool

MODULES = [
    Path("/usr/lib/softhsm/libsofthsm2.so"),
    Path("/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"),
    Path("/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so"),
]
PIN = "4321"


@pytest.fixture
def softhsm_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    softhsm_util = require_tool("softhsm2-util", hint="apt-get install softhsm2")
    pkcs11_tool = require_tool("pkcs11-tool", hint="apt-get install opensc")
    require_machine(
        importlib.util.find_spec("pkcs11") is not None,
        "python-pkcs11 (pip install 'attest-step[kms]'; the test extra has it)",
    )
    module = next((m for m in MODULES if m.is_file()), None)
    assert module is not None, "softhsm2-util is installed but libsofthsm2.so was not found"
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n")
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    subprocess.run(
        [
            str(softhsm_util),
            "--init-token",
            "--free",
            "--label",
            "attest",
            "--pin",
            PIN,
            "--so-pin",
            "0000",
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            str(pkcs11_tool),
            "--module",
            str(module),
            "--token-label",
            "attest",
            "--login",
            "--pin",
            PIN,
            "--keypairgen",
            "--key-type",
            "EC:prime256v1",
            "--id",
            "01",
            "--label",
            "signing",
        ],
        check=True,
        capture_output=True,
    )
    return f"pkcs11:token=attest;id=%01?module-path={module}&pin-value={PIN}"


def test_softhsm_signs_dsse(softhsm_key: str) -> None:
    signer = load_signer(softhsm_key)
    assert getattr(signer, "algorithm", None) == "ecdsa-p256"
    envelope = dsse.sign_envelope(b'{"x":1}', signer)
    verifier = load_verifier(softhsm_key)
    assert isinstance(verifier, PublicKeyVerifier)
    assert verifier.public_key_pem() == signer.public_key_pem()
    assert dsse.verify_envelope(envelope, verifier) == b'{"x":1}'
    assert envelope["signatures"][0]["keyid"] == ""


def test_softhsm_errors_are_one_line(softhsm_key: str) -> None:
    with pytest.raises(AttestStepError, match="cannot load the key") as info:
        load_signer(softhsm_key.replace("id=%01", "id=%07"))
    assert "\n" not in str(info.value)
    with pytest.raises(AttestStepError, match="gives no PIN"):
        load_signer(softhsm_key.replace(f"&pin-value={PIN}", ""))
    with pytest.raises(AttestStepError) as info:
        load_signer(softhsm_key.replace(f"pin-value={PIN}", "pin-value=9999")).sign(b"x")
    assert "9999" not in str(info.value)
