"""Property tests of the key inputs (issue 11, section 6): mounted Secret directories and
key files, through the loader the verbs use.

A Secret directory is generated entry by entry (each of cosign.key, cosign.password,
cosign.pub, tls.key, tls.crt absent, valid, garbage, empty, a FIFO, a directory or a
dangling link, flat or behind kubelet's ``..data`` link). The loader must then succeed
exactly when the files it reads are right, refuse everything else in one line without key
material, never block on a FIFO, and never let a broken ``cosign.password`` hand the
decision to the environment's password.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import json
import os
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attest_step.errors import UsageError
from attest_step.keys import cosign_format, pem
from attest_step.keys.load import load_signer, load_verifier, needs_password
from attest_step.keys.local import pkcs8_der, public_pem
from tests.fixtures.keys import private_pem

PASSWORD = "property-test-password-3b7e"
_KEY = ec.generate_private_key(ec.SECP256R1())


def _self_signed(key: ec.EllipticCurvePrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "attest-step property test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


# N=32768, the cheapest scrypt cosign accepts: each decryption costs ~50 ms.
VALID = {
    "cosign.key": cosign_format.encrypt(pkcs8_der(_KEY), PASSWORD.encode(), n=32768),
    "cosign.password": PASSWORD.encode(),
    "cosign.pub": public_pem(_KEY.public_key()),
    "tls.key": private_pem(_KEY),
    "tls.crt": _self_signed(_KEY),
}
NAMES = list(VALID)
KINDS = ["valid", "garbage", "empty", "fifo", "dir", "dangling"]
SPECIAL = {"fifo", "dir", "dangling"}  # not regular files: refused, never skipped
SECRETS = [
    PASSWORD,
    *(
        line
        for name in ("cosign.key", "tls.key")
        for line in VALID[name].decode().splitlines()
        if not line.startswith("-----")
    ),
]


@contextlib.contextmanager
def _deadline(seconds: int) -> Iterator[None]:
    """A FIFO opened for reading would block forever: fail the example instead."""

    def expired(signum: int, frame: object) -> None:
        raise TimeoutError("the loader blocked (a FIFO opened?)")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _make(directory: Path, name: str, kind: str) -> None:
    path = directory / name
    if kind == "valid":
        path.write_bytes(VALID[name])
    elif kind == "garbage":
        path.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "dir":
        path.mkdir()
    elif kind == "dangling":
        path.symlink_to(directory / f"missing-{name}")


def _mount(root: Path, entries: dict[str, str], kubelet: bool) -> Path:
    mount = root / "signing-secrets"
    mount.mkdir(parents=True)
    if not kubelet:
        for name, kind in entries.items():
            _make(mount, name, kind)
        return mount
    stamp = mount / "..2026_01_01_00_00_00.000000001"
    stamp.mkdir()
    (mount / "..data").symlink_to(stamp.name)
    for name, kind in entries.items():
        _make(stamp, name, kind)
        (mount / name).symlink_to(f"..data/{name}")
    return mount


def _looked_up(entries: dict[str, str]) -> list[str]:
    """The names the loader reads for this layout (cosign's when cosign.key exists)."""
    if "cosign.key" in entries:
        return ["cosign.key", "cosign.password", "cosign.pub"]
    return ["tls.key", "cosign.pub", "tls.crt"]


def signer_expected(entries: dict[str, str]) -> bool:
    if any(entries.get(name) in SPECIAL for name in _looked_up(entries)):
        return False
    if "cosign.key" in entries:
        return entries["cosign.key"] == "valid" and entries.get("cosign.password") in (
            None,  # then COSIGN_PASSWORD, which the test sets right
            "valid",
        )
    return entries.get("tls.key") == "valid" and entries.get("tls.crt") in (None, "valid")


def verifier_expected(entries: dict[str, str]) -> bool:
    if any(entries.get(name) in SPECIAL for name in _looked_up(entries)):
        return False
    if "cosign.key" in entries or "cosign.pub" in entries:
        return entries.get("cosign.pub") == "valid"
    return entries.get("tls.crt") == "valid"


def _assert_clean(err: UsageError) -> None:
    message = str(err)
    assert "\n" not in message, message
    assert not [s for s in SECRETS if s in message], message


secret_dirs = st.dictionaries(st.sampled_from(NAMES), st.sampled_from(KINDS), max_size=5)
_SETTINGS = settings(
    deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)


@pytest.fixture
def password_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COSIGN_PASSWORD", PASSWORD)
    monkeypatch.delenv("ATTEST_STEP_PASSWORD_FILE", raising=False)


@_SETTINGS
@given(entries=secret_dirs, kubelet=st.booleans())
def test_a_secret_dir_signs_exactly_when_its_files_are_right(
    password_in_env: None, entries: dict[str, str], kubelet: bool
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        mount = _mount(Path(tmp), entries, kubelet)
        with _deadline(20):
            assert needs_password(str(mount)) in (True, False)  # never raises, never blocks
            try:
                signer = load_signer(str(mount))
            except UsageError as err:
                _assert_clean(err)
                assert not signer_expected(entries), f"refused: {err}"
                return
        assert signer_expected(entries), "loaded from a Secret that should have been refused"
        assert signer.public_key_pem() == VALID["cosign.pub"]


@_SETTINGS
@given(entries=secret_dirs, kubelet=st.booleans())
def test_a_secret_dir_verifies_exactly_when_its_files_are_right(
    entries: dict[str, str], kubelet: bool
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        mount = _mount(Path(tmp), entries, kubelet)
        with _deadline(20):
            try:
                load_verifier(str(mount))
            except UsageError as err:
                _assert_clean(err)
                assert not verifier_expected(entries), f"refused: {err}"
                return
        assert verifier_expected(entries), "loaded from a Secret that should have been refused"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
_DOC = json.loads(pem.blocks(VALID["cosign.key"])[0].der)
_FIELDS = [
    ("kdf",), ("kdf", "name"), ("kdf", "params"), ("kdf", "params", "N"), ("kdf", "params", "r"),
    ("kdf", "salt"), ("cipher",), ("cipher", "name"), ("cipher", "nonce"), ("ciphertext",),
]  # fmt: skip


def _edited_key(field: tuple[str, ...], value: Any) -> bytes:
    doc = json.loads(json.dumps(_DOC))
    target = doc
    for step in field[:-1]:
        target = target[step]
    target[field[-1]] = value
    return pem.encode(cosign_format.SIGSTORE_LABEL, json.dumps(doc).encode())


@pytest.mark.parametrize("field", _FIELDS, ids="/".join)
@_SETTINGS
@given(value=json_values)
def test_an_edited_cosign_key_loads_or_fails_in_one_line(
    field: tuple[str, ...], value: Any
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        key = Path(tmp) / "cosign.key"
        key.write_bytes(_edited_key(field, value))
        try:
            signer = load_signer(str(key), password_value=PASSWORD.encode())
        except UsageError as err:
            _assert_clean(err)
            return
        assert signer.public_key_pem() == VALID["cosign.pub"]


LABELS = [
    *("PRIVATE KEY", "EC PRIVATE KEY", "PUBLIC KEY", "CERTIFICATE", "X"),
    *(cosign_format.SIGSTORE_LABEL, cosign_format.COSIGN_LABEL),
]
key_file_parts = st.one_of(
    st.sampled_from(NAMES).map(VALID.__getitem__),
    st.builds(pem.encode, st.sampled_from(LABELS), st.binary(min_size=1, max_size=120)),
    st.binary(max_size=80),
)


@_SETTINGS
@given(blocks=st.lists(key_file_parts, max_size=4))
def test_any_key_file_loads_or_fails_in_one_line(blocks: list[bytes]) -> None:
    """Mixtures of real and random PEM blocks and junk, as --key and as a public key."""
    with tempfile.TemporaryDirectory() as tmp:
        key = Path(tmp) / "key.pem"
        key.write_bytes(b"\n".join(blocks))
        for load in (
            lambda: load_signer(str(key), password_value=PASSWORD.encode()),
            lambda: load_verifier(str(key)),
        ):
            try:
                load()
            except UsageError as err:
                _assert_clean(err)


def test_the_generated_material_is_what_the_loader_accepts(password_in_env: None) -> None:
    """The properties above mean something only if VALID is valid."""
    with tempfile.TemporaryDirectory() as tmp:
        cosign = _mount(Path(tmp) / "a", dict.fromkeys(("cosign.key", "cosign.pub"), "valid"), True)
        tls = _mount(Path(tmp) / "b", dict.fromkeys(("tls.key", "tls.crt"), "valid"), False)
        for mount in (cosign, tls):
            assert load_signer(str(mount)).public_key_pem() == VALID["cosign.pub"]
            load_verifier(str(mount))
    assert base64.b64decode(_DOC["kdf"]["salt"])
