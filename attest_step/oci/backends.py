"""Which :class:`~attest_step.oci.store.Store` a verb uses for an image, opened once.

``--oci-layout DIR``: the one :class:`~attest_step.oci.layout_store.LayoutStore` for every
image. Otherwise the image's repository in its registry
(:class:`~attest_step.oci.registry_store.RegistryStore`), one client per host, all bound by
the verb's one ``--timeout`` deadline.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from attest_step.imageref import ImageRef
from attest_step.oci.options import RegistryOptions
from attest_step.oci.registry import RegistryClient
from attest_step.oci.registry_store import RegistryStore
from attest_step.oci.retry import Deadline, RetryPolicy
from attest_step.oci.store import Store

if TYPE_CHECKING:
    from attest_step.oci.layout_store import LayoutStore


class Stores:
    def __init__(self, options: RegistryOptions, policy: RetryPolicy | None = None) -> None:
        self.options = options
        self.deadline = Deadline(options.timeout_seconds)
        self.policy = policy
        self._clients: dict[str, RegistryClient] = {}
        self.layout: LayoutStore | None = None
        if options.oci_layout_dir:
            from attest_step.oci.layout_store import LayoutStore  # noqa: PLC0415 (when used)

            root = Path(options.oci_layout_dir)
            self.layout = LayoutStore(root, max_blob_bytes=options.max_blob_bytes)

    def set_policy(self, policy: RetryPolicy) -> None:
        self.policy = policy
        for client in self._clients.values():
            client.policy = policy

    def client(self, host: str) -> RegistryClient:
        if host not in self._clients:
            self._clients[host] = RegistryClient(
                host, self.options, deadline=self.deadline, policy=self.policy
            )
        return self._clients[host]

    def for_image(self, image: ImageRef) -> Store:
        if self.layout is not None:
            return self.layout
        return RegistryStore(self.client(image.registry), image.repository)

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Hold what writing needs: the OCI layout's lock (a registry needs nothing)."""
        if self.layout is None:
            yield
            return
        with self.layout.locked():
            yield
