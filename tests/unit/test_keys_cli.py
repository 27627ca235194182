"""The key verbs as a user runs them: output, file modes, and failures that leak nothing."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from attest_step.keys import cosign_format, pem
from attest_step.keys.load import load_signer
from tests.fixtures.keys import KeyPair, PemKey, private_pem

SECRET = "Pa55-w0rd-never-printed"


def run(
    args: list[str], cwd: Path, env_extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("COSIGN_PASSWORD", "ATTEST_STEP_PASSWORD_FILE")
    }
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "attest_step", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def test_generate_key_pair_then_public_key(tmp_path: Path) -> None:
    done = run(
        ["generate-key-pair", "--output-key-prefix", "release"],
        tmp_path,
        {"COSIGN_PASSWORD": SECRET},
    )
    assert done.returncode == 0, done.stderr
    key, pub = tmp_path / "release.key", tmp_path / "release.pub"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(pub.stat().st_mode) == 0o644
    parsed = cosign_format.parse(key.read_bytes())
    assert (parsed.label, parsed.n, parsed.r, parsed.p) == (
        "ENCRYPTED SIGSTORE PRIVATE KEY",
        65536,
        8,
        1,
    )
    signer = load_signer(str(key), password_value=SECRET.encode())
    assert getattr(signer, "algorithm", None) == "ecdsa-p256"
    assert signer.public_key_pem() == pub.read_bytes()
    shown = run(["public-key", "--key", "release.key"], tmp_path, {"COSIGN_PASSWORD": SECRET})
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == pub.read_text()
    out = run(
        ["public-key", "--key", "release.key", "--outfile", "x.pub"],
        tmp_path,
        {"COSIGN_PASSWORD": SECRET},
    )
    assert out.returncode == 0 and (tmp_path / "x.pub").read_bytes() == pub.read_bytes()


def test_generate_refuses_to_overwrite_unless_forced(tmp_path: Path) -> None:
    (tmp_path / "cosign.pub").write_text("keep me")
    env = {"COSIGN_PASSWORD": ""}
    refused = run(["generate-key-pair"], tmp_path, env)
    assert refused.returncode == 2
    assert "cosign.pub already exists; pass --force" in refused.stderr
    assert (tmp_path / "cosign.pub").read_text() == "keep me"
    assert not (tmp_path / "cosign.key").exists()
    forced = run(["generate-key-pair", "--force"], tmp_path, env)
    assert forced.returncode == 0, forced.stderr
    assert (tmp_path / "cosign.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")


def test_generate_password_file(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text(SECRET + "\n")
    done = run(["generate-key-pair"], tmp_path, {"ATTEST_STEP_PASSWORD_FILE": str(tmp_path / "pw")})
    assert done.returncode == 0, done.stderr
    load_signer(str(tmp_path / "cosign.key"), password_value=SECRET.encode())


def _assert_clean(done: subprocess.CompletedProcess[str], secrets: list[str]) -> None:
    text = done.stdout + done.stderr
    assert done.returncode != 0
    assert "Traceback" not in text
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    for secret in secrets:
        assert secret not in text
    assert "-----BEGIN" not in text


@pytest.fixture
def bad_inputs(
    tmp_path: Path, cosign_key_pair: KeyPair, pem_keys: dict[str, PemKey]
) -> dict[str, tuple[list[str], dict[str, str], list[str]]]:
    key_text = cosign_key_pair.key.read_text()
    body = key_text.splitlines()[1]
    corrupt = tmp_path / "corrupt.key"
    corrupt.write_text(
        key_text.replace(body, body[:10] + ("A" if body[10] != "A" else "B") + body[11:])
    )
    sec1 = tmp_path / "sec1.key"
    sec1.write_bytes(
        cosign_format.encrypt(
            ec.generate_private_key(ec.SECP256R1()).private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            ),
            SECRET.encode(),
            n=32768,
        )
    )
    k1 = tmp_path / "k1.pem"
    k1_key = ec.generate_private_key(ec.SECP256K1())
    k1.write_bytes(private_pem(k1_key))
    scrypt = tmp_path / "scrypt.key"
    block = pem.blocks(cosign_key_pair.key.read_bytes())[0]
    doc = json.loads(block.der)
    doc["kdf"]["params"]["N"] = 1024
    scrypt.write_bytes(pem.encode(block.label, json.dumps(doc).encode()))
    plain_secrets = [body[:40], pem_keys["ecdsa-p256"].key.read_text().splitlines()[1][:40]]
    k1_b64 = base64.b64encode(
        k1_key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    ).decode()
    good = {"COSIGN_PASSWORD": cosign_key_pair.password}
    for path in (cosign_key_pair.key, corrupt, pem_keys["ecdsa-p256"].key, k1):
        for line in path.read_text().splitlines():
            if not line.startswith("-----"):
                plain_secrets += [line[i : i + 20] for i in range(0, len(line) - 20, 20)]
    plain_secrets.append(k1_b64[:40])
    return {
        "wrong password": (
            ["public-key", "--key", str(cosign_key_pair.key)],
            {"COSIGN_PASSWORD": SECRET},
            [SECRET],
        ),
        "missing password": (["public-key", "--key", str(cosign_key_pair.key)], {}, []),
        "corrupt key": (["public-key", "--key", str(corrupt)], good, [cosign_key_pair.password]),
        "sec1 plaintext": (
            ["public-key", "--key", str(sec1)],
            {"COSIGN_PASSWORD": SECRET},
            [SECRET],
        ),
        "secp256k1": (["public-key", "--key", str(k1)], {}, [k1_b64[:40]]),
        "scrypt params": (
            ["public-key", "--key", str(scrypt)],
            {"COSIGN_PASSWORD": SECRET},
            [SECRET],
        ),
        "unreadable": (["public-key", "--key", str(tmp_path / "missing.key")], {}, []),
        "password file missing": (
            ["public-key", "--key", str(cosign_key_pair.key)],
            {"ATTEST_STEP_PASSWORD_FILE": str(tmp_path / "nope")},
            [],
        ),
        "public key given": (["public-key", "--key", str(cosign_key_pair.pub)], {}, []),
        "generate without password": (
            ["generate-key-pair", "--output-key-prefix", str(tmp_path / "g")],
            {},
            [],
        ),
        "generate into missing dir": (
            ["generate-key-pair", "--output-key-prefix", str(tmp_path / "no" / "dir" / "g")],
            {"COSIGN_PASSWORD": SECRET},
            [SECRET],
        ),
        "bad KMS URI": (["public-key", "--key", "gcpkms://projects/p"], {}, []),
        "bad flag": (
            ["public-key", "--key", str(sec1), "--bogus"],
            {"COSIGN_PASSWORD": SECRET},
            [SECRET],
        ),
        "key chunks": ([], {}, plain_secrets),
    }


def test_every_failure_is_one_clean_line(
    tmp_path: Path, bad_inputs: dict[str, tuple[list[str], dict[str, str], list[str]]]
) -> None:
    key_chunks = bad_inputs.pop("key chunks")[2]
    assert len(key_chunks) > 20
    for name, (args, env, secrets) in bad_inputs.items():
        done = run(args, tmp_path, env)
        if name == "bad flag":  # click's own usage error: still no traceback or secret
            assert done.returncode == 2 and "Traceback" not in done.stderr
            assert all(s not in done.stderr + done.stdout for s in secrets)
            continue
        _assert_clean(done, [*secrets, *key_chunks])
        assert done.stderr.startswith("attest-step: error: "), (name, done.stderr)
