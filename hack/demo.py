"""`make demo`: the catalog's pipelines, locally, signed, attested and verified.

Sets up what it needs (a fresh key pair from `attest-step generate-key-pair`, a local
registry from Debian's docker-registry on a free 127.0.0.1 port), then runs two catalog test
PipelineRuns through the local executor (tests/e2e/executor: Tekton's own code decides,
steps run as local processes):

1. catalog/pipeline/hermetic-build: the build step runs without network; the attestation is
   a DSSE file in the workspace. Verified with `attest-step verify-attestation
   --require-hermetic` and with real cosign `verify-blob-attestation`.
2. catalog/pipeline/kaniko-chains (kaniko replaced by the local stand-in): the image, its
   signature and attestation go to the registry. Verified with `attest-step verify`,
   `attest-step verify-attestation`, `cosign verify` and `cosign verify-attestation`.

Prints a short summary (what was built, digests from the verified statements, the isolation
record, where signature and attestation are, the cosign commands); the full log is
demo-out/run.log. Exits 1 when a run or any verification fails.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e.executor import RunOutcome, runs_in  # noqa: E402
from tests.e2e.executor.catalog import catalog_test_files, executor_for  # noqa: E402
from tests.fixtures.registry import LocalRegistry  # noqa: E402

DEFAULT_OUT = REPO / "demo-out"
HERMETIC_TESTS = REPO / "catalog" / "pipeline" / "hermetic-build" / "0.1" / "tests"
KANIKO_TESTS = REPO / "catalog" / "pipeline" / "kaniko-chains" / "0.1" / "tests"
PASSWORD = "demo-password"
ISOLATION_PREFIX = "attest-step/network-isolation/"
BIN = Path(sys.executable).parent
TOOLS = REPO / ".tools" / "bin"


def rel(path: Path) -> str:
    """A path as the user can type it from the repository root."""
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


def show(argv: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)


@dataclass
class Demo:
    log: TextIO
    out: Path
    keys: Path
    env: dict[str, str]
    cosign: Path | None
    lines: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def pub(self) -> Path:
        return self.keys / "cosign.pub"

    def say(self, line: str) -> None:
        self.lines.append(line)
        print(line, file=self.log)
        self.log.flush()

    def check(self, what: str, argv: list[str], *, cwd: Path | None = None) -> str | None:
        """Run one verification; its output goes to the log. None when it failed."""
        print(f"$ {show(argv)}", file=self.log)
        self.log.flush()
        proc = subprocess.run(
            argv, cwd=cwd, env=self.env, capture_output=True, text=True, check=False
        )
        print(proc.stdout + proc.stderr, file=self.log)
        print(f"(exit {proc.returncode})", file=self.log)
        if proc.returncode != 0:
            last = (proc.stderr or proc.stdout).strip().splitlines()
            self.failures.append(f"{what}: exit {proc.returncode}: {last[-1] if last else ''}")
            return None
        return proc.stdout

    def run_tests(self, test_dir: Path, workdir: Path, registry: str | None) -> RunOutcome:
        ex = executor_for(test_dir, workdir, registry=registry)
        pub = self.pub.read_bytes()
        ex.add_secret(
            "signing-secrets",
            {
                "cosign.key": (self.keys / "cosign.key").read_bytes(),
                "cosign.pub": pub,
                "cosign.password": PASSWORD.encode(),
            },
        )
        ex.cluster.configmaps["signing-public-key"] = {"cosign.pub": pub}
        ex.log = lambda line: print(line, file=self.log)
        (run,) = runs_in(catalog_test_files(test_dir))
        outcome = ex.run(run)
        tasks = ", ".join(
            f"{tr['metadata'].get('labels', {}).get('tekton.dev/pipelineTask', '?')}"
            f"{'' if _succeeded(tr) else ' FAILED'}"
            for tr in outcome.taskruns
        )
        state = "Succeeded" if outcome.succeeded else f"FAILED ({outcome.reason})"
        self.say(f"{outcome.kind} {outcome.name}: {state}  [{tasks}]")
        if not outcome.succeeded:
            self.failures.append(f"{outcome.kind} {outcome.name}: {outcome.message}")
        return outcome

    # -- 1. hermetic-build ---------------------------------------------------------------
    def hermetic(self) -> None:
        self.say("")
        self.say("1. hermetic-build pipeline (catalog/pipeline/hermetic-build/0.1/tests)")
        outcome = self.run_tests(HERMETIC_TESTS, self.out / "hermetic", None)
        found = sorted(
            (self.out / "hermetic" / "cluster" / "pvc").glob("*/.attest/provenance.dsse.json")
        )
        if not outcome.succeeded or not found:
            self.failures.append("hermetic-build: no attestation was written")
            return
        # The workspace (a PVC directory of the local executor), under a short name.
        source = self.out / "hermetic-workspace"
        source.symlink_to(found[0].parents[1].relative_to(self.out))
        envelope = source / ".attest" / "provenance.dsse.json"
        out = self.check(
            "attest-step verify-attestation --require-hermetic",
            [
                str(BIN / "attest-step"),
                "verify-attestation",
                "--key",
                str(self.pub),
                "--type",
                "slsaprovenance1",
                "--envelope",
                str(envelope),
                "--subject-path",
                "out",
                "--require-hermetic",
                "--output",
                "json",
            ],
            cwd=source,
        )
        statement = json.loads(out)["statement"] if out else None
        if statement is None:
            return
        self.params(statement)
        files = []
        for subject in statement["subject"]:
            self.say(f"   built: out/{subject['name']}  sha256:{subject['digest']['sha256']}")
            files.append(source / "out" / subject["name"])
        self.isolation(statement)
        self.say(f"   attestation (DSSE file in the workspace): {rel(envelope)}")
        verified = ["attest-step verify-attestation --require-hermetic: OK"]
        for path in files:
            argv = [
                "cosign",
                "verify-blob-attestation",
                "--key",
                rel(self.pub),
                "--signature",
                rel(envelope),
                "--type",
                "slsaprovenance1",
                "--insecure-ignore-tlog",
                rel(path),
            ]
            verified.append(self.cosign_check(argv))
            self.say(f"   $ {show(argv)}")
        self.say(f"   verified: {'; '.join(verified)}")

    def params(self, statement: dict[str, Any]) -> None:
        build = statement["predicate"]["buildDefinition"]
        params = build["externalParameters"].get("params") or {}
        task = build["externalParameters"].get("task", {}).get("name", "?")
        self.say(
            f"   provenance: task {task}, {len(params)} params recorded "
            f"({', '.join(sorted(params)[:4])}, …), "
            f"resolved dependencies: {len(build.get('resolvedDependencies') or [])}"
        )

    def isolation(self, statement: dict[str, Any]) -> None:
        records = [
            b
            for b in statement["predicate"]["runDetails"].get("byproducts") or []
            if str(b.get("name", "")).startswith(ISOLATION_PREFIX)
        ]
        if not records:
            self.say("   isolation: no network-isolation record in the provenance")
            return
        for byproduct in records:
            record = json.loads(base64.b64decode(byproduct["content"]))
            sources: dict[str, list[str]] = {}
            for claim in record.get("claims") or []:
                how = claim.get("basis") or claim.get("by") or ""
                if claim.get("origin"):
                    how = f"{how}, {claim['origin']}"
                sources.setdefault(claim["source"], []).append(how)
            self.say(
                f"   isolation of step {record['step']!r} "
                f"(provenance byproduct {byproduct['name']}): "
                f"hermetic {'yes' if record.get('hermetic') else 'NO'}"
                + (
                    f", contradictions: {record['contradictions']}"
                    if record.get("contradictions")
                    else ""
                )
            )
            for source in ("declared", "observed", "reported"):
                said = "; ".join(sources.get(source, [])) or "none"
                note = ""
                if source == "reported" and source in sources:
                    note = " (evidence REPORTED by the build step itself, not checked from outside)"
                self.say(f"     {source}: {said}{note}")

    # -- 2. kaniko-chains ----------------------------------------------------------------
    def kaniko(self, registry: LocalRegistry) -> None:
        self.say("")
        self.say(
            f"2. kaniko-chains pipeline (catalog/pipeline/kaniko-chains/0.1/tests; kaniko is the "
            f"local stand-in), registry {registry.host}"
        )
        outcome = self.run_tests(KANIKO_TESTS, self.out / "kaniko", registry.host)
        try:
            url, digest = str(outcome.result("IMAGE_URL")), str(outcome.result("IMAGE_DIGEST"))
        except KeyError:
            self.failures.append("kaniko-chains: no IMAGE_URL/IMAGE_DIGEST result")
            return
        repository = url.rsplit("@", 1)[0]
        if ":" in repository.rsplit("/", 1)[-1]:
            repository = repository.rsplit(":", 1)[0]
        image = f"{repository}@{digest}"
        insecure = ["--allow-insecure-registry"]
        attest_step = str(BIN / "attest-step")
        ok = self.check(
            "attest-step verify", [attest_step, "verify", "--key", str(self.pub), *insecure, image]
        )
        out = self.check(
            "attest-step verify-attestation",
            [
                attest_step,
                "verify-attestation",
                "--key",
                str(self.pub),
                "--type",
                "slsaprovenance1",
                *insecure,
                "--output",
                "json",
                image,
            ],
        )
        statement = json.loads(out)["statement"] if out else None
        subjects = [s["digest"]["sha256"] for s in statement["subject"]] if statement else []
        self.say(f"   built: image {url}")
        if statement:
            self.say(f"   digest: sha256:{subjects[0]} (subject of the verified attestation)")
            self.params(statement)
        if digest.removeprefix("sha256:") not in subjects:
            self.failures.append(f"kaniko-chains: IMAGE_DIGEST {digest} is not a subject")
        stored = ", ".join(self.tags(registry, repository, digest))
        self.say(f"   signature and attestation in {repository}, tags: {stored}")
        verified = [
            f"attest-step verify: {'OK' if ok is not None else 'FAILED'}",
            f"attest-step verify-attestation: {'OK' if out else 'FAILED'}",
        ]
        for argv in (
            [
                "cosign",
                "verify",
                "--key",
                rel(self.pub),
                "--insecure-ignore-tlog",
                *insecure,
                image,
            ],
            [
                "cosign",
                "verify-attestation",
                "--key",
                rel(self.pub),
                "--type",
                "slsaprovenance1",
                "--insecure-ignore-tlog",
                *insecure,
                image,
            ],
        ):
            verified.append(self.cosign_check(argv))
            self.say(f"   $ {show(argv)}")
        self.say(f"   verified: {'; '.join(verified)}")

    def tags(self, registry: LocalRegistry, repository: str, digest: str) -> list[str]:
        name = repository.split("/", 1)[1]
        with urllib.request.urlopen(f"{registry.url}/v2/{name}/tags/list", timeout=10) as resp:
            tags: list[str] = json.load(resp).get("tags") or []
        prefix = digest.replace(":", "-")
        meaning = {".sig": "signature", ".att": "attestation", "": "referrers index (bundles)"}
        shown = []
        for tag in sorted(t for t in tags if t.startswith(prefix)):
            suffix = tag[len(prefix) :]
            shown.append(f"{prefix[:13]}…{suffix} = {meaning.get(suffix, '?')}")
        return shown or ["none found"]

    def cosign_check(self, argv: list[str]) -> str:
        what = " ".join(argv[:2])
        if self.cosign is None:
            return f"{what}: not run (no .tools/bin/cosign; `make tools` installs it)"
        ok = self.check(what, [str(self.cosign), *argv[1:]], cwd=REPO)
        return f"{what}: {'OK' if ok is not None else 'FAILED'}"


def _succeeded(taskrun: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Succeeded" and c.get("status") == "True"
        for c in taskrun.get("status", {}).get("conditions") or []
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="output directory (emptied first)"
    )
    out: Path = parser.parse_args(argv).out.resolve()
    start = time.monotonic()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    path = os.pathsep.join([str(TOOLS), str(BIN), os.environ.get("PATH", "")])
    os.environ["PATH"] = path  # the executor's steps and this script find attest-step, cosign
    env = {**os.environ, "COSIGN_PASSWORD": PASSWORD}
    keys = out / "keys"
    keys.mkdir()
    subprocess.run(
        [
            str(BIN / "attest-step"),
            "generate-key-pair",
            "--output-key-prefix",
            str(keys / "cosign"),
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    cosign = TOOLS / "cosign"
    logs = out / "run.log"
    registry: LocalRegistry | None = None
    with logs.open("w") as log:
        demo = Demo(log, out, keys, env, cosign if cosign.exists() else None)
        demo.say(
            f"keys: {rel(keys)}/cosign.key (password {PASSWORD!r}), {rel(demo.pub)}  "
            "(fresh, attest-step generate-key-pair)"
        )
        demo.hermetic()
        binary = shutil.which("docker-registry")
        if binary is None:
            demo.say("")
            demo.say(
                "2. kaniko-chains pipeline: SKIPPED, docker-registry is not installed "
                "(apt-get install docker-registry); its catalog test pushes to a registry"
            )
        else:
            registry = LocalRegistry(Path(binary), out / "registry")
            registry.start()
            try:
                demo.kaniko(registry)
            finally:
                registry.stop()
            demo.say(
                f"   (the registry is stopped; to rerun the commands: "
                f"docker-registry serve {rel(registry.config)})"
            )
        demo.say("")
        for failure in demo.failures:
            demo.say(f"FAILED: {failure}")
        demo.say(f"full log: {rel(logs)}   time: {time.monotonic() - start:.1f}s")
    print("\n".join(demo.lines))
    return 1 if demo.failures else 0


if __name__ == "__main__":
    sys.exit(main())
