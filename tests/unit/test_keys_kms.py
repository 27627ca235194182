"""KMS URIs: routing to securesystemslib signers, and one-line errors without the extras."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from securesystemslib import signer as sslib

from attest_step.errors import AttestStepError
from attest_step.keys import kms

GCP = "gcpkms://projects/p1/locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions/3"


@pytest.mark.parametrize(
    ("uri", "cls", "args"),
    [
        (GCP, "GCPSigner", (GCP.removeprefix("gcpkms://"),)),
        ("awskms:///1234abcd-12ab", "AWSSigner", ("1234abcd-12ab",)),
        ("awskms:///alias/release", "AWSSigner", ("alias/release",)),
        (
            "awskms:///arn:aws:kms:eu-west-1:1:key/x",
            "AWSSigner",
            ("arn:aws:kms:eu-west-1:1:key/x",),
        ),
        ("azurekms://myvault.vault.azure.net/signing", "AzureSigner", ("myvault", "signing")),
        ("hashivault://release", "VaultSigner", ("release",)),
    ],
)
def test_routes(uri: str, cls: str, args: tuple[str, ...]) -> None:
    target = kms.route(uri)
    assert (target.signer_class, target.import_args) == (cls, args)
    assert hasattr(sslib, cls)


def test_pkcs11_uri() -> None:
    target = kms.route(
        "pkcs11:token=my%20token;id=%01%02;object=k?module-path=/m.so&pin-value=1234"
    )
    assert target.signer_class == "HSMSigner"
    assert target.pkcs11 == kms.Pkcs11Uri("my token", b"\x01\x02", "k", "/m.so", "1234")
    assert "1234" not in repr(target)


def test_pkcs11_module_and_pin_from_env() -> None:
    env = {"COSIGN_PKCS11_MODULE_PATH": "/env.so", "COSIGN_PKCS11_PIN": "9"}
    assert kms.parse_pkcs11_uri("pkcs11:id=%05", env) == kms.Pkcs11Uri(
        None, b"\x05", None, "/env.so", "9"
    )


@pytest.mark.parametrize(
    "uri",
    [
        "gcpkms://projects/p",
        "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k",
        "awskms://",
        "azurekms://myvault.vault.azure.net",
        "hashivault://",
        "hashivault://a/b",
        "pkcs11:token",
    ],
)
def test_malformed_uris(uri: str) -> None:
    with pytest.raises(AttestStepError, match="malformed"):
        kms.route(uri)


def test_aws_endpoint_is_redirected_to_env() -> None:
    with pytest.raises(AttestStepError, match="AWS_ENDPOINT_URL_KMS"):
        kms.route("awskms://localhost:4566/alias/x")


def test_pkcs11_needs_module_and_id() -> None:
    with pytest.raises(AttestStepError, match="module-path"):
        kms._import(
            "pkcs11:id=%01",
            kms.KmsTarget(
                "pkcs11", "HSMSigner", (), "x", kms.Pkcs11Uri(None, b"\x01", None, None, None)
            ),
        )
    with pytest.raises(AttestStepError, match="no id="):
        kms._import(
            "pkcs11:token=t",
            kms.KmsTarget(
                "pkcs11", "HSMSigner", (), "x", kms.Pkcs11Uri("t", None, None, "/m.so", None)
            ),
        )


BLOCK_AND_LOAD = """
import sys
for name in {modules!r}:
    sys.modules[name] = None  # as if the optional package were not installed
from attest_step.errors import AttestStepError
from attest_step.keys.load import load_signer, load_verifier
try:
    {call}({uri!r})
except AttestStepError as err:
    print(err)
    sys.exit(3)
"""


@pytest.mark.parametrize(
    ("uri", "modules", "package"),
    [
        (GCP, ["google.cloud", "google.cloud.kms"], "google-cloud-kms"),
        ("awskms:///alias/x", ["boto3", "botocore"], "boto3"),
        (
            "azurekms://v.vault.azure.net/k",
            ["azure.identity", "azure.keyvault.keys"],
            "azure-keyvault-keys",
        ),
        ("hashivault://k", ["hvac"], "hvac"),
        ("pkcs11:id=%01?module-path=/nonexistent.so", ["pkcs11"], "python-pkcs11"),
    ],
)
@pytest.mark.parametrize("call", ["load_signer", "load_verifier"])
def test_missing_optional_dependency_is_one_line(
    uri: str, modules: list[str], package: str, call: str
) -> None:
    code = BLOCK_AND_LOAD.format(modules=modules, call=call, uri=uri)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 3, done.stderr
    assert done.stdout.strip() == (
        f"KMS URI {uri} needs the optional package {package}: pip install 'attest-step[kms]'"
    )


def test_certificate_chain_is_refused_for_kms() -> None:
    with pytest.raises(AttestStepError, match="certificate-chain"):
        kms.load_signer("hashivault://k", chain_path=Path("chain.pem"))
