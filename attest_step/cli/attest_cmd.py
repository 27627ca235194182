"""``attest-step attest``: write, sign and store SLSA v1 provenance as a DSSE envelope."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from attest_step.cli.common import emit_json, spool_then_push
from attest_step.cli.early import early_work
from attest_step.cli.options import bundle_option, exclude_option, output_option
from attest_step.errors import UsageError
from attest_step.fileio import write_output_file
from attest_step.imageref import ImageRef
from attest_step.model import Subject
from attest_step.oci.options import RegistryOptions, registry_options
from attest_step.provenance import (
    DEFAULT_BUILDER_ID,
    SLSA_PROVENANCE_V1,
    ProvenanceInputs,
    build_statement,
    check_builder_id,
    git_dependency,
    load_params_file,
    merge_params,
    parse_declared_ref,
    parse_dependency,
    parse_param,
    parse_time,
    serialize_statement,
    subject_list,
)
from attest_step.tekton_env import (
    ENV_STARTED_ON,
    TektonContext,
    read_context,
    steps_prepared_time,
)
from attest_step.tlog.options import NO_TLOG, TlogOptions, bundle_layout, tlog_options

ATTESTATION_RESULT = "ATTESTATION"
"""Tekton result ``{uri, digest}`` naming the stored attestation. Deliberately no Chains type
hint (no ``*ARTIFACT_OUTPUTS`` suffix): Chains would try to store and sign it as a subject."""

_PATH = click.Path(path_type=Path)


def _image_refs(ctx: TektonContext, images: Sequence[str]) -> list[ImageRef]:
    from attest_step.subjects import image_refs  # noqa: PLC0415 - lazy, per verb

    return image_refs(images, ctx.image_url, ctx.image_digest, ctx.images)


def _hashed_subjects(
    subject_paths: Sequence[Path], excludes: Sequence[str], dir_digest: bool
) -> list[Subject]:
    if not subject_paths:
        return []
    from attest_step.hashing import hash_paths  # noqa: PLC0415

    return hash_paths(subject_paths, excludes=excludes, dir_digest=dir_digest)


def _dependencies(
    ctx: TektonContext,
    git_url: str | None,
    git_commit: str | None,
    given: Sequence[str],
    declared_refs: Sequence[str] = (),
) -> list[dict[str, Any]]:
    url = git_url or ctx.git_url
    commit = git_commit or ctx.git_commit
    deps: list[dict[str, Any]] = []
    if (url is None) != (commit is None):
        raise UsageError(
            "--git-url and --git-commit (or CHAINS-GIT_URL and CHAINS-GIT_COMMIT) "
            "go together; give both or neither"
        )
    if url is not None and commit is not None:
        deps.append(git_dependency(url, commit))
    deps.extend(parse_dependency(item) for item in given)
    deps.extend(
        parse_dependency(item, what="ATTEST_RESOLVED_DEPENDENCIES")
        for item in ctx.resolved_dependencies
    )
    if declared_refs:  # the flags win over the environment
        deps.extend(parse_declared_ref(item) for item in declared_refs)
    else:
        what = "ATTEST_DECLARED_REFS"
        deps.extend(parse_declared_ref(item, what=what) for item in ctx.declared_refs)
    return deps


def _started_on(flag: str | None, ctx: TektonContext) -> datetime | None:
    if flag is not None:
        return parse_time(flag, what="--started-on")
    if ctx.started_on is not None:
        return parse_time(ctx.started_on, what=ENV_STARTED_ON)
    return steps_prepared_time()


def _spool(
    directory: Path,
    envelope: bytes,
    refs: Sequence[ImageRef],
    public_pem: bytes,
    tlog: TlogOptions = NO_TLOG,
) -> None:
    from attest_step.oci.spool import write_attestation  # noqa: PLC0415

    for ref in refs:
        blob = write_attestation(
            directory, envelope, ref, SLSA_PROVENANCE_V1, public_key_pem=public_pem
        )
        if tlog.enabled:  # tlog hook: logged at push time, from the spool
            from attest_step.tlog.spool import prepare  # noqa: PLC0415

            record = blob.with_name(blob.name.removesuffix(".dsse.json") + ".oci.json")
            prepare(record, public_pem, str(tlog.rekor_url))


def _upload(
    envelope: bytes,
    refs: Sequence[ImageRef],
    public_pem: bytes,
    spool_dir: Path | None,
    registry: RegistryOptions,
    *,
    tlog: TlogOptions = NO_TLOG,
) -> list[dict[str, Any]]:
    """Spool the envelope for every image on disk first, then push the spool."""
    from attest_step.oci.upload import push_spool  # noqa: PLC0415

    with spool_then_push(spool_dir, "signed attestation") as directory:
        _spool(directory, envelope, refs, public_pem, tlog)
        return push_spool(directory, registry, tlog)


def _log_file(
    envelope_bytes: bytes,
    public_pem: bytes,
    paths: tuple[Path, Path],
    spool_dir: Path | None,
    tlog: TlogOptions,
) -> dict[str, Any]:
    """An envelope written only to a file (``paths``: it and its bundle): logged, then its
    Sigstore bundle written (as ``cosign attest-blob --bundle``); without a log, the bundle
    has no entry."""
    from attest_step.tlog import filelog  # noqa: PLC0415

    output_file, bundle = paths
    if not tlog.enabled:
        filelog.write_bundle(bundle, json.loads(envelope_bytes), public_pem, [])
        return {
            "kind": "file-attestation",
            "bundle": str(bundle.absolute()),
            "status": "not logged",
        }
    what = f"signed attestation (on disk in {output_file})"
    with spool_then_push(spool_dir, what) as directory:
        sidecar = filelog.spool_file_envelope(
            directory, envelope_bytes, public_pem, str(tlog.rekor_url), bundle
        )
        return filelog.log_file_envelope(sidecar, tlog)


def _check_bundle_flags(
    bundle: Path | None, output_file: Path | None, refs: Sequence[ImageRef], tlog: TlogOptions
) -> None:
    if bundle is None:
        if tlog.enabled and output_file is not None and not refs:
            raise UsageError(
                "--rekor-url with --output-file and no --image: give --bundle FILE for the "
                "Sigstore bundle that carries the log's entry (as cosign attest-blob --bundle)"
            )
        return
    if refs:
        raise UsageError(
            "--bundle is for an attestation written only to a file; with --image the bundle "
            "is stored beside the image: drop --bundle"
        )
    if output_file is None:
        raise UsageError("--bundle needs --output-file: the envelope is written there first")
    if bundle.absolute() == output_file.absolute():
        raise UsageError("--bundle and --output-file name the same file; give two paths")


def _stored_ref(
    records: Sequence[dict[str, Any]], output_file: Path | None, envelope_digest: str
) -> dict[str, str] | None:
    """Where the attestation is stored, as ``{uri, digest}``.

    A registry upload gives the bare repository and the digest of the manifest holding the
    envelope (the Sigstore bundle's manifest first, else the ``.att`` manifest), so
    ``uri@digest`` is an immutable reference. An OCI layout's bundle gives the layout and
    that manifest's digest the same way. Otherwise ``uri`` is the location (the layout's
    ``.att`` tag, else the output file's absolute path) and ``digest`` the envelope's own.
    """
    for layout in ("bundle", "tag"):
        for record in records:
            digest = record.get("manifestDigest")
            image = record.get("image")
            if record.get("layout") == layout and isinstance(digest, str) and image:
                return {"uri": str(image).split("@", 1)[0], "digest": digest}
    for record in records:
        location = record.get("location")
        if isinstance(location, str) and "@sha256:" in location:
            uri, digest = location.rsplit("@", 1)
            return {"uri": uri, "digest": digest}
    for record in records:
        location = record.get("location")
        if isinstance(location, str) and location:
            return {"uri": location, "digest": envelope_digest}
    if output_file is not None:
        return {"uri": str(output_file.resolve()), "digest": envelope_digest}
    return None


@click.command("attest")
@click.option(
    "--key",
    required=True,
    help="Signing key: cosign key file, mounted cosign Secret directory, PKCS#8 PEM or KMS URI.",
)
@click.option(
    "--subject-path",
    "subject_paths",
    multiple=True,
    type=_PATH,
    help="File or directory to hash into subjects (repeatable).",
)
@click.option(
    "--dir-digest", is_flag=True, help="One subject per directory instead of one per file."
)
@exclude_option
@click.option(
    "--image",
    "images",
    multiple=True,
    help="Image subject REPOSITORY@sha256:HEX (repeatable); also IMAGE_URL/IMAGE_DIGEST, IMAGES.",
)
@click.option(
    "--param", "params", multiple=True, help="Task param NAME=VALUE (repeatable; wins over env)."
)
@click.option(
    "--params-file", type=_PATH, help="JSON object of Task params (wins over ATTEST_PARAM_*)."
)
@click.option("--git-url", help="Source repository URL (default: env CHAINS-GIT_URL).")
@click.option("--git-commit", help="Source commit SHA-1 (default: env CHAINS-GIT_COMMIT).")
@click.option(
    "--resolved-dependency",
    "--material",
    "dependencies",
    multiple=True,
    help="Input URI@ALG:HEX, or an image REPOSITORY@sha256:HEX (repeatable).",
)
@click.option(
    "--declared-ref",
    "declared_refs",
    multiple=True,
    help="The Task/Pipeline/StepAction ref the run came from, NAME=URI@ALG:HEX (NAME: task, "
    "pipeline, pipelineTask or stepAction/STEP), recorded as declared (repeatable; "
    "default: env ATTEST_DECLARED_REFS).",
)
@click.option(
    "--builder-id",
    help=f"builder.id URI (default: env ATTEST_BUILDER_ID, else {DEFAULT_BUILDER_ID}).",
)
@click.option("--invocation-id", help="Invocation id (default: env TEKTON_TASKRUN_UID).")
@click.option("--started-on", help="RFC 3339 start time (default: env ATTEST_STARTED_ON).")
@click.option("--finished-on", help="RFC 3339 finish time (default: now).")
@click.option(
    "--network-evidence",
    "network_evidence",
    multiple=True,
    type=_PATH,
    help=(
        "Evidence file from 'attest-step run' (observed) or "
        "'attest-step probe --evidence-file' (reported); repeatable."
    ),
)
@click.option(
    "--evidence-dir",
    type=_PATH,
    help="The evidence volume 'attest-step run --evidence-dir' wrote to (its mount point): "
    "complete records there are the only ones labelled observed.",
)
@click.option(
    "--declare-hermetic",
    "declared_hermetic",
    multiple=True,
    metavar="STEP[/run|/tekton][:PARAM=VALUE]",
    help="A step the Task declares hermetic, how, and under which param value (repeatable; "
    "see docs/hermetic.md).",
)
@click.option(
    "--task-step",
    "task_steps",
    multiple=True,
    metavar="STEP",
    help="A step of the Task (repeatable); default: the steps Tekton lists in /tekton/steps.",
)
@click.option(
    "--observe-self-as",
    metavar="STEP",
    help="Also record the network this attest step itself sees, as step STEP.",
)
@click.option(
    "--output-file", type=_PATH, help="Write the DSSE envelope here (else to standard output)."
)
@bundle_option(
    "With --output-file and no --image: also write the Sigstore bundle (the envelope and, "
    "with --rekor-url, the log's entry) here, for verify-attestation --bundle and cosign "
    "verify-blob-attestation --bundle. Required when the envelope is logged."
)
@click.option("--no-upload", is_flag=True, help="Do not push the attestation to the registry.")
@click.option(
    "--spool-dir",
    type=_PATH,
    help="Keep the signed output for 'attest-step push --from DIR' here before pushing.",
)
@click.option(
    "--results-dir",
    type=_PATH,
    help=f"Tekton results directory: write the {ATTESTATION_RESULT} result there.",
)
@click.option(
    "--attestation-result",
    type=_PATH,
    help=f"Path of the {ATTESTATION_RESULT} result file, e.g. $(step.results.X.path).",
)
@registry_options
@tlog_options
@output_option
def attest_command(
    *,
    key: str,
    subject_paths: tuple[Path, ...],
    dir_digest: bool,
    excludes: tuple[str, ...],
    images: tuple[str, ...],
    params: tuple[str, ...],
    params_file: Path | None,
    git_url: str | None,
    git_commit: str | None,
    dependencies: tuple[str, ...],
    declared_refs: tuple[str, ...],
    builder_id: str | None,
    invocation_id: str | None,
    started_on: str | None,
    finished_on: str | None,
    network_evidence: tuple[Path, ...],
    evidence_dir: Path | None,
    declared_hermetic: tuple[str, ...],
    task_steps: tuple[str, ...],
    observe_self_as: str | None,
    output_file: Path | None,
    no_upload: bool,
    spool_dir: Path | None,
    results_dir: Path | None,
    attestation_result: Path | None,
    registry: RegistryOptions,
    tlog: TlogOptions,
    output: str,
    bundle: Path | None,
) -> None:
    """Write SLSA v1 provenance for what the build produced, sign it as DSSE and store it.

    Subjects come from --subject-path (hashed here) and from --image and the IMAGE_URL,
    IMAGE_DIGEST and IMAGES environment variables (digests as reported by the build).
    Flags win over the environment; docs/provenance.md lists every variable.
    """
    ctx = read_context(os.environ)
    result_paths = [p for p in (attestation_result,) if p is not None]
    if results_dir is not None:
        result_paths.append(results_dir / ATTESTATION_RESULT)

    # Cheap checks of every input first, so a usage error never waits for hashing or a key.
    refs = _image_refs(ctx, images)
    registry = bundle_layout(registry, tlog.enabled)
    _check_bundle_flags(bundle, output_file, refs, tlog)
    if not subject_paths:
        if excludes or dir_digest:
            raise UsageError("--exclude and --dir-digest apply to --subject-path; give a path")
        if not refs:
            subject_list([])
    if result_paths and output_file is None and (not refs or no_upload):
        raise UsageError(
            f"the {ATTESTATION_RESULT} result needs a stored attestation; "
            "give --output-file or upload it with --image"
        )
    file_params = load_params_file(params_file) if params_file is not None else {}
    merged = merge_params(ctx.params, file_params, [parse_param(p) for p in params])
    deps = _dependencies(ctx, git_url, git_commit, dependencies, declared_refs)
    checked_builder_id = check_builder_id(
        builder_id or ctx.builder_id or DEFAULT_BUILDER_ID,
        what="--builder-id" if builder_id else "ATTEST_BUILDER_ID",
    )
    started = _started_on(started_on, ctx)
    finished = parse_time(finished_on, what="--finished-on") if finished_on else None
    from attest_step.hermetic import declare  # noqa: PLC0415

    evaluated = declare.evaluate(
        declared_hermetic, merged, declare.task_steps(task_steps) if declared_hermetic else None
    )

    from attest_step.keys.load import load_signer  # noqa: PLC0415

    # scrypt started by attest_step.cli.main before click loaded, if it could be.
    kdf = early_work().kdf
    signer = load_signer(key, kdf=kdf)
    if tlog.enabled:
        from attest_step.tlog.spool import check_signer_key  # noqa: PLC0415

        check_signer_key(signer.public_key_pem())
    if kdf is not None:
        kdf.wait()  # no thread left: hashing forks its workers only from a single thread
    subjects = _hashed_subjects(subject_paths, excludes, dir_digest)
    subjects.extend(Subject(ref.name, {"sha256": ref.hex}) for ref in refs)
    byproducts: list[dict[str, Any]] = []
    if network_evidence or evidence_dir or declared_hermetic or observe_self_as:
        from attest_step.hermetic.record import isolation_byproducts  # noqa: PLC0415

        byproducts = isolation_byproducts(
            evaluated,
            evidence_files=network_evidence,
            evidence_dir=evidence_dir,
            observe_self_as=observe_self_as,
        )
    hashing: dict[str, Any] = {}
    if subject_paths:
        hashing = {"dirDigest": dir_digest, "excludes": list(excludes)}
    inputs = ProvenanceInputs(
        subjects=subjects,
        finished_on=finished or datetime.now(UTC),
        builder_id=checked_builder_id,
        params=merged,
        run=ctx,
        resolved_dependencies=deps,
        byproducts=byproducts,
        started_on=started,
        invocation_id=invocation_id,
        hashing=hashing,
    )
    statement = build_statement(inputs)

    from attest_step.dsse import sign_envelope  # noqa: PLC0415

    envelope = sign_envelope(serialize_statement(statement), signer)
    envelope_bytes = json.dumps(envelope, separators=(",", ":")).encode("utf-8")
    envelope_digest = "sha256:" + hashlib.sha256(envelope_bytes).hexdigest()

    if output_file is not None:
        write_output_file(output_file, envelope_bytes, "--output-file", make_parents=True)
    uploads: list[dict[str, Any]] = []
    if bundle is not None and output_file is not None:
        uploads.append(
            _log_file(
                envelope_bytes,
                signer.public_key_pem(),
                (output_file, bundle),
                spool_dir,
                tlog,
            )
        )
    elif refs and not no_upload:
        uploads = _upload(
            envelope_bytes, refs, signer.public_key_pem(), spool_dir, registry, tlog=tlog
        )
    elif refs and spool_dir is not None:
        _spool(spool_dir, envelope_bytes, refs, signer.public_key_pem(), tlog)

    attestation_ref: dict[str, str] | None = None
    if result_paths:
        attestation_ref = _stored_ref(uploads, output_file, envelope_digest)
        if attestation_ref is None:
            raise UsageError(
                f"the {ATTESTATION_RESULT} result needs a stored attestation; "
                "give --output-file or upload it with --image"
            )
        for path in result_paths:
            data = json.dumps(attestation_ref, separators=(",", ":")).encode()
            write_output_file(path, data, "result", make_parents=True)

    stored = output_file is not None or bool(uploads)
    if output == "json":
        summary: dict[str, Any] = {
            "predicateType": SLSA_PROVENANCE_V1,
            "subjects": statement["subject"],
            "envelopeDigest": envelope_digest,
            "outputFile": str(output_file) if output_file is not None else None,
            "uploads": uploads,
            "attestation": attestation_ref,
        }
        if not stored:
            summary["envelope"] = envelope
        emit_json(summary)
        return
    if not stored:
        click.echo(envelope_bytes.decode("utf-8"))
    count = len(statement["subject"])
    where = [str(output_file)] if output_file is not None else []
    where += [str(ref) for ref in refs] if uploads and refs else []
    if bundle is not None:
        logged = uploads[0].get("logIndex")
        where.append(
            f"{bundle} ({'log index ' + str(logged) if logged is not None else 'not logged'})"
        )
    click.echo(
        f"attested {count} subject(s), envelope {envelope_digest}"
        + (f", stored in {', '.join(where)}" if where else ""),
        err=True,
    )
