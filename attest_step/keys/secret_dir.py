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

from pathlib import Path
from typing import NamedTuple

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
    path = base / name
    return path if path.is_file() else None


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
