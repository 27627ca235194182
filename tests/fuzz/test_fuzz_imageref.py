"""Image references (attest_step/imageref.py).

Contract: parse_image_ref returns an ImageRef or raises UsageError for any text; a parsed
reference prints as ``name@digest`` and parses back to itself.
"""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from attest_step.errors import UsageError
from attest_step.imageref import ImageRef, image_ref_from_parts, parse_image_ref
from tests.fuzz.support import fuzz

HEX = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
component = st.from_regex(r"[a-z0-9]+(?:[._-][a-z0-9]+)?", fullmatch=True)
hosts = st.sampled_from(
    [
        "ghcr.io",
        "127.0.0.1:5000",
        "localhost",
        "[::1]:5000",
        "index.docker.io",
        "docker.io",
        "a.b.c",
    ]
)
names = st.builds(
    lambda host, parts: "/".join([host, *parts]) if host else "/".join(parts),
    st.none() | hosts,
    st.lists(component, min_size=1, max_size=3),
)
refs = st.builds(
    lambda name, tag, hexpart: f"{name}{':' + tag if tag else ''}@sha256:{hexpart}",
    names,
    st.none() | st.from_regex(r"[\w][\w.-]{0,20}", fullmatch=True),
    HEX,
)
noise = st.text(alphabet="abcAZ09:/@._-[] \t\n%", max_size=80)
# the reference grammar (distribution/reference), restated here to check what is accepted
DOMAIN = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
REGISTRY = re.compile(rf"(?:{DOMAIN}(?:\.{DOMAIN})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?")
COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REPOSITORY = re.compile(rf"{COMPONENT}(?:/{COMPONENT})*")
TAG = re.compile(r"[\w][\w.-]{0,127}")
# references whose parts are any text: the digest is right, so every part is checked
shaped = st.builds(
    lambda name, tag, hexpart: f"{name}{tag}@sha256:{hexpart}",
    st.text(max_size=30) | names,
    st.just("") | st.text(max_size=12).map(lambda t: ":" + t),
    HEX,
)


def assert_valid(ref: ImageRef) -> None:
    assert REGISTRY.fullmatch(ref.registry), ref
    assert REPOSITORY.fullmatch(ref.repository), ref
    assert ref.tag is None or TAG.fullmatch(ref.tag), ref
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", ref.digest), ref


@fuzz
@given(text=refs | shaped | noise | st.text(max_size=80))
def test_any_text_parses_or_raises_usage_error(text: str) -> None:
    try:
        ref = parse_image_ref(text)
    except UsageError:
        return
    assert_valid(ref)
    assert parse_image_ref(str(ref)) == ref._replace(tag=None)


@fuzz
@given(text=refs)
def test_valid_references_round_trip(text: str) -> None:
    ref = parse_image_ref(text)
    again = parse_image_ref(str(ref))
    assert isinstance(again, ImageRef)
    assert (again.registry, again.repository, again.digest) == (
        ref.registry,
        ref.repository,
        ref.digest,
    )
    assert text.endswith(ref.digest)


@fuzz
@given(
    url=noise | names.map(lambda n: "oci://" + n),
    digest=st.text(max_size=80) | HEX.map(lambda h: "sha256:" + h),
)
def test_tekton_results_parse_or_raise_usage_error(url: str, digest: str) -> None:
    try:
        ref = image_ref_from_parts(url, digest, what="IMAGE_URL")
    except UsageError:
        return
    assert parse_image_ref(str(ref)).digest == ref.digest
