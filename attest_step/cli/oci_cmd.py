"""``sign``, ``verify`` and ``push``: cosign-compatible image signatures in OCI registries."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from attest_step.cli.cert_options import certificate_options
from attest_step.cli.common import emit_json, spool_then_push
from attest_step.cli.early import early_work
from attest_step.cli.options import output_option
from attest_step.cli.pgp_options import (
    SIGN_LOOKASIDE_HELP,
    VERIFY_LOOKASIDE_HELP,
    identity_option,
    lookaside_option,
    pgp_key_option,
    sign_pgp,
    verify_pgp,
)
from attest_step.errors import UsageError

if TYPE_CHECKING:
    from attest_step.pgp.web_lookaside import WebLookaside
from attest_step.keys.certmode import CertificateFlags
from attest_step.oci.options import RegistryOptions, registry_options
from attest_step.tlog.options import (
    TlogOptions,
    bundle_layout,
    load_logs,
    tlog_line,
    tlog_options,
    tlog_summary,
    verify_tlog_options,
)


def _annotations(values: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise UsageError(f"-a {value!r}: annotations are key=value")
        out[key] = val
    return out


def _echo_records(records: list[dict[str, Any]], output: str) -> None:
    if output == "json":
        emit_json(records)
        return
    for rec in records:
        if rec["kind"] == "file-attestation":  # attest --output-file --bundle, no image
            where = f" at log index {rec['logIndex']}" if "logIndex" in rec else ""
            click.echo(f"{rec['status']}{where}: {rec['kind']} -> bundle {rec['bundle']}")
        else:
            click.echo(f"{rec['status']}: {rec['kind']} ({rec['layout']}) -> {rec['location']}")


annotation_option = click.option(
    "-a",
    "--annotations",
    "annotation_values",
    multiple=True,
    metavar="KEY=VALUE",
    help="Annotation signed into (sign) or required in (verify) the signature; repeatable.",
)


def _one_key(
    key_ref: str | None, pgp_key: str | None, verb: str, cosign_flags: tuple[str, bool]
) -> None:
    """Refuse --key with --pgp-key, and with --pgp-key the flags (named, and whether any was
    given) that only cosign signatures use."""
    if key_ref is not None and pgp_key is not None:
        raise UsageError(f"{verb}: give --key or --pgp-key, not both")
    names, given = cosign_flags
    if pgp_key is not None and given:
        raise UsageError(f"{verb} --pgp-key: {names} are for cosign signatures; drop them")


@click.command("sign")
@click.option(
    "--key", "key_ref", default=None, help="Signing key (cosign key, PEM, Secret dir, KMS)."
)
@pgp_key_option(
    "OpenPGP secret key (file from gpg --export-secret-keys, or a Secret dir with pgp.key "
    "and pgp.passphrase): write an atomic container signature to --lookaside instead."
)
@lookaside_option(SIGN_LOOKASIDE_HELP, "DIR")
@identity_option
@click.option(
    "--certificate-chain",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="PEM chain (leaf first) for an x509 key; stored in the certificate annotations.",
)
@annotation_option
@click.option(
    "--spool-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep the signed files here (default: a temporary directory, kept only if the "
    "upload fails). Upload later with: attest-step push --from DIR.",
)
@output_option
@registry_options
@tlog_options
@click.argument("image")
def sign_command(
    *,
    key_ref: str | None,
    pgp_key: str | None,
    lookaside: Path | WebLookaside | None,
    identity: str | None,
    certificate_chain: str | None,
    annotation_values: tuple[str, ...],
    spool_dir: Path | None,
    output: str,
    registry: RegistryOptions,
    tlog: TlogOptions,
    image: str,
) -> None:
    """Sign IMAGE (REPOSITORY@sha256:HEX) and attach the signature as cosign does.

    With --pgp-key, write an OpenPGP "simple signing" signature (what podman and skopeo
    verify with a policy.json signedBy rule) to the --lookaside directory; no registry work.
    """
    cosign_only = bool(annotation_values or certificate_chain or spool_dir)
    _one_key(key_ref, pgp_key, "sign", ("-a, --certificate-chain and --spool-dir", cosign_only))
    if pgp_key is not None:
        sign_pgp(image, pgp_key, lookaside, identity=identity, output=output)
        return
    if key_ref is None:
        raise UsageError("sign: give --key (cosign signature) or --pgp-key (OpenPGP)")
    if lookaside is not None or identity is not None:
        raise UsageError("sign: --lookaside and --sign-container-identity go with --pgp-key")
    from attest_step.imageref import parse_image_ref  # noqa: PLC0415 - lazy per verb
    from attest_step.oci.prefetch import start_signature_prefetch  # noqa: PLC0415

    ref = parse_image_ref(image, what="IMAGE")
    annotations = _annotations(annotation_values)
    registry = bundle_layout(registry, tlog.enabled)
    # The registry work that does not need the signature runs while scrypt decrypts the key.
    prefetch = start_signature_prefetch(ref, annotations, registry)
    # scrypt started by attest_step.cli.main before click loaded, if it could be. While it
    # runs, the registry client's imports come first (the prefetch waits for them); the key
    # loader and cryptography load while the prefetch waits on the network.
    early = early_work()
    if early.kdf is not None:
        early.wait_for_imports()
    from attest_step.keys.load import load_signer  # noqa: PLC0415

    signer = load_signer(key_ref, certificate_chain=certificate_chain, kdf=early.kdf)
    if tlog.enabled:
        from attest_step.tlog.spool import check_signer_key  # noqa: PLC0415

        check_signer_key(signer.public_key_pem())
    # Imported on a background thread during scrypt (attest_step.cli.main.PRELOAD).
    from attest_step.oci.sign import sign_image  # noqa: PLC0415

    with spool_then_push(spool_dir, "signature") as out_dir:
        records = sign_image(
            ref,
            signer,
            annotations,
            out_dir=out_dir,
            registry=registry,
            prefetch=prefetch,
            tlog=tlog,
        )
    _echo_records(records, output)


@click.command("verify")
@click.option(
    "--key",
    "key_ref",
    default=None,
    help="Public key (PEM, Secret dir, KMS). Or verify with a certificate: see "
    "--certificate-chain.",
)
@pgp_key_option(
    "OpenPGP public key file or keyring (gpg --export), or a Secret dir with pgp.pub: verify "
    "the signatures in --lookaside."
)
@lookaside_option(VERIFY_LOOKASIDE_HELP, "DIR|URL")
@certificate_options
@annotation_option
@output_option
@registry_options
@verify_tlog_options
@click.argument("image")
def verify_command(
    *,
    key_ref: str | None,
    pgp_key: str | None,
    lookaside: Path | WebLookaside | None,
    cert_flags: CertificateFlags,
    annotation_values: tuple[str, ...],
    output: str,
    registry: RegistryOptions,
    trusted_root: Path | None,
    image: str,
) -> None:
    """Verify IMAGE's signatures (.sig tag and cosign v3 bundles) with a public key, or with
    an x509 certificate checked against --certificate-chain / --ca-roots.

    With --pgp-key, verify the OpenPGP signatures in --lookaside (a directory or a web
    server) instead (IMAGE by digest
    needs no registry; by tag, the tag is resolved in the registry)."""
    from attest_step.keys.certmode import KeyMode, choose  # noqa: PLC0415
    from attest_step.oci.fetch import resolve_image  # noqa: PLC0415
    from attest_step.oci.verify_sig import verify_image_signatures  # noqa: PLC0415

    cosign_only = bool(annotation_values or cert_flags.given())
    _one_key(key_ref, pgp_key, "verify", ("-a and the certificate flags", cosign_only))
    if pgp_key is not None:
        resolve = functools.partial(resolve_image, registry=registry)
        verify_pgp(image, pgp_key, lookaside, output=output, resolve=resolve, registry=registry)
        return
    if lookaside is not None:
        raise UsageError("verify: --lookaside goes with --pgp-key")
    mode = choose(key_ref, cert_flags)
    logs = load_logs(trusted_root)
    ref = resolve_image(image, registry)
    verified = verify_image_signatures(
        ref, mode, _annotations(annotation_values), registry, tlog_logs=logs
    )
    if output == "json":
        records = []
        for v in verified:
            record: dict[str, Any] = {"source": v.source, "location": v.location}
            record["claims"] = v.claims
            if v.certificate is not None:
                record["certificate"] = v.certificate
            record["tlog"] = v.tlog
            records.append(record)
        emit_json({"image": str(ref), "verified": records, "tlogChecked": logs is not None})
        return
    click.echo(f"Verification for {ref} --")
    click.echo("The following checks were performed on each of these signatures:")
    if isinstance(mode, KeyMode):
        click.echo("  - The signature was verified against the given public key")
    else:
        click.echo(f"  - The signing certificate chained to a root of {mode.policy.trust.source}")
        click.echo(
            "    (path valid at its notBefore and now: no trusted signing time), allows "
            "codeSigning and matched the identity"
        )
        click.echo("  - The signature was verified against the certificate's key")
    click.echo("  - The signed payload names the image digest")
    if annotation_values:
        click.echo("  - The signed annotations match -a")
    click.echo(f"  - {tlog_summary(logs is not None)}")
    for v in verified:
        click.echo(f"  {v.source}: {v.location}")
        if v.certificate is not None and not v.certificate.get("checked"):
            click.echo(f"    NOTE: this signature {v.certificate['reason']}")
        elif v.certificate is not None:
            click.echo(f"    certificate: {', '.join(v.certificate['subjects']) or '(no SAN)'}")
        if v.tlog is not None:
            click.echo(f"    {tlog_line(v.tlog)}")


@click.command("push")
@click.option(
    "--from",
    "from_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Spool directory written by an earlier sign/attest run.",
)
@output_option
@registry_options
@tlog_options
def push_command(
    *, from_dir: Path, output: str, registry: RegistryOptions, tlog: TlogOptions
) -> None:
    """Upload signed output left on disk by an earlier run (idempotent): first to the
    transparency log what was signed with one and is not logged yet, then to the registry.
    An attestation written only to a file (attest --output-file --bundle) is logged and
    its bundle written where attest was told."""
    from attest_step.oci.upload import push_spool  # noqa: PLC0415
    from attest_step.tlog.filelog import log_pending  # noqa: PLC0415
    from attest_step.tlog.spool import has_sidecars  # noqa: PLC0415

    registry = bundle_layout(registry, tlog.enabled or has_sidecars(from_dir))
    records = log_pending(from_dir, tlog)
    records += push_spool(from_dir, registry, tlog)
    if not records:
        raise UsageError(f"--from {from_dir}: no spool records (*.oci.json) in it")
    _echo_records(records, output)
