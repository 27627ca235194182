"""x509 material from signatures and files (attest_step/keys/x509verify.py, certmode.py).

Contract: certificates_from_pem raises only ValueError; a certificate and chain carried by a
signature, whatever their bytes, give a verifier or a VerificationError, and only a
certificate that chains to the given root is accepted; trust files give Trust or UsageError.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import given
from hypothesis import strategies as st

from attest_step.errors import UsageError, VerificationError
from attest_step.keys import pem
from attest_step.keys.certmode import CertificateFlags, CertificateMode
from attest_step.keys.x509verify import Trust, certificates_from_pem
from tests.fixtures.x509certs import SIGNER_URI, make_pki, write
from tests.fuzz.support import Scratch, edits, fuzz, mutate

PKI = make_pki()
LEAF_DER = PKI.leaf.public_bytes(serialization.Encoding.DER)
MID_DER = PKI.mid.public_bytes(serialization.Encoding.DER)
certificate_pems = (
    st.builds(lambda e: pem.encode("CERTIFICATE", mutate(LEAF_DER, e)), edits)
    | st.builds(lambda e: pem.encode("CERTIFICATE", mutate(MID_DER, e)), edits)
    | st.builds(lambda n: pem.encode("CERTIFICATE", LEAF_DER[: max(n, 1)]), st.integers(0, 400))
    | st.builds(lambda b: pem.encode("CERTIFICATE", b), st.binary(min_size=1, max_size=80))
    | st.binary(max_size=200)
    | st.just(b"")
)
real_leaf = st.just(pem.encode("CERTIFICATE", LEAF_DER))


@fuzz
@given(data=certificate_pems)
def test_pem_certificates_parse_or_raise_value_error(data: bytes) -> None:
    try:
        certs = certificates_from_pem(data)
    except ValueError:
        return
    assert all(isinstance(c, x509.Certificate) for c in certs)


@pytest.fixture(scope="module")
def mode(tmp_path_factory: pytest.TempPathFactory) -> CertificateMode:
    issuers = write(tmp_path_factory.mktemp("trust") / "issuers.pem", PKI.mid, PKI.root)
    flags = CertificateFlags(
        certificate=None,
        certificate_chain=issuers,
        ca_roots=None,
        ca_intermediates=None,
        identity=SIGNER_URI,
        identity_regexp=None,
        oidc_issuer=None,
        oidc_issuer_regexp=".*",
    )
    return CertificateMode(flags)


@fuzz
@given(leaf=real_leaf | certificate_pems | st.none(), chain=certificate_pems | st.none())
def test_carried_certificates_check_or_raise_verification_error(
    mode: CertificateMode, leaf: bytes | None, chain: bytes | None
) -> None:
    try:
        verifier, record = mode.for_signature(leaf, chain)
    except VerificationError:
        return
    assert record is not None and record["checked"] is True
    # only the real leaf (unchanged DER) can pass
    assert leaf is not None
    assert certificates_from_pem(leaf)[0] == PKI.leaf
    assert verifier is not None


@fuzz
@given(data=certificate_pems, which=st.sampled_from(["chain", "roots"]))
def test_trust_files_load_or_raise_usage_error(data: bytes, which: str, scratch: Scratch) -> None:
    path: Path = scratch("trust") / "file.pem"
    path.write_bytes(data)
    try:
        if which == "chain":
            trust = Trust.from_flags(certificate_chain=path, ca_roots=None, ca_intermediates=None)
        else:
            trust = Trust.from_flags(certificate_chain=None, ca_roots=path, ca_intermediates=None)
    except UsageError:
        return
    assert trust.roots
