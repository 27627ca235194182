"""Bench section ``blobs``: peak memory of ``copy`` and ``append`` with one large layer.

One OCI layout holds an image whose single layer is ``BLOB_BENCH_MIB`` MiB (default 1024;
256 with ``--quick``) of random bytes. Measured, each as a whole process against the local
registry fixture (``docker-registry``):

- ``copy --from-oci-layout`` of that image to the registry;
- ``copy --to-oci-layout`` of it back into a fresh layout;
- ``append`` of a directory holding a file of a quarter of that size onto it (the base
  layer is copied, the new layer's tar written and hashed).

Each figure is the child's ``ru_maxrss`` (hack/bench_hashing.py's helper: page cache is
not part of it). Target: at most 100 MB whatever the layer size, since blobs stream
(Store.open_blob / put_blob_stream) instead of being held whole. Wall seconds are
reported as information. ``ATTEST_STEP_BENCH_BIN`` measures that attest-step instead of
the development venv's (e.g. an older checkout, for a before/after figure).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hack.bench_hashing import _peak_rss  # noqa: E402
from tests.fixtures.registry import LocalRegistry  # noqa: E402

TARGET_MB = 100.0
_CHUNK = 1 << 20


def _blob(root: Path, data: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    (root / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def _big_layer(root: Path, mib: int) -> dict[str, Any]:
    """``mib`` MiB of random bytes as a blob of the layout, hashed as it is written."""
    partial = root / "blobs" / "sha256" / "partial"
    hasher = hashlib.sha256()
    with partial.open("wb") as out:
        for _ in range(mib):
            chunk = os.urandom(_CHUNK)
            hasher.update(chunk)
            out.write(chunk)
    partial.rename(partial.with_name(hasher.hexdigest()))
    return {"digest": f"sha256:{hasher.hexdigest()}", "size": mib * _CHUNK}


def _layout(root: Path, mib: int) -> None:
    """An OCI layout with one image (tag ``v1``) of one ``mib`` MiB layer."""
    (root / "blobs" / "sha256").mkdir(parents=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    layer = _big_layer(root, mib)
    (root / "layer-digest").write_text(layer["digest"])
    config = {
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]},
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            **_blob(root, json.dumps(config).encode()),
        },
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer}],
    }
    entry = {
        "mediaType": manifest["mediaType"],
        **_blob(root, json.dumps(manifest).encode()),
        "annotations": {"org.opencontainers.image.ref.name": "v1"},
    }
    index = {"schemaVersion": 2, "manifests": [entry]}
    (root / "index.json").write_text(json.dumps(index))


def _check_copied(work: Path, mib: int) -> None:
    """The layer really went round (so the figures are not those of a no-op)."""
    digest = (work / "src" / "layer-digest").read_text().removeprefix("sha256:")
    for copy in ("back", "out"):
        size = (work / copy / "blobs" / "sha256" / digest).stat().st_size
        if size != mib * _CHUNK:
            raise RuntimeError(f"{copy}: the layer has {size} bytes, not {mib} MiB")


def _measure(name: str, argv: list[str], cwd: Path) -> dict[str, Any]:
    started = time.perf_counter()
    rss = _peak_rss(argv, cwd)
    return {
        "name": name,
        "peak_rss_mb": round(rss / 1e6, 1),
        "seconds": round(time.perf_counter() - started, 2),
    }


def run(quick: bool = False) -> dict[str, Any]:
    registry_bin = Path("/usr/bin/docker-registry")
    if not registry_bin.exists():
        return {"skipped": f"{registry_bin} not installed (run hack/install-tools.sh)"}
    mib = int(os.environ.get("BLOB_BENCH_MIB", "256" if quick else "1024"))
    default = Path(sys.executable).parent / "attest-step"
    ours = os.environ.get("ATTEST_STEP_BENCH_BIN") or str(default)
    limit = ["--max-blob-size", f"{mib + 1}MiB"]
    with tempfile.TemporaryDirectory(prefix="bench-blobs-") as tmp:
        work = Path(tmp)
        _layout(work / "src", mib)
        (work / "app").mkdir()
        (work / "app" / "hello").write_text("hello\n")
        with (work / "app" / "output.bin").open("wb") as sparse:  # the new layer: mib/4 MiB
            sparse.truncate(mib // 4 * _CHUNK)
        registry = LocalRegistry(registry_bin, work / "registry")
        registry.start()
        try:
            remote = f"{registry.repo('blob')}:v1"
            append = [*limit, "app"]
            transfer = ["--allow-insecure-registry", "--timeout", "600s", *limit]
            runs = [
                _measure(
                    "copy --from-oci-layout",
                    [ours, "copy", "--from-oci-layout", "src:v1", remote, *transfer],
                    work,
                ),
                _measure(
                    "copy --to-oci-layout",
                    [ours, "copy", "--to-oci-layout", remote, "back:v1", *transfer],
                    work,
                ),
                _measure(
                    "append",
                    [ours, "append", "--base", "src:v1", "--to-oci-layout", "out:v2", *append],
                    work,
                ),
            ]
        finally:
            registry.stop()
        _check_copied(work, mib)
        baseline = _peak_rss([ours, "--version"], work)
    return {
        "layer_mib": mib,
        "binary": ours,
        "startup_only_rss_mb": round(baseline / 1e6, 1),
        "runs": runs,
        "note": "ru_maxrss of the child: page cache is not part of it",
        "targets": [
            {
                "name": f"blobs.{r['name'].replace(' ', '_')}.peak_rss_mb",
                "measured": r["peak_rss_mb"],
                "target": TARGET_MB,
                "unit": "MB",
                "better": "lower",
            }
            for r in runs
        ],
    }
