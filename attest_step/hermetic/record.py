"""The network-isolation record carried in the provenance's ``runDetails.byproducts``.

One ResourceDescriptor per build step::

    {"name": "attest-step/network-isolation/<step>",
     "mediaType": "application/vnd.attest-step.network-isolation.v1+json",
     "digest": {"sha256": <hex of the content bytes>},
     "content": <base64 of the full record, JSON>,
     "annotations": {"step", "role", "hermetic", "status", "declared", "observedIsolation",
                     "sources", "contradictions"}}

Only fields of the in-toto ResourceDescriptor are used, so cosign's strict protojson parsing
accepts it: ``content`` is bytes (standard base64), ``annotations`` a Struct (any JSON).

Every claim is labelled by its source:

- ``declared``: the Task spec, via ``--declare-hermetic`` (evaluated against the params);
- ``observed``: attest-step's own code saw it, and the consumer can establish that: a
  *complete* ``run`` record (see ``evidence.run_record_gaps``) read from the evidence volume
  (``--evidence-dir``) for a step declared to run under ``attest-step run``, or the attest
  step probing itself;
- ``reported``: anything else (probe files, run records from elsewhere or incomplete):
  untrusted, it can only make the conclusion more conservative.

Conclusion (``status``): ``hermetic`` only when declared, with evidence, and nothing
contradicts it; ``not-declared``; ``contradicted``; ``unknown`` when declared but without the
evidence the declaration calls for (any record; for ``/run``, an observed one).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from attest_step.hermetic import evidence
from attest_step.hermetic.declare import Evaluated

ISOLATION_MEDIA_TYPE = "application/vnd.attest-step.network-isolation.v1+json"
NAME_PREFIX = "attest-step/network-isolation/"
SELF_ORIGIN = "the attest step probing itself"


def evidence_entry(
    record: Mapping[str, Any], label: str, origin: str, notes: Sequence[str] = ()
) -> dict[str, Any]:
    data = evidence.dumps(record)
    entry: dict[str, Any] = {
        "source": label,
        "origin": origin,
        "sha256": hashlib.sha256(data).hexdigest(),
        "contradictions": evidence.contradictions(record),
        "record": dict(record),
    }
    if notes:
        entry["notReportedAsObservedBecause"] = list(notes)
    return entry


def file_entry(path: Path, record: Mapping[str, Any]) -> dict[str, Any]:
    """Evidence from a file given with ``--network-evidence``: reported, whatever it says."""
    notes = []
    if (record.get("producer") or {}).get("verb") == "run":
        notes.append("a run record outside the evidence volume: the build could have written it")
    return evidence_entry(record, "reported", f"file {path.name}", notes)


def volume_entry(
    volume_dir: Path, name: str, step: str, record: Mapping[str, Any], run_declared: bool
) -> dict[str, Any]:
    """Evidence read from the evidence volume: observed only when complete and expected."""
    notes = list(evidence.run_record_gaps(record))
    if record.get("step") != step:
        notes.append(f"the record names step {record.get('step')!r}, its file name {step!r}")
    volume = record.get("evidenceVolume")
    if isinstance(volume, Mapping) and volume.get("file") != name:
        notes.append(f"the record was written as {volume.get('file')!r}, found as {name!r}")
    if not run_declared:
        notes.append(
            f"step {step} is not declared to run under attest-step run "
            f"(--declare-hermetic {step}/run)"
        )
    label = "reported" if notes else "observed"
    return evidence_entry(record, label, f"evidence volume {volume_dir}, file {name}", notes)


def _declared_claims(evaluated: Sequence[Evaluated]) -> list[dict[str, Any]]:
    claims = []
    for item in evaluated:
        claim: dict[str, Any] = {
            "claim": "networkIsolated",
            "value": True,
            "source": "declared",
            "mechanism": item.declaration.mechanism,
            "basis": item.declaration.basis(),
        }
        claims.append(claim)
    return claims


def step_record(
    step: str,
    evaluated: Sequence[Evaluated],
    entries: Sequence[Mapping[str, Any]],
    *,
    role: str = "build",
) -> dict[str, Any]:
    """The full per-step record: claims with sources, contradictions and the conclusion."""
    holding = [item for item in evaluated if item.holds]
    declared = bool(holding)
    claims = _declared_claims(holding)
    contradictions: list[str] = []
    for entry in entries:
        found = list(entry["contradictions"])
        record = entry["record"]
        claim: dict[str, Any] = {
            "claim": "networkIsolated",
            "value": not found,
            "source": entry["source"],
            "by": f"attest-step {(record.get('producer') or {}).get('verb')}",
            "origin": entry["origin"],
        }
        command = record.get("command")
        if isinstance(command, Mapping):
            claim["separateNetns"] = bool(
                command.get("netns") and command.get("netns") != record.get("parentNetns")
            )
            claim["exitCode"] = command.get("exitCode")
        claims.append(claim)
        contradictions.extend(f"{entry['source']}: {item}" for item in found)
    observed = [e for e in entries if e["source"] == "observed"]
    needs_observed = any(item.declaration.mechanism == "run" for item in holding)
    reasons: list[str] = []
    if not declared:
        status = "not-declared"
        reasons.append("not declared hermetic in the Task spec")
        reasons.extend(
            f"--declare-hermetic {item.declaration.text} does not hold: param "
            f"{item.declaration.param} is {item.actual!r}"
            for item in evaluated
            if not item.holds
        )
    elif contradictions:
        status = "contradicted"
    elif needs_observed and not observed:
        status = "unknown"
        reasons.append(
            "declared to run under attest-step run, but the evidence volume holds no complete "
            "record of it"
        )
    elif not entries:
        status = "unknown"
        reasons.append("declared hermetic, but no evidence of its isolation was recorded")
    else:
        status = "hermetic"
    return {
        "step": step,
        "role": role,
        "hermetic": status == "hermetic",
        "status": status,
        "declared": declared,
        "observedIsolation": any(c["source"] == "observed" and c["value"] is True for c in claims),
        "claims": claims,
        "contradictions": contradictions,
        "reasons": reasons + contradictions,
        "evidence": [dict(entry) for entry in entries],
    }


def descriptor(full: Mapping[str, Any]) -> dict[str, Any]:
    """A ResourceDescriptor for one step record."""
    content = json.dumps(full, sort_keys=True, separators=(",", ":")).encode()
    sources = sorted({str(claim["source"]) for claim in full["claims"]})
    return {
        "name": NAME_PREFIX + str(full["step"]),
        "mediaType": ISOLATION_MEDIA_TYPE,
        "digest": {"sha256": hashlib.sha256(content).hexdigest()},
        "content": base64.b64encode(content).decode(),
        "annotations": {
            "step": full["step"],
            "role": full.get("role", "build"),
            "hermetic": full["hermetic"],
            "status": full["status"],
            "declared": full["declared"],
            "observedIsolation": full["observedIsolation"],
            "sources": sources,
            "contradictions": list(full["contradictions"]),
        },
    }


def isolation_byproducts(
    evaluated: Sequence[Evaluated],
    *,
    evidence_files: Sequence[Path] = (),
    evidence_dir: Path | None = None,
    observe_self_as: str | None = None,
) -> list[dict[str, Any]]:
    """ResourceDescriptors to append to ``runDetails.byproducts``.

    One per step that is declared (whether or not the declaration holds) or that any
    evidence names. ``observe_self_as`` names the calling step: the attest step then probes
    its own namespace and adds that view as ``observed``, in a record with ``role: attest``
    (not a build step: ``requireHermetic`` skips it) unless other evidence names that step
    too, in which case it is a build-step record like any other and its contradictions count.
    """
    by_step: dict[str, list[dict[str, Any]]] = {}
    for path in evidence_files:
        record = evidence.load(Path(path))
        by_step.setdefault(evidence.step_of(record, Path(path)), []).append(
            file_entry(Path(path), record)
        )
    if evidence_dir is not None:
        from attest_step.hermetic.volume import read_records  # noqa: PLC0415

        run_steps = {
            item.declaration.step
            for item in evaluated
            if item.holds and item.declaration.mechanism in ("run", None)
        }
        for found in read_records(evidence_dir):
            by_step.setdefault(found.step, []).append(
                volume_entry(
                    evidence_dir, found.name, found.step, found.record, found.step in run_steps
                )
            )
    attest_only = observe_self_as is not None and observe_self_as not in by_step
    if observe_self_as:
        from attest_step.hermetic import probe  # noqa: PLC0415 - only when asked

        record = probe.collect(targets=[], names=[], step=observe_self_as)
        by_step.setdefault(observe_self_as, []).append(
            evidence_entry(record, "observed", SELF_ORIGIN)
        )
    by_declared: dict[str, list[Evaluated]] = {}
    for item in evaluated:
        by_declared.setdefault(item.declaration.step, []).append(item)
    steps = list(by_declared) + sorted(set(by_step) - set(by_declared))
    return [
        descriptor(
            step_record(
                step,
                by_declared.get(step, []),
                by_step.get(step, []),
                role="attest"
                if attest_only and step == observe_self_as and step not in by_declared
                else "build",
            )
        )
        for step in steps
    ]


def decode_content(item: Mapping[str, Any]) -> dict[str, Any] | None:
    """The full record inside an isolation descriptor, or None when absent/inconsistent."""
    content = item.get("content")
    if not isinstance(content, str):
        return None
    try:
        data = base64.b64decode(content, validate=True)
        decoded = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    digest = (item.get("digest") or {}).get("sha256")
    if digest is not None and digest != hashlib.sha256(data).hexdigest():
        return None
    return decoded if isinstance(decoded, dict) else None
