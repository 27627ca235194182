"""The transparency-log flags refuse what cannot work with one line (exit 2), before any
signature is made or any network is used."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from attest_step.cli.main import cli
from attest_step.dsse import sign_envelope
from attest_step.keys.local import LocalSigner
from tests.fixtures.keys import PemKey
from tests.fixtures.oci_image import slsa_statement

IMAGE = f"127.0.0.1:9/app@sha256:{'a' * 64}"  # port 9: nothing listens


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--tlog-upload=true"], "--tlog-upload=true: no log to upload to; give --rekor-url"),
        (["--rekor-url", "ftp://log"], "--rekor-url 'ftp://log': not an http(s) URL"),
        (
            ["--rekor-url", "http://127.0.0.1:9", "--registry-layout", "tag"],
            "--registry-layout tag",
        ),
    ],
)
def test_sign_refuses_unusable_log_flags(
    extra: list[str], message: str, pem_keys: dict[str, PemKey]
) -> None:
    code, stderr = _run("sign", "--key", str(pem_keys["ecdsa-p256"].key), *extra, IMAGE)
    assert code == 2
    assert message in stderr
    assert stderr.count("\n") == 1


def test_a_key_rekor_v2_cannot_log_is_refused_before_signing(
    pem_keys: dict[str, PemKey], tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    code, stderr = _run(
        "sign", "--key", str(pem_keys["ed25519"].key), "--rekor-url", "http://127.0.0.1:9",
        "--spool-dir", str(spool), IMAGE,
    )  # fmt: skip
    assert code == 2
    assert "--rekor-url: Rekor v2 logs ECDSA" in stderr
    assert not spool.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not a Sigstore TrustedRoot (the document is not JSON)"),
        (json.dumps({"mediaType": "x"}), "mediaType is not"),
        (
            json.dumps({"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1"}),
            "names no transparency log",
        ),
    ],
)
def test_verifiers_refuse_an_unusable_trusted_root(
    content: str, message: str, pem_keys: dict[str, PemKey], tmp_path: Path
) -> None:
    root = tmp_path / "root.json"
    root.write_text(content)
    for verb in ("verify", "verify-attestation"):
        code, stderr = _run(
            verb, "--key", str(pem_keys["ecdsa-p256"].pub), "--trusted-root", str(root), IMAGE
        )
        assert code == 2, stderr
        assert message in stderr
        assert stderr.count("\n") == 1


def test_an_envelope_file_has_no_log_entry_to_check(
    pem_keys: dict[str, PemKey], tmp_path: Path
) -> None:
    key = pem_keys["ecdsa-p256"]
    statement = json.dumps(slsa_statement("app", "a" * 64)).encode()
    envelope = tmp_path / "envelope.json"
    envelope.write_text(json.dumps(sign_envelope(statement, LocalSigner(key.private))))
    root = tmp_path / "root.json"
    root.write_text(
        json.dumps(
            {
                "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
                "tlogs": [
                    {
                        "baseUrl": "http://log.example",
                        "publicKey": {"rawBytes": "AAAA"},
                        "logId": {"keyId": "AAAA"},
                    }
                ],
            }
        )
    )
    args = ["verify-attestation", "--key", str(key.pub), "--envelope", str(envelope)]
    assert _run(*args)[0] == 0
    code, stderr = _run(*args, "--trusted-root", str(root))
    assert code == 1
    assert "a DSSE envelope file carries none" in stderr
