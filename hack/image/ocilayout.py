"""Turn a rootfs tar into a one-layer OCI image layout with umoci (fixed timestamps, no history)."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from hack.image.recipes import Recipe


def build(recipe: Recipe, rootfs_tar: Path, layout: Path, tag: str, epoch: int) -> str:
    """Write ``layout`` (replacing it) and return the manifest digest."""
    if layout.exists():
        shutil.rmtree(layout)
    created = datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    image = f"{layout}:{tag}"

    def umoci(*args: str) -> None:
        subprocess.run(["umoci", *args], check=True, capture_output=True)

    umoci("init", "--layout", str(layout))
    umoci("new", "--image", image)
    umoci(
        "raw",
        "add-layer",
        "--image",
        image,
        "--no-history",
        str(rootfs_tar),
    )
    config = ["config", "--image", image, "--no-history", "--created", created]
    config += ["--author", "attest-step", "--os", "linux", "--architecture", "amd64"]
    config += ["--config.user", recipe.user]
    for env in recipe.env:
        config += ["--config.env", env]
    for part in recipe.entrypoint:
        config += ["--config.entrypoint", part]
    for part in recipe.cmd:
        config += ["--config.cmd", part]
    if recipe.name == "attest-step":
        config += ["--config.workingdir", "/tmp"]
    config += ["--config.label", f"org.opencontainers.image.description={recipe.description}"]
    config += [
        "--config.label",
        "org.opencontainers.image.source=https://github.com/attest-step/attest-step",
    ]
    umoci(*config)
    umoci("gc", "--layout", str(layout))
    return manifest_digest(layout)


def manifest_digest(layout: Path) -> str:
    index = json.loads((layout / "index.json").read_text())
    digest: str = index["manifests"][0]["digest"]
    return digest


def sizes(layout: Path) -> tuple[int, int]:
    """(compressed bytes of the layers as stored, uncompressed bytes of the layers)."""
    digest = manifest_digest(layout)
    manifest = json.loads((layout / "blobs" / digest.replace(":", "/")).read_bytes())
    compressed = sum(int(layer["size"]) for layer in manifest["layers"])
    config = json.loads(
        (layout / "blobs" / manifest["config"]["digest"].replace(":", "/")).read_bytes()
    )
    uncompressed = 0
    for diff_id in config["rootfs"]["diff_ids"]:
        del diff_id
    for layer in manifest["layers"]:
        blob = layout / "blobs" / layer["digest"].replace(":", "/")
        out = subprocess.run(["gzip", "-dc", str(blob)], check=True, capture_output=True).stdout
        uncompressed += len(out)
    return compressed, uncompressed


def from_root(
    recipe: Recipe, root: Path, work: Path, tag: str, epoch: int, record: dict[str, object]
) -> dict[str, object]:
    """Pack the root tree ``root`` (then removed) as ``recipe``'s image into ``work/oci``;
    ``record`` plus the digest, layout, tag and sizes is written to ``work/build.json``."""
    from hack.image import rootfs  # noqa: PLC0415 - rootfs imports the wheel tools

    tar = work / "rootfs.tar"
    rootfs.tar(root, tar, epoch)
    digest = build(recipe, tar, work / "oci", tag, epoch)
    compressed, uncompressed = sizes(work / "oci")
    result: dict[str, object] = {
        "image": recipe.name,
        "digest": digest,
        "layout": str(work / "oci"),
        "tag": tag,
        **record,
        "compressedBytes": compressed,
        "uncompressedBytes": uncompressed,
    }
    (work / "build.json").write_text(json.dumps(result, indent=2) + "\n")
    shutil.rmtree(root)
    tar.unlink()
    return result
