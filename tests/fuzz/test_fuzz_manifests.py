"""Manifests, indexes, layers and bundles from a registry or an OCI layout (attest_step/oci/).

Contract: reading signatures and attestations of an image whose manifests, index, layers or
bundles hold anything returns what parses or raises AttestStepError; ``verify`` exits 1 or 2
with one line. The simple-signing payload check raises only VerificationError, and the
certificate material reader (oci/certmaterial.py) never raises.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from attest_step.errors import AttestStepError, VerificationError
from attest_step.imageref import parse_image_ref
from attest_step.keys.local import public_pem
from attest_step.oci.certmaterial import from_annotations, from_bundle
from attest_step.oci.fetch import fetch_attestations, fetch_signatures
from attest_step.oci.options import RegistryOptions
from attest_step.oci.registry import Manifest
from attest_step.oci.simplesigning import check_claims, payload_bytes
from attest_step.oci.tag_layout import layers_of
from attest_step.oci.types import (
    BUNDLE_TYPE,
    DSSE_TYPE,
    MANIFEST_TYPE,
    SIMPLESIGNING_TYPE,
    sha256_digest,
    tag_for,
)
from tests.fuzz.support import Scratch, assert_cli_contract, fuzz, json_values, run_cli

IMAGE = parse_image_ref(f"ghcr.io/o/app@sha256:{'d' * 64}")
DIGEST_TEXT = st.sampled_from([IMAGE.digest, "sha256:" + "0" * 64, "sha256:xyz", "", "md5:00"])
descriptor_like = st.fixed_dictionaries(
    {},
    optional={
        "mediaType": st.sampled_from([SIMPLESIGNING_TYPE, DSSE_TYPE, BUNDLE_TYPE]) | json_values,
        "digest": DIGEST_TEXT | json_values,
        "size": st.integers(-5, 10**12) | json_values,
        "annotations": st.dictionaries(
            st.text(max_size=8), st.text(max_size=8) | json_values, max_size=2
        )
        | json_values,
        "artifactType": st.just(BUNDLE_TYPE) | json_values,
    },
)
manifest_like = st.fixed_dictionaries(
    {},
    optional={
        "schemaVersion": st.just(2) | json_values,
        "mediaType": st.just(MANIFEST_TYPE) | json_values,
        "layers": st.lists(descriptor_like | json_values, max_size=3) | json_values,
        "subject": st.fixed_dictionaries({"digest": DIGEST_TEXT}) | json_values,
        "annotations": st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=2)
        | json_values,
    },
)
manifest_bytes = manifest_like.map(lambda m: json.dumps(m).encode()) | st.binary(max_size=120)


@fuzz
@given(data=manifest_bytes)
def test_manifest_layers_parse_or_raise_attest_step_error(data: bytes) -> None:
    try:
        layers = layers_of(Manifest(data, MANIFEST_TYPE, sha256_digest(data)))
    except AttestStepError:
        return
    assert all(isinstance(layer.size, int) for layer in layers)


def _write_layout(root: Path, index: Any, blobs: list[bytes]) -> None:
    (root / "blobs" / "sha256").mkdir(parents=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    for blob in blobs:
        (root / "blobs" / "sha256" / hashlib.sha256(blob).hexdigest()).write_bytes(blob)
    (root / "index.json").write_bytes(
        index if isinstance(index, bytes) else json.dumps(index).encode()
    )


@st.composite
def layouts(draw: st.DrawFn) -> tuple[Any, list[bytes]]:
    """An index naming the image's .sig/.att tags and a referrer, over fuzzed blobs."""
    blobs = draw(
        st.lists(
            st.binary(max_size=60) | json_values.map(lambda v: json.dumps(v).encode()), max_size=3
        )
    )
    manifests = draw(st.lists(manifest_bytes, min_size=1, max_size=3))
    entries: list[Any] = []
    for number, manifest in enumerate(manifests):
        ref_name = draw(
            st.sampled_from([tag_for(IMAGE.digest, ".sig"), tag_for(IMAGE.digest, ".att"), None])
        )
        entry: dict[str, Any] = {
            "mediaType": MANIFEST_TYPE,
            "digest": sha256_digest(manifest),
            "size": len(manifest),
        }
        if ref_name is not None:
            entry["annotations"] = {"org.opencontainers.image.ref.name": ref_name}
        else:
            entry["subject"] = {"digest": IMAGE.digest}
        entries.append(draw(st.just(entry) | json_values) if number else entry)
    index = draw(
        st.just({"schemaVersion": 2, "manifests": entries})
        | st.fixed_dictionaries({"manifests": json_values})
        | st.binary(max_size=40)
    )
    return index, [*manifests, *blobs]


@fuzz
@given(layout=layouts())
def test_oci_layout_reads_parse_or_raise_attest_step_error(
    layout: tuple[Any, list[bytes]], scratch: Scratch
) -> None:
    root = scratch("layout") / "l"
    _write_layout(root, *layout)
    options = RegistryOptions(oci_layout_dir=str(root))
    for read in (fetch_signatures, fetch_attestations):
        with contextlib.suppress(AttestStepError):
            read(IMAGE, options)


@fuzz
@given(layout=layouts())
def test_verify_cli_on_any_oci_layout(layout: tuple[Any, list[bytes]], scratch: Scratch) -> None:
    work = scratch("verify")
    _write_layout(work / "l", *layout)
    (work / "pub.pem").write_bytes(public_pem(ec.generate_private_key(ec.SECP256R1()).public_key()))
    base = ["--key", str(work / "pub.pem"), "--oci-layout", str(work / "l"), str(IMAGE)]
    assert_cli_contract(run_cli(["verify", *base]), allowed=(1, 2))
    assert_cli_contract(run_cli(["verify-attestation", *base]), allowed=(1, 2))


@st.composite
def replaced(draw: st.DrawFn, document: Any, places: list[list[str]]) -> Any:
    """``document`` (JSON) with one to three of ``places`` replaced by any JSON value."""
    doc = json.loads(json.dumps(document))
    for _ in range(draw(st.integers(1, 3))):
        *parents, last = draw(st.sampled_from(places))
        target = doc
        for key in parents:
            target = target.get(key) if isinstance(target, dict) else None
        if isinstance(target, dict):
            target[last] = draw(json_values)
        elif isinstance(target, list) and target:
            target[0] = draw(json_values)
    return doc


PAYLOAD = json.loads(payload_bytes(IMAGE, {"team": "a"}))
PAYLOAD_PLACES = [
    ["critical"],
    ["critical", "image"],
    ["critical", "image", "docker-manifest-digest"],
    ["critical", "identity"],
    ["optional"],
    ["optional", "team"],
]


@fuzz
@given(
    payload=st.binary(max_size=200)
    | replaced(PAYLOAD, PAYLOAD_PLACES).map(lambda d: json.dumps(d).encode())
    | st.dictionaries(st.text(max_size=6), st.text(max_size=6), max_size=2).map(
        lambda a: payload_bytes(IMAGE, a)
    ),
    wanted=st.dictionaries(st.text(max_size=6), st.text(max_size=6), max_size=2)
    | st.just({"team": "a"}),
)
def test_simple_signing_payloads_check_or_raise_verification_error(
    payload: bytes, wanted: dict[str, str]
) -> None:
    try:
        claims = check_claims(payload, IMAGE.digest, wanted)
    except VerificationError:
        return
    assert claims["critical"]["image"]["docker-manifest-digest"] == IMAGE.digest


DER = base64.b64encode(b"0").decode()
BUNDLE = {
    "verificationMaterial": {
        "certificate": {"rawBytes": DER},
        "x509CertificateChain": {"certificates": [{"rawBytes": DER}, {"rawBytes": DER}]},
    }
}
BUNDLE_PLACES = [
    ["verificationMaterial"],
    ["verificationMaterial", "certificate"],
    ["verificationMaterial", "certificate", "rawBytes"],
    ["verificationMaterial", "x509CertificateChain"],
    ["verificationMaterial", "x509CertificateChain", "certificates"],
    ["verificationMaterial", "x509CertificateChain", "certificates", "0"],
]


@fuzz
@given(
    bundle=replaced(BUNDLE, BUNDLE_PLACES) | st.dictionaries(st.text(max_size=8), json_values),
    annotations=st.dictionaries(
        st.sampled_from(["dev.sigstore.cosign/certificate", "dev.sigstore.cosign/chain", "x"]),
        st.text(max_size=30),
        max_size=3,
    ),
)
def test_certificate_material_is_read_without_raising(
    bundle: Any, annotations: dict[str, str]
) -> None:
    carried = from_bundle(bundle)
    assert (
        carried.leaf_pem is None
        or carried.leaf_pem.startswith(b"-----BEGIN CERTIFICATE-----")
        or carried.leaf_pem == b""
    )
    assert from_annotations(annotations).present == bool(
        annotations.get("dev.sigstore.cosign/certificate")
    )
