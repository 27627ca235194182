"""The catalog's verify-provenance Task with a user's Rego policy, locally.

Local-only (the catalog's own tests/ must all succeed on a cluster): TaskRuns built here
against the real catalog. The attestations are made by the real CLI with the test key pair of
the Task's tests/resources.yaml; the policy is policy/release/tekton_step.rego with
policy/data/rule_data.yml in a ConfigMap, as a user would load it (``kubectl create configmap
--from-file``). The Task's ``rego`` step runs OPA (``opa`` from .tools/bin: the executor runs
steps with this machine's tools; the image is built by hack/image/opa.py).

- a provenance the policy accepts: VERIFIED "true";
- one it denies (another builder id): VERIFIED "false", the rule named in the rego step's log;
- a REGO_QUERY the policy does not define: fails closed;
- no REGO_POLICY: the rego step's gate denies nothing; the params' policy decides, as before.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.e2e.executor import RunOutcome
from tests.e2e.executor.catalog import CATALOG, claim, config_map, executor_for, task_run
from tests.e2e.test_executor import built  # noqa: F401  (fixture)
from tests.fixtures.keys import KeyPair
from tests.fixtures.tools import require_tool
from tests.integration.test_policy_engines import CASES, RULE_DATA, RULES, Case, attest

pytestmark = [pytest.mark.e2e, pytest.mark.netns]

TESTS = CATALOG / "task" / "verify-provenance" / "0.1" / "tests"
GOOD, BUILDER = CASES[0], next(c for c in CASES if c.name == "builder")
REGO_POLICY = "tekton_step.rego rule_data.yml"


def catalog_test_keys(where: Path) -> KeyPair:
    """The throwaway key pair of the Task's tests/resources.yaml, written to files."""
    for doc in yaml.safe_load_all((TESTS / "resources.yaml").read_text()):
        if doc and doc.get("kind") == "Secret" and doc["metadata"]["name"] == "signing-secrets":
            data = doc["stringData"]
            (where / "cosign.key").write_text(data["cosign.key"])
            (where / "cosign.pub").write_text(data["cosign.pub"])
            return KeyPair(where / "cosign.key", where / "cosign.pub", data["cosign.password"])
    raise AssertionError("no Secret signing-secrets in the test resources")


def run_verify(
    tmp_path: Path, case: Case, name: str, *, bind_policy: bool = True, **params: str
) -> RunOutcome:
    require_tool("opa")
    ex = executor_for(TESTS, tmp_path / "run")
    artifacts = ex.cluster.claim_dir("rego-artifacts")
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir()
    envelope = artifacts / ".attest" / "provenance.dsse.json"
    envelope.parent.mkdir()
    attest(
        catalog_test_keys(keys_dir),
        case,
        artifacts,
        *("--subject-path", str(artifacts / "out"), "--output-file", str(envelope)),
    )
    ex.cluster.configmaps["release-policy"] = {
        "tekton_step.rego": RULES.read_bytes(),
        "rule_data.yml": RULE_DATA.read_bytes(),
    }
    given = {"ENVELOPE_PATH": ".attest/provenance.dsse.json", "SUBJECT_PATHS": "out", **params}
    workspaces = {
        "public-key": config_map("signing-public-key"),
        "artifacts": claim("rego-artifacts"),
    }
    if bind_policy:
        workspaces["policy"] = config_map("release-policy")
    return ex.run(task_run(f"verify-rego-{name}", "verify-provenance", given, workspaces))


def step_log(outcome: RunOutcome, step: str) -> str:
    return "\n".join(v for k, v in outcome.logs.items() if k.endswith(step))


def test_a_rego_policy_that_passes(built: None, tmp_path: Path) -> None:  # noqa: F811
    outcome = run_verify(tmp_path, GOOD, "pass", REGO_POLICY=REGO_POLICY)
    assert outcome.succeeded, f"{outcome.message}\n{outcome.logs}"
    assert outcome.result("VERIFIED") == "true"
    assert outcome.result("REASON").endswith("and its Rego policy")
    assert "denials: set()" in step_log(outcome, "rego")


def test_a_rego_policy_that_denies(built: None, tmp_path: Path) -> None:  # noqa: F811
    outcome = run_verify(tmp_path, BUILDER, "deny", REGO_POLICY=REGO_POLICY)
    assert not outcome.succeeded
    assert outcome.result("VERIFIED") == "false"
    assert "Rego policy: denied" in outcome.result("REASON")
    log = step_log(outcome, "rego")
    assert "attest_step.slsa_builder_id_accepted" in log, outcome.logs


def test_a_query_the_policy_does_not_define_fails_closed(
    built: None,  # noqa: F811
    tmp_path: Path,
) -> None:
    outcome = run_verify(
        tmp_path, GOOD, "undefined", REGO_POLICY=REGO_POLICY, REGO_QUERY="data.acme.deny"
    )
    assert not outcome.succeeded
    assert outcome.result("VERIFIED") == "false"
    assert "denials: <undefined>" in step_log(outcome, "rego"), outcome.logs


def test_without_a_rego_policy_the_task_decides_as_before(
    built: None,  # noqa: F811
    tmp_path: Path,
) -> None:
    outcome = run_verify(
        tmp_path,
        BUILDER,
        "none",
        bind_policy=False,
        ALLOWED_SOURCE_REPOS="https://github.com/example/app",
    )
    assert outcome.succeeded, f"{outcome.message}\n{outcome.logs}"
    assert outcome.result("VERIFIED") == "true"
    assert outcome.result("REASON") == "verified .attest/provenance.dsse.json"
