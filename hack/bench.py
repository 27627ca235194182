#!/usr/bin/env python3
"""`make bench`: measure speed, compare with targets, write one JSON document.

Sections are modules ``hack/bench_<name>.py`` next to this file, discovered by name. Each
exposes ``run() -> dict`` (it may also accept ``quick: bool``; ``BENCH_QUICK=1`` is set in the
environment too). A section's dict is stored under ``sections.<name>``. If it has a list
``targets`` of ``{"name", "measured", "target", "unit", "better": "higher"|"lower"}`` items,
the harness adds ``ratio`` and ``pass`` to each and copies them into the top-level ``targets``.
A section may also return ``references``, ``{"name", "measured", "unit", "why"}`` items that
have no target (figures a reader needs beside the graded ones); they are printed as INFO.
A section that raises is recorded as ``{"error": ...}`` and fails the run.

Every section should compare within the same run (ratios against a ceiling measured right
before), because the machine may be shared and absolute numbers are noisy.

    .venv/bin/python hack/bench.py --output bench.json [--quick] [--section hashing]
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import inspect
import json
import os
import platform
import ssl
import sys
import time
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent


def discover(only: list[str]) -> dict[str, Path]:
    found = {
        path.stem.removeprefix("bench_"): path
        for path in sorted(HERE.glob("bench_*.py"))
        if path.stem != "bench_"
    }
    if only:
        missing = [name for name in only if name not in found]
        if missing:
            raise SystemExit(f"bench: no section {missing}; have {sorted(found)}")
        found = {name: found[name] for name in only}
    return found


def load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def machine_info() -> dict[str, Any]:
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 1
    return {
        "cores": os.cpu_count(),
        "usable_cpus": usable,
        "cpu_model": cpu_model,
        "python": platform.python_version(),
        "openssl": ssl.OPENSSL_VERSION,
        "platform": platform.platform(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "loadavg_start": list(os.getloadavg()),
    }


def compile_bytecode() -> None:
    """Write attest_step's ``__pycache__`` first, as an installed wheel (and the image) has it.

    With an editable install and ``PYTHONDONTWRITEBYTECODE=1`` (set in some shells and in
    the image), every ``attest-step`` process would otherwise compile its modules from
    source (10-25 ms per process), which no installed copy does; the tools compared
    against (in-toto from PyPI, cosign) are measured as installed."""
    import compileall  # noqa: PLC0415 - only here

    compileall.compile_dir(str(HERE.parent / "attest_step"), quiet=1)


def grade(target: dict[str, Any]) -> dict[str, Any]:
    measured = float(target["measured"])
    goal = float(target["target"])
    higher = target.get("better", "higher") == "higher"
    ratio = measured / goal if goal else float("inf")
    out = dict(target)
    out["ratio_to_target"] = round(ratio, 3)
    out["pass"] = ratio >= 1.0 if higher else ratio <= 1.0
    return out


def run_section(module: ModuleType, quick: bool) -> dict[str, Any]:
    run = module.run
    params = inspect.signature(run).parameters
    result = run(quick=quick) if "quick" in params else run()
    if not isinstance(result, dict):
        raise TypeError(f"{module.__name__}.run() returned {type(result).__name__}, not dict")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=Path("bench.json"))
    parser.add_argument("--quick", action="store_true", help="smaller data, fewer repeats")
    parser.add_argument("--section", action="append", default=[], help="run only this section")
    args = parser.parse_args()
    if args.quick:
        os.environ["BENCH_QUICK"] = "1"
    sys.path.insert(0, str(HERE.parent))
    compile_bytecode()

    doc: dict[str, Any] = {"machine": machine_info(), "quick": args.quick, "sections": {}}
    targets: list[dict[str, Any]] = []
    references: list[dict[str, Any]] = []
    ok = True
    for name, path in discover(args.section).items():
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        try:
            result = run_section(load(name, path), args.quick)
        except Exception as err:
            traceback.print_exc()
            result = {"error": f"{type(err).__name__}: {err}"}
            ok = False
        graded = [grade(t) for t in result.get("targets", [])]
        if graded:
            result["targets"] = graded
        for item in graded:
            targets.append({"section": name, **item})
            ok = ok and bool(item["pass"])
        references.extend({"section": name, **item} for item in result.get("references", []))
        result["section_seconds"] = round(time.perf_counter() - started, 2)
        doc["sections"][name] = result
    doc["machine"]["loadavg_end"] = list(os.getloadavg())
    doc["targets"] = targets
    doc["pass"] = ok
    args.output.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    for item in targets:
        verdict = "PASS" if item["pass"] else "FAIL"
        print(
            f"{verdict}  {item['section']}/{item['name']}: {item['measured']} "
            f"{item.get('unit', '')} (target {item['target']})",
            file=sys.stderr,
        )
    for item in references:
        print(
            f"INFO  {item['section']}/{item['name']}: {item['measured']} {item.get('unit', '')} "
            f"({item.get('why', 'no target')})",
            file=sys.stderr,
        )
    print(f"bench: wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
