"""``attest-step attest`` and ``verify-attestation`` end to end, through the real CLI."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from attest_step.cli.main import cli
from attest_step.errors import UsageError
from attest_step.provenance import DECLARED_ANNOTATION, parse_declared_ref
from tests.fixtures.evidence import write_loopback_probe
from tests.fixtures.keys import KeyPair, PemKey
from tests.fixtures.tools import cosign_v2, cosign_v3

HELLO_HEX = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
IMG_HEX = "a" * 64
IMAGE = f"ghcr.io/o/app@sha256:{IMG_HEX}"
FINISHED = "2024-05-01T12:00:00Z"
_OUR_ENV = re.compile(r"^(TEKTON_|ATTEST_|CHAINS-GIT_|IMAGE_URL$|IMAGE_DIGEST$|IMAGES$)")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands read the environment; start every test without our variables."""
    for name in list(os.environ):
        if _OUR_ENV.match(name):
            monkeypatch.delenv(name)


@pytest.fixture
def key(pem_keys: dict[str, PemKey]) -> PemKey:
    return pem_keys["ecdsa-p256"]


@pytest.fixture
def work(tmp_path: Path) -> Iterator[Path]:
    out = tmp_path / "out"
    out.mkdir()
    (out / "hello.txt").write_text("hello\n")
    yield tmp_path


def run(args: list[str], env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, args, env=env, catch_exceptions=False)


def attest(key: PemKey, *args: str, env: dict[str, str] | None = None) -> Result:
    return run(["attest", "--key", str(key.key), "--finished-on", FINISHED, *args], env)


def payload_of(envelope_file: Path) -> dict[str, Any]:
    envelope = json.loads(envelope_file.read_bytes())
    statement: dict[str, Any] = json.loads(base64.b64decode(envelope["payload"]))
    return statement


def one_line_error(result: Result, code: int, text: str) -> None:
    assert result.exit_code == code, result.output + result.stderr
    assert result.stderr.startswith("attest-step: error: ") or result.stderr.startswith("Usage:")
    if result.stderr.startswith("attest-step: error: "):
        assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert text in result.stderr


def test_attest_then_verify_a_tree(key: PemKey, work: Path) -> None:
    envelope = work / "att.intoto.jsonl"
    result = attest(key, "--subject-path", str(work / "out"), "--output-file", str(envelope))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("attested 1 subject(s), envelope sha256:")
    statement = payload_of(envelope)
    assert statement["subject"] == [{"name": "hello.txt", "digest": {"sha256": HELLO_HEX}}]
    assert statement["predicate"]["runDetails"]["metadata"] == {"finishedOn": FINISHED}

    verified = run(
        [
            *["verify-attestation", "--key", str(key.pub), "--envelope", str(envelope)],
            *["--subject-path", str(work / "out")],
        ]
    )
    assert verified.exit_code == 0, verified.stderr
    assert "hello.txt (sha256:" + HELLO_HEX in verified.stdout

    as_json = run(
        [
            *["verify-attestation", "--key", str(key.pub), "--envelope", str(envelope)],
            *["--subject-path", str(work / "out" / "hello.txt"), "--output", "json"],
        ]
    )
    assert as_json.exit_code == 0, as_json.stderr
    summary = json.loads(as_json.stdout)
    assert summary["verified"] is True
    assert summary["predicateType"] == "https://slsa.dev/provenance/v1"
    assert summary["statement"] == statement
    assert summary["subjectsMatched"][0]["subject"]["name"] == "hello.txt"


def test_tekton_environment_reaches_the_provenance(key: PemKey, work: Path) -> None:
    env = {
        "TEKTON_TASKRUN_UID": "uid-1",
        "TEKTON_TASKRUN_NAME": "build-abc",
        "TEKTON_TASKRUN_NAMESPACE": "ci",
        "TEKTON_TASK_NAME": "build",
        "TEKTON_PIPELINERUN_NAME": "release-1",
        "TEKTON_PIPELINE_NAME": "release",
        "CHAINS-GIT_URL": "https://github.com/o/app",
        "CHAINS-GIT_COMMIT": "1" * 40,
        "ATTEST_PARAM_revision": "main",
        "ATTEST_RESOLVED_DEPENDENCIES": "oci://ghcr.io/o/base@sha256:" + "b" * 64,
        "ATTEST_STARTED_ON": "2024-05-01T11:00:00Z",
        "IMAGE_URL": "ghcr.io/o/app",
        "IMAGE_DIGEST": f"sha256:{IMG_HEX}",
        "IMAGES": f"ghcr.io/o/other@sha256:{'c' * 64}",
    }
    envelope = work / "att.json"
    result = attest(key, "--no-upload", "--output-file", str(envelope), env=env)
    assert result.exit_code == 0, result.stderr
    statement = payload_of(envelope)
    assert statement["subject"] == [
        {"name": "ghcr.io/o/app", "digest": {"sha256": IMG_HEX}},
        {"name": "ghcr.io/o/other", "digest": {"sha256": "c" * 64}},
    ]
    definition = statement["predicate"]["buildDefinition"]
    assert definition["externalParameters"] == {
        "params": {"revision": "main"},
        "task": {"name": "build"},
        "pipeline": {"name": "release"},
    }
    assert definition["internalParameters"] == {
        "tekton": {
            "namespace": "ci",
            "taskRun": {"name": "build-abc", "uid": "uid-1"},
            "pipelineRun": {"name": "release-1"},
        }
    }
    assert definition["resolvedDependencies"] == [
        {
            "name": "inputs/result",
            "uri": "git+https://github.com/o/app.git",
            "digest": {"sha1": "1" * 40},
        },
        {"uri": "oci://ghcr.io/o/base", "digest": {"sha256": "b" * 64}},
    ]
    assert statement["predicate"]["runDetails"]["metadata"] == {
        "invocationId": "uid-1",
        "startedOn": "2024-05-01T11:00:00Z",
        "finishedOn": FINISHED,
    }


def test_flags_win_over_the_environment(key: PemKey, work: Path) -> None:
    env = {
        "TEKTON_TASKRUN_UID": "env-uid",
        "ATTEST_PARAM_x": "env",
        "ATTEST_PARAM_y": "env",
        "ATTEST_BUILDER_ID": "https://env.example/builder",
        "ATTEST_STARTED_ON": "2024-05-01T11:00:00Z",
        "CHAINS-GIT_URL": "https://github.com/env/repo",
        "CHAINS-GIT_COMMIT": "1" * 40,
    }
    params_file = work / "params.json"
    params_file.write_text('{"y": "file", "z": ["a", "b"]}')
    envelope = work / "att.json"
    result = attest(
        key,
        *["--image", IMAGE, "--no-upload", "--output-file", str(envelope)],
        *["--invocation-id", "flag-uid", "--param", "x=flag", "--params-file", str(params_file)],
        *["--builder-id", "https://flag.example/builder", "--started-on", "2024-05-01T10:00:00Z"],
        *["--git-url", "https://github.com/flag/repo", "--git-commit", "2" * 40],
        *["--material", "https://example.com/tool.tgz@sha512:" + "d" * 128],
        env=env,
    )
    assert result.exit_code == 0, result.stderr
    predicate = payload_of(envelope)["predicate"]
    assert predicate["buildDefinition"]["externalParameters"]["params"] == {
        "x": "flag",
        "y": "file",
        "z": ["a", "b"],
    }
    assert predicate["buildDefinition"]["resolvedDependencies"] == [
        {
            "name": "inputs/result",
            "uri": "git+https://github.com/flag/repo.git",
            "digest": {"sha1": "2" * 40},
        },
        {"uri": "https://example.com/tool.tgz", "digest": {"sha512": "d" * 128}},
    ]
    details = predicate["runDetails"]
    assert details["builder"]["id"] == "https://flag.example/builder"
    assert details["metadata"]["invocationId"] == "flag-uid"
    assert details["metadata"]["startedOn"] == "2024-05-01T10:00:00Z"


def test_without_output_file_the_envelope_goes_to_stdout(key: PemKey, work: Path) -> None:
    result = attest(key, "--subject-path", str(work / "out"))
    assert result.exit_code == 0, result.stderr
    envelope_file = work / "stdout.json"
    envelope_file.write_text(result.stdout)
    assert payload_of(envelope_file)["subject"][0]["digest"]["sha256"] == HELLO_HEX
    verified = run(["verify-attestation", "--key", str(key.pub), "--envelope", str(envelope_file)])
    assert verified.exit_code == 0, verified.stderr

    as_json = attest(key, "--subject-path", str(work / "out"), "--output", "json")
    summary = json.loads(as_json.stdout)
    assert summary["envelope"]["payloadType"] == "application/vnd.in-toto+json"
    assert summary["outputFile"] is None
    assert summary["uploads"] == []


def test_results_name_the_stored_attestation(key: PemKey, work: Path) -> None:
    envelope = work / "att.json"
    step_result = work / "step-results" / "ATTESTATION"
    result = attest(
        key,
        *["--subject-path", str(work / "out"), "--output-file", str(envelope)],
        *["--results-dir", str(work / "results"), "--attestation-result", str(step_result)],
        "--output",
        "json",
    )
    assert result.exit_code == 0, result.stderr
    digest = "sha256:" + hashlib.sha256(envelope.read_bytes()).hexdigest()
    for path in (work / "results" / "ATTESTATION", step_result):
        value = json.loads(path.read_bytes())
        assert value == {"uri": str(envelope.resolve()), "digest": digest}
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", value["digest"])
    summary = json.loads(result.stdout)
    assert summary["envelopeDigest"] == digest
    assert summary["attestation"] == {"uri": str(envelope.resolve()), "digest": digest}


def test_upload_into_an_oci_layout_then_verify_the_image(key: PemKey, work: Path) -> None:
    layout = work / "layout"
    spool = work / "spool"
    result = attest(
        key,
        *["--image", IMAGE, "--oci-layout", str(layout), "--registry-layout", "tag"],
        *["--spool-dir", str(spool), "--results-dir", str(work / "results"), "--output", "json"],
    )
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert [u["kind"] for u in summary["uploads"]] == ["attestation"]
    assert "envelope" not in summary
    outputs = json.loads((work / "results" / "ATTESTATION").read_bytes())
    assert outputs["uri"] == summary["uploads"][0]["location"]
    spooled = list(spool.glob("*.dsse.json"))
    assert len(spooled) == 1
    assert outputs["digest"] == "sha256:" + hashlib.sha256(spooled[0].read_bytes()).hexdigest()

    base = ["verify-attestation", "--key", str(key.pub), "--oci-layout", str(layout)]
    assert run([*base, IMAGE]).exit_code == 0
    other = run([*base, f"ghcr.io/o/app@sha256:{'b' * 64}"])
    one_line_error(other, 1, "no attestations found")


def test_require_hermetic_and_policy(key: PemKey, work: Path) -> None:
    plain, hermetic = work / "plain.json", work / "hermetic.json"
    assert attest(key, "--image", IMAGE, "--no-upload", "--output-file", str(plain)).exit_code == 0
    probe = write_loopback_probe(work)
    made = attest(
        key,
        *["--image", IMAGE, "--no-upload", "--output-file", str(hermetic)],
        *["--declare-hermetic", "build", "--task-step", "build", "--network-evidence", str(probe)],
    )
    assert made.exit_code == 0, made.stderr
    byproducts = payload_of(hermetic)["predicate"]["runDetails"]["byproducts"]
    assert [b["name"] for b in byproducts] == ["attest-step/network-isolation/build"]

    base = ["verify-attestation", "--key", str(key.pub), "--image", IMAGE, "--envelope"]
    one_line_error(run([*base, str(plain), "--require-hermetic"]), 1, "no network-isolation")
    assert run([*base, str(hermetic), "--require-hermetic"]).exit_code == 0

    policy = work / "policy.yaml"
    policy.write_text("allowedBuilderIds: [https://builders.example/other]\n")
    one_line_error(
        run([*base, str(hermetic), "--policy", str(policy)]), 1, "not in allowedBuilderIds"
    )
    policy.write_text("allowedBuilderIds: [https://attest-step.dev/builders/tekton-step/v1]\n")
    assert run([*base, str(hermetic), "--policy", str(policy)]).exit_code == 0


def test_verification_failures_exit_1_with_one_line(
    key: PemKey, pem_keys: dict[str, PemKey], work: Path
) -> None:
    envelope = work / "att.json"
    assert (
        attest(key, "--subject-path", str(work / "out"), "--output-file", str(envelope)).exit_code
        == 0
    )
    base = ["verify-attestation", "--envelope", str(envelope)]
    good = ["--key", str(key.pub)]

    other_key = pem_keys["ecdsa-p384"].pub
    one_line_error(run([*base, "--key", str(other_key)]), 1, "verifies with the given key")
    one_line_error(run([*base, *good, "--type", "spdx"]), 1, "expected 'https://spdx.dev/Document'")
    (work / "out" / "hello.txt").write_text("hellO\n")
    one_line_error(
        run([*base, *good, "--subject-path", str(work / "out")]), 1, "is not among the subjects"
    )
    one_line_error(run([*base, *good, "--image", IMAGE]), 1, "is not among the subjects")

    document = json.loads(envelope.read_bytes())
    payload = bytearray(base64.b64decode(document["payload"]))
    payload[payload.index(b"hello.txt")] ^= 0x01
    document["payload"] = base64.b64encode(bytes(payload)).decode()
    envelope.write_text(json.dumps(document))
    one_line_error(run([*base, *good]), 1, "verifies with the given key")


def test_every_byte_of_a_small_envelope_file_through_the_cli(key: PemKey, work: Path) -> None:
    envelope = work / "att.json"
    result = attest(key, "--image", IMAGE, "--no-upload", "--output-file", str(envelope))
    assert result.exit_code == 0, result.stderr
    original = envelope.read_bytes()
    statement = payload_of(envelope)
    tampered = work / "tampered.json"
    args = ["verify-attestation", "--key", str(key.pub), "--envelope", str(tampered)]
    accepted = 0
    for index in range(0, len(original), 5):  # every byte is covered in test_verify.py
        changed = bytearray(original)
        changed[index] ^= 0x01
        tampered.write_bytes(bytes(changed))
        outcome = run([*args, "--image", IMAGE, "--output", "json"])
        assert outcome.exit_code in (0, 1), outcome.stderr
        if outcome.exit_code == 0:
            # Only changes the verifier ignores (e.g. the name of the "keyid" key) pass,
            # and then what was verified is exactly what was signed.
            accepted += 1
            assert json.loads(outcome.stdout)["statement"] == statement
        else:
            assert outcome.stderr.count("\n") == 1
    assert accepted < 5


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["--image", "ghcr.io/o/app@sha256:abc"], "--image: 'sha256:abc' is not a digest"),
        (["--image", "ghcr.io/o/app:latest"], "has no digest"),
        (["--image", IMAGE, "--param", "novalue"], "has no '='"),
        (
            ["--image", IMAGE, "--started-on", "yesterday"],
            "--started-on: 'yesterday' is not an RFC 3339",
        ),
        ([], "nothing to attest"),
        (["--image", IMAGE, "--git-url", "https://g/r"], "go together"),
        (["--image", IMAGE, "--resolved-dependency", "x@sha256:1"], "64 lowercase hex"),
        (["--image", IMAGE, "--builder-id", "builder"], "is not a URI"),
        (["--image", IMAGE, "--results-dir", "r", "--no-upload"], "needs a stored attestation"),
        (["--exclude", "*.o", "--image", IMAGE], "apply to --subject-path"),
        (["--image", IMAGE, "--params-file", "/nonexistent.json"], "cannot read it"),
    ],
)
def test_attest_usage_errors_exit_2(key: PemKey, args: list[str], text: str) -> None:
    one_line_error(attest(key, *args), 2, text)


def test_attest_env_errors_name_the_variable(key: PemKey) -> None:
    result = attest(key, env={"IMAGE_URL": "ghcr.io/o/app", "IMAGE_DIGEST": "sha256:zz"})
    one_line_error(result, 2, "IMAGE_URL/IMAGE_DIGEST")
    result = attest(key, "--image", IMAGE, env={"ATTEST_STARTED_ON": "noon"})
    one_line_error(result, 2, "ATTEST_STARTED_ON")


def test_attest_missing_inputs_are_one_line_errors(key: PemKey, work: Path) -> None:
    result = attest(key, "--subject-path", str(work / "missing"))
    assert result.exit_code in (1, 2)
    one_line_error(result, result.exit_code, "missing")
    missing_key = run(["attest", "--key", str(work / "nokey.pem"), "--image", IMAGE])
    assert missing_key.exit_code in (1, 2)
    one_line_error(missing_key, missing_key.exit_code, "nokey.pem")


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["--type", "not a type"], "--type"),
        ([], "give exactly one of IMAGE or --envelope"),
        (["--envelope", "e.json", IMAGE], "give exactly one of IMAGE or --envelope"),
        (["ghcr.io/o/app:latest"], "IMAGE: 'ghcr.io/o/app:latest' has no digest"),
        (["--envelope", "/nonexistent/e.json"], "cannot read it"),
        (["--bogus"], "No such option"),
    ],
)
def test_verify_usage_errors_exit_2(key: PemKey, args: list[str], text: str) -> None:
    result = run(["verify-attestation", "--key", str(key.pub), *args])
    one_line_error(result, 2, text)


def test_encrypted_cosign_key(cosign_key_pair: KeyPair, work: Path) -> None:
    envelope = work / "att.json"
    result = run(
        [
            *["attest", "--key", str(cosign_key_pair.key), "--image", IMAGE, "--no-upload"],
            *["--output-file", str(envelope)],
        ],
        env={"COSIGN_PASSWORD": cosign_key_pair.password},
    )
    assert result.exit_code == 0, result.stderr
    verified = run(
        ["verify-attestation", "--key", str(cosign_key_pair.pub), "--envelope", str(envelope)]
    )
    assert verified.exit_code == 0, verified.stderr


@pytest.mark.cosign
@pytest.mark.parametrize("which", ["v3", "v2"])
def test_cosign_verifies_our_attestation(key: PemKey, work: Path, which: str) -> None:
    cosign = cosign_v3() if which == "v3" else cosign_v2()
    envelope = work / "att.json"
    assert (
        attest(key, "--subject-path", str(work / "out"), "--output-file", str(envelope)).exit_code
        == 0
    )
    base = [str(cosign), "verify-blob-attestation", "--key", str(key.pub)]
    base += ["--signature", str(envelope), "--insecure-ignore-tlog"]
    env = {**os.environ, "TUF_ROOT": str(work / "tuf"), "SIGSTORE_NO_CACHE": "1"}
    ok = subprocess.run(
        [*base, "--type", "slsaprovenance1", str(work / "out" / "hello.txt")],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert "Verified OK" in ok.stderr
    wrong_type = subprocess.run(
        [*base, "--type", "spdx", str(work / "out" / "hello.txt")],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert wrong_type.returncode != 0


# --- --declared-ref / ATTEST_DECLARED_REFS: the refs a run came from, as stated (issue 14) ---

BUNDLE = "registry.example/catalog/hermetic-build@sha256:" + "b" * 64
GIT_REF = "git+https://github.com/example/catalog.git@sha1:" + "c" * 40


def test_declared_refs_are_recorded_as_declared(key: PemKey, work: Path) -> None:
    envelope = work / "att.json"
    result = attest(
        key,
        *["--image", IMAGE, "--no-upload", "--output-file", str(envelope)],
        *["--declared-ref", f"task={BUNDLE}", "--declared-ref", f"stepAction/attest={GIT_REF}"],
        env={"ATTEST_DECLARED_REFS": f"pipeline={GIT_REF}"},  # the flags win
    )
    assert result.exit_code == 0, result.stderr
    deps = payload_of(envelope)["predicate"]["buildDefinition"]["resolvedDependencies"]
    declared = {DECLARED_ANNOTATION: "declared"}
    assert deps == [
        {
            "name": "task",
            "uri": "oci://registry.example/catalog/hermetic-build",
            "digest": {"sha256": "b" * 64},
            "annotations": declared,
        },
        {
            "name": "stepAction/attest",
            "uri": "git+https://github.com/example/catalog.git",
            "digest": {"sha1": "c" * 40},
            "annotations": declared,
        },
    ]

    from_env = work / "env.json"
    result = attest(
        key,
        *["--image", IMAGE, "--no-upload", "--output-file", str(from_env)],
        env={"ATTEST_DECLARED_REFS": f"pipeline={GIT_REF}\npipelineTask={BUNDLE}"},
    )
    assert result.exit_code == 0, result.stderr
    deps = payload_of(from_env)["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert [d["name"] for d in deps] == ["pipeline", "pipelineTask"]

    bad = attest(
        key,
        *["--image", IMAGE, "--no-upload", "--output-file", str(work / "x.json")],
        env={"ATTEST_DECLARED_REFS": "task=nothing"},
    )
    one_line_error(bad, 2, "ATTEST_DECLARED_REFS")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (BUNDLE, "give NAME=URI@ALG:HEX"),
        (f"image={BUNDLE}", "NAME one of task"),
        (f"stepAction/Bad_Step={BUNDLE}", "NAME one of task"),
        ("task=registry.example/catalog/x:latest", "has no '@'"),
        ("task=git+https://github.com/x/y.git@sha1:abc", "40 lowercase hex"),
    ],
)
def test_bad_declared_refs_are_refused(text: str, says: str) -> None:
    with pytest.raises(UsageError, match=re.escape(says)):
        parse_declared_ref(text)
