"""An SPDX 2.3 JSON SBOM of a root filesystem: dpkg status plus installed wheels' metadata."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from email.parser import HeaderParser
from pathlib import Path
from typing import Any
from urllib.parse import quote

from hack.image import dpkgdb

SITE_DIRS = ("usr/local/lib/python3.11/dist-packages", "usr/lib/python3/dist-packages")
PATH_IN_IMAGE = "usr/share/attest-step/sbom.spdx.json"


def _spdx_id(kind: str, name: str, version: str) -> str:
    return "SPDXRef-" + re.sub(r"[^A-Za-z0-9.-]+", "-", f"{kind}-{name}-{version}")


def _deb_purl(pkg: dpkgdb.Package, distro: str) -> str:
    qualifiers = f"arch={pkg.architecture}&distro={distro}"
    if pkg.source != pkg.name:
        qualifiers += f"&upstream={quote(pkg.source, safe='')}"
    return f"pkg:deb/debian/{pkg.name}@{quote(pkg.version, safe='')}?{qualifiers}"


def _python_packages(root: Path) -> list[dict[str, Any]]:
    found = []
    for site in SITE_DIRS:
        for meta in sorted((root / site).glob("*.dist-info/METADATA")):
            headers = HeaderParser().parsestr(meta.read_text(encoding="utf-8", errors="replace"))
            name, version = headers.get("Name", ""), headers.get("Version", "")
            normalized = re.sub(r"[-_.]+", "-", name).lower()
            licence = headers.get("License-Expression") or headers.get("License") or ""
            found.append(
                {
                    "SPDXID": _spdx_id("Python", normalized, version),
                    "name": name,
                    "versionInfo": version,
                    "downloadLocation": f"https://pypi.org/project/{normalized}/{version}/",
                    "filesAnalyzed": False,
                    "licenseDeclared": "NOASSERTION",
                    "licenseConcluded": "NOASSERTION",
                    "copyrightText": "NOASSERTION",
                    "comment": f"declared licence: {licence.splitlines()[0][:200]}"
                    if licence
                    else "no licence declared in METADATA",
                    "externalRefs": [
                        {
                            "referenceCategory": "PACKAGE-MANAGER",
                            "referenceType": "purl",
                            "referenceLocator": f"pkg:pypi/{normalized}@{version}",
                        }
                    ],
                }
            )
    return found


def generate(root: Path, name: str, version: str, epoch: int, suite: str) -> dict[str, Any]:
    """The SBOM document for ``root`` (deterministic: created at ``epoch``)."""
    distro = f"debian-{suite}"
    packages: list[dict[str, Any]] = []
    for pkg in sorted(dpkgdb.installed(root).values(), key=lambda p: p.name):
        packages.append(
            {
                "SPDXID": _spdx_id("Deb", pkg.name, pkg.version),
                "name": pkg.name,
                "versionInfo": pkg.version,
                "supplier": "Organization: Debian",
                "downloadLocation": "NOASSERTION",
                "filesAnalyzed": False,
                "licenseDeclared": "NOASSERTION",
                "licenseConcluded": "NOASSERTION",
                "copyrightText": "NOASSERTION",
                "sourceInfo": f"built from Debian source package {pkg.source}",
                "externalRefs": [
                    {
                        "referenceCategory": "PACKAGE-MANAGER",
                        "referenceType": "purl",
                        "referenceLocator": _deb_purl(pkg, distro),
                    }
                ],
            }
        )
    packages.extend(_python_packages(root))
    image_id = "SPDXRef-Image"
    image = {
        "SPDXID": image_id,
        "name": name,
        "versionInfo": version,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": False,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "primaryPackagePurpose": "CONTAINER",
    }
    content = json.dumps(packages, sort_keys=True).encode()
    namespace_id = hashlib.sha256(content + name.encode()).hexdigest()
    created = datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"{name}-{version}",
        "documentNamespace": f"https://attest-step.dev/spdx/{name}/{namespace_id}",
        "creationInfo": {
            "created": created,
            "creators": ["Tool: attest-step hack/image/sbom.py"],
            "comment": "From the root filesystem's /var/lib/dpkg/status and the installed "
            "wheels' *.dist-info/METADATA; made before the image existed, so it names no "
            "image digest.",
        },
        "documentDescribes": [image_id],
        "packages": [image, *packages],
        "relationships": [
            {
                "spdxElementId": "SPDXRef-DOCUMENT",
                "relationshipType": "DESCRIBES",
                "relatedSpdxElement": image_id,
            },
            *[
                {
                    "spdxElementId": image_id,
                    "relationshipType": "CONTAINS",
                    "relatedSpdxElement": p["SPDXID"],
                }
                for p in packages
            ],
        ],
    }


def write(root: Path, document: dict[str, Any]) -> bytes:
    data = (json.dumps(document, indent=1, sort_keys=True) + "\n").encode()
    target = root / PATH_IN_IMAGE
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return data
