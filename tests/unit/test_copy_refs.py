"""``DIR[:TAG|@DIGEST]`` as ``attest-step copy`` reads an OCI layout argument."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from attest_step.errors import AttestStepError, UsageError
from attest_step.oci.copy import LayoutRef, parse_layout_ref

DIGEST = "sha256:" + "ab" * 32
_component = st.from_regex(r"[A-Za-z0-9_.-]{1,12}", fullmatch=True).filter(
    lambda c: c not in {".", ".."}
)
_dirs = st.lists(_component, min_size=1, max_size=4).map("/".join)
_tags = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)


@given(_dirs, st.booleans())
def test_a_plain_directory_names_no_image(path: str, absolute: bool) -> None:
    path = f"/{path}" if absolute else path
    assert parse_layout_ref(path, what="SRC") == LayoutRef(path, None)


@given(_dirs, _tags)
def test_a_tag_follows_the_last_colon_of_the_last_component(path: str, tag: str) -> None:
    assert parse_layout_ref(f"{path}:{tag}", what="SRC") == LayoutRef(path, tag)


@given(_dirs, st.from_regex(r"[a-f0-9]{64}", fullmatch=True))
def test_a_digest_follows_the_at(path: str, hexpart: str) -> None:
    digest = f"sha256:{hexpart}"
    assert parse_layout_ref(f"{path}@{digest}", what="SRC") == LayoutRef(path, digest)


def test_a_colon_in_an_earlier_component_is_part_of_the_path() -> None:
    assert parse_layout_ref("a:b/out", what="SRC") == LayoutRef("a:b/out", None)
    assert parse_layout_ref("a:b/out:v1", what="SRC") == LayoutRef("a:b/out", "v1")


@pytest.mark.parametrize(
    "value",
    ["", ":v1", "@" + DIGEST, "out@sha256:12", "out@md5:" + "ab" * 16, "out:-bad", "out:a b"],
)
def test_bad_references_are_usage_errors(value: str) -> None:
    with pytest.raises(UsageError):
        parse_layout_ref(value, what="SRC")


@given(st.text(max_size=200))
def test_any_text_parses_or_is_a_usage_error(value: str) -> None:
    try:
        ref = parse_layout_ref(value, what="SRC")
    except AttestStepError as err:
        assert isinstance(err, UsageError)
        assert "\n" not in str(err).strip() or "\n" in value
    else:
        assert ref.path
        assert value.startswith(ref.path)
