"""x509 chains against real cosign v3 and a real registry, both directions.

cosign verifies a certificate-bearing signature without Fulcio or Rekor with
``--certificate-chain`` (or ``--ca-roots``/``--ca-intermediates``), the identity flags and
``--insecure-ignore-tlog --insecure-ignore-sct``. Each case below is judged by both tools,
which must agree.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from attest_step.imageref import parse_image_ref
from attest_step.keys.local import LocalSigner
from attest_step.oci.options import RegistryOptions
from attest_step.oci.sign import spool_signature
from attest_step.oci.upload import push_spool
from tests.fixtures.keys import private_pem, write_cosign_pair
from tests.fixtures.oci_image import push_image
from tests.fixtures.registry import LocalRegistry
from tests.fixtures.tools import REPO_ROOT, cosign_v3
from tests.fixtures.x509certs import DAY, NOW, SIGNER_URI, Pki, leaf_for, make_pki, pem_of, write

pytestmark = [pytest.mark.registry, pytest.mark.cosign]

ATTEST_STEP = str(REPO_ROOT / ".venv" / "bin" / "attest-step")
IDENTITY = ["--certificate-identity", SIGNER_URI, "--certificate-oidc-issuer-regexp", ".*"]


@dataclass(frozen=True)
class Outcome:
    ok: bool
    stdout: str
    stderr: str


def run(args: list[str], tmp: Path) -> Outcome:
    env = {**os.environ, "SIGSTORE_NO_CACHE": "1", "TUF_ROOT": str(tmp), "COSIGN_PASSWORD": "pw"}
    res = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env, check=False)
    return Outcome(res.returncode == 0, res.stdout, res.stderr)


def cosign_verify(ref: str, trust: list[str], tmp: Path) -> Outcome:
    cosign = str(cosign_v3())
    flags = ["--insecure-ignore-tlog", "--insecure-ignore-sct", "--allow-insecure-registry"]
    return run([cosign, "verify", *trust, *IDENTITY, *flags, ref], tmp)


def ours_verify(ref: str, trust: list[str], tmp: Path, identity: list[str] = IDENTITY) -> Outcome:
    args = [ATTEST_STEP, "verify", *trust, *identity, "--allow-insecure-registry"]
    return run([*args, "--output", "json", ref], tmp)


def signed_image(
    registry: LocalRegistry, tmp: Path, key: ec.EllipticCurvePrivateKey, *chain: x509.Certificate
) -> str:
    """An image signed (tag layout) by ``key`` carrying ``chain``; no sign-time checks."""
    ref = push_image(registry.repo("x509")).ref
    signer = LocalSigner(key, [pem_of(c) for c in chain])
    spool = tmp / f"spool-{len(list(tmp.glob('spool-*')))}"
    spool_signature(spool, parse_image_ref(ref), signer, {})
    push_spool(spool, RegistryOptions(allow_insecure_registry=True, layout="tag"))
    return ref


@pytest.fixture
def pki() -> Pki:
    return make_pki()


def test_cosign_verifies_what_attest_step_signs_with_a_chain(
    registry: LocalRegistry, tmp_path: Path, pki: Pki
) -> None:
    (tmp_path / "leaf.key").write_bytes(private_pem(pki.leaf_key))
    chain = write(tmp_path / "chain.pem", pki.leaf, pki.mid)
    ref = push_image(registry.repo("x509-cli")).ref
    signed = run(
        [
            ATTEST_STEP,
            "sign",
            "--key",
            str(tmp_path / "leaf.key"),
            "--certificate-chain",
            str(chain),
            "--allow-insecure-registry",
            "--registry-layout",
            "tag",
            ref,
        ],
        tmp_path,
    )
    assert signed.ok, signed.stderr
    issuers = ["--certificate-chain", str(write(tmp_path / "issuers.pem", pki.mid, pki.root))]
    roots = [
        *["--ca-roots", str(write(tmp_path / "root.pem", pki.root))],
        *["--ca-intermediates", str(write(tmp_path / "mid.pem", pki.mid))],
    ]
    for trust in (issuers, roots):
        theirs = cosign_verify(ref, trust, tmp_path)
        assert theirs.ok, theirs.stderr
        assert SIGNER_URI in theirs.stdout
        ours = ours_verify(ref, trust, tmp_path)
        assert ours.ok, ours.stderr
        (record,) = json.loads(ours.stdout)["verified"]
        assert record["certificate"]["checked"] is True


def _wrong_root(pki: Pki, tmp: Path) -> list[str]:
    other = make_pki()
    return ["--certificate-chain", str(write(tmp / "other.pem", other.mid, other.root))]


@pytest.mark.parametrize(
    ("case", "good"),
    [
        ("valid", True),
        ("wrong-root", False),
        ("leaf-server-auth-eku", False),
        ("expired-leaf", False),
        ("intermediate-expired", False),
    ],
)
def test_attest_step_and_cosign_agree(
    registry: LocalRegistry, tmp_path: Path, pki: Pki, case: str, good: bool
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    mid, mid_key = pki.mid, pki.mid_key
    leaf = leaf_for(key, mid, mid_key)
    if case == "leaf-server-auth-eku":
        leaf = leaf_for(key, mid, mid_key, eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    elif case == "expired-leaf":
        leaf = leaf_for(key, mid, mid_key, not_before=NOW - DAY / 2, not_after=NOW - DAY / 4)
    elif case == "intermediate-expired":
        from tests.fixtures.x509certs import issue  # noqa: PLC0415

        mid_key = ec.generate_private_key(ec.SECP256R1())
        mid = issue(
            "old intermediate",
            mid_key,
            pki.root,
            pki.root_key,
            ca=True,
            not_before=NOW - 10 * DAY,
            not_after=NOW - DAY,
        )
        leaf = leaf_for(key, mid, mid_key, not_before=NOW - 5 * DAY, not_after=NOW + DAY)
    ref = signed_image(registry, tmp_path, key, leaf, mid)
    trust = ["--certificate-chain", str(write(tmp_path / "issuers.pem", mid, pki.root))]
    if case == "wrong-root":
        trust = _wrong_root(pki, tmp_path)
    theirs = cosign_verify(ref, trust, tmp_path)
    ours = ours_verify(ref, trust, tmp_path)
    assert theirs.ok is good, f"cosign: {theirs.stderr[-600:]}"
    assert ours.ok is good, f"attest-step: {ours.stderr}"


def test_attest_step_verifies_cosigns_certificate_signatures(
    registry: LocalRegistry, tmp_path: Path, pki: Pki
) -> None:
    """cosign sign --key --certificate --certificate-chain, as a Sigstore bundle and in the
    legacy .sig layout: attest-step checks the certificate found in either."""
    cosign = str(cosign_v3())
    keys = write_cosign_pair(tmp_path, pki.leaf_key, "pw")
    leaf = write(tmp_path / "leaf.pem", pki.leaf)
    issuers = write(tmp_path / "issuers.pem", pki.mid, pki.root)
    config = tmp_path / "signing-config.json"
    made = run([cosign, "signing-config", "create", "--out", str(config)], tmp_path)
    assert made.ok, made.stderr
    layouts = {
        "bundle": ["--signing-config", str(config)],
        "tag": ["--new-bundle-format=false", "--tlog-upload=false", "--use-signing-config=false"],
    }
    for source, extra in layouts.items():
        ref = push_image(registry.repo(f"x509-cosign-{source}")).ref
        signed = run(
            [
                cosign,
                "sign",
                "--key",
                str(keys.key),
                "--certificate",
                str(leaf),
                "--certificate-chain",
                str(issuers),
                "--allow-insecure-registry",
                "-y",
                *extra,
                ref,
            ],
            tmp_path,
        )
        assert signed.ok, signed.stderr
        ours = ours_verify(ref, ["--certificate-chain", str(issuers)], tmp_path)
        assert ours.ok, ours.stderr
        (record,) = json.loads(ours.stdout)["verified"]
        assert record["source"] == source
        assert record["certificate"]["subjects"] == [SIGNER_URI]
        with_key = run(
            [
                ATTEST_STEP,
                "verify",
                "--key",
                str(keys.pub),
                "--allow-insecure-registry",
                "--output",
                "json",
                ref,
            ],
            tmp_path,
        )
        assert with_key.ok, with_key.stderr
        (record,) = json.loads(with_key.stdout)["verified"]
        assert record["certificate"]["checked"] is False
        other = ours_verify(ref, _wrong_root(pki, tmp_path), tmp_path)
        assert not other.ok


def test_attest_step_checks_the_certificate_of_cosigns_attestations(
    registry: LocalRegistry, tmp_path: Path, pki: Pki
) -> None:
    """cosign attest --certificate --certificate-chain (.att layer annotations and bundle
    verification material): verify-attestation checks that certificate."""
    cosign = str(cosign_v3())
    keys = write_cosign_pair(tmp_path, pki.leaf_key, "pw")
    leaf = write(tmp_path / "leaf.pem", pki.leaf)
    issuers = write(tmp_path / "issuers.pem", pki.mid, pki.root)
    predicate = tmp_path / "predicate.json"
    predicate.write_text(json.dumps({"builder": "test"}))
    config = tmp_path / "signing-config.json"
    assert run([cosign, "signing-config", "create", "--out", str(config)], tmp_path).ok
    layouts = {
        "bundle": ["--signing-config", str(config)],
        "tag": ["--new-bundle-format=false", "--tlog-upload=false", "--use-signing-config=false"],
    }
    for source, extra in layouts.items():
        ref = push_image(registry.repo(f"x509-att-{source}")).ref
        made = run(
            [
                *[cosign, "attest", "--key", str(keys.key), "--certificate", str(leaf)],
                *["--certificate-chain", str(issuers), "--allow-insecure-registry", "-y"],
                *["--type", "https://example.com/p/v1", "--predicate", str(predicate)],
                *[*extra, ref],
            ],
            tmp_path,
        )
        assert made.ok, made.stderr
        base = [ATTEST_STEP, "verify-attestation", "--type", "https://example.com/p/v1"]
        base += ["--allow-insecure-registry", "--output", "json"]
        ours = run([*base, "--certificate-chain", str(issuers), *IDENTITY, ref], tmp_path)
        assert ours.ok, f"{source}: {ours.stderr}"
        assert json.loads(ours.stdout)["certificate"]["checked"] is True
        with_key = run([*base, "--key", str(keys.pub), ref], tmp_path)
        assert with_key.ok, with_key.stderr
        assert json.loads(with_key.stdout)["certificate"]["checked"] is False
        wrong = run([*base, *_wrong_root(pki, tmp_path), *IDENTITY, ref], tmp_path)
        assert not wrong.ok
        assert "does not chain" in wrong.stderr
