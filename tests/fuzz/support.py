"""Shared pieces of the property-based (fuzz) suites.

Budget: ``ATTEST_STEP_FUZZ=long`` (``make fuzz``) runs 2000 examples per property with a
fresh random seed each run; anything else (``make test``, CI) runs 50, derandomized so a
run is repeatable. Every suite states its contract on the public entry point: any input
either parses, or raises the documented error type (never another exception); for the CLI,
exit 0, 1 or 2 with one stderr line and no traceback, never 70 (our own bug).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from attest_step.cli.main import cli

settings.register_profile(
    "attest-step-fuzz-ci",
    max_examples=50,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "attest-step-fuzz-long",
    max_examples=2000,
    deadline=None,
    derandomize=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
PROFILE = (
    "attest-step-fuzz-long"
    if os.environ.get("ATTEST_STEP_FUZZ") == "long"
    else "attest-step-fuzz-ci"
)
fuzz = settings(settings.get_profile(PROFILE))
"""Decorator for every property of tests/fuzz (the profile only applies where it is used)."""

# ------------------------------------------------------------------ strategies

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


def json_bytes(value: Any) -> bytes:
    return json.dumps(value).encode()


def mutate(data: bytes, edits: list[tuple[int, int]]) -> bytes:
    """``data`` with each (position, byte) applied: replace, or append past the end."""
    out = bytearray(data)
    for position, byte in edits:
        if out and position < len(out):
            out[position] = byte
        else:
            out.append(byte)
    return bytes(out)


edits = st.lists(st.tuples(st.integers(0, 4096), st.integers(0, 255)), max_size=6)

# ------------------------------------------------------------------ CLI contract


def run_cli(args: list[str], env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, args, env=env, catch_exceptions=False)


def assert_cli_contract(result: Result, allowed: tuple[int, ...] = (0, 1, 2)) -> None:
    """A documented exit code; on failure exactly one line on stderr and no traceback."""
    assert result.exit_code in allowed, (result.exit_code, result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    assert "internal error" not in result.stderr
    if result.exit_code != 0:
        assert result.stderr.count("\n") == 1, result.stderr


class Scratch:
    """Hands out one directory at a time under ``base``, removing the one handed out before."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.current: Path | None = None
        self.count = 0

    def __call__(self, name: str = "work") -> Path:
        if self.current is not None:
            shutil.rmtree(self.current, ignore_errors=True)
        self.count += 1
        self.current = self.base / f"{name}-{self.count}"
        self.current.mkdir()
        return self.current
