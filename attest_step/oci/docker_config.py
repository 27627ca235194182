"""Registry credentials from the docker config, as docker and oras find them."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from attest_step.errors import RegistryError
from attest_step.fileio import read_small_file


def docker_config_path() -> Path:
    """``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json`` (docker's own rule)."""
    base = os.environ.get("DOCKER_CONFIG")
    if base:
        return Path(base) / "config.json"
    return Path.home() / ".docker" / "config.json"


def _normalise_host(key: str) -> str:
    host = key.split("://", 1)[-1].split("/", 1)[0]
    return "index.docker.io" if host in ("docker.io", "registry-1.docker.io") else host


def load_docker_auths(path: Path) -> dict[str, Any]:
    """The config's ``auths``/``credHelpers``/``credsStore`` with hosts normalised."""
    if not path.is_file():
        return {"auths": {}, "credHelpers": {}, "credsStore": None}
    doc: Any = None
    with contextlib.suppress(OSError, ValueError):
        doc = json.loads(read_small_file(path, "docker config"))
    if not isinstance(doc, dict):
        raise RegistryError(
            f"docker config {path}: not a readable JSON object; "
            "fix the file or point DOCKER_CONFIG at a valid one"
        )
    auths = {_normalise_host(k): v for k, v in (doc.get("auths") or {}).items()}
    helpers = {_normalise_host(k): v for k, v in (doc.get("credHelpers") or {}).items()}
    return {"auths": auths, "credHelpers": helpers, "credsStore": doc.get("credsStore")}
