"""Transparency log: attest-step and real cosign v3 against a real local Rekor v2 log.

The log is rekor-tiles v2.3.0's POSIX server (tests/fixtures/rekor.py); the trusted root
each verifier gets names only that log. What attest-step signs with ``--rekor-url`` carries
the log's entry (inclusion proof, checkpoint) in its Sigstore bundle; attest-step's and
cosign's verifiers accept it with ``--trusted-root``, and both refuse a bundle without an
entry, with a changed entry, or from a log the trusted root does not name. With the log
down, the signed output stays in the spool (exit 75) and ``push --from`` finishes the job
once the log is back.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from attest_step.dsse import sign_envelope
from attest_step.imageref import parse_image_ref
from attest_step.keys.local import LocalSigner
from attest_step.oci.options import RegistryOptions
from attest_step.oci.routing import TLOG_ENTRIES_KEY
from attest_step.oci.spool import read_spool
from attest_step.oci.upload import push_items
from attest_step.tlog.client import LogClient, LogTarget
from tests.fixtures.keys import KeyPair, PemKey
from tests.fixtures.oci_image import build_image, push_image, write_oci_layout
from tests.fixtures.registry import LocalRegistry
from tests.fixtures.rekor import LocalRekor
from tests.fixtures.tools import cosign_v3

pytestmark = [pytest.mark.registry, pytest.mark.cosign]

CLI = [str(Path(sys.executable).parent / "attest-step")]
REG = ["--allow-insecure-registry", "--timeout", "30s"]
PREDICATE = {
    "buildDefinition": {"buildType": "https://example.com/t", "externalParameters": {"a": "b"}},
    "runDetails": {"builder": {"id": "https://example.com/builder"}},
}


def run(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, capture_output=True, text=True, timeout=180, check=False, cwd=cwd,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "SIGSTORE_NO_CACHE": "1", "TUF_ROOT": "/nonexistent"},
    )  # fmt: skip


def passed(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"{' '.join(proc.args[:3])}: {proc.stderr[-1500:]}"
    return proc.stdout


def ok(args: list[str]) -> str:
    return passed(run(args))


def cosign_verify(verb: str, pub: Path, root: Path, ref: str) -> subprocess.CompletedProcess[str]:
    extra = ["--type", "slsaprovenance1"] if verb == "verify-attestation" else []
    return run(
        [str(cosign_v3()), verb, *extra, "--key", str(pub), "--trusted-root", str(root),
         "--allow-insecure-registry", ref]
    )  # fmt: skip


def sign(key: PemKey, ref: str, rekor: LocalRekor, *extra: str) -> subprocess.CompletedProcess[str]:
    return run([*CLI, "sign", "--key", str(key.key), "--rekor-url", rekor.url, *REG, *extra, ref])


def attest(
    key: PemKey, ref: str, rekor: LocalRekor, *extra: str
) -> subprocess.CompletedProcess[str]:
    return run(
        [*CLI, "attest", "--key", str(key.key), "--image", ref, "--rekor-url", rekor.url,
         *REG, *extra]
    )  # fmt: skip


@pytest.fixture
def key(pem_keys: dict[str, PemKey]) -> PemKey:
    """The signing key of most cases: ECDSA P-256, cosign's default."""
    return pem_keys["ecdsa-p256"]


def verify(verb: str, key: PemKey, root: Path, ref: str) -> subprocess.CompletedProcess[str]:
    return run(
        [*CLI, verb, "--key", str(key.pub), "--trusted-root", str(root), *REG,
         "--output", "json", ref]
    )  # fmt: skip


def test_logged_signatures_and_attestations_verify_here_and_with_cosign(
    registry: LocalRegistry, rekor: LocalRekor, key: PemKey, tmp_path: Path
) -> None:
    ref = push_image(registry.repo("rekor")).ref
    root = rekor.trusted_root(tmp_path / "trusted_root.json")
    passed(sign(key, ref, rekor))
    passed(attest(key, ref, rekor))

    signatures = json.loads(passed(verify("verify", key, root, ref)))
    assert signatures["tlogChecked"] is True
    [logged] = signatures["verified"]  # the .sig tag has no entry: it does not count
    assert logged["source"] == "bundle"
    assert logged["tlog"]["log"] == rekor.url
    attestation = json.loads(passed(verify("verify-attestation", key, root, ref)))
    assert attestation["tlog"]["log"] == rekor.url
    assert {logged["tlog"]["logIndex"], attestation["tlog"]["logIndex"]} == {0, 1}

    for verb in ("verify", "verify-attestation"):
        proc = cosign_verify(verb, key.pub, root, ref)
        assert proc.returncode == 0, f"cosign {verb}: {proc.stderr[-1500:]}"
    # cosign v2's tag layout still verifies without the log, as before
    proc = run([*CLI, "verify", "--key", str(key.pub), *REG, ref])
    assert proc.returncode == 0
    assert "transparency log was NOT checked" in proc.stdout


def test_unlogged_bundles_are_refused_with_a_trusted_root(
    registry: LocalRegistry, rekor: LocalRekor, key: PemKey, tmp_path: Path
) -> None:
    ref = push_image(registry.repo("rekor-unlogged")).ref
    root = rekor.trusted_root(tmp_path / "trusted_root.json")
    unlogged = ["--tlog-upload=false", "--registry-layout", "bundle"]
    assert sign(key, ref, rekor, *unlogged).returncode == 0
    assert attest(key, ref, rekor, *unlogged).returncode == 0
    for verb in ("verify", "verify-attestation"):
        proc = verify(verb, key, root, ref)
        assert proc.returncode == 1, proc.stderr
        assert "no transparency log entry" in proc.stderr
        assert cosign_verify(verb, key.pub, root, ref).returncode != 0


def _fill_log(rekor: LocalRekor, count: int) -> list[dict[str, Any]]:
    """``count`` unrelated entries, so that the entries under test have non-empty proofs."""
    signer = LocalSigner(ec.generate_private_key(ec.SECP256R1()))
    der = serialization.load_pem_public_key(signer.public_key_pem()).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    client = LogClient(LogTarget(rekor.url))
    return [client.upload(sign_envelope(b'{"n":%d}' % n, signer), der) for n in range(count)]


def _flip_b64(value: str) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[len(raw) // 2] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def _tamper(entry: dict[str, Any], how: str, other: dict[str, Any]) -> None:
    proof = entry["inclusionProof"]
    if how == "other-entry":  # a real entry of the same log, for another signature
        entry.clear()
        entry.update(other)
    elif how == "proof-hash":
        proof["hashes"][0] = _flip_b64(proof["hashes"][0])
    elif how == "log-index":
        entry["logIndex"] = proof["logIndex"] = str(int(entry["logIndex"]) + 1)
    elif how == "body":
        body = json.loads(base64.b64decode(entry["canonicalizedBody"]))
        data = body["spec"]["hashedRekordV002"]["data"]
        data["digest"] = _flip_b64(data["digest"])
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        entry["canonicalizedBody"] = base64.b64encode(canonical).decode()
    elif how == "checkpoint-root":
        # a root hash of another tree, in the checkpoint and the proof alike: the log's
        # signature over the checkpoint no longer holds
        text, _, signatures = proof["checkpoint"]["envelope"].partition("\n\n")
        origin, size, root = text.split("\n")[:3]
        new_root = _flip_b64(root)
        proof["rootHash"] = new_root
        proof["checkpoint"]["envelope"] = f"{origin}\n{size}\n{new_root}\n\n{signatures}"
    elif how == "checkpoint-signature":
        text, _, line = proof["checkpoint"]["envelope"].partition("\n\n")
        dash, name, blob = line.rstrip("\n").split(" ")
        proof["checkpoint"]["envelope"] = f"{text}\n\n{dash} {name} {_flip_b64(blob)}\n"
    else:
        raise AssertionError(how)


TAMPERINGS = ["other-entry", "proof-hash", "log-index", "checkpoint-root", "checkpoint-signature"]


@pytest.mark.parametrize("how", [*TAMPERINGS, "body"])
def test_a_changed_entry_is_refused_here_and_by_cosign(
    how: str,
    registry: LocalRegistry,
    rekor: LocalRekor,
    key: PemKey,
    tmp_path: Path,
) -> None:
    """The bundle of a real logged signature, its entry changed in the spool, pushed with
    ``push --from`` for the same image in another repository (same digest).

    ``body``: cosign (sigstore-go) does not read a Rekor v2 entry's ``canonicalizedBody``;
    it rebuilds the entry from the bundle and checks the proof for that, so a changed body
    over a valid proof passes there. attest-step also requires the body to be that entry."""
    others = _fill_log(rekor, 3)
    image = build_image(label="rekor-tamper")
    first = push_image(registry.repo("rekor-good"), image)
    spool = tmp_path / "spool"
    bundle_only = ["--spool-dir", str(spool), "--registry-layout", "bundle"]
    assert sign(key, first.ref, rekor, *bundle_only).returncode == 0
    second = push_image(registry.repo("rekor-tampered"), image)
    assert first.digest == second.digest
    [sidecar] = spool.glob("*.tlog.json")
    entry = json.loads(sidecar.read_text())["entry"]
    _tamper(entry, how, others[1])
    # the changed entry in the bundle of the same signature, pushed for the second image
    # (push --from would refuse most of these changes: test_a_changed_entry_in_the_spool...)
    [item] = [i for i in read_spool(spool) if i.kind == "signature-bundle"]
    item = dataclasses.replace(
        item,
        record_path=tmp_path / "no-sidecar" / item.record_path.name,
        image=parse_image_ref(second.ref),
        extra={TLOG_ENTRIES_KEY: [entry]},
    )
    push_items([item], RegistryOptions(allow_insecure_registry=True, layout="bundle"))

    root = rekor.trusted_root(tmp_path / "trusted_root.json")
    assert verify("verify", key, root, first.ref).returncode == 0  # the untouched one
    assert cosign_verify("verify", key.pub, root, first.ref).returncode == 0
    proc = verify("verify", key, root, second.ref)
    assert proc.returncode == 1, proc.stdout
    assert "transparency log:" in proc.stderr
    cosign_result = cosign_verify("verify", key.pub, root, second.ref)
    assert (cosign_result.returncode == 0) == (how == "body"), cosign_result.stderr


def test_a_log_the_trusted_root_does_not_name_is_refused(
    registry: LocalRegistry, rekor: LocalRekor, key: PemKey, tmp_path: Path
) -> None:
    ref = push_image(registry.repo("rekor-other-log")).ref
    assert sign(key, ref, rekor).returncode == 0
    assert attest(key, ref, rekor).returncode == 0
    other = LocalRekor(rekor.binary, tmp_path / "other")  # never started: only its key
    root = other.trusted_root(tmp_path / "other_root.json")
    for verb in ("verify", "verify-attestation"):
        proc = verify(verb, key, root, ref)
        assert proc.returncode == 1
        assert "not in the trusted root" in proc.stderr
        assert cosign_verify(verb, key.pub, root, ref).returncode != 0


def test_with_the_log_down_the_output_waits_in_the_spool_for_push(
    registry: LocalRegistry, rekor: LocalRekor, key: PemKey, tmp_path: Path
) -> None:
    ref = push_image(registry.repo("rekor-outage")).ref
    spool = tmp_path / "spool"
    rekor.stop()
    down = ["--spool-dir", str(spool), "--tlog-timeout", "3"]
    for proc in (sign(key, ref, rekor, *down), attest(key, ref, rekor, *down)):
        assert proc.returncode == 75, proc.stderr
        assert proc.stderr.count("\n") == 1
        assert "gave up after 4 attempt(s)" in proc.stderr  # the retry bound
        assert f"attest-step push --from {spool}" in proc.stderr
    pending = [json.loads(p.read_text()) for p in spool.glob("*.tlog.json")]
    assert len(pending) == 2
    assert all(doc["rekorUrl"] == rekor.url and "entry" not in doc for doc in pending)

    proc = run([*CLI, "push", "--from", str(spool), *REG, "--tlog-timeout", "3"])
    assert proc.returncode == 75  # still down: still nothing lost
    rekor.start()
    ok([*CLI, "push", "--from", str(spool), *REG])
    assert all("entry" in json.loads(p.read_text()) for p in spool.glob("*.tlog.json"))

    root = rekor.trusted_root(tmp_path / "trusted_root.json")
    for verb in ("verify", "verify-attestation"):
        assert verify(verb, key, root, ref).returncode == 0
        proc = cosign_verify(verb, key.pub, root, ref)
        assert proc.returncode == 0, f"cosign {verb}: {proc.stderr[-1500:]}"
    # pushing again logs nothing twice (the log's own checkpoint says so)
    size = rekor.tree_size()
    assert size == 2  # one signature, one attestation
    ok([*CLI, "push", "--from", str(spool), *REG])
    assert rekor.tree_size() == size


def test_cosign_signs_and_attests_with_the_log_through_a_signing_config_and_we_verify(
    registry: LocalRegistry,
    rekor: LocalRekor,
    real_cosign_key_pair: KeyPair,
    tmp_path: Path,
) -> None:
    """The reverse: cosign v3 uploads to the same local log (a SigningConfig naming it) and
    attest-step's verifiers accept its bundles against the same trusted root."""
    keys = real_cosign_key_pair
    ref = push_image(registry.repo("rekor-cosign")).ref
    root = rekor.trusted_root(tmp_path / "trusted_root.json")
    config = rekor.signing_config(tmp_path / "signing_config.json")
    predicate = tmp_path / "predicate.json"
    predicate.write_text(json.dumps(PREDICATE))
    with_log = ["--signing-config", str(config), "--trusted-root", str(root)]
    insecure = ["--allow-insecure-registry", "-y"]
    env = {**keys.env(), "SIGSTORE_NO_CACHE": "1", "TUF_ROOT": str(tmp_path / "tuf")}
    for args in (
        ["sign", "--key", str(keys.key), *with_log, *insecure, ref],
        ["attest", "--key", str(keys.key), "--type", "slsaprovenance1", "--predicate",
         str(predicate), *with_log, *insecure, ref],
    ):  # fmt: skip
        proc = subprocess.run(
            [str(cosign_v3()), *args], env=env, capture_output=True, text=True, timeout=120,
            check=False, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert proc.returncode == 0, f"cosign {args[0]}: {proc.stderr[-1500:]}"
    assert rekor.tree_size() == 2
    for verb in ("verify", "verify-attestation"):
        proc = run(
            [*CLI, verb, "--key", str(keys.pub), "--trusted-root", str(root), *REG,
             "--output", "json", ref]
        )  # fmt: skip
        result = json.loads(passed(proc))
        entry = result["tlog"] if verb == "verify-attestation" else result["verified"][0]["tlog"]
        assert entry["log"] == rekor.url


@pytest.mark.parametrize("how", ["other-entry", "proof-hash", "body"])
def test_a_changed_entry_in_the_spool_is_not_pushed(
    how: str,
    registry: LocalRegistry,
    rekor: LocalRekor,
    key: PemKey,
    tmp_path: Path,
) -> None:
    """An entry kept in the spool must be one of its envelope, with a proof that leads to the
    root it names, before push --from puts it in a bundle (exit 2, nothing pushed)."""
    others = _fill_log(rekor, 3)
    ref = push_image(registry.repo("rekor-spool-tamper")).ref
    spool = tmp_path / "spool"
    rekor.stop()
    proc = sign(key, ref, rekor, "--spool-dir", str(spool), "--tlog-timeout", "2")
    assert proc.returncode == 75
    rekor.start()
    # log it for real elsewhere (a copy), then plant a changed entry in the original spool
    good = tmp_path / "good"
    shutil.copytree(spool, good)
    ok([*CLI, "push", "--from", str(good), *REG])
    [sidecar] = good.glob("*.tlog.json")
    doc = json.loads(sidecar.read_text())
    _tamper(doc["entry"], how, others[1])
    (spool / sidecar.name).write_text(json.dumps(doc))
    proc = run([*CLI, "push", "--from", str(spool), *REG])
    assert proc.returncode == 2, proc.stderr
    assert "its transparency log entry is not one of this envelope" in proc.stderr
    assert proc.stderr.count("\n") == 1


@pytest.mark.parametrize("algorithm", ["ecdsa-p384", "rsa-2048"])
def test_other_key_types_are_logged_and_verify_here_and_with_cosign(
    algorithm: str,
    registry: LocalRegistry,
    rekor: LocalRekor,
    pem_keys: dict[str, PemKey],
    tmp_path: Path,
) -> None:
    """P-384 (logged over SHA-384) and RSA. cosign's verify checks a P-384 key's signatures
    over SHA-256 (docs/keys.md#algorithms), so it refuses P-384 DSSE signatures with or
    without the log; the log entry itself is what sigstore-go rebuilds (SHA-384 digest)."""
    key = pem_keys[algorithm]
    ref = push_image(registry.repo(f"rekor-{algorithm}")).ref
    root = rekor.trusted_root(tmp_path / "trusted_root.json")
    passed(sign(key, ref, rekor))
    passed(attest(key, ref, rekor))
    for verb in ("verify", "verify-attestation"):
        passed(verify(verb, key, root, ref))
        proc = cosign_verify(verb, key.pub, root, ref)
        if algorithm == "ecdsa-p384":
            assert "could not verify envelope" in proc.stderr
        else:
            assert proc.returncode == 0, f"cosign {verb}: {proc.stderr[-1500:]}"


def test_an_oci_layout_directory_target_carries_the_entry_too(
    rekor: LocalRekor, key: PemKey, tmp_path: Path
) -> None:
    image = build_image(label="rekor-layout")
    layout = write_oci_layout(tmp_path / "layout", image)
    ref = f"example.com/app@{image.digest}"
    root = rekor.trusted_root(tmp_path / "trusted_root.json")
    target = ["--oci-layout", str(layout)]
    passed(run([*CLI, "sign", "--key", str(key.key), "--rekor-url", rekor.url, *target, ref]))
    for verb in ("verify", "verify-attestation"):
        args = [*CLI, verb, "--key", str(key.pub), *target, "--output", "json", ref]
        if verb == "verify-attestation":
            passed(
                run([*CLI, "attest", "--key", str(key.key), "--image", ref,
                     "--rekor-url", rekor.url, *target])
            )  # fmt: skip
        result = json.loads(passed(run([*args, "--trusted-root", str(root)])))
        assert result["tlogChecked"] is True
        # without --trusted-root: verified as before, and said to be unchecked
        assert json.loads(passed(run(args)))["tlogChecked"] is False
