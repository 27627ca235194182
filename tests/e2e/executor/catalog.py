"""The catalog's test runs: which files make up a test directory, and how to run them.

A test directory ``catalog/<kind>/<name>/<X.Y>/tests`` is run against every catalog
manifest (``catalog/*/*/*/*.yaml``, as ``hack/e2e-kind.sh`` applies all of catalog/) plus
the test directory's own YAML (Secrets, ConfigMaps, ServiceAccounts, runs).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.e2e.executor.render import REPO_ROOT
from tests.e2e.executor.runs import Executor, RunOutcome, runs_in

CATALOG = REPO_ROOT / "catalog"
# The catalog's tests push to the kind registry; locally that name maps to the test registry.
KIND_REGISTRY = "registry.local:5000"


def catalog_manifests(catalog: Path = CATALOG) -> list[Path]:
    return sorted(catalog.glob("*/*/*/*.yaml"))


def catalog_test_dirs(catalog: Path = CATALOG) -> list[Path]:
    return sorted(p for p in catalog.glob("*/*/*/tests") if p.is_dir())


def catalog_test_files(test_dir: Path) -> list[Path]:
    return sorted(test_dir.glob("*.yaml"))


def executor_for(
    test_dir: Path,
    workdir: Path,
    *,
    registry: str | None = None,
    catalog: Path = CATALOG,
    extra_files: list[Path] | None = None,
) -> Executor:
    rewrites = {KIND_REGISTRY: registry} if registry else {}
    files = [*catalog_manifests(catalog), *catalog_test_files(test_dir), *(extra_files or [])]
    return Executor(files, workdir, rewrites=rewrites)


def task_run(
    name: str,
    task: str,
    params: Mapping[str, Any],
    workspaces: Mapping[str, dict[str, Any]],
    *,
    service_account: str = "attest-step-builder",
) -> dict[str, Any]:
    """A TaskRun of the catalog Task ``task`` as the tests write them: ``params`` in their
    order (a value may be a string or an array), each workspace bound as given."""
    return {
        "apiVersion": "tekton.dev/v1",
        "kind": "TaskRun",
        "metadata": {"name": name},
        "spec": {
            "taskRef": {"name": task},
            "serviceAccountName": service_account,
            "params": [{"name": key, "value": value} for key, value in params.items()],
            "workspaces": [{"name": key, **binding} for key, binding in workspaces.items()],
        },
    }


def claim(name: str) -> dict[str, Any]:
    """A workspace binding to the PersistentVolumeClaim ``name``."""
    return {"persistentVolumeClaim": {"claimName": name}}


def config_map(name: str) -> dict[str, Any]:
    """A workspace binding to the ConfigMap ``name``."""
    return {"configMap": {"name": name}}


def use_signing_keys(ex: Executor, keys: Path, password: bytes) -> None:
    """The ``signing-secrets`` Secret (a cosign key pair in ``keys``) and the
    ``signing-public-key`` ConfigMap that the catalog's tests bind."""
    public = (keys / "cosign.pub").read_bytes()
    ex.add_secret(
        "signing-secrets",
        {
            "cosign.key": (keys / "cosign.key").read_bytes(),
            "cosign.pub": public,
            "cosign.password": password,
        },
    )
    ex.cluster.configmaps["signing-public-key"] = {"cosign.pub": public}


def run_test_dir(test_dir: Path, workdir: Path, *, registry: str | None = None) -> list[RunOutcome]:
    ex = executor_for(test_dir, workdir, registry=registry)
    return [ex.run(obj) for obj in runs_in(catalog_test_files(test_dir))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.e2e.executor",
        description="Run catalog test runs locally with Tekton's semantics (no cluster).",
    )
    parser.add_argument("test_dirs", nargs="*", type=Path, help="default: every catalog tests/ dir")
    parser.add_argument("--registry", help=f"host:port that replaces {KIND_REGISTRY}")
    parser.add_argument("--workdir", type=Path, help="keep pods, volumes and logs here")
    args = parser.parse_args(argv)
    dirs = args.test_dirs or catalog_test_dirs()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="tekton-local-"))
    failed = 0
    for i, d in enumerate(dirs):
        for outcome in run_test_dir(d, workdir / f"{i:02d}", registry=args.registry):
            mark = "PASS" if outcome.succeeded else "FAIL"
            print(f"{mark} {d}: {outcome.kind} {outcome.name}: {outcome.reason} {outcome.message}")
            failed += 0 if outcome.succeeded else 1
    print(f"work dir: {workdir}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
