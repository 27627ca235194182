"""LOCAL STAND-IN for kaniko's /kaniko/executor (the local executor only; never on kind).

kaniko needs a container runtime. This program takes kaniko's flags, builds a small real
OCI image (one layer with the files the Dockerfile's COPY/ADD lines name from the
context; RUN lines are not executed and are listed in a label) and pushes it over plain
HTTP to each ``--destination``, then writes the manifest digest to ``--digest-file``
as kaniko does.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from tests.fixtures.oci_image import OciImage, build_image, push_image

IGNORED = {
    "--insecure",
    "--skip-tls-verify",
    "--insecure-pull",
    "--skip-tls-verify-pull",
    "--reproducible",
    "--cache",
    "--single-snapshot",
    "--no-push-cache",
}


def parse(argv: list[str]) -> dict[str, list[str]]:
    opts: dict[str, list[str]] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--"):
            raise SystemExit(f"kaniko stand-in: unexpected argument {arg!r}")
        key, eq, value = arg.partition("=")
        if key in IGNORED or key.startswith("--cache") or key.startswith("--label"):
            opts.setdefault(key, []).append(value)
            i += 1
            continue
        if not eq:
            i += 1
            value = argv[i]
        opts.setdefault(key, []).append(value)
        i += 1
    return opts


def build(context: Path, dockerfile: Path) -> OciImage:
    files: dict[str, bytes] = {}
    skipped: list[str] = []
    base = "scratch"
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            base = rest.split()[0]
        elif word in ("COPY", "ADD"):
            parts = [p for p in shlex.split(rest) if not p.startswith("--")]
            *srcs, dest = parts
            for src in srcs:
                path = context / src
                entries = (
                    [p for p in sorted(path.rglob("*")) if p.is_file()] if path.is_dir() else [path]
                )
                for f in entries:
                    rel = f.relative_to(path) if path.is_dir() else Path(f.name)
                    target = (
                        dest.rstrip("/") + "/" + str(rel)
                        if dest.endswith("/") or path.is_dir()
                        else dest
                    )
                    files[target.lstrip("/")] = f.read_bytes()
        else:
            skipped.append(line)
    return build_image(
        files or {".kaniko-standin": b""},
        labels={
            "dev.attest-step.local-standin": "kaniko",
            "dev.attest-step.standin.base": base,
            "dev.attest-step.standin.not-run": json.dumps(skipped),
        },
    )


def main(argv: list[str]) -> int:
    opts = parse(argv)
    context = Path((opts.get("--context") or ["."])[-1].removeprefix("dir://"))
    dockerfile = Path((opts.get("--dockerfile") or ["Dockerfile"])[-1])
    if not dockerfile.is_absolute():
        dockerfile = (
            (context / dockerfile) if (context / dockerfile).exists() else Path.cwd() / dockerfile
        )
    image = build(context, dockerfile)
    print(f"kaniko stand-in: built {image.digest} from {dockerfile} (LOCAL STAND-IN, not kaniko)")
    for dest in opts.get("--destination") or []:
        repo, tag = dest.split("@", 1)[0], "latest"
        if repo.rfind(":") > repo.rfind("/"):
            repo, tag = repo.rsplit(":", 1)
        pushed = push_image(repo, image, tag=tag)
        print(f"kaniko stand-in: pushed {pushed.ref}")
    for path in opts.get("--digest-file") or []:
        Path(path).write_text(image.digest)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
