"""``verify --pgp-key --lookaside http://...``: signatures our ``sign`` wrote, served by a real
web server on 127.0.0.1 (tests/fixtures/lookaside_http.py), read as containers/image reads
them (signature-1, -2, ... up to the first 404), and every way the server can fail refused
with a one-line error: exit 1 when a signature does not hold, 75 when the server is
unavailable (5xx, the --timeout deadline), 2 when its answer is unusable (403, a body over
the limit, a redirect loop). Real skopeo reads the same server through registries.d.
"""

from __future__ import annotations

import hashlib
import json
import os
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures.hostile_http import HostileServer
from tests.fixtures.lookaside_http import serve_lookaside
from tests.fixtures.oci_image import push_image
from tests.fixtures.pgp import PgpKey
from tests.fixtures.private_var_lib import with_private_var_lib
from tests.fixtures.registry import LocalRegistry
from tests.fixtures.tls_certs import write_ca_and_server_cert
from tests.fixtures.tools import require_tool
from tests.integration.test_pgp_simple_signing import attest_step

REPOSITORY = "127.0.0.1:5000/pgp/web"


def image(name: str) -> str:
    return f"{REPOSITORY}@sha256:{hashlib.sha256(name.encode()).hexdigest()}"


def sign(keys: dict[str, PgpKey], key: str, ref: str, lookaside: Path) -> None:
    pgp = keys[key]
    env = {"ATTEST_STEP_PGP_PASSPHRASE": pgp.passphrase} if pgp.passphrase else {}
    proc = attest_step(
        "sign", "--pgp-key", str(pgp.secret), "--lookaside", str(lookaside), ref, env=env
    )
    assert proc.returncode == 0, proc.stderr


@dataclass(frozen=True)
class Site:
    server: HostileServer
    lookaside: Path

    def url(self, mode: str = "ok") -> str:
        return f"http://{self.server.host}/{mode}"


@pytest.fixture(scope="module")
def site(pgp_keys: dict[str, PgpKey], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A lookaside written by our sign: signed, tampered, wrong-key, two (other, signer)."""
    lookaside = tmp_path_factory.mktemp("web-lookaside") / "lookaside"
    sign(pgp_keys, "signer", image("signed"), lookaside)
    sign(pgp_keys, "signer", image("tampered"), lookaside)
    hexpart = image("tampered").rpartition(":")[2]
    path = lookaside / f"pgp/web@sha256={hexpart}/signature-1"
    data = path.read_bytes()
    at = data.index(hexpart.encode())
    path.write_bytes(data[:at] + (b"0" if data[at : at + 1] != b"0" else b"1") + data[at + 1 :])
    sign(pgp_keys, "other", image("wrong-key"), lookaside)
    sign(pgp_keys, "other", image("two"), lookaside)
    sign(pgp_keys, "signer", image("two"), lookaside)
    server = serve_lookaside(lookaside)
    try:
        yield Site(server, lookaside)
    finally:
        server.stop()


def verify(
    keys: dict[str, PgpKey], lookaside: str, ref: str, *more: str
) -> subprocess.CompletedProcess[str]:
    pub = str(keys["signer"].public_armored)
    return attest_step("verify", "--pgp-key", pub, "--lookaside", lookaside, *more, ref)


def assert_one_line(proc: subprocess.CompletedProcess[str], code: int, says: str) -> None:
    shown = f"exit {proc.returncode}\nstdout: {proc.stdout!r}\nstderr: {proc.stderr!r}"
    assert proc.returncode == code, shown
    assert proc.stderr.startswith("attest-step: error: "), shown
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, shown
    assert says in proc.stderr, shown


def test_verified_over_http(pgp_keys: dict[str, PgpKey], site: Site) -> None:
    ref = image("signed")
    proc = verify(pgp_keys, site.url() + "/", ref, "--output", "json")
    assert proc.returncode == 0, proc.stderr
    (verified,) = json.loads(proc.stdout)["verified"]
    hexpart = ref.rpartition(":")[2]
    assert verified["location"] == f"{site.url()}/pgp/web@sha256={hexpart}/signature-1"
    assert verified["fingerprint"] == pgp_keys["signer"].fingerprint
    assert verified["claims"]["critical"]["image"]["docker-manifest-digest"] in ref


def test_one_redirect_is_followed(pgp_keys: dict[str, PgpKey], site: Site) -> None:
    """A lookaside that moved answers 301 for each signature: followed, as containers/image
    follows it; the signature is still checked against the key."""
    ref = image("signed")
    hexpart = ref.rpartition(":")[2]
    before = len(site.server.requests)
    proc = verify(pgp_keys, site.url("moved"), ref, "--output", "json")
    assert proc.returncode == 0, proc.stderr
    (verified,) = json.loads(proc.stdout)["verified"]
    assert verified["fingerprint"] == pgp_keys["signer"].fingerprint
    asked = site.server.requests[before:]
    assert asked[:2] == [
        f"GET /moved/pgp/web@sha256={hexpart}/signature-1",
        f"GET /ok/pgp/web@sha256={hexpart}/signature-1",
    ]
    tampered = verify(pgp_keys, site.url("moved"), image("tampered"))
    assert_one_line(tampered, 1, "no valid signature")


def test_reads_signature_n_until_the_first_404(pgp_keys: dict[str, PgpKey], site: Site) -> None:
    """signature-1 (by another key) does not hold, signature-2 does; -3 is a 404 and the end."""
    ref = image("two")
    before = len(site.server.requests)
    proc = verify(pgp_keys, site.url(), ref, "--output", "json")
    assert proc.returncode == 0, proc.stderr
    (verified,) = json.loads(proc.stdout)["verified"]
    assert verified["location"].endswith("/signature-2")
    hexpart = ref.rpartition(":")[2]
    asked = site.server.requests[before:]
    assert asked == [f"GET /ok/pgp/web@sha256={hexpart}/signature-{n}" for n in (1, 2, 3)]


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("tampered", "no valid signature"),
        ("wrong-key", "not a valid signature by any of the given keys"),
        ("missing", "no signatures for"),
    ],
)
def test_signatures_that_do_not_hold_are_refused(
    pgp_keys: dict[str, PgpKey], site: Site, case: str, says: str
) -> None:
    proc = verify(pgp_keys, site.url(), image(case))
    assert_one_line(proc, 1, says)
    assert site.url() in proc.stderr


@pytest.mark.parametrize(
    ("mode", "code", "says"),
    [
        ("fail500", 75, "HTTP 500"),
        ("forbidden", 2, "HTTP 403"),
        ("huge", 2, "larger than 65536 bytes"),
        ("slow", 75, "deadline (--timeout 2s)"),
        ("loop", 2, "more than 5 redirects"),
    ],
)
def test_a_failing_server_fails_closed(
    pgp_keys: dict[str, PgpKey], site: Site, mode: str, code: int, says: str
) -> None:
    proc = verify(pgp_keys, site.url(mode), image("signed"), "--timeout", "2s")
    assert_one_line(proc, code, says)
    assert f"--lookaside {site.url(mode)}/pgp/web@sha256=" in proc.stderr


def test_nothing_listening_is_unavailable(pgp_keys: dict[str, PgpKey], site: Site) -> None:
    with_port = site.server.host.rpartition(":")[0] + ":1"
    proc = verify(pgp_keys, f"http://{with_port}/", image("signed"))
    assert_one_line(proc, 75, "cannot connect")


@pytest.mark.parametrize("value", ["ftp://example.com/sigs", "http:///no-host", "https://h/?q=1"])
def test_a_bad_lookaside_url_is_a_usage_error(pgp_keys: dict[str, PgpKey], value: str) -> None:
    assert_one_line(verify(pgp_keys, value, image("signed")), 2, "--lookaside")


def test_sign_refuses_a_web_lookaside(pgp_keys: dict[str, PgpKey], site: Site) -> None:
    signer = pgp_keys["signer"]
    proc = attest_step(
        "sign", "--pgp-key", str(signer.secret), "--lookaside", site.url(), image("new"),
        env={"ATTEST_STEP_PGP_PASSPHRASE": signer.passphrase or ""},
    )  # fmt: skip
    assert_one_line(proc, 2, "publish it on your web server")


def test_https_is_verified_against_ca_cert(
    pgp_keys: dict[str, PgpKey], site: Site, tmp_path: Path
) -> None:
    """A private CA: refused without --ca-cert (exit 2), verified with it."""
    ca, cert, key = write_ca_and_server_cert(tmp_path)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    server = serve_lookaside(site.lookaside, tls)
    try:
        url = f"https://{server.host}/ok"
        assert_one_line(verify(pgp_keys, url, image("signed")), 2, "TLS verification failed")
        proc = verify(pgp_keys, url, image("signed"), "--ca-cert", str(ca))
        assert proc.returncode == 0, proc.stderr
        assert len(server.requests) == 2  # signature-1, signature-2 (404)
    finally:
        server.stop()


# --- skopeo reads what the server serves --------------------------------------------------


@pytest.mark.registry
def test_skopeo_accepts_our_signatures_over_http(
    registry: LocalRegistry, pgp_keys: dict[str, PgpKey], site: Site, tmp_path: Path
) -> None:
    skopeo = require_tool("skopeo", hint="apt-get install skopeo")
    pushed = push_image(registry.repo("pgp/web-lookaside"), tag="v1")
    sign(pgp_keys, "signer", pushed.ref, site.lookaside)
    registries_d = tmp_path / "registries.d"
    registries_d.mkdir()

    def skopeo_copy(mode: str) -> subprocess.CompletedProcess[str]:
        (registries_d / "web.yaml").write_text(
            f"docker:\n  {registry.host}:\n    lookaside: {site.url(mode)}\n"
        )
        rule = {"type": "signedBy", "keyType": "GPGKeys", "keyPath": str(pgp_keys["signer"].public)}
        policy = tmp_path / "policy.json"
        trust = {"default": [{"type": "reject"}], "transports": {"docker": {registry.host: [rule]}}}
        policy.write_text(json.dumps(trust))
        dest = tmp_path / f"out-{mode}"
        argv = [
            str(skopeo), "--policy", str(policy), "--registries.d", str(registries_d), "copy",
            "--src-tls-verify=false", f"docker://{pushed.ref}", f"dir:{dest}",
        ]  # fmt: skip
        return subprocess.run(
            with_private_var_lib(argv, tmp_path / f"var-lib-{mode}"),
            capture_output=True, text=True, check=False, timeout=120,
            env={**os.environ, "HOME": str(tmp_path)},
        )  # fmt: skip

    accepted = skopeo_copy("ok")
    assert accepted.returncode == 0, accepted.stderr
    assert any("signature-1" in r and pushed.hex in r for r in site.server.requests)
    ours = verify(pgp_keys, site.url("ok"), pushed.ref)
    assert ours.returncode == 0, ours.stderr
    # ... and both refuse the image when the server fails.
    refused = skopeo_copy("fail500")
    assert refused.returncode != 0, refused.stdout
    assert "500" in refused.stderr, refused.stderr
    assert verify(pgp_keys, site.url("fail500"), pushed.ref).returncode == 75
