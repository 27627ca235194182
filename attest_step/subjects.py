"""Image subjects from flags and Tekton's result conventions.

CONTRACT: ``image_refs(images, image_url, image_digest, images_result) -> list[ImageRef]``
where ``images`` are ``--image REF@sha256:HEX`` values, ``image_url``/``image_digest`` the
``IMAGE_URL``/``IMAGE_DIGEST`` results, and ``images_result`` the ``IMAGES`` result text
(comma and/or newline separated). Subject name = ``registry/repository``, digest ``sha256``.

Result: sorted by (name, digest); an image given twice (same name and digest, e.g. both in
``IMAGES`` and ``--image``) appears once; the same repository with two digests gives two
subjects. Any malformed value is a UsageError naming where it came from.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from attest_step.errors import UsageError
from attest_step.imageref import ImageRef, image_ref_from_parts, parse_image_ref
from attest_step.model import Subject

_SEPARATORS = re.compile(r"[,\n]")


def split_images_result(text: str) -> list[str]:
    """Items of an ``IMAGES`` result: split on commas and newlines, trimmed, empty ones skipped."""
    return [item.strip() for item in _SEPARATORS.split(text) if item.strip()]


def _present(value: str | None) -> bool:
    return value is not None and value.strip() != ""


def image_refs(
    images: Sequence[str],
    image_url: str | None = None,
    image_digest: str | None = None,
    images_result: str | None = None,
) -> list[ImageRef]:
    """The parsed, de-duplicated references, in first-seen order."""
    refs: list[ImageRef] = [parse_image_ref(value, what="--image") for value in images]
    if _present(image_url) != _present(image_digest):
        given, missing = ("IMAGE_URL", "IMAGE_DIGEST")
        if _present(image_digest):
            given, missing = missing, given
        raise UsageError(
            f"{given} was given without {missing}; give both results "
            "(IMAGE_URL=REPOSITORY, IMAGE_DIGEST=sha256:<hex>) or neither"
        )
    if image_url is not None and image_digest is not None and _present(image_url):
        refs.append(image_ref_from_parts(image_url, image_digest, what="IMAGE_URL/IMAGE_DIGEST"))
    if images_result is not None:
        refs.extend(
            parse_image_ref(item, what="IMAGES") for item in split_images_result(images_result)
        )
    unique: dict[tuple[str, str], ImageRef] = {}
    for ref in refs:
        unique.setdefault((ref.name, ref.digest), ref)
    return list(unique.values())


def image_subjects(refs: Iterable[ImageRef]) -> list[Subject]:
    """Subjects named ``registry/repository`` with digest ``{"sha256": hex}``, sorted."""
    subjects = [Subject(ref.name, {"sha256": ref.hex}) for ref in refs]
    return sorted(subjects, key=lambda s: (s.name, s.digest["sha256"]))
