"""Image references pinned by digest."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from attest_step.errors import UsageError
from attest_step.imageref import ImageRef, image_ref_from_parts, parse_image_ref

D = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag"),
    [
        ("busybox", "index.docker.io", "library/busybox", None),
        ("org/app:1.0", "index.docker.io", "org/app", "1.0"),
        ("ghcr.io/org/app", "ghcr.io", "org/app", None),
        ("localhost/app", "localhost", "app", None),
        ("localhost:5000/a/b:v1", "localhost:5000", "a/b", "v1"),
        ("127.0.0.1:5000/app", "127.0.0.1:5000", "app", None),
        ("[::1]:5000/app", "[::1]:5000", "app", None),
        ("oci://quay.io/a/b_c.d__e-f--g", "quay.io", "a/b_c.d__e-f--g", None),
        ("docker://gcr.io/p/i:latest", "gcr.io", "p/i", "latest"),
    ],
)
def test_parse(text: str, registry: str, repository: str, tag: str | None) -> None:
    ref = parse_image_ref(f"{text}@{D}")
    assert ref == ImageRef(registry, repository, D, tag)
    assert ref.name == f"{registry}/{repository}"
    assert ref.hex == "ab" * 32
    assert str(ref) == f"{registry}/{repository}@{D}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ghcr.io/org/app", "has no digest"),
        (f"ghcr.io/Org/app@{D}", "not a valid image name"),
        (f"ghcr.io/org//app@{D}", "not a valid image name"),
        (f"ghcr.io/org/app/@{D}", "not a valid image name"),
        (f"ghcr.io/org/a pp@{D}", "not a valid image name"),
        (f"ghcr.io/org/-app@{D}", "not a valid image name"),
        (f"-bad.io/app@{D}", "not a valid image name"),
        (f"ghcr.io/org/app:@{D}", "invalid tag"),
        (f"ghcr.io/org/app:-x@{D}", "invalid tag"),
        (f"@{D}", "image name is empty"),
        ("ghcr.io/org/app@sha256:abc", "not a digest"),
        ("ghcr.io/org/app@sha512:" + "a" * 128, "not a digest"),
        (f"ghcr.io/{'a' * 260}@{D}", "not a valid image name"),
    ],
)
def test_bad_references_name_the_flag(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=f"^--image: .*{message}"):
        parse_image_ref(text)


def test_from_parts_uses_what_and_strips_white_space() -> None:
    ref = image_ref_from_parts(" ghcr.io/o/a:tag \n", f" {D}\n", what="IMAGE_URL")
    assert (ref.name, ref.digest, ref.tag) == ("ghcr.io/o/a", D, "tag")
    with pytest.raises(UsageError, match=r"^IMAGE_URL: "):
        image_ref_from_parts("ghcr.io/o/a", "latest", what="IMAGE_URL")


COMPONENT = st.from_regex(r"[a-z0-9]{1,5}(?:[._-][a-z0-9]{1,5}){0,2}", fullmatch=True)


@given(
    host=st.sampled_from(["ghcr.io", "localhost:5000", "registry.example.com:443"]),
    path=st.lists(COMPONENT, min_size=1, max_size=4),
    tag=st.none() | st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True),
    hexpart=st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
)
def test_round_trip(host: str, path: list[str], tag: str | None, hexpart: str) -> None:
    name = f"{host}/{'/'.join(path)}"
    text = f"{name}:{tag}@sha256:{hexpart}" if tag else f"{name}@sha256:{hexpart}"
    ref = parse_image_ref(text)
    assert (ref.name, ref.hex, ref.tag) == (name, hexpart, tag)
    assert parse_image_ref(str(ref)) == ImageRef(ref.registry, ref.repository, ref.digest)
