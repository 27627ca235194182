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
from attest_step.fileio import read_input_file
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
_LIST_RULES = tuple(k for k, v in POLICY_SCHEMA["properties"].items() if v is _STRINGS)
_NOT_RULES = frozenset({"apiVersion", "kind"})
_SHOWN = 120  # characters of a value quoted in a message


class _Duplicate(ValueError):
    def __init__(self, key: object, line: int | None) -> None:
        super().__init__(key, line)
        self.key = key
        self.line = line


class _PolicyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, stricter: a duplicate mapping key or an alias is an error.

    YAML keeps the last of two equal keys, so ``requireHermetic: true`` followed further down
    by ``requireHermetic: false`` would silently weaken the policy. Aliases (``*name``) are
    refused because a policy never needs them and they multiply the work of what reads the
    document (the "billion laughs" pattern).
    """

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in a policy", mark
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key ([a]: 1): the base class reports it
                break
            if duplicate:
                raise _Duplicate(key, key_node.start_mark.line + 1)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _json_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Duplicate(key, None)
        out[key] = value
    return out


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _parse(data: bytes, path: Path) -> Any:
    """The document in ``data``: JSON for a ``.json`` file, YAML otherwise."""
    what = f"--policy {path}"
    try:
        if path.suffix.lower() == ".json":
            return json.loads(data, object_pairs_hook=_json_pairs)
        return yaml.load(data, Loader=_PolicyLoader)  # noqa: S506 - a SafeLoader subclass
    except _Duplicate as err:
        where = f" (line {err.line})" if err.line is not None else ""
        raise UsageError(
            f"{what}: the key {_shown(err.key)} appears twice in one mapping{where}; "
            "keep one, since which one wins would be a guess"
        ) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None)
        detail = f" ({problem})" if problem else ""
        raise UsageError(f"{what}: not valid YAML{line}{detail}; fix the syntax") from None
    except json.JSONDecodeError as err:
        raise UsageError(
            f"{what}: not valid JSON at line {err.lineno} ({err.msg}); fix the syntax"
        ) from None
    except UnicodeDecodeError:
        raise UsageError(f"{what}: not UTF-8 text; save it as UTF-8") from None
    except RecursionError:
        raise UsageError(f"{what}: nested too deeply to be a policy; fix the file") from None


def _says_nothing(data: bytes) -> bool:
    """Only blank lines and ``#`` comments (YAML itself stumbles on a lone tab)."""
    return all(not line.strip() or line.lstrip().startswith(b"#") for line in data.splitlines())


def _check_list_items(loaded: dict[Any, Any], path: Path) -> None:
    """Lists of rules hold strings: checked before the schema, whose uniqueItems check is
    quadratic for anything that does not sort (0.5 MB of ``[{a: 1}, ...]`` took minutes)."""
    for key in _LIST_RULES:
        value = loaded.get(key)
        if not isinstance(value, list):
            continue
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise UsageError(
                    f"--policy {path}: {key}/{index}: {_shown(item)} is not a string; "
                    "see docs/hermetic.md 'Policy file'"
                )


def load_policy(path: Path) -> dict[str, Any]:
    """Load and validate a policy file (YAML, or JSON when it is named ``*.json``).

    Refused with a one-line UsageError: a file that is not a small regular file, bad syntax,
    a key given twice in one mapping, an alias, a schema violation, and a policy with no
    rules (an empty file, only comments, or only ``apiVersion``/``kind``).
    """
    path = Path(path)
    data = read_input_file(path, "--policy", limit=MAX_POLICY_BYTES)
    loaded = None if _says_nothing(data) else _parse(data, path)
    if isinstance(loaded, dict):
        _check_list_items(loaded, path)
    if loaded is not None:
        validator = jsonschema.Draft202012Validator(POLICY_SCHEMA)
        errors = sorted(
            validator.iter_errors(loaded), key=lambda e: [str(p) for p in e.absolute_path]
        )
        if errors:
            first = errors[0]
            field = "/".join(str(p) for p in first.absolute_path) or "(top level)"
            message = first.message
            if len(message) > _SHOWN:
                message = message[: _SHOWN - 3] + "..."
            raise UsageError(
                f"--policy {path}: {field}: {message}; see docs/hermetic.md 'Policy file'"
            )
    if loaded is None or not set(loaded) - _NOT_RULES:
        raise UsageError(
            f"--policy {path}: the policy has no rules (the file is empty, only comments, or "
            "only apiVersion/kind); write at least one rule, see docs/hermetic.md 'Policy file'"
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
