"""The image lock: everything a locked build installs, with exact versions and hashes.

Shape (JSON, sorted keys, one file per image under images/<name>/image.lock)::

    {"schema": 1, "image": "attest-step", "epoch": 1764800000,
     "debian": {"suite": "bookworm", "architecture": "amd64",
                "sources": ["deb URI SUITE main", ...],
                "packages": {"name": "version", ...},      # the image's dpkg status, exactly
                "buildOnly": {"name": "version", ...},     # installed to build, then purged
                "debSha256": {"name": "sha256 of the .deb", ...}},
     "wheels": [{"name": ..., "version": ..., "filename": ..., "sha256": ...}, ...],
     "buildWheels": [...],                                 # setuptools/wheel that build ours
     "project": {"filename": ..., "sha256": ...} | null}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = 1


class LockError(Exception):
    """The lock is missing, malformed or no longer matches what the build produced."""


@dataclass(frozen=True)
class Wheel:
    name: str
    version: str
    filename: str
    sha256: str

    def as_json(self) -> dict[str, str]:
        return {
            "name": self.name,
            "version": self.version,
            "filename": self.filename,
            "sha256": self.sha256,
        }


@dataclass
class Lock:
    image: str
    epoch: int
    suite: str
    architecture: str
    sources: list[str]
    packages: dict[str, str]
    build_only: dict[str, str] = field(default_factory=dict)
    deb_sha256: dict[str, str] = field(default_factory=dict)
    wheels: list[Wheel] = field(default_factory=list)
    build_wheels: list[Wheel] = field(default_factory=list)
    project: Wheel | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "image": self.image,
            "epoch": self.epoch,
            "debian": {
                "suite": self.suite,
                "architecture": self.architecture,
                "sources": self.sources,
                "packages": dict(sorted(self.packages.items())),
                "buildOnly": dict(sorted(self.build_only.items())),
                "debSha256": dict(sorted(self.deb_sha256.items())),
            },
            "wheels": [w.as_json() for w in sorted(self.wheels, key=lambda w: w.name)],
            "buildWheels": [w.as_json() for w in sorted(self.build_wheels, key=lambda w: w.name)],
            "project": self.project.as_json() if self.project else None,
        }

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_json(), indent=2, sort_keys=False) + "\n")

    def all_packages(self) -> dict[str, str]:
        return {**self.packages, **self.build_only}


def _wheel(item: Any, where: str) -> Wheel:
    if not isinstance(item, dict):
        raise LockError(f"{where}: a wheel entry must be an object")
    try:
        return Wheel(
            str(item["name"]), str(item["version"]), str(item["filename"]), str(item["sha256"])
        )
    except KeyError as err:
        raise LockError(f"{where}: wheel entry lacks {err}") from None


def read(path: Path) -> Lock:
    """Load ``path``; LockError with a one-line reason when it is unusable."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise LockError(f"{path}: no lock file (run make image-lock)") from None
    except (OSError, ValueError) as err:
        raise LockError(f"{path}: unreadable lock ({err}); run make image-lock") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise LockError(f"{path}: not a schema {SCHEMA} image lock; run make image-lock")
    try:
        debian = data["debian"]
        project = data.get("project")
        return Lock(
            image=str(data["image"]),
            epoch=int(data["epoch"]),
            suite=str(debian["suite"]),
            architecture=str(debian["architecture"]),
            sources=[str(s) for s in debian["sources"]],
            packages={str(k): str(v) for k, v in debian["packages"].items()},
            build_only={str(k): str(v) for k, v in debian.get("buildOnly", {}).items()},
            deb_sha256={str(k): str(v) for k, v in debian.get("debSha256", {}).items()},
            wheels=[_wheel(w, f"{path}: wheels") for w in data.get("wheels", [])],
            build_wheels=[_wheel(w, f"{path}: buildWheels") for w in data.get("buildWheels", [])],
            project=_wheel(project, f"{path}: project") if project else None,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise LockError(f"{path}: malformed lock ({err!r}); run make image-lock") from None


def diff(want: dict[str, str], got: dict[str, str]) -> str:
    """A short description of how ``got`` differs from ``want``; empty when equal."""
    parts = []
    for name in sorted(set(want) | set(got)):
        if want.get(name) != got.get(name):
            parts.append(f"{name} {want.get(name, '-')} -> {got.get(name, '-')}")
    if len(parts) > 4:
        parts = [*parts[:4], f"and {len(parts) - 4} more"]
    return ", ".join(parts)
