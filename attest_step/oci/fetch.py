"""Read attestations back from the registry, in both layouts. (Stub.)"""

from __future__ import annotations

from typing import Any

from attest_step.imageref import ImageRef
from attest_step.oci.options import RegistryOptions


def fetch_attestation_envelopes(image: ImageRef, registry: RegistryOptions) -> list[dict[str, Any]]:
    """Every DSSE envelope attached to ``image`` (``.att`` tag and Sigstore bundles)."""
    raise NotImplementedError
