"""Transparency log for attestations written only to a file, against a real Rekor v2 log.

``attest --output-file ENV --rekor-url URL --bundle BUNDLE`` (no image) writes the envelope,
logs it and writes a Sigstore bundle carrying the entry, as ``cosign attest-blob --bundle``
does. ``verify-attestation --bundle BUNDLE --trusted-root ROOT`` and real cosign v3's
``verify-blob-attestation --bundle BUNDLE --trusted-root ROOT`` accept it, refuse a changed
bundle or envelope and a log the trusted root does not name. With the log down the envelope
is on disk and ``push --from`` logs it once the log is back, once.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.keys import KeyPair, PemKey
from tests.fixtures.rekor import LocalRekor
from tests.fixtures.tools import cosign_v3
from tests.integration.test_rekor import (
    CLI,
    PREDICATE,
    TAMPERINGS,
    _fill_log,
    _tamper,
    passed,
    run,
)

pytestmark = [pytest.mark.cosign]


@pytest.fixture
def key(pem_keys: dict[str, PemKey]) -> PemKey:
    return pem_keys["ecdsa-p256"]


def _artifact(tmp_path: Path, name: str = "app.tar") -> Path:
    path = tmp_path / "out" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"build output " + name.encode())
    return path


def attest_file(
    key: PemKey, artifact: Path, rekor: LocalRekor, tmp_path: Path, *extra: str
) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    envelope = tmp_path / "att" / f"{artifact.name}.intoto.json"
    bundle = tmp_path / "att" / f"{artifact.name}.sigstore.json"
    proc = run(
        [*CLI, "attest", "--key", str(key.key), "--subject-path", str(artifact),
         "--output-file", str(envelope), "--rekor-url", rekor.url, "--bundle", str(bundle),
         *extra]
    )  # fmt: skip
    return proc, envelope, bundle


def verify_file(
    key: PemKey, artifact: Path, root: Path, *files: str
) -> subprocess.CompletedProcess[str]:
    return run(
        [*CLI, "verify-attestation", "--key", str(key.pub), "--trusted-root", str(root),
         "--subject-path", str(artifact), "--output", "json", *files]
    )  # fmt: skip


def cosign_verify_blob(
    key: PemKey, artifact: Path, root: Path, bundle: Path
) -> subprocess.CompletedProcess[str]:
    return run(
        [str(cosign_v3()), "verify-blob-attestation", "--key", str(key.pub),
         "--trusted-root", str(root), "--bundle", str(bundle), "--type", "slsaprovenance1",
         str(artifact)]
    )  # fmt: skip


def test_a_file_attestation_is_logged_and_verifies_here_and_with_cosign(
    rekor: LocalRekor, key: PemKey, tmp_path: Path
) -> None:
    artifact = _artifact(tmp_path)
    root = rekor.trusted_root(tmp_path / "trusted_root.json")
    proc, envelope, bundle = attest_file(key, artifact, rekor, tmp_path, "--output", "json")
    summary = json.loads(passed(proc))
    [record] = summary["uploads"]
    assert record == {
        "kind": "file-attestation",
        "bundle": str(bundle.absolute()),
        "status": "logged",
        "log": rekor.url,
        "logIndex": 0,
    }
    doc = json.loads(bundle.read_bytes())
    assert doc["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert len(doc["verificationMaterial"]["tlogEntries"]) == 1
    written = json.loads(envelope.read_bytes())
    assert doc["dsseEnvelope"]["payload"] == written["payload"]
    assert rekor.tree_size() == 1

    with_envelope = ["--envelope", str(envelope), "--bundle", str(bundle)]
    for files in (["--bundle", str(bundle)], with_envelope):
        result = json.loads(passed(verify_file(key, artifact, root, *files)))
        assert result["tlogChecked"] is True
        assert result["tlog"] == {"log": rekor.url, "logIndex": 0, "treeSize": 1}
    proc = cosign_verify_blob(key, artifact, root, bundle)
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert "Verified OK" in proc.stderr

    # the envelope file alone carries no entry: refused with a trusted root, as before
    proc = verify_file(key, artifact, root, "--envelope", str(envelope))
    assert proc.returncode == 1
    assert "a DSSE envelope file carries none" in proc.stderr
    # --insecure-ignore-tlog: the log is not checked, the rest is
    proc = verify_file(key, artifact, root, "--bundle", str(bundle), "--insecure-ignore-tlog")
    assert json.loads(passed(proc))["tlogChecked"] is False
    # another artifact is not a subject: refused although the entry verifies
    other = _artifact(tmp_path, "other.tar")
    assert verify_file(key, other, root, "--bundle", str(bundle)).returncode == 1
    assert cosign_verify_blob(key, other, root, bundle).returncode != 0


def _flip(value: str) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[len(raw) // 2] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def _change(doc: dict[str, Any], how: str, other: dict[str, Any]) -> None:
    if how == "payload":  # another statement in the bundle, signature and entry unchanged
        statement = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
        statement["predicate"]["buildDefinition"]["externalParameters"] = {"evil": "1"}
        doc["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    elif how == "signature":
        sig = doc["dsseEnvelope"]["signatures"][0]
        sig["sig"] = _flip(sig["sig"])
    elif how == "no-entry":
        doc["verificationMaterial"]["tlogEntries"] = []
    else:
        _tamper(doc["verificationMaterial"]["tlogEntries"][0], how, other)


@pytest.mark.parametrize("how", [*TAMPERINGS, "body", "payload", "signature", "no-entry"])
def test_a_changed_bundle_is_refused_here_and_by_cosign(
    how: str, rekor: LocalRekor, key: PemKey, tmp_path: Path
) -> None:
    """As for registry bundles (test_rekor.py); ``body``: cosign does not read a Rekor v2
    entry's stored body (docs/transparency.md), attest-step refuses it."""
    others = _fill_log(rekor, 3)
    artifact = _artifact(tmp_path)
    root = rekor.trusted_root(tmp_path / "trusted_root.json")
    proc, _, bundle = attest_file(key, artifact, rekor, tmp_path)
    passed(proc)
    doc = json.loads(bundle.read_bytes())
    _change(doc, how, others[1])
    changed = tmp_path / "changed.sigstore.json"
    changed.write_text(json.dumps(doc))
    proc = verify_file(key, artifact, root, "--bundle", str(changed))
    assert proc.returncode == 1, proc.stdout
    assert proc.stderr.count("\n") == 1
    cosign_result = cosign_verify_blob(key, artifact, root, changed)
    assert (cosign_result.returncode == 0) == (how == "body"), cosign_result.stderr[-1500:]


def test_an_envelope_that_is_not_the_bundles_is_refused(
    rekor: LocalRekor, key: PemKey, tmp_path: Path
) -> None:
    artifact = _artifact(tmp_path)
    root = rekor.trusted_root(tmp_path / "trusted_root.json")
    first, _, bundle = attest_file(key, artifact, rekor, tmp_path / "one")
    second, envelope, _ = attest_file(key, artifact, rekor, tmp_path / "two")
    passed(first)
    passed(second)
    proc = verify_file(key, artifact, root, "--envelope", str(envelope), "--bundle", str(bundle))
    assert proc.returncode == 1
    assert "holds another envelope than --envelope" in proc.stderr


def test_a_log_the_trusted_root_does_not_name_is_refused(
    rekor: LocalRekor, key: PemKey, tmp_path: Path
) -> None:
    artifact = _artifact(tmp_path)
    proc, _, bundle = attest_file(key, artifact, rekor, tmp_path)
    passed(proc)
    other = LocalRekor(rekor.binary, tmp_path / "other")  # never started: only its key
    root = other.trusted_root(tmp_path / "other_root.json")
    proc = verify_file(key, artifact, root, "--bundle", str(bundle))
    assert proc.returncode == 1
    assert "not in the trusted root" in proc.stderr
    assert cosign_verify_blob(key, artifact, root, bundle).returncode != 0


def test_with_the_log_down_the_envelope_is_on_disk_and_push_logs_it_once(
    rekor: LocalRekor, key: PemKey, tmp_path: Path
) -> None:
    artifact = _artifact(tmp_path)
    spool = tmp_path / "spool"
    rekor.stop()
    proc, envelope, bundle = attest_file(
        key, artifact, rekor, tmp_path, "--spool-dir", str(spool), "--tlog-timeout", "3"
    )
    assert proc.returncode == 75, proc.stderr
    assert proc.stderr.count("\n") == 1
    assert f"on disk in {envelope}" in proc.stderr
    assert f"attest-step push --from {spool}" in proc.stderr
    assert envelope.is_file()
    assert not bundle.exists()

    rekor.start()
    passed(run([*CLI, "push", "--from", str(spool)]))
    root = rekor.trusted_root(tmp_path / "trusted_root.json")
    passed(verify_file(key, artifact, root, "--envelope", str(envelope), "--bundle", str(bundle)))
    proc = cosign_verify_blob(key, artifact, root, bundle)
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert rekor.tree_size() == 1
    # again: the entry kept in the spool is reused, nothing is logged twice
    bundle.unlink()
    out = passed(run([*CLI, "push", "--from", str(spool)]))
    assert "logged at log index 0: file-attestation -> bundle" in out
    assert rekor.tree_size() == 1
    passed(verify_file(key, artifact, root, "--bundle", str(bundle)))


def test_cosign_attest_blob_bundles_verify_here(
    rekor: LocalRekor, real_cosign_key_pair: KeyPair, tmp_path: Path
) -> None:
    """The reverse: cosign v3 ``attest-blob --bundle`` logs to the same local log (a
    SigningConfig naming it) and ``verify-attestation --bundle`` accepts its bundle."""
    keys = real_cosign_key_pair
    artifact = _artifact(tmp_path)
    root = rekor.trusted_root(tmp_path / "trusted_root.json")
    config = rekor.signing_config(tmp_path / "signing_config.json")
    predicate = tmp_path / "predicate.json"
    predicate.write_text(json.dumps(PREDICATE))
    bundle = tmp_path / "cosign.sigstore.json"
    proc = subprocess.run(
        [str(cosign_v3()), "attest-blob", "--key", str(keys.key), "--type", "slsaprovenance1",
         "--predicate", str(predicate), "--bundle", str(bundle), "--signing-config",
         str(config), "--trusted-root", str(root), "-y", str(artifact)],
        env={**keys.env(), "SIGSTORE_NO_CACHE": "1", "TUF_ROOT": str(tmp_path / "tuf")},
        capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert rekor.tree_size() == 1
    result = run(
        [*CLI, "verify-attestation", "--key", str(keys.pub), "--trusted-root", str(root),
         "--subject-path", str(artifact), "--output", "json", "--bundle", str(bundle)]
    )  # fmt: skip
    assert json.loads(passed(result))["tlog"]["log"] == rekor.url
