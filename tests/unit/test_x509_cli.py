"""verify / verify-attestation with x509 certificates, end to end through the CLI.

Signatures go into an OCI layout directory (no registry needed); the registry and real
cosign are in tests/integration/test_x509_cosign.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives.asymmetric import ec

from attest_step.cli.main import cli
from attest_step.dsse import sign_envelope
from attest_step.keys.local import LocalSigner, public_pem
from tests.fixtures.keys import private_pem
from tests.fixtures.x509certs import DAY, NOW, SIGNER_URI, Pki, leaf_for, make_pki, write

IMAGE = f"ghcr.io/o/app@sha256:{'c' * 64}"
IDENTITY = ["--certificate-identity", SIGNER_URI, "--certificate-oidc-issuer-regexp", ".*"]


@dataclass(frozen=True)
class Files:
    pki: Pki
    key: Path  # leaf key, PKCS#8
    pub: Path  # leaf public key
    leaf: Path  # leaf certificate
    chain: Path  # leaf + intermediate (what the signer holds)
    issuers: Path  # intermediate + root (cosign's --certificate-chain)
    root: Path
    layout: Path


@pytest.fixture
def files(tmp_path: Path) -> Files:
    pki = make_pki()
    key = tmp_path / "leaf.key"
    key.write_bytes(private_pem(pki.leaf_key))
    pub = tmp_path / "leaf.pub"
    pub.write_bytes(public_pem(pki.leaf_key.public_key()))
    return Files(
        pki,
        key,
        pub,
        write(tmp_path / "leaf.pem", pki.leaf),
        write(tmp_path / "chain.pem", pki.leaf, pki.mid),
        write(tmp_path / "issuers.pem", pki.mid, pki.root),
        write(tmp_path / "root.pem", pki.root),
        tmp_path / "layout",
    )


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def one_line(result: Result, code: int, text: str) -> None:
    assert result.exit_code == code, result.output + result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert text in result.stderr, result.stderr


def signed(files: Files, layout: str = "tag") -> None:
    result = run(
        *["sign", "--key", str(files.key), "--certificate-chain", str(files.chain)],
        *["--oci-layout", str(files.layout), "--registry-layout", layout, IMAGE],
    )
    assert result.exit_code == 0, result.stderr


def verify(files: Files, *args: str) -> Result:
    return run("verify", "--oci-layout", str(files.layout), "--output", "json", *args, IMAGE)


def test_with_key_the_chain_is_reported_unchecked(files: Files) -> None:
    signed(files)
    result = verify(files, "--key", str(files.pub))
    assert result.exit_code == 0, result.stderr
    (record,) = json.loads(result.stdout)["verified"]
    assert record["certificate"]["checked"] is False
    assert "NOT checked" in record["certificate"]["reason"]
    text = run("verify", "--oci-layout", str(files.layout), "--key", str(files.pub), IMAGE)
    assert "NOTE: this signature carries an x509 certificate that was NOT checked" in text.stdout


def test_with_certificate_chain_the_carried_certificate_is_checked(files: Files) -> None:
    signed(files)
    result = verify(files, "--certificate-chain", str(files.issuers), *IDENTITY)
    assert result.exit_code == 0, result.stderr
    (record,) = json.loads(result.stdout)["verified"]
    cert = record["certificate"]
    assert cert["checked"] is True
    assert cert["subjects"] == [SIGNER_URI]
    assert cert["chain"][-1] == files.pki.root.subject.rfc4514_string()
    # --ca-roots: the intermediate comes from the signature's chain annotation
    result = verify(files, "--ca-roots", str(files.root), *IDENTITY)
    assert result.exit_code == 0, result.stderr


def test_attack_signature_chained_to_another_root_fails(files: Files, tmp_path: Path) -> None:
    signed(files)
    other = make_pki()
    other_root = write(tmp_path / "other-root.pem", other.root)
    one_line(verify(files, "--ca-roots", str(other_root), *IDENTITY), 1, "does not chain")
    other_chain = write(tmp_path / "other-chain.pem", other.mid, other.root)
    one_line(verify(files, "--certificate-chain", str(other_chain), *IDENTITY), 1, "no signature")


def test_attack_identity_mismatch_fails(files: Files) -> None:
    signed(files)
    args = ["--certificate-chain", str(files.issuers), "--certificate-oidc-issuer-regexp", ".*"]
    result = verify(files, *args, "--certificate-identity", "https://evil.example.com")
    one_line(result, 1, "identity does not match")


def test_attack_key_naming_a_certificate_is_refused(files: Files) -> None:
    one_line(verify(files, "--key", str(files.leaf)), 2, "is an x509 certificate")
    result = run(
        *["verify-attestation", "--key", str(files.chain), "--envelope", str(files.leaf)],
    )
    one_line(result, 2, "is an x509 certificate")


@pytest.mark.parametrize(
    ("args", "text"),
    [
        ([], "give --key PUBLIC-KEY"),
        (["--certificate-identity", "x", "--certificate-oidc-issuer", "y"], "needs a root"),
        (["--ca-roots", "ROOT"], "needs --certificate-identity"),
        (["--key", "PUB", "--ca-roots", "ROOT"], "--key conflicts with --ca-roots"),
        (["--certificate-chain", "ISSUERS", "--ca-roots", "ROOT", *IDENTITY], "conflicts"),
    ],
)
def test_flag_errors_exit_2(files: Files, args: list[str], text: str) -> None:
    real = {"ROOT": str(files.root), "PUB": str(files.pub), "ISSUERS": str(files.issuers)}
    one_line(verify(files, *[real.get(a, a) for a in args]), 2, text)


def test_sign_refuses_a_chain_that_could_never_verify(files: Files, tmp_path: Path) -> None:
    wrong_order = write(tmp_path / "wrong.pem", files.pki.leaf, files.pki.root)
    result = run(
        *["sign", "--key", str(files.key), "--certificate-chain", str(wrong_order)],
        *["--oci-layout", str(files.layout), IMAGE],
    )
    one_line(result, 2, "not issued by the next one")
    key = ec.generate_private_key(ec.SECP256R1())
    no_eku = leaf_for(key, files.pki.mid, files.pki.mid_key, eku=None)
    (tmp_path / "k.pem").write_bytes(private_pem(key))
    write(tmp_path / "noeku.pem", no_eku, files.pki.mid)
    result = run(
        *["sign", "--key", str(tmp_path / "k.pem"), "--certificate-chain"],
        *[str(tmp_path / "noeku.pem"), "--oci-layout", str(files.layout), IMAGE],
    )
    one_line(result, 2, "codeSigning")


def envelope_file(files: Files, tmp_path: Path, signer_key: ec.EllipticCurvePrivateKey) -> Path:
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "a", "digest": {"sha256": "c" * 64}}],
        "predicateType": "https://example.com/p/v1",
        "predicate": {},
    }
    envelope = sign_envelope(json.dumps(statement).encode(), LocalSigner(signer_key))
    path = tmp_path / "att.json"
    path.write_text(json.dumps(envelope))
    return path


def verify_envelope(files: Files, envelope: Path, *args: str) -> Result:
    return run(
        *["verify-attestation", "--type", "https://example.com/p/v1", "--envelope"],
        *[str(envelope), "--output", "json", *args],
    )


def test_verify_attestation_with_a_certificate(files: Files, tmp_path: Path) -> None:
    envelope = envelope_file(files, tmp_path, files.pki.leaf_key)
    trust = ["--certificate-chain", str(files.issuers), *IDENTITY]
    result = verify_envelope(files, envelope, "--certificate", str(files.leaf), *trust)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["certificate"]["checked"] is True
    # an envelope file carries no certificate: without --certificate nothing verifies
    one_line(verify_envelope(files, envelope, *trust), 1, "carries no certificate")
    # signed by another key than the certificate's
    other = envelope_file(files, tmp_path, ec.generate_private_key(ec.SECP256R1()))
    result = verify_envelope(files, other, "--certificate", str(files.leaf), *trust)
    one_line(result, 1, "signature")


def test_attack_expired_certificate_fails_verify_attestation(files: Files, tmp_path: Path) -> None:
    expired = leaf_for(
        files.pki.leaf_key,
        files.pki.mid,
        files.pki.mid_key,
        not_before=NOW - DAY / 2,
        not_after=NOW - DAY / 4,
    )
    leaf = write(tmp_path / "expired.pem", expired)
    envelope = envelope_file(files, tmp_path, files.pki.leaf_key)
    trust = ["--certificate-chain", str(files.issuers), *IDENTITY]
    one_line(verify_envelope(files, envelope, "--certificate", str(leaf), *trust), 1, "expired")
