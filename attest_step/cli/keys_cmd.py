"""``generate-key-pair`` and ``public-key``: cosign's verbs of the same names."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import click

from attest_step.errors import UsageError
from attest_step.fileio import describe, write_output_file
from attest_step.keys import cosign_format, password
from attest_step.keys.load import load_signer, needs_password
from attest_step.keys.local import generate_p256, pkcs8_der, public_pem

PROMPT = "Enter password for private key: "
PROMPT_AGAIN = "Enter password for private key again: "


def _stdin_is_tty() -> bool:
    return sys.stdin.isatty()


def _prompt(confirm: bool) -> bytes:
    first = click.prompt(PROMPT, hide_input=True, default="", show_default=False, err=True)
    if confirm:
        second = click.prompt(
            PROMPT_AGAIN, hide_input=True, default="", show_default=False, err=True
        )
        if first != second:
            raise UsageError("the two passwords differ; run the command again")
    return str(first).encode("utf-8")


def _new_key_password() -> bytes:
    env = os.environ
    if password.PASSWORD_ENV in env:
        return env[password.PASSWORD_ENV].encode("utf-8")
    file_name = env.get(password.PASSWORD_FILE_ENV)
    if file_name:
        pw = password.read_password_file(Path(file_name), password.PASSWORD_FILE_ENV)
        return pw.candidates()[-1]  # a file written with echo: drop the newline
    if _stdin_is_tty():
        return _prompt(confirm=True)
    raise UsageError(
        f"no password for the new key: set {password.PASSWORD_ENV} (empty is allowed) or "
        f"{password.PASSWORD_FILE_ENV}, or run in a terminal to be prompted"
    )


def _refuse_special(path: Path) -> None:
    """A key is never written over a device, FIFO or directory, even with --force."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return
    if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
        raise UsageError(
            f"{path}: {describe(mode)}; generate-key-pair writes new regular files: choose "
            "another --output-key-prefix"
        )


def _write_new(path: Path, data: bytes, mode: int, force: bool) -> None:
    try:
        if force and path.is_file():
            path.unlink()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
    except OSError as err:
        if isinstance(err, FileExistsError):
            message = f"{path} already exists; pass --force to overwrite it"
        else:
            message = f"cannot write {path}: {err.strerror or err}; check the directory"
        raise UsageError(message) from err


@click.command("generate-key-pair")
@click.option(
    "--output-key-prefix",
    default="cosign",
    show_default=True,
    help="Write PREFIX.key (encrypted, 0600) and PREFIX.pub (0644).",
)
@click.option("--force", is_flag=True, help="Overwrite existing PREFIX.key and PREFIX.pub.")
def generate_key_pair_command(output_key_prefix: str, force: bool) -> None:
    """Create an ECDSA P-256 key pair in cosign's encrypted format.

    The password comes from COSIGN_PASSWORD (may be empty), else the file named by
    ATTEST_STEP_PASSWORD_FILE, else a prompt when standard input is a terminal.
    """
    if not output_key_prefix:
        raise UsageError("--output-key-prefix is empty; give a file name prefix")
    key_path = Path(f"{output_key_prefix}.key")
    pub_path = Path(f"{output_key_prefix}.pub")
    for path in (key_path, pub_path):
        _refuse_special(path)
    if not force:
        for path in (key_path, pub_path):
            if path.exists():
                raise UsageError(f"{path} already exists; pass --force to overwrite it")
    secret = _new_key_password()
    key = generate_p256()
    encrypted = cosign_format.encrypt(pkcs8_der(key), secret)
    _write_new(key_path, encrypted, 0o600, force)
    _write_new(pub_path, public_pem(key.public_key()), 0o644, force)
    click.echo(f"Private key written to {key_path}", err=True)
    click.echo(f"Public key written to {pub_path}", err=True)


@click.command("public-key")
@click.option(
    "--key",
    "key_ref",
    required=True,
    help="Signing key: cosign key file, Secret directory, PKCS#8 PEM or KMS URI.",
)
@click.option(
    "--outfile",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the PEM here instead of standard output.",
)
def public_key_command(key_ref: str, outfile: Path | None) -> None:
    """Print the public key (PKIX PEM) of a signing key."""
    prompted: bytes | None = None
    if needs_password(key_ref) and _stdin_is_tty():
        prompted = _prompt(confirm=False)
    signer = load_signer(key_ref, password_value=prompted)
    pem_bytes = signer.public_key_pem()
    if outfile is None:
        click.echo(pem_bytes.decode("ascii"), nl=False)
        return
    write_output_file(outfile, pem_bytes, "--outfile")
    click.echo(f"Public key written to {outfile}", err=True)
