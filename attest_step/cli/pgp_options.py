"""``sign --pgp-key`` and ``verify --pgp-key``: OpenPGP simple signing in a lookaside.

The flags are added to ``sign`` and ``verify``; the work is here so the cosign paths of
those verbs stay as they were. Nothing here talks to a registry when IMAGE has a digest.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from attest_step.cli.common import emit_json
from attest_step.errors import UsageError

if TYPE_CHECKING:
    import pysequoia

    from attest_step.imageref import ImageRef
    from attest_step.oci.options import RegistryOptions
    from attest_step.pgp.simple_signing import VerifiedPgp
    from attest_step.pgp.web_lookaside import WebLookaside

F = TypeVar("F", bound=Callable[..., Any])

SIGN_LOOKASIDE_HELP = (
    "Lookaside directory (or file:// URL) to write the OpenPGP signature to, as registries.d "
    "'lookaside-staging': DIR/REPOSITORY@sha256=HEX/signature-N. Publish it with a web server."
)
VERIFY_LOOKASIDE_HELP = (
    "Lookaside of OpenPGP signatures, as registries.d 'lookaside': a directory, file:// or "
    "http(s):// URL. Reads REPOSITORY@sha256=HEX/signature-1, -2, ... up to the first 404, "
    "within --timeout; https is checked against --ca-cert or the system store."
)


def pgp_key_option(help_text: str) -> Callable[[F], F]:
    return click.option("--pgp-key", "pgp_key", default=None, metavar="KEY", help=help_text)


def _lookaside(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> Path | WebLookaside | None:
    """A directory, or the ``file://`` or ``http(s)://`` URL a registries.d file names."""
    if value is None:
        return None
    if "://" in value and not value.startswith("file://"):
        from attest_step.pgp.web_lookaside import parse_web_lookaside  # noqa: PLC0415

        try:
            return parse_web_lookaside(value)
        except ValueError as err:
            raise click.BadParameter(
                f"{err}; give a directory, a file:// or an http(s):// URL"
            ) from None
    if value.startswith("file://"):
        value = value[len("file://") :]
    if not value:
        raise click.BadParameter("give a directory")
    return Path(value)


def lookaside_option(help_text: str, metavar: str) -> Callable[[F], F]:
    return click.option(
        "--lookaside",
        "lookaside",
        metavar=metavar,
        default=None,
        callback=_lookaside,
        help=help_text,
    )


def identity_option(func: F) -> F:
    return click.option(
        "--sign-container-identity",
        "identity",
        default=None,
        metavar="REF",
        help="With --pgp-key: the docker-reference to sign (default: REPO:TAG when IMAGE has "
        "a tag, else REPO@sha256:HEX; podman never accepts a bare REPO).",
    )(func)


def require_lookaside(lookaside: Path | WebLookaside | None, verb: str) -> Path | WebLookaside:
    if lookaside is None:
        raise UsageError(
            f"{verb} --pgp-key: give --lookaside DIR (signatures in the containers/image "
            "lookaside layout; see docs/keys.md)"
        )
    return lookaside


def _directory_to_write(lookaside: Path | WebLookaside | None) -> Path:
    where = require_lookaside(lookaside, "sign")
    if not isinstance(where, Path):
        raise UsageError(
            f"sign --pgp-key: --lookaside {where}: sign writes a directory or a file:// URL "
            "only; sign into a directory and publish it on your web server"
        )
    return where


def sign_pgp(
    image: str,
    pgp_key: str,
    lookaside: Path | WebLookaside | None,
    *,
    identity: str | None,
    output: str,
) -> None:
    """Sign IMAGE with an OpenPGP key into the lookaside directory."""
    directory = _directory_to_write(lookaside)
    from attest_step.imageref import parse_image_ref  # noqa: PLC0415
    from attest_step.pgp.keys import load_pgp_signer  # noqa: PLC0415
    from attest_step.pgp.simple_signing import sign_to_lookaside  # noqa: PLC0415

    ref = parse_image_ref(image, what="IMAGE")
    signer = load_pgp_signer(pgp_key)
    record = sign_to_lookaside(ref, signer, directory, identity=identity)
    if record["signing_key"] != record["fingerprint"]:
        click.echo(
            f"attest-step: note: signed by subkey {record['signing_key']}; podman and skopeo "
            "built on containers/image older than its July 2025 change accept only signatures "
            "by the primary key (Debian bookworm's do): for them, sign with a key whose "
            "primary key can sign",
            err=True,
        )
    if output == "json":
        emit_json([record])
        return
    click.echo(f"{record['status']}: {record['kind']} ({record['layout']}) -> {record['location']}")
    click.echo(f"  key {record['fingerprint']}, identity {record['identity']}")


def _verify(
    ref: ImageRef,
    certs: list[pysequoia.Cert],
    where: Path | WebLookaside,
    registry: RegistryOptions,
) -> list[VerifiedPgp]:
    from attest_step.pgp.simple_signing import verify_found, verify_lookaside  # noqa: PLC0415

    if isinstance(where, Path):
        return verify_lookaside(ref, certs, where)
    from attest_step.pgp.web_lookaside import WebReadOptions, read_web_signatures  # noqa: PLC0415

    options = WebReadOptions(timeout_seconds=registry.timeout_seconds, ca_cert=registry.ca_cert)
    found = read_web_signatures(where, ref, options)
    first = where.signature_url(ref, 1)
    return verify_found(ref, certs, found, where=str(where), first=first)


def verify_pgp(
    image: str,
    pgp_key: str,
    lookaside: Path | WebLookaside | None,
    *,
    output: str,
    resolve: Callable[[str], ImageRef],
    registry: RegistryOptions,
) -> None:
    """Verify IMAGE's OpenPGP signatures in the lookaside (directory or web) with public keys."""
    where = require_lookaside(lookaside, "verify")
    from attest_step.pgp.keys import load_pgp_public_keys  # noqa: PLC0415

    certs = load_pgp_public_keys(pgp_key)
    ref = resolve(image)
    verified = _verify(ref, certs, where, registry)
    if output == "json":
        emit_json(
            {
                "image": str(ref),
                "verified": [
                    {
                        "source": "lookaside",
                        "location": v.location,
                        "fingerprint": v.fingerprint,
                        "identity": v.identity,
                        "claims": v.claims,
                    }
                    for v in verified
                ],
            }
        )
        return
    click.echo(f"Verification for {ref} --")
    click.echo("The following checks were performed on each of these signatures:")
    click.echo("  - The OpenPGP signature was verified against one of the given public keys")
    click.echo("  - The signed payload names the image digest")
    click.echo("  - The signed docker-reference matches the image (matchRepoDigestOrExact)")
    for v in verified:
        click.echo(f"  lookaside: {v.location}")
        click.echo(f"    key {v.fingerprint}, identity {v.identity}")
