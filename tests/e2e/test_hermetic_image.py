"""The catalog's hermetic-image Task, locally, end to end: its own tests/run.yaml (a base
image pushed to the real registry, the Task's prefetch, isolated build and assemble, push,
sign and attest), then what a user checks with the image in the registry:

- real ``cosign verify`` and ``cosign verify-attestation --type slsaprovenance1`` (pinned
  cosign v3) accept it, and fail with another key pair;
- the provenance (read back with ``attest-step verify-attestation --require-hermetic``) has
  the image as its only subject, records ``build`` and ``assemble`` as hermetic with
  *observed* evidence, names the base image as pinned (an index digest, with BASE_PLATFORM)
  and the platform's image used, and every Task param;
- the image is the base plus one layer holding exactly the build's output, and building
  the same source again gives the same image digest (the assemble step is reproducible);
- with ``RUN_ISOLATED`` "false" the same Task pushes an image whose provenance does not
  claim a hermetic build, and ``--require-hermetic`` refuses it.
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from attest_step.oci.layout_store import LayoutStore
from tests.e2e.executor import RunOutcome, runs_in
from tests.e2e.executor.catalog import CATALOG, catalog_test_files, executor_for, use_signing_keys
from tests.e2e.test_catalog import make_keys
from tests.e2e.test_executor import built  # noqa: F401  (fixture)
from tests.fixtures.registry import LocalRegistry
from tests.fixtures.tools import cosign_v3

pytestmark = [pytest.mark.e2e, pytest.mark.netns, pytest.mark.registry, pytest.mark.slow]

TESTS = CATALOG / "task" / "hermetic-image" / "0.1" / "tests"
ATTEST_STEP = str(Path(sys.executable).parent / "attest-step")
INSECURE = "--allow-insecure-registry"


def run_pipeline(
    tmp_path: Path, registry: LocalRegistry, keys: Path, *, run_isolated: str = "true"
) -> RunOutcome:
    ex = executor_for(TESTS, tmp_path, registry=registry.host)
    use_signing_keys(ex, keys, b"e2e-password")
    (run,) = runs_in(catalog_test_files(TESTS))
    if run_isolated != "true":
        build = next(t for t in run["spec"]["pipelineSpec"]["tasks"] if t["name"] == "build")
        build["params"].append({"name": "RUN_ISOLATED", "value": run_isolated})
        # The run's own verify task requires a hermetic build: leave it out here.
        tasks = run["spec"]["pipelineSpec"]["tasks"]
        run["spec"]["pipelineSpec"]["tasks"] = [t for t in tasks if t["name"] != "verify"]
    outcome = ex.run(run)
    if not outcome.succeeded:
        tail = "\n".join(f"--- {k}\n{v[-1500:]}" for k, v in outcome.logs.items() if v.strip())
        raise AssertionError(f"{outcome.reason}: {outcome.message}\n{tail}")
    return outcome


def pushed(outcome: RunOutcome) -> tuple[str, str]:
    """(IMAGE_URL, REPOSITORY@sha256:HEX) of the hermetic-image TaskRun."""
    url = str(outcome.result("IMAGE_URL", "build"))
    digest = str(outcome.result("IMAGE_DIGEST", "build"))
    return url, f"{url.rsplit(':', 1)[0]}@{digest}"


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=120)


def provenance(
    image: str, pub: Path, *, require_hermetic: bool
) -> subprocess.CompletedProcess[str]:
    argv = [ATTEST_STEP, "verify-attestation", "--key", str(pub), "--type", "slsaprovenance1"]
    argv += [INSECURE, "--output", "json", image]
    if require_hermetic:
        argv.insert(2, "--require-hermetic")
    return run(*argv)


def isolation(statement: dict[str, Any], step: str) -> tuple[dict[str, Any], dict[str, Any]]:
    (byproduct,) = [
        b
        for b in statement["predicate"]["runDetails"]["byproducts"]
        if b["name"] == f"attest-step/network-isolation/{step}"
    ]
    return byproduct["annotations"], json.loads(base64.b64decode(byproduct["content"]))


def test_the_task_pushes_a_signed_hermetic_reproducible_image(
    built: None,  # noqa: F811
    tmp_path: Path,
    registry: LocalRegistry,
) -> None:
    cosign = cosign_v3()
    keys = make_keys(cosign, tmp_path / "keys", "e2e-password")
    pub = keys / "cosign.pub"
    outcome = run_pipeline(tmp_path / "run1", registry, keys)
    url, image = pushed(outcome)
    base = str(outcome.result("BASE_IMAGE", "make-base"))
    base_manifest = str(outcome.result("BASE_MANIFEST", "make-base"))

    # What a user runs, with real cosign.
    insecure = ["--insecure-ignore-tlog", INSECURE]
    for verb in (["verify"], ["verify-attestation", "--type", "slsaprovenance1"]):
        proc = run(str(cosign), *verb, "--key", str(pub), *insecure, image)
        assert proc.returncode == 0, f"cosign {verb[0]}: {proc.stdout}{proc.stderr}"
    other = make_keys(cosign, tmp_path / "other", "other")
    proc = run(str(cosign), "verify", "--key", str(other / "cosign.pub"), *insecure, image)
    assert proc.returncode != 0

    # The provenance: the image, built and assembled without network, observed.
    proc = provenance(image, pub, require_hermetic=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    statement = json.loads(proc.stdout)["statement"]
    assert [s["digest"]["sha256"] for s in statement["subject"]] == [image.rsplit(":", 1)[1]]
    for step in ("build", "assemble"):
        annotations, record = isolation(statement, step)
        assert annotations["hermetic"] is True and annotations["declared"] is True, step
        assert "observed" in annotations["sources"], (step, annotations)
        assert record["contradictions"] == [], (step, record)
    build = statement["predicate"]["buildDefinition"]
    params = build["externalParameters"]["params"]
    assert params["IMAGE"] == url and params["BASE_IMAGE"] == base
    assert params["RUN_ISOLATED"] == "true"
    assert params["BASE_PLATFORM"] == "linux/amd64"
    declared = {p["name"] for p in yaml_task()["spec"]["params"]}
    assert declared <= set(params), declared - set(params)
    name, _, base_digest = base.partition("@")
    # The base as pinned (its index) and the linux/amd64 image the index lists, used.
    deps = [d["digest"] for d in build["resolvedDependencies"]]
    base_deps = [
        d["digest"]["sha256"]
        for d in build["resolvedDependencies"]
        if d.get("uri") == f"oci://{name.rsplit(':', 1)[0]}"
    ]
    assert base_deps == [base_digest.split(":")[1], base_manifest.split(":")[1]], deps

    # The image: the base plus one layer with exactly the build's output.
    layout = tmp_path / "pulled"
    proc = run(ATTEST_STEP, "copy", "--to-oci-layout", image, f"{layout}:x", INSECURE)
    assert proc.returncode == 0, proc.stderr
    store = LayoutStore(layout)
    found = store.get_manifest("x")
    assert found is not None
    manifest = found.json()
    assert manifest["annotations"]["org.opencontainers.image.base.digest"] == base_manifest
    assert manifest["annotations"]["org.opencontainers.image.base.name"] == base
    with tarfile.open(fileobj=io.BytesIO(store.get_blob(manifest["layers"][-1]["digest"]))) as tar:
        names = tar.getnames()
        app = tar.extractfile("share/app/app.txt")
        assert app is not None
        content = app.read().decode()
    assert names == ["share", "share/app", "share/app/app.txt"]
    assert "a dependency fetched before the network goes away" in content
    assert "built from hello from the attest-step catalog test" in content

    # The same source again: the same image.
    again = run_pipeline(tmp_path / "run2", registry, keys)
    assert pushed(again)[1] == image


def test_without_isolation_the_image_is_not_attested_hermetic(
    built: None,  # noqa: F811
    tmp_path: Path,
    registry: LocalRegistry,
) -> None:
    cosign = cosign_v3()
    keys = make_keys(cosign, tmp_path / "keys", "e2e-password")
    outcome = run_pipeline(tmp_path / "run", registry, keys, run_isolated="false")
    _, image = pushed(outcome)
    proc = provenance(image, keys / "cosign.pub", require_hermetic=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    statement = json.loads(proc.stdout)["statement"]
    params = statement["predicate"]["buildDefinition"]["externalParameters"]["params"]
    assert params["RUN_ISOLATED"] == "false"
    names = {b["name"] for b in statement["predicate"]["runDetails"]["byproducts"]}
    assert "attest-step/network-isolation/build" not in names or (
        isolation(statement, "build")[0]["hermetic"] is False
    )
    proc = provenance(image, keys / "cosign.pub", require_hermetic=True)
    assert proc.returncode != 0


def yaml_task() -> dict[str, Any]:
    import yaml  # noqa: PLC0415

    path = CATALOG / "task" / "hermetic-image" / "0.1" / "hermetic-image.yaml"
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    return doc
