"""The built image under podman (runc, cgroupfs, private storage), as a restricted step runs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.fixtures.keys import make_secret_mount
from tests.fixtures.pgp import PASSPHRASE, PgpKey
from tests.image import scenario
from tests.image.conftest import Podman

pytestmark = [pytest.mark.image, pytest.mark.slow]

RESTRICTED = [
    "--read-only",
    "--user=65532:65532",
    "--cap-drop=ALL",
    "--security-opt=no-new-privileges",
]


def runner(podman: tuple[Podman, str], *extra: str, network: str = "none") -> scenario.Runner:
    engine, image = podman

    def run(args: list[str], mounts: list[scenario.Mount]) -> subprocess.CompletedProcess[str]:
        volumes = [f"--volume={src}:{dst}:{'ro' if ro else 'rw'}" for src, dst, ro in mounts]
        return engine(
            "run", "--rm", *RESTRICTED, f"--network={network}", *extra, *volumes, image, *args
        )

    return run


def test_help(podman: tuple[Podman, str]) -> None:
    scenario.check_help(runner(podman))


def test_hash_of_a_mounted_workspace(podman: tuple[Podman, str], tmp_path: Path) -> None:
    scenario.check_hash(runner(podman), scenario.make_workspace(tmp_path))


def test_attest_with_a_read_only_secret_and_verify(
    podman: tuple[Podman, str], tmp_path: Path, secret_mount: Path
) -> None:
    scenario.check_attest_and_verify(
        runner(podman), scenario.make_workspace(tmp_path), secret_mount
    )


def test_pgp_sign_with_a_read_only_secret_and_verify(
    podman: tuple[Podman, str], tmp_path: Path, pgp_keys: dict[str, PgpKey]
) -> None:
    key = pgp_keys["signer"]
    files = {
        "pgp.key": key.secret_armored.read_bytes(),
        "pgp.passphrase": PASSPHRASE.encode(),
        "pgp.pub": key.public.read_bytes(),
    }
    secret = make_secret_mount(tmp_path / "pgp-secret", files)
    scenario.check_pgp_sign_and_verify(runner(podman), scenario.make_workspace(tmp_path), secret)


def test_run_network_none_with_podmans_default_seccomp(
    podman: tuple[Podman, str], tmp_path: Path
) -> None:
    """No capability, no privilege escalation, uid 65532: the user namespace is enough.

    podman's default seccomp profile (containers-common) lets unshare(CLONE_NEWUSER...) through;
    the host allows unprivileged user namespaces. The container has the host's interfaces
    (--network=host); the command inside ``run --network none`` sees only its own lo.
    """
    workspace = scenario.make_workspace(tmp_path)
    proc = scenario.check_run_network_none(runner(podman, network="host"), workspace)
    assert proc.returncode == 0, proc.stderr
    assert scenario.interfaces(workspace) == ["lo"]
    evidence = (workspace / "build-run.json").read_text()
    assert '"lo"' in evidence


def test_run_network_none_with_seccomp_unconfined(
    podman: tuple[Podman, str], tmp_path: Path
) -> None:
    workspace = scenario.make_workspace(tmp_path)
    proc = scenario.check_run_network_none(
        runner(podman, "--security-opt=seccomp=unconfined", network="host"), workspace
    )
    assert proc.returncode == 0, proc.stderr
    assert scenario.interfaces(workspace) == ["lo"]


def test_run_network_none_fails_closed_without_user_namespaces(
    podman: tuple[Podman, str], tmp_path: Path
) -> None:
    """A seccomp profile that refuses unshare (as moby's default does without CAP_SYS_ADMIN):
    ``run`` fails with a one-line error and never runs the command."""
    profile = tmp_path / "deny-unshare.json"
    profile.write_text(
        '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["unshare"], '
        '"action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}'
    )
    workspace = scenario.make_workspace(tmp_path)
    proc = scenario.check_run_network_none(
        runner(podman, f"--security-opt=seccomp={profile}", network="host"), workspace
    )
    assert proc.returncode != 0
    assert not (workspace / "netdev.txt").exists()
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
