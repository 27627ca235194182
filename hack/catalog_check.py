#!/usr/bin/env python3
"""Catalog checks: catlin validate's rules that matter, plus our hardening rules.

catlin cannot run here (it is not on the Go module proxy, it fetches the Hub category list
over HTTP and it rejects StepActions), so this mirrors its rules and adds ours:

layout      catalog/<task|stepaction|pipeline>/<name>/<X.Y>/<name>.yaml, README.md, samples/, tests/
metadata    app.kubernetes.io/version = directory version; tekton.dev/pipelines.minVersion,
            categories (catalog/.hub/config.yaml), tags, displayName, platforms; description
image       every step image is registry/name:tag@sha256:<64 hex> (not :latest); a $(params.X)
            image needs a pinned default; our own image is one single reference everywhere
script      no $(params...) inside a script (params reach scripts through env or args)
security    every step has a securityContext meeting Pod Security "restricted", except the
            documented exceptions (EXCEPTIONS), which must still state what they relax
resources   every step has computeResources (cpu and memory requests, a memory limit)
secrets     only the attest step mounts a Secret volume; no step takes Secrets through env

Usage: hack/catalog_check.py [--root DIR] [PATH...]   (PATH: files or directories; default catalog/)
Prints one line per problem, "FILE: RESOURCE: message", and exits 1 when there is any.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
KINDS = {"task": "Task", "stepaction": "StepAction", "pipeline": "Pipeline"}
VERSION_RE = re.compile(r"^[0-9]+\.[0-9]+$")
PLATFORM_RE = re.compile(r"^[a-z0-9]+/[a-z0-9]+$")
PINNED_RE = re.compile(
    r"^(?P<registry>[a-z0-9.-]+\.[a-z0-9.-]+(:[0-9]+)?)/(?P<path>[a-z0-9._/-]+)"
    r":(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})@sha256:[0-9a-f]{64}$"
)
PARAM_REF_RE = re.compile(r"^\$\(params\.([A-Za-z0-9_.-]+)\)$")
OWN_IMAGE_PREFIX = "ghcr.io/attest-step/attest-step:"
MIN_VERSION = "1.0.0"
# The StepAction that signs; only a step referring to it may see the signing Secret.
SIGNING_STEPACTION = "attest"

# (resource kind/name, step name) -> what the step relaxes and why. Documented in docs/catalog.md.
EXCEPTIONS: dict[tuple[str, str], dict[str, str]] = {
    ("Task/kaniko-chains", "build-and-push"): {
        "runAsNonRoot": "kaniko unpacks base images and runs RUN instructions as root",
        "runAsUser": "kaniko runs as uid 0",
        "capabilities": "kaniko needs root's default capabilities (chown, setuid, ...)",
        "readOnlyRootFilesystem": "kaniko writes the image's filesystem into its own root",
    },
    ("Task/hermetic-build", "build"): {
        "seccompProfile": "user and network namespaces (TEKTON_HERMETIC, attest-step run) "
        "are refused by the RuntimeDefault profile",
    },
    ("Task/hermetic-image", "build"): {
        "seccompProfile": "user and network namespaces (attest-step run) are refused by the "
        "RuntimeDefault profile",
    },
    ("Task/hermetic-image", "assemble"): {
        "seccompProfile": "user and network namespaces (attest-step run) are refused by the "
        "RuntimeDefault profile",
    },
}


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    resources: int = 0
    steps: int = 0

    def add(self, file: Path, what: str, message: str) -> None:
        self.problems.append(f"{file}: {what}: {message}")


def load_categories(root: Path) -> set[str]:
    config = root / "catalog" / ".hub" / "config.yaml"
    if not config.is_file():
        config = REPO_ROOT / "catalog" / ".hub" / "config.yaml"
    data = yaml.safe_load(config.read_text())
    return {str(item["name"]) for item in data["categories"]}


def documents(path: Path) -> Iterator[Mapping[str, Any]]:
    for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
        if isinstance(doc, Mapping):
            yield doc


def is_tekton(doc: Mapping[str, Any]) -> bool:
    return str(doc.get("apiVersion", "")).startswith("tekton.dev/")


def label(doc: Mapping[str, Any]) -> str:
    meta = doc.get("metadata") or {}
    return f"{doc.get('kind')}/{meta.get('name') or meta.get('generateName') or '?'}"


# ---------------------------------------------------------------------------------------------
# Walking every step, wherever it is embedded.


@dataclass
class StepSite:
    """A step (or a StepAction's container) with what it needs to be judged."""

    owner: str  # e.g. "Task/kaniko-chains" or "PipelineRun/x: task build"
    step: Mapping[str, Any]
    params: Mapping[str, Any]  # param name -> default, of the enclosing Task/StepAction
    volumes: Sequence[Mapping[str, Any]]
    is_stepaction: bool = False


def _param_defaults(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {str(p.get("name")): p.get("default") for p in spec.get("params") or []}


def task_specs(doc: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(owner label, TaskSpec) for a Task, a TaskRun's taskSpec, and inline Pipeline tasks."""
    kind = doc.get("kind")
    spec = doc.get("spec") or {}
    if kind == "Task":
        yield label(doc), spec
    elif kind == "TaskRun" and spec.get("taskSpec"):
        yield f"{label(doc)}: taskSpec", spec["taskSpec"]
    elif kind in {"Pipeline", "PipelineRun"}:
        pipeline = spec if kind == "Pipeline" else spec.get("pipelineSpec") or {}
        for section in ("tasks", "finally"):
            for task in pipeline.get(section) or []:
                if task.get("taskSpec"):
                    yield f"{label(doc)}: task {task.get('name')}", task["taskSpec"]


def step_sites(doc: Mapping[str, Any]) -> Iterator[StepSite]:
    if doc.get("kind") == "StepAction":
        spec = doc.get("spec") or {}
        yield StepSite(label(doc), spec, _param_defaults(spec), [], is_stepaction=True)
        return
    for owner, spec in task_specs(doc):
        params = _param_defaults(spec)
        volumes = spec.get("volumes") or []
        for step in spec.get("steps") or []:
            yield StepSite(owner, step, params, volumes)
        for sidecar in spec.get("sidecars") or []:
            yield StepSite(f"{owner} sidecar", sidecar, params, volumes)


# ---------------------------------------------------------------------------------------------
# Checks.


def check_layout(file: Path, doc: Mapping[str, Any], catalog: Path, report: Report) -> None:
    rel = file.relative_to(catalog)
    parts = rel.parts
    what = label(doc)
    if len(parts) != 4:
        report.add(file, what, "must be catalog/<kind>/<name>/<X.Y>/<name>.yaml")
        return
    kind_dir, name, version, filename = parts
    if KINDS.get(kind_dir) != doc.get("kind"):
        report.add(file, what, f"a {doc.get('kind')} does not belong under {kind_dir}/")
    if (doc.get("metadata") or {}).get("name") != name or filename != f"{name}.yaml":
        report.add(file, what, f"metadata.name and the file name must both be {name!r}")
    if not VERSION_RE.match(version):
        report.add(file, what, f"version directory {version!r} is not X.Y")
    vdir = file.parent
    if not (vdir / "README.md").is_file():
        report.add(file, what, "README.md is missing")
    for sub in ("samples", "tests"):
        if not sorted((vdir / sub).glob("*.yaml")):
            report.add(file, what, f"{sub}/ has no *.yaml")


def check_metadata(
    file: Path, doc: Mapping[str, Any], categories: set[str], report: Report
) -> None:
    what = label(doc)
    meta = doc.get("metadata") or {}
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    version = file.parent.name
    if labels.get("app.kubernetes.io/version") != version:
        report.add(file, what, f"label app.kubernetes.io/version must be {version!r}")
    if annotations.get("tekton.dev/pipelines.minVersion") != MIN_VERSION:
        report.add(
            file, what, f"annotation tekton.dev/pipelines.minVersion must be {MIN_VERSION!r}"
        )
    cats = [c.strip() for c in str(annotations.get("tekton.dev/categories", "")).split(",")]
    if not any(cats):
        report.add(file, what, "annotation tekton.dev/categories is missing")
    for cat in filter(None, cats):
        if cat not in categories:
            report.add(file, what, f"category {cat!r} is not in the Hub's list")
    if not str(annotations.get("tekton.dev/tags", "")).strip():
        report.add(file, what, "annotation tekton.dev/tags is missing")
    if not str(annotations.get("tekton.dev/displayName", "")).strip():
        report.add(file, what, "annotation tekton.dev/displayName is missing")
    platforms = [p.strip() for p in str(annotations.get("tekton.dev/platforms", "")).split(",")]
    if not any(platforms):
        report.add(file, what, "annotation tekton.dev/platforms is missing")
    for platform in filter(None, platforms):
        if not PLATFORM_RE.match(platform):
            report.add(file, what, f"platform {platform!r} is not OS/ARCH")
    if not str((doc.get("spec") or {}).get("description", "")).strip():
        report.add(file, what, "spec.description is missing")


def check_image(file: Path, site: StepSite, own_refs: set[str], report: Report) -> None:
    step = site.step
    what = f"{site.owner}: step {step.get('name', '?')}"
    if "ref" in step:
        return
    image = str(step.get("image", ""))
    match = PARAM_REF_RE.match(image)
    if match:
        default = site.params.get(match.group(1))
        if not isinstance(default, str):
            report.add(file, what, f"image {image} has no string default to check")
            return
        image = default
    if not image:
        report.add(file, what, "no image")
        return
    pinned = PINNED_RE.match(image)
    if not pinned:
        report.add(file, what, f"image {image!r} is not registry/name:tag@sha256:<64 hex>")
    elif pinned.group("tag") == "latest":
        report.add(file, what, f"image {image!r} is tagged latest")
    if image.startswith(OWN_IMAGE_PREFIX):
        own_refs.add(image)


def check_script(file: Path, site: StepSite, report: Report) -> None:
    script = site.step.get("script")
    if isinstance(script, str) and "$(params." in script:
        what = f"{site.owner}: step {site.step.get('name', '?')}"
        report.add(file, what, "$(params...) inside script: pass it through env or args")


RESTRICTED: dict[str, Any] = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
}


def restricted_violations(context: Mapping[str, Any]) -> dict[str, str]:
    """Field -> problem, for a container securityContext judged against Pod Security restricted."""
    problems: dict[str, str] = {}
    for key, want in RESTRICTED.items():
        if context.get(key) is not want:
            problems[key] = f"{key} must be {str(want).lower()}"
    if context.get("runAsUser") in (None, 0):
        problems["runAsUser"] = "runAsUser must be a non-zero uid"
    caps = context.get("capabilities") or {}
    if [str(c).upper() for c in caps.get("drop") or []] != ["ALL"] or set(caps.get("add") or []) - {
        "NET_BIND_SERVICE"
    }:
        problems["capabilities"] = "capabilities must drop [ALL] (and add at most NET_BIND_SERVICE)"
    seccomp = (context.get("seccompProfile") or {}).get("type")
    if seccomp not in {"RuntimeDefault", "Localhost"}:
        problems["seccompProfile"] = "seccompProfile.type must be RuntimeDefault or Localhost"
    if context.get("privileged"):
        problems["privileged"] = "privileged must not be set"
    return problems


def check_security(file: Path, site: StepSite, report: Report) -> None:
    step = site.step
    name = str(step.get("name", "?"))
    what = f"{site.owner}: step {name}"
    context = step.get("securityContext")
    if not isinstance(context, Mapping):
        report.add(file, what, "no securityContext")
        return
    allowed = EXCEPTIONS.get((site.owner, name), {})
    for key, problem in sorted(restricted_violations(context).items()):
        if key not in allowed:
            report.add(file, what, f"not Pod Security restricted: {problem}")
    if allowed and context.get("allowPrivilegeEscalation") is not False:
        report.add(file, what, "even an excepted step must set allowPrivilegeEscalation: false")
    if context.get("privileged"):
        report.add(file, what, "privileged steps are not allowed")


def check_resources(file: Path, site: StepSite, report: Report) -> None:
    if site.is_stepaction:
        return  # a StepAction cannot declare computeResources; the Task's step does
    step = site.step
    what = f"{site.owner}: step {step.get('name', '?')}"
    resources = step.get("computeResources")
    if not isinstance(resources, Mapping):
        report.add(file, what, "no computeResources")
        return
    requests = resources.get("requests") or {}
    limits = resources.get("limits") or {}
    for key in ("cpu", "memory"):
        if key not in requests:
            report.add(file, what, f"computeResources.requests.{key} is missing")
    if "memory" not in limits:
        report.add(file, what, "computeResources.limits.memory is missing")


def _secret_volumes(volumes: Sequence[Mapping[str, Any]]) -> set[str]:
    names = set()
    for volume in volumes:
        if "secret" in volume:
            names.add(str(volume.get("name")))
        for source in (volume.get("projected") or {}).get("sources") or []:
            if "secret" in source:
                names.add(str(volume.get("name")))
    return names


def check_secrets(
    file: Path, site: StepSite, stepactions: Mapping[str, Any], report: Report
) -> None:
    step = site.step
    what = f"{site.owner}: step {step.get('name', '?')}"
    ref_name = str((step.get("ref") or {}).get("name", "")) if "ref" in step else ""
    signer = ref_name == SIGNING_STEPACTION or (
        site.is_stepaction and site.owner == f"StepAction/{SIGNING_STEPACTION}"
    )
    for env in step.get("env") or []:
        if "secretKeyRef" in (env.get("valueFrom") or {}) and not signer:
            report.add(file, what, f"env {env.get('name')} reads a Secret")
    for source in step.get("envFrom") or []:
        if "secretRef" in source:
            report.add(file, what, "envFrom reads a Secret")
    if site.is_stepaction:
        return
    secrets = _secret_volumes(site.volumes)
    mounted = {str(m.get("name")) for m in step.get("volumeMounts") or []}
    if ref_name:
        # A StepAction mounts volumes named by its params: resolve them with this step's params.
        given = {str(p.get("name")): p.get("value") for p in step.get("params") or []}
        action = stepactions.get(ref_name) or {}
        defaults = _param_defaults(action)
        for mount in action.get("volumeMounts") or []:
            match = PARAM_REF_RE.match(str(mount.get("name", "")))
            if match:
                mounted.add(str(given.get(match.group(1), defaults.get(match.group(1)))))
            else:
                mounted.add(str(mount.get("name")))
    leaked = sorted(mounted & secrets)
    if leaked and not signer:
        report.add(
            file, what, f"mounts Secret volume(s) {', '.join(leaked)}; only the attest step may"
        )


def check_step_template(file: Path, doc: Mapping[str, Any], report: Report) -> None:
    for owner, spec in task_specs(doc):
        template = spec.get("stepTemplate") or {}
        secrets = _secret_volumes(spec.get("volumes") or [])
        mounted = {str(m.get("name")) for m in template.get("volumeMounts") or []}
        if mounted & secrets:
            report.add(file, owner, "stepTemplate mounts a Secret volume into every step")


# ---------------------------------------------------------------------------------------------


def yaml_files(paths: Sequence[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += [
                p
                for p in path.rglob("*.yaml")
                if not any(part.startswith(".") for part in p.relative_to(path).parts)
            ]
        else:
            files.append(path)
    return sorted(set(files))


def load_stepactions(root: Path, files: Sequence[Path]) -> dict[str, Any]:
    """name -> StepAction spec, from the catalog and from the files being checked."""
    found: dict[str, Any] = {}
    for file in [*sorted((root / "catalog" / "stepaction").glob("*/*/*.yaml")), *files]:
        for doc in documents(file):
            if doc.get("kind") == "StepAction":
                found[str((doc.get("metadata") or {}).get("name"))] = doc.get("spec") or {}
    return found


def check(paths: Sequence[Path], root: Path = REPO_ROOT) -> Report:
    report = Report()
    categories = load_categories(root)
    catalog = root / "catalog"
    files = yaml_files(paths)
    stepactions = load_stepactions(root, files)
    own_refs: set[str] = set()
    for file in files:
        try:
            docs = list(documents(file))
        except yaml.YAMLError as err:
            report.add(file, "-", f"not YAML: {err}")
            continue
        # A resource file is the version directory's top-level <name>.yaml; tests/ and samples/
        # hold runs and helpers, which get the step rules only.
        top_level = file.parent.name not in {"tests", "samples"}
        for doc in docs:
            if not is_tekton(doc):
                continue
            report.resources += 1
            if top_level and doc.get("kind") in KINDS.values():
                try:
                    check_layout(file.resolve(), doc, catalog.resolve(), report)
                except ValueError:
                    report.add(file, label(doc), "is not under catalog/")
                check_metadata(file, doc, categories, report)
            check_step_template(file, doc, report)
            for site in step_sites(doc):
                report.steps += 1
                check_image(file, site, own_refs, report)
                check_script(file, site, report)
                check_security(file, site, report)
                check_resources(file, site, report)
                check_secrets(file, site, stepactions, report)
    if len(own_refs) > 1:
        report.problems.append(
            "catalog: attest-step's image must be one single reference everywhere, found: "
            + ", ".join(sorted(own_refs))
        )
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="repository root")
    parser.add_argument(
        "paths", nargs="*", type=Path, help="files or directories (default: catalog/)"
    )
    args = parser.parse_args(argv)
    root: Path = args.root
    paths: list[Path] = args.paths or [root / "catalog"]
    report = check(paths, root)
    for problem in report.problems:
        print(problem)
    print(
        f"catalog_check: {report.resources} resources, {report.steps} steps, "
        f"{len(report.problems)} problems"
    )
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
