"""Deploy-time policy over a verified provenance statement.

A policy file is YAML or JSON, validated against ``POLICY_SCHEMA`` (JSON Schema 2020-12)::

    requireHermetic: true               # every network-isolation record says hermetic
    requireObservedIsolation: false     # ... and attest-step's own code observed isolation
    hermeticSteps: [build]              # these steps must have a hermetic record
    allowedBuilderIds: [https://attest-step.dev/builders/tekton-step/v1]
    allowedSourceRepos: [https://github.com/example/app]
    deniedBuildToolImages:              # digests, exact refs or name prefixes
      - sha256:0123...                  #   any dependency with this sha256
      - docker.io/library/golang:1.20   #   a name prefix (oci:// is ignored)
    requiredPredicateType: https://slsa.dev/provenance/v1

See docs/hermetic.md, "Policy file".
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from attest_step.errors import UsageError
from attest_step.fileio import read_small_file
from attest_step.hermetic.record import ISOLATION_MEDIA_TYPE, decode_content

_STRINGS = {"type": "array", "items": {"type": "string", "minLength": 1}, "uniqueItems": True}
POLICY_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "attest-step policy v1",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "attest-step.dev/v1"},
        "kind": {"const": "Policy"},
        "requireHermetic": {"type": "boolean"},
        "requireObservedIsolation": {"type": "boolean"},
        "hermeticSteps": _STRINGS,
        "allowedBuilderIds": _STRINGS,
        "allowedSourceRepos": _STRINGS,
        "deniedBuildToolImages": _STRINGS,
        "requiredPredicateType": {"type": "string", "minLength": 1},
    },
}
MAX_POLICY_BYTES = 1024 * 1024


def load_policy(path: Path) -> dict[str, Any]:
    """Load and validate a policy file (YAML or JSON)."""
    try:
        data = read_small_file(Path(path), "--policy", limit=MAX_POLICY_BYTES)
    except OSError as err:
        raise UsageError(
            f"--policy {path}: cannot read it ({err.strerror}); check the path"
        ) from err
    if len(data) > MAX_POLICY_BYTES:
        raise UsageError(f"--policy {path}: larger than {MAX_POLICY_BYTES} bytes")
    try:
        loaded = yaml.safe_load(data) if data.strip() else {}
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise UsageError(f"--policy {path}: not valid YAML or JSON{line}; fix the syntax") from err
    validator = jsonschema.Draft202012Validator(POLICY_SCHEMA)
    errors = sorted(validator.iter_errors(loaded), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        field = "/".join(str(p) for p in first.absolute_path) or "(top level)"
        raise UsageError(
            f"--policy {path}: {field}: {first.message}; see docs/hermetic.md 'Policy file'"
        )
    return dict(loaded)


def _predicate(statement: Mapping[str, Any]) -> Mapping[str, Any]:
    predicate = statement.get("predicate")
    return predicate if isinstance(predicate, Mapping) else {}


def _section(mapping: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = mapping.get(key)
    return value if isinstance(value, Mapping) else {}


def _descriptors(value: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(value, list):
        yield from (item for item in value if isinstance(item, Mapping))


def _dependencies(statement: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    predicate = _predicate(statement)
    build = _section(predicate, "buildDefinition")
    builder = _section(_section(predicate, "runDetails"), "builder")
    return [
        *_descriptors(build.get("resolvedDependencies")),
        *_descriptors(builder.get("builderDependencies")),
    ]


def normalize_repo(uri: str) -> str:
    """``git+https://Host/org/repo.git@refs/x`` -> ``https://host/org/repo``."""
    text = uri.strip().removeprefix("git+")
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    host, slash, path = rest.partition("/")
    path = path.split("@", 1)[0].rstrip("/").removesuffix(".git")
    return f"{scheme}{sep}{host.lower()}{slash}{path}".rstrip("/")


def _is_git(uri: str) -> bool:
    return uri.startswith(("git+", "git://", "ssh://")) or uri.endswith(".git")


def _image_name(uri: str) -> str:
    for prefix in ("oci://", "docker://", "pkg:oci/"):
        uri = uri.removeprefix(prefix)
    return uri


def _denied_match(rule: str, dep: Mapping[str, Any]) -> bool:
    digests = dep.get("digest") if isinstance(dep.get("digest"), Mapping) else {}
    assert isinstance(digests, Mapping)
    uri = _image_name(str(dep.get("uri") or dep.get("name") or ""))
    if rule.startswith("sha256:") and "/" not in rule:
        return digests.get("sha256") == rule.removeprefix("sha256:")
    name, at, digest = rule.partition("@")
    if at:
        algorithm, _, hexpart = digest.partition(":")
        return uri.split("@", 1)[0] == _image_name(name) and digests.get(algorithm) == hexpart
    return bool(uri) and uri.startswith(_image_name(rule))


def _isolation_records(statement: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    run_details = _section(_predicate(statement), "runDetails")
    return [
        item
        for item in _descriptors(run_details.get("byproducts"))
        if item.get("mediaType") == ISOLATION_MEDIA_TYPE
    ]


def _hermetic_violations(statement: Mapping[str, Any], policy: Mapping[str, Any]) -> list[str]:
    records = [
        item
        for item in _isolation_records(statement)
        if _section(item, "annotations").get("role") != "attest"
    ]
    required_steps = list(policy.get("hermeticSteps") or [])
    wants = policy.get("requireHermetic") or policy.get("requireObservedIsolation")
    if not wants and not required_steps:
        return []
    if not records:
        return ["requireHermetic: the provenance has no network-isolation record of a build step"]
    out: list[str] = []
    seen: dict[str, bool] = {}
    for item in records:
        annotations = _section(item, "annotations")
        step = str(annotations.get("step") or str(item.get("name", "?")).rsplit("/", 1)[-1])
        content = decode_content(item)
        if content is None or content.get("hermetic") is not annotations.get("hermetic"):
            out.append(f"step {step}: network-isolation record content and summary disagree")
            seen[step] = False
            continue
        hermetic = annotations.get("hermetic") is True
        seen[step] = hermetic
        if wants and not hermetic:
            all_reasons = [str(r) for r in content.get("reasons") or []] or ["no reason given"]
            reasons = "; ".join(all_reasons[:3])
            if len(all_reasons) > 3:
                reasons += f"; and {len(all_reasons) - 3} more"
            out.append(f"step {step}: not recorded as network-isolated ({reasons})")
        elif policy.get("requireObservedIsolation") and not annotations.get("observedIsolation"):
            out.append(
                f"step {step}: no isolation observed by attest-step's own code (only declared "
                "or reported)"
            )
    out.extend(
        f"hermeticSteps: step {step} has no hermetic network-isolation record"
        for step in required_steps
        if not seen.get(step)
    )
    return out


def evaluate_policy(statement: Mapping[str, Any], policy: Mapping[str, Any]) -> list[str]:
    """Violations, one sentence each; empty when the statement satisfies the policy."""
    violations: list[str] = []
    predicate_type = policy.get("requiredPredicateType")
    if predicate_type and statement.get("predicateType") != predicate_type:
        violations.append(
            f"predicateType is {statement.get('predicateType')!r}, policy requires "
            f"{predicate_type!r}"
        )
    builder_ids = policy.get("allowedBuilderIds")
    if builder_ids:
        builder = _section(_section(_predicate(statement), "runDetails"), "builder")
        if builder.get("id") not in builder_ids:
            violations.append(f"builder.id {builder.get('id')!r} is not in allowedBuilderIds")
    dependencies = _dependencies(statement)
    repos = policy.get("allowedSourceRepos")
    if repos:
        allowed = {normalize_repo(repo) for repo in repos}
        sources = [str(d.get("uri")) for d in dependencies if _is_git(str(d.get("uri") or ""))]
        if not sources:
            violations.append("allowedSourceRepos: no git source among resolvedDependencies")
        violations.extend(
            f"source {uri} is not in allowedSourceRepos"
            for uri in sources
            if normalize_repo(uri) not in allowed
        )
    for rule in policy.get("deniedBuildToolImages") or []:
        for dep in dependencies:
            if _denied_match(rule, dep):
                shown = dep.get("uri") or dep.get("name")
                violations.append(f"dependency {shown} matches deniedBuildToolImages entry {rule}")
    violations.extend(_hermetic_violations(statement, policy))
    return violations


def policy_json(policy: Mapping[str, Any]) -> str:
    """The policy as canonical JSON (for logs and reports)."""
    return json.dumps(policy, sort_keys=True)
