"""Hermetic declarations (``attest --declare-hermetic``): parsed, checked, evaluated.

A declaration is ``STEP[/MECHANISM][:PARAM=VALUE]``:

- ``STEP`` must be one of the Task's steps: from ``--task-step``, else from the step
  directory Tekton's init container writes (``/tekton/steps/step-<name>``, read-only for
  steps). Without either, a declaration is a usage error: nobody could tell a typo.
- ``MECHANISM`` says how the step is isolated: ``run`` (its command runs under
  ``attest-step run``, whose record must then be in the evidence volume) or ``tekton``
  (``TEKTON_HERMETIC=1`` on the step). Omitted: not said.
- ``:PARAM=VALUE`` makes the declaration conditional: it holds only when the Task param
  ``PARAM``, as recorded in the provenance (``externalParameters.params``), is exactly
  ``VALUE``. Tekton cannot compute a conditional in YAML, so a Task whose isolation depends
  on its params declares each case (``build/run:RUN_ISOLATED=true``) and the attest step
  evaluates it against the params Tekton gave it, not against anything the build wrote.

A step is declared hermetic when at least one of its declarations holds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attest_step.errors import UsageError

TEKTON_STEPS_DIR = Path("/tekton/steps")
MECHANISMS = ("run", "tekton")
_SPEC = re.compile(
    r"(?P<step>[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)"
    r"(/(?P<mechanism>[a-z]+))?"
    r"(:(?P<param>[A-Za-z0-9_.-]+)=(?P<value>.*))?",
    re.DOTALL,
)


@dataclass(frozen=True)
class Declaration:
    """One ``--declare-hermetic`` value."""

    text: str
    step: str
    mechanism: str | None
    param: str | None
    value: str | None

    def basis(self) -> str:
        how = {
            "run": "its command runs under attest-step run",
            "tekton": "TEKTON_HERMETIC=1 on the step",
            None: "mechanism not stated",
        }[self.mechanism]
        when = f"; param {self.param} is {self.value!r}" if self.param is not None else ""
        return f"declared hermetic by the Task spec (--declare-hermetic {self.text}: {how}{when})"


def parse(text: str) -> Declaration:
    match = _SPEC.fullmatch(text)
    if match is None:
        raise UsageError(
            f"--declare-hermetic {text!r}: want STEP[/run|/tekton][:PARAM=VALUE] with a "
            "Tekton step name (lowercase letters, digits, '-')"
        )
    mechanism = match.group("mechanism")
    if mechanism is not None and mechanism not in MECHANISMS:
        raise UsageError(
            f"--declare-hermetic {text!r}: the mechanism is 'run' or 'tekton', not {mechanism!r}"
        )
    return Declaration(
        text=text,
        step=match.group("step"),
        mechanism=mechanism,
        param=match.group("param"),
        value=match.group("value"),
    )


def task_steps(given: Sequence[str], steps_dir: Path = TEKTON_STEPS_DIR) -> list[str] | None:
    """The Task's step names: ``given`` (``--task-step``), else Tekton's step directory."""
    if given:
        return list(dict.fromkeys(given))
    try:
        names = sorted(p.name for p in steps_dir.iterdir())
    except OSError:
        return None
    steps = [name.removeprefix("step-") for name in names if name.startswith("step-")]
    return steps or None


@dataclass(frozen=True)
class Evaluated:
    """A declaration and whether it holds for the recorded params."""

    declaration: Declaration
    holds: bool
    actual: Any = None


def evaluate(
    texts: Sequence[str], params: Mapping[str, Any], steps: Sequence[str] | None
) -> list[Evaluated]:
    """Every declaration, checked (the step exists, the param is recorded) and evaluated."""
    declarations = [parse(text) for text in texts]
    if declarations and steps is None:
        raise UsageError(
            "--declare-hermetic: cannot tell which steps the Task has (no /tekton/steps); "
            "name each with --task-step"
        )
    out: list[Evaluated] = []
    for item in declarations:
        if steps is not None and item.step not in steps:
            raise UsageError(
                f"--declare-hermetic {item.text}: the Task has no step {item.step!r} "
                f"(steps: {', '.join(steps)})"
            )
        if item.param is None:
            out.append(Evaluated(item, True))
            continue
        if item.param not in params:
            raise UsageError(
                f"--declare-hermetic {item.text}: no Task param {item.param!r} is recorded; "
                "pass it with --param (the StepAction's PARAMS)"
            )
        actual = params[item.param]
        out.append(Evaluated(item, actual == item.value, actual))
    return out
