"""A Kubernetes Secret mounted as a directory.

Two layouts are recognised:

- what ``cosign generate-key-pair k8s://NS/NAME`` creates: ``cosign.key`` (encrypted),
  ``cosign.password`` (raw bytes, may be empty) and ``cosign.pub``;
- a ``kubernetes.io/tls`` Secret (for example from cert-manager): ``tls.key`` (PKCS#8 PEM)
  and ``tls.crt`` (leaf first, then intermediates), which become the certificate chain.

Kubelet mounts Secret files as symlinks into ``..data``, itself a symlink to a timestamped
directory that is swapped atomically when the Secret changes. Resolving ``..data`` once and
reading every file from its target gives a consistent key/password pair even mid-update.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import NamedTuple

from attest_step.errors import UsageError
from attest_step.fileio import describe

COSIGN_KEY = "cosign.key"
COSIGN_PASSWORD = "cosign.password"  # noqa: S105 (a file name)
COSIGN_PUB = "cosign.pub"
TLS_KEY = "tls.key"
TLS_CRT = "tls.crt"
DATA_LINK = "..data"


class SecretFiles(NamedTuple):
    directory: Path  # where the files are read from (``..data`` resolved)
    private_key: Path | None
    password: Path | None
    public_key: Path | None
    certificate: Path | None


def _present(base: Path, name: str) -> Path | None:
    """``base/name`` if it exists; None if not. Anything but a regular file there (a FIFO,
    a directory, a link to a device) is refused rather than silently skipped, so a wrong
    mount never makes another password source win."""
    path = base / name
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        if not path.is_symlink():
            return None
        raise UsageError(
            f"Secret directory {base}: {name} is a symbolic link that leads nowhere; "
            "check the mount"
        ) from None
    except OSError as err:
        raise UsageError(
            f"Secret directory {base}: cannot inspect {name} ({err.strerror})"
        ) from None
    if not stat.S_ISREG(mode):
        raise UsageError(
            f"Secret directory {base}: {name} is {describe(mode)}, not a regular file; "
            "mount the Secret's keys as files"
        )
    return path


def locate(directory: Path) -> SecretFiles:
    """Find the key files in a mounted Secret directory (``..data`` resolved once)."""
    data = directory / DATA_LINK
    base = data.resolve() if data.is_dir() else directory
    key = _present(base, COSIGN_KEY)
    if key is not None:
        return SecretFiles(
            base, key, _present(base, COSIGN_PASSWORD), _present(base, COSIGN_PUB), None
        )
    return SecretFiles(
        base,
        _present(base, TLS_KEY),
        None,
        _present(base, COSIGN_PUB),
        _present(base, TLS_CRT),
    )
