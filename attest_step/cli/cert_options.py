"""The certificate flags of ``verify`` and ``verify-attestation`` (cosign's names)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from attest_step.keys.certmode import CertificateFlags

F = TypeVar("F", bound=Callable[..., Any])
_FILE = click.Path(dir_okay=False, path_type=Path)


def certificate_options(func: F) -> F:
    """Add the certificate flags; pass ``cert_flags=CertificateFlags(...)``."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        kwargs["cert_flags"] = CertificateFlags(
            certificate=kwargs.pop("certificate"),
            certificate_chain=kwargs.pop("certificate_chain"),
            ca_roots=kwargs.pop("ca_roots"),
            ca_intermediates=kwargs.pop("ca_intermediates"),
            identity=kwargs.pop("certificate_identity"),
            identity_regexp=kwargs.pop("certificate_identity_regexp"),
            oidc_issuer=kwargs.pop("certificate_oidc_issuer"),
            oidc_issuer_regexp=kwargs.pop("certificate_oidc_issuer_regexp"),
        )
        return func(*args, **kwargs)

    decorated: Any = wrapper
    options = [
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
            help="A subject alternative name the certificate must have (exact).",
        ),
        click.option(
            "--certificate-identity-regexp",
            help="Regexp one subject alternative name must match (unanchored search).",
        ),
        click.option(
            "--certificate-oidc-issuer",
            help="The OIDC issuer extension the certificate must have (exact).",
        ),
        click.option(
            "--certificate-oidc-issuer-regexp",
            help="Regexp for the OIDC issuer; '.*' accepts a private CA's certificate "
            "without the extension.",
        ),
    ]
    for option in reversed(options):
        decorated = option(decorated)
    result: F = decorated
    return result
