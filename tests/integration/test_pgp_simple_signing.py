"""OpenPGP simple signing, checked by the real consumers: skopeo and podman from Debian.

attest-step signs images into a lookaside directory; ``skopeo copy`` and ``podman pull``
with a ``policy.json`` ``signedBy`` rule for our GnuPG key (and a ``registries.d`` file
naming the lookaside) must accept them, and must refuse an unsigned image, a tampered
signature, a signature by another key, a signature for another digest and one for another
repository. ``attest-step verify --pgp-key`` must agree with them on every case.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures.keys import make_secret_mount
from tests.fixtures.oci_image import PushedImage, build_image, push_image
from tests.fixtures.pgp import PASSPHRASE, PgpKey
from tests.fixtures.private_var_lib import with_private_var_lib
from tests.fixtures.registry import LocalRegistry
from tests.fixtures.tools import require_machine, require_tool
from tests.image.conftest import Podman

pytestmark = pytest.mark.registry

ATTEST_STEP = str(Path(sys.executable).parent / "attest-step")


def attest_step(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("COSIGN_", "ATTEST_STEP_"))}
    return subprocess.run(
        [ATTEST_STEP, *args], capture_output=True, text=True, check=False, timeout=60,
        env={**clean, **(env or {})}, stdin=subprocess.DEVNULL,
    )  # fmt: skip


@dataclass(frozen=True)
class World:
    """One lookaside, the registries.d naming it, and a policy trusting ``signer``."""

    registry: LocalRegistry
    keys: dict[str, PgpKey]
    lookaside: Path
    registries_d: Path
    policy: Path


def sign(world: World, key: str, image: str, *more: str) -> subprocess.CompletedProcess[str]:
    pgp = world.keys[key]
    env = {"ATTEST_STEP_PGP_PASSPHRASE": pgp.passphrase} if pgp.passphrase else {}
    args = ["sign", "--pgp-key", str(pgp.secret), "--lookaside", str(world.lookaside)]
    proc = attest_step(*args, *more, image, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # gpg's keys sign with the primary key: no subkey note
    return proc


def _signed(world: World, image: PushedImage) -> None:
    sign(world, "signer", f"{image.repository}:{image.tag}@{image.digest}")


def _unsigned(world: World, image: PushedImage) -> None:
    del world, image


def _tampered(world: World, image: PushedImage) -> None:
    sign(world, "signer", f"{image.repository}:{image.tag}@{image.digest}")
    path = signature_dir(world, image) / "signature-1"
    data = path.read_bytes()
    # Change the signed payload itself (one hex digit of the digest it names).
    at = data.index(image.hex.encode())
    flipped = b"0" if data[at : at + 1] != b"0" else b"1"
    path.write_bytes(data[:at] + flipped + data[at + 1 :])


def _wrong_key(world: World, image: PushedImage) -> None:
    sign(world, "other", f"{image.repository}:{image.tag}@{image.digest}")


def _wrong_digest(world: World, image: PushedImage) -> None:
    # A good signature for another image of the same repository, filed under this digest.
    other = push_image(image.repository, build_image(label="another image"), tag="other")
    assert other.digest != image.digest
    sign(world, "signer", f"{other.repository}:{image.tag}@{other.digest}")
    source = signature_dir(world, other) / "signature-1"
    target = signature_dir(world, image)
    target.mkdir(parents=True)
    (target / "signature-1").write_bytes(source.read_bytes())


def _wrong_repository(world: World, image: PushedImage) -> None:
    elsewhere = f"{world.registry.host}/somewhere/else:{image.tag}"
    sign(world, "signer", image.ref, "--sign-container-identity", elsewhere)


CASES: dict[str, Callable[[World, PushedImage], None]] = {
    "signed": _signed,
    "unsigned": _unsigned,
    "tampered": _tampered,
    "wrong-key": _wrong_key,
    "wrong-digest": _wrong_digest,
    "wrong-repository": _wrong_repository,
}
REFUSED = [name for name in CASES if name != "signed"]


def signature_dir(world: World, image: PushedImage) -> Path:
    path = image.repository.partition("/")[2]
    return world.lookaside / f"{path}@sha256={image.hex}"


@pytest.fixture(scope="module")
def world(
    registry: LocalRegistry,
    pgp_keys: dict[str, PgpKey],
    tmp_path_factory: pytest.TempPathFactory,
) -> World:
    base = tmp_path_factory.mktemp("pgp-world")
    lookaside = base / "lookaside"
    registries_d = base / "registries.d"
    registries_d.mkdir()
    (registries_d / "attest-step-test.yaml").write_text(
        f"docker:\n  {registry.host}:\n    lookaside: file://{lookaside}\n"
    )
    policy = base / "policy.json"
    rule = {"type": "signedBy", "keyType": "GPGKeys", "keyPath": str(pgp_keys["signer"].public)}
    policy.write_text(
        json.dumps(
            {"default": [{"type": "reject"}], "transports": {"docker": {registry.host: [rule]}}}
        )
    )
    return World(registry, pgp_keys, lookaside, registries_d, policy)


@pytest.fixture(scope="module")
def images(world: World) -> dict[str, PushedImage]:
    """One image per case, in a repository of its own, with the case's lookaside."""
    out = {}
    for name, prepare in CASES.items():
        image = push_image(world.registry.repo(f"pgp/{name}"), tag="v1")
        prepare(world, image)
        out[name] = image
    return out


def skopeo_copy(world: World, source: str, dest: Path) -> subprocess.CompletedProcess[str]:
    skopeo = require_tool("skopeo", hint="apt-get install skopeo")
    argv = [
        str(skopeo), "--policy", str(world.policy), "--registries.d", str(world.registries_d),
        "copy", "--src-tls-verify=false", f"docker://{source}", f"dir:{dest}",
    ]  # fmt: skip
    return subprocess.run(
        with_private_var_lib(argv, dest.with_name(dest.name + ".var-lib")),
        capture_output=True, text=True, check=False, timeout=120,
        env={**os.environ, "HOME": str(world.lookaside.parent)},
    )  # fmt: skip


def by_digest(image: PushedImage) -> str:
    return image.ref


def by_tag(image: PushedImage) -> str:
    return f"{image.repository}:{image.tag}"


# --- skopeo -------------------------------------------------------------------------------


@pytest.mark.parametrize("reference", [by_digest, by_tag], ids=["by-digest", "by-tag"])
def test_skopeo_copy_accepts_our_signature(
    world: World, images: dict[str, PushedImage], reference: Callable[[PushedImage], str],
    tmp_path: Path,
) -> None:  # fmt: skip
    proc = skopeo_copy(world, reference(images["signed"]), tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "manifest.json").is_file()


@pytest.mark.parametrize("case", REFUSED)
def test_skopeo_copy_refuses(
    world: World, images: dict[str, PushedImage], case: str, tmp_path: Path
) -> None:
    proc = skopeo_copy(world, by_digest(images[case]), tmp_path / "out")
    assert proc.returncode != 0, proc.stdout
    assert "Source image rejected" in proc.stderr, proc.stderr


# --- our own verify agrees ----------------------------------------------------------------


@pytest.mark.parametrize("case", list(CASES))
def test_attest_step_verify_agrees_with_skopeo(
    world: World, images: dict[str, PushedImage], case: str
) -> None:
    proc = attest_step(
        "verify", "--pgp-key", str(world.keys["signer"].public_armored),
        "--lookaside", str(world.lookaside), "--output", "json", by_digest(images[case]),
    )  # fmt: skip
    if case == "signed":
        assert proc.returncode == 0, proc.stderr
        (verified,) = json.loads(proc.stdout)["verified"]
        assert verified["fingerprint"] == world.keys["signer"].fingerprint
        critical = verified["claims"]["critical"]
        assert critical["image"]["docker-manifest-digest"] == images[case].digest
        assert critical["type"] == "atomic container signature"
    else:
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr


def test_verify_by_tag_needs_the_tag_in_the_signature(
    world: World, images: dict[str, PushedImage]
) -> None:
    """As skopeo does: a signature naming REPO@DIGEST holds for a pull by digest only."""
    image = push_image(world.registry.repo("pgp/digest-identity"), tag="v1")
    sign(world, "signer", image.ref)
    pub = str(world.keys["signer"].public)
    common = ["verify", "--pgp-key", pub, "--lookaside", str(world.lookaside)]
    assert attest_step(*common, image.ref).returncode == 0
    by_tag_proc = attest_step(*common, "--allow-insecure-registry", by_tag(image))
    assert by_tag_proc.returncode == 1
    assert "matchRepoDigestOrExact" in by_tag_proc.stderr


def test_signatures_accumulate_as_signature_n(world: World, pgp_keys: dict[str, PgpKey]) -> None:
    """A second signature (another key) is signature-2; skopeo accepts the image with it."""
    image = push_image(world.registry.repo("pgp/two"), tag="v1")
    sign(world, "other", by_tag(image) + "@" + image.digest)
    sign(world, "signer", by_tag(image) + "@" + image.digest)
    names = sorted(p.name for p in signature_dir(world, image).iterdir())
    assert names == ["signature-1", "signature-2"]
    proc = skopeo_copy(world, image.ref, world.lookaside.parent / "two-out")
    assert proc.returncode == 0, proc.stderr


# --- podman -------------------------------------------------------------------------------


class PrivatePodman(Podman):
    """tests/image's podman runner, each command with a throw-away /var/lib."""

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            with_private_var_lib([str(self.binary), *args], self.base / "var-lib"),
            env=self.env, capture_output=True, text=True, check=False, timeout=timeout,
        )  # fmt: skip


@pytest.fixture(scope="module")
def podman(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    """podman with private storage and config; registries.d from $HOME, a trust policy
    written by ``podman image trust set`` for the signer's key."""
    require_machine(os.geteuid() == 0, "root, for podman with private storage")
    runner = PrivatePodman(tmp_path_factory.mktemp("pgp-podman"))
    home = runner.base / "home"
    user_registries_d = home / ".config" / "containers" / "registries.d"
    user_registries_d.mkdir(parents=True)
    for config in world.registries_d.iterdir():
        (user_registries_d / config.name).write_bytes(config.read_bytes())
    runner.env["HOME"] = str(home)
    policy = runner.base / "policy.json"
    policy.write_text(json.dumps({"default": [{"type": "reject"}]}))
    trust = runner(
        "image", "trust", "set", "--policypath", str(policy), "--type", "signedBy",
        "--pubkeysfile", str(world.keys["signer"].public), world.registry.host,
    )  # fmt: skip
    assert trust.returncode == 0, trust.stderr
    try:
        yield runner
    finally:
        runner.cleanup()


def podman_pull(podman: Podman, source: str) -> subprocess.CompletedProcess[str]:
    policy = str(podman.base / "policy.json")
    return podman("pull", "--tls-verify=false", "--signature-policy", policy, source)


@pytest.mark.parametrize("reference", [by_digest, by_tag], ids=["by-digest", "by-tag"])
def test_podman_pull_accepts_our_signature(
    podman: Podman, images: dict[str, PushedImage], reference: Callable[[PushedImage], str]
) -> None:
    image = images["signed"]
    proc = podman_pull(podman, reference(image))
    assert proc.returncode == 0, proc.stderr
    listed = podman("image", "inspect", "--format", "{{.Digest}}", image.ref)
    assert listed.stdout.strip() == image.digest, listed.stderr


@pytest.mark.parametrize("case", REFUSED)
def test_podman_pull_refuses(podman: Podman, images: dict[str, PushedImage], case: str) -> None:
    proc = podman_pull(podman, by_digest(images[case]))
    assert proc.returncode != 0, proc.stdout
    assert "Source image rejected" in proc.stderr, proc.stderr
    assert podman("image", "exists", images[case].ref).returncode != 0


# --- keys: a mounted Secret, passphrase sources, bad input ------------------------------


def test_sign_with_a_secret_mount_and_its_passphrase_file(
    world: World, pgp_keys: dict[str, PgpKey], tmp_path: Path
) -> None:
    signer = pgp_keys["signer"]
    files = {
        "pgp.key": signer.secret_armored.read_bytes(),
        "pgp.passphrase": b"%s\n" % PASSPHRASE.encode(),  # as `echo` writes it
        "pgp.pub": signer.public_armored.read_bytes(),
    }
    mount = make_secret_mount(tmp_path / "secret", files)
    image = push_image(world.registry.repo("pgp/secret-mount"), tag="v1")
    proc = attest_step(
        "sign", "--pgp-key", str(mount), "--lookaside", str(world.lookaside), "--output",
        "json", f"{by_tag(image)}@{image.digest}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (record,) = json.loads(proc.stdout)
    assert record["fingerprint"] == signer.fingerprint
    assert record["identity"] == by_tag(image)
    assert skopeo_copy(world, by_tag(image), tmp_path / "out").returncode == 0
    # verify reads pgp.pub from the same Secret, and takes the registries.d spelling
    proc = attest_step(
        "verify", "--pgp-key", str(mount), "--lookaside", f"file://{world.lookaside}", image.ref
    )
    assert proc.returncode == 0, proc.stderr


IMAGE = "127.0.0.1:5000/app@sha256:" + "a" * 64
WRONG_PASSPHRASE = "not-the-passphrase-7a2b"


@dataclass(frozen=True)
class Bad:
    name: str
    args: Callable[[PgpKey, Path], list[str]]
    says: str
    passphrase: str | None = None
    code: int = 2


def _not_a_key(key: PgpKey, tmp: Path) -> list[str]:
    path = tmp / "notes.txt"
    path.write_text("not a key\n")
    return ["--pgp-key", str(path), "--lookaside", str(tmp / "l"), IMAGE]


def _with_key(path: Callable[[PgpKey], Path], *more: str) -> Callable[[PgpKey, Path], list[str]]:
    return lambda key, tmp: ["--pgp-key", str(path(key)), "--lookaside", str(tmp / "l"), *more]


BAD_SIGN = [
    Bad(
        "missing key",
        lambda k, t: ["--pgp-key", str(t / "no.gpg"), "--lookaside", str(t / "l"), IMAGE],
        "cannot read",
    ),
    Bad("encrypted key, no passphrase", _with_key(lambda k: k.secret, IMAGE), "no passphrase"),
    Bad(
        "wrong passphrase",
        _with_key(lambda k: k.secret, IMAGE),
        "does not unlock",
        passphrase=WRONG_PASSPHRASE,
    ),
    Bad("public key", _with_key(lambda k: k.public, IMAGE), "a public key, not a secret key"),
    Bad("not a key", _not_a_key, "not an OpenPGP key"),
    Bad("no lookaside", lambda k, t: ["--pgp-key", str(k.secret), IMAGE], "give --lookaside"),
    Bad("both keys", _with_key(lambda k: k.secret, "--key", "x", IMAGE), "not both"),
    Bad(
        "directory without pgp.key",
        lambda k, t: ["--pgp-key", str(t), "--lookaside", str(t / "l"), IMAGE],
        "no pgp.key",
    ),
    Bad(
        "bare identity",
        _with_key(lambda k: k.secret, "--sign-container-identity", "127.0.0.1:5000/app", IMAGE),
        "bare repository",
        passphrase=PASSPHRASE,
    ),
    Bad("no digest", _with_key(lambda k: k.secret, "127.0.0.1:5000/app:v1"), "has no digest"),
    Bad(
        "web lookaside",
        lambda k, t: ["--pgp-key", str(k.secret), "--lookaside", "https://sigs.example/", IMAGE],
        "file:// URL",
    ),
    Bad("annotations", _with_key(lambda k: k.secret, "-a", "k=v", IMAGE), "drop them"),
]


@pytest.mark.parametrize("row", BAD_SIGN, ids=lambda row: row.name)
def test_sign_bad_input_is_one_line_without_secrets(
    row: Bad, pgp_keys: dict[str, PgpKey], tmp_path: Path
) -> None:
    key = pgp_keys["signer"]
    env = {"ATTEST_STEP_PGP_PASSPHRASE": row.passphrase} if row.passphrase else {}
    proc = attest_step("sign", *row.args(key, tmp_path), env=env)
    shown = f"exit {proc.returncode}\nstdout: {proc.stdout!r}\nstderr: {proc.stderr!r}"
    assert proc.returncode == row.code, shown
    assert proc.stderr.startswith("attest-step: error: "), shown
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, shown
    assert row.says in proc.stderr, shown
    secrets = [PASSPHRASE, WRONG_PASSPHRASE, *key.secret_lines()]
    assert not [s for s in secrets if s in proc.stdout + proc.stderr], shown
    assert not (tmp_path / "l").exists() or not any((tmp_path / "l").rglob("signature-*"))


def test_verify_bad_public_key_is_one_line(pgp_keys: dict[str, PgpKey], tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a key\n")
    proc = attest_step("verify", "--pgp-key", str(notes), "--lookaside", str(tmp_path), IMAGE)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "no OpenPGP public key" in proc.stderr
