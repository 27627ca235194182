"""Digest parsing: exactly sha256:<64 lowercase hex>, as Chains accepts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from attest_step.digests import is_sha256_hex, parse_sha256_digest
from attest_step.errors import UsageError

HEX = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)


@given(HEX)
def test_valid_digests_parse_to_their_hex(hexpart: str) -> None:
    assert parse_sha256_digest(f"sha256:{hexpart}", what="X") == hexpart
    assert parse_sha256_digest(f"  sha256:{hexpart}\n", what="X") == hexpart
    assert is_sha256_hex(hexpart)


@given(st.text(max_size=80))
def test_anything_else_is_a_usage_error_naming_the_input(value: str) -> None:
    stripped = value.strip()
    body = stripped.removeprefix("sha256:")
    valid = stripped.startswith("sha256:") and is_sha256_hex(body)
    if valid:
        return
    with pytest.raises(UsageError, match=r"^IMAGE_DIGEST: .* is not a digest"):
        parse_sha256_digest(value, what="IMAGE_DIGEST")


@pytest.mark.parametrize(
    "value",
    [
        "sha256:" + "A" * 64,
        "sha256:" + "a" * 63,
        "sha256:" + "a" * 65,
        "SHA256:" + "a" * 64,
        "sha512:" + "a" * 64,
        "a" * 64,
        "sha256:basd-sha",
        "sha256: " + "a" * 64,
        "sha256:" + "a" * 64 + "\n" + "b",
    ],
)
def test_near_misses_are_refused(value: str) -> None:
    with pytest.raises(UsageError):
        parse_sha256_digest(value, what="d")


def test_long_values_are_shortened_in_the_message() -> None:
    with pytest.raises(UsageError) as info:
        parse_sha256_digest("x" * 500, what="d")
    assert len(str(info.value)) < 200


@pytest.mark.parametrize("value", ["a" * 64 + "\n", "g" * 64, "", "A" * 64])
def test_is_sha256_hex_is_strict(value: str) -> None:
    assert not is_sha256_hex(value)
