"""Registry work of ``sign`` started before the signature exists, while scrypt decrypts
the key (scrypt releases the GIL, so the two overlap).

This module imports nothing heavy: the registry client (requests, oras) is imported on the
background thread, so starting the prefetch costs the main thread nothing.
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING

from attest_step.imageref import ImageRef
from attest_step.oci.options import RegistryOptions

if TYPE_CHECKING:
    from attest_step.oci.upload import Prefetch


class SignaturePrefetch:
    """:class:`attest_step.oci.upload.Prefetch` of a signature of ``image`` with
    ``annotations``, run on its own thread from construction on."""

    def __init__(
        self, image: ImageRef, annotations: dict[str, str], registry: RegistryOptions
    ) -> None:
        self._image = image
        self._annotations = dict(annotations)
        self._registry = registry
        self._prefetch: Prefetch | None = None
        self._thread = threading.Thread(target=self._run, name="attest-step-prefetch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with contextlib.suppress(Exception):  # the push does the work itself then
            from attest_step.oci.simplesigning import payload_bytes  # noqa: PLC0415
            from attest_step.oci.upload import Prefetch  # noqa: PLC0415 - ~80 ms of imports

            prefetch = Prefetch(
                self._image, payload_bytes(self._image, self._annotations), self._registry
            )
            self._prefetch = prefetch
            prefetch.run()

    def result(self) -> Prefetch | None:
        """Wait for the prefetch; None when it could not even start."""
        self._thread.join()
        return self._prefetch


def start_signature_prefetch(
    image: ImageRef, annotations: dict[str, str], registry: RegistryOptions
) -> SignaturePrefetch | None:
    """Start prefetching for a signature upload; None when there is nothing to prefetch
    (``--oci-layout``: no registry)."""
    if registry.oci_layout_dir:
        return None
    return SignaturePrefetch(image, annotations, registry)
