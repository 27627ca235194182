"""Where the password of a cosign encrypted key comes from.

Order: an explicit value (the CLI's prompt), the mounted Secret's ``cosign.password`` (when
the key came from a Secret directory), ``COSIGN_PASSWORD`` (set, even to the empty string),
then the file named by ``ATTEST_STEP_PASSWORD_FILE``. Passwords are bytes and never appear in
messages; only their source does.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from attest_step.errors import UsageError
from attest_step.fileio import read_small_file

PASSWORD_ENV = "COSIGN_PASSWORD"  # noqa: S105 (a variable name)
PASSWORD_FILE_ENV = "ATTEST_STEP_PASSWORD_FILE"  # noqa: S105 (a variable name)


class Password(NamedTuple):
    value: bytes
    source: str  # e.g. "COSIGN_PASSWORD", "file /etc/signing/cosign.password"

    def __repr__(self) -> str:  # never the value
        return f"Password(source={self.source!r})"

    def candidates(self) -> list[bytes]:
        """The value, then (for files written with ``echo``) the value without one newline."""
        out = [self.value]
        for ending in (b"\r\n", b"\n"):
            if self.source.startswith("file ") and self.value.endswith(ending):
                out.append(self.value[: -len(ending)])
                break
        return out


def read_password_file(path: Path, what: str) -> Password:
    try:
        return Password(read_small_file(path, f"the password file ({what})"), f"file {path}")
    except OSError as err:
        raise UsageError(
            f"cannot read the password file {path} ({what}): {err.strerror or err}; "
            "check the path and its permissions"
        ) from err


def from_secret_or_env(
    secret_file: Path | None, env: Mapping[str, str], value_var: str, file_var: str
) -> Password | None:
    """The password in ``secret_file`` (a mounted Secret's), else the environment variable
    ``value_var`` (empty is a password), else the file ``file_var`` names; None if none."""
    if secret_file is not None:
        return read_password_file(secret_file, "from the Secret directory")
    if value_var in env:
        return Password(env[value_var].encode("utf-8"), value_var)
    file_name = env.get(file_var)
    if file_name:
        return read_password_file(Path(file_name), file_var)
    return None


def resolve(
    key_name: str,
    *,
    explicit: bytes | None = None,
    secret_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Password:
    """Pick the password for ``key_name`` or raise a one-line UsageError."""
    env = os.environ if environ is None else environ
    if explicit is not None:
        return Password(explicit, "the prompt")
    found = from_secret_or_env(secret_file, env, PASSWORD_ENV, PASSWORD_FILE_ENV)
    if found is not None:
        return found
    raise UsageError(
        f"key {key_name} is encrypted and no password was given: set {PASSWORD_ENV} "
        f"(empty is allowed) or {PASSWORD_FILE_ENV}, or mount the Secret with cosign.password"
    )
