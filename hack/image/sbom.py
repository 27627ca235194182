"""An SPDX 2.3 JSON document for the step image, from dpkg's status and the wheels' metadata.

Deterministic: the creation time is the image's epoch and the document namespace is derived
from the package list, so two builds of one lock write the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from email.parser import HeaderParser
from pathlib import Path
from typing import Any

_SPDX_ID = re.compile(r"[^A-Za-z0-9.-]")


def _spdx_id(kind: str, name: str, version: str) -> str:
    return "SPDXRef-" + _SPDX_ID.sub("-", f"{kind}-{name}-{version}")


def wheel_packages(site: Path) -> dict[str, tuple[str, str]]:
    """Installed distributions in ``site``: name -> (version, license expression or text)."""
    found: dict[str, tuple[str, str]] = {}
    for metadata in sorted(site.glob("*.dist-info/METADATA")):
        headers = HeaderParser().parsestr(metadata.read_text(errors="replace"))
        name, version = headers.get("Name", ""), headers.get("Version", "")
        license_text = headers.get("License-Expression") or ""
        if name and version:
            found[name] = (version, license_text)
    return found


def _package(kind: str, name: str, version: str, purl: str, license_text: str) -> dict[str, Any]:
    return {
        "SPDXID": _spdx_id(kind, name, version),
        "name": name,
        "versionInfo": version,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": False,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": license_text if re.fullmatch(r"[A-Za-z0-9.+ ()-]+", license_text or "-")
        and license_text else "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "externalRefs": [
            {
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": purl,
            }
        ],
    }  # fmt: skip


def spdx_document(*, packages: dict[str, str], site: Path, epoch: int, name: str) -> dict[str, Any]:
    items = [
        _package(
            "deb",
            pkg,
            version,
            f"pkg:deb/debian/{pkg}@{version}?arch=amd64&distro=debian-12",
            "",
        )
        for pkg, version in sorted(packages.items())
    ]
    for dist, (version, license_text) in sorted(wheel_packages(site).items()):
        purl_name = re.sub(r"[-_.]+", "-", dist).lower()
        purl = f"pkg:pypi/{purl_name}@{version}"
        items.append(_package("pypi", dist, version, purl, license_text))
    fingerprint = hashlib.sha256(
        json.dumps([(i["name"], i["versionInfo"]) for i in items]).encode()
    ).hexdigest()
    root_id = "SPDXRef-DOCUMENT"
    return {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": root_id,
        "name": name,
        "documentNamespace": f"https://attest-step.dev/spdx/{name}/{fingerprint}",
        "creationInfo": {
            "created": datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "creators": ["Tool: attest-step hack/image/sbom.py"],
        },
        "packages": items,
        "relationships": [
            {
                "spdxElementId": root_id,
                "relationshipType": "DESCRIBES",
                "relatedSpdxElement": i["SPDXID"],
            }
            for i in items
        ],
    }  # fmt: skip
