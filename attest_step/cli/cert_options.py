"""The certificate flags of ``verify`` and ``verify-attestation`` (cosign's names)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from attest_step.keys.certmode import CertificateFlags
from attest_step.option_group import option_group

_FILE = click.Path(dir_okay=False, path_type=Path)

_OPTIONS = [
    click.option(
        "--certificate",
        type=_FILE,
        help="Signing certificate (PEM) to verify with instead of the one the signature "
        "carries; checked like it.",
    ),
    click.option(
        "--certificate-chain",
        type=_FILE,
        help="PEM: the signing certificate's issuers, the root last. The certificate must "
        "chain to that root, be valid now and allow codeSigning.",
    ),
    click.option(
        "--ca-roots",
        type=_FILE,
        help="PEM bundle of trusted root CAs (instead of --certificate-chain).",
    ),
    click.option(
        "--ca-intermediates",
        type=_FILE,
        help="PEM bundle of intermediate CAs, with --ca-roots.",
    ),
    click.option(
        "--certificate-identity",
        "identity",
        help="A subject alternative name the certificate must have (exact).",
    ),
    click.option(
        "--certificate-identity-regexp",
        "identity_regexp",
        help="Regexp one subject alternative name must match (unanchored search).",
    ),
    click.option(
        "--certificate-oidc-issuer",
        "oidc_issuer",
        help="The OIDC issuer extension the certificate must have (exact).",
    ),
    click.option(
        "--certificate-oidc-issuer-regexp",
        "oidc_issuer_regexp",
        help="Regexp for the OIDC issuer; '.*' accepts a private CA's certificate "
        "without the extension.",
    ),
]

certificate_options = option_group(
    "cert_flags",
    CertificateFlags,
    [field.name for field in dataclasses.fields(CertificateFlags)],
    _OPTIONS,
)
"""Add the certificate flags; the command receives ``cert_flags: CertificateFlags``."""
