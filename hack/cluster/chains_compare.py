#!/usr/bin/env python3
"""Render docs/chains-comparison.md: attest-step's statement and Tekton Chains' for one TaskRun.

    hack/cluster/chains_compare.py RESULTS_DIR [--output docs/chains-comparison.md]

RESULTS_DIR is what tests/cluster/test_user_flow.py leaves in $ATTEST_CLUSTER_CACHE/results:
``ours-statement.json`` (attest-step, SLSA v1.0), ``chains-statement.json`` (Chains,
``artifacts.taskrun.format: slsa/v1``, which is the SLSA **v0.2** predicate),
``kaniko-taskrun.json`` (the TaskRun both describe) and ``versions.json``. Each row names a
field, where it lives in each statement (the two predicate versions put it in different places)
and what each held; nothing is inferred beyond the mapping in ``ROWS``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

Json = Any
Getter = Callable[[Json], Json]
MISSING = object()


def dig(*path: str | int) -> Getter:
    def get(doc: Json) -> Json:
        for part in path:
            if isinstance(part, int):
                if not isinstance(doc, list) or len(doc) <= part:
                    return MISSING
                doc = doc[part]
            elif isinstance(doc, dict) and part in doc:
                doc = doc[part]
            else:
                return MISSING
        return doc

    return get


def where(path: tuple[str | int, ...]) -> str:
    return ".".join(str(p) for p in path) if path else "-"


# (field, path in ours (SLSA v1.0), path in Chains' slsa/v1 (SLSA v0.2))
ROWS: list[tuple[str, tuple[str | int, ...], tuple[str | int, ...]]] = [
    ("statement type", ("_type",), ("_type",)),
    ("predicateType", ("predicateType",), ("predicateType",)),
    ("subject", ("subject",), ("subject",)),
    ("buildType", ("predicate", "buildDefinition", "buildType"), ("predicate", "buildType")),
    (
        "externalParameters",
        ("predicate", "buildDefinition", "externalParameters"),
        ("predicate", "invocation", "parameters"),
    ),
    (
        "config source",
        ("predicate", "buildDefinition", "externalParameters", "buildConfigSource"),
        ("predicate", "invocation", "configSource"),
    ),
    (
        "internalParameters",
        ("predicate", "buildDefinition", "internalParameters"),
        ("predicate", "invocation", "environment"),
    ),
    (
        "resolvedDependencies",
        ("predicate", "buildDefinition", "resolvedDependencies"),
        ("predicate", "materials"),
    ),
    ("byproducts", ("predicate", "runDetails", "byproducts"), ()),
    ("builder.id", ("predicate", "runDetails", "builder", "id"), ("predicate", "builder", "id")),
    (
        "invocation id",
        ("predicate", "runDetails", "metadata", "invocationId"),
        ("predicate", "metadata", "buildInvocationId"),
    ),
    (
        "started",
        ("predicate", "runDetails", "metadata", "startedOn"),
        ("predicate", "metadata", "buildStartedOn"),
    ),
    (
        "finished",
        ("predicate", "runDetails", "metadata", "finishedOn"),
        ("predicate", "metadata", "buildFinishedOn"),
    ),
    ("steps", (), ("predicate", "buildConfig", "steps")),
    ("completeness", (), ("predicate", "metadata", "completeness")),
    ("reproducible", (), ("predicate", "metadata", "reproducible")),
]


def short(value: Json, limit: int = 420) -> str:
    if value is MISSING:
        return "*(absent)*"
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    if len(text) > limit:
        text = text[:limit] + f"… ({len(text)} chars)"
    return "`" + text.replace("|", "\\|").replace("`", "'") + "`"


def subjects(value: Json) -> set[str]:
    if not isinstance(value, list):
        return set()
    return {f"{s.get('name')}@sha256:{s.get('digest', {}).get('sha256')}" for s in value}


def digests(value: Json) -> set[str]:
    """uri@digest pairs of v1.0 resolvedDependencies or v0.2 materials."""
    if not isinstance(value, list):
        return set()
    out = set()
    for item in value:
        algs = item.get("digest") or {}
        out |= {f"{item.get('uri')}@{alg}:{hexd}" for alg, hexd in sorted(algs.items())}
    return out


def verdict(field: str, ours: Json, theirs: Json) -> str:
    if ours is MISSING and theirs is MISSING:
        return "absent in both"
    if ours is MISSING:
        return "Chains only"
    if theirs is MISSING:
        return "attest-step only"
    if ours == theirs:
        return "same"
    if field == "subject":
        a, b = subjects(ours), subjects(theirs)
        return (
            "same subjects"
            if a == b
            else f"common {len(a & b)}, ours only {len(a - b)}, Chains only {len(b - a)}"
        )
    if field == "resolvedDependencies":
        a, b = digests(ours), digests(theirs)
        return f"common {len(a & b)}, ours only {len(a - b)}, Chains only {len(b - a)}"
    return "differs"


HERE = Path(__file__).resolve().parent
PINS = {"Tekton Pipelines": ("tekton", "pipeline"), "Tekton Chains": ("chains", "chains")}


def pinned(component: str) -> str | None:
    """The version hack/cluster/<dir>/go.mod pins (a ko build carries no version label)."""
    directory, module = PINS[component]
    for line in (HERE / directory / "go.mod").read_text().splitlines():
        words = line.split()
        if words[:2] == ["require", f"github.com/tektoncd/{module}"]:
            return words[2]
    return None


def render(results: Path) -> str:
    ours = json.loads((results / "ours-statement.json").read_text())
    theirs = json.loads((results / "chains-statement.json").read_text())
    run = json.loads((results / "kaniko-taskrun.json").read_text())
    versions_path = results / "versions.json"
    versions = json.loads(versions_path.read_text()) if versions_path.exists() else {}
    for component in PINS:
        pin = pinned(component)
        if pin is not None:
            label = versions.get(component, "?")
            versions[component] = f"{pin} (pinned; the deployment's version label: {label})"
    status = run.get("status", {})
    steps = {s.get("name"): s.get("terminated", {}) for s in status.get("steps") or []}
    lines = [
        "# attest-step and Tekton Chains on the same TaskRun",
        "",
        "Generated by `hack/cluster/chains_compare.py` from one `tkn task start kaniko-chains` run",
        "on the real-cluster tier (`make e2e-cluster`, tests/cluster/test_user_flow.py). Both",
        "statements were read back from the registry with `cosign verify-attestation` and each",
        "verified with its own key. Chains was configured as the issue asks: "
        "`artifacts.taskrun.format: slsa/v1`, OCI storage, a cosign key, no transparency log.",
        "Note: Chains' `slsa/v1` format emits the **SLSA v0.2** predicate "
        "(`https://slsa.dev/provenance/v0.2`); attest-step emits SLSA v1.0. The table therefore",
        "maps each v1.0 field to its v0.2 counterpart (second column); `slsa/v2alpha4` is the",
        "Chains format that emits v1.0.",
        "",
        f"- TaskRun `{run['metadata']['namespace']}/{run['metadata']['name']}` "
        f"(uid `{run['metadata'].get('uid')}`), started `{status.get('startTime')}`, "
        f"completed `{status.get('completionTime')}`",
        *(
            f"- step `{name}`: started `{t.get('startedAt')}`, finished `{t.get('finishedAt')}`"
            for name, t in steps.items()
        ),
        *(f"- {k}: {v}" for k, v in sorted(versions.items())),
        "",
        "| field | attest-step (SLSA v1.0) | Chains `slsa/v1` (SLSA v0.2) | verdict |",
        "|---|---|---|---|",
    ]
    for field, ours_path, theirs_path in ROWS:
        a = dig(*ours_path)(ours) if ours_path else MISSING
        b = dig(*theirs_path)(theirs) if theirs_path else MISSING
        lines.append(
            f"| {field} (`{where(ours_path)}` / `{where(theirs_path)}`) | {short(a)} | {short(b)} "
            f"| {verdict(field, a, b)} |"
        )
    a_deps = digests(dig("predicate", "buildDefinition", "resolvedDependencies")(ours))
    b_deps = digests(dig("predicate", "materials")(theirs))
    lines += ["", "## resolvedDependencies / materials, item by item", ""]
    lines += ["| uri@digest | attest-step | Chains |", "|---|---|---|"]
    for item in sorted(a_deps | b_deps):
        lines.append(f"| `{item}` | {'yes' if item in a_deps else '-'} | "
                     f"{'yes' if item in b_deps else '-'} |")  # fmt: skip
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    for name in ("ours-statement.json", "chains-statement.json", "kaniko-taskrun.json"):
        if not (args.results / name).is_file():
            print(f"chains_compare: {args.results / name} is missing; run make e2e-cluster first",
                  file=sys.stderr)  # fmt: skip
            return 2
    text = render(args.results)
    if args.output:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
