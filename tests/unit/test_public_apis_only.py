"""attest_step uses only the documented APIs of its dependencies and of the standard library
(issue 15): no private module (``nacl._sodium``), no private function (``atexit._run_exitfuncs``).

A static check over the package's source: every import, and every attribute taken from an
imported module, whose name starts with one underscore fails it. ``os._exit`` is allowed: it is
documented (the way a forked child ends without running the parent's cleanup).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "attest_step"
DOCUMENTED = {("os", "_exit")}


def _private(name: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in name.split("."))


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    modules: dict[str, str] = {}  # local name -> module it names
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _private(alias.name) and not alias.name.startswith("attest_step"):
                    found.append(f"{path.name}:{node.lineno} import {alias.name}")
                modules[alias.asname or alias.name.split(".")[0]] = alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.startswith("attest_step") or node.module == "__future__":
                continue
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                if _private(full):
                    found.append(
                        f"{path.name}:{node.lineno} from {node.module} import {alias.name}"
                    )
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
            and _private(node.attr)
            and (modules[node.value.id], node.attr) not in DOCUMENTED
        ):
            found.append(f"{path.name}:{node.lineno} {modules[node.value.id]}.{node.attr}")
    return found


def test_no_private_api_of_a_dependency_or_the_standard_library() -> None:
    found = [v for path in sorted(PACKAGE.rglob("*.py")) for v in _violations(path)]
    assert found == []


def test_the_check_finds_what_it_looks_for(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import atexit\nimport os\nfrom nacl._sodium import lib\n"
        "atexit._run_exitfuncs()\nos._exit(0)\n"
    )
    assert _violations(sample) == [
        "sample.py:3 from nacl._sodium import lib",
        "sample.py:4 atexit._run_exitfuncs",
    ]
