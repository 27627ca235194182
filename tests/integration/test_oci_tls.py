"""A registry behind TLS with a private CA: --ca-cert is needed, and enough, for sign/verify.

Real parts: Debian's docker-registry serving HTTPS with a certificate issued by a CA the
test makes, real keys, and real cosign (``--registry-cacert``) reading what we wrote.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.fixtures.keys import KeyPair
from tests.fixtures.oci_image import push_image
from tests.fixtures.registry import LocalRegistry
from tests.fixtures.tools import cosign_v3, require_tool

pytestmark = pytest.mark.registry


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_ca_and_server_cert(directory: Path) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate for 127.0.0.1 it issued: (ca.pem, server.pem, key)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("attest-step test CA"))
        .issuer_name(_name("attest-step test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca_cert.subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path = directory / "ca.pem"
    cert_path = directory / "server.pem"
    key_path = directory / "server.key"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_path, cert_path, key_path


@pytest.fixture
def tls_registry(tmp_path: Path) -> Iterator[LocalRegistry]:
    binary = require_tool("docker-registry", hint="apt-get install docker-registry")
    ca, cert, key = _write_ca_and_server_cert(tmp_path)
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
