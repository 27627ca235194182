"""Certificate checks with real certificates made at test time (tests.fixtures.x509certs)."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from attest_step.errors import AttestStepError, UsageError, VerificationError
from attest_step.keys import pem
from attest_step.keys.load import load_verifier
from attest_step.keys.x509verify import (
    CertificatePolicy,
    Identity,
    Trust,
    certificates_from_pem,
    check_certificate,
    check_signing_chain,
    oidc_issuer,
    subject_names,
)
from tests.fixtures.x509certs import (
    DAY,
    NOW,
    SIGNER_URI,
    Pki,
    issue,
    leaf_for,
    make_pki,
    write,
)

ANY_ISSUER = Identity(subject=SIGNER_URI, issuer_regexp=".*")


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki()


def chain_policy(pki: Pki, identity: Identity = ANY_ISSUER) -> CertificatePolicy:
    """What --certificate-chain MID+ROOT gives: the root trusted, the intermediate offered."""
    return CertificatePolicy(Trust((pki.root,), (pki.mid,), "--certificate-chain test"), identity)


def roots_only(pki: Pki) -> CertificatePolicy:
    return CertificatePolicy(Trust((pki.root,), (), "--ca-roots test"), ANY_ISSUER)


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def test_a_code_signing_leaf_chains_to_the_root(pki: Pki) -> None:
    checked = check_certificate(pki.leaf, [], chain_policy(pki))
    assert [c.subject for c in checked.chain] == [
        pki.leaf.subject,
        pki.mid.subject,
        pki.root.subject,
    ]
    assert checked.subjects == (SIGNER_URI,)
    assert checked.to_dict()["checked"] is True
    signature = pki.leaf_key.sign(b"data", ec.ECDSA(hashes.SHA256()))
    assert checked.verifier().verify(signature, b"data")


def test_intermediates_the_signature_carries_complete_the_path(pki: Pki) -> None:
    with pytest.raises(VerificationError, match="does not chain to a root of --ca-roots"):
        check_certificate(pki.leaf, [], roots_only(pki))
    assert check_certificate(pki.leaf, [pki.mid], roots_only(pki)).chain[-1] == pki.root


def test_attack_wrong_root_is_refused(pki: Pki) -> None:
    other = make_pki()
    with pytest.raises(VerificationError, match="does not chain"):
        check_certificate(pki.leaf, [pki.mid], roots_only(other))
    # an attacker's intermediate with the same name, carried by the signature, does not help
    fake_mid = issue("attest-step test intermediate", new_key(), pki.root, other.root_key, ca=True)
    with pytest.raises(VerificationError, match="does not chain"):
        check_certificate(pki.leaf, [fake_mid], roots_only(pki))


def test_attack_leaf_without_code_signing_eku_is_refused(pki: Pki) -> None:
    no_eku = leaf_for(new_key(), pki.mid, pki.mid_key, eku=None)
    with pytest.raises(VerificationError, match=r"2\.5\.29\.37|missing"):
        check_certificate(no_eku, [], chain_policy(pki))
    server = leaf_for(new_key(), pki.mid, pki.mid_key, eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    with pytest.raises(VerificationError, match="codeSigning"):
        check_certificate(server, [], chain_policy(pki))


def test_intermediate_eku_must_allow_code_signing() -> None:
    allowed = make_pki(mid_eku=[ExtendedKeyUsageOID.CODE_SIGNING])
    check_certificate(allowed.leaf, [], chain_policy(allowed))
    tls_only = make_pki(mid_eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    with pytest.raises(VerificationError, match="codeSigning"):
        check_certificate(tls_only.leaf, [], chain_policy(tls_only))


def test_attack_expired_leaf_is_refused(pki: Pki) -> None:
    expired = leaf_for(
        new_key(), pki.mid, pki.mid_key, not_before=NOW - DAY / 2, not_after=NOW - DAY / 4
    )
    with pytest.raises(VerificationError, match=r"expired at .* no trusted signing time"):
        check_certificate(expired, [], chain_policy(pki))
    # the same leaf verified at a time inside its validity passes: time is the only reason
    inside = NOW - DAY / 3
    check_certificate(expired, [], chain_policy(pki), now=inside)


def test_not_yet_valid_leaf_is_refused(pki: Pki) -> None:
    future = leaf_for(new_key(), pki.mid, pki.mid_key, not_before=NOW + DAY)
    with pytest.raises(VerificationError, match="not valid before"):
        check_certificate(future, [], chain_policy(pki))


def test_issuers_must_be_valid_now_and_at_the_leafs_not_before() -> None:
    pki = make_pki()
    # an intermediate that has expired since it issued the (still valid) leaf
    old_mid_key = new_key()
    old_mid = issue(
        "old intermediate",
        old_mid_key,
        pki.root,
        pki.root_key,
        ca=True,
        not_before=NOW - 10 * DAY,
        not_after=NOW - DAY,
    )
    leaf = leaf_for(new_key(), old_mid, old_mid_key, not_before=NOW - 5 * DAY)
    policy = CertificatePolicy(Trust((pki.root,), (old_mid,), "chain"), ANY_ISSUER)
    with pytest.raises(VerificationError, match="at verification time"):
        check_certificate(leaf, [], policy)
    # a leaf dated before its intermediate existed (cosign builds the path at notBefore)
    young_mid_key = new_key()
    young_mid = issue(
        "young intermediate",
        young_mid_key,
        pki.root,
        pki.root_key,
        ca=True,
        not_before=NOW - DAY,
    )
    backdated = leaf_for(new_key(), young_mid, young_mid_key, not_before=NOW - 3 * DAY)
    policy = CertificatePolicy(Trust((pki.root,), (young_mid,), "chain"), ANY_ISSUER)
    with pytest.raises(VerificationError, match="at its notBefore"):
        check_certificate(backdated, [], policy)


def test_a_ca_certificate_is_not_a_signing_certificate(pki: Pki) -> None:
    with pytest.raises(VerificationError, match="does not chain"):
        check_certificate(pki.mid, [], chain_policy(pki))


def test_identity_exact_and_regexp(pki: Pki) -> None:
    by_regexp = Identity(subject_regexp=r"ci\.example", issuer_regexp=".*")
    check_certificate(pki.leaf, [], chain_policy(pki, by_regexp))
    with pytest.raises(VerificationError, match="identity does not match"):
        check_certificate(
            pki.leaf,
            [],
            chain_policy(pki, Identity(subject="mallory@example.com", issuer_regexp=".*")),
        )
    with pytest.raises(VerificationError, match="identity does not match"):
        check_certificate(
            pki.leaf, [], chain_policy(pki, Identity(subject=SIGNER_URI, issuer="https://idp"))
        )


def test_oidc_issuer_extension_and_sans() -> None:
    pki = make_pki()
    leaf = leaf_for(
        new_key(),
        pki.mid,
        pki.mid_key,
        sans=[x509.RFC822Name("ci@example.com"), x509.UniformResourceIdentifier(SIGNER_URI)],
        oidc_issuer="https://token.example.com",
    )
    assert oidc_issuer(leaf) == "https://token.example.com"
    assert subject_names(leaf) == ["ci@example.com", SIGNER_URI]
    identity = Identity(subject="ci@example.com", issuer="https://token.example.com")
    check_certificate(leaf, [], chain_policy(pki, identity))
    assert oidc_issuer(pki.leaf) == ""


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"issuer_regexp": ".*"}, "--certificate-identity"),
        ({"subject": "x"}, "--certificate-oidc-issuer"),
        ({"subject_regexp": "(", "issuer_regexp": ".*"}, "not a valid regexp"),
    ],
)
def test_identity_flags_are_required(kwargs: dict[str, str], text: str) -> None:
    with pytest.raises(UsageError, match=text):
        Identity(**kwargs)


def test_trust_flags_read_like_cosigns(pki: Pki, tmp_path: Path) -> None:
    chain = write(tmp_path / "chain.pem", pki.mid, pki.root)
    trust = Trust.from_flags(certificate_chain=chain, ca_roots=None, ca_intermediates=None)
    assert trust.roots == (pki.root,)
    assert trust.intermediates == (pki.mid,)
    roots = write(tmp_path / "roots.pem", pki.root)
    with pytest.raises(UsageError, match="conflicts"):
        Trust.from_flags(certificate_chain=chain, ca_roots=roots, ca_intermediates=None)
    with pytest.raises(UsageError, match="needs a root"):
        Trust.from_flags(certificate_chain=None, ca_roots=None, ca_intermediates=chain)
    empty = tmp_path / "empty.pem"
    empty.write_text("no pem here\n")
    with pytest.raises(UsageError, match="holds no CERTIFICATE"):
        Trust.from_flags(certificate_chain=None, ca_roots=empty, ca_intermediates=None)
    broken = tmp_path / "broken.pem"
    broken.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(UsageError, match="not a valid PEM certificate"):
        Trust.from_flags(certificate_chain=None, ca_roots=broken, ca_intermediates=None)
    with pytest.raises(UsageError, match="not a regular file"):
        Trust.from_flags(certificate_chain=tmp_path, ca_roots=None, ca_intermediates=None)


def test_signing_chain_is_sanity_checked(pki: Pki) -> None:
    check_signing_chain([pki.leaf, pki.mid, pki.root], "chain.pem")
    with pytest.raises(UsageError, match="not issued by the next one"):
        check_signing_chain([pki.leaf, pki.root], "chain.pem")
    no_eku = leaf_for(new_key(), pki.mid, pki.mid_key, eku=None)
    with pytest.raises(UsageError, match="codeSigning"):
        check_signing_chain([no_eku, pki.mid], "chain.pem")


def test_the_check_time_is_reported(pki: Pki) -> None:
    at = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
    checked = check_certificate(pki.leaf, [], chain_policy(pki), now=at)
    assert checked.to_dict()["validAt"] == at.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_fuzz_found_malformed_certificates_are_clean_errors(pki: Pki, tmp_path: Path) -> None:
    """make fuzz found these: a certificate with version byte 1 raised InvalidVersion and a
    key of an unknown algorithm raised UnsupportedAlgorithm, neither a ValueError."""
    der = bytearray(pki.leaf.public_bytes(serialization.Encoding.DER))
    version_at = der.index(bytes([0xA0, 0x03, 0x02, 0x01, 0x02])) + 4
    bad_version = bytes(der[:version_at]) + b"\x01" + bytes(der[version_at + 1 :])
    with pytest.raises(ValueError, match="version"):
        certificates_from_pem(pem.encode("CERTIFICATE", bad_version))
    oid = bytes.fromhex("06072a8648ce3d0201")  # id-ecPublicKey, then made unknown
    unknown_key = bytes(der).replace(oid, bytes.fromhex("06072a8648ce3d0209"), 1)
    leaf = certificates_from_pem(pem.encode("CERTIFICATE", unknown_key))[0]
    with pytest.raises(VerificationError, match=r"not usable|malformed"):
        check_certificate(leaf, [], chain_policy(pki))
    path = write(tmp_path / "leaf.pem", leaf)
    with pytest.raises(AttestStepError, match=r"malformed|unsupported"):
        load_verifier(str(path))
