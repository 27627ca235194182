"""load_signer / load_verifier over every local key source."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from attest_step.errors import AttestStepError
from attest_step.keys.load import load_signer, load_verifier, needs_password
from attest_step.keys.local import LocalSigner, PublicKeyVerifier
from attest_step.keys.password import Password
from tests.fixtures.keys import (
    Chain,
    KeyPair,
    PemKey,
    make_secret_mount,
    private_pem,
    write_cosign_pair,
)

DATA = b"DSSEv1 28 application/vnd.in-toto+json 2 {}"


@pytest.fixture
def no_password_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COSIGN_PASSWORD", raising=False)
    monkeypatch.delenv("ATTEST_STEP_PASSWORD_FILE", raising=False)


def test_cosign_key_with_env_password(
    cosign_key_pair: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COSIGN_PASSWORD", cosign_key_pair.password)
    signer = load_signer(str(cosign_key_pair.key))
    assert signer.public_key_pem() == cosign_key_pair.pub.read_bytes()
    assert signer.certificate_chain_pem() == []
    assert load_verifier(str(cosign_key_pair.pub)).verify(signer.sign(DATA), DATA)


def test_cosign_key_with_password_file(
    cosign_key_pair: KeyPair, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_password_env: None
) -> None:
    pw_file = tmp_path / "pw"
    pw_file.write_text(cosign_key_pair.password + "\n")  # as `echo` writes it
    monkeypatch.setenv("ATTEST_STEP_PASSWORD_FILE", str(pw_file))
    assert (
        load_signer(str(cosign_key_pair.key)).public_key_pem() == cosign_key_pair.pub.read_bytes()
    )


def test_empty_password_is_a_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pair = write_cosign_pair(tmp_path, ec.generate_private_key(ec.SECP256R1()), "", n=32768)
    monkeypatch.setenv("COSIGN_PASSWORD", "")
    assert load_signer(str(pair.key)).public_key_pem() == pair.pub.read_bytes()


def test_explicit_password_wins(cosign_key_pair: KeyPair, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COSIGN_PASSWORD", "wrong")
    signer = load_signer(str(cosign_key_pair.key), password_value=cosign_key_pair.password.encode())
    assert signer.public_key_pem() == cosign_key_pair.pub.read_bytes()


def test_missing_password(cosign_key_pair: KeyPair, no_password_env: None) -> None:
    assert needs_password(str(cosign_key_pair.key))
    with pytest.raises(AttestStepError, match="COSIGN_PASSWORD"):
        load_signer(str(cosign_key_pair.key))


def test_wrong_password(cosign_key_pair: KeyPair, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COSIGN_PASSWORD", "not it")
    with pytest.raises(AttestStepError, match="wrong password") as info:
        load_signer(str(cosign_key_pair.key))
    assert "not it" not in str(info.value)


def test_secret_mount_with_data_symlinks(
    secret_mount: Path, cosign_key_pair: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COSIGN_PASSWORD", "the Secret's own password wins")
    assert (secret_mount / "cosign.key").is_symlink()
    assert not needs_password(str(secret_mount))
    signer = load_signer(str(secret_mount))
    verifier = load_verifier(str(secret_mount))
    assert signer.public_key_pem() == cosign_key_pair.pub.read_bytes()
    assert verifier.verify(signer.sign(DATA), DATA)


def test_secret_mount_reads_one_snapshot(tmp_path: Path, no_password_env: None) -> None:
    old = write_cosign_pair(tmp_path, ec.generate_private_key(ec.SECP256R1()), "old", n=32768)
    mount = make_secret_mount(
        tmp_path / "mount",
        {"cosign.key": old.key.read_bytes(), "cosign.password": b"old", "cosign.pub": b""},
    )
    # kubelet swaps ..data atomically; the top-level links keep pointing through it
    (tmp_path / "new").mkdir()
    new = write_cosign_pair(
        tmp_path / "new", ec.generate_private_key(ec.SECP256R1()), "new", n=32768
    )
    snapshot = mount / "..2026_02_02"
    snapshot.mkdir()
    (snapshot / "cosign.key").write_bytes(new.key.read_bytes())
    (snapshot / "cosign.password").write_bytes(b"new")
    (mount / "..data_tmp").symlink_to(snapshot.name)
    (mount / "..data_tmp").replace(mount / "..data")
    assert load_signer(str(mount)).public_key_pem() == new.pub.read_bytes()


def test_secret_dir_without_key(tmp_path: Path) -> None:
    with pytest.raises(AttestStepError, match=r"has no cosign\.key"):
        load_signer(str(tmp_path))
    with pytest.raises(AttestStepError, match=r"has no cosign\.pub"):
        load_verifier(str(tmp_path))


@pytest.mark.parametrize("algorithm", ["ecdsa-p256", "ecdsa-p384", "ed25519", "rsa-2048"])
def test_pem_keys_sign_with_cosigns_hashes(pem_keys: dict[str, PemKey], algorithm: str) -> None:
    entry = pem_keys[algorithm]
    signer = load_signer(str(entry.key))
    assert getattr(signer, "algorithm", None) == algorithm
    signature = signer.sign(DATA)
    public = entry.private.public_key()
    # check with cryptography directly, using the hash cosign uses for each key type
    if isinstance(public, ec.EllipticCurvePublicKey):
        digest = hashes.SHA256() if algorithm == "ecdsa-p256" else hashes.SHA384()
        public.verify(signature, DATA, ec.ECDSA(digest))
    elif isinstance(public, rsa.RSAPublicKey):
        public.verify(signature, DATA, padding.PKCS1v15(), hashes.SHA256())
    else:
        public.verify(signature, DATA)
    verifier = load_verifier(str(entry.pub))
    assert verifier.verify(signature, DATA)
    assert not verifier.verify(signature, DATA + b" ")
    assert not verifier.verify(b"", DATA)


def test_plain_key_never_needs_a_password(
    pem_keys: dict[str, PemKey], no_password_env: None
) -> None:
    assert not needs_password(str(pem_keys["ecdsa-p256"].key))
    load_signer(str(pem_keys["ecdsa-p256"].key))


def test_certificate_chain_flag(x509_chain: Chain) -> None:
    signer = load_signer(str(x509_chain.leaf_key), certificate_chain=x509_chain.chain)
    chain = signer.certificate_chain_pem()
    assert len(chain) == 2
    assert chain[0] == x509_chain.leaf_cert.public_bytes(serialization.Encoding.PEM)
    assert b"".join(chain) == x509_chain.chain.read_bytes()
    # a certificate works as a verifier (its key is used)
    leaf_only = x509_chain.chain.parent / "leaf.pem"
    leaf_only.write_bytes(chain[0])
    assert load_verifier(str(leaf_only)).verify(signer.sign(DATA), DATA)


def test_certificates_bundled_in_the_key_file(x509_chain: Chain, tmp_path: Path) -> None:
    bundled = tmp_path / "key-and-chain.pem"
    bundled.write_bytes(x509_chain.leaf_key.read_bytes() + x509_chain.chain.read_bytes())
    assert len(load_signer(str(bundled)).certificate_chain_pem()) == 2
    with pytest.raises(AttestStepError, match="already holds certificates"):
        load_signer(str(bundled), certificate_chain=x509_chain.chain)


def test_tls_secret_mount(x509_chain: Chain, tmp_path: Path) -> None:
    mount = make_secret_mount(
        tmp_path / "tls",
        {"tls.key": x509_chain.leaf_key.read_bytes(), "tls.crt": x509_chain.chain.read_bytes()},
    )
    signer = load_signer(str(mount))
    assert len(signer.certificate_chain_pem()) == 2
    assert load_verifier(str(mount)).verify(signer.sign(DATA), DATA)


def test_chain_for_another_key_is_refused(x509_chain: Chain, pem_keys: dict[str, PemKey]) -> None:
    with pytest.raises(AttestStepError, match="not for this signing key"):
        load_signer(str(pem_keys["ecdsa-p256"].key), certificate_chain=x509_chain.chain)


def test_chain_file_without_certificates(pem_keys: dict[str, PemKey]) -> None:
    with pytest.raises(AttestStepError, match="no CERTIFICATE"):
        load_signer(str(pem_keys["ecdsa-p256"].key), certificate_chain=pem_keys["ecdsa-p256"].pub)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "no PEM block"),
        (b"hello", "no PEM block"),
        (b"-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----\n", "not valid PEM"),
        (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "not a valid PKCS#8"),
        (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "only a public key"),
        (
            b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nAAAA\n"
            b"-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n",
            "not a valid cosign encrypted key",
        ),
    ],
)
def test_bad_key_files(
    tmp_path: Path, content: bytes, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COSIGN_PASSWORD", "x")
    path = tmp_path / "k.pem"
    path.write_bytes(content)
    with pytest.raises(AttestStepError, match=message):
        load_signer(str(path))


def test_sec1_pem_is_refused_with_advice(tmp_path: Path) -> None:
    path = tmp_path / "sec1.pem"
    path.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(AttestStepError, match=r"SEC1 EC key.*pkcs8"):
        load_signer(str(path))


@pytest.mark.parametrize("curve", [ec.SECP256K1(), ec.SECP521R1()])
def test_unsupported_curve(tmp_path: Path, curve: ec.EllipticCurve) -> None:
    key = ec.generate_private_key(curve)
    path = tmp_path / "k.pem"
    path.write_bytes(private_pem(key))
    with pytest.raises(AttestStepError, match=f"{curve.name} is not supported"):
        load_signer(str(path))
    pub = tmp_path / "k.pub"
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    with pytest.raises(AttestStepError, match=f"{curve.name} is not supported"):
        load_verifier(str(pub))


def test_missing_and_unreadable_inputs(tmp_path: Path) -> None:
    with pytest.raises(AttestStepError, match="does not exist"):
        load_signer(str(tmp_path / "nope.key"))
    with pytest.raises(AttestStepError, match="is empty"):
        load_signer("")
    with pytest.raises(AttestStepError, match="mount the Secret"):
        load_signer("k8s://ns/name")
    with pytest.raises(AttestStepError, match="does not exist"):
        load_verifier(str(tmp_path / "nope.pub"))


def test_verifier_refuses_private_keys(
    pem_keys: dict[str, PemKey], cosign_key_pair: KeyPair
) -> None:
    for path in (pem_keys["ed25519"].key, cosign_key_pair.key):
        with pytest.raises(AttestStepError, match="is a private key"):
            load_verifier(str(path))


def test_rsa_public_key_label(tmp_path: Path, pem_keys: dict[str, PemKey]) -> None:
    key = pem_keys["rsa-2048"].private
    path = tmp_path / "rsa.pub"
    path.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    )
    signature = LocalSigner(key).sign(DATA)
    assert load_verifier(str(path)).verify(signature, DATA)


def test_verifier_is_typed(pem_keys: dict[str, PemKey]) -> None:
    verifier = load_verifier(str(pem_keys["ecdsa-p256"].pub))
    assert isinstance(verifier, PublicKeyVerifier)
    assert "BEGIN" not in repr(verifier)
    assert "BEGIN" not in repr(load_signer(str(pem_keys["ecdsa-p256"].key)))


def test_unreadable_inputs(tmp_path: Path, pem_keys: dict[str, PemKey]) -> None:
    with pytest.raises(AttestStepError, match="not a regular file"):
        load_signer(str(pem_keys["ecdsa-p256"].key), certificate_chain=tmp_path)
    path = tmp_path / "locked.key"
    path.write_bytes(pem_keys["ecdsa-p256"].key.read_bytes())
    path.chmod(0)
    if os.geteuid() == 0:  # root reads mode-0 files; a dangling symlink fails for everyone
        path = tmp_path / "dangling.key"
        path.symlink_to(tmp_path / "gone")
        with pytest.raises(AttestStepError, match="does not exist"):
            load_signer(str(path))
    else:
        with pytest.raises(AttestStepError, match="cannot read"):
            load_signer(str(path))


def test_password_repr_names_the_source_never_the_value() -> None:
    secret = Password(b"hunter2-do-not-print", "COSIGN_PASSWORD")
    assert repr(secret) == "Password(source='COSIGN_PASSWORD')"
    assert "hunter2" not in str(secret) and "hunter2" not in f"{[secret]}"
