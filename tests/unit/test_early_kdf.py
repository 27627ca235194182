"""The scrypt started before the CLI loads (attest_step.keys.early_kdf) and its plumbing."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import ec

from attest_step.cli import attest_cmd
from attest_step.cli.early import EarlyWork
from attest_step.cli.main import cli, early_kdf
from attest_step.errors import AttestStepError
from attest_step.keys import cosign_format, pem
from attest_step.keys.early_kdf import KdfPrefetch, key_argument, scrypt_settings
from attest_step.keys.load import load_signer, load_verifier
from tests.fixtures.keys import KeyPair, PemKey, make_secret_mount, write_cosign_pair

DATA = b"payload"
IMAGE = "127.0.0.1:1/early/kdf@sha256:" + "b" * 64


def _env(password: str | None) -> dict[str, str]:
    env = {"COSIGN_PASSWORD": password} if password is not None else {}
    return env


def _started(key: Path | str, password: str | None) -> KdfPrefetch:
    kdf = KdfPrefetch.start(str(key), _env(password))
    assert kdf is not None
    return kdf


# ---------------------------------------------------------------- parsing


def test_settings_match_the_key_loader(cosign_key_pair: KeyPair) -> None:
    data = cosign_key_pair.key.read_bytes()
    parsed = cosign_format.parse(data)
    assert scrypt_settings(data) == (parsed.salt, parsed.n, parsed.r, parsed.p)


def test_cosign_label_and_crlf(tmp_path: Path) -> None:
    pair = write_cosign_pair(tmp_path, ec.generate_private_key(ec.SECP256R1()), "pw", n=32768)
    text = pair.key.read_bytes().replace(b"SIGSTORE", b"COSIGN").replace(b"\n", b"\r\n")
    parsed = cosign_format.parse(text)
    assert scrypt_settings(text) == (parsed.salt, 32768, 8, 1)


def _doc_key(doc: dict[str, Any]) -> bytes:
    return pem.encode(cosign_format.SIGSTORE_LABEL, json.dumps(doc).encode())


@pytest.mark.parametrize(
    "params",
    [
        {"N": 16384, "r": 8, "p": 1},
        {"N": 65536, "r": 16, "p": 1},
        {"N": 65536, "r": 8, "p": 2},
        {"N": True, "r": 8, "p": 1},
        {"N": "65536", "r": 8, "p": 1},
        {"N": 65536, "r": 8},
    ],
)
def test_refused_settings(params: dict[str, Any]) -> None:
    salt = base64.b64encode(b"s" * 32).decode()
    doc = {"kdf": {"name": "scrypt", "params": params, "salt": salt}}
    assert scrypt_settings(_doc_key(doc)) is None


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nnot base64!\n"
        b"-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n",
        b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nAAAA\n",
        pem.encode(cosign_format.SIGSTORE_LABEL, b"not json"),
        pem.encode(cosign_format.SIGSTORE_LABEL, b"[1, 2]"),
        _doc_key({"kdf": {"name": "argon2", "params": {"N": 65536, "r": 8, "p": 1}}}),
        _doc_key({"kdf": {"name": "scrypt", "params": {"N": 65536, "r": 8, "p": 1}}}),
        _doc_key({"kdf": {"name": "scrypt", "params": {"N": 65536, "r": 8, "p": 1}, "salt": 1}}),
        pem.encode("PRIVATE KEY", b"\x30\x00"),
    ],
)
def test_not_a_cosign_key(data: bytes) -> None:
    assert scrypt_settings(data) is None


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--key", "k", "IMG"], "k"),
        (["--key=k", "IMG"], "k"),
        (["--key", "a", "--key=b", "IMG"], "b"),
        (["-a", "x=y", "IMG", "--key", "k"], "k"),
        (["IMG"], None),
        (["--key"], None),
        (["--key", "k", "--help"], None),
        (["-h", "--key", "k"], None),
        (["--", "--key", "k"], None),
    ],
)
def test_key_argument(argv: list[str], expected: str | None) -> None:
    assert key_argument(argv) == expected


def test_only_sign_and_attest(cosign_key_pair: KeyPair, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COSIGN_PASSWORD", cosign_key_pair.password)
    key = str(cosign_key_pair.key)
    for verb in ("public-key", "verify", "generate-key-pair", "hash", "--key"):
        assert early_kdf([verb, "--key", key]) is None
    assert early_kdf([]) is None
    for verb in ("sign", "attest"):
        kdf = early_kdf([verb, "--key", key, IMAGE])
        assert kdf is not None
        kdf.wait()


# ---------------------------------------------------------------- what is ignored


def test_ignored_key_references(
    tmp_path: Path, cosign_key_pair: KeyPair, pem_keys: dict[str, PemKey]
) -> None:
    secret_dir = make_secret_mount(
        tmp_path / "secret",
        {"cosign.key": cosign_key_pair.key.read_bytes(), "cosign.password": b"x"},
    )
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    env = _env(cosign_key_pair.password)
    before = threading.active_count()
    for ref in (
        str(pem_keys["ecdsa-p256"].key),
        str(cosign_key_pair.pub),
        str(secret_dir),
        str(fifo),  # must not block
        str(tmp_path / "missing.key"),
        "",
        "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k",
        "hashivault://transit-key",
        "pkcs11:token=t;object=o?pin-value=1234",
        "k8s://ns/name",
    ):
        assert KdfPrefetch.start(ref, env) is None, ref
    assert threading.active_count() == before


def test_no_password_no_work(cosign_key_pair: KeyPair) -> None:
    assert KdfPrefetch.start(str(cosign_key_pair.key), {}) is None
    assert KdfPrefetch.start(str(cosign_key_pair.key), {"ATTEST_STEP_PASSWORD_FILE": "/x"}) is None


# ---------------------------------------------------------------- same result


def test_precomputed_key_is_used_and_equal(
    cosign_key_pair: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    encrypted = cosign_format.parse(cosign_key_pair.key.read_bytes())
    password = cosign_key_pair.password.encode()
    expected = cosign_format._derive(password, encrypted.salt, encrypted.n, 8, 1)
    kdf = _started(cosign_key_pair.key, cosign_key_pair.password)
    kdf.wait()

    def fail(*args: object) -> bytes:
        raise AssertionError("scrypt computed again")

    monkeypatch.setattr("attest_step.keys.early_kdf.scrypt_key", fail)
    assert kdf.derive(password, encrypted.salt, encrypted.n, 8, 1) == expected
    assert cosign_format.decrypt(encrypted, password, kdf=kdf) == cosign_format.decrypt(
        encrypted, password
    )


@pytest.mark.parametrize("change", ["password", "salt", "n"])
def test_mismatch_computes_normally(cosign_key_pair: KeyPair, change: str) -> None:
    encrypted = cosign_format.parse(cosign_key_pair.key.read_bytes())
    password, salt, n = cosign_key_pair.password.encode(), encrypted.salt, encrypted.n
    if change == "password":
        password += b"!"
    elif change == "salt":
        salt = bytes(32)
    else:
        n = 32768
    kdf = _started(cosign_key_pair.key, cosign_key_pair.password)
    assert kdf.derive(password, salt, n, 8, 1) == cosign_format._derive(password, salt, n, 8, 1)


def test_failed_early_scrypt_is_silent(
    cosign_key_pair: KeyPair, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    calls: list[int] = []
    real = cosign_format._derive

    def flaky(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
        calls.append(n)
        if len(calls) == 1:
            raise MemoryError("early")
        return real(password, salt, n, r, p)

    monkeypatch.setattr("attest_step.keys.early_kdf.scrypt_key", flaky)
    kdf = _started(cosign_key_pair.key, cosign_key_pair.password)
    kdf.wait()
    encrypted = cosign_format.parse(cosign_key_pair.key.read_bytes())
    password = cosign_key_pair.password.encode()
    assert kdf.derive(password, encrypted.salt, encrypted.n, 8, 1) == real(
        password, encrypted.salt, encrypted.n, 8, 1
    )
    assert len(calls) == 2
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""


def test_same_signer(cosign_key_pair: KeyPair, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COSIGN_PASSWORD", cosign_key_pair.password)
    kdf = _started(cosign_key_pair.key, cosign_key_pair.password)
    early = load_signer(str(cosign_key_pair.key), kdf=kdf)
    normal = load_signer(str(cosign_key_pair.key))
    assert early.public_key_pem() == normal.public_key_pem() == cosign_key_pair.pub.read_bytes()
    assert load_verifier(str(cosign_key_pair.pub)).verify(early.sign(DATA), DATA)


def test_wrong_password_same_error(
    cosign_key_pair: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COSIGN_PASSWORD", "wrong")
    with pytest.raises(AttestStepError) as normal:
        load_signer(str(cosign_key_pair.key))
    kdf = _started(cosign_key_pair.key, "wrong")
    with pytest.raises(AttestStepError) as early:
        load_signer(str(cosign_key_pair.key), kdf=kdf)
    assert str(early.value) == str(normal.value)


def test_repr_has_no_secret(cosign_key_pair: KeyPair) -> None:
    kdf = _started(cosign_key_pair.key, cosign_key_pair.password)
    kdf.wait()
    text = repr(kdf) + str(kdf)
    assert cosign_key_pair.password not in text
    assert "salt" not in text.lower()


# ---------------------------------------------------------------- attest: no thread left


def test_attest_hashes_single_threaded(
    tmp_path: Path, cosign_key_pair: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith(("TEKTON_", "ATTEST_")) or name in ("IMAGE_URL", "IMAGE_DIGEST"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("COSIGN_PASSWORD", cosign_key_pair.password)
    artifact = tmp_path / "hello.txt"
    artifact.write_bytes(b"hello\n")
    seen: list[int] = []
    real = attest_cmd._hashed_subjects

    def counting(*args: Any) -> Any:
        seen.append(threading.active_count())
        return real(*args)

    monkeypatch.setattr(attest_cmd, "_hashed_subjects", counting)
    before = threading.active_count()
    kdf = _started(cosign_key_pair.key, cosign_key_pair.password)
    args = ["attest", "--key", str(cosign_key_pair.key), "--subject-path", str(artifact)]
    args += ["--output-file", str(tmp_path / "att.json"), "--finished-on", "2024-05-01T12:00:00Z"]
    result = CliRunner().invoke(cli, args, obj=EarlyWork(kdf), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert seen == [before]


# ---------------------------------------------------------------- the real CLI


def _run(args: Sequence[str], env_extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("COSIGN_PASSWORD", "ATTEST_STEP_PASSWORD_FILE", "ATTEST_STEP_DEBUG")
    }
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-m", "attest_step", *args],
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
        timeout=60,
    )


def _assert_no_secret(done: subprocess.CompletedProcess[str], key: Path, password: str) -> None:
    text = done.stdout + done.stderr
    assert "Traceback" not in text
    assert "-----BEGIN" not in text
    assert password not in text
    body = "".join(key.read_text().splitlines()[1:-1])
    assert body[:40] not in text


@pytest.mark.parametrize("form", ["--key", "--key="])
def test_cli_wrong_password_one_line(tmp_path: Path, cosign_key_pair: KeyPair, form: str) -> None:
    key = cosign_key_pair.key
    key_args = ["--key", str(key)] if form == "--key" else [f"--key={key}"]
    artifact = tmp_path / "a.txt"
    artifact.write_bytes(b"a")
    out = tmp_path / "att.json"
    expected = (
        f"attest-step: error: cannot decrypt key {key} with the password from COSIGN_PASSWORD: "
        "wrong password or corrupted key\n"
    )
    for args in (
        ["sign", *key_args, IMAGE],
        ["attest", *key_args, "--subject-path", str(artifact), "--output-file", str(out)],
    ):
        done = _run(args, {"COSIGN_PASSWORD": "not-" + cosign_key_pair.password})
        assert done.returncode == 2, done.stderr  # a wrong password is bad input
        assert done.stderr == expected
        assert done.stdout == ""
        assert not out.exists()
        _assert_no_secret(done, key, "not-" + cosign_key_pair.password)


def test_cli_attest_with_early_kdf_signs(tmp_path: Path, cosign_key_pair: KeyPair) -> None:
    artifact = tmp_path / "a.txt"
    artifact.write_bytes(b"a")
    out = tmp_path / "att.json"
    args = ["attest", "--key", str(cosign_key_pair.key), "--subject-path", str(artifact)]
    done = _run([*args, "--output-file", str(out)], cosign_key_pair.env())
    assert done.returncode == 0, done.stderr
    _assert_no_secret(done, cosign_key_pair.key, cosign_key_pair.password)
    envelope = json.loads(out.read_bytes())
    verify = _run(
        ["verify-attestation", "--key", str(cosign_key_pair.pub), "--envelope", str(out)],
        cosign_key_pair.env(),
    )
    assert verify.returncode == 0, verify.stderr
    assert envelope["signatures"]
