"""Bounded failure: registry down, a proxy answering 5xx, the registry coming back.

Everything is real: the registry process is stopped by PID, the proxy is a threaded
http.server on 127.0.0.1 forwarding to the registry, and the CLI runs as a subprocess.
"""

from __future__ import annotations

import http.client
import http.server
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from attest_step.errors import EXIT_REGISTRY_UNAVAILABLE
from attest_step.imageref import parse_image_ref
from attest_step.keys.load import load_verifier
from attest_step.oci.options import RegistryOptions
from attest_step.oci.verify_sig import verify_image_signatures
from tests.fixtures.keys import KeyPair
from tests.fixtures.oci_image import push_image
from tests.fixtures.registry import LocalRegistry
from tests.fixtures.tools import REPO_ROOT

pytestmark = pytest.mark.registry

ATTEST_STEP = str(REPO_ROOT / ".venv" / "bin" / "attest-step")


class FaultyProxy:
    """Forwards to the registry; answers 503 to the first ``fail_first`` requests
    (or to every request when ``fail_first`` is negative)."""

    def __init__(self, upstream: str, fail_first: int) -> None:
        self.upstream = upstream
        self.fail_first = fail_first
        self.failed = 0
        self.forwarded = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with proxy._lock:
                    fail = proxy.fail_first < 0 or proxy.failed < proxy.fail_first
                    if fail:
                        proxy.failed += 1
                    else:
                        proxy.forwarded += 1
                if fail:
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                conn = http.client.HTTPConnection(proxy.upstream, timeout=10)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                headers["Host"] = self.headers.get("Host", proxy.upstream)
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for key, value in resp.getheaders():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = do_HEAD = _handle

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


ProxyFactory = Callable[[int], FaultyProxy]


@pytest.fixture
def proxy_factory(registry: LocalRegistry) -> Iterator[ProxyFactory]:
    made: list[FaultyProxy] = []

    def make(fail_first: int) -> FaultyProxy:
        made.append(FaultyProxy(registry.host, fail_first))
        return made[-1]

    yield make
    for p in made:
        p.close()


def run(args: list[str], keys: KeyPair) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ATTEST_STEP, *args],
        check=False,
        env=keys.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def opts() -> RegistryOptions:
    return RegistryOptions(allow_insecure_registry=True, timeout_seconds=20)


def test_registry_down_fails_in_time_keeps_spool_and_push_later_succeeds(
    private_registry: LocalRegistry, tmp_path: Path, cosign_key_pair: KeyPair
) -> None:
    ref = push_image(private_registry.repo("outage")).ref
    private_registry.stop()
    spool = tmp_path / "spool"
    started = time.monotonic()
    res = run(
        [
            "sign",
            "--key",
            str(cosign_key_pair.key),
            "--allow-insecure-registry",
            "--timeout",
            "3s",
            "--spool-dir",
            str(spool),
            ref,
        ],
        cosign_key_pair,
    )
    elapsed = time.monotonic() - started
    assert res.returncode == EXIT_REGISTRY_UNAVAILABLE, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "connection refused" in lines[0] and f"push --from {spool}" in lines[0]
    assert elapsed < 10, elapsed  # 3 s deadline + process start, never oras' 131 s
    assert len(list(spool.glob("*.oci.json"))) == 2

    private_registry.start()
    args = ["push", "--from", str(spool), "--allow-insecure-registry", "--registry-layout", "tag"]
    first = run(args, cosign_key_pair)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("pushed: signature (tag)")
    second = run(args, cosign_key_pair)
    assert second.returncode == 0 and second.stdout.startswith("present: signature (tag)")
    image = parse_image_ref(ref)
    verified = verify_image_signatures(image, load_verifier(str(cosign_key_pair.pub)), {}, opts())
    assert len(verified) == 1


def test_transient_5xx_are_retried(
    registry: LocalRegistry,
    proxy_factory: ProxyFactory,
    tmp_path: Path,
    cosign_key_pair: KeyPair,
) -> None:
    proxy = proxy_factory(3)
    pushed = push_image(registry.repo("flaky"))
    path = pushed.repository.partition("/")[2]
    ref = f"{proxy.host}/{path}@{pushed.digest}"
    res = run(
        [
            "sign",
            "--key",
            str(cosign_key_pair.key),
            "--allow-insecure-registry",
            "--timeout",
            "30s",
            "--registry-layout",
            "tag",
            ref,
        ],
        cosign_key_pair,
    )
    assert res.returncode == 0, res.stderr
    assert proxy.failed == 3 and proxy.forwarded > 0
    image = parse_image_ref(f"{pushed.repository}@{pushed.digest}")
    assert verify_image_signatures(image, load_verifier(str(cosign_key_pair.pub)), {}, opts())


def test_persistent_5xx_fail_within_deadline(
    proxy_factory: ProxyFactory, tmp_path: Path, cosign_key_pair: KeyPair
) -> None:
    proxy = proxy_factory(-1)
    ref = f"{proxy.host}/app@sha256:{'c' * 64}"
    started = time.monotonic()
    res = run(
        [
            "sign",
            "--key",
            str(cosign_key_pair.key),
            "--allow-insecure-registry",
            "--timeout",
            "2s",
            "--spool-dir",
            str(tmp_path / "s"),
            ref,
        ],
        cosign_key_pair,
    )
    assert res.returncode == EXIT_REGISTRY_UNAVAILABLE, res.stderr
    assert "HTTP 503" in res.stderr and "gave up" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert time.monotonic() - started < 10
    assert proxy.failed >= 2
