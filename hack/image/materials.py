"""Print ``--material`` flags for the image's provenance: every .deb and every wheel, by digest.

python hack/image/materials.py BUILD_DIR LOCK
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path


def materials(build: Path, lock: Path) -> list[str]:
    debs = json.loads((build / "debs.json").read_text())
    flags = [
        f"--material=pkg:deb/debian/{name}@{deb['version']}?arch=amd64&distro=debian-12"
        f"@sha256:{deb['sha256']}"
        for name, deb in sorted(debs.items())
    ]
    built = json.loads((build / "build.json").read_text())
    wheels = json.loads(lock.read_text())["wheels"] + [
        {"filename": built["wheels"][0], "sha256": built["attestStepWheel"]}
    ]
    for wheel in sorted(wheels, key=lambda w: w["filename"]):
        match = re.match(r"([^-]+)-([^-]+)-", wheel["filename"])
        if match is None:
            raise SystemExit(f"materials: bad wheel file name {wheel['filename']}")
        name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
        flags.append(f"--material=pkg:pypi/{name}@{match.group(2)}@sha256:{wheel['sha256']}")
    return flags


if __name__ == "__main__":
    print("\n".join(materials(Path(sys.argv[1]), Path(sys.argv[2]))))
