"""KMS and HSM keys through securesystemslib's signers, addressed with cosign's URIs.

| cosign URI                                               | securesystemslib signer |
|----------------------------------------------------------|-------------------------|
| ``gcpkms://projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/V`` | GCPSigner |
| ``awskms:///KEY-ID-OR-ALIAS-OR-ARN``                     | AWSSigner               |
| ``azurekms://VAULT.vault.azure.net/KEY``                 | AzureSigner             |
| ``hashivault://KEY``                                     | VaultSigner             |
| ``pkcs11:token=T;id=%01?module-path=/x.so&pin-value=P``  | HSMSigner               |

The optional packages come with ``pip install 'attest-step[kms]'``. Signatures use the same
algorithms as local keys (ECDSA P-256/SHA-256, P-384/SHA-384, RSA PKCS#1 v1.5 SHA-256,
Ed25519); a KMS key of another scheme (e.g. RSA-PSS) is refused, since cosign would not
verify it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, unquote_to_bytes

from attest_step.errors import AttestStepError, UsageError
from attest_step.fileio import read_small_file
from attest_step.keys.local import PublicKeyVerifier, UnsupportedKeyError, check_public

KMS_EXTRA_HINT = "pip install 'attest-step[kms]'"
ALLOWED_SCHEMES = frozenset(
    {"ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "rsa-pkcs1v15-sha256", "ed25519"}
)
PKCS11_MODULE_ENV = "COSIGN_PKCS11_MODULE_PATH"
PKCS11_PIN_ENV = "COSIGN_PKCS11_PIN"
SSLIB_MODULE_ENV = "PYKCS11LIB"


@dataclass(frozen=True)
class Pkcs11Uri:
    """The parts of an RFC 7512 ``pkcs11:`` URI that select a key on a token."""

    token: str | None
    key_id: bytes | None
    object_label: str | None
    module_path: str | None
    pin: str | None = field(repr=False)


@dataclass(frozen=True)
class KmsTarget:
    """Where a KMS URI goes: the securesystemslib class, its import_ arguments, the extra."""

    scheme: str
    signer_class: str
    import_args: tuple[str, ...]
    package_hint: str
    pkcs11: Pkcs11Uri | None = None


def redact(uri: str) -> str:
    """``uri`` with the value of ``pin-value`` hidden, for messages."""
    return re.sub(r"(pin-value=)[^&;]*", r"\1REDACTED", uri)


def _bad(uri: str, expected: str) -> UsageError:
    return UsageError(f"KMS URI {redact(uri)} is malformed; expected {expected}")


def parse_pkcs11_uri(uri: str, environ: Mapping[str, str] | None = None) -> Pkcs11Uri:
    """Parse an RFC 7512 URI; the module and PIN may also come from cosign's variables."""
    env = os.environ if environ is None else environ
    rest = uri[len("pkcs11:") :]
    path_part, _, query_part = rest.partition("?")
    attrs: dict[str, str] = {}
    raw_id: bytes | None = None
    for item in filter(None, path_part.split(";")):
        name, sep, value = item.partition("=")
        if not sep:
            raise _bad(uri, "pkcs11:token=LABEL;id=%01?module-path=/path/module.so")
        if name == "id":
            raw_id = unquote_to_bytes(value)
        else:
            attrs[name] = unquote(value)
    query: dict[str, str] = {}
    for item in filter(None, query_part.split("&")):
        name, sep, value = item.partition("=")
        if not sep:
            raise _bad(uri, "pkcs11:...?module-path=/path/module.so&pin-value=PIN")
        query[name] = unquote(value)
    pin = query.get("pin-value")
    pin_source = query.get("pin-source")
    if pin is None and pin_source is not None:
        pin_path = Path(pin_source.removeprefix("file:"))
        try:
            pin = read_small_file(pin_path, "PKCS#11 pin-source").decode().rstrip("\r\n")
        except UnicodeDecodeError:
            raise UsageError(f"PKCS#11 pin-source {pin_path}: not UTF-8 text") from None
        except OSError as err:
            raise UsageError(
                f"cannot read the PKCS#11 pin-source {pin_path}: {err.strerror or err}; "
                "check the path"
            ) from err
    if pin is None:
        pin = env.get(PKCS11_PIN_ENV)
    module = query.get("module-path") or env.get(PKCS11_MODULE_ENV) or env.get(SSLIB_MODULE_ENV)
    return Pkcs11Uri(attrs.get("token"), raw_id, attrs.get("object"), module, pin)


def route(uri: str) -> KmsTarget:
    """Map a cosign KMS URI to the securesystemslib signer that serves it (no I/O)."""
    if uri.startswith("gcpkms://"):
        name = uri[len("gcpkms://") :]
        parts = name.split("/")
        if len(parts) != 10 or parts[0::2] != [
            "projects",
            "locations",
            "keyRings",
            "cryptoKeys",
            "cryptoKeyVersions",
        ]:
            raise _bad(
                uri,
                "gcpkms://projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/V",
            )
        return KmsTarget("gcpkms", "GCPSigner", (name,), "google-cloud-kms")
    if uri.startswith("awskms://"):
        endpoint, sep, key_id = uri[len("awskms://") :].partition("/")
        if not sep or not key_id:
            raise _bad(uri, "awskms:///KEY-ID, awskms:///alias/NAME or awskms:///ARN")
        if endpoint:
            raise UsageError(
                f"KMS URI {redact(uri)} names an endpoint; use awskms:///{key_id} and set "
                "AWS_ENDPOINT_URL_KMS instead"
            )
        return KmsTarget("awskms", "AWSSigner", (key_id,), "boto3")
    if uri.startswith("azurekms://"):
        host, sep, key_name = uri[len("azurekms://") :].partition("/")
        vault = host.split(".", 1)[0]
        if not sep or not vault or not key_name or "/" in key_name:
            raise _bad(uri, "azurekms://VAULT.vault.azure.net/KEY")
        return KmsTarget("azurekms", "AzureSigner", (vault, key_name), "azure-keyvault-keys")
    if uri.startswith("hashivault://"):
        key_name = uri[len("hashivault://") :]
        if not key_name or "/" in key_name:
            raise _bad(uri, "hashivault://KEY")
        return KmsTarget("hashivault", "VaultSigner", (key_name,), "hvac")
    if uri.startswith("pkcs11:"):
        return KmsTarget("pkcs11", "HSMSigner", (), "python-pkcs11", parse_pkcs11_uri(uri))
    raise UsageError(
        f"--key {redact(uri)} is not a supported KMS URI; use gcpkms://, awskms://, azurekms://, "
        "hashivault:// or pkcs11:"
    )


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return (text[:200] + "...") if len(text) > 200 else text


def _missing_dependency(uri: str, target: KmsTarget) -> UsageError:
    return UsageError(
        f"KMS URI {redact(uri)} needs the optional package {target.package_hint}: {KMS_EXTRA_HINT}"
    )


def _hsm_class(module_path: str) -> Any:
    """HSMSigner bound to one PKCS#11 module instead of the ``PYKCS11LIB`` variable."""
    import pkcs11  # noqa: PLC0415 (optional dependency)
    from pkcs11.exceptions import MultipleTokensReturned, NoSuchToken  # noqa: PLC0415
    from securesystemslib.signer import HSMSigner  # type: ignore[attr-defined]  # noqa: PLC0415

    def find_token(token_label: str | None = None) -> Any:
        try:
            return pkcs11.lib(module_path).get_token(
                token_label=token_label, token_flags=pkcs11.TokenFlag.TOKEN_INITIALIZED
            )
        except NoSuchToken as err:
            raise ValueError(f"no initialised PKCS#11 token labelled {token_label}") from err
        except MultipleTokensReturned as err:
            raise ValueError("several PKCS#11 tokens match; add token=LABEL") from err

    # The one private name we still touch: securesystemslib chooses the PKCS#11 module only
    # through the PYKCS11LIB environment variable, read in HSMSigner._find_token; overriding
    # it in a subclass binds the module the key URI names without changing the environment
    # of the process (docs/decisions.md).
    class ModuleHSMSigner(HSMSigner):
        _find_token = staticmethod(find_token)

    return ModuleHSMSigner


def _import(uri: str, target: KmsTarget) -> tuple[Any, Any, Callable[[str], str] | None, str]:
    """Return (signer class, SSlibKey, secrets handler, private key URI); may call the KMS."""
    try:
        from securesystemslib import signer as sslib  # noqa: PLC0415
        from securesystemslib.exceptions import UnsupportedLibraryError  # noqa: PLC0415
    except ImportError as err:  # pragma: no cover - securesystemslib is a core dependency
        raise _missing_dependency(uri, target) from err
    handler: Callable[[str], str] | None = None
    try:
        if target.pkcs11 is not None:
            p11 = target.pkcs11
            if not p11.module_path:
                raise UsageError(
                    f"KMS URI {redact(uri)} names no PKCS#11 module; add ?module-path=/path/to.so "
                    f"or set {PKCS11_MODULE_ENV}"
                )
            if p11.key_id is None:
                raise UsageError(
                    f"KMS URI {redact(uri)} has no id=; the HSM signer selects keys by id (id=%01)"
                )
            try:
                cls = _hsm_class(p11.module_path)
            except ImportError as err:
                raise _missing_dependency(uri, target) from err
            pin = p11.pin
            if pin is not None:
                handler = lambda _what: pin  # noqa: E731
            key_int = int.from_bytes(p11.key_id, "big")
            priv_uri, key = cls.import_(key_int, p11.token, handler)
            return cls, key, handler, priv_uri
        cls = getattr(sslib, target.signer_class)
        priv_uri, key = cls.import_(*target.import_args)
        if target.scheme == "awskms" and key.scheme.startswith("rsassa-pss"):
            priv_uri, key = cls.import_(*target.import_args, local_scheme="rsa-pkcs1v15-sha256")
        return cls, key, handler, priv_uri
    except AttestStepError:
        raise
    except UnsupportedLibraryError as err:
        raise _missing_dependency(uri, target) from err
    except Exception as err:  # KMS client, credential and token errors of many types
        raise AttestStepError(
            f"cannot load the key {redact(uri)}: {type(err).__name__}: {_one_line(err)}; "
            "check the URI, credentials and that the key exists"
        ) from err


def _public_key(uri: str, key: Any) -> PublicKeyVerifier:
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    if key.scheme not in ALLOWED_SCHEMES:
        raise UsageError(
            f"KMS key {redact(uri)} uses {key.scheme}, which cosign does not verify; use an ECDSA "
            "P-256/P-384, RSA PKCS#1 v1.5 SHA-256 or Ed25519 key"
        )
    try:
        pub = check_public(serialization.load_pem_public_key(key.keyval["public"].encode()))
    except (UnsupportedKeyError, ValueError) as err:
        raise UsageError(f"KMS key {redact(uri)}: {err}") from err
    return PublicKeyVerifier(pub)


class KmsSigner:
    """Adapts a securesystemslib signer to attest-step's Signer protocol."""

    def __init__(self, uri: str, sslib_signer: Any, verifier: PublicKeyVerifier) -> None:
        self._uri = redact(uri)
        self._signer = sslib_signer
        self._verifier = verifier
        self.algorithm = verifier.algorithm

    def sign(self, data: bytes) -> bytes:
        try:
            signature = self._signer.sign(data)
        except Exception as err:
            raise AttestStepError(
                f"signing with {self._uri} failed: {type(err).__name__}: {_one_line(err)}"
            ) from err
        return bytes.fromhex(signature.signature)

    def public_key_pem(self) -> bytes:
        return self._verifier.public_key_pem()

    def certificate_chain_pem(self) -> list[bytes]:
        return []

    def verifier(self) -> PublicKeyVerifier:
        return self._verifier

    def __repr__(self) -> str:
        return f"KmsSigner({self._uri.split('?', 1)[0]})"


def load_signer(uri: str, *, chain_path: Path | None = None) -> KmsSigner:
    target = route(uri)
    if chain_path is not None:
        raise UsageError(
            f"--certificate-chain is not supported with the KMS key {redact(uri)}; drop it"
        )
    cls, key, handler, priv_uri = _import(uri, target)
    verifier = _public_key(uri, key)
    if target.pkcs11 is not None and handler is None:
        raise UsageError(
            f"KMS URI {redact(uri)} gives no PIN; add pin-value= or pin-source= or set "
            f"{PKCS11_PIN_ENV}"
        )
    try:
        sslib_signer = cls.from_priv_key_uri(priv_uri, key, handler)
    except Exception as err:
        raise AttestStepError(
            f"cannot use the key {redact(uri)}: {type(err).__name__}: {_one_line(err)}"
        ) from err
    return KmsSigner(uri, sslib_signer, verifier)


def load_verifier(uri: str) -> PublicKeyVerifier:
    target = route(uri)
    _, key, _, _ = _import(uri, target)
    return _public_key(uri, key)
