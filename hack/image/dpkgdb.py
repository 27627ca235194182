"""Read a root filesystem's dpkg status: installed packages and their dependency closure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

STATUS = Path("var/lib/dpkg/status")


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    architecture: str
    source: str
    depends: tuple[tuple[str, ...], ...]  # AND of ORs, names only
    provides: tuple[str, ...]
    fields: dict[str, str]


def _stanzas(text: str) -> list[dict[str, str]]:
    result = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in block.splitlines():
            if line.startswith((" ", "\t")) and key:
                fields[key] += "\n" + line
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if fields.get("Package"):
            result.append(fields)
    return result


def _names(relation: str) -> tuple[tuple[str, ...], ...]:
    groups = []
    for group in relation.split(","):
        alternatives = []
        for alt in group.split("|"):
            name = re.sub(r"\(.*?\)|\[.*?\]|<.*?>", "", alt).strip().split(":")[0]
            if name:
                alternatives.append(name)
        if alternatives:
            groups.append(tuple(alternatives))
    return tuple(groups)


def installed(root: Path) -> dict[str, Package]:
    """Packages whose status is ``install ok installed`` in ``root``."""
    text = (root / STATUS).read_text(encoding="utf-8")
    packages = {}
    for fields in _stanzas(text):
        if fields.get("Status") != "install ok installed":
            continue
        relations = ", ".join(x for x in (fields.get("Pre-Depends"), fields.get("Depends")) if x)
        source = fields.get("Source", fields["Package"]).split(" ")[0]
        packages[fields["Package"]] = Package(
            name=fields["Package"],
            version=fields["Version"],
            architecture=fields.get("Architecture", ""),
            source=source,
            depends=_names(relations),
            provides=tuple(g[0] for g in _names(fields.get("Provides", ""))),
            fields=fields,
        )
    return packages


def versions(root: Path) -> dict[str, str]:
    return {name: pkg.version for name, pkg in installed(root).items()}


def closure(
    packages: dict[str, Package], roots: tuple[str, ...], skip: tuple[str, ...]
) -> set[str]:
    """``roots`` and every installed package they depend on, not following ``skip``."""
    providers: dict[str, list[str]] = {}
    for pkg in packages.values():
        for virtual in pkg.provides:
            providers.setdefault(virtual, []).append(pkg.name)
    keep: set[str] = set()
    todo = [r for r in roots if r in packages]
    missing = [r for r in roots if r not in packages]
    if missing:
        raise ValueError(f"packages to keep are not installed: {', '.join(missing)}")
    while todo:
        name = todo.pop()
        if name in keep:
            continue
        keep.add(name)
        for group in packages[name].depends:
            if any(alt in skip for alt in group):
                continue
            for alt in group:
                candidates = [alt] if alt in packages else sorted(providers.get(alt, []))
                if candidates:
                    todo.append(candidates[0])
                    break
    return keep
