"""Registry options shared by every verb that talks to a registry. (Stub: OCI work fills it.)

CONTRACT: ``registry_options`` is a click decorator adding the shared flags; the decorated
command receives one keyword argument ``registry: RegistryOptions``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class RegistryOptions:
    allow_insecure_registry: bool = False
    ca_cert: str | None = None
    timeout_seconds: float = 120.0
    layout: str = "both"  # "tag" (.sig/.att tags), "bundle" (referrers), "both"
    oci_layout_dir: str | None = None


def registry_options(func: F) -> F:
    """Add the shared registry flags; pass ``registry=RegistryOptions(...)``."""
    raise NotImplementedError
