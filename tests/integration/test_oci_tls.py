"""A registry behind TLS with a private CA: --ca-cert is needed, and enough, for sign/verify.

Real parts: Debian's docker-registry serving HTTPS with a certificate issued by a CA the
test makes, real keys, and real cosign (``--registry-cacert``) reading what we wrote.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.keys import KeyPair
from tests.fixtures.oci_image import push_image
from tests.fixtures.registry import LocalRegistry
from tests.fixtures.tls_certs import write_ca_and_server_cert
from tests.fixtures.tools import cosign_v3, require_tool

pytestmark = pytest.mark.registry


@pytest.fixture
def tls_registry(tmp_path: Path) -> Iterator[LocalRegistry]:
    binary = require_tool("docker-registry", hint="apt-get install docker-registry")
    ca, cert, key = write_ca_and_server_cert(tmp_path)
    reg = LocalRegistry(binary, tmp_path / "registry", tls=(cert, key), ca=ca)
    reg.start()
    try:
        yield reg
    finally:
        reg.stop()


def _attest_step(*args: str, password: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COSIGN_PASSWORD": password}
    env.pop("REQUESTS_CA_BUNDLE", None)
    env.pop("SSL_CERT_FILE", None)
    return subprocess.run(
        [sys.executable, "-m", "attest_step", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )


def test_sign_and_verify_need_the_private_ca(
    tls_registry: LocalRegistry, cosign_key_pair: KeyPair, tmp_path: Path
) -> None:
    assert tls_registry.ca is not None
    ca = str(tls_registry.ca)
    image = push_image(tls_registry.repo("tls"), ca_cert=tls_registry.ca)

    # Without the CA the certificate is not trusted: one line, non-zero, signed output kept.
    spool = tmp_path / "spool"
    refused = _attest_step(
        "sign",
        "--key",
        str(cosign_key_pair.key),
        "--timeout",
        "5s",
        "--spool-dir",
        str(spool),
        image.ref,
        password=cosign_key_pair.password,
    )
    assert refused.returncode != 0
    assert "Traceback" not in refused.stderr
    error_lines = [ln for ln in refused.stderr.splitlines() if ln.startswith("attest-step:")]
    assert len(error_lines) == 1, refused.stderr
    assert "certificate" in error_lines[0].lower() or "tls" in error_lines[0].lower()
    assert any(spool.iterdir()), "the signed output must stay on disk for push --from"

    # With --ca-cert it signs and verifies; the retried upload of the spool succeeds too.
    signed = _attest_step(
        "sign",
        "--key",
        str(cosign_key_pair.key),
        "--ca-cert",
        ca,
        image.ref,
        password=cosign_key_pair.password,
    )
    assert signed.returncode == 0, signed.stderr
    pushed = _attest_step("push", "--from", str(spool), "--ca-cert", ca, password="")
    assert pushed.returncode == 0, pushed.stderr
    verified = _attest_step(
        "verify",
        "--key",
        str(cosign_key_pair.pub),
        "--ca-cert",
        ca,
        "--output",
        "json",
        image.ref,
        password="",
    )
    assert verified.returncode == 0, verified.stderr
    assert image.digest in verified.stdout

    # Real cosign reads the same signatures through the same CA.
    cosign = cosign_v3()
    result = subprocess.run(
        [
            str(cosign),
            "verify",
            "--key",
            str(cosign_key_pair.pub),
            "--insecure-ignore-tlog",
            "--registry-cacert",
            ca,
            image.ref,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
