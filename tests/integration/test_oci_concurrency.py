"""Eight processes appending to the same image at once lose nothing (real registry)."""

from __future__ import annotations

import json
import multiprocessing
import urllib.request
from collections.abc import Callable
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from attest_step.dsse import sign_envelope
from attest_step.imageref import ImageRef, parse_image_ref
from attest_step.keys.local import LocalSigner, PublicKeyVerifier
from attest_step.oci.fetch import fetch_attestations
from attest_step.oci.options import RegistryOptions
from attest_step.oci.prefetch import start_signature_prefetch
from attest_step.oci.sign import sign_image
from attest_step.oci.spool import write_attestation
from attest_step.oci.upload import push_spool
from attest_step.oci.verify_sig import verify_image_signatures
from tests.fixtures.oci_image import push_image, slsa_statement
from tests.fixtures.registry import LocalRegistry

pytestmark = [pytest.mark.registry, pytest.mark.slow]

WRITERS = 8
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"


def _opts(layout: str) -> RegistryOptions:
    return RegistryOptions(allow_insecure_registry=True, layout=layout, timeout_seconds=60)


def _sign_worker(ref: str, out: str, barrier: Barrier, queue: multiprocessing.Queue[bytes]) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    signer = LocalSigner(key)
    barrier.wait(timeout=30)
    sign_image(parse_image_ref(ref), signer, {}, out_dir=Path(out), registry=_opts("tag"))
    queue.put(signer.public_key_pem())


def _prefetched_sign_worker(
    ref: str, out: str, barrier: Barrier, queue: multiprocessing.Queue[bytes]
) -> None:
    """As ``attest-step sign`` does: the registry work that needs no signature first, here
    finished by every writer before any writes, so every first read is stale by the PUT."""
    signer = LocalSigner(ec.generate_private_key(ec.SECP256R1()))
    image = parse_image_ref(ref)
    prefetch = start_signature_prefetch(image, {}, _opts("both"))
    assert prefetch is not None and prefetch.result() is not None
    barrier.wait(timeout=30)
    sign_image(image, signer, {}, out_dir=Path(out), registry=_opts("both"), prefetch=prefetch)
    queue.put(signer.public_key_pem())


def _attest_worker(
    ref: str, out: str, barrier: Barrier, queue: multiprocessing.Queue[bytes]
) -> None:
    signer = LocalSigner(ec.generate_private_key(ec.SECP256R1()))
    image = parse_image_ref(ref)
    statement = json.dumps(slsa_statement(image.name, image.hex)).encode()
    envelope = json.dumps(sign_envelope(statement, signer)).encode()
    write_attestation(Path(out), envelope, image, "https://slsa.dev/provenance/v1")
    barrier.wait(timeout=30)
    push_spool(Path(out), _opts("both"))
    queue.put(signer.public_key_pem())


def _run(target: Callable[..., None], ref: str, tmp_path: Path) -> list[bytes]:
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(WRITERS)
    queue: multiprocessing.Queue[bytes] = ctx.Queue()
    procs = [
        ctx.Process(target=target, args=(ref, str(tmp_path / f"w{i}"), barrier, queue))
        for i in range(WRITERS)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * WRITERS
    return [queue.get(timeout=5) for _ in range(WRITERS)]


def _layers(ref: ImageRef, tag: str, accept: str) -> list[dict[str, object]]:
    req = urllib.request.Request(
        f"http://{ref.registry}/v2/{ref.repository}/manifests/{tag}", headers={"Accept": accept}
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        doc = json.loads(resp.read())
    return list(doc.get("layers") or doc.get("manifests") or [])


def _verifier(pem: bytes) -> PublicKeyVerifier:
    key = serialization.load_pem_public_key(pem)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return PublicKeyVerifier(key)


@pytest.mark.parametrize(
    ("worker", "layout"),
    [(_sign_worker, "tag"), (_prefetched_sign_worker, "both")],
    ids=["tag", "prefetched-both"],
)
def test_eight_concurrent_signers_leave_eight_signatures(
    registry: LocalRegistry, tmp_path: Path, worker: Callable[..., None], layout: str
) -> None:
    ref = parse_image_ref(push_image(registry.repo("race-sig")).ref)
    keys = _run(worker, str(ref), tmp_path)
    assert len(_layers(ref, f"sha256-{ref.hex}.sig", MANIFEST)) == WRITERS
    sources = ["tag"]
    if layout == "both":  # and the referrers fallback index, one bundle per signer
        assert len(_layers(ref, f"sha256-{ref.hex}", INDEX)) == WRITERS
        sources = ["bundle", "tag"]
    for pem in keys:
        found = verify_image_signatures(ref, _verifier(pem), {}, _opts(layout))
        assert sorted(v.source for v in found) == sources


def test_eight_concurrent_attesters_leave_eight_in_both_layouts(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    ref = parse_image_ref(push_image(registry.repo("race-att")).ref)
    _run(_attest_worker, str(ref), tmp_path)
    assert len(_layers(ref, f"sha256-{ref.hex}.att", MANIFEST)) == WRITERS
    assert len(_layers(ref, f"sha256-{ref.hex}", INDEX)) == WRITERS
    found = fetch_attestations(ref, _opts("both"))
    assert sorted(f.source for f in found) == ["bundle"] * WRITERS + ["tag"] * WRITERS
