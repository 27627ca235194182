"""How ``verify`` and ``verify-attestation`` decide what a signature is checked with.

Two modes, as in ``cosign verify``:

- **key** (``--key``): the signature must verify with that public key. A certificate the
  signature carries (``dev.sigstore.cosign/certificate`` / ``…/chain`` annotations, or a
  bundle's verification material) is *not* checked, exactly as cosign ignores it with
  ``--key``; the output says so. ``--key`` naming a certificate is refused: its key would
  be used while nothing checks the certificate.
- **certificate** (``--certificate-chain`` or ``--ca-roots``, with the identity flags): the
  signing certificate, from ``--certificate`` or else from the signature itself, must pass
  :func:`attest_step.keys.x509verify.check_certificate`, and the signature must verify
  with its key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attest_step.errors import UsageError, VerificationError
from attest_step.fileio import read_small_file
from attest_step.keys import pem, secret_dir
from attest_step.keys.signer import Verifier

KEY_MODE_NOTE = (
    "carries an x509 certificate that was NOT checked: it was verified with --key, as cosign "
    "does; to check the certificate verify with --certificate-chain or --ca-roots and "
    "--certificate-identity/--certificate-oidc-issuer instead of --key"
)
_PUBLIC_LABELS = ("PUBLIC KEY", "RSA PUBLIC KEY")
_CERT_LABEL = "CERTIFICATE"


@dataclass(frozen=True, kw_only=True)
class CertificateFlags:
    """The certificate flags of the verify verbs, named as cosign names them; every one is
    passed, None when not given."""

    certificate: Path | None
    certificate_chain: Path | None
    ca_roots: Path | None
    ca_intermediates: Path | None
    identity: str | None
    identity_regexp: str | None
    oidc_issuer: str | None
    oidc_issuer_regexp: str | None

    def given(self) -> list[str]:
        names = {
            "--certificate": self.certificate,
            "--certificate-chain": self.certificate_chain,
            "--ca-roots": self.ca_roots,
            "--ca-intermediates": self.ca_intermediates,
            "--certificate-identity": self.identity,
            "--certificate-identity-regexp": self.identity_regexp,
            "--certificate-oidc-issuer": self.oidc_issuer,
            "--certificate-oidc-issuer-regexp": self.oidc_issuer_regexp,
        }
        return [flag for flag, value in names.items() if value]


@dataclass(frozen=True)
class KeyMode:
    verifier: Verifier

    def for_signature(
        self, leaf_pem: bytes | None, chain_pem: bytes | None = None
    ) -> tuple[Verifier, dict[str, Any] | None]:
        """The key, and what the output says of a certificate the signature carries."""
        del chain_pem  # not checked with --key, as cosign does
        if not leaf_pem:
            return self.verifier, None
        return self.verifier, {"checked": False, "reason": KEY_MODE_NOTE}


class CertificateMode:
    """Verify with certificates checked against the given roots and identity."""

    def __init__(self, flags: CertificateFlags) -> None:
        from attest_step.keys import x509verify  # noqa: PLC0415 - only this mode needs it

        self._x509 = x509verify
        self.policy = x509verify.CertificatePolicy(
            x509verify.Trust.from_flags(
                certificate_chain=flags.certificate_chain,
                ca_roots=flags.ca_roots,
                ca_intermediates=flags.ca_intermediates,
            ),
            x509verify.Identity(
                subject=flags.identity or "",
                subject_regexp=flags.identity_regexp or "",
                issuer=flags.oidc_issuer or "",
                issuer_regexp=flags.oidc_issuer_regexp or "",
            ),
        )
        self.given: x509verify.CheckedCertificate | None = None
        if flags.certificate is not None:
            leaf = x509verify.certificate_file(flags.certificate, "--certificate")[0]
            try:
                self.given = x509verify.check_certificate(leaf, [], self.policy)
            except VerificationError as err:
                raise VerificationError(f"--certificate {flags.certificate}: {err}") from err

    def for_signature(
        self, leaf_pem: bytes | None, chain_pem: bytes | None = None
    ) -> tuple[Verifier, dict[str, Any] | None]:
        """The verifier for one signature and what was checked; VerificationError if unusable.

        ``leaf_pem``/``chain_pem``: the certificate and chain the signature carries, if any.
        """
        x509verify = self._x509
        carried = None
        if leaf_pem:
            try:
                found = x509verify.certificates_from_pem(leaf_pem)
            except ValueError as err:
                raise VerificationError(f"its certificate is malformed ({err})") from err
            if not found:
                raise VerificationError("its certificate annotation holds no PEM certificate")
            carried = found[0]
        if self.given is not None:
            if carried is not None and carried != self.given.certificate:
                raise VerificationError("it carries another certificate than --certificate")
            return self.given.verifier(), self.given.to_dict()
        if carried is None:
            raise VerificationError(
                "it carries no certificate; give the signing certificate with --certificate"
            )
        try:
            untrusted = x509verify.certificates_from_pem(chain_pem) if chain_pem else []
        except ValueError as err:
            raise VerificationError(f"its certificate chain is malformed ({err})") from err
        checked = x509verify.check_certificate(carried, untrusted, self.policy)
        return checked.verifier(), checked.to_dict()


Mode = KeyMode | CertificateMode


def _first_key_label(data: bytes) -> str | None:
    try:
        blocks = pem.blocks(data)
    except pem.PemError:
        return None  # load_verifier reports the broken PEM
    for block in blocks:
        if block.label in _PUBLIC_LABELS or block.label == _CERT_LABEL:
            return block.label
    return None


def _refuse_certificate_key(key_ref: str) -> None:
    """UsageError when ``--key`` would take its key from a certificate nothing checks."""
    from attest_step.keys.load import is_kms_uri  # noqa: PLC0415 - start-up

    if is_kms_uri(key_ref) or not key_ref:
        return
    path = Path(key_ref)
    if path.is_dir():
        files = secret_dir.locate(path)
        if files.public_key is not None or files.certificate is None:
            return
        cert_path = files.certificate
    elif path.is_file():
        try:
            data = read_small_file(path, "--key")
        except OSError:
            return  # load_verifier reports it
        if _first_key_label(data) != _CERT_LABEL:
            return
        cert_path = path
    else:
        return
    raise UsageError(
        f"--key {key_ref}: {cert_path} is an x509 certificate, and its key alone would skip "
        f"checking it; pass --certificate {cert_path} with --certificate-chain or --ca-roots "
        "and --certificate-identity/--certificate-oidc-issuer, or pass the public key"
    )


def choose(key_ref: str | None, flags: CertificateFlags) -> Mode:
    """The mode the flags ask for; UsageError when they conflict or are incomplete."""
    given = flags.given()
    if key_ref is not None:
        if given:
            raise UsageError(
                f"--key conflicts with {', '.join(given)}: verify either with a public key or "
                "with a certificate checked against roots"
            )
        _refuse_certificate_key(key_ref)
        from attest_step.keys.load import load_verifier  # noqa: PLC0415 - start-up

        return KeyMode(load_verifier(key_ref))
    if not given:
        raise UsageError(
            "give --key PUBLIC-KEY, or --certificate-chain/--ca-roots with "
            "--certificate-identity and --certificate-oidc-issuer"
        )
    return CertificateMode(flags)
