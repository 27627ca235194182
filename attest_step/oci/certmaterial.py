"""The x509 certificate a signature carries, in either layout (nothing is checked here).

- ``.sig``/``.att`` layers: the ``dev.sigstore.cosign/certificate`` annotation (the leaf,
  PEM) and ``dev.sigstore.cosign/chain`` (its issuers, PEM), as ``cosign sign``/``attest``
  write them;
- Sigstore bundles: ``verificationMaterial.certificate.rawBytes`` (v0.3) or
  ``verificationMaterial.x509CertificateChain.certificates[].rawBytes`` (v0.1/v0.2),
  base64 DER, leaf first.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any, NamedTuple

from attest_step.keys import pem
from attest_step.oci.types import CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION


class CarriedCertificate(NamedTuple):
    leaf_pem: bytes | None
    chain_pem: bytes

    @property
    def present(self) -> bool:
        return bool(self.leaf_pem)


NONE = CarriedCertificate(None, b"")


def from_annotations(annotations: Mapping[str, str]) -> CarriedCertificate:
    leaf = annotations.get(CERTIFICATE_ANNOTATION) or ""
    chain = annotations.get(CHAIN_ANNOTATION) or ""
    if not leaf:
        return NONE
    return CarriedCertificate(leaf.encode("utf-8", "replace"), chain.encode("utf-8", "replace"))


def _der_list(items: Any) -> list[bytes]:
    out: list[bytes] = []
    for item in items if isinstance(items, list) else []:
        raw = item.get("rawBytes") if isinstance(item, dict) else None
        if not isinstance(raw, str):
            continue
        try:
            out.append(base64.b64decode(raw, validate=True))
        except (binascii.Error, ValueError):
            out.append(b"\x00")  # malformed: kept so that the check reports it
    return out


def from_bundle(bundle: Mapping[str, Any]) -> CarriedCertificate:
    material = bundle.get("verificationMaterial")
    if not isinstance(material, dict):
        return NONE
    ders: list[bytes] = []
    single = material.get("certificate")
    if isinstance(single, dict):
        ders = _der_list([single])
    chain = material.get("x509CertificateChain")
    if not ders and isinstance(chain, dict):
        ders = _der_list(chain.get("certificates"))
    if not ders:
        return NONE
    pems = [pem.encode("CERTIFICATE", der) if der else b"" for der in ders]
    return CarriedCertificate(pems[0], b"".join(pems[1:]))
