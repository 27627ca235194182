"""Storage layouts against a real registry: tag layout, bundle referrers, fallback index,
idempotent pushes, fetch in both layouts, signature verification, OCI layout directory."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from attest_step.dsse import sign_envelope
from attest_step.errors import RegistryError, VerificationError
from attest_step.imageref import ImageRef, parse_image_ref
from attest_step.keys.load import load_signer
from attest_step.keys.local import LocalSigner, PublicKeyVerifier
from attest_step.oci.fetch import fetch_attestations
from attest_step.oci.options import RegistryOptions
from attest_step.oci.prefetch import start_signature_prefetch
from attest_step.oci.sign import sign_image
from attest_step.oci.simplesigning import payload_bytes
from attest_step.oci.spool import read_spool, write_attestation
from attest_step.oci.upload import push_spool
from attest_step.oci.verify_sig import verify_image_signatures
from tests.fixtures.oci_image import build_image, push_image, slsa_statement, write_oci_layout
from tests.fixtures.registry import LocalRegistry
from tests.fixtures.tools import require_tool

pytestmark = pytest.mark.registry

Signer = tuple[LocalSigner, PublicKeyVerifier]


def opts(layout: str = "auto", **kw: Any) -> RegistryOptions:
    return RegistryOptions(allow_insecure_registry=True, layout=layout, timeout_seconds=30, **kw)


def get_json(url: str, accept: str = "application/vnd.oci.image.manifest.v1+json") -> Any:
    req = urllib.request.Request(url, headers={"Accept": accept})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def manifest(
    ref: ImageRef, tag: str, accept: str = "application/vnd.oci.image.manifest.v1+json"
) -> Any:
    return get_json(f"http://{ref.registry}/v2/{ref.repository}/manifests/{tag}", accept)


def spool_attestation(tmp: Path, ref: ImageRef, signer: LocalSigner) -> Path:
    statement = json.dumps(slsa_statement(ref.name, ref.hex)).encode()
    envelope = json.dumps(sign_envelope(statement, signer)).encode()
    write_attestation(
        tmp, envelope, ref, "https://slsa.dev/provenance/v1", public_key_pem=signer.public_key_pem()
    )
    return tmp


def test_simple_signing_payload_has_go_byte_layout() -> None:
    ref = parse_image_ref("ghcr.io/org/app@sha256:" + "a" * 64)
    assert payload_bytes(ref) == (
        b'{"critical":{"identity":{"docker-reference":"ghcr.io/org/app"},'
        b'"image":{"docker-manifest-digest":"sha256:' + b"a" * 64 + b'"},'
        b'"type":"cosign container image signature"},"optional":null}'
    )
    assert payload_bytes(ref, {"z": "1", "a": "<&>"}).endswith(
        b'"optional":{"a":"\\u003c\\u0026\\u003e","z":"1"}}'
    )


def test_sign_tag_layout_exact_media_types(
    registry: LocalRegistry, tmp_path: Path, p256_signer: Signer
) -> None:
    signer, verifier = p256_signer
    ref = parse_image_ref(push_image(registry.repo("sig")).ref)
    records = sign_image(ref, signer, {"k": "v"}, out_dir=tmp_path, registry=opts("tag"))
    assert [(r["kind"], r["layout"], r["status"]) for r in records] == [
        ("signature", "tag", "pushed")
    ]
    doc = manifest(ref, f"sha256-{ref.hex}.sig")
    assert doc["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert doc["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    (layer,) = doc["layers"]
    assert layer["mediaType"] == "application/vnd.dev.cosign.simplesigning.v1+json"
    assert set(layer["annotations"]) == {"dev.cosignproject.cosign/signature"}
    verified = verify_image_signatures(ref, verifier, {"k": "v"}, opts())
    assert [v.source for v in verified] == ["tag"]
    with pytest.raises(VerificationError, match="no signature verifies"):
        verify_image_signatures(ref, verifier, {"k": "other"}, opts())
    other = LocalSigner(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(VerificationError):
        verify_image_signatures(ref, other.verifier(), {}, opts())


def test_signing_twice_appends_and_keeps_both(
    registry: LocalRegistry, tmp_path: Path, p256_signer: Signer
) -> None:
    signer, verifier = p256_signer
    ref = parse_image_ref(push_image(registry.repo("append")).ref)
    sign_image(ref, signer, {"n": "1"}, out_dir=tmp_path / "a", registry=opts("tag"))
    sign_image(ref, signer, {"n": "2"}, out_dir=tmp_path / "b", registry=opts("tag"))
    assert len(manifest(ref, f"sha256-{ref.hex}.sig")["layers"]) == 2
    assert len(verify_image_signatures(ref, verifier, {"n": "1"}, opts())) == 1
    assert len(verify_image_signatures(ref, verifier, {"n": "2"}, opts())) == 1


def test_certificate_chain_annotations(
    registry: LocalRegistry, tmp_path: Path, x509_chain: Any
) -> None:
    signer = load_signer(str(x509_chain.leaf_key), certificate_chain=x509_chain.chain)
    ref = parse_image_ref(push_image(registry.repo("x509")).ref)
    sign_image(ref, signer, {}, out_dir=tmp_path, registry=opts("tag"))
    (layer,) = manifest(ref, f"sha256-{ref.hex}.sig")["layers"]
    ann = layer["annotations"]
    assert ann["dev.sigstore.cosign/certificate"].startswith("-----BEGIN CERTIFICATE-----")
    assert ann["dev.sigstore.cosign/chain"].count("BEGIN CERTIFICATE") == 1


def test_attestation_both_layouts_and_idempotent_push(
    registry: LocalRegistry, tmp_path: Path, p256_signer: Signer
) -> None:
    signer, _ = p256_signer
    ref = parse_image_ref(push_image(registry.repo("att")).ref)
    spool = spool_attestation(tmp_path, ref, signer)
    first = push_spool(spool, opts("both"))
    assert [(r["layout"], r["status"]) for r in first] == [("tag", "pushed"), ("bundle", "pushed")]
    again = push_spool(spool, opts("both"))
    assert [r["status"] for r in again] == ["present", "present"]

    att = manifest(ref, f"sha256-{ref.hex}.att")
    (layer,) = att["layers"]
    assert layer["mediaType"] == "application/vnd.dsse.envelope.v1+json"
    assert layer["annotations"] == {
        "predicateType": "https://slsa.dev/provenance/v1",
        "dev.cosignproject.cosign/signature": "",
    }
    index = manifest(ref, f"sha256-{ref.hex}", "application/vnd.oci.image.index.v1+json")
    (entry,) = index["manifests"]
    assert entry["artifactType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    referrer = manifest(ref, entry["digest"])
    assert referrer["subject"]["digest"] == ref.digest
    assert referrer["config"] == {
        "mediaType": "application/vnd.oci.empty.v1+json",
        "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
        "size": 2,
    }
    bundle = get_json(
        f"http://{ref.registry}/v2/{ref.repository}/blobs/{referrer['layers'][0]['digest']}"
    )
    assert bundle["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert bundle["verificationMaterial"]["tlogEntries"] == []
    assert bundle["verificationMaterial"]["publicKey"]["hint"]

    found = fetch_attestations(ref, opts())
    assert sorted(f.source for f in found) == ["bundle", "tag"]
    assert found[0].envelope["payload"] == found[1].envelope["payload"]


def test_auto_layout_adds_bundles_only_when_image_has_them(
    registry: LocalRegistry, tmp_path: Path, p256_signer: Signer
) -> None:
    signer, _ = p256_signer
    plain = parse_image_ref(push_image(registry.repo("auto")).ref)
    assert [
        r["layout"] for r in push_spool(spool_attestation(tmp_path / "a", plain, signer), opts())
    ] == ["tag"]
    bundled = parse_image_ref(push_image(registry.repo("auto")).ref)
    sign_image(bundled, signer, {}, out_dir=tmp_path / "s", registry=opts("bundle"))
    layouts = [
        r["layout"] for r in push_spool(spool_attestation(tmp_path / "b", bundled, signer), opts())
    ]
    assert layouts == ["tag", "bundle"]


def test_auto_layout_with_the_prefetch_signs_as_without_it(
    registry: LocalRegistry, tmp_path: Path, p256_signer: Signer
) -> None:
    """``sign``'s prefetch reads the ``.sig`` tag while ``auto`` lists the referrers; the
    outcome is the same as without a prefetch: the tag alone for a plain image, tag and
    bundle once the image has a bundle, each signature verifiable."""
    signer, verifier = p256_signer
    plain = parse_image_ref(push_image(registry.repo("auto-prefetch")).ref)
    prefetch = start_signature_prefetch(plain, {}, opts())
    records = sign_image(
        plain, signer, {}, out_dir=tmp_path / "p", registry=opts(), prefetch=prefetch
    )
    assert [(r["kind"], r["layout"], r["status"]) for r in records] == [
        ("signature", "tag", "pushed")
    ]
    assert [v.source for v in verify_image_signatures(plain, verifier, {}, opts())] == ["tag"]

    bundled = parse_image_ref(push_image(registry.repo("auto-prefetch")).ref)
    sign_image(bundled, signer, {}, out_dir=tmp_path / "b1", registry=opts("bundle"))
    prefetch = start_signature_prefetch(bundled, {}, opts())
    records = sign_image(
        bundled, signer, {}, out_dir=tmp_path / "b2", registry=opts(), prefetch=prefetch
    )
    assert [(r["kind"], r["layout"]) for r in records] == [
        ("signature", "tag"),
        ("signature-bundle", "bundle"),
    ]
    sources = [v.source for v in verify_image_signatures(bundled, verifier, {}, opts())]
    assert sorted(sources) == ["bundle", "bundle", "tag"]


def test_spool_survives_and_push_needs_the_image(
    registry: LocalRegistry, tmp_path: Path, p256_signer: Signer
) -> None:
    signer, _ = p256_signer
    ref = parse_image_ref(f"{registry.repo('missing')}@sha256:{'b' * 64}")
    spool_attestation(tmp_path, ref, signer)
    (item,) = read_spool(tmp_path)
    assert item.kind == "attestation" and item.image == ref
    with pytest.raises(RegistryError, match="not in the registry"):
        push_spool(tmp_path, opts("bundle"))


def test_oci_layout_target_is_read_by_skopeo_and_fetch(tmp_path: Path, p256_signer: Signer) -> None:
    signer, verifier = p256_signer
    image = build_image(label="layout")
    layout = write_oci_layout(tmp_path / "layout", image)
    ref = parse_image_ref(f"example.com/app@{image.digest}")
    target = opts("both", oci_layout_dir=str(layout))
    sign_image(ref, signer, {}, out_dir=tmp_path / "s1", registry=target)
    records = push_spool(spool_attestation(tmp_path / "s2", ref, signer), target)
    assert {r["status"] for r in records} == {"pushed"}
    assert {r["status"] for r in push_spool(tmp_path / "s2", target)} == {"present"}
    assert [v.source for v in verify_image_signatures(ref, verifier, {}, target)] == [
        "tag",
        "bundle",
    ]
    assert sorted(f.source for f in fetch_attestations(ref, target)) == ["bundle", "tag"]
    index = json.loads((layout / "index.json").read_text())
    kinds = sorted(m["annotations"].get("kind", "") for m in index["manifests"])
    assert kinds == [
        "",
        "",
        "",
        "dev.cosignproject.cosign/atts",
        "dev.cosignproject.cosign/image",
        "dev.cosignproject.cosign/sigs",
    ]
    # The referrers fallback index sha256-HEX lists both bundles, as a registry without the
    # referrers API has it (regctl's ocidir:// lists referrers only from there; issue 14).
    fallback = [
        m
        for m in index["manifests"]
        if m["annotations"].get("org.opencontainers.image.ref.name") == f"sha256-{image.hex}"
    ]
    assert [m["mediaType"] for m in fallback] == ["application/vnd.oci.image.index.v1+json"]
    listed = json.loads((layout / "blobs" / "sha256" / fallback[0]["digest"][7:]).read_bytes())
    bundles = [m for m in index["manifests"] if m.get("artifactType")]
    assert sorted(m["digest"] for m in listed["manifests"]) == sorted(m["digest"] for m in bundles)
    assert all(
        "org.opencontainers.image.ref.name" not in m["annotations"] for m in listed["manifests"]
    )
    skopeo = require_tool("skopeo", hint="apt-get install skopeo")
    out = subprocess.run(
        [str(skopeo), "inspect", "--raw", f"oci:{layout}:sha256-{ref.hex}.att"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (
        json.loads(out.stdout)["layers"][0]["mediaType"] == "application/vnd.dsse.envelope.v1+json"
    )


def test_regctl_lists_the_referrers_of_an_oci_layout(tmp_path: Path, p256_signer: Signer) -> None:
    """regctl's ``ocidir://`` finds referrers only through the ``sha256-HEX`` fallback index
    (issue 14): before it was written, ``regctl artifact list`` was empty on our layouts."""
    regctl = require_tool("regctl")
    signer, _ = p256_signer
    image = build_image(label="regctl")
    layout = write_oci_layout(tmp_path / "layout", image)
    ref = parse_image_ref(f"example.com/app@{image.digest}")
    target = opts("bundle", oci_layout_dir=str(layout))
    sign_image(ref, signer, {}, out_dir=tmp_path / "s1", registry=target)
    push_spool(spool_attestation(tmp_path / "s2", ref, signer), target)
    proc = subprocess.run(
        [str(regctl), "artifact", "list", "--format", "{{json .}}", f"ocidir://{layout}:latest"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr
    listed = json.loads(proc.stdout)["descriptors"]
    assert len(listed) == 2, listed
    assert {m["artifactType"] for m in listed} == {"application/vnd.dev.sigstore.bundle.v0.3+json"}
