"""Differential check: regopy (rego-cpp) against the real OPA on policy/release (issue 14).

Why attest-step does not evaluate Rego in-process (docs/decisions.md, 2026-12-04). Makes the
attestations of tests/integration/test_policy_engines.py (its CASES: one passing, five denied)
with the project's venv, then asks ``data.attest_step.tekton_step.deny`` of both engines, with
policy/data/rule_data.yml, over each envelope and its bare statement, and prints JSON: per input
whether the two answers are equal. regopy is not a dependency; run it from a throwaway venv:

  python3 -m venv /tmp/regopy && /tmp/regopy/bin/pip install regopy==1.5.2 PyYAML
  /tmp/regopy/bin/python hack/regopy_differential.py [--work DIR]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OPA = REPO / ".tools" / "bin" / "opa"
QUERY = "data.attest_step.tekton_step.deny"
DATA = ("-d", str(REPO / "policy/data/rule_data.yml"), "--stdin-input")


def make_envelopes(work: Path) -> None:
    """Run in the project's venv: one envelope per case, keys from the pinned cosign."""
    sys.path.insert(0, str(REPO))
    from tests.fixtures.keys import KeyPair  # noqa: PLC0415
    from tests.integration.test_policy_engines import CASES, attest  # noqa: PLC0415

    keys = work / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [str(REPO / ".tools/bin/cosign"), "generate-key-pair"],
        cwd=keys,
        env={**os.environ, "COSIGN_PASSWORD": "differential"},
        check=True,
        capture_output=True,
    )
    pair = KeyPair(key=keys / "cosign.key", pub=keys / "cosign.pub", password="differential")
    for case in CASES:
        case_dir = work / case.name
        case_dir.mkdir()
        out = ("--subject-path", str(case_dir / "out"), "--output-file", str(case_dir / "att.json"))
        attest(pair, case, case_dir, *out)


def opa_answer(document: Any) -> Any:
    proc = subprocess.run(
        [str(OPA), "eval", "-f", "json", "-d", str(REPO / "policy/release"), *DATA, QUERY],
        input=json.dumps(document),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(proc.stdout)["result"][0]["expressions"][0]["value"]


def regopy_answer(document: Any) -> tuple[Any, str]:
    import regopy  # type: ignore[import-not-found]  # noqa: PLC0415
    import yaml  # noqa: PLC0415

    interpreter = regopy.Interpreter()
    rules = (REPO / "policy/release/tekton_step.rego").read_text()
    interpreter.add_module("tekton_step.rego", rules)
    interpreter.add_data(yaml.safe_load((REPO / "policy/data/rule_data.yml").read_text()))
    interpreter.set_input(document)
    # regopy's Output parses this text as JSON; read the text itself to see what it answered
    from regopy.rego_shared import (  # type: ignore[import-not-found]  # noqa: PLC0415
        rego_output_string,
        rego_query,
    )

    raw: str = rego_output_string(rego_query(interpreter._impl, QUERY))
    try:
        return json.loads(raw)["expressions"][0], raw
    except ValueError:
        return None, raw


def main() -> int:
    parser = argparse.ArgumentParser(prog="hack/regopy_differential.py")
    parser.add_argument("--work", type=Path)
    parser.add_argument("--make", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make:
        make_envelopes(args.make)
        return 0
    import regopy  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp) / "cases"
        venv_python = REPO / ".venv" / "bin" / "python"
        subprocess.run([str(venv_python), __file__, "--make", str(work)], check=True)
        rows = []
        for envelope_file in sorted(work.glob("*/att.json")):
            envelope = json.loads(envelope_file.read_text())
            statement = json.loads(base64.b64decode(envelope["payload"]))
            for shape, document in (("envelope", envelope), ("statement", statement)):
                want = opa_answer(document)
                got, raw = regopy_answer(document)
                row = {"case": envelope_file.parent.name, "input": shape, "same": got == want}
                if got != want:
                    row |= {
                        "opa": want,
                        "regopy": got if got is not None else f"not JSON: {raw[:400]}",
                    }
                rows.append(row)
    version = subprocess.run([str(OPA), "version"], capture_output=True, text=True, check=True)
    summary = {
        "regopy": regopy.__version__,
        "opa": version.stdout.splitlines()[0].split()[-1],
        "inputs": len(rows),
        "same": sum(r["same"] for r in rows),
        "rows": rows,
    }
    print(json.dumps(summary, indent=2))
    return 0 if summary["same"] == summary["inputs"] else 1


if __name__ == "__main__":
    sys.exit(main())
