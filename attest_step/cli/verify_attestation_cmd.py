"""``attest-step verify-attestation``: check an attestation envelope or an image's attestations."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from attest_step.cli.cert_options import certificate_options
from attest_step.cli.common import emit_json
from attest_step.cli.options import bundle_option, exclude_option, output_option
from attest_step.errors import UsageError
from attest_step.keys.certmode import CertificateFlags, KeyMode, Mode
from attest_step.keys.signer import Verifier
from attest_step.model import Subject
from attest_step.oci.options import RegistryOptions, registry_options
from attest_step.statement import PREDICATE_TYPES, predicate_type_uri
from attest_step.tlog.options import load_logs, tlog_line, tlog_summary, verify_tlog_options
from attest_step.verify import PolicyCheck, VerifiedAttestation

_PATH = click.Path(path_type=Path)


def _artifacts(
    subject_paths: Sequence[Path],
    excludes: Sequence[str],
    dir_digest: bool,
    images: Sequence[str],
) -> list[Subject]:
    artifacts: list[Subject] = []
    if subject_paths:
        from attest_step.hashing import hash_paths  # noqa: PLC0415 - lazy, per verb

        artifacts.extend(hash_paths(subject_paths, excludes=excludes, dir_digest=dir_digest))
    elif excludes or dir_digest:
        raise UsageError("--exclude and --dir-digest apply to --subject-path; give a path")
    if images:
        from attest_step.subjects import image_refs, image_subjects  # noqa: PLC0415

        artifacts.extend(image_subjects(image_refs(images)))
    return artifacts


def _policy(
    require_hermetic: bool,
    policies: Sequence[Path],
    policy_data: Sequence[Path],
    rego_options: tuple[str, str | None, float],
) -> PolicyCheck | None:
    """The checks of the built-in policy (YAML/JSON) and of a Rego policy, in that order."""
    from attest_step import rego  # noqa: PLC0415

    rego_paths = [p for p in policies if rego.is_rego(p)]
    builtin_files = [p for p in policies if not rego.is_rego(p)]
    if len(builtin_files) > 1:
        raise UsageError("--policy: give at most one YAML or JSON policy file")
    if policy_data and not rego_paths:
        raise UsageError("--policy-data is data for a Rego policy: give --policy FILE.rego or DIR")
    query, opa, timeout = rego_options
    if not require_hermetic and not policies:
        return None
    checks: list[PolicyCheck] = []
    if builtin_files or require_hermetic:
        from attest_step import policy  # noqa: PLC0415

        rules: list[Mapping[str, Any]] = []
        if builtin_files:
            rules.append(policy.load_policy(builtin_files[0]))
        if require_hermetic:
            rules.append({"requireHermetic": True})

        def builtin(statement: Mapping[str, Any]) -> list[str]:
            return [v for rule in rules for v in policy.evaluate_policy(statement, rule)]

        checks.append(builtin)
    if rego_paths:
        if not 0 < timeout <= 600:
            raise UsageError(f"--policy-timeout {timeout:g}: give 1 to 600 seconds")
        # the staged copy OPA reads lives until the command ends
        temp = tempfile.TemporaryDirectory(prefix="attest-step-policy-")
        stage = Path(click.get_current_context().with_resource(temp))
        checks.append(
            rego.RegoPolicy(
                opa=rego.find_opa(opa),
                roots=rego.stage_roots([*rego_paths, *policy_data], stage),
                query=rego.check_query(query),
                timeout=timeout,
            ).evaluate
        )

    def check(statement: Mapping[str, Any]) -> list[str]:
        return [v for one in checks for v in one(statement)]

    return check


def _print_text(
    result: VerifiedAttestation,
    source: str,
    mode: Mode,
    certificate: dict[str, Any] | None,
    rego_query: str | None,
) -> None:
    statement = result.statement
    click.echo(f"Verified the attestation of {source}:")
    if isinstance(mode, KeyMode):
        click.echo("  - the DSSE signature over the PAE verifies with the given key")
    else:
        click.echo(
            f"  - the signing certificate chained to a root of {mode.policy.trust.source} (path "
            "valid at its notBefore and now: no trusted signing time), allows codeSigning and "
            "matched the identity"
        )
        click.echo("  - the DSSE signature over the PAE verifies with the certificate's key")
    click.echo(f"  - the payload is an in-toto Statement ({statement.type})")
    click.echo(f"  - predicateType is {statement.predicate_type}")
    for artifact, subject in result.matched:
        digests = ", ".join(f"{alg}:{value}" for alg, value in sorted(artifact.digest.items()))
        click.echo(f"  - {artifact.name} ({digests}) is subject {subject.name!r}")
    if rego_query is not None:
        click.echo(f"  - the Rego policy, decided by OPA, gave no denials at {rego_query}")
    if certificate is not None and not certificate.get("checked"):
        click.echo(f"  NOTE: the attestation {certificate['reason']}")


def _signed_part(envelope: Mapping[str, Any]) -> tuple[Any, Any, list[Any]]:
    signatures = envelope.get("signatures")
    sigs = [s.get("sig") if isinstance(s, dict) else s for s in signatures or []]
    return envelope.get("payload"), envelope.get("payloadType"), sigs


def _require_same_envelope(
    held: Mapping[str, Any], given: Sequence[Mapping[str, Any]], bundle: Path, envelope: Path
) -> None:
    """``--envelope`` with ``--bundle``: the bundle must hold one of the file's envelopes
    (payload, type and signatures; a bundle keeps no other field)."""
    from attest_step.errors import VerificationError  # noqa: PLC0415

    if not any(_signed_part(held) == _signed_part(one) for one in given):
        raise VerificationError(
            f"--bundle {bundle}: holds another envelope than --envelope {envelope}; give the "
            "bundle written with it"
        )


@click.command("verify-attestation")
@click.argument("image", required=False)
@click.option(
    "--key",
    default=None,
    help="Public key PEM, Secret dir or KMS URI. Or verify with a certificate: see "
    "--certificate-chain.",
)
@certificate_options
@click.option(
    "--type",
    "type_",
    default="slsaprovenance1",
    show_default=True,
    help=f"Predicate type: {'|'.join(PREDICATE_TYPES)}, or a URI.",
)
@click.option(
    "--envelope", type=_PATH, help="DSSE envelope file (JSON, or JSON Lines) instead of IMAGE."
)
@bundle_option(
    "Sigstore bundle file (attest --bundle, cosign attest-blob --bundle): verify the "
    "envelope it holds and, with --trusted-root, its transparency log entry. With "
    "--envelope, the bundle must hold that envelope."
)
@click.option(
    "--subject-path",
    "subject_paths",
    multiple=True,
    type=_PATH,
    help="File or directory whose digests must be among the subjects (repeatable).",
)
@click.option("--dir-digest", is_flag=True, help="Hash directories as one digest each.")
@exclude_option
@click.option(
    "--image",
    "images",
    multiple=True,
    help="Image REPOSITORY@sha256:HEX that must be a subject (repeatable).",
)
@click.option(
    "--require-hermetic",
    is_flag=True,
    help="Require the provenance to record the build's steps as network-isolated.",
)
@click.option(
    "--policy",
    "policies",
    multiple=True,
    type=_PATH,
    help="Policy (repeatable): a YAML/JSON policy file of our built-in rules, or a Rego policy "
    "(.rego file or directory, as opa eval -d loads it) decided by OPA.",
)
@click.option(
    "--policy-data",
    multiple=True,
    type=_PATH,
    help="Data (JSON/YAML file or directory) for the Rego policy, as opa eval -d loads it "
    "(repeatable).",
)
@click.option(
    "--policy-query",
    default="data.attest_step.tekton_step.deny",
    show_default=True,
    help="The Rego policy's decision: a set of denials; empty passes, undefined fails.",
)
@click.option(
    "--policy-timeout",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds OPA may take to decide; then the policy fails closed.",
)
@click.option(
    "--opa", default=None, help="The OPA binary for a Rego policy [default: opa on PATH]."
)
@registry_options
@verify_tlog_options
@output_option
def verify_attestation_command(
    *,
    image: str | None,
    key: str | None,
    cert_flags: CertificateFlags,
    type_: str,
    envelope: Path | None,
    bundle: Path | None,
    subject_paths: tuple[Path, ...],
    dir_digest: bool,
    excludes: tuple[str, ...],
    images: tuple[str, ...],
    require_hermetic: bool,
    policies: tuple[Path, ...],
    policy_data: tuple[Path, ...],
    policy_query: str,
    policy_timeout: float,
    opa: str | None,
    registry: RegistryOptions,
    trusted_root: Path | None,
    output: str,
) -> None:
    """Verify the signature, statement, predicate type and subjects of an attestation.

    Give either IMAGE (REPOSITORY@sha256:HEX; its attestations are read from the registry),
    or --envelope FILE and/or --bundle FILE (a Sigstore bundle, which carries the envelope's
    transparency log entry). Exits 0 only when one attestation passes every check.

    A Rego policy (--policy FILE.rego or DIR, --policy-data) is decided by OPA over the
    verified in-toto Statement, as cosign's --policy gives it: --policy-query names a set of
    denials (Conforma's `deny`), empty passes; a policy that does not compile, gives no
    decision or takes longer than --policy-timeout fails closed.
    """
    predicate_type = predicate_type_uri(type_)
    if (image is None) == (envelope is None and bundle is None):
        raise UsageError("give exactly one of IMAGE or --envelope FILE and/or --bundle FILE")
    artifacts = _artifacts(subject_paths, excludes, dir_digest, images)
    check = _policy(require_hermetic, policies, policy_data, (policy_query, opa, policy_timeout))

    from attest_step.keys.certmode import choose  # noqa: PLC0415
    from attest_step.oci.certmaterial import NONE, CarriedCertificate  # noqa: PLC0415
    from attest_step.verify import read_envelopes, verify_any  # noqa: PLC0415

    mode = choose(key, cert_flags)
    logs = load_logs(trusted_root)
    carried: list[CarriedCertificate]
    # tlog hook: where each envelope came from and the log entries its bundle carries
    logged: list[tuple[str, Any]]
    if bundle is not None:
        from attest_step.oci.bundle_doc import read_bundle_file  # noqa: PLC0415

        got = read_bundle_file(bundle)
        if envelope is not None:
            _require_same_envelope(got.envelope, read_envelopes(envelope), bundle, envelope)
        source = str(envelope or bundle)
        envelopes = [got.envelope]
        carried = [got.certificate]
        logged = [("bundle", got.tlog_entries)]
    elif envelope is not None:
        source = str(envelope)
        envelopes = read_envelopes(envelope)
        carried = [NONE] * len(envelopes)
        logged = [("file", None)] * len(envelopes)
    else:
        assert image is not None
        from attest_step.imageref import parse_image_ref  # noqa: PLC0415
        from attest_step.oci.fetch import fetch_attestations  # noqa: PLC0415

        ref = parse_image_ref(image, what="IMAGE")
        source = str(ref)
        artifacts.append(Subject(ref.name, {"sha256": ref.hex}))
        fetched = fetch_attestations(ref, registry)
        envelopes = [f.envelope for f in fetched]
        carried = [f.certificate for f in fetched]
        logged = [(f.source, f.tlog_entries) for f in fetched]
    notes: dict[int, dict[str, Any] | None] = {}
    entries: dict[int, dict[str, Any]] = {}

    def verifier_for(index: int) -> Verifier:
        if logs is not None:
            from attest_step.tlog.entry import require_entry  # noqa: PLC0415

            where, tlog_entries = logged[index]
            entries[index] = require_entry(tlog_entries, envelopes[index], logs, where).to_dict()
        verifier, notes[index] = mode.for_signature(
            carried[index].leaf_pem, carried[index].chain_pem
        )
        return verifier

    result = verify_any(
        envelopes,
        None,
        predicate_type=predicate_type,
        artifacts=artifacts,
        policy=check,
        source=source,
        verifier_for=verifier_for,
    )
    certificate = notes.get(result.index)
    if output == "json":
        doc = result.to_dict()
        if certificate is not None:
            doc["certificate"] = certificate
        doc["tlog"] = entries.get(result.index)
        doc["tlogChecked"] = logs is not None
        emit_json(doc)
    else:
        uses_rego = any(p.suffix == ".rego" or p.is_dir() for p in policies)
        _print_text(result, source, mode, certificate, policy_query if uses_rego else None)
        click.echo(f"  - {tlog_summary(logs is not None)}")
        if result.index in entries:
            click.echo(f"    {tlog_line(entries[result.index])}")
