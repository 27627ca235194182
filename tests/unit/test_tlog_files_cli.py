"""``attest --output-file --bundle`` and ``verify-attestation --bundle`` without a log: the
flags refuse what cannot work with one line (exit 2) before signing, an unlogged bundle is
written and verifies without a trusted root, and a spool of file envelopes that was changed
is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from attest_step.cli.main import cli
from attest_step.errors import UsageError
from attest_step.tlog import filelog
from attest_step.tlog.options import TlogOptions
from tests.fixtures.keys import PemKey

IMAGE = f"127.0.0.1:9/app@sha256:{'a' * 64}"  # port 9: nothing listens
LOG = "http://127.0.0.1:9"


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def key(pem_keys: dict[str, PemKey]) -> PemKey:
    return pem_keys["ecdsa-p256"]


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    path = tmp_path / "app.tar"
    path.write_bytes(b"output")
    return path


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--output-file", "E", "--rekor-url", LOG], "give --bundle FILE"),
        (["--output-file", "E", "--bundle", "B", "--image", IMAGE], "drop --bundle"),
        (["--bundle", "B"], "--bundle needs --output-file"),
        (["--output-file", "E", "--bundle", "E"], "name the same file"),
    ],
)
def test_attest_refuses_bundle_flags_that_cannot_work(
    extra: list[str], message: str, key: PemKey, artifact: Path, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    paths = [str(tmp_path / arg) if arg in ("E", "B") else arg for arg in extra]
    code, _, stderr = _run(
        "attest", "--key", str(key.key), "--subject-path", str(artifact),
        "--spool-dir", str(spool), *paths,
    )  # fmt: skip
    assert code == 2, stderr
    assert message in stderr
    assert stderr.count("\n") == 1
    assert not spool.exists()
    assert not (tmp_path / "E").exists()


def test_without_a_log_the_bundle_has_no_entry_and_verifies_without_a_trusted_root(
    key: PemKey, artifact: Path, tmp_path: Path
) -> None:
    envelope, bundle = tmp_path / "att.json", tmp_path / "att.sigstore.json"
    code, stdout, stderr = _run(
        "attest", "--key", str(key.key), "--subject-path", str(artifact),
        "--output-file", str(envelope), "--bundle", str(bundle), "--output", "json",
    )  # fmt: skip
    assert code == 0, stderr
    assert json.loads(stdout)["uploads"][0]["status"] == "not logged"
    assert json.loads(bundle.read_bytes())["verificationMaterial"]["tlogEntries"] == []
    verify = ["verify-attestation", "--key", str(key.pub), "--subject-path", str(artifact)]
    for files in (
        ["--bundle", str(bundle)],
        ["--envelope", str(envelope), "--bundle", str(bundle)],
    ):
        code, stdout, stderr = _run(*verify, *files)
        assert code == 0, stderr
        assert "transparency log was NOT checked" in stdout
    code, _, stderr = _run(*verify, "--bundle", str(bundle), IMAGE)
    assert code == 2
    assert "give exactly one of IMAGE" in stderr
    bundle.write_text("{}")
    code, _, stderr = _run(*verify, "--bundle", str(bundle))
    assert code == 1
    assert "not a Sigstore bundle of an attestation (mediaType is not" in stderr
    assert stderr.count("\n") == 1


def _spooled(tmp_path: Path, key: PemKey) -> Path:
    envelope = json.dumps({"payload": "e30=", "payloadType": "t", "signatures": [{"sig": ""}]})
    return filelog.spool_file_envelope(
        tmp_path / "spool", envelope.encode(), key.pub.read_bytes(), LOG, tmp_path / "b.json"
    )


def test_a_spooled_file_envelope_waits_when_upload_is_off(key: PemKey, tmp_path: Path) -> None:
    sidecar = _spooled(tmp_path, key)
    record = filelog.log_file_envelope(sidecar, TlogOptions(upload=False))
    assert record["status"] == "pending"
    assert filelog.pending(sidecar.parent) == [sidecar]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("envelope", "does not match its name"),
        ("link", "a symbolic link"),
        ("missing", "is missing"),
        ("relative-bundle", "bundle is not an absolute path"),
    ],
)
def test_a_changed_spool_of_file_envelopes_is_refused(
    change: str, message: str, key: PemKey, tmp_path: Path
) -> None:
    sidecar = _spooled(tmp_path, key)
    envelope = sidecar.with_name(sidecar.name.replace(".tlog.json", ".dsse.json"))
    if change == "envelope":
        envelope.write_text('{"payload": "", "payloadType": "t", "signatures": []}')
    elif change == "link":
        target = tmp_path / "elsewhere.json"
        target.write_bytes(envelope.read_bytes())
        envelope.unlink()
        envelope.symlink_to(target)
    elif change == "missing":
        envelope.unlink()
    else:
        doc = json.loads(sidecar.read_text())
        sidecar.write_text(json.dumps({**doc, "bundle": "b.json"}))
    with pytest.raises(UsageError, match=message):
        filelog.log_file_envelope(sidecar, TlogOptions(upload=False))
