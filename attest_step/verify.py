"""Verification of DSSE attestations, independent of the command line.

An attestation verifies when all of these hold, in this order: the envelope's payloadType is
in-toto's, one signature verifies over the PAE with the given key, the payload is a strict
in-toto Statement, its predicateType is the one asked for (a SLSA v1 predicate must also have
the SLSA v1 shape), and every artifact given has its digest among the subjects.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from attest_step.dsse import verify_envelope
from attest_step.errors import AttestStepError, VerificationError
from attest_step.fileio import read_input_file
from attest_step.keys.signer import Verifier
from attest_step.model import Subject
from attest_step.provenance import SLSA_PROVENANCE_V1
from attest_step.statement import Statement, load_json_strict, parse_statement

PolicyCheck = Callable[[Mapping[str, Any]], list[str]]
"""Returns the violations of a verified statement, one sentence each; empty when it passes."""


@dataclass(frozen=True)
class VerifiedAttestation:
    """What was checked and held."""

    statement: Statement
    matched: tuple[tuple[Subject, Subject], ...]
    """(artifact given, subject it matched) pairs."""
    index: int = 0
    """Which of the envelopes given to :func:`verify_any` verified (0-based)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "verified": True,
            "predicateType": self.statement.predicate_type,
            "subjectsMatched": [
                {"artifact": artifact.to_dict(), "subject": subject.to_dict()}
                for artifact, subject in self.matched
            ],
            "statement": self.statement.raw,
        }


@cache
def _slsa_v1_schema() -> dict[str, Any]:
    text = resources.files("attest_step").joinpath("schemas/slsa-provenance-v1.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


def check_slsa_v1_predicate(predicate: Mapping[str, Any]) -> None:
    """Raise VerificationError unless ``predicate`` has the SLSA Provenance v1 shape."""
    import jsonschema  # noqa: PLC0415 - only verification of SLSA v1 needs it

    validator = jsonschema.Draft202012Validator(_slsa_v1_schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(dict(predicate)))
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "(top)"
        raise VerificationError(f"SLSA v1 predicate at {where}: {error.message}")


def subject_matching(artifact: Subject, subjects: Sequence[Subject]) -> Subject | None:
    """The first subject sharing an algorithm with ``artifact`` and equal on every shared one.

    Names are not compared: cosign compares only digests, and a file may be hashed under a
    different relative path than at attest time.
    """
    for subject in subjects:
        shared = set(artifact.digest) & set(subject.digest)
        if shared and all(artifact.digest[alg] == subject.digest[alg] for alg in shared):
            return subject
    return None


def verify_attestation(
    envelope: Mapping[str, Any],
    verifier: Verifier,
    *,
    predicate_type: str,
    artifacts: Sequence[Subject] = (),
    policy: PolicyCheck | None = None,
) -> VerifiedAttestation:
    """Verify one envelope; raise VerificationError naming the first check that failed."""
    if not isinstance(envelope, Mapping):
        raise VerificationError("the attestation is not a JSON object (a DSSE envelope)")
    payload = verify_envelope(dict(envelope), verifier)  # checks the in-toto payloadType
    statement = parse_statement(payload)
    if statement.predicate_type != predicate_type:
        raise VerificationError(
            f"predicateType is {statement.predicate_type!r}, expected {predicate_type!r} "
            "(choose it with --type)"
        )
    if statement.predicate_type == SLSA_PROVENANCE_V1:
        check_slsa_v1_predicate(statement.predicate)
    matched: list[tuple[Subject, Subject]] = []
    for artifact in artifacts:
        subject = subject_matching(artifact, statement.subjects)
        if subject is None:
            digests = ", ".join(f"{alg}:{value}" for alg, value in sorted(artifact.digest.items()))
            raise VerificationError(
                f"{artifact.name or 'artifact'} ({digests}) is not among the subjects "
                "of the attestation"
            )
        matched.append((artifact, subject))
    if policy is not None:
        violations = policy(statement.raw)
        if violations:
            raise VerificationError("policy not satisfied: " + "; ".join(violations))
    return VerifiedAttestation(statement=statement, matched=tuple(matched))


def verify_any(
    envelopes: Sequence[Mapping[str, Any]],
    verifier: Verifier | None,
    *,
    predicate_type: str,
    artifacts: Sequence[Subject] = (),
    policy: PolicyCheck | None = None,
    source: str = "the input",
    verifier_for: Callable[[int], Verifier] | None = None,
) -> VerifiedAttestation:
    """The first envelope that verifies, as cosign accepts an image when one attestation does.

    Raises VerificationError listing why each envelope failed when none verifies.
    ``verifier_for(i)``, when given, is the verifier of envelope ``i`` instead of
    ``verifier`` (e.g. the key of the certificate it carries); it raises VerificationError
    when envelope ``i`` has none that may be used.
    """
    if not envelopes:
        raise VerificationError(f"no attestations found in {source}")
    reasons: list[str] = []
    for index, envelope in enumerate(envelopes, start=1):
        try:
            key = verifier_for(index - 1) if verifier_for is not None else verifier
            if key is None:
                raise AssertionError("verify_any needs verifier or verifier_for")
            result = verify_attestation(
                envelope,
                key,
                predicate_type=predicate_type,
                artifacts=artifacts,
                policy=policy,
            )
            return replace(result, index=index - 1)
        except VerificationError as err:
            reasons.append(str(err) if len(envelopes) == 1 else f"#{index}: {err}")
    shown = reasons[:5] + ([f"and {len(reasons) - 5} more"] if len(reasons) > 5 else [])
    raise VerificationError(f"{source}: " + "; ".join(shown))


MAX_ENVELOPE_FILE = 64 << 20
"""The most an --envelope file may hold: the registry's blob limit (64 MiB)."""


def read_envelopes(path: Path) -> list[dict[str, Any]]:
    """Envelopes in a file: one JSON object, or JSON Lines (``.intoto.jsonl``), one per line."""
    what = f"--envelope {path}"
    data = read_input_file(path, "--envelope", limit=MAX_ENVELOPE_FILE)
    try:
        whole = load_json_strict(data, what=what)
    except VerificationError:
        whole = None
    else:
        if not isinstance(whole, dict):
            raise VerificationError(f"{what}: not a DSSE envelope (a JSON object expected)")
        return [whole]
    envelopes: list[dict[str, Any]] = []
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = load_json_strict(line, what=f"{what} line {number}")
        except AttestStepError as err:
            raise VerificationError(f"{err} (a DSSE envelope or JSON Lines expected)") from err
        if not isinstance(item, dict):
            raise VerificationError(f"{what} line {number}: not a JSON object")
        envelopes.append(item)
    if not envelopes:
        raise VerificationError(f"{what}: the file is empty; give a DSSE envelope")
    return envelopes
