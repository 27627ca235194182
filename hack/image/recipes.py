"""What goes into each image: Debian packages to include and keep, Python wheels, config."""

from __future__ import annotations

from dataclasses import dataclass, field

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NONROOT = 65532


@dataclass(frozen=True)
class Recipe:
    name: str
    # Installed on top of Debian's Essential:yes set.
    include: tuple[str, ...]
    # Kept (with their dependency closure); every other package is purged after the build.
    keep: tuple[str, ...]
    # Dependencies not followed when computing what to keep (the image has no package manager).
    drop_deps: tuple[str, ...] = ("dpkg",)
    # Python requirements installed as pinned wheels (PyPI, cp311 manylinux x86_64).
    python: bool = False
    project_wheel: bool = False
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    user: str = f"{NONROOT}:{NONROOT}"
    env: tuple[str, ...] = field(default_factory=tuple)
    description: str = ""


ATTEST_STEP = Recipe(
    name="attest-step",
    include=("python3", "netbase"),
    # dash: /bin/sh for Tekton `script:` steps; coreutils: env, tr, mkdir, dirname used by
    # the catalog's scripts; libc-bin: ldconfig's cache and the C.UTF-8 locale.
    keep=(
        "python3",
        "netbase",
        "dash",
        "coreutils",
        "base-files",
        "base-passwd",
        "libc-bin",
    ),
    python=True,
    project_wheel=True,
    entrypoint=("/usr/local/bin/attest-step",),
    env=(
        f"PATH={PATH}",
        "HOME=/tmp",
        "TMPDIR=/tmp",
        "PYTHONDONTWRITEBYTECODE=1",
        "PYTHONUNBUFFERED=1",
        "LANG=C.UTF-8",
    ),
    description="attest-step's step image: Debian bookworm python3 + the attest-step wheel",
)

TOOLS = Recipe(
    name="tools",
    include=("python3", "bash", "ca-certificates", "netbase"),
    keep=(
        "python3",
        "bash",
        "ca-certificates",
        "netbase",
        "dash",
        "coreutils",
        "base-files",
        "base-passwd",
        "libc-bin",
        "grep",
        "sed",
        "findutils",
        "tar",
        "gzip",
    ),
    drop_deps=("dpkg", "debconf", "perl-base", "openssl"),
    cmd=("/bin/bash",),
    user="0:0",
    env=(f"PATH={PATH}", "LANG=C.UTF-8"),
    description="shell/tool image for Tekton script steps and -shell-image",
)

GIT = Recipe(
    name="git",
    include=("git", "ca-certificates", "netbase"),
    keep=(
        "git",
        "ca-certificates",
        "netbase",
        "dash",
        "coreutils",
        "base-files",
        "base-passwd",
        "libc-bin",
        "grep",
        "sed",
    ),
    drop_deps=("dpkg", "debconf", "perl-base", "openssl", "perl"),
    entrypoint=("/usr/bin/git",),
    env=(f"PATH={PATH}", "HOME=/tmp", "LANG=C.UTF-8"),
    description="git + ca-certificates for the git-source step",
)

REGISTRY = Recipe(
    name="registry",
    include=("docker-registry", "netbase"),
    keep=(
        "docker-registry",
        "base-files",
        "base-passwd",
        "netbase",
        "dash",
        "coreutils",
        "libc-bin",
    ),
    drop_deps=("dpkg", "debconf", "perl-base", "adduser", "init-system-helpers"),
    entrypoint=("/usr/bin/docker-registry",),
    cmd=("serve", "/etc/docker/registry/config.yml"),
    env=(f"PATH={PATH}",),
    description="Debian's docker-registry (distribution 2.8)",
)

RECIPES = {r.name: r for r in (ATTEST_STEP, TOOLS, GIT, REGISTRY)}
