"""Turn a ``--key`` argument into a Signer or Verifier.

A key reference is one of:

- a KMS URI (``gcpkms://``, ``awskms://``, ``azurekms://``, ``hashivault://``, ``pkcs11:``),
  handled by :mod:`attest_step.keys.kms` through securesystemslib's signers;
- a directory holding a mounted Kubernetes Secret (see :mod:`attest_step.keys.secret_dir`);
- a file: a cosign encrypted key (``ENCRYPTED SIGSTORE/COSIGN PRIVATE KEY``), or an
  unencrypted PKCS#8 ``PRIVATE KEY`` PEM, optionally followed by ``CERTIFICATE`` blocks
  (leaf first) that become the certificate chain.

Every failure is a UsageError (exit 2: the key input is wrong) whose one-line message names
the input and never contains key bytes or the password; a KMS that fails to answer is
reported by :mod:`attest_step.keys.kms` with exit 1.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from attest_step.errors import UsageError
from attest_step.fileio import read_small_file
from attest_step.keys import cosign_format, der, password, pem, secret_dir
from attest_step.keys.signer import Signer, Verifier

if TYPE_CHECKING:
    from cryptography import x509

    from attest_step.keys.local import LocalSigner, PrivateKey, PublicKey

# Start-up: cryptography's key classes (attest_step.keys.local, ~20 ms of imports) are
# imported where a key is built, not here, so that ``attest-step sign`` reaches the scrypt
# of a cosign key first and imports them while scrypt runs (see attest_step.cli.main).

KMS_PREFIXES = ("gcpkms://", "awskms://", "azurekms://", "hashivault://", "pkcs11:")
PKCS8_LABEL = "PRIVATE KEY"
PUBLIC_LABELS = ("PUBLIC KEY", "RSA PUBLIC KEY")
CERT_LABEL = "CERTIFICATE"
_NON_PKCS8 = {
    "EC PRIVATE KEY": "a SEC1 EC key",
    "RSA PRIVATE KEY": "a PKCS#1 RSA key",
    "ENCRYPTED PRIVATE KEY": "a password-protected PKCS#8 key",
    "OPENSSH PRIVATE KEY": "an OpenSSH key",
}
_CONVERT = (
    "convert it to unencrypted PKCS#8 (openssl pkcs8 -topk8 -nocrypt) or import it with "
    "cosign import-key-pair"
)


def is_kms_uri(key_ref: str) -> bool:
    return key_ref.startswith(KMS_PREFIXES)


def _read(path: Path, what: str) -> bytes:
    try:
        return read_small_file(path, what)
    except OSError as err:
        raise UsageError(
            f"cannot read {what} {path}: {err.strerror or err}; check the path and permissions"
        ) from err


def _blocks(data: bytes, path: Path, what: str) -> list[pem.Block]:
    try:
        found = pem.blocks(data)
    except pem.PemError as err:
        raise UsageError(f"{what} {path} is not valid PEM: {err}") from err
    if not found:
        raise UsageError(f"{what} {path} holds no PEM block; pass a PEM file")
    return found


def _reject_k8s(key_ref: str) -> None:
    if key_ref.startswith("k8s://"):
        raise UsageError(
            f"--key {key_ref}: attest-step does not call the Kubernetes API; mount the Secret "
            "into the step and pass its directory (e.g. --key /etc/signing-secrets)"
        )


def _existing(key_ref: str, what: str) -> Path:
    if not key_ref:
        raise UsageError(f"{what} is empty; pass a key file, Secret directory or KMS URI")
    _reject_k8s(key_ref)
    path = Path(key_ref)
    if not path.exists():
        raise UsageError(f"{what} {key_ref} does not exist; check the path or mount")
    return path


# ---------------------------------------------------------------- certificates


def load_certificates(data: bytes, source: str) -> list[x509.Certificate]:
    """Every CERTIFICATE block in ``data``; UsageError on a malformed one."""
    certs: list[x509.Certificate] = []
    try:
        found = pem.blocks(data)
    except pem.PemError as err:
        raise UsageError(f"certificate file {source} is not valid PEM: {err}") from err
    for block in found:
        if block.label != CERT_LABEL:
            continue
        from attest_step.keys.local import parse_der_certificate  # noqa: PLC0415 - start-up

        try:
            certs.append(parse_der_certificate(block.der))
        except ValueError as err:
            raise UsageError(
                f"certificate file {source} holds a malformed certificate; re-export it as PEM"
            ) from err
    return certs


def _chain_pems(certs: list[x509.Certificate]) -> list[bytes]:
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415 - start-up

    return [c.public_bytes(serialization.Encoding.PEM) for c in certs]


def _spki_of(cert: x509.Certificate) -> bytes:
    """The certificate's SubjectPublicKeyInfo DER; b"" when its key cannot be read."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415 - start-up

    from attest_step.keys.local import check_public, public_key_of  # noqa: PLC0415

    try:
        key = check_public(public_key_of(cert))
    except ValueError:
        return b""
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    return key.public_bytes(serialization.Encoding.DER, spki)


def _check_leaf(key: PrivateKey, certs: list[x509.Certificate], source: str) -> None:
    if not certs:
        return
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415 - start-up

    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    mine = key.public_key().public_bytes(serialization.Encoding.DER, spki)
    leaf = _spki_of(certs[0])
    if mine != leaf:
        raise UsageError(
            f"the first certificate in {source} is not for this signing key; put the leaf "
            "certificate of the key first"
        )


# ---------------------------------------------------------------- private keys


def _decrypt_cosign(
    data: bytes,
    path: Path,
    pw: password.Password,
    kdf: cosign_format.KeyDerivation | None = None,
) -> PrivateKey:
    from attest_step.keys.local import (  # noqa: PLC0415 - start-up
        SUPPORTED,
        UnsupportedKeyError,
        private_key_from_pkcs8,
    )

    try:
        encrypted = cosign_format.parse(data)
    except (cosign_format.EncryptedKeyFormatError, pem.PemError) as err:
        raise UsageError(
            f"key {path} is not a valid cosign encrypted key: {err}; regenerate or re-import it"
        ) from err
    plaintext: bytes | None = None
    for candidate in pw.candidates():
        try:
            plaintext = cosign_format.decrypt(encrypted, candidate, kdf=kdf)
            break
        except cosign_format.WrongPasswordError:
            continue
    if plaintext is None:
        raise UsageError(
            f"cannot decrypt key {path} with the password from {pw.source}: wrong password "
            "or corrupted key"
        )
    try:
        return private_key_from_pkcs8(plaintext)
    except der.DerError as err:
        raise UsageError(
            f"key {path} decrypts to something that is not PKCS#8 (SEC1 keys are refused, as "
            "cosign does); re-import it with cosign import-key-pair"
        ) from err
    except UnsupportedKeyError as err:
        raise UsageError(f"key {path}: {err}; use {SUPPORTED}") from err


def _private_from_blocks(
    blocks: list[pem.Block],
    data: bytes,
    path: Path,
    pw: password.Password | None,
    kdf: cosign_format.KeyDerivation | None = None,
) -> tuple[PrivateKey, bool]:
    """(key, was_encrypted) from the key file's blocks."""
    labels = [b.label for b in blocks]
    if any(label in cosign_format.ENCRYPTED_LABELS for label in labels):
        if pw is None:  # resolved lazily so plain keys never need a password
            raise AssertionError("password must be resolved for encrypted keys")
        return _decrypt_cosign(data, path, pw, kdf), True
    from attest_step.keys.local import (  # noqa: PLC0415 - start-up
        SUPPORTED,
        UnsupportedKeyError,
        private_key_from_pkcs8,
    )

    plain = [b for b in blocks if b.label == PKCS8_LABEL]
    if len(plain) > 1:
        raise UsageError(f"key file {path} holds more than one private key; keep one")
    if plain:
        try:
            return private_key_from_pkcs8(plain[0].der), False
        except der.DerError as err:
            raise UsageError(f"key file {path} is not a valid PKCS#8 key: {err}") from err
        except UnsupportedKeyError as err:
            raise UsageError(f"key file {path}: {err}; use {SUPPORTED}") from err
    for label, kind in _NON_PKCS8.items():
        if label in labels:
            raise UsageError(f"key file {path} is {kind}; {_CONVERT}")
    if any(label in PUBLIC_LABELS or label == CERT_LABEL for label in labels):
        raise UsageError(
            f"key file {path} holds only a public key or certificate; signing needs the private key"
        )
    raise UsageError(
        f"key file {path} holds no private key (found {', '.join(sorted(set(labels)))})"
    )


def _signer_from_file(
    path: Path,
    *,
    explicit_password: bytes | None,
    password_file: Path | None,
    chain_path: Path | None,
    what: str,
    kdf: cosign_format.KeyDerivation | None = None,
) -> LocalSigner:
    data = _read(path, what)
    blocks = _blocks(data, path, what)
    pw: password.Password | None = None
    if any(b.label in cosign_format.ENCRYPTED_LABELS for b in blocks):
        pw = password.resolve(str(path), explicit=explicit_password, secret_file=password_file)
    key, _ = _private_from_blocks(blocks, data, path, pw, kdf)
    certs = load_certificates(data, str(path))
    source = str(path)
    if chain_path is not None:
        if certs:
            raise UsageError(
                f"key file {path} already holds certificates; drop --certificate-chain or "
                "remove them from the key file"
            )
        certs = load_certificates(_read(chain_path, "certificate chain"), str(chain_path))
        if not certs:
            raise UsageError(
                f"certificate chain {chain_path} holds no CERTIFICATE block; pass a PEM chain"
            )
        source = str(chain_path)
    _check_leaf(key, certs, source)
    if certs:
        from attest_step.keys.x509verify import check_signing_chain  # noqa: PLC0415

        check_signing_chain(certs, source)
    from attest_step.keys.local import LocalSigner  # noqa: PLC0415 - start-up

    return LocalSigner(key, _chain_pems(certs))


def load_signer(
    key_ref: str,
    *,
    password_value: bytes | None = None,
    certificate_chain: str | os.PathLike[str] | None = None,
    kdf: cosign_format.KeyDerivation | None = None,
) -> Signer:
    """Load a signer from ``key_ref``.

    ``key_ref`` is one of: a cosign encrypted key file (password from ``password_value``,
    ``COSIGN_PASSWORD`` or ``ATTEST_STEP_PASSWORD_FILE``), a directory laid out like the
    mounted Secret of ``cosign generate-key-pair k8s://NS/NAME`` (or a ``kubernetes.io/tls``
    Secret), a plain PKCS#8 PEM key (optionally followed by its certificate chain, or with
    ``certificate_chain`` naming a PEM chain file), or a KMS URI. Raises AttestStepError on
    any problem. ``kdf`` derives a cosign key's scrypt key (e.g. one started early by
    :mod:`attest_step.keys.early_kdf`); it must give the same result as scrypt itself.
    """
    chain_path = Path(certificate_chain) if certificate_chain is not None else None
    if is_kms_uri(key_ref):
        from attest_step.keys import kms  # noqa: PLC0415 (loads optional dependencies)

        return kms.load_signer(key_ref, chain_path=chain_path)
    path = _existing(key_ref, "--key")
    if not path.is_dir():
        return _signer_from_file(
            path,
            explicit_password=password_value,
            password_file=None,
            chain_path=chain_path,
            what="key file",
            kdf=kdf,
        )
    files = secret_dir.locate(path)
    if files.private_key is None:
        raise UsageError(
            f"Secret directory {path} has no {secret_dir.COSIGN_KEY} or {secret_dir.TLS_KEY}; "
            "mount the Secret made by cosign generate-key-pair k8s://NS/NAME"
        )
    if files.certificate is not None and chain_path is None:
        chain_path = files.certificate
    return _signer_from_file(
        files.private_key,
        explicit_password=password_value,
        password_file=files.password if password_value is None else None,
        chain_path=chain_path,
        what="key file",
        kdf=kdf,
    )


def needs_password(key_ref: str) -> bool:
    """True when ``key_ref`` is an encrypted key file with no password from the environment.

    The CLI uses this to decide whether to prompt; it never raises.
    """
    if is_kms_uri(key_ref) or not key_ref:
        return False
    path = Path(key_ref)
    try:
        if path.is_dir():
            files = secret_dir.locate(path)
            if files.password is not None or files.private_key is None:
                return False
            path = files.private_key
        data = read_small_file(path, "--key")
    except (OSError, UsageError):
        return False
    encrypted = any(
        f"BEGIN {label}-----".encode() in data for label in cosign_format.ENCRYPTED_LABELS
    )
    env = os.environ
    return (
        encrypted and password.PASSWORD_ENV not in env and not env.get(password.PASSWORD_FILE_ENV)
    )


# ---------------------------------------------------------------- verifiers


def public_key_from_pem(data: bytes, source: str) -> PublicKey:
    """The key of the first PUBLIC KEY / RSA PUBLIC KEY / CERTIFICATE block in ``data``."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415 - start-up

    from attest_step.keys.local import (  # noqa: PLC0415 - start-up
        SUPPORTED,
        UnsupportedKeyError,
        check_public,
        parse_der_certificate,
        public_key_of,
    )

    blocks = _blocks(data, Path(source), "public key")
    for block in blocks:
        try:
            if block.label == "PUBLIC KEY":
                key: object = public_key_of(block.der)
            elif block.label == "RSA PUBLIC KEY":
                key = serialization.load_pem_public_key(block.text)
            elif block.label == CERT_LABEL:
                key = public_key_of(parse_der_certificate(block.der))
            else:
                continue
        except ValueError as err:
            raise UsageError(
                f"public key {source} holds a malformed {block.label}; re-export it"
            ) from err
        try:
            return check_public(key)
        except UnsupportedKeyError as err:
            raise UsageError(f"public key {source}: {err}; use {SUPPORTED}") from err
    labels = {b.label for b in blocks}
    if labels & {PKCS8_LABEL, *cosign_format.ENCRYPTED_LABELS, *_NON_PKCS8}:
        raise UsageError(
            f"{source} is a private key; verify with its public key "
            "(attest-step public-key --key KEY > cosign.pub)"
        )
    raise UsageError(f"{source} holds no PUBLIC KEY or CERTIFICATE PEM block")


def load_verifier(key_ref: str) -> Verifier:
    """Load a verifier from a public key PEM, a certificate, a Secret directory or a KMS URI."""
    if is_kms_uri(key_ref):
        from attest_step.keys import kms  # noqa: PLC0415 (loads optional dependencies)

        return kms.load_verifier(key_ref)
    path = _existing(key_ref, "--key")
    if path.is_dir():
        files = secret_dir.locate(path)
        chosen = files.public_key or files.certificate
        if chosen is None:
            raise UsageError(
                f"Secret directory {path} has no {secret_dir.COSIGN_PUB} or "
                f"{secret_dir.TLS_CRT}; pass the public key file instead"
            )
        path = chosen
    data = _read(path, "public key")
    from attest_step.keys.local import PublicKeyVerifier  # noqa: PLC0415 - start-up

    return PublicKeyVerifier(public_key_from_pem(data, str(path)))
