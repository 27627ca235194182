"""Key files and Secret directories (attest_step/keys/): PEM, DER, cosign's encrypted format.

Contract: pem.blocks returns blocks or raises PemError, and encode/blocks round-trip;
der.parse_pkcs8 returns a key info or raises DerError; cosign_format.parse returns a key or
raises EncryptedKeyFormatError/PemError; load_signer/load_verifier on any file or Secret
directory return a key or raise AttestStepError; the CLI exits 0, 1 or 2 with one line.
"""

from __future__ import annotations

import base64
import contextlib
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from attest_step.errors import AttestStepError
from attest_step.keys import cosign_format, der, pem
from attest_step.keys.load import load_signer, load_verifier
from attest_step.keys.local import pkcs8_der, public_pem
from tests.fixtures.keys import make_secret_mount
from tests.fuzz.support import (
    Scratch,
    assert_cli_contract,
    edits,
    fuzz,
    json_values,
    mutate,
    run_cli,
)

KEY = ec.generate_private_key(ec.SECP256R1())
PKCS8 = pkcs8_der(KEY)
PUB = public_pem(KEY.public_key())
# one real encrypted key (N=32768, scrypt once at import); mutations are parsed, never decrypted
ENCRYPTED = cosign_format.encrypt(PKCS8, b"pw", n=32768)
LABELS = [
    "PRIVATE KEY",
    "PUBLIC KEY",
    "CERTIFICATE",
    "ENCRYPTED SIGSTORE PRIVATE KEY",
    "EC PRIVATE KEY",
]

pem_text = st.builds(
    lambda label, body, extra: f"{extra}-----BEGIN {label}-----\n{body}\n-----END {label}-----\n",
    st.sampled_from(LABELS) | st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ -", max_size=12),
    st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\n: ",
        max_size=120,
    ),
    st.text(max_size=10),
).map(str.encode)


def _key_doc(overrides: dict[str, Any]) -> bytes:
    doc = json.loads(pem.blocks(ENCRYPTED)[0].der)
    for path, value in overrides.items():
        target = doc
        *parents, last = path.split(".")
        for part in parents:
            target = target.setdefault(part, {}) if isinstance(target, dict) else {}
        if isinstance(target, dict):
            target[last] = value
    return pem.encode("ENCRYPTED SIGSTORE PRIVATE KEY", json.dumps(doc).encode())


KEY_FIELDS = [
    "kdf.name",
    "kdf.params.N",
    "kdf.params.r",
    "kdf.params.p",
    "kdf.salt",
    "cipher.name",
    "cipher.nonce",
    "ciphertext",
    "kdf",
    "cipher",
    "kdf.params",
]
key_docs = st.dictionaries(
    st.sampled_from(KEY_FIELDS), st.text(max_size=30) | json_values, min_size=1, max_size=2
).map(_key_doc)


@fuzz
@given(data=st.binary(max_size=300) | pem_text)
def test_pem_blocks_parse_or_raise_pem_error(data: bytes) -> None:
    try:
        found = pem.blocks(data)
    except pem.PemError:
        return
    for block in found:
        assert block.der
        assert pem.blocks(block.text) == [block]


@fuzz
@given(label=st.sampled_from(LABELS), der_bytes=st.binary(min_size=1, max_size=300))
def test_pem_encode_round_trips(label: str, der_bytes: bytes) -> None:
    (block,) = pem.blocks(pem.encode(label, der_bytes))
    assert (block.label, block.der) == (label, der_bytes)


@fuzz
@given(data=st.binary(max_size=200) | st.builds(mutate, st.just(PKCS8), edits))
def test_pkcs8_der_parses_or_raises_der_error(data: bytes) -> None:
    try:
        info = der.parse_pkcs8(data)
    except der.DerError:
        return
    assert info.algorithm_oid


@fuzz
@given(data=key_docs | key_docs | st.builds(mutate, st.just(ENCRYPTED), edits) | pem_text)
def test_encrypted_key_files_parse_or_raise_format_error(data: bytes) -> None:
    try:
        parsed = cosign_format.parse(data)
    except (cosign_format.EncryptedKeyFormatError, pem.PemError):
        return
    assert (parsed.n, parsed.r, parsed.p) in cosign_format.ACCEPTED_SCRYPT_PARAMS
    assert len(parsed.nonce) == 24


def _file(tmp: Scratch, data: bytes) -> Path:
    path = tmp("key") / "key.pem"
    path.write_bytes(data)
    return path


plain_key_files = (
    st.binary(max_size=200)
    | pem_text
    | st.builds(lambda e: pem.encode("PRIVATE KEY", mutate(PKCS8, e)), edits)
    | st.builds(lambda e: mutate(PUB, e), edits)
)


@fuzz
@given(data=plain_key_files)
def test_any_key_file_loads_or_raises_attest_step_error(data: bytes, scratch: Scratch) -> None:
    path = _file(scratch, data)
    for load in (
        lambda: load_signer(str(path), password_value=b"pw"),
        lambda: load_verifier(str(path)),
    ):
        with contextlib.suppress(AttestStepError):
            load()


@fuzz
@given(
    files=st.dictionaries(
        st.sampled_from(["cosign.key", "cosign.password", "cosign.pub", "tls.key", "tls.crt"]),
        plain_key_files | st.just(ENCRYPTED) | st.just(b"pw"),
        max_size=4,
    ),
    kubelet=st.booleans(),
)
def test_any_secret_directory_loads_or_raises(
    files: dict[str, bytes], kubelet: bool, scratch: Scratch
) -> None:
    base = scratch("secret")
    if kubelet:
        directory = make_secret_mount(base / "mount", files)
    else:
        directory = base
        for name, content in files.items():
            (base / name).write_bytes(content)
    for load in (lambda: load_signer(str(directory)), lambda: load_verifier(str(directory))):
        with contextlib.suppress(AttestStepError):
            load()


@fuzz
@given(data=plain_key_files | key_docs)
def test_cli_with_any_key_file(data: bytes, scratch: Scratch) -> None:
    work = scratch("cli")
    (work / "key").write_bytes(data)
    (work / "a.txt").write_text("a\n")
    env = {"COSIGN_PASSWORD": "pw"}
    result = run_cli(["public-key", "--key", str(work / "key")], env)
    assert_cli_contract(result)
    result = run_cli(
        [
            "attest",
            "--key",
            str(work / "key"),
            "--subject-path",
            str(work / "a.txt"),
            "--no-upload",
            "--output-file",
            str(work / "out.json"),
        ],
        env,
    )
    assert_cli_contract(result)


def test_the_encrypted_key_used_for_mutations_is_real() -> None:
    assert cosign_format.decrypt(cosign_format.parse(ENCRYPTED), b"pw") == PKCS8
    assert base64.b64decode(base64.b64encode(PKCS8)) == PKCS8
