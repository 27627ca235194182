"""The network-isolation record carried in the provenance's ``runDetails.byproducts``.

One ResourceDescriptor per build step::

    {"name": "attest-step/network-isolation/<step>",
     "mediaType": "application/vnd.attest-step.network-isolation.v1+json",
     "digest": {"sha256": <hex of the content bytes>},
     "content": <base64 of the full record, JSON>,
     "annotations": {"step", "hermetic", "declared", "sources", "contradictions"}}

Only fields of the in-toto ResourceDescriptor are used, so cosign's strict protojson parsing
accepts it: ``content`` is bytes (standard base64), ``annotations`` a Struct (any JSON).
Every claim is labelled by its source: ``declared`` (Task spec, via ``--declare-hermetic``),
``observed`` (attest-step's own code saw it: ``attest-step run``, or the attest step probing
itself) or ``reported`` (a ``probe`` record a build step wrote: untrusted).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from attest_step.hermetic import evidence

ISOLATION_MEDIA_TYPE = "application/vnd.attest-step.network-isolation.v1+json"
NAME_PREFIX = "attest-step/network-isolation/"
DECLARED_BASIS = "declared hermetic for this step by the Task spec (--declare-hermetic)"


def source_label(record: Mapping[str, Any]) -> str:
    """``observed`` for ``attest-step run`` records, ``reported`` for probe files."""
    return "observed" if (record.get("producer") or {}).get("verb") == "run" else "reported"


def _evidence_entry(record: Mapping[str, Any], label: str, origin: str) -> dict[str, Any]:
    data = evidence.dumps(record)
    return {
        "source": label,
        "origin": origin,
        "sha256": hashlib.sha256(data).hexdigest(),
        "contradictions": evidence.contradictions(record),
        "record": dict(record),
    }


def step_record(
    step: str, declared: bool, entries: Sequence[Mapping[str, Any]], *, role: str = "build"
) -> dict[str, Any]:
    """The full per-step record: claims with sources, contradictions and the conclusion."""
    claims: list[dict[str, Any]] = []
    if declared:
        claims.append(
            {
                "claim": "networkIsolated",
                "value": True,
                "source": "declared",
                "basis": DECLARED_BASIS,
            }
        )
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
    not_declared = [] if declared else ["not declared hermetic in the Task spec"]
    return {
        "step": step,
        "role": role,
        "hermetic": declared and not contradictions,
        "declared": declared,
        "observedIsolation": any(c["source"] == "observed" and c["value"] is True for c in claims),
        "claims": claims,
        "contradictions": contradictions,
        "reasons": not_declared + contradictions,
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
            "declared": full["declared"],
            "observedIsolation": full["observedIsolation"],
            "sources": sources,
            "contradictions": list(full["contradictions"]),
        },
    }


def isolation_byproducts(
    evidence_files: Sequence[Path],
    declared_hermetic_steps: Sequence[str],
    *,
    observe_self_as: str | None = None,
) -> list[dict[str, Any]]:
    """ResourceDescriptors to append to ``runDetails.byproducts``.

    One per step named in ``declared_hermetic_steps`` or by an evidence file (its ``step``
    field, else the file name's stem). A step is ``hermetic`` only when declared and no
    evidence (observed or reported) contradicts it. ``observe_self_as`` names the calling
    step: the attest step then probes its own namespace and adds that view as ``observed``,
    in a record with ``role: attest`` (not a build step: ``requireHermetic`` ignores it).
    """
    by_step: dict[str, list[dict[str, Any]]] = {}
    for path in evidence_files:
        record = evidence.load(Path(path))
        step = evidence.step_of(record, Path(path))
        entry = _evidence_entry(record, source_label(record), f"file {Path(path).name}")
        by_step.setdefault(step, []).append(entry)
    if observe_self_as:
        from attest_step.hermetic import probe  # noqa: PLC0415 - only when asked

        record = probe.collect(targets=[], names=[], step=observe_self_as)
        by_step.setdefault(observe_self_as, []).append(
            _evidence_entry(record, "observed", "the attest step probing itself")
        )
    declared = list(dict.fromkeys(declared_hermetic_steps))
    steps = declared + sorted(set(by_step) - set(declared))
    return [
        descriptor(
            step_record(
                step,
                step in declared,
                by_step.get(step, []),
                role="attest" if step == observe_self_as else "build",
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
