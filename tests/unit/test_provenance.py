"""The Statement and SLSA v1 predicate ``attest`` writes, checked against the in-toto bindings."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement as PbStatement

from attest_step.errors import UsageError
from attest_step.model import Subject
from attest_step.provenance import (
    BUILD_TYPE,
    DEFAULT_BUILDER_ID,
    SLSA_PROVENANCE_V1,
    STATEMENT_TYPE,
    ProvenanceInputs,
    RunContext,
    build_statement,
    format_time,
    git_dependency,
    load_params_file,
    merge_params,
    parse_dependency,
    parse_param,
    parse_time,
    serialize_statement,
)
from attest_step.statement import parse_statement
from attest_step.tekton_env import read_context, steps_prepared_time
from attest_step.verify import check_slsa_v1_predicate

HEX_A = "a" * 64
FINISHED = datetime(2024, 5, 1, 12, 0, 30, tzinfo=UTC)


def strict_parse(statement: dict[str, Any]) -> tuple[Any, Any]:
    """Parse like protojson (unknown fields are errors), then run the bindings' validator."""
    pb = json_format.ParseDict(statement, statement_pb2.Statement(), ignore_unknown_fields=False)
    PbStatement.copy_from_pb(pb).validate()
    prov = json_format.ParseDict(
        statement["predicate"], provenance_pb2.Provenance(), ignore_unknown_fields=False
    )
    return pb, prov


def full_inputs() -> ProvenanceInputs:
    return ProvenanceInputs(
        subjects=[
            Subject("app.tar", {"sha256": HEX_A}),
            Subject("ghcr.io/o/app", {"sha256": HEX_A}),
        ],
        finished_on=FINISHED,
        builder_id="https://tekton.example.com/attest-step",
        params={"revision": "main", "flags": ["-a", "-b"], "env": {"K": "V"}},
        run=RunContext(
            taskrun_name="build-run-x",
            taskrun_uid="5f1c-uid",
            namespace="ci",
            task_name="build",
            pipelinerun_name="pr-1",
            pipelinerun_uid="pr-uid",
            pipeline_name="release",
        ),
        resolved_dependencies=[
            git_dependency("https://github.com/o/app", "0" * 40),
            parse_dependency("ghcr.io/o/base@sha256:" + "b" * 64),
        ],
        byproducts=[{"name": "network", "mediaType": "application/json", "content": "e30="}],
        started_on=FINISHED - timedelta(minutes=5),
        hashing={"dirDigest": False, "excludes": ["*.tmp"]},
    )


def test_statement_has_exactly_the_four_fields_and_parses_strictly() -> None:
    statement = build_statement(full_inputs())
    assert set(statement) == {"_type", "subject", "predicateType", "predicate"}
    assert statement["_type"] == STATEMENT_TYPE
    assert statement["predicateType"] == SLSA_PROVENANCE_V1
    pb, prov = strict_parse(statement)
    # The binding round-trips to exactly what was written: no field was lost or renamed.
    assert json_format.MessageToDict(pb) == statement
    assert prov.build_definition.build_type == BUILD_TYPE
    assert prov.run_details.builder.id == "https://tekton.example.com/attest-step"
    assert prov.run_details.metadata.invocation_id == "5f1c-uid"
    assert prov.run_details.metadata.finished_on.ToDatetime(UTC) == FINISHED
    assert prov.run_details.metadata.started_on.ToDatetime(UTC) == FINISHED - timedelta(minutes=5)
    check_slsa_v1_predicate(statement["predicate"])


def test_predicate_fields_land_where_the_build_type_says() -> None:
    predicate = build_statement(full_inputs())["predicate"]
    definition = predicate["buildDefinition"]
    assert definition["externalParameters"] == {
        "params": {"revision": "main", "flags": ["-a", "-b"], "env": {"K": "V"}},
        "task": {"name": "build"},
        "pipeline": {"name": "release"},
    }
    assert definition["internalParameters"] == {
        "tekton": {
            "namespace": "ci",
            "taskRun": {"name": "build-run-x", "uid": "5f1c-uid"},
            "pipelineRun": {"name": "pr-1", "uid": "pr-uid"},
        },
        "hashing": {"dirDigest": False, "excludes": ["*.tmp"]},
    }
    assert definition["resolvedDependencies"] == [
        {
            "name": "inputs/result",
            "uri": "git+https://github.com/o/app.git",
            "digest": {"sha1": "0" * 40},
        },
        {"uri": "oci://ghcr.io/o/base", "digest": {"sha256": "b" * 64}},
    ]
    details = predicate["runDetails"]
    assert details["metadata"] == {
        "invocationId": "5f1c-uid",
        "startedOn": "2024-05-01T11:55:30Z",
        "finishedOn": "2024-05-01T12:00:30Z",
    }
    assert details["byproducts"] == [
        {"name": "network", "mediaType": "application/json", "content": "e30="}
    ]


def test_minimal_statement_still_has_non_empty_external_parameters() -> None:
    statement = build_statement(
        ProvenanceInputs(subjects=[Subject("f", {"sha256": HEX_A})], finished_on=FINISHED)
    )
    predicate = statement["predicate"]
    assert predicate["buildDefinition"]["externalParameters"] == {"params": {}}
    assert "internalParameters" not in predicate["buildDefinition"]
    assert predicate["runDetails"]["builder"]["id"] == DEFAULT_BUILDER_ID
    assert predicate["runDetails"]["metadata"] == {"finishedOn": "2024-05-01T12:00:30Z"}
    _, prov = strict_parse(statement)
    assert len(prov.build_definition.external_parameters.fields) == 1
    check_slsa_v1_predicate(predicate)


def test_explicit_invocation_id_wins_over_the_taskrun_uid() -> None:
    inputs = ProvenanceInputs(
        subjects=[Subject("f", {"sha256": HEX_A})],
        finished_on=FINISHED,
        run=RunContext(taskrun_uid="from-env"),
        invocation_id="from-flag",
    )
    metadata = build_statement(inputs)["predicate"]["runDetails"]["metadata"]
    assert metadata["invocationId"] == "from-flag"


def test_no_subjects_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="nothing to attest"):
        build_statement(ProvenanceInputs(subjects=[], finished_on=FINISHED))


def test_exact_duplicate_subjects_are_dropped_but_different_digests_kept() -> None:
    subjects = [
        Subject("a", {"sha256": HEX_A}),
        Subject("a", {"sha256": HEX_A}),
        Subject("a", {"sha256": "c" * 64}),
    ]
    statement = build_statement(ProvenanceInputs(subjects=subjects, finished_on=FINISHED))
    assert statement["subject"] == [
        {"name": "a", "digest": {"sha256": HEX_A}},
        {"name": "a", "digest": {"sha256": "c" * 64}},
    ]


def test_bad_builder_id_is_rejected() -> None:
    with pytest.raises(UsageError, match="--builder-id: 'not a uri' is not a URI"):
        build_statement(
            ProvenanceInputs(
                subjects=[Subject("f", {"sha256": HEX_A})],
                finished_on=FINISHED,
                builder_id="not a uri",
            )
        )


def test_serialized_payload_is_compact_sorted_utf8_and_parses_back() -> None:
    statement = build_statement(full_inputs())
    payload = serialize_statement(statement)
    assert b"\n" not in payload
    assert b", " not in payload
    assert payload.startswith(b'{"_type":')
    assert parse_statement(payload).raw == statement


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://github.com/o/r", "git+https://github.com/o/r.git"),
        ("https://github.com/o/r.git", "git+https://github.com/o/r.git"),
        ("git+https://github.com/o/r.git", "git+https://github.com/o/r.git"),
        (" https://gitlab.com/g/p ", "git+https://gitlab.com/g/p.git"),
    ],
)
def test_git_dependency_follows_chains(url: str, expected: str) -> None:
    commit = "ABCDEF0123456789abcdef0123456789abcdef01"
    assert git_dependency(url, commit) == {
        "name": "inputs/result",
        "uri": expected,
        "digest": {"sha1": commit.lower()},
    }


@pytest.mark.parametrize(
    ("url", "commit", "message"),
    [
        ("", "0" * 40, "URL is empty"),
        ("https://x/y z", "0" * 40, "white space"),
        ("https://x/y", "0" * 39, "not 40 hex"),
        ("https://x/y", "g" * 40, "not 40 hex"),
        ("https://x/y", "0" * 64, "not 40 hex"),
    ],
)
def test_git_dependency_rejects_bad_input(url: str, commit: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        git_dependency(url, commit)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "https://example.com/x.tgz@sha256:" + HEX_A,
            {"uri": "https://example.com/x.tgz", "digest": {"sha256": HEX_A}},
        ),
        (
            "pkg:pypi/click@8.1.7@sha512:" + "e" * 128,
            {"uri": "pkg:pypi/click@8.1.7", "digest": {"sha512": "e" * 128}},
        ),
        (
            "git+https://github.com/o/r.git@sha1:" + "1" * 40,
            {
                "uri": "git+https://github.com/o/r.git",
                "digest": {"sha1": "1" * 40},
            },
        ),
        (
            "oci://ghcr.io/o/step@sha256:" + HEX_A,
            {"uri": "oci://ghcr.io/o/step", "digest": {"sha256": HEX_A}},
        ),
        (
            "ghcr.io/o/base:1.2@sha256:" + HEX_A,
            {"uri": "oci://ghcr.io/o/base", "digest": {"sha256": HEX_A}},
        ),
        (
            "localhost:5000/base@sha256:" + HEX_A,
            {"uri": "oci://localhost:5000/base", "digest": {"sha256": HEX_A}},
        ),
        (
            "alpine@sha256:" + HEX_A,
            {"uri": "oci://index.docker.io/library/alpine", "digest": {"sha256": HEX_A}},
        ),
    ],
)
def test_parse_dependency(text: str, expected: dict[str, Any]) -> None:
    assert parse_dependency(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("https://example.com/x", "has no '@'"),
        ("@sha256:" + HEX_A, "has no '@'"),
        ("https://example.com/x@md5:" + "0" * 32, "no digest algorithm"),
        ("https://example.com/x@" + HEX_A, "no digest algorithm"),
        ("https://example.com/x@sha256:" + "A" * 64, "64 lowercase hex"),
        ("https://example.com/x@sha256:" + "a" * 63, "64 lowercase hex"),
        ("ghcr.io/o/base@sha1:" + "1" * 40, "needs a sha256"),
        ("Ghcr.io/UPPER@sha256:" + HEX_A, "Ghcr.io/UPPER"),
    ],
)
def test_parse_dependency_rejects(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_dependency(text)


def test_parse_param() -> None:
    assert parse_param("a=b=c") == ("a", "b=c")
    assert parse_param("git-url.x=") == ("git-url.x", "")
    for bad, message in [
        ("noequals", "has no '='"),
        ("=v", "not a Tekton param"),
        ("1a=v", "not a Tekton"),
    ]:
        with pytest.raises(UsageError, match=message):
            parse_param(bad)


def test_array_params_from_flags() -> None:
    """kaniko-chains' EXTRA_ARGS (an array) reaches externalParameters (issue 14)."""
    assert parse_param("EXTRA_ARGS[]=--insecure") == ("EXTRA_ARGS[]", "--insecure")
    assert parse_param("EXTRA_ARGS[]") == ("EXTRA_ARGS[]", None)
    assert parse_param("EXTRA_ARGS[]=") == ("EXTRA_ARGS[]", "")
    flags = ["EXTRA_ARGS[]", "EXTRA_ARGS[]=--insecure", "IMAGE=x", "EXTRA_ARGS[]=a=b"]
    merged = merge_params({}, {}, [parse_param(f) for f in flags])
    assert merged == {"EXTRA_ARGS": ["--insecure", "a=b"], "IMAGE": "x"}
    assert merge_params({}, {}, [parse_param("EMPTY[]")]) == {"EMPTY": []}
    for clash in (["A=1", "A[]=x"], ["A[]=x", "A=1"]):
        with pytest.raises(UsageError, match="given twice"):
            merge_params({}, {}, [parse_param(f) for f in clash])
    with pytest.raises(UsageError, match="not a Tekton"):
        parse_param("[]=x")


def test_params_precedence_env_then_file_then_flags() -> None:
    merged = merge_params(
        {"a": "env", "b": "env", "c": "env"},
        {"b": "file", "c": ["file"]},
        [("c", "flag"), ("d", "flag")],
    )
    assert merged == {"a": "env", "b": "file", "c": "flag", "d": "flag"}
    assert list(merged) == sorted(merged)
    with pytest.raises(UsageError, match="given twice"):
        merge_params({}, {}, [("x", "1"), ("x", "2")])


def test_load_params_file(tmp_path: Path) -> None:
    good = tmp_path / "params.json"
    good.write_text(json.dumps({"s": "v", "arr": ["1", "2"], "obj": {"k": "v"}}))
    assert load_params_file(good) == {"s": "v", "arr": ["1", "2"], "obj": {"k": "v"}}
    cases = {
        "not json": "not valid JSON",
        "[1]": "top level must be a JSON object",
        '{"n": 1}': "must be a string, an array",
        '{"n": ["a", 1]}': "must be a string, an array",
        '{"bad name": "x"}': "not a Tekton param name",
    }
    for text, message in cases.items():
        bad = tmp_path / "bad.json"
        bad.write_text(text)
        with pytest.raises(UsageError, match=message):
            load_params_file(bad)
    with pytest.raises(UsageError, match="cannot read it"):
        load_params_file(tmp_path / "missing.json")


def test_read_context_maps_every_variable() -> None:
    ctx = read_context(
        {
            "TEKTON_TASKRUN_UID": "uid",
            "TEKTON_TASKRUN_NAME": "tr",
            "TEKTON_TASKRUN_NAMESPACE": "ns",
            "TEKTON_TASK_NAME": "task",
            "TEKTON_PIPELINERUN_NAME": "pr",
            "TEKTON_PIPELINERUN_UID": "pruid",
            "TEKTON_PIPELINE_NAME": "pipe",
            "CHAINS-GIT_URL": " https://g/r ",
            "CHAINS-GIT_COMMIT": "c",
            "IMAGE_URL": "u",
            "IMAGE_DIGEST": "d",
            "IMAGES": "i",
            "ATTEST_PARAM_b": "2",
            "ATTEST_PARAM_a-x": "1",
            "ATTEST_PARAM_": "ignored",
            "ATTEST_RESOLVED_DEPENDENCIES": "x@sha1:1\n  y@sha1:2 \n",
            "ATTEST_BUILDER_ID": "https://b",
            "ATTEST_STARTED_ON": "2024-01-01T00:00:00Z",
            "UNRELATED": "x",
        }
    )
    assert (ctx.taskrun_uid, ctx.taskrun_name, ctx.namespace, ctx.task_name) == (
        "uid",
        "tr",
        "ns",
        "task",
    )
    assert (ctx.pipelinerun_name, ctx.pipelinerun_uid, ctx.pipeline_name) == ("pr", "pruid", "pipe")
    assert (ctx.git_url, ctx.git_commit) == ("https://g/r", "c")
    assert (ctx.image_url, ctx.image_digest, ctx.images) == ("u", "d", "i")
    assert ctx.params == {"a-x": "1", "b": "2"}
    assert ctx.resolved_dependencies == ("x@sha1:1", "y@sha1:2")
    assert ctx.builder_id == "https://b"
    assert ctx.started_on == "2024-01-01T00:00:00Z"


def test_read_context_treats_empty_values_as_unset() -> None:
    ctx = read_context({"TEKTON_TASKRUN_UID": "  ", "IMAGE_URL": ""})
    assert ctx.taskrun_uid is None
    assert ctx.image_url is None


def test_steps_prepared_time_is_the_earliest_step_link(tmp_path: Path) -> None:
    steps = tmp_path / "steps"
    steps.mkdir()
    for name, when in (("step-build", 1714564900), ("step-attest", 1714564930)):
        (steps / name).symlink_to(f"/tekton/run/{name}/status")  # dangling, as in a pod
        os.utime(steps / name, (when, when), follow_symlinks=False)
    (steps / "other").write_text("")
    os.utime(steps / "other", (1000, 1000))  # not a step link: ignored
    assert steps_prepared_time(steps) == datetime(2024, 5, 1, 12, 1, 40, tzinfo=UTC)


def test_steps_prepared_time_is_none_without_step_links(tmp_path: Path) -> None:
    assert steps_prepared_time(tmp_path / "missing") is None
    assert steps_prepared_time(tmp_path) is None
    (tmp_path / "file").write_text("")
    assert steps_prepared_time(tmp_path / "file") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T12:00:30Z", FINISHED),
        ("2024-05-01T14:00:30+02:00", FINISHED),
        ("2024-05-01T12:00:30.123456789Z", FINISHED.replace(microsecond=123456)),
    ],
)
def test_parse_time(text: str, expected: datetime) -> None:
    assert parse_time(text, what="--x") == expected


@pytest.mark.parametrize(
    "text", ["2024-05-01", "2024-05-01T12:00:30", "yesterday", "2024-13-01T00:00:00Z"]
)
def test_parse_time_rejects(text: str) -> None:
    with pytest.raises(UsageError, match="--x"):
        parse_time(text, what="--x")


@given(st.datetimes(timezones=st.just(UTC)))
def test_time_round_trip(moment: datetime) -> None:
    text = format_time(moment)
    assert parse_time(text, what="t") == moment.replace(microsecond=0)
    assert format_time(parse_time(text, what="t")) == text


_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,20}", fullmatch=True)
_values = st.text(max_size=30)
_param_values = st.one_of(
    _values, st.lists(_values, max_size=3), st.dictionaries(_names, _values, max_size=3)
)


@settings(max_examples=60, deadline=None)
@given(
    params=st.dictionaries(_names, _param_values, max_size=5),
    names=st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=4),
    uid=st.one_of(st.none(), st.text(min_size=1, max_size=40)),
)
def test_any_params_and_names_give_a_statement_the_bindings_accept(
    params: dict[str, Any], names: list[str], uid: str | None
) -> None:
    inputs = ProvenanceInputs(
        subjects=[Subject(name, {"sha256": HEX_A}) for name in names],
        finished_on=FINISHED,
        params=params,
        run=RunContext(taskrun_uid=uid, task_name=uid),
    )
    statement = build_statement(inputs)
    pb, _ = strict_parse(statement)
    assert json_format.MessageToDict(pb) == statement
    assert parse_statement(serialize_statement(statement)).raw == statement
    check_slsa_v1_predicate(statement["predicate"])
