"""The test registry and image fixtures themselves work (real registry, real skopeo)."""

from __future__ import annotations

import json
import subprocess
import urllib.request

import pytest

from tests.fixtures.oci_image import push_image
from tests.fixtures.registry import LocalRegistry
from tests.fixtures.tools import require_tool

pytestmark = pytest.mark.registry


def test_pushed_image_is_served_byte_identical(registry: LocalRegistry) -> None:
    pushed = push_image(registry.repo("fixture"))
    host, _, path = pushed.repository.partition("/")
    req = urllib.request.Request(
        f"http://{host}/v2/{path}/manifests/{pushed.digest}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.read() == pushed.image.manifest
        assert resp.headers["Docker-Content-Digest"] == pushed.digest


def test_skopeo_reads_the_pushed_image(registry: LocalRegistry) -> None:
    skopeo = require_tool("skopeo", hint="apt-get install skopeo")
    pushed = push_image(registry.repo("fixture"))
    out = subprocess.run(
        [str(skopeo), "inspect", "--tls-verify=false", f"docker://{pushed.ref}"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(out.stdout)["Digest"] == pushed.digest


def test_private_registry_restarts_with_its_data(private_registry: LocalRegistry) -> None:
    pushed = push_image(private_registry.repo("fixture"))
    private_registry.stop()
    assert not private_registry.running
    private_registry.start()
    host, _, path = pushed.repository.partition("/")
    with urllib.request.urlopen(f"http://{host}/v2/{path}/tags/list", timeout=5) as resp:
        assert json.loads(resp.read())["tags"] == ["latest"]
