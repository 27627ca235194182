"""Image subjects from --image and Tekton results (IMAGE_URL/IMAGE_DIGEST, IMAGES)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from attest_step.errors import UsageError
from attest_step.model import Subject
from attest_step.subjects import image_refs, image_subjects, split_images_result

A = "a" * 64
B = "b" * 64


def _subjects(*images: Any, **results: Any) -> list[Subject]:
    return image_subjects(image_refs(*images, **results))


def pairs(subjects: list[Subject]) -> list[tuple[str, str]]:
    return [(s.name, s.digest["sha256"]) for s in subjects]


def test_flags_give_subjects_named_by_repository() -> None:
    got = _subjects([f"ghcr.io/o/b:v1@sha256:{B}", f"busybox@sha256:{A}"])
    assert pairs(got) == [("ghcr.io/o/b", B), ("index.docker.io/library/busybox", A)]
    assert all(s.annotations == {} for s in got)


def test_image_url_and_digest_results() -> None:
    got = _subjects([], image_url="ghcr.io/o/app:latest\n", image_digest=f"sha256:{A}\n")
    assert pairs(got) == [("ghcr.io/o/app", A)]


@pytest.mark.parametrize(
    ("url", "digest"),
    [("ghcr.io/o/app", None), (None, f"sha256:{A}"), ("ghcr.io/o/app", "  "), ("", "sha256:x")],
)
def test_url_without_digest_or_back_is_an_error(url: str | None, digest: str | None) -> None:
    with pytest.raises(UsageError, match="given without"):
        _subjects([], image_url=url, image_digest=digest)


def test_both_empty_results_mean_no_image() -> None:
    assert _subjects([], image_url=" ", image_digest="") == []


def test_images_result_commas_and_newlines() -> None:
    text = f"ghcr.io/o/a@sha256:{A},ghcr.io/o/b@sha256:{B}\n\n ghcr.io/o/c@sha256:{A} ,\n"
    got = _subjects([], images_result=text)
    assert pairs(got) == [("ghcr.io/o/a", A), ("ghcr.io/o/b", B), ("ghcr.io/o/c", A)]


def test_images_item_without_digest_names_images() -> None:
    with pytest.raises(UsageError, match=r"^IMAGES: 'ghcr\.io/o/a' has no digest"):
        _subjects([], images_result="ghcr.io/o/a")


def test_bad_digest_in_result_names_the_result() -> None:
    with pytest.raises(UsageError, match=r"^IMAGE_URL/IMAGE_DIGEST: 'sha256:basd-sha'"):
        _subjects([], image_url="gcr.io/o/a", image_digest="sha256:basd-sha")


def test_duplicates_collapse_and_distinct_digests_stay() -> None:
    got = _subjects(
        [f"ghcr.io/o/a@sha256:{A}", f"ghcr.io/o/a:v2@sha256:{B}"],
        image_url="ghcr.io/o/a",
        image_digest=f"sha256:{A}",
        images_result=f"ghcr.io/o/a@sha256:{A}",
    )
    assert pairs(got) == [("ghcr.io/o/a", A), ("ghcr.io/o/a", B)]


def test_nothing_given_gives_nothing() -> None:
    assert _subjects([]) == []


ITEM = st.builds(
    lambda n, h: f"ghcr.io/o/i{n}@sha256:{h}",
    st.integers(0, 5),
    st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
)


@given(st.lists(ITEM, max_size=6), st.lists(st.sampled_from([",", "\n", ",\n", "\n\n", " , "])))
def test_split_is_separator_agnostic(items: list[str], seps: list[str]) -> None:
    text = "".join(item + (seps[i % len(seps)] if seps else ",") for i, item in enumerate(items))
    assert split_images_result(text) == items
    got = _subjects([], images_result=text)
    assert got == sorted(got, key=lambda s: (s.name, s.digest["sha256"]))
    assert {(s.name, s.digest["sha256"]) for s in got} == {
        (i.split("@")[0], i.split(":")[-1]) for i in items
    }
