"""Platforms (``OS/ARCH[/VARIANT]``, as crane's and oras' ``--platform`` take them) and the
choice of one image manifest from an index by its platform.

Matching is exact, as the user wrote it: ``os`` and ``architecture`` always, ``variant``
only when the user gave one; no normalisation (``arm64`` is not ``aarch64``). An index
whose entries match zero or several times is refused, naming the platforms it lists.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, NamedTuple

from attest_step.errors import RegistryError, UsageError
from attest_step.oci.documents import parse_descriptor

if TYPE_CHECKING:
    from attest_step.oci.store import Manifest
    from attest_step.oci.types import Descriptor

_PART = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


class Platform(NamedTuple):
    os: str
    architecture: str
    variant: str | None = None

    def __str__(self) -> str:
        parts = [self.os, self.architecture, *([self.variant] if self.variant else [])]
        return "/".join(parts)

    def matches(self, other: Platform) -> bool:
        """``other`` (an index entry's platform) is this one; the variant counts only when
        this one names it."""
        same = (self.os, self.architecture) == (other.os, other.architecture)
        return same and (self.variant is None or self.variant == other.variant)


def parse_platform(value: str) -> Platform:
    """``OS/ARCH`` or ``OS/ARCH/VARIANT`` (lower-case letters, digits, ``.``, ``_``, ``-``)."""
    parts = value.split("/")
    if not 2 <= len(parts) <= 3 or any(_PART.fullmatch(p) is None for p in parts):
        raise UsageError(
            f"--platform {value!r}: not OS/ARCH[/VARIANT]; give e.g. linux/amd64 or linux/arm/v7"
        )
    return Platform(*parts)


def entry_platform(entry: dict[str, Any]) -> Platform | None:
    """The ``platform`` of an index entry; None when it has none (or an unusable one)."""
    found = entry.get("platform")
    if not isinstance(found, dict):
        return None
    os_name, arch, variant = (found.get(k) for k in ("os", "architecture", "variant"))
    if not isinstance(os_name, str) or not isinstance(arch, str):
        return None
    return Platform(os_name, arch, variant if isinstance(variant, str) and variant else None)


def select_platform(index: Manifest, wanted: Platform, location: str) -> Descriptor:
    """The one entry of ``index`` whose platform is ``wanted``; refused (exit 2, naming the
    platforms listed) when none or several are."""
    entries = index.index_entries()
    listed = [(entry_platform(e), e) for e in entries]
    chosen = [e for p, e in listed if p is not None and wanted.matches(p)]
    if len(chosen) == 1:
        return parse_descriptor(chosen[0], f"{location} entry")
    available = ", ".join(sorted({str(p) for p, _ in listed if p is not None})) or "none"
    why = "no manifest" if not chosen else f"{len(chosen)} manifests"
    raise UsageError(
        f"{location}: {why} for platform {wanted} in the index (platforms listed: "
        f"{available}); give one of them{', with its variant' if chosen else ''}"
    )


def config_platform(config: dict[str, Any], location: str) -> Platform:
    """The platform an image config declares (``os``, ``architecture``, ``variant``)."""
    found = entry_platform({"platform": config})
    if found is None:
        raise RegistryError(f"{location}: the image config names no os/architecture")
    return found
