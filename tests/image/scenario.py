"""What a Tekton step does with the image, as one runtime-neutral scenario (podman and runc).

A runner takes (args, mounts, options) and returns the finished process; mounts are
(host path, container path, read-only). Steps run as 65532 on a read-only root with /tmp on
a tmpfs, like the catalog's securityContext.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

Mount = tuple[Path, str, bool]
Runner = Callable[[list[str], list[Mount]], "subprocess.CompletedProcess[str]"]


def make_workspace(base: Path) -> Path:
    workspace = base / "workspace"
    (workspace / "out").mkdir(parents=True)
    (workspace / "out" / "app.txt").write_text("hello from the build\n")
    (workspace / "out" / "lib.txt").write_text("a second artifact\n")
    workspace.chmod(0o777)
    return workspace


def check_help(run: Runner) -> None:
    proc = run(["--help"], [])
    assert proc.returncode == 0, proc.stderr
    assert "attest" in proc.stdout and "verify-attestation" in proc.stdout


def check_hash(run: Runner, workspace: Path) -> None:
    proc = run(
        ["hash", "--output", "json", "/workspace/out/app.txt"], [(workspace, "/workspace", True)]
    )
    assert proc.returncode == 0, proc.stderr
    want = hashlib.sha256((workspace / "out" / "app.txt").read_bytes()).hexdigest()
    assert want in proc.stdout


def check_attest_and_verify(run: Runner, workspace: Path, secret: Path) -> None:
    mounts = [(workspace, "/workspace", False), (secret, "/secrets/signing", True)]
    proc = run(
        [
            "attest",
            "--key",
            "/secrets/signing",
            "--subject-path",
            "/workspace/out/app.txt",
            "--output-file",
            "/workspace/provenance.dsse.json",
            "--no-upload",
        ],
        mounts,
    )
    assert proc.returncode == 0, proc.stderr
    envelope = json.loads((workspace / "provenance.dsse.json").read_text())
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    verify = ["verify-attestation", "--key", "/secrets/signing/cosign.pub"]
    verify += ["--type", "slsaprovenance1", "--envelope", "/workspace/provenance.dsse.json"]
    proc = run([*verify, "--subject-path", "/workspace/out/app.txt"], mounts)
    assert proc.returncode == 0, proc.stderr
    # the other file is not the subject: verification must fail with exit 1
    proc = run([*verify, "--subject-path", "/workspace/out/lib.txt"], mounts)
    assert proc.returncode == 1, (proc.returncode, proc.stderr)


def check_run_network_none(run: Runner, workspace: Path) -> subprocess.CompletedProcess[str]:
    """``run --network none`` inside the container; returns the process for the caller to judge."""
    return run(
        [
            "run",
            "--network",
            "none",
            "--step-name",
            "build",
            "--evidence-file",
            "/workspace/build-run.json",
            "--",
            "/bin/sh",
            "-c",
            "cat /proc/self/net/dev > /workspace/netdev.txt",
        ],
        [(workspace, "/workspace", False)],
    )


def interfaces(workspace: Path) -> list[str]:
    lines = (workspace / "netdev.txt").read_text().splitlines()[2:]
    return sorted(line.split(":")[0].strip() for line in lines)


PGP_IMAGE = "registry.example/org/app:v1@sha256:" + "c" * 64


def check_pgp_sign_and_verify(run: Runner, workspace: Path, secret: Path) -> None:
    """``sign --pgp-key`` from a read-only Secret (pgp.key, pgp.passphrase, pgp.pub) into a
    lookaside on the workspace, then ``verify --pgp-key``: no gpg, no GNUPGHOME, no network."""
    mounts = [(workspace, "/workspace", False), (secret, "/secrets/pgp", True)]
    lookaside = ["--lookaside", "/workspace/lookaside"]
    proc = run(["sign", "--pgp-key", "/secrets/pgp", *lookaside, PGP_IMAGE], mounts)
    assert proc.returncode == 0, proc.stderr
    assert (workspace / "lookaside" / "org" / f"app@sha256={'c' * 64}" / "signature-1").is_file()
    proc = run(["verify", "--pgp-key", "/secrets/pgp/pgp.pub", *lookaside, PGP_IMAGE], mounts)
    assert proc.returncode == 0, proc.stderr
