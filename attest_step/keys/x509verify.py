"""Check an x509 signing certificate the way ``cosign verify`` does without a transparency log.

Given trust material (``--certificate-chain`` or ``--ca-roots`` [+ ``--ca-intermediates``])
and an expected identity, a leaf certificate is accepted when all of these hold:

1. a path leads from the leaf, through the untrusted intermediates offered (those of the
   trust material, then any the signature carried), to one of the trusted roots, validated
   by cryptography's ``x509.verification.PolicyBuilder`` at the leaf's ``notBefore``, as
   cosign's ``TrustedCert`` builds it (``CurrentTime: cert.NotBefore``);
2. the same path also validates *now*: there is no trusted signing time (no Rekor entry, no
   RFC 3161 timestamp; a time inside the signed payload is the signer's own claim), and
   cosign without either checks the leaf and its issuers against ``time.Now()``;
3. the leaf carries the extended key usage codeSigning, and every CA certificate on the path
   that restricts its EKU allows codeSigning (or anyExtendedKeyUsage);
4. a subject alternative name matches ``--certificate-identity`` (exact) or
   ``--certificate-identity-regexp`` (unanchored search, like Go's ``MatchString``), and
   the OIDC issuer extension matches ``--certificate-oidc-issuer[-regexp]`` (empty when the
   certificate has none, so a private CA is matched with an issuer regexp such as ``.*``).

PolicyBuilder's client verifier looks for the clientAuth EKU; its documented extension
policies (cryptography >= 45) replace that check with ours on both the leaf and the CAs.
The rest is cryptography's Web PKI profile: CA certificates need a critical basicConstraints
with cA and keyCertSign, the leaf must not be a CA. That is stricter than Go's verifier in
places (Go accepts a leaf without any EKU; this does not).
"""

from __future__ import annotations

import datetime
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID

from attest_step.errors import UsageError, VerificationError
from attest_step.fileio import read_input_file
from attest_step.keys import pem
from attest_step.keys.local import (
    PublicKeyVerifier,
    check_public,
    parse_der_certificate,
    public_key_of,
)

CERT_LABEL = "CERTIFICATE"
OIDC_ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")  # raw string (Fulcio, old)
OIDC_ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")  # DER UTF8String (Fulcio)
MAX_CHAIN_DEPTH = 8
_UTF8_STRING_TAG = 0x0C


# ---------------------------------------------------------------- parsing


def certificates_from_pem(data: bytes) -> list[x509.Certificate]:
    """Every CERTIFICATE block of ``data``, in order; ValueError when one is malformed.

    Other PEM blocks are skipped. pem.PemError (a ValueError) on broken PEM.
    """
    return [
        parse_der_certificate(block.der) for block in pem.blocks(data) if block.label == CERT_LABEL
    ]


def certificate_file(path: Path, flag: str) -> list[x509.Certificate]:
    """The certificates of a PEM file given on the command line (UsageError when unusable)."""
    data = read_input_file(path, flag)
    try:
        certs = certificates_from_pem(data)
    except ValueError as err:
        raise UsageError(
            f"{flag} {path}: not a valid PEM certificate file ({err}); re-export it as PEM"
        ) from err
    if not certs:
        raise UsageError(f"{flag} {path}: holds no CERTIFICATE PEM block; pass a PEM file")
    return certs


def to_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


# ---------------------------------------------------------------- trust and identity


@dataclass(frozen=True)
class Trust:
    """Roots to chain to and intermediates to build the path with (both from the verifier)."""

    roots: tuple[x509.Certificate, ...]
    intermediates: tuple[x509.Certificate, ...]
    source: str  # how the user gave them, for messages

    @classmethod
    def from_flags(
        cls,
        *,
        certificate_chain: Path | None,
        ca_roots: Path | None,
        ca_intermediates: Path | None,
    ) -> Trust:
        """``--certificate-chain`` (intermediates, then the root last) or ``--ca-roots``
        with optional ``--ca-intermediates``, exactly as cosign reads them."""
        if certificate_chain is not None and (ca_roots is not None or ca_intermediates):
            raise UsageError(
                "--certificate-chain conflicts with --ca-roots and --ca-intermediates; give one"
            )
        if certificate_chain is not None:
            chain = certificate_file(certificate_chain, "--certificate-chain")
            return cls((chain[-1],), tuple(chain[:-1]), f"--certificate-chain {certificate_chain}")
        if ca_roots is None:
            raise UsageError(
                "checking a certificate needs a root: give --certificate-chain FILE or "
                "--ca-roots FILE (attest-step has no built-in Fulcio roots)"
            )
        roots = certificate_file(ca_roots, "--ca-roots")
        intermediates: list[x509.Certificate] = []
        if ca_intermediates is not None:
            intermediates = certificate_file(ca_intermediates, "--ca-intermediates")
        return cls(tuple(roots), tuple(intermediates), f"--ca-roots {ca_roots}")


@dataclass(frozen=True)
class Identity:
    """The expected signer: one SAN and the OIDC issuer, each exact or by regexp ('' = not
    given)."""

    subject: str = ""
    subject_regexp: str = ""
    issuer: str = ""
    issuer_regexp: str = ""

    def __post_init__(self) -> None:
        if not (self.subject or self.subject_regexp):
            raise UsageError(
                "checking a certificate needs --certificate-identity or "
                "--certificate-identity-regexp (as cosign requires)"
            )
        if not (self.issuer or self.issuer_regexp):
            raise UsageError(
                "checking a certificate needs --certificate-oidc-issuer or "
                "--certificate-oidc-issuer-regexp (as cosign requires; a private CA without "
                "the OIDC issuer extension matches --certificate-oidc-issuer-regexp '.*')"
            )
        for flag, value in (
            ("--certificate-identity-regexp", self.subject_regexp),
            ("--certificate-oidc-issuer-regexp", self.issuer_regexp),
        ):
            if value:
                try:
                    re.compile(value)
                except re.error as err:
                    raise UsageError(f"{flag} {value!r}: not a valid regexp ({err})") from err

    def check(self, subjects: Sequence[str], issuer: str) -> None:
        """VerificationError unless a subject and the issuer match, as cosign decides."""
        if self.issuer_regexp:
            issuer_ok = re.search(self.issuer_regexp, issuer) is not None
        else:
            issuer_ok = issuer == self.issuer
        if self.subject_regexp:
            pattern = self.subject_regexp
            subject_ok = any(re.search(pattern, san) for san in subjects)
        else:
            subject_ok = self.subject in subjects
        if not (issuer_ok and subject_ok):
            raise VerificationError(
                "the certificate's identity does not match: subjects "
                f"[{', '.join(subjects)}], OIDC issuer {issuer!r}"
            )


@dataclass(frozen=True)
class CertificatePolicy:
    trust: Trust
    identity: Identity


# ---------------------------------------------------------------- checks


def subject_names(cert: x509.Certificate) -> list[str]:
    """The SANs cosign matches identities against, in its order (DNS, email, IP, URI)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    names: list[str] = []
    names.extend(san.get_values_for_type(x509.DNSName))
    names.extend(san.get_values_for_type(x509.RFC822Name))
    names.extend(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
    names.extend(san.get_values_for_type(x509.UniformResourceIdentifier))
    return names


def oidc_issuer(cert: x509.Certificate) -> str:
    """The Fulcio OIDC issuer extension (``…57264.1.8``, else ``…1.1``); "" when absent."""
    for ext in cert.extensions:
        if ext.oid == OIDC_ISSUER_V2 and isinstance(ext.value, x509.UnrecognizedExtension):
            raw = ext.value.value
            if len(raw) >= 2 and raw[0] == _UTF8_STRING_TAG and raw[1] < 0x80:
                return raw[2 : 2 + raw[1]].decode("utf-8", "replace")
    for ext in cert.extensions:
        if ext.oid == OIDC_ISSUER_V1 and isinstance(ext.value, x509.UnrecognizedExtension):
            return ext.value.value.decode("utf-8", "replace")
    return ""


def _leaf_code_signing(
    _policy: verification.Policy, _cert: x509.Certificate, eku: x509.ExtendedKeyUsage
) -> None:
    if ExtendedKeyUsageOID.CODE_SIGNING not in eku:
        raise ValueError("the leaf certificate's extended key usage does not include codeSigning")


def _ca_allows_code_signing(
    _policy: verification.Policy, _cert: x509.Certificate, eku: x509.ExtendedKeyUsage | None
) -> None:
    if eku is None:
        return
    if ExtendedKeyUsageOID.CODE_SIGNING in eku or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in eku:
        return
    raise ValueError("a CA certificate's extended key usage excludes codeSigning")


def _verifier(roots: Sequence[x509.Certificate], at: datetime.datetime) -> Any:
    ee = (
        verification.ExtensionPolicy.webpki_defaults_ee()
        .require_present(
            x509.ExtendedKeyUsage, verification.Criticality.AGNOSTIC, _leaf_code_signing
        )
        # the identity check below decides about SANs (cosign's leaf need not have one
        # to chain; it then fails the identity)
        .may_be_present(x509.SubjectAlternativeName, verification.Criticality.AGNOSTIC, None)
    )
    ca = verification.ExtensionPolicy.webpki_defaults_ca().may_be_present(
        x509.ExtendedKeyUsage, verification.Criticality.AGNOSTIC, _ca_allows_code_signing
    )
    return (
        verification.PolicyBuilder()
        .store(verification.Store(list(roots)))
        .time(at)
        .max_chain_depth(MAX_CHAIN_DEPTH)
        .extension_policies(ca_policy=ca, ee_policy=ee)
        .build_client_verifier()
    )


def _when(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class CheckedCertificate:
    """A leaf that passed every check, and the path that made it pass."""

    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]  # leaf first, root last
    subjects: tuple[str, ...]
    issuer: str
    trust_source: str
    checked_at: datetime.datetime

    def verifier(self) -> PublicKeyVerifier:
        return PublicKeyVerifier(check_public(public_key_of(self.certificate)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "checked": True,
            "subjects": list(self.subjects),
            "oidcIssuer": self.issuer,
            "chain": [c.subject.rfc4514_string() for c in self.chain],
            "trust": self.trust_source,
            "validAt": _when(self.checked_at),
            "notAfter": _when(self.certificate.not_valid_after_utc),
        }


# what cryptography raises for a certificate it parsed lazily and cannot use after all
MALFORMED = (
    ValueError,
    TypeError,
    UnsupportedAlgorithm,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
)


def check_certificate(
    leaf: x509.Certificate,
    untrusted: Sequence[x509.Certificate],
    policy: CertificatePolicy,
    *,
    now: datetime.datetime | None = None,
) -> CheckedCertificate:
    """Run checks 1-4 of the module docstring; VerificationError naming the first failure.

    A certificate that turns out malformed (cryptography parses lazily) is a
    VerificationError too, never another exception.
    """
    try:
        return _check(leaf, untrusted, policy, now or datetime.datetime.now(datetime.UTC))
    except MALFORMED as err:
        raise VerificationError(
            f"the signing certificate or its chain is malformed: {err}"
        ) from err


def _check(
    leaf: x509.Certificate,
    untrusted: Sequence[x509.Certificate],
    policy: CertificatePolicy,
    at: datetime.datetime,
) -> CheckedCertificate:
    not_before, not_after = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    if at > not_after:
        raise VerificationError(
            f"the signing certificate expired at {_when(not_after)}; with no trusted signing "
            "time (no transparency log or timestamp) it must be valid when verified, as "
            "cosign requires"
        )
    if at < not_before:
        raise VerificationError(f"the signing certificate is not valid before {_when(not_before)}")
    try:
        check_public(public_key_of(leaf))
    except ValueError as err:
        raise VerificationError(f"the signing certificate's key is not usable: {err}") from err
    intermediates = [*policy.trust.intermediates, *untrusted]
    chain: list[x509.Certificate] = []
    for moment, label in ((not_before, "its notBefore"), (at, "verification time")):
        try:
            verified = _verifier(policy.trust.roots, moment).verify(leaf, intermediates)
        except verification.VerificationError as err:
            raise VerificationError(
                f"the signing certificate does not chain to a root of {policy.trust.source} "
                f"at {label} ({_when(moment)}): {_short(err)}"
            ) from err
        chain = verified.chain
    issuer = oidc_issuer(leaf)
    subjects = subject_names(leaf)
    policy.identity.check(subjects, issuer)
    return CheckedCertificate(leaf, tuple(chain), tuple(subjects), issuer, policy.trust.source, at)


def _short(err: Exception) -> str:
    """cryptography's message without the certificate repr it appends."""
    text = str(err).split(" (encountered processing", 1)[0]
    return text.removeprefix("validation failed: ")


# ---------------------------------------------------------------- signing side


def check_signing_chain(certs: Sequence[x509.Certificate], source: str) -> None:
    """Refuse a chain (leaf first) that could never verify: the leaf must allow codeSigning
    and each certificate must be issued by the next one. Raises UsageError."""
    if not certs:
        return
    try:
        eku = certs[0].extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        eku = None
    except MALFORMED as err:
        raise UsageError(f"the leaf certificate in {source} is malformed ({err})") from err
    if eku is None or ExtendedKeyUsageOID.CODE_SIGNING not in eku:
        raise UsageError(
            f"the leaf certificate in {source} has no extended key usage codeSigning; cosign "
            "and attest-step refuse it when verifying: issue it with EKU codeSigning"
        )
    for index, (cert, issuer) in enumerate(itertools.pairwise(certs)):
        try:
            cert.verify_directly_issued_by(issuer)
        except (*MALFORMED, InvalidSignature) as err:
            raise UsageError(
                f"certificate #{index + 1} in {source} is not issued by the next one; order the "
                "chain leaf first, then each issuer"
            ) from err
