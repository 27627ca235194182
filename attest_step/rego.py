"""A user's Rego policy over a verified statement, decided by the real OPA (``opa eval``).

The policy is what ``opa eval -d PATH ...`` loads: ``.rego`` modules and JSON/YAML data files,
each PATH a file or a directory (OPA's loader rules: a data file in a sub-directory lands under
that directory's name). The decision is a Rego reference (``--policy-query``, default our own
package's ``data.attest_step.tekton_step.deny``) that must be a set or an array of denials,
Conforma's convention; empty passes. Everything else fails closed with one line: a policy that
does not compile, a reference that is undefined (wrong package) or not a collection, OPA
missing, too slow, or answering too much.

The policy is staged first: only visible ``.rego``/``.json``/``.yaml``/``.yml`` files are
copied (a mounted ConfigMap's ``..data`` links are skipped), within a byte and file budget, into
a private directory that OPA reads. The same staging serves the Tekton Task, where the OPA step
runs in its own image and reads :func:`gate_module` (see catalog/task/verify-provenance).
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attest_step.errors import UsageError
from attest_step.fileio import describe, read_input_file

DEFAULT_QUERY = "data.attest_step.tekton_step.deny"
SUFFIXES = (".rego", ".json", ".yaml", ".yml")
MAX_POLICY_BYTES = 4 << 20
"""The most all files of one policy may hold together."""
MAX_POLICY_FILES = 256
MAX_INPUT_BYTES = 8 << 20
"""The most a statement given to the policy may hold (as JSON)."""
MAX_OUTPUT_BYTES = 4 << 20
"""The most OPA may print; beyond it the evaluation fails closed."""
DEFAULT_TIMEOUT = 30.0
SHOWN_DENIALS = 10
_REF = re.compile(r"data(\.[A-Za-z_][A-Za-z0-9_]*)+")
GATE_PACKAGE = "attest_step_gate"
GATE_QUERY = (
    f'print("denials:", data.{GATE_PACKAGE}.denials); data.{GATE_PACKAGE}.decided; '
    f"data.{GATE_PACKAGE}.allow"
)
"""What the Task's OPA step evaluates with ``opa eval --fail`` over :func:`gate_module`."""
NO_POLICY_GATE = (
    f"package {GATE_PACKAGE}\n\n"
    "# No Rego policy was given (REGO_POLICY is empty): nothing to deny.\n"
    "denials := set()\n\ndecided := true\n\nallow := true\n"
)


def is_rego(path: Path) -> bool:
    """True for what ``--policy`` hands to OPA: a ``.rego`` file or a directory."""
    return path.suffix == ".rego" or path.is_dir()


def check_query(query: str) -> str:
    """``query`` when it is a plain reference ``data.a.b``; UsageError otherwise."""
    if not _REF.fullmatch(query):
        raise UsageError(
            f"--policy-query {query!r}: give a reference to a set of denials, such as "
            f"{DEFAULT_QUERY}"
        )
    return query


def gate_module(query: str) -> str:
    """A Rego module that decides like :meth:`RegoPolicy.evaluate`, for ``opa eval --fail``.

    ``decided`` is defined only when ``query`` names a set or an array; ``allow`` only when it
    is also empty. So :data:`GATE_QUERY` is undefined (``--fail``: exit 1) for a denial, an
    undefined decision and a decision of the wrong type alike.
    """
    check_query(query)
    return (
        f"package {GATE_PACKAGE}\n\n"
        "import rego.v1\n\n"
        f"denials := {query}\n\n"
        "decided if is_set(denials)\n\n"
        "decided if is_array(denials)\n\n"
        "allow if {\n\tdecided\n\tcount(denials) == 0\n}\n"
    )


def _unreadable(path: Path, err: OSError) -> UsageError:
    return UsageError(f"--policy {path}: cannot read it ({err.strerror}); check the path")


@dataclass
class _Budget:
    files: int = 0
    size: int = 0

    def take(self, path: Path, size: int) -> None:
        self.files += 1
        self.size += size
        if self.files > MAX_POLICY_FILES:
            raise UsageError(
                f"--policy {path}: more than {MAX_POLICY_FILES} policy files; give fewer"
            )
        if self.size > MAX_POLICY_BYTES:
            raise UsageError(
                f"--policy {path}: the policy files hold more than {MAX_POLICY_BYTES} bytes"
            )


def _copy_file(src: Path, dst: Path, budget: _Budget) -> None:
    data = read_input_file(src, "--policy", limit=MAX_POLICY_BYTES)
    budget.take(src, len(data))
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        raise UsageError(
            f"--policy {src}: another policy path also holds {dst.name} at the same place; "
            "give them as one directory or rename one"
        )
    dst.write_bytes(data)


def _copy_tree(src: Path, dst: Path, budget: _Budget, depth: int = 0) -> None:
    if depth > 16:
        raise UsageError(f"--policy {src}: directories nested too deep; give a smaller tree")
    for entry in sorted(os.scandir(src), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue  # hidden files, and a ConfigMap volume's ..data and ..<timestamp> dirs
        path = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            _copy_tree(path, dst / entry.name, budget, depth + 1)
        elif entry.name.endswith(SUFFIXES) and entry.is_file(follow_symlinks=True):
            _copy_file(path, dst / entry.name, budget)


def _stage_one(src: Path, dst: Path, budget: _Budget) -> None:
    try:
        mode = src.stat().st_mode
    except OSError as err:
        raise _unreadable(src, err) from err
    if stat.S_ISDIR(mode):
        _copy_tree(src, dst, budget)
    elif stat.S_ISREG(mode) and src.name.endswith(SUFFIXES):
        _copy_file(src, dst, budget)
    elif stat.S_ISREG(mode):
        raise UsageError(
            f"--policy {src}: not a Rego module or data file; give .rego, .json, .yaml or "
            "a directory"
        )
    else:
        raise UsageError(f"--policy {src}: not a file or directory ({describe(mode)})")


def stage_roots(paths: Sequence[Path], dest: Path) -> list[tuple[Path, Path]]:
    """Copy each of ``paths`` into ``dest`` as its own OPA root; ``[(staged, original)]``.

    ``opa eval -d staged`` then loads what ``opa eval -d original`` would (visible files with
    our suffixes only). Raises UsageError when a path is missing, empty of Rego, or over budget.
    """
    budget = _Budget()
    roots: list[tuple[Path, Path]] = []
    for index, src in enumerate(paths):
        staged = dest / str(index) / (src.name or "root")
        _stage_one(src, staged, budget)
        if not staged.exists():
            raise UsageError(f"--policy {src}: no .rego, .json or .yaml files in it")
        roots.append((staged, src))
    if not any(p.suffix == ".rego" for root, _ in roots for p in _files(root)):
        shown = " ".join(str(p) for p in paths)
        raise UsageError(f"--policy {shown}: no Rego module (.rego) in it; give the policy")
    return roots


def stage_tree(base: Path, names: Sequence[str], dest: Path) -> None:
    """Copy ``names`` (relative to ``base``; ``.`` or none: all of it) into the one OPA root
    ``dest``, so that ``opa eval -d dest`` loads what ``opa eval -d base/NAME ...`` would: a
    file lands at the root, a directory's content is merged into it (two files at the same
    place are refused). Names may not leave ``base``. The Task's verify step stages its policy
    workspace so; its OPA step takes one root."""
    budget = _Budget()
    for name in names or ["."]:
        rel = Path(name)
        if rel.is_absolute() or ".." in rel.parts:
            raise UsageError(f"policy {name!r}: give a path inside the policy workspace")
        src = base / rel
        _stage_one(src, dest if src.is_dir() else dest / src.name, budget)
    if not any(p.suffix == ".rego" for p in _files(dest)):
        raise UsageError(f"policy {' '.join(names) or base}: no Rego module (.rego) found")


def _files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def find_opa(opa: str | None) -> Path:
    """The OPA binary: ``opa`` as given, else ``opa`` on PATH; UsageError when missing."""
    name = opa or "opa"
    found = shutil.which(name)
    if found is None:
        raise UsageError(
            f"--opa {name}: OPA not found; install OPA v1 (hack/install-tools.sh builds "
            "v1.22.4) or pass its path with --opa"
        )
    return Path(found)


def _limit_output() -> None:  # pragma: no cover - runs in the child
    resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_OUTPUT_BYTES, MAX_OUTPUT_BYTES))


@dataclass
class RegoPolicy:
    """A staged Rego policy, its decision reference and the OPA that evaluates it."""

    opa: Path
    roots: list[tuple[Path, Path]]
    query: str = DEFAULT_QUERY
    timeout: float = DEFAULT_TIMEOUT

    def _where(self, text: str) -> str:
        for staged, original in self.roots:
            text = text.replace(str(staged), str(original))
        return text

    def _run(self, args: list[str], stdin: bytes) -> tuple[int, bytes]:
        with tempfile.TemporaryFile() as out:
            try:
                proc = subprocess.run(
                    [str(self.opa), *args],
                    input=stdin,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=self.timeout + 10,
                    preexec_fn=_limit_output,  # the CLI runs one thread here
                    check=False,
                )
            except subprocess.TimeoutExpired as err:
                raise UsageError(
                    f"--policy: OPA did not decide within {self.timeout:g} s; failing closed"
                ) from err
            out.seek(0)
            output = out.read(MAX_OUTPUT_BYTES + 1)
        if len(output) > MAX_OUTPUT_BYTES:
            raise UsageError(
                f"--policy: OPA printed more than {MAX_OUTPUT_BYTES} bytes; failing closed"
            )
        return proc.returncode, output

    def _error(self, code: int, output: bytes) -> UsageError:
        try:
            errors = json.loads(output)["errors"]
            first = errors[0]
            kind = str(first.get("code", "error"))
            where = first.get("location") or {}
            place = f"{where.get('file', '')}:{where.get('row', '?')}: " if where else ""
            text = f"{place}{kind}: {first.get('message', '')}"
            if len(errors) > 1:
                text += f" (and {len(errors) - 1} more)"
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            kind = ""
            text = " ".join(output.decode(errors="replace").split())[:300] or f"exit status {code}"
        text = " ".join(self._where(text).split())[:500]
        if kind == "eval_cancel_error":
            return UsageError(
                f"--policy: OPA did not decide within {self.timeout:g} s ({text}); failing closed"
            )
        if kind.startswith(("rego_parse", "rego_compile", "rego_type", "rego_unsafe")):
            return UsageError(f"--policy: OPA refused the policy: {text}")
        return UsageError(f"--policy: OPA could not decide: {text}; failing closed")

    def evaluate(self, statement: Mapping[str, Any]) -> list[str]:
        """The denials of ``statement`` (empty: it passes); UsageError when OPA cannot decide."""
        document = json.dumps(statement, separators=(",", ":")).encode()
        if len(document) > MAX_INPUT_BYTES:
            raise UsageError(
                f"--policy: the statement is {len(document)} bytes, more than the "
                f"{MAX_INPUT_BYTES} a Rego policy is given; failing closed"
            )
        args = ["eval", "--format", "json", "--timeout", f"{self.timeout:g}s", "--stdin-input"]
        for staged, _ in self.roots:
            args += ["--data", str(staged)]
        code, output = self._run([*args, self.query], document)
        if code != 0:
            raise self._error(code, output)
        try:
            answer = json.loads(output)
        except ValueError as err:
            raise UsageError("--policy: OPA's answer is not JSON; failing closed") from err
        results = answer.get("result") if isinstance(answer, dict) else None
        if not results:
            raise UsageError(
                f"--policy: {self.query} is undefined: the policy gave no decision (check its "
                "package and --policy-query); failing closed"
            )
        value = results[0]["expressions"][0]["value"]
        if not isinstance(value, list):
            raise UsageError(
                f"--policy: {self.query} is a {type(value).__name__}, not a set of denials; "
                "failing closed"
            )
        return render_denials(value)


def render_denials(values: Sequence[Any]) -> list[str]:
    """One short sentence per denial: ``code: msg`` (Conforma's results), a string, or JSON."""
    shown: list[str] = []
    for value in values[:SHOWN_DENIALS]:
        if isinstance(value, dict) and isinstance(value.get("msg"), str):
            code = value.get("code")
            text = f"{code}: {value['msg']}" if isinstance(code, str) else value["msg"]
        elif isinstance(value, str):
            text = value
        else:
            text = json.dumps(value, sort_keys=True, separators=(",", ":"))
        shown.append(" ".join(text.split())[:300])
    if len(values) > SHOWN_DENIALS:
        shown.append(f"and {len(values) - SHOWN_DENIALS} more")
    return shown
