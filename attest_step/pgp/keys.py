"""OpenPGP keys for simple signing: a secret key to sign with, public keys to verify with.

``--pgp-key`` (sign) is a secret key file, armored or binary (``gpg --export-secret-keys``),
or a mounted Kubernetes Secret directory holding ``pgp.key`` and optionally
``pgp.passphrase`` (``pgp.pub`` there is what ``verify --pgp-key DIR`` reads). The
passphrase of an encrypted key comes from, in order, the Secret's ``pgp.passphrase``,
``ATTEST_STEP_PGP_PASSPHRASE`` or the file named by ``ATTEST_STEP_PGP_PASSPHRASE_FILE``.
Passphrases never appear in messages; only their source. Sequoia's own error texts are not
shown either: they may carry a Rust backtrace.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from attest_step.errors import UsageError
from attest_step.fileio import read_small_file
from attest_step.keys.password import from_secret_or_env
from attest_step.keys.secret_dir import DATA_LINK

if TYPE_CHECKING:
    import pysequoia

PGP_KEY = "pgp.key"
PGP_PASSPHRASE = "pgp.passphrase"  # noqa: S105 (a file name)
PGP_PUB = "pgp.pub"
PASSPHRASE_ENV = "ATTEST_STEP_PGP_PASSPHRASE"  # noqa: S105 (a variable name)
PASSPHRASE_FILE_ENV = "ATTEST_STEP_PGP_PASSPHRASE_FILE"  # noqa: S105 (a variable name)
MAX_KEY_BYTES = 1 << 20


class PgpSigner(NamedTuple):
    signer: pysequoia.PySigner
    cert: pysequoia.Cert
    """The public certificate, to check what was signed."""

    @property
    def fingerprint(self) -> str:
        """The primary key's fingerprint, upper-case hex (as gpg and policy.json's keys show)."""
        return self.cert.fingerprint.upper()

    def __repr__(self) -> str:  # never the key
        return f"PgpSigner(fingerprint={self.fingerprint!r})"


def _secret_files(key_ref: str) -> tuple[Path, Path | None]:
    """The key file and (for a Secret directory) the passphrase file, if any."""
    path = Path(key_ref)
    if not path.is_dir():
        return path, None
    data = path / DATA_LINK
    base = data.resolve() if data.is_dir() else path
    key = base / PGP_KEY
    if not key.exists():
        raise UsageError(
            f"--pgp-key {key_ref}: the directory has no {PGP_KEY}; mount a Secret with "
            f"{PGP_KEY} (gpg --export-secret-keys) and optionally {PGP_PASSPHRASE}"
        )
    passphrase = base / PGP_PASSPHRASE
    return key, passphrase if passphrase.exists() else None


def _read(path: Path, flag: str, what: str) -> bytes:
    try:
        return read_small_file(path, f"{flag} {what}", limit=MAX_KEY_BYTES)
    except OSError as err:
        raise UsageError(
            f"{flag} {path}: cannot read the {what} ({err.strerror or err}); "
            "check the path and its permissions"
        ) from err


def load_pgp_signer(key_ref: str, *, environ: Mapping[str, str] | None = None) -> PgpSigner:
    """Unlock the signing key of ``--pgp-key`` or raise a one-line UsageError."""
    import pysequoia  # noqa: PLC0415 - a 10 MB extension, loaded only by the PGP verbs

    env = os.environ if environ is None else environ
    key_path, secret_passphrase = _secret_files(key_ref)
    data = _read(key_path, "--pgp-key", "secret key")
    try:
        tsk = pysequoia.Tsk.from_bytes(data)
    except (RuntimeError, ValueError):
        raise UsageError(
            f"--pgp-key {key_path}: not an OpenPGP key; export one with "
            "gpg --export-secret-keys KEYID"
        ) from None
    cert = tsk.extract_certificate()
    if bytes(tsk) == bytes(cert):  # nothing secret in it
        raise UsageError(
            f"--pgp-key {key_path}: a public key, not a secret key; export the secret key "
            "with gpg --export-secret-keys KEYID"
        )
    fingerprint = cert.fingerprint.upper()
    try:
        return PgpSigner(tsk.signer(), cert)
    except RuntimeError as err:
        encrypted = "encrypted" in str(err)
    if not encrypted:
        raise UsageError(
            f"--pgp-key {key_path}: key {fingerprint} has no usable signing key (expired, "
            "revoked or encryption-only); use a key that can sign"
        )
    passphrase = from_secret_or_env(secret_passphrase, env, PASSPHRASE_ENV, PASSPHRASE_FILE_ENV)
    if passphrase is None:
        raise UsageError(
            f"--pgp-key {key_path}: key {fingerprint} is encrypted and no passphrase was "
            f"given: set {PASSPHRASE_ENV} or {PASSPHRASE_FILE_ENV}, or mount the Secret "
            f"with {PGP_PASSPHRASE}"
        )
    for candidate in passphrase.candidates():
        try:
            text = candidate.decode("utf-8")
        except UnicodeDecodeError:
            continue
        try:
            return PgpSigner(tsk.signer(text), cert)
        except RuntimeError:
            continue
    raise UsageError(
        f"--pgp-key {key_path}: the passphrase from {passphrase.source} does not unlock key "
        f"{fingerprint}; give the right passphrase"
    )


def load_pgp_public_keys(key_ref: str) -> list[pysequoia.Cert]:
    """The certificates in a public key file (armored or binary, one key or a keyring), or
    in ``pgp.pub`` of a mounted Secret directory."""
    import pysequoia  # noqa: PLC0415

    path = Path(key_ref)
    if path.is_dir():
        data_link = path / DATA_LINK
        path = (data_link.resolve() if data_link.is_dir() else path) / PGP_PUB
        if not path.exists():
            raise UsageError(
                f"--pgp-key {key_ref}: the directory has no {PGP_PUB}; give the public key "
                "file (gpg --export KEYID) or a Secret with pgp.pub"
            )
    data = _read(path, "--pgp-key", "public key")
    try:
        certs = pysequoia.Cert.split_bytes(data)
    except (RuntimeError, ValueError):
        certs = []
    if not certs:
        raise UsageError(
            f"--pgp-key {path}: no OpenPGP public key in it; export one with "
            "gpg --export KEYID (armored or binary)"
        )
    return certs
