"""A hostile registry: answers without end, one byte at a time, never, or altered.

Each test is named after the attack. The CLI runs as a child process (so its peak RSS and
its exit status are those of the real program); the misbehaving side is a small server
from tests/fixtures/hostile_http.py, or a proxy altering what the real Debian
docker-registry serves when the attack is about content.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from attest_step.errors import EXIT_REGISTRY_UNAVAILABLE
from attest_step.imageref import parse_image_ref
from attest_step.keys.local import LocalSigner, PublicKeyVerifier
from attest_step.oci.layout_store import LayoutStore
from attest_step.oci.options import MAX_MANIFEST_BYTES, RegistryOptions
from attest_step.oci.registry import RegistryClient
from attest_step.oci.retry import Deadline
from attest_step.oci.sign import sign_image
from attest_step.oci.tag_layout import config_blob, manifest_bytes
from attest_step.oci.types import MANIFEST_TYPE, SIMPLESIGNING_TYPE, Descriptor, sha256_digest
from tests.fixtures.hostile_http import (
    ATTEST_STEP,
    Behaviour,
    HostileServer,
    Outcome,
    Request,
    TamperingProxy,
    run_measured,
)
from tests.fixtures.keys import KeyPair
from tests.fixtures.oci_image import build_image, push_image
from tests.fixtures.registry import LocalRegistry

pytestmark = pytest.mark.registry

IMAGE_DIGEST = "sha256:" + "ab" * 32
LAYER_DIGEST = "sha256:" + "cd" * 32
MiB = 1 << 20
Hostile = Callable[[Behaviour], HostileServer]


def one_line(outcome: Outcome) -> str:
    """The single stderr line of a failed run (no traceback, no 'internal error')."""
    lines = outcome.stderr.strip().splitlines()
    assert len(lines) == 1, outcome.stderr[-2000:]
    assert lines[0].startswith("attest-step: error: "), lines[0]
    return lines[0]


def sig_manifest(size: int = 1000) -> bytes:
    """A ``.sig`` manifest with one simple-signing layer of ``size`` bytes."""
    layer = Descriptor(SIMPLESIGNING_TYPE, LAYER_DIGEST, size, {"x": "y"})
    return manifest_bytes([layer], config_blob([LAYER_DIGEST]))


def verify(host: str, keys: KeyPair, *extra: str, timeout: str = "60s") -> Outcome:
    args = [ATTEST_STEP, "verify", "--key", str(keys.pub), "--allow-insecure-registry"]
    args += ["--timeout", timeout, *extra, f"{host}/app@{IMAGE_DIGEST}"]
    return run_measured(args, dict(os.environ))


# --- size ---------------------------------------------------------------------------


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_1_5_gb_manifest_is_refused_while_it_streams_in(
    hostile: Hostile, cosign_key_pair: KeyPair, framing: str
) -> None:
    """The review's 1.5 GB manifest took 3 GB of RSS: now it is refused at 4 MiB (at once
    when its Content-Length says so), and the server gets to send little more than that."""

    def behave(request: Request) -> None:
        if request.method == "GET" and "/manifests/" in request.path:
            declared = 1_500_000_000 if framing == "content-length" else None
            request.stream(MANIFEST_TYPE, declared=declared)
        else:
            request.answer(404)

    server = hostile(behave)
    outcome = verify(server.host, cosign_key_pair)
    line = one_line(outcome)
    assert outcome.returncode == 2, line
    assert f"larger than {MAX_MANIFEST_BYTES} bytes" in line
    assert server.sent < MAX_MANIFEST_BYTES + 32 * MiB, server.sent
    assert outcome.max_rss < 120 * MiB, outcome.max_rss


def endless_blobs(request: Request) -> None:
    """A ``.sig`` manifest whose blobs (descriptor: 1000 bytes) never end."""
    if request.method == "GET" and "/manifests/" in request.path:
        request.answer(200, sig_manifest(), {"Content-Type": MANIFEST_TYPE})
    elif request.method == "GET" and "/blobs/" in request.path:
        request.stream("application/octet-stream", declared=None)
    else:
        request.answer(404)


@pytest.mark.parametrize(
    ("flag", "limit"), [([], 64 * MiB), (["--max-blob-size", "1MiB"], MiB)], ids=["64MiB", "1MiB"]
)
def test_an_endless_blob_is_refused_at_the_blob_limit_while_it_streams_in(
    hostile: Hostile, cosign_key_pair: KeyPair, flag: list[str], limit: int
) -> None:
    """A blob whose descriptor says 1000 bytes but whose body never ends."""

    server = hostile(endless_blobs)
    outcome = verify(server.host, cosign_key_pair, *flag)
    line = one_line(outcome)
    assert outcome.returncode == 2, line
    assert f"larger than {limit} bytes" in line
    assert server.sent < limit + 32 * MiB, server.sent
    assert outcome.max_rss < limit + 100 * MiB, outcome.max_rss


def test_an_endless_blob_copied_to_a_layout_is_refused_and_never_held_in_memory(
    hostile: Hostile, tmp_path: Path
) -> None:
    """``copy --to-oci-layout`` streams a blob to a temporary file: an endless one is cut at
    the blob limit without the process holding it, and the layout gets nothing."""

    server = hostile(endless_blobs)
    out = tmp_path / "out"
    args = [ATTEST_STEP, "copy", "--to-oci-layout", "--allow-insecure-registry"]
    image = f"{server.host}/app@{sha256_digest(sig_manifest())}"
    args += ["--timeout", "60s", image, f"{out}:v1"]
    outcome = run_measured(args, dict(os.environ))
    line = one_line(outcome)
    assert outcome.returncode == 2, line
    assert f"larger than {64 * MiB} bytes" in line
    assert outcome.max_rss < 64 * MiB, outcome.max_rss
    assert not list((out / "blobs" / "sha256").iterdir())
    assert json.loads((out / "index.json").read_text())["manifests"] == []


def test_a_blob_whose_descriptor_is_over_the_limit_is_not_fetched(
    hostile: Hostile, cosign_key_pair: KeyPair
) -> None:
    def behave(request: Request) -> None:
        if request.method == "GET" and "/manifests/" in request.path:
            request.answer(200, sig_manifest(2 * MiB), {"Content-Type": MANIFEST_TYPE})
        else:
            request.answer(404)

    server = hostile(behave)
    outcome = verify(server.host, cosign_key_pair, "--max-blob-size", "1MiB")
    line = one_line(outcome)
    assert outcome.returncode == 2, line
    assert "more than --max-blob-size (1048576 bytes); not fetched" in line
    assert not [r for r in server.requests if "/blobs/" in r], server.requests


def test_the_blob_limit_is_configurable_by_flag_and_environment(
    registry: LocalRegistry, cosign_key_pair: KeyPair
) -> None:
    """On the real registry: a .sig layer of 2 MiB is refused under a 1 MiB limit (flag
    or environment) and read under a 4 MiB one (then it is checked, and fails as a
    signature: exit 1, verification failed)."""
    pushed = push_image(registry.repo("big-sig"))
    image = parse_image_ref(pushed.ref)
    client = RegistryClient(
        image.registry, RegistryOptions(allow_insecure_registry=True), deadline=Deadline(30)
    )
    blob = b"{" + b" " * (2 * MiB) + b"}"
    layer = Descriptor(SIMPLESIGNING_TYPE, sha256_digest(blob), len(blob), {"x": "y"})
    config = config_blob([layer.digest])
    client.put_blob(image.repository, blob)
    client.put_blob(image.repository, config)
    tag = f"sha256-{image.hex}.sig"
    client.put_manifest(image.repository, tag, manifest_bytes([layer], config), MANIFEST_TYPE)
    base = [ATTEST_STEP, "verify", "--key", str(cosign_key_pair.pub), "--allow-insecure-registry"]

    by_flag = run_measured([*base, "--max-blob-size", "1MiB", pushed.ref], dict(os.environ))
    assert by_flag.returncode == 2 and "--max-blob-size (1048576 bytes)" in one_line(by_flag)
    env = {**os.environ, "ATTEST_STEP_MAX_BLOB_SIZE": "1MiB"}
    by_env = run_measured([*base, pushed.ref], env)
    assert by_env.returncode == 2 and "--max-blob-size (1048576 bytes)" in one_line(by_env)
    env = {**os.environ, "ATTEST_STEP_MAX_BLOB_SIZE": "4MiB"}
    raised = run_measured([*base, pushed.ref], env)
    assert raised.returncode == 1, raised.stderr
    assert "no signature verifies" in one_line(raised)
    default = run_measured([*base, pushed.ref], dict(os.environ))
    assert default.returncode == 1, default.stderr


# --- time ---------------------------------------------------------------------------

SLOW_HEADERS = b"HTTP/1.1 200 OK\r\nContent-Type: " + MANIFEST_TYPE.encode() + b"\r\nX-Pad: "
SLOW_HEADERS += b"a" * 4000 + b"\r\nContent-Length: 2\r\n\r\n{}"
SLOW_BODY_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: " + MANIFEST_TYPE.encode()
SLOW_BODY_HEAD += b"\r\nContent-Length: 100000\r\n\r\n"


def _bearer(host: list[str]) -> Behaviour:
    """/v2/* asks for a Bearer token from /token on the same server, which never answers."""

    def behave(request: Request) -> None:
        if request.path.startswith("/token"):
            request.stall()
            return
        challenge = f'Bearer realm="http://{host[0]}/token",service="hostile",scope="x"'
        request.answer(401, b'{"errors":[]}', {"WWW-Authenticate": challenge})

    return behave


def _slow_manifest_headers(request: Request) -> None:
    if "/manifests/" in request.path and request.method == "GET":
        request.trickle(SLOW_HEADERS)
    else:
        request.answer(404)


def _slow_manifest_body(request: Request) -> None:
    if "/manifests/" in request.path and request.method == "GET":
        request.raw_prefix(SLOW_BODY_HEAD)
        request.trickle(b"{" + b" " * 99_999)
    else:
        request.answer(404)


def _slow_blob_body(request: Request) -> None:
    if "/manifests/" in request.path and request.method == "GET":
        request.answer(200, sig_manifest(), {"Content-Type": MANIFEST_TYPE})
    elif "/blobs/" in request.path:
        request.raw_prefix(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        request.trickle(b"x" * 1000)
    else:
        request.answer(404)


def _slow_upload(request: Request) -> None:
    if "/blobs/uploads/" in request.path:
        request.trickle(b"HTTP/1.1 202 Accepted\r\nLocation: /v2/app/blobs/uploads/1\r\n\r\n")
    elif request.path.endswith("/tags/list"):
        request.answer(200, b'{"tags":[]}', {"Content-Type": "application/json"})
    else:
        request.answer(404)


@pytest.mark.parametrize(
    "attack",
    [
        "a-token-realm-that-never-answers",
        "manifest-headers-one-byte-at-a-time",
        "manifest-body-one-byte-at-a-time",
        "blob-body-one-byte-at-a-time",
        "upload-answer-one-byte-at-a-time",
    ],
)
def test_one_deadline_covers_every_request_of_a_verb(
    hostile: Hostile, cosign_key_pair: KeyPair, tmp_path: Path, attack: str
) -> None:
    """``--timeout 3s`` ends the verb, whichever request stalls or trickles: a one-line
    error and exit 75 (registry unavailable). Before, each of these ran until the server
    stopped (a token realm that never answered hung forever)."""
    host: list[str] = []
    behave = {
        "a-token-realm-that-never-answers": _bearer(host),
        "manifest-headers-one-byte-at-a-time": _slow_manifest_headers,
        "manifest-body-one-byte-at-a-time": _slow_manifest_body,
        "blob-body-one-byte-at-a-time": _slow_blob_body,
        "upload-answer-one-byte-at-a-time": _slow_upload,
    }[attack]
    server = hostile(behave)
    host.append(server.host)
    ref = f"{server.host}/app@{IMAGE_DIGEST}"
    common = ["--allow-insecure-registry", "--timeout", "3s"]
    if attack.startswith("upload"):
        args = [ATTEST_STEP, "sign", "--key", str(cosign_key_pair.key), *common]
        args += ["--registry-layout", "tag", "--spool-dir", str(tmp_path / "spool"), ref]
        outcome = run_measured(args, cosign_key_pair.env(), timeout=60)
    else:
        args = [ATTEST_STEP, "verify", "--key", str(cosign_key_pair.pub), *common, ref]
        outcome = run_measured(args, dict(os.environ), timeout=60)
    assert outcome.returncode == EXIT_REGISTRY_UNAVAILABLE, (outcome.returncode, outcome.stderr)
    line = one_line(outcome)
    assert "deadline" in line and "3s" in line, line
    # The deadline plus process start-up (and scrypt for sign), never the server's pace.
    assert outcome.seconds < 20, outcome.seconds
    assert server.requests, "the server was never asked"


# --- content addressing -------------------------------------------------------------


def _write_pub(tmp_path: Path, signer: LocalSigner) -> Path:
    pub = tmp_path / "cosign.pub"
    pub.write_bytes(signer.public_key_pem())
    return pub


def test_a_bundle_manifest_substituted_by_the_registry_is_refused(
    registry: LocalRegistry, tmp_path: Path, p256_signer: tuple[LocalSigner, PublicKeyVerifier]
) -> None:
    """The registry serves other bytes for the bundle referrer's digest (here: the same
    manifest with another creation time). Before, they were used as if they were it."""
    signer, _ = p256_signer
    pushed = push_image(registry.repo("swap-bundle"))
    image = parse_image_ref(pushed.ref)
    options = RegistryOptions(allow_insecure_registry=True, layout="bundle", timeout_seconds=30)
    records = sign_image(image, signer, {}, out_dir=tmp_path / "spool", registry=options)
    bundle_digest = next(r["manifestDigest"] for r in records if r["layout"] == "bundle")

    def rewrite(method: str, path: str, status: int, body: bytes) -> bytes:
        if method == "GET" and path.endswith(f"/manifests/{bundle_digest}") and status == 200:
            doc = json.loads(body)
            doc["annotations"]["org.opencontainers.image.created"] = "2001-01-01T00:00:00Z"
            return json.dumps(doc).encode()
        return body

    proxy = TamperingProxy(registry.host, rewrite)
    try:
        ref = f"{proxy.host}/{image.repository}@{image.digest}"
        args = [ATTEST_STEP, "verify", "--key", str(_write_pub(tmp_path, signer))]
        outcome = run_measured([*args, "--allow-insecure-registry", ref], dict(os.environ))
    finally:
        proxy.stop()
    assert proxy.rewritten, "the proxy never served the bundle manifest"
    line = one_line(outcome)
    assert outcome.returncode == 2, line
    assert f"@{bundle_digest}: the content served does not match its digest" in line


def test_an_image_manifest_substituted_while_attaching_a_bundle_is_refused(
    registry: LocalRegistry, tmp_path: Path, cosign_key_pair: KeyPair
) -> None:
    """``sign --registry-layout bundle`` fetches the image's manifest by digest for the
    referrer's ``subject``. Before, a registry serving another image's manifest there got
    our signature attached to that other image."""
    repository = registry.repo("swap-subject")
    pushed = push_image(repository)
    other = push_image(repository, build_image(label="other"), tag="other")
    image = parse_image_ref(pushed.ref)

    def rewrite(method: str, path: str, status: int, body: bytes) -> bytes:
        if method == "GET" and path.endswith(f"/manifests/{image.digest}"):
            return other.image.manifest
        return body

    proxy = TamperingProxy(registry.host, rewrite)
    try:
        ref = f"{proxy.host}/{image.repository}@{image.digest}"
        args = [ATTEST_STEP, "sign", "--key", str(cosign_key_pair.key), "--allow-insecure-registry"]
        args += ["--registry-layout", "bundle", "--spool-dir", str(tmp_path / "spool"), ref]
        outcome = run_measured(args, cosign_key_pair.env())
    finally:
        proxy.stop()
    line = one_line(outcome)
    assert outcome.returncode == 2, line
    assert f"@{image.digest}: the content served does not match its digest" in line
    assert f"sha256-{other.hex}" not in registry_tags(registry, image.repository)


def registry_tags(registry: LocalRegistry, repository: str) -> list[str]:
    client = RegistryClient(
        registry.host, RegistryOptions(allow_insecure_registry=True), deadline=Deadline(10)
    )
    return client.list_tags(repository)


def test_a_signature_blob_substituted_by_the_registry_is_refused(
    registry: LocalRegistry, tmp_path: Path, p256_signer: tuple[LocalSigner, PublicKeyVerifier]
) -> None:
    """Blobs were already checked against their digest; this keeps it so (through the new
    bounded reader)."""
    signer, _ = p256_signer
    pushed = push_image(registry.repo("swap-blob"))
    image = parse_image_ref(pushed.ref)
    options = RegistryOptions(allow_insecure_registry=True, layout="tag", timeout_seconds=30)
    sign_image(image, signer, {}, out_dir=tmp_path / "spool", registry=options)

    def rewrite(method: str, path: str, status: int, body: bytes) -> bytes:
        if method == "GET" and "/blobs/" in path and status == 200 and b"critical" in body:
            return body.replace(
                b"cosign container image signature", b"cosign container image sIgnature"
            )
        return body

    proxy = TamperingProxy(registry.host, rewrite)
    try:
        ref = f"{proxy.host}/{image.repository}@{image.digest}"
        args = [ATTEST_STEP, "verify", "--key", str(_write_pub(tmp_path, signer))]
        outcome = run_measured([*args, "--allow-insecure-registry", ref], dict(os.environ))
    finally:
        proxy.stop()
    assert proxy.rewritten
    line = one_line(outcome)
    assert outcome.returncode == 2, line
    assert "the content served does not match its digest" in line


def test_a_streamed_upload_that_failed_is_sent_again_from_its_start(
    hostile: Hostile, tmp_path: Path
) -> None:
    """``copy --from-oci-layout`` streams a layer as the PUT body; the registry answers the
    first PUT 503, and the retry sends the whole layer again (the stream rewound)."""
    layer = os.urandom(256 << 10)
    image = build_image({"big.bin": layer}, label="retry")
    layer_digest = json.loads(image.manifest)["layers"][0]["digest"]
    layout = LayoutStore(tmp_path / "src")
    with layout.locked():
        for data in image.blobs.values():
            layout.put_blob(data)
        layout.put_manifest("app", image.manifest, MANIFEST_TYPE)
    bodies: list[bytes] = []

    def behave(request: Request) -> None:
        if request.method == "POST":
            request.answer(202, b"", {"Location": "/upload/1"})
        elif request.method == "PUT" and request.path.startswith("/upload/"):
            if layer_digest in request.path:
                bodies.append(request.body)
            request.answer(503 if len(bodies) == 1 and layer_digest in request.path else 201)
        elif request.method == "PUT":
            request.answer(201)
        else:
            request.answer(404)

    server = hostile(behave)
    args = [ATTEST_STEP, "copy", "--from-oci-layout", "--allow-insecure-registry"]
    args += [f"{tmp_path / 'src'}:app", f"{server.host}/app:v1"]
    outcome = run_measured(args, dict(os.environ))
    assert outcome.returncode == 0, outcome.stderr
    compressed = image.blobs[layer_digest]
    assert bodies == [compressed, compressed]
