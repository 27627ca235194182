"""``--platform OS/ARCH[/VARIANT]`` as ``attest-step copy`` reads it, and matching it
against an index entry's platform."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from attest_step.errors import UsageError
from attest_step.oci.platform import Platform, parse_platform

_part = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,15}", fullmatch=True)


@given(_part, _part, st.none() | _part)
def test_a_platform_round_trips_through_its_string(
    os_name: str, arch: str, variant: str | None
) -> None:
    platform = Platform(os_name, arch, variant)
    assert parse_platform(str(platform)) == platform


@given(st.text(max_size=40))
def test_any_string_parses_to_a_platform_or_a_one_line_usage_error(value: str) -> None:
    try:
        platform = parse_platform(value)
    except UsageError as err:
        assert "\n" not in str(err).replace(repr(value), "")
        assert "OS/ARCH[/VARIANT]" in str(err)
    else:
        assert str(platform) == value


@pytest.mark.parametrize(
    "value", ["", "linux", "linux/", "/amd64", "linux/amd64/v8/x", "Linux/amd64", "linux//v7"]
)
def test_malformed_platforms_are_refused(value: str) -> None:
    with pytest.raises(UsageError, match="OS/ARCH"):
        parse_platform(value)


@given(_part, _part, _part, _part)
def test_a_variant_counts_only_when_asked_for(os_name: str, arch: str, v1: str, v2: str) -> None:
    listed = Platform(os_name, arch, v1)
    assert Platform(os_name, arch).matches(listed)
    assert Platform(os_name, arch, v1).matches(listed)
    assert Platform(os_name, arch, v2).matches(listed) == (v1 == v2)
    assert not Platform(os_name, arch, v1).matches(Platform(os_name, arch))
