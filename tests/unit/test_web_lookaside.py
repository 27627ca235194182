"""The web lookaside's URL: what --lookaside accepts, and where signature-N is fetched."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from attest_step.imageref import parse_image_ref
from attest_step.pgp.lookaside import signature_path
from attest_step.pgp.web_lookaside import WebLookaside, parse_web_lookaside

HEX = "ab" * 32


@pytest.mark.parametrize(
    "base", ["https://sigs.example", "https://sigs.example/", "http://h:8080/a/b/"]
)
def test_signature_url_is_the_directory_layout_under_the_base(base: str) -> None:
    image = parse_image_ref(f"registry.example:5000/org/app:v1@sha256:{HEX}", what="IMAGE")
    url = WebLookaside(base).signature_url(image, 2)
    relative = signature_path(Path("/"), image, 2).as_posix().lstrip("/")
    assert url == base.rstrip("/") + "/" + relative
    assert url.endswith(f"/org/app@sha256={HEX}/signature-2")
    assert "registry.example" not in url


@pytest.mark.parametrize(
    "value",
    [
        "http:///x",
        "https://",
        "ftp://h/x",
        "https://h/x?q=1",
        "https://h/x#f",
        "/srv/sigs",
        "http://[::1",
    ],
)
def test_not_an_http_lookaside_url(value: str) -> None:
    with pytest.raises(ValueError):
        parse_web_lookaside(value)


@given(st.one_of(st.text(max_size=80), st.from_regex(r"\Ahttps?://[\[\]:@a-z0-9./?#]{0,30}\Z")))
def test_parse_accepts_only_web_urls_and_keeps_them(value: str) -> None:
    try:
        parsed = parse_web_lookaside(value)
    except ValueError:
        return
    assert value.lower().startswith(("http://", "https://"))
    assert parsed.url == value
