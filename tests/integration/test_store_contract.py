"""One contract for both storage backends (attest_step/oci/store.py): the real local registry
(distribution 2.8, through RegistryStore) and an OCI image-layout directory (LayoutStore).

Every case runs against both; the last ones check that the cosign layouts, written once
against the Store interface, give the same manifest bytes in a registry and in a layout.
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from attest_step.dsse import sign_envelope
from attest_step.errors import RegistryError
from attest_step.imageref import parse_image_ref
from attest_step.keys.local import LocalSigner, PublicKeyVerifier
from attest_step.oci.bundle_layout import fetch_bundles, list_referrers, push_referrer
from attest_step.oci.layout_store import LayoutStore
from attest_step.oci.options import DEFAULT_MAX_BLOB_BYTES, MAX_MANIFEST_BYTES, RegistryOptions
from attest_step.oci.registry import RegistryClient
from attest_step.oci.registry_store import RegistryStore
from attest_step.oci.retry import Deadline
from attest_step.oci.rmw import Pace, Update, read_modify_write
from attest_step.oci.sign import spool_signature
from attest_step.oci.spool import write_attestation
from attest_step.oci.store import Manifest, Store
from attest_step.oci.tag_layout import Layer, append_layer, config_blob, manifest_bytes, read_layers
from attest_step.oci.types import (
    BUNDLE_TYPE,
    INDEX_TYPE,
    MANIFEST_TYPE,
    SIGNATURE_ANNOTATION,
    SIMPLESIGNING_TYPE,
    Descriptor,
    compact_json,
    sha256_digest,
    tag_for,
)
from attest_step.oci.upload import push_spool
from tests.fixtures.oci_image import build_image, push_image, slsa_statement, write_oci_layout
from tests.fixtures.registry import LocalRegistry

pytestmark = pytest.mark.registry

BACKENDS = ["registry", "oci-layout"]


class Backend(NamedTuple):
    store: Store
    blob_file: Callable[[str], Path]
    """Where the backend keeps a blob's bytes on disk (to forge them)."""


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "registry":
        registry: LocalRegistry = request.getfixturevalue("registry")
        host, _, repository = registry.repo("contract").partition("/")
        options = RegistryOptions(allow_insecure_registry=True, timeout_seconds=30)
        client = RegistryClient(host, options, deadline=Deadline(30))
        blobs = registry.storage / "docker" / "registry" / "v2" / "blobs" / "sha256"
        yield Backend(RegistryStore(client, repository), lambda d: blobs / d[7:9] / d[7:] / "data")
        return
    layout = LayoutStore(tmp_path / "layout")
    with layout.locked():
        yield Backend(layout, lambda d: tmp_path / "layout" / "blobs" / "sha256" / d[7:])


@pytest.fixture
def store(backend: Backend) -> Store:
    return backend.store


def _subject(store: Store, label: str = "subject") -> Descriptor:
    """A small image manifest stored by digest (its blobs first, as a registry needs)."""
    layer = f"layer of {label}".encode()
    store.put_blob(layer)
    config = config_blob([sha256_digest(layer)])
    store.put_blob(config)
    data = manifest_bytes(
        [Descriptor("application/octet-stream", sha256_digest(layer), len(layer))], config
    )
    digest = store.put_manifest(sha256_digest(data), data, MANIFEST_TYPE)
    return Descriptor(MANIFEST_TYPE, digest, len(data))


def _layer(n: int) -> Layer:
    payload = f'{{"payload":{n}}}'.encode()
    return Layer(payload, SIMPLESIGNING_TYPE, {SIGNATURE_ANNOTATION: f"sig-{n}"})


def test_an_absent_tag_reads_as_none(store: Store) -> None:
    assert store.get_manifest("sha256-" + "0" * 64 + ".sig") is None
    assert store.manifest_digest("sha256-" + "0" * 64 + ".sig") is None
    assert "sha256-" + "0" * 64 + ".sig" not in store.list_tags()
    assert store.get_manifest("sha256:" + "0" * 64) is None


def test_blobs_round_trip_and_are_checked(store: Store) -> None:
    data = b"a blob for the contract"
    digest = store.put_blob(data)
    assert digest == sha256_digest(data)
    assert store.put_blob(data) == digest  # idempotent
    assert store.get_blob(digest) == data
    assert store.get_blob(digest, size=len(data)) == data
    with pytest.raises(RegistryError):
        store.get_blob(digest, size=len(data) + 1)
    with pytest.raises(RegistryError):
        store.get_blob("sha256:xyz")


def test_descriptors_claiming_more_than_the_limits_are_not_read(store: Store) -> None:
    digest = store.put_blob(b"small")
    with pytest.raises(RegistryError, match="more than --max-blob-size"):
        store.get_blob(digest, size=DEFAULT_MAX_BLOB_BYTES + 1)
    subject = _subject(store)
    with pytest.raises(RegistryError, match=f"more than the {MAX_MANIFEST_BYTES} bytes"):
        store.get_manifest(subject.digest, size=MAX_MANIFEST_BYTES + 1)


def test_content_that_does_not_match_its_digest_is_refused(backend: Backend) -> None:
    store = backend.store
    digest = store.put_blob(b"the genuine blob bytes")
    backend.blob_file(digest).write_bytes(b"the forged! blob byte")
    with pytest.raises(RegistryError, match="does not match its digest"):
        store.get_blob(digest)
    subject = _subject(store, "genuine")
    path = backend.blob_file(subject.digest)
    path.write_bytes(path.read_bytes().replace(b'"size"', b'"Size"'))
    with pytest.raises(RegistryError, match="does not match its digest"):
        store.get_manifest(subject.digest)


def test_a_tagged_manifest_reads_back_by_tag_and_by_digest(store: Store) -> None:
    subject = _subject(store)
    by_digest = store.get_manifest(subject.digest)
    assert isinstance(by_digest, Manifest) and by_digest.digest == subject.digest
    tag = tag_for(subject.digest, ".sig")
    layer = _layer(1)
    store.put_blob(layer.data)
    config = config_blob([layer.descriptor().digest])
    store.put_blob(config)
    data = manifest_bytes([layer.descriptor()], config)
    digest = store.put_manifest(tag, data, MANIFEST_TYPE)
    assert digest == sha256_digest(data)
    assert store.manifest_digest(tag) == digest
    assert tag in store.list_tags()
    read = store.get_manifest(tag)
    assert read is not None and read.data == data and read.media_type == MANIFEST_TYPE
    again = store.get_manifest(digest, size=len(data))
    assert again is not None and again.data == data
    assert ":" in store.location(digest) and store.location(tag).endswith(f":{tag}")


def test_append_layer_adds_once_and_keeps_other_layers(store: Store) -> None:
    tag = tag_for(_subject(store).digest, ".sig")
    first = append_layer(store, tag, _layer(1))
    assert first.status == "pushed"
    assert append_layer(store, tag, _layer(1)).status == "present"
    second = append_layer(store, tag, _layer(2))
    assert second.status == "pushed" and second.manifest_digest != first.manifest_digest
    layers = read_layers(store, tag)
    assert [d.annotations[SIGNATURE_ANNOTATION] for d, _ in layers] == ["sig-1", "sig-2"]
    assert [blob for _, blob in layers] == [_layer(1).data, _layer(2).data]


def test_read_modify_write_keeps_what_it_merged(store: Store) -> None:
    tag = "contract-index"
    entries: list[dict[str, object]] = []

    def build(current: Manifest | None) -> bytes:
        have = current.index_entries() if current is not None else []
        doc = {"schemaVersion": 2, "mediaType": INDEX_TYPE, "manifests": [*have, *entries]}
        return compact_json(doc)

    def complete(current: Manifest | None) -> bool:
        have = current.index_entries() if current is not None else []
        return all(e in have for e in entries)

    update = Update(build, complete, INDEX_TYPE, "the test index")
    entries.append(_subject(store, "one").to_dict())
    pace = Pace(random.Random(1), lambda _: None)
    assert read_modify_write(store, tag, update, pace=pace).status == "pushed"
    outcome = read_modify_write(store, tag, update, pace=pace)
    assert outcome.status == "present"


def test_a_bundle_referrer_is_listed_fetched_and_attached_once(store: Store) -> None:
    subject = _subject(store)
    bundle = compact_json({"mediaType": BUNDLE_TYPE, "dsseEnvelope": {"payload": "e30="}})
    created = "2026-12-04T00:00:00Z"
    first = push_referrer(
        store, subject=subject, bundle=bundle, predicate_type="https://p/v1", created=created
    )
    assert first.status == "pushed"
    # Neither distribution 2.8 nor a directory has the referrers API: the sha256-HEX index.
    assert first.fallback_tag == tag_for(subject.digest)
    again = push_referrer(
        store, subject=subject, bundle=bundle, predicate_type="https://p/v1", created=created
    )
    assert again.status == "present" and again.manifest_digest == first.manifest_digest
    listed = list_referrers(store, subject.digest)
    assert [d.digest for d in listed] == [first.manifest_digest]
    assert listed[0].artifact_type == BUNDLE_TYPE
    (fetched,) = fetch_bundles(store, subject.digest)
    assert fetched.predicate_type == "https://p/v1" and fetched.bundle["mediaType"] == BUNDLE_TYPE


# --- the same layouts in both backends ----------------------------------------------------


def _spool(tmp: Path, ref_text: str, signer: LocalSigner) -> Path:
    ref = parse_image_ref(ref_text)
    spool_signature(tmp, ref, signer, {"run": "contract"})
    statement = json.dumps(slsa_statement(ref.name, ref.hex)).encode()
    envelope = json.dumps(sign_envelope(statement, signer)).encode()
    write_attestation(
        tmp, envelope, ref, "https://slsa.dev/provenance/v1", public_key_pem=signer.public_key_pem()
    )
    return tmp


def test_registry_and_layout_hold_byte_identical_cosign_manifests(
    registry: LocalRegistry, tmp_path: Path, p256_signer: tuple[LocalSigner, PublicKeyVerifier]
) -> None:
    """One spool pushed to the registry and into an OCI layout: the .sig and .att manifests,
    the bundle referrers and the sha256-HEX referrers index are the same bytes."""
    signer, _ = p256_signer
    image = build_image(label="contract-identical")
    pushed = push_image(registry.repo("identical"), image)
    spool = _spool(tmp_path / "spool", pushed.ref, signer)
    layout_dir = write_oci_layout(tmp_path / "layout", image)
    options = RegistryOptions(allow_insecure_registry=True, timeout_seconds=30, layout="both")
    to_registry = push_spool(spool, options)
    to_layout = push_spool(spool, options._replace(oci_layout_dir=str(layout_dir)))
    assert [r["status"] for r in to_registry] == ["pushed"] * 4
    assert [r["status"] for r in to_layout] == ["pushed"] * 4
    assert [r["manifestDigest"] for r in to_registry] == [r["manifestDigest"] for r in to_layout]
    again = push_spool(spool, options) + push_spool(
        spool, options._replace(oci_layout_dir=str(layout_dir))
    )
    assert [r["status"] for r in again] == ["present"] * 8

    ref = parse_image_ref(pushed.ref)
    client = RegistryClient(ref.registry, options, deadline=Deadline(30))
    remote = RegistryStore(client, ref.repository)
    local = LayoutStore(layout_dir)
    for tag in (tag_for(ref.digest, ".sig"), tag_for(ref.digest, ".att"), tag_for(ref.digest)):
        theirs, ours = remote.get_manifest(tag), local.get_manifest(tag)
        assert theirs is not None and ours is not None, tag
        assert theirs.data == ours.data, tag
    for record in to_registry:
        if record["layout"] == "bundle":
            theirs = remote.get_manifest(record["manifestDigest"])
            ours = local.get_manifest(record["manifestDigest"])
            assert theirs is not None and ours is not None and theirs.data == ours.data


def test_a_layout_entry_whose_manifest_is_missing_is_refused(tmp_path: Path) -> None:
    """index.json naming a manifest the directory lacks is a broken layout (exit 2), not an
    absent tag: a read-modify-write would otherwise drop what the entry held."""
    layout = LayoutStore(tmp_path / "layout")
    with layout.locked():
        tag = tag_for(_subject(layout).digest, ".sig")
        append_layer(layout, tag, _layer(1))
    digest = layout.manifest_digest(tag)
    assert digest is not None
    (tmp_path / "layout" / "blobs" / "sha256" / digest[7:]).unlink()
    with pytest.raises(RegistryError, match="which the layout lacks"), layout.locked():
        append_layer(layout, tag, _layer(2))


# --- streamed blobs (Store.open_blob / put_blob_stream) ------------------------------------


class _FailingReader:
    """Hands out ``good`` bytes, then fails as a source that went away does."""

    def __init__(self, good: bytes) -> None:
        self._source = io.BytesIO(good)

    def read(self, size: int = -1, /) -> bytes:
        chunk = self._source.read(size)
        if not chunk:
            raise RegistryError("the source went away")
        return chunk


class _Unread:
    def read(self, size: int = -1, /) -> bytes:
        raise AssertionError("read although the store has the blob")


def _random(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def _assert_nothing_committed(backend: Backend, *digests: str) -> None:
    for digest in digests:
        assert not backend.blob_file(digest).exists(), digest
    if isinstance(backend.store, LayoutStore):
        assert not list((backend.store.root / "blobs" / "sha256").glob(".partial-*"))


@pytest.mark.parametrize("size", [5, 3 << 20], ids=["small", "3MiB"])
def test_streamed_blobs_round_trip(backend: Backend, size: int) -> None:
    store = backend.store
    data = _random(size, size)
    desc = Descriptor("application/octet-stream", sha256_digest(data), len(data))
    assert store.put_blob_stream(desc, io.BytesIO(data)) == desc.digest
    assert backend.blob_file(desc.digest).read_bytes() == data
    assert store.put_blob_stream(desc, _Unread()) == desc.digest  # present: nothing read
    with store.open_blob(desc.digest, desc.size) as reader:
        assert reader.read_all() == data
    assert store.get_blob(desc.digest, size=size) == data


@pytest.mark.parametrize("size", [5, 3 << 20], ids=["small", "3MiB"])
def test_a_stream_of_another_digest_is_refused_and_nothing_committed(
    backend: Backend, size: int
) -> None:
    data = _random(size, size + 1)
    claimed = sha256_digest(data + b"!")
    with pytest.raises(RegistryError, match="does not match its digest"):
        backend.store.put_blob_stream(Descriptor("x", claimed, size), io.BytesIO(data))
    _assert_nothing_committed(backend, claimed, sha256_digest(data))


@pytest.mark.parametrize("delta", [1, -1], ids=["stream-shorter", "stream-longer"])
def test_a_stream_of_another_size_is_refused_and_nothing_committed(
    backend: Backend, delta: int
) -> None:
    data = _random(2 << 20, 7 + delta)
    desc = Descriptor("x", sha256_digest(data), len(data) + delta)
    with pytest.raises(RegistryError, match=r"ended after|longer than"):
        backend.store.put_blob_stream(desc, io.BytesIO(data))
    _assert_nothing_committed(backend, desc.digest)


def test_a_stream_that_breaks_off_commits_nothing(backend: Backend) -> None:
    data = _random(2 << 20, 11)
    desc = Descriptor("x", sha256_digest(data), len(data))
    with pytest.raises(RegistryError, match="went away"):
        backend.store.put_blob_stream(desc, _FailingReader(data[: 1 << 20]))
    _assert_nothing_committed(backend, desc.digest)


def test_streams_over_the_max_blob_size_are_refused_before_reading(backend: Backend) -> None:
    store = backend.store
    digest = store.put_blob(b"small")
    huge = DEFAULT_MAX_BLOB_BYTES + 1
    with pytest.raises(RegistryError, match="more than --max-blob-size"):
        store.open_blob(digest, huge).__enter__()
    with pytest.raises(RegistryError, match="more than --max-blob-size"):
        store.put_blob_stream(Descriptor("x", "sha256:" + "1" * 64, huge), _Unread())
    _assert_nothing_committed(backend, "sha256:" + "1" * 64)


def test_an_opened_blob_is_checked_as_it_is_read(backend: Backend) -> None:
    store = backend.store
    data = _random(1 << 20, 13)
    digest = store.put_blob(data)
    with pytest.raises(RegistryError), store.open_blob(digest, len(data) + 1) as reader:
        reader.drain()
    forged = bytearray(data)
    forged[-1] ^= 1
    backend.blob_file(digest).write_bytes(bytes(forged))
    with store.open_blob(digest, len(data)) as reader:
        first = reader.read(1 << 10)
        assert first == data[: 1 << 10]
        with pytest.raises(RegistryError, match="does not match its digest"):
            reader.drain()


def test_a_layout_does_not_stream_a_blob_through_a_symbolic_link(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "layout"
    (root / "blobs").mkdir(parents=True)
    (root / "blobs" / "sha256").symlink_to(outside)
    data = _random(100 << 10, 17)
    desc = Descriptor("x", sha256_digest(data), len(data))
    layout = LayoutStore(root)
    with layout.locked(), pytest.raises(RegistryError, match="symbolic link"):
        layout.put_blob_stream(desc, io.BytesIO(data))
    assert not list(outside.iterdir())
