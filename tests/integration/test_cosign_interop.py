"""Real cosign (v3, and v2 when built) against attest-step's output, and the reverse.

Every check is a real command against the real registry (or OCI layout directory).
Keys come from ``cosign generate-key-pair``, so they also prove those keys load here.
"""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
from pathlib import Path

import pytest

from attest_step.dsse import sign_envelope, verify_envelope
from attest_step.imageref import ImageRef, parse_image_ref
from attest_step.keys.load import load_signer, load_verifier
from attest_step.oci.fetch import fetch_attestations
from attest_step.oci.options import RegistryOptions
from attest_step.oci.sign import sign_image
from attest_step.oci.spool import write_attestation
from attest_step.oci.upload import push_spool
from tests.fixtures.keys import KeyPair
from tests.fixtures.oci_image import build_image, push_image, slsa_statement, write_oci_layout
from tests.fixtures.registry import LocalRegistry
from tests.fixtures.tools import REPO_ROOT, cosign_v2, cosign_v3

pytestmark = [pytest.mark.registry, pytest.mark.cosign]

ATTEST_STEP = str(REPO_ROOT / ".venv" / "bin" / "attest-step")
SLSA = "https://slsa.dev/provenance/v1"
PREDICATE = {
    "buildDefinition": {"buildType": "https://example.com/t", "externalParameters": {"a": "b"}},
    "runDetails": {"builder": {"id": "https://example.com/builder"}},
}


def cosign(binary: Path, args: list[str], keys: KeyPair, cwd: Path | None = None) -> str:
    res = subprocess.run(
        [str(binary), *args],
        env={**keys.env(), "SIGSTORE_NO_CACHE": "1", "TUF_ROOT": str(cwd or "/nonexistent")},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert res.returncode == 0, f"cosign {' '.join(args[:2])} failed: {res.stderr[-800:]}"
    return res.stdout


def verify_args(keys: KeyPair, ref: str) -> list[str]:
    return ["--key", str(keys.pub), "--insecure-ignore-tlog", "--allow-insecure-registry", ref]


def opts(layout: str = "auto", layout_dir: str | None = None) -> RegistryOptions:
    return RegistryOptions(
        allow_insecure_registry=True, layout=layout, timeout_seconds=30, oci_layout_dir=layout_dir
    )


def attest(
    ref: ImageRef, keys: KeyPair, layout: str, tmp: Path, layout_dir: str | None = None
) -> None:
    signer = load_signer(str(keys.key), password_value=keys.password.encode())
    statement = json.dumps(slsa_statement(ref.name, ref.hex)).encode()
    envelope = json.dumps(sign_envelope(statement, signer)).encode()
    write_attestation(tmp, envelope, ref, SLSA, public_key_pem=signer.public_key_pem())
    push_spool(tmp, opts(layout, layout_dir))


def sign(
    ref: ImageRef, keys: KeyPair, layout: str, tmp: Path, layout_dir: str | None = None
) -> None:
    signer = load_signer(str(keys.key), password_value=keys.password.encode())
    sign_image(ref, signer, {"team": "a"}, out_dir=tmp, registry=opts(layout, layout_dir))


@pytest.mark.parametrize("layout", ["auto", "tag", "bundle", "both"])
def test_cosign_v3_verifies_our_signatures_and_attestations(
    registry: LocalRegistry, tmp_path: Path, real_cosign_key_pair: KeyPair, layout: str
) -> None:
    keys = real_cosign_key_pair
    ref = parse_image_ref(push_image(registry.repo(f"interop-{layout}")).ref)
    sign(ref, keys, layout, tmp_path / "s")
    attest(ref, keys, layout, tmp_path / "a")
    out = cosign(cosign_v3(), ["verify", "-a", "team=a", *verify_args(keys, str(ref))], keys)
    assert ref.digest in out
    out = cosign(
        cosign_v3(),
        ["verify-attestation", "--type", "slsaprovenance1", *verify_args(keys, str(ref))],
        keys,
    )
    payload = json.loads(base64.b64decode(json.loads(out.splitlines()[0])["payload"]))
    assert payload["predicateType"] == SLSA


@pytest.mark.parametrize("layout", ["auto", "tag"])
def test_cosign_v2_verifies_our_tag_layout(
    registry: LocalRegistry, tmp_path: Path, real_cosign_key_pair: KeyPair, layout: str
) -> None:
    binary = cosign_v2()
    keys = real_cosign_key_pair
    ref = parse_image_ref(push_image(registry.repo("interop-v2")).ref)
    sign(ref, keys, layout, tmp_path / "s")
    attest(ref, keys, layout, tmp_path / "a")
    cosign(binary, ["verify", "-a", "team=a", *verify_args(keys, str(ref))], keys)
    cosign(
        binary,
        ["verify-attestation", "--type", "slsaprovenance1", *verify_args(keys, str(ref))],
        keys,
    )


def test_cosign_v2_reads_bundles_only_with_a_trusted_root(
    registry: LocalRegistry, tmp_path: Path, real_cosign_key_pair: KeyPair
) -> None:
    """cosign v2.6 switches to bundle mode when it finds bundles and then wants a trusted
    root; an empty one is enough for --key --insecure-ignore-tlog."""
    binary = cosign_v2()
    keys = real_cosign_key_pair
    ref = parse_image_ref(push_image(registry.repo("interop-v2b")).ref)
    attest(ref, keys, "bundle", tmp_path / "a")
    args = ["verify-attestation", "--type", "slsaprovenance1", *verify_args(keys, str(ref))]
    res = subprocess.run(
        [str(binary), *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert res.returncode != 0 and "trusted root" in res.stderr
    root = tmp_path / "trusted_root.json"
    root.write_text('{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}')
    cosign(binary, [*args[:-1], "--trusted-root", str(root), args[-1]], keys)


def test_attest_step_verifies_what_cosign_signs_and_attests(
    registry: LocalRegistry, tmp_path: Path, real_cosign_key_pair: KeyPair
) -> None:
    keys = real_cosign_key_pair
    binary = cosign_v3()
    config = tmp_path / "signing-config.json"
    cosign(binary, ["signing-config", "create", "--out", str(config)], keys)
    predicate = tmp_path / "predicate.json"
    predicate.write_text(json.dumps(PREDICATE))
    bundle_ref = parse_image_ref(push_image(registry.repo("from-cosign")).ref)
    common = ["--key", str(keys.key), "--allow-insecure-registry", "-y"]
    cosign(
        binary,
        ["sign", *common, "--signing-config", str(config), "-a", "team=a", str(bundle_ref)],
        keys,
    )
    cosign(
        binary,
        [
            "attest",
            *common,
            "--signing-config",
            str(config),
            "--type",
            "slsaprovenance1",
            "--predicate",
            str(predicate),
            str(bundle_ref),
        ],
        keys,
    )
    legacy_ref = parse_image_ref(push_image(registry.repo("from-cosign-legacy")).ref)
    legacy = [
        *common,
        "--new-bundle-format=false",
        "--tlog-upload=false",
        "--use-signing-config=false",
    ]
    cosign(binary, ["sign", *legacy, "-a", "team=a", str(legacy_ref)], keys)
    cosign(
        binary,
        [
            "attest",
            *legacy,
            "--type",
            "slsaprovenance1",
            "--predicate",
            str(predicate),
            str(legacy_ref),
        ],
        keys,
    )
    verifier = load_verifier(str(keys.pub))
    for ref, source in ((bundle_ref, "bundle"), (legacy_ref, "tag")):
        res = subprocess.run(
            [
                ATTEST_STEP,
                "verify",
                "--key",
                str(keys.pub),
                "--allow-insecure-registry",
                "-a",
                "team=a",
                "--output",
                "json",
                str(ref),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert res.returncode == 0, res.stderr
        assert [v["source"] for v in json.loads(res.stdout)["verified"]] == [source]
        (found,) = fetch_attestations(ref, opts())
        assert found.source == source
        statement = json.loads(verify_envelope(found.envelope, verifier))
        assert (
            statement["predicateType"] == SLSA
            and statement["subject"][0]["digest"]["sha256"] == ref.hex
        )
    wrong = subprocess.run(
        [
            ATTEST_STEP,
            "verify",
            "--key",
            str(keys.pub),
            "--allow-insecure-registry",
            "-a",
            "team=b",
            str(bundle_ref),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert wrong.returncode == 1 and "no signature verifies" in wrong.stderr


def test_cosign_verifies_our_oci_layout_directory(
    tmp_path: Path, real_cosign_key_pair: KeyPair
) -> None:
    keys = real_cosign_key_pair
    image = build_image(label="airgap")
    layout = write_oci_layout(tmp_path / "layout", image)
    ref = parse_image_ref(f"registry.example/app@{image.digest}")
    sign(ref, keys, "auto", tmp_path / "s", str(layout))
    attest(ref, keys, "auto", tmp_path / "a", str(layout))
    local = ["--key", str(keys.pub), "--insecure-ignore-tlog", "--local-image", str(layout)]
    binaries = [cosign_v3()]
    with contextlib.suppress(pytest.skip.Exception):
        binaries.append(cosign_v2())
    for binary in binaries:
        cosign(binary, ["verify", "-a", "team=a", *local], keys)
        cosign(binary, ["verify-attestation", "--type", "slsaprovenance1", *local], keys)
