"""Build the in-toto Statement v1 carrying a SLSA Provenance v1 predicate.

The statement has exactly ``_type``, ``subject``, ``predicateType`` and ``predicate``:
cosign parses it with protojson, which rejects any other field. The predicate follows the
build type documented in docs/provenance.md (``BUILD_TYPE``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from attest_step import __version__
from attest_step.errors import UsageError
from attest_step.fileio import read_input_file
from attest_step.imageref import parse_image_ref
from attest_step.model import Subject

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://attest-step.dev/buildtypes/tekton-step/v1"
"""This project's build type; its specification is docs/provenance.md."""
DEFAULT_BUILDER_ID = "https://attest-step.dev/builders/tekton-step/v1"
"""Used when neither ``--builder-id`` nor ``ATTEST_BUILDER_ID`` is given; deployments should
set their own (SLSA: the builder id alone determines what the provenance is trusted for)."""

ParamValue = str | list[str] | dict[str, str]

_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s]+$")
_SCHEME_THEN_PORT = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[0-9]")
_HEX_LENGTHS = {"sha1": 40, "sha256": 64, "sha384": 96, "sha512": 128}
_GIT_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def _shown(value: str) -> str:
    return repr(value if len(value) <= 80 else value[:77] + "...")


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` and whole seconds, e.g. ``2024-05-01T12:00:00Z``."""
    if moment.tzinfo is None:
        raise ValueError("format_time needs an aware datetime")
    return moment.astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def parse_time(value: str, *, what: str) -> datetime:
    """Parse an RFC 3339 timestamp with ``Z`` or an offset; a UsageError otherwise."""
    text = value.strip()
    if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)", text):
        raise UsageError(
            f"{what}: {_shown(value)} is not an RFC 3339 time; give e.g. 2024-05-01T12:00:00Z"
        )
    # Python keeps at most microseconds; the extra precision is dropped.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text.replace("Z", "+00:00"))
    try:
        return datetime.fromisoformat(text)
    except ValueError as err:
        raise UsageError(f"{what}: {_shown(value)} is not a valid date and time") from err


def is_uri(value: str) -> bool:
    """True for an absolute URI: ``scheme:`` followed by at least one non-space character."""
    return _URI.fullmatch(value) is not None


def check_builder_id(value: str, *, what: str = "--builder-id") -> str:
    if not is_uri(value):
        raise UsageError(f"{what}: {_shown(value)} is not a URI; give e.g. https://example.com/b")
    return value


ARRAY_SUFFIX = "[]"
"""``--param NAME[]=VALUE`` appends to the array param NAME; ``--param NAME[]`` declares it."""


def parse_param(text: str, *, what: str = "--param") -> tuple[str, str | None]:
    """Split ``NAME=VALUE`` (the value may contain ``=`` or be empty).

    ``NAME[]=VALUE`` is an item of the array param NAME and ``NAME[]`` alone declares NAME an
    array (so that an empty array is recorded too): the name comes back with its ``[]`` and,
    for the declaration, the value None.
    """
    name, sep, value = text.partition("=")
    bare = name.removesuffix(ARRAY_SUFFIX)
    check_param_name(bare, what=what)
    if not sep:
        if bare != name:
            return name, None
        raise UsageError(
            f"{what}: {_shown(text)} has no '='; give it as NAME=VALUE (or NAME[]=ITEM for an "
            "array)"
        )
    return name, value


def check_param_name(name: str, *, what: str) -> None:
    if _PARAM_NAME.fullmatch(name) is None:
        raise UsageError(
            f"{what}: {_shown(name)} is not a Tekton param name "
            "(a letter or '_', then letters, digits, '_', '-' or '.')"
        )


def _param_value(value: object, name: str, what: str) -> ParamValue:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    if isinstance(value, dict) and all(
        isinstance(key, str) and isinstance(item, str) for key, item in value.items()
    ):
        return dict(value)
    raise UsageError(
        f"{what}: param {_shown(name)} must be a string, an array of strings or an object "
        "of strings, as Tekton params are"
    )


def load_params_file(path: Path) -> dict[str, ParamValue]:
    """Read a JSON object ``{name: string | [string] | {key: string}}``."""
    what = f"--params-file {path}"
    try:
        data = json.loads(read_input_file(path, "--params-file").decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UsageError(f"{what}: not valid JSON ({err}); give a JSON object") from err
    if not isinstance(data, dict):
        raise UsageError(f"{what}: the top level must be a JSON object of params")
    out: dict[str, ParamValue] = {}
    for name, value in data.items():
        check_param_name(name, what=what)
        out[name] = _param_value(value, name, what)
    return out


def merge_params(
    env_params: Mapping[str, str],
    file_params: Mapping[str, ParamValue],
    flag_params: Sequence[tuple[str, str | None]],
) -> dict[str, ParamValue]:
    """Params from env, then the params file, then ``--param`` flags; later sources win.

    The same string param twice among ``--param`` flags is a UsageError, and so is a name
    given both as a string and as an array (``NAME[]``); array items keep their order.
    """
    merged: dict[str, ParamValue] = {}
    for name, value in env_params.items():
        check_param_name(name, what=f"environment variable ATTEST_PARAM_{name}")
        merged[name] = value
    merged.update(file_params)
    strings: set[str] = set()
    arrays: dict[str, list[str]] = {}
    for flag_name, flag_value in flag_params:
        bare = flag_name.removesuffix(ARRAY_SUFFIX)
        if bare in strings or (bare == flag_name and bare in arrays):
            raise UsageError(f"--param: {bare!r} is given twice; give each param once")
        if bare == flag_name:
            strings.add(bare)
            merged[bare] = flag_value or ""
            continue
        items = arrays.setdefault(bare, [])
        if flag_value is not None:
            items.append(flag_value)
        merged[bare] = items
    return dict(sorted(merged.items()))


def parse_dependency(text: str, *, what: str = "--resolved-dependency") -> dict[str, Any]:
    """``URI@ALG:HEX`` -> a ResourceDescriptor ``{uri, digest: {alg: hex}}``.

    The last ``@`` separates the digest. A value without a URI scheme is read as an image
    reference (``registry/repo@sha256:HEX``) and recorded as ``oci://registry/repo``, as
    Tekton Chains records step images.
    """
    value = text.strip()
    uri, at, digest = value.rpartition("@")
    if not at or not uri:
        raise UsageError(f"{what}: {_shown(text)} has no '@'; give it as URI@ALG:HEX")
    alg, colon, hexpart = digest.partition(":")
    expected = _HEX_LENGTHS.get(alg)
    if not colon or expected is None:
        raise UsageError(
            f"{what}: {_shown(text)} has no digest algorithm among "
            f"{', '.join(sorted(_HEX_LENGTHS))}; give it as URI@ALG:HEX"
        )
    if re.fullmatch(rf"[0-9a-f]{{{expected}}}", hexpart) is None:
        raise UsageError(
            f"{what}: {_shown(text)}: a {alg} digest is {expected} lowercase hex digits"
        )
    if not is_uri(uri) or _SCHEME_THEN_PORT.match(uri):
        if alg != "sha256":
            raise UsageError(f"{what}: {_shown(text)}: an image reference needs a sha256 digest")
        ref = parse_image_ref(f"{uri}@{digest}", what=what)
        return {"uri": f"oci://{ref.name}", "digest": {"sha256": ref.hex}}
    return {"uri": uri, "digest": {alg: hexpart}}


DECLARED_ANNOTATION = "attest-step.dev/recorded"
_DECLARED_NAME = re.compile(
    r"task|pipeline|pipelineTask|stepAction/[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
)


def parse_declared_ref(text: str, *, what: str = "--declared-ref") -> dict[str, Any]:
    """``NAME=URI@ALG:HEX`` -> ``{name, uri, digest, annotations: {recorded: declared}}``.

    The Task, Pipeline or StepAction a run was resolved from, as the Pipeline author states it
    (a step cannot read the TaskRun's ``status.provenance.refSource``). NAME is one of Chains'
    names: ``task``, ``pipeline``, ``pipelineTask``, ``stepAction/<step>``; URI@ALG:HEX is
    read as ``--resolved-dependency`` reads it (a bundle ``REGISTRY/REPO@sha256:HEX`` becomes
    ``oci://REGISTRY/REPO``; a git resolver's ``git+https://HOST/REPO.git@sha1:HEX``).
    """
    name, eq, rest = text.strip().partition("=")
    if not eq or _DECLARED_NAME.fullmatch(name) is None:
        raise UsageError(
            f"{what}: {_shown(text)}: give NAME=URI@ALG:HEX, NAME one of task, pipeline, "
            "pipelineTask, stepAction/<step>"
        )
    descriptor = parse_dependency(rest, what=what)
    return {"name": name, **descriptor, "annotations": {DECLARED_ANNOTATION: "declared"}}


GIT_SOURCE_NAME = "inputs/result"


def git_dependency(
    url: str, commit: str, *, what: str = "--git-url/--git-commit"
) -> dict[str, Any]:
    """The source as Tekton Chains records ``CHAINS-GIT_URL``/``CHAINS-GIT_COMMIT``.

    ``uri`` is ``git+<url>`` ending in ``.git``; ``digest`` is ``{"sha1": <commit>}``;
    ``name`` is ``inputs/result``, the name Chains gives the source in SLSA v1.0, which
    policies written for Chains look up.
    """
    base = url.strip()
    sha = commit.strip().lower()
    if not base:
        raise UsageError(f"{what}: the git URL is empty; give the repository URL")
    if any(ch.isspace() for ch in base):
        raise UsageError(f"{what}: {_shown(url)} contains white space; give the repository URL")
    if _GIT_COMMIT.fullmatch(sha) is None:
        raise UsageError(f"{what}: commit {_shown(commit)} is not 40 hex digits (a SHA-1 commit)")
    if not base.startswith("git+"):
        base = f"git+{base}"
    if not base.endswith(".git"):
        base = f"{base}.git"
    return {"name": GIT_SOURCE_NAME, "uri": base, "digest": {"sha1": sha}}


def dedupe_descriptors(items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Drop exact duplicates, keeping the first occurrence and the order."""
    seen: set[str] = set()
    out: list[dict[str, Any]] = []
    for item in items:
        key = json.dumps(item, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(dict(item))
    return out


@dataclass(frozen=True)
class RunContext:
    """Identifiers of the Tekton run; each is None when unknown."""

    taskrun_name: str | None = None
    taskrun_uid: str | None = None
    namespace: str | None = None
    task_name: str | None = None
    pipelinerun_name: str | None = None
    pipelinerun_uid: str | None = None
    pipeline_name: str | None = None


@dataclass(frozen=True)
class ProvenanceInputs:
    """Everything the predicate is made of; the CLI gathers it from flags and env."""

    subjects: Sequence[Subject]
    finished_on: datetime
    builder_id: str = DEFAULT_BUILDER_ID
    params: Mapping[str, ParamValue] = field(default_factory=dict)
    run: RunContext = field(default_factory=RunContext)
    resolved_dependencies: Sequence[Mapping[str, Any]] = ()
    byproducts: Sequence[Mapping[str, Any]] = ()
    started_on: datetime | None = None
    invocation_id: str | None = None
    hashing: Mapping[str, Any] = field(default_factory=dict)


def _drop_none(data: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in data.items() if value is not None}


def _external_parameters(inputs: ProvenanceInputs) -> dict[str, Any]:
    external: dict[str, Any] = {"params": dict(inputs.params)}
    if inputs.run.task_name:
        external["task"] = {"name": inputs.run.task_name}
    if inputs.run.pipeline_name:
        external["pipeline"] = {"name": inputs.run.pipeline_name}
    return external


def _internal_parameters(inputs: ProvenanceInputs) -> dict[str, Any]:
    internal: dict[str, Any] = {}
    run = inputs.run
    tekton = _drop_none({"namespace": run.namespace})
    taskrun = _drop_none({"name": run.taskrun_name, "uid": run.taskrun_uid})
    pipelinerun = _drop_none({"name": run.pipelinerun_name, "uid": run.pipelinerun_uid})
    if taskrun:
        tekton["taskRun"] = taskrun
    if pipelinerun:
        tekton["pipelineRun"] = pipelinerun
    if tekton:
        internal["tekton"] = tekton
    if inputs.hashing:
        internal["hashing"] = dict(inputs.hashing)
    return internal


def subject_list(subjects: Sequence[Subject]) -> list[dict[str, Any]]:
    """Subjects as ResourceDescriptors, exact duplicates dropped; at least one is required."""
    if not subjects:
        raise UsageError(
            "nothing to attest: give --subject-path PATH or --image REF@sha256:HEX "
            "(or the IMAGE_URL/IMAGE_DIGEST or IMAGES environment variables)"
        )
    return dedupe_descriptors([subject.to_dict() for subject in subjects])


def build_predicate(inputs: ProvenanceInputs) -> dict[str, Any]:
    """The SLSA Provenance v1 predicate of build type ``BUILD_TYPE``."""
    build_definition: dict[str, Any] = {
        "buildType": BUILD_TYPE,
        "externalParameters": _external_parameters(inputs),
    }
    internal = _internal_parameters(inputs)
    if internal:
        build_definition["internalParameters"] = internal
    dependencies = dedupe_descriptors(inputs.resolved_dependencies)
    if dependencies:
        build_definition["resolvedDependencies"] = dependencies

    metadata: dict[str, Any] = {}
    invocation = inputs.invocation_id or inputs.run.taskrun_uid
    if invocation:
        metadata["invocationId"] = invocation
    if inputs.started_on is not None:
        metadata["startedOn"] = format_time(inputs.started_on)
    metadata["finishedOn"] = format_time(inputs.finished_on)

    run_details: dict[str, Any] = {
        "builder": {
            "id": check_builder_id(inputs.builder_id),
            "version": {"attest-step": __version__},
        },
        "metadata": metadata,
    }
    if inputs.byproducts:
        run_details["byproducts"] = [dict(item) for item in inputs.byproducts]
    return {"buildDefinition": build_definition, "runDetails": run_details}


def build_statement(inputs: ProvenanceInputs) -> dict[str, Any]:
    """The in-toto Statement v1 with exactly the four fields cosign accepts."""
    return {
        "_type": STATEMENT_TYPE,
        "subject": subject_list(inputs.subjects),
        "predicateType": SLSA_PROVENANCE_V1,
        "predicate": build_predicate(inputs),
    }


def serialize_statement(statement: Mapping[str, Any]) -> bytes:
    """Compact, key-sorted UTF-8 JSON: the DSSE payload."""
    return json.dumps(statement, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )
