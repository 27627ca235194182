"""The step image: reproducible, locked, minimal, and working under podman and runc.

Each test runs the image as a user's Tekton step would: non-root 65532, read-only root
filesystem, temp on a tmpfs, workspaces and the signing Secret mounted.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tarfile
from pathlib import Path
from typing import Any

from tests.fixtures.keys import KeyPair, make_secret_mount
from tests.fixtures.registry import LocalRegistry
from tests.fixtures.tools import REPO_ROOT, cosign_v3
from tests.image.conftest import BuiltImage, Podman, build_image

LOCK = REPO_ROOT / "images" / "attest-step" / "image.lock.json"
# A step's view: non-root, read-only root, temp on a tmpfs, no network unless asked.
STEP = ["--read-only", "--tmpfs", "/tmp:rw,mode=1777", "--user", "65532:65532"]


def _blob(image: BuiltImage, digest: str) -> bytes:
    algorithm, hexdigest = digest.split(":", 1)
    return (image.layout / "blobs" / algorithm / hexdigest).read_bytes()


def _manifest(image: BuiltImage) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads(_blob(image, image.digest))
    return manifest


def _config(image: BuiltImage) -> dict[str, Any]:
    config: dict[str, Any] = json.loads(_blob(image, _manifest(image)["config"]["digest"]))
    return config


def _layer_names(image: BuiltImage) -> set[str]:
    (layer,) = _manifest(image)["layers"]
    algorithm, hexdigest = layer["digest"].split(":", 1)
    with tarfile.open(image.layout / "blobs" / algorithm / hexdigest) as tar:
        return {m.name.removeprefix("./") for m in tar}


def _readable(*paths: Path) -> None:
    for path in paths:
        path.chmod(0o755)


def test_two_builds_from_one_lock_give_one_digest(built_image: BuiltImage, tmp_path: Path) -> None:
    again = build_image(tmp_path / "again")
    assert again.returncode == 0, again.stderr
    second = json.loads((tmp_path / "again" / "build.json").read_text())
    print(f"image digest: {built_image.digest} (built twice)")
    assert second["digest"] == built_image.digest
    assert (tmp_path / "again" / "sbom.spdx.json").read_bytes() == (
        built_image.out / "sbom.spdx.json"
    ).read_bytes()


def test_a_lock_the_mirror_no_longer_serves_fails_and_says_how_to_refresh(
    image_tools: None, tmp_path: Path
) -> None:
    lock = json.loads(LOCK.read_text())
    lock["debian"]["dash"] = "0.5.12-0~not-served"
    stale = tmp_path / "image.lock.json"
    stale.write_text(json.dumps(lock))
    proc = build_image(tmp_path / "out", "--lock", str(stale))
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "make image-lock" in lines[0] and "dash" in lines[0]


def test_a_changed_source_is_not_built_as_the_locked_release(
    image_tools: None, tmp_path: Path
) -> None:
    lock = json.loads(LOCK.read_text())
    lock["attestStepWheel"] = "0" * 64
    other = tmp_path / "image.lock.json"
    other.write_text(json.dumps(lock))
    proc = subprocess.run(
        [".venv/bin/python", "hack/image/build.py", "build", "--lock", str(other),
         "--out", str(tmp_path / "out")],
        cwd=REPO_ROOT, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "make image-lock" in proc.stderr and "source changed" in proc.stderr


def test_image_config_is_non_root_with_attest_step_entrypoint(built_image: BuiltImage) -> None:
    config = _config(built_image)
    lock = json.loads(LOCK.read_text())
    assert config["config"]["User"] == "65532:65532"
    assert config["config"]["Entrypoint"] == ["/usr/local/bin/attest-step"]
    assert "history" not in config or not config["history"]
    assert len(_manifest(built_image)["layers"]) == 1
    assert config["created"].startswith("20")
    assert int(lock["epoch"]) > 0


def test_image_has_no_package_manager_compiler_or_pip(built_image: BuiltImage) -> None:
    names = _layer_names(built_image)
    forbidden = re.compile(
        r"^usr/(s?bin|local/bin)/(apt|apt-get|dpkg|dpkg-deb|pip|pip3|gcc|cc|c\+\+|make|"
        r"easy_install)$|dist-packages/(pip|setuptools)/__init__\.py$"
    )
    assert sorted(n for n in names if forbidden.search(n)) == []
    assert "var/lib/dpkg/status" in names
    assert "usr/share/attest-step/sbom.spdx.json" in names
    assert "bin/sh" in names or "usr/bin/sh" in names, "Tekton script steps need /bin/sh"


def test_sbom_is_spdx_23_and_lists_every_package(built_image: BuiltImage) -> None:
    sbom = json.loads((built_image.out / "sbom.spdx.json").read_text())
    lock = json.loads(LOCK.read_text())
    assert sbom["spdxVersion"] == "SPDX-2.3"
    assert sbom["SPDXID"] == "SPDXRef-DOCUMENT"
    assert sbom["dataLicense"] == "CC0-1.0"
    assert sbom["documentNamespace"].startswith("https://")
    purls = {ref["referenceLocator"] for p in sbom["packages"] for ref in p["externalRefs"]}
    for name, version in lock["debian"].items():
        assert f"pkg:deb/debian/{name}@{version}?arch=amd64&distro=debian-12" in purls
    assert any(p.startswith("pkg:pypi/attest-step@") for p in purls)
    for wheel in lock["wheels"]:
        name = re.sub(r"[-_.]+", "-", wheel["filename"].split("-")[0]).lower()
        assert any(p.startswith(f"pkg:pypi/{name}@") for p in purls), name
    ids = {p["SPDXID"] for p in sbom["packages"]}
    assert len(ids) == len(sbom["packages"])
    described = {r["relatedSpdxElement"] for r in sbom["relationships"]}
    assert described == ids


def test_podman_help_and_version(podman: Podman) -> None:
    proc = podman.run(*STEP, "--network", "none", podman.image_id, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "verify-attestation" in proc.stdout


def test_podman_hash_of_a_mounted_workspace(podman: Podman, tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    (workspace / "out").mkdir(parents=True)
    (workspace / "out" / "hello.txt").write_text("hello\n")
    _readable(workspace, workspace / "out")
    proc = podman.run(
        *STEP, "--network", "none", "-v", f"{workspace}:/workspace:ro",
        podman.image_id, "hash", "/workspace/out", "--output", "json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    subjects = json.loads(proc.stdout)
    assert subjects == [
        {
            "name": "hello.txt",
            "digest": {
                "sha256": "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
            },
        }
    ]


def test_podman_attest_with_a_read_only_secret_then_verify(
    podman: Podman, tmp_path: Path, real_cosign_key_pair: KeyPair
) -> None:
    secret = make_secret_mount(
        tmp_path / "signing-secrets",
        {
            "cosign.key": real_cosign_key_pair.key.read_bytes(),
            "cosign.password": real_cosign_key_pair.password.encode(),
            "cosign.pub": real_cosign_key_pair.pub.read_bytes(),
        },
    )
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (workspace / "app.txt").write_text("app\n")
    workspace.chmod(0o777)
    for path in (secret, *secret.iterdir()):
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)
    attest = podman.run(
        *STEP, "--network", "none",
        "-v", f"{secret}:/etc/signing-secrets:ro", "-v", f"{workspace}:/workspace",
        podman.image_id, "attest", "--key", "/etc/signing-secrets",
        "--subject-path", "/workspace/app.txt", "--output-file", "/workspace/app.dsse.json",
    )  # fmt: skip
    assert attest.returncode == 0, attest.stderr
    verify = podman.run(
        *STEP, "--network", "none",
        "-v", f"{secret}:/etc/signing-secrets:ro", "-v", f"{workspace}:/workspace:ro",
        podman.image_id, "verify-attestation", "--key", "/etc/signing-secrets/cosign.pub",
        "--type", "slsaprovenance1", "--envelope", "/workspace/app.dsse.json",
        "--subject-path", "/workspace/app.txt",
    )  # fmt: skip
    assert verify.returncode == 0, verify.stderr
    cosign = subprocess.run(
        [str(cosign_v3()), "verify-blob-attestation", "--key", str(real_cosign_key_pair.pub),
         "--signature", str(workspace / "app.dsse.json"), "--type", "slsaprovenance1",
         "--insecure-ignore-tlog", str(workspace / "app.txt")],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert cosign.returncode == 0, cosign.stderr


def test_podman_run_network_none_inside_the_container_needs_no_capability(
    podman: Podman,
) -> None:
    """`attest-step run --network none` in a container with every capability dropped."""
    connect = "import socket; socket.create_connection(('10.0.2.2', 9), 2)"
    script = f'cat /proc/net/dev; exec python3 -c "{connect}"'
    proc = podman.run(
        *STEP, "--cap-drop=all", "--security-opt", "no-new-privileges",
        podman.image_id, "run", "--network", "none", "--", "/bin/sh", "-c", script,
    )  # fmt: skip
    assert proc.returncode != 0
    interfaces = [
        line.split(":")[0].strip() for line in proc.stdout.splitlines()[2:] if ":" in line
    ]
    assert interfaces == ["lo"], proc.stdout
    assert "Network is unreachable" in proc.stderr or "ENETUNREACH" in proc.stderr, proc.stderr


def _runc_bundle(
    image: BuiltImage, bundle: Path, args: list[str], mounts: list[dict[str, Any]]
) -> None:
    subprocess.run(
        ["umoci", "unpack", "--image", f"{image.layout}:{image.tag}", str(bundle)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    config = json.loads((bundle / "config.json").read_text())
    process = config["process"]
    process["terminal"] = False
    process["args"] = args
    process["user"] = {"uid": 65532, "gid": 65532}
    process["noNewPrivileges"] = True
    for kind in ("bounding", "effective", "inheritable", "permitted", "ambient"):
        process.setdefault("capabilities", {})[kind] = []
    config["root"]["readonly"] = True
    config["mounts"] = [
        *config["mounts"],
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "nodev", "mode=1777"]},
        *mounts,
    ]  # fmt: skip
    namespaces = config["linux"]["namespaces"]
    if not any(n["type"] == "network" for n in namespaces):
        namespaces.append({"type": "network"})
    (bundle / "config.json").write_text(json.dumps(config))


def _runc(bundle: Path, name: str) -> subprocess.CompletedProcess[str]:
    root = bundle.parent / "runc-state"
    try:
        return subprocess.run(
            ["runc", "--root", str(root), "run", "--bundle", str(bundle), name],
            capture_output=True, text=True, check=False, timeout=120,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
    finally:
        subprocess.run(
            ["runc", "--root", str(root), "delete", "--force", name],
            capture_output=True, check=False,
        )  # fmt: skip


def test_runc_hash_and_run_network_none(built_image: BuiltImage, tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (workspace / "hello.txt").write_text("hello\n")
    _readable(workspace)
    bundle = tmp_path / "bundle"
    mount = {"destination": "/workspace", "type": "bind", "source": str(workspace),
             "options": ["rbind", "ro"]}  # fmt: skip
    name = f"attest-step-test-{os.getpid()}"
    hash_args = ["/usr/local/bin/attest-step", "hash", "/workspace", "--output", "json"]
    _runc_bundle(built_image, bundle, hash_args, [mount])
    proc = _runc(bundle, name)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["name"] == "hello.txt"
    bundle2 = tmp_path / "bundle2"
    run_args = ["/usr/local/bin/attest-step", "run", "--network", "none", "--"]
    _runc_bundle(built_image, bundle2, [*run_args, "/bin/cat", "/proc/net/dev"], [])
    proc = _runc(bundle2, name + "-run")
    assert proc.returncode == 0, proc.stderr
    assert [line.split(":")[0].strip() for line in proc.stdout.splitlines()[2:]] == ["lo"]


def test_release_publish_is_verified_by_real_cosign(
    built_image: BuiltImage, registry: LocalRegistry, real_cosign_key_pair: KeyPair
) -> None:
    repository = registry.repo("attest-step")
    env = {**real_cosign_key_pair.env(), "ATTEST_IMAGE_BUILD": str(built_image.out)}
    proc = subprocess.run(
        ["hack/release.sh", "publish", repository, "--key", str(real_cosign_key_pair.key),
         "--allow-insecure-registry"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    ref = f"{repository}@{built_image.digest}"
    cosign = str(cosign_v3())
    common = ["--key", str(real_cosign_key_pair.pub), "--insecure-ignore-tlog",
              "--allow-insecure-registry"]  # fmt: skip
    verified = subprocess.run(
        [cosign, "verify", *common, ref], capture_output=True, text=True, check=False, timeout=120
    )
    assert verified.returncode == 0, verified.stderr
    attested = subprocess.run(
        [cosign, "verify-attestation", *common, "--type", "slsaprovenance1", ref],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert attested.returncode == 0, attested.stderr
    import base64  # noqa: PLC0415

    envelope = json.loads(attested.stdout.strip().splitlines()[0])
    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert statement["subject"][0]["digest"]["sha256"] == built_image.digest.split(":")[1]
    deps = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    uris = {d["uri"] for d in deps}
    assert any(u.startswith("pkg:deb/debian/python3.11-minimal@") for u in uris)
    assert any(u.startswith("pkg:pypi/cryptography@") for u in uris)
    assert any(u.startswith("pkg:pypi/attest-step@") for u in uris)
    assert all(len(d["digest"]["sha256"]) == 64 for d in deps)


def test_release_pin_rewrites_every_catalog_reference(tmp_path: Path) -> None:
    """`hack/release.sh pin` on a copy of the repository's catalog and lock."""
    copy = tmp_path / "repo"
    (copy / "hack").mkdir(parents=True)
    (copy / "images" / "attest-step").mkdir(parents=True)
    subprocess.run(["cp", "-r", str(REPO_ROOT / "catalog"), str(copy)], check=True)
    subprocess.run(["cp", str(REPO_ROOT / "hack" / "release.sh"), str(copy / "hack")], check=True)
    subprocess.run(["cp", str(REPO_ROOT / "pyproject.toml"), str(copy)], check=True)
    lock = json.loads(LOCK.read_text())
    lock["imageDigest"] = "sha256:" + "ab" * 32
    (copy / "images" / "attest-step" / "image.lock.json").write_text(json.dumps(lock))
    proc = subprocess.run(
        ["bash", "hack/release.sh", "pin"], cwd=copy, capture_output=True, text=True, check=False,
        env={**os.environ, "PYTHON": str(REPO_ROOT / ".venv" / "bin" / "python")},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    refs = set()
    for path in (copy / "catalog").rglob("*.yaml"):
        refs |= set(re.findall(r"ghcr\.io/attest-step/attest-step:[^\s\"']+", path.read_text()))
    assert refs == {f"ghcr.io/attest-step/attest-step:0.1.0@sha256:{'ab' * 32}"}
