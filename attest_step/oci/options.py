"""Registry options shared by every verb that talks to a registry.

CONTRACT: ``registry_options`` is a click decorator adding the shared flags; the decorated
command receives one keyword argument ``registry: RegistryOptions``.

Flags (cosign's spellings where cosign has them):
  --allow-insecure-registry   plain HTTP (and unverified TLS) to the registry
  --ca-cert PATH              PEM bundle of CAs to trust for the registry (env ATTEST_STEP_CA_CERT)
  --timeout DURATION          one deadline for all registry work of the verb (every request,
                              headers and body, retries included): 90, 90s, 3m, 3m0s
  --max-blob-size SIZE        largest blob read from a registry (env ATTEST_STEP_MAX_BLOB_SIZE)
  --registry-layout           auto|tag|bundle|both (default auto; env ATTEST_STEP_REGISTRY_LAYOUT)
  --oci-layout DIR            write to an OCI image-layout directory instead of a registry
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import click

from attest_step.option_group import option_group

LAYOUTS = ("auto", "tag", "bundle", "both")
DEFAULT_LAYOUT = "auto"
DEFAULT_TIMEOUT_SECONDS = 180.0  # cosign's --timeout default (3m0s)
MAX_MANIFEST_BYTES = 4 << 20
"""Manifests and indexes larger than this are refused while they stream in (containerd and
go-containerregistry use the same 4 MiB limit)."""
DEFAULT_MAX_BLOB_BYTES = 64 << 20
"""Default for ``--max-blob-size``: signature payloads, envelopes and bundles are kilobytes."""

_SIZE = re.compile(r"^(\d+)\s*(|b|k|kb|kib|m|mb|mib|g|gb|gib)$", re.IGNORECASE)
_SIZE_UNITS = {"": 0, "b": 0, "k": 10, "kb": 10, "kib": 10, "m": 20, "mb": 20, "mib": 20}
_SIZE_UNITS.update({"g": 30, "gb": 30, "gib": 30})
_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$")


class RegistryOptions(NamedTuple):
    allow_insecure_registry: bool = False
    ca_cert: str | None = None
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    layout: str = DEFAULT_LAYOUT  # "auto", "tag" (.sig/.att tags), "bundle" (referrers), "both"
    oci_layout_dir: str | None = None
    max_blob_bytes: int = DEFAULT_MAX_BLOB_BYTES


def parse_size(value: str) -> int:
    """Bytes from ``1048576``, ``512KiB``, ``64MiB`` or ``1GiB`` (K, M, G are powers of
    1024, with or without ``B``/``iB``); ValueError for anything else or for 0."""
    match = _SIZE.fullmatch(value.strip())
    if match is None:
        raise ValueError(value)
    size = int(match.group(1)) << _SIZE_UNITS[match.group(2).lower()]
    if size <= 0:
        raise ValueError(value)
    return size


def parse_duration(value: str) -> float:
    """Seconds from ``90``, ``90s``, ``1.5m``, ``3m0s`` or ``1h``; ValueError otherwise."""
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        match = _DURATION.fullmatch(text)
        if not text or match is None:
            raise ValueError(value) from None
        hours, minutes, secs = (float(g) if g else 0.0 for g in match.groups())
        seconds = hours * 3600 + minutes * 60 + secs
    if seconds <= 0:
        raise ValueError(value)
    return seconds


class _Duration(click.ParamType):  # type: ignore[type-arg]
    name = "DURATION"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float | int):
            return float(value)
        try:
            return parse_duration(str(value))
        except ValueError:
            self.fail(f"{value!r} is not a duration like 90s, 3m or 3m0s", param, ctx)


class _Size(click.ParamType):  # type: ignore[type-arg]
    name = "SIZE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_size(str(value))
        except ValueError:
            self.fail(f"{value!r} is not a size like 1048576, 512KiB or 64MiB", param, ctx)


_OPTIONS = [
    click.option(
        "--allow-insecure-registry",
        is_flag=True,
        default=False,
        help="Talk plain HTTP to the registry (and skip TLS verification), as cosign does.",
    ),
    click.option(
        "--ca-cert",
        type=click.Path(exists=True, dir_okay=False),
        default=None,
        envvar="ATTEST_STEP_CA_CERT",
        help="PEM file of CA certificates to trust for the registry's TLS "
        "(default: the system store; REQUESTS_CA_BUNDLE also works).",
    ),
    click.option(
        "--timeout",
        "timeout_seconds",
        type=_Duration(),
        default=DEFAULT_TIMEOUT_SECONDS,
        show_default="3m0s",
        help="Give up on the registry (and on a web --lookaside) after this long in total: "
        "every request, its headers and body, retries included (exit 75 when it passes).",
    ),
    click.option(
        "--max-blob-size",
        "max_blob_bytes",
        type=_Size(),
        default=DEFAULT_MAX_BLOB_BYTES,
        show_default="64MiB",
        envvar="ATTEST_STEP_MAX_BLOB_SIZE",
        help="Refuse a blob larger than this from the registry, while it streams in "
        "(manifests and indexes: 4 MiB, fixed).",
    ),
    click.option(
        "--registry-layout",
        "layout",
        type=click.Choice(LAYOUTS),
        default=DEFAULT_LAYOUT,
        show_default=True,
        envvar="ATTEST_STEP_REGISTRY_LAYOUT",
        help="tag: cosign's sha256-<hex>.sig/.att tags (cosign v2 and v3 read them); "
        "bundle: Sigstore bundles as OCI referrers (cosign v3 reads these first); both: "
        "each item in both; auto: tag, or both when the image already has bundles.",
    ),
    click.option(
        "--oci-layout",
        "oci_layout_dir",
        type=click.Path(file_okay=False),
        default=None,
        help="Store into this OCI image-layout directory instead of the registry "
        "(air-gapped use; readable by skopeo, oras and cosign --local-image).",
    ),
]

registry_options = option_group("registry", RegistryOptions, RegistryOptions._fields, _OPTIONS)
"""Add the shared registry flags; the command receives ``registry: RegistryOptions``."""

_TRANSFER_FIELDS = ("allow_insecure_registry", "ca_cert", "timeout_seconds", "max_blob_bytes")
transfer_options = option_group(
    "registry", RegistryOptions, _TRANSFER_FIELDS, _OPTIONS[: len(_TRANSFER_FIELDS)]
)
"""The registry flags of a verb that moves images, not signatures (``copy``): no
``--registry-layout`` or ``--oci-layout``; the command receives ``registry``."""

max_blob_size_option = _OPTIONS[3]
"""``--max-blob-size`` alone (the command receives ``max_blob_bytes``), for a verb that
reads and writes only OCI layouts (``append``)."""
