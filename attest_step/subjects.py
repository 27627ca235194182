"""Image subjects from flags and Tekton's result conventions. (Stub: hashing work fills it.)

CONTRACT: ``image_subjects(images, image_url, image_digest, images_result) -> list[Subject]``
where ``images`` are ``--image REF@sha256:HEX`` values, ``image_url``/``image_digest`` the
``IMAGE_URL``/``IMAGE_DIGEST`` results, and ``images_result`` the ``IMAGES`` result text
(comma and/or newline separated). Subject name = ``registry/repository``, digest ``sha256``.
"""

from __future__ import annotations

from collections.abc import Sequence

from attest_step.model import Subject


def image_subjects(
    images: Sequence[str],
    image_url: str | None = None,
    image_digest: str | None = None,
    images_result: str | None = None,
) -> list[Subject]:
    raise NotImplementedError
