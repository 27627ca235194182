"""Every verb against a table of bad inputs: the exit-status contract (issue 11, section 4).

0 ok, 1 a verification failed (or a registry or KMS refused), 2 bad usage or bad input,
70 only for attest-step's own bugs. Each row runs the real console script in its own
process, with a deadline (a FIFO must not make it hang), and asserts its exit status, exactly
one line on stderr saying what was wrong, no traceback, and no password or key material in
either stream.

Adding a row: append a :class:`BadInput` to ``BAD_INPUTS`` (or build a list of them and add
it there). ``args`` and ``env`` are functions of a :class:`Case`, which makes the row's files
in its own directory and gives the test keys; a row that needs a fixture (``registry``, for
rows about a hostile registry) names it in ``fixtures`` and reads it with ``case.fixture``.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from attest_step.cli.group import COMMANDS
from tests.fixtures.keys import KeyPair, PemKey, make_secret_mount
from tests.fixtures.tools import require_machine

DIGEST = "sha256:" + "a" * 64
IMAGE = f"127.0.0.1:5000/app@{DIGEST}"
WRONG_PASSWORD = "not-the-password-8c1f"  # a test value that must never be printed


class Case:
    """One row's world: a directory of its own, the test keys, and the files rows ask for."""

    def __init__(self, tmp: Path, request: pytest.FixtureRequest) -> None:
        self.tmp = tmp
        self._request = request
        self.cosign: KeyPair = request.getfixturevalue("cosign_key_pair")
        self.pem: PemKey = request.getfixturevalue("pem_keys")["ecdsa-p256"]
        self.other_pem: PemKey = request.getfixturevalue("pem_keys")["ed25519"]

    def fixture(self, name: str) -> Any:
        return self._request.getfixturevalue(name)

    def path(self, name: str) -> Path:
        return self.tmp / name

    def file(self, name: str, content: str | bytes) -> Path:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return path

    def fifo(self, name: str = "fifo") -> Path:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(path)
        return path

    def sparse(self, name: str, size: int) -> Path:
        """A file of ``size`` bytes that takes no disk space."""
        path = self.tmp / name
        with path.open("wb") as handle:
            handle.truncate(size)
        return path

    def device(self, name: str, minor: int) -> Path:
        """A character device with the numbers of /dev/null (3) or /dev/zero (5), made in the
        row's own directory: the real ones are never used."""
        require_machine(os.geteuid() == 0, "root, to make a character device with mknod")
        path = self.tmp / name
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, minor))
        return path

    def directory(self, name: str) -> Path:
        path = self.tmp / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def link(self, name: str, target: Path) -> Path:
        path = self.tmp / name
        path.symlink_to(target)
        return path

    def secrets(self) -> list[str]:
        """What must never appear in the output: passwords and private key lines."""
        lines = [
            line
            for key in (self.cosign.key, self.pem.key, self.other_pem.key)
            for line in key.read_text().splitlines()
            if len(line) >= 16 and not line.startswith("-----")
        ]
        return [self.cosign.password, WRONG_PASSWORD, *lines]

    def spool(self) -> Path:
        """A spool written by attest-step, with one attestation (for ``push`` rows)."""
        from attest_step.dsse import sign_envelope  # noqa: PLC0415
        from attest_step.imageref import parse_image_ref  # noqa: PLC0415
        from attest_step.keys.load import load_signer  # noqa: PLC0415
        from attest_step.oci.spool import write_attestation  # noqa: PLC0415

        signer = load_signer(str(self.pem.key))
        envelope = json.dumps(sign_envelope(b"{}", signer)).encode()
        directory = self.tmp / "spool"
        write_attestation(directory, envelope, parse_image_ref(IMAGE), "https://example.com/p")
        return directory

    def spool_record(self) -> tuple[Path, dict[str, Any]]:
        (record,) = self.spool().glob("*.oci.json")
        return record, json.loads(record.read_text())

    def envelope(self, key: PemKey) -> Path:
        from attest_step.dsse import sign_envelope  # noqa: PLC0415
        from attest_step.keys.load import load_signer  # noqa: PLC0415

        statement = {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "a", "digest": {"sha256": "a" * 64}}],
            "predicateType": "https://slsa.dev/provenance/v1",
            "predicate": {},
        }
        data = json.dumps(statement).encode()
        envelope = sign_envelope(data, load_signer(str(key.key)))
        return self.file("envelope.json", json.dumps(envelope))


Args = Callable[[Case], list[str]]
Env = Callable[[Case], dict[str, str]]


@dataclass(frozen=True)
class BadInput:
    verb: str
    name: str
    args: Args
    code: int
    says: str  # part of the one stderr line
    env: Env = field(default=lambda case: {})
    fixtures: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return f"{self.verb}: {self.name}"


def _secret_dir_with_fifo_password(case: Case) -> Path:
    mount = make_secret_mount(case.path("secret"), {"cosign.key": case.cosign.key.read_bytes()})
    os.mkfifo(mount / "..data" / "cosign.password")
    (mount / "cosign.password").symlink_to("..data/cosign.password")
    return mount


def _spool_with_linked_blob(case: Case) -> Path:
    record, doc = case.spool_record()
    blob = record.with_name(doc["blob"])
    blob.unlink()
    blob.symlink_to(case.cosign.key)
    return record.parent


def _spool_edited(**changes: Any) -> Args:
    def args(case: Case) -> list[str]:
        record, doc = case.spool_record()
        doc.update(changes)
        record.write_text(json.dumps(doc))
        return ["--from", str(record.parent), "--oci-layout", str(case.path("layout"))]

    return args


def _existing_pub(case: Case) -> list[str]:
    case.file("cosign.pub", "keep me")
    return []


def _key(case: Case) -> str:
    return str(case.cosign.key)


def _with_password(case: Case) -> dict[str, str]:
    return {"COSIGN_PASSWORD": case.cosign.password}


def _sign_args(key: Callable[[Case], str], *more: str) -> Args:
    return lambda case: ["--key", key(case), "--oci-layout", str(case.path("layout")), *more]


def _attest_args(key: Callable[[Case], str], *more: str) -> Args:
    return lambda case: [
        "--key", key(case), "--subject-path", str(case.cosign.pub), "--output-file",
        str(case.path("out.json")), *more,
    ]  # fmt: skip


def _va(case: Case, *more: str) -> list[str]:
    return ["--key", str(case.pem.pub), *more]


HUGE = 300 * 1024 * 1024
DUPLICATE_KEY_POLICY = "requireHermetic: true\nrequireHermetic: false\n"
E = "not a regular file"

BAD_INPUTS: list[BadInput] = [
    # hash
    BadInput("hash", "missing path", lambda c: [str(c.path("absent"))], 2, "cannot hash it"),
    BadInput("hash", "FIFO subject", lambda c: [str(c.fifo())], 2, "FIFO"),
    BadInput("hash", "image without digest", lambda c: ["--image", "a/b:1"], 2, "has no digest"),
    BadInput("hash", "unknown flag", lambda c: ["--bogus"], 2, "No such option '--bogus'"),
    # attest
    BadInput("attest", "--key missing", _attest_args(lambda c: str(c.path("no.key"))), 2,
             "does not exist"),
    BadInput("attest", "--key FIFO", _attest_args(lambda c: str(c.fifo())), 2, f"{E} (a FIFO)"),
    BadInput("attest", "--key /dev/zero", _attest_args(lambda c: str(c.device("zero", 5))), 2,
             f"{E} (a character device)"),
    BadInput("attest", "--key 300 MB", _attest_args(lambda c: str(c.sparse("big.key", HUGE))),
             2, "larger than 1048576 bytes"),
    BadInput("attest", "--key not PEM", _attest_args(lambda c: str(c.file("k", "hello"))), 2,
             "holds no PEM block"),
    BadInput("attest", "--key a public key", _attest_args(lambda c: str(c.pem.pub)), 2,
             "holds only a public key"),
    BadInput("attest", "--key empty directory", _attest_args(lambda c: str(c.directory("d"))),
             2, "has no cosign.key"),
    BadInput("attest", "wrong COSIGN_PASSWORD", _attest_args(_key), 2, "cannot decrypt key",
             env=lambda c: {"COSIGN_PASSWORD": WRONG_PASSWORD}),
    BadInput("attest", "password file FIFO", _attest_args(_key), 2, f"{E} (a FIFO)",
             env=lambda c: {"ATTEST_STEP_PASSWORD_FILE": str(c.fifo("pw"))}),
    BadInput("attest", "password file 300 MB", _attest_args(_key), 2, "larger than",
             env=lambda c: {"ATTEST_STEP_PASSWORD_FILE": str(c.sparse("pw", HUGE))}),
    BadInput("attest", "Secret dir with FIFO cosign.password",
             _attest_args(lambda c: str(_secret_dir_with_fifo_password(c))), 2,
             "cosign.password is a FIFO", env=_with_password),
    BadInput("attest", "--params-file FIFO",
             lambda c: [*_attest_args(_key)(c), "--params-file", str(c.fifo())], 2, E,
             env=_with_password),
    BadInput("attest", "--params-file not JSON",
             lambda c: [*_attest_args(_key)(c), "--params-file", str(c.file("p.json", "{"))], 2,
             "not valid JSON", env=_with_password),
    BadInput("attest", "--output-file link to a file",
             lambda c: ["--key", _key(c), "--subject-path", str(c.cosign.pub), "--output-file",
                        str(c.link("out.json", c.file("victim", "keep")))], 2,
             "a symbolic link to a regular file", env=_with_password),
    BadInput("attest", "--output-file a directory",
             lambda c: ["--key", _key(c), "--subject-path", str(c.cosign.pub), "--output-file",
                        str(c.directory("out"))], 2, "a directory", env=_with_password),
    BadInput("attest", "--subject-path missing",
             lambda c: ["--key", _key(c), "--subject-path", str(c.path("absent"))], 2,
             "cannot hash it", env=_with_password),
    BadInput("attest", "--started-on not a time", _attest_args(_key, "--started-on", "soon"), 2,
             "not an RFC 3339 time", env=_with_password),
    # sign (into an OCI layout directory: no registry involved)
    BadInput("sign", "--key FIFO", lambda c: [*_sign_args(lambda c: str(c.fifo()))(c), IMAGE],
             2, f"{E} (a FIFO)"),
    BadInput("sign", "--certificate-chain FIFO",
             lambda c: [*_sign_args(lambda c: str(c.pem.key))(c), "--certificate-chain",
                        str(c.fifo()), IMAGE], 2, f"{E} (a FIFO)"),
    BadInput("sign", "--certificate-chain 300 MB",
             lambda c: [*_sign_args(lambda c: str(c.pem.key))(c), "--certificate-chain",
                        str(c.sparse("chain.pem", HUGE)), IMAGE], 2, "larger than"),
    BadInput("sign", "IMAGE without digest",
             lambda c: [*_sign_args(lambda c: str(c.pem.key))(c), "127.0.0.1:5000/app:1"], 2,
             "has no digest"),
    BadInput("sign", "-a without =",
             lambda c: [*_sign_args(lambda c: str(c.pem.key))(c), "-a", "novalue", IMAGE], 2,
             "annotations are key=value"),
    # verify
    BadInput("verify", "--key FIFO", lambda c: [*_sign_args(lambda c: str(c.fifo()))(c), IMAGE],
             2, f"{E} (a FIFO)"),
    BadInput("verify", "--key a private key",
             lambda c: [*_sign_args(lambda c: str(c.pem.key))(c), IMAGE], 2, "is a private key"),
    BadInput("verify", "--key not PEM",
             lambda c: [*_sign_args(lambda c: str(c.file("k.pub", "x")))(c), IMAGE], 2,
             "PEM"),
    BadInput("verify", "bad digest",
             lambda c: [*_sign_args(lambda c: str(c.pem.pub))(c), "127.0.0.1:5000/a@sha256:zz"],
             2, "not a digest"),
    # verify-attestation
    BadInput("verify-attestation", "--envelope FIFO",
             lambda c: _va(c, "--envelope", str(c.fifo())), 2, f"{E} (a FIFO)"),
    BadInput("verify-attestation", "--envelope /dev/zero",
             lambda c: _va(c, "--envelope", str(c.device("zero", 5))), 2, E),
    BadInput("verify-attestation", "--envelope 300 MB",
             lambda c: _va(c, "--envelope", str(c.sparse("e.json", HUGE))), 2, "larger than"),
    BadInput("verify-attestation", "--policy duplicate key",
             lambda c: _va(c, "--envelope", str(c.envelope(c.pem)), "--policy",
                           str(c.file("p.yaml", DUPLICATE_KEY_POLICY))),
             2, "appears twice"),
    BadInput("verify-attestation", "--policy empty",
             lambda c: _va(c, "--envelope", str(c.envelope(c.pem)), "--policy",
                           str(c.file("p.yaml", ""))), 2, "has no rules"),
    BadInput("verify-attestation", "--policy comments only",
             lambda c: _va(c, "--envelope", str(c.envelope(c.pem)), "--policy",
                           str(c.file("p.yaml", "# requireHermetic: true\n"))), 2,
             "has no rules"),
    BadInput("verify-attestation", "--policy FIFO",
             lambda c: _va(c, "--envelope", str(c.envelope(c.pem)), "--policy", str(c.fifo())),
             2, f"{E} (a FIFO)"),
    BadInput("verify-attestation", "--type unknown",
             lambda c: _va(c, "--envelope", str(c.envelope(c.pem)), "--type", "bogus"), 2,
             "--type: 'bogus'"),
    BadInput("verify-attestation", "signed by another key (a failed check, not bad input)",
             lambda c: _va(c, "--envelope", str(c.envelope(c.other_pem))), 1, "envelope"),
    # push (into an OCI layout directory: the spool is refused before anything is stored)
    BadInput("push", "--from missing",
             lambda c: ["--from", str(c.path("absent")), "--oci-layout", str(c.path("l"))], 2,
             "not found"),
    BadInput("push", "--from without records",
             lambda c: ["--from", str(c.directory("empty")), "--oci-layout", str(c.path("l"))], 2,
             "no spool records"),
    BadInput("push", "blob is a link to a key",
             lambda c: ["--from", str(_spool_with_linked_blob(c)), "--oci-layout",
                        str(c.path("l"))], 2, "a symbolic link"),
    BadInput("push", "annotations not an object", _spool_edited(annotations=["x"]), 2,
             "annotations must be an object of strings"),
    BadInput("push", "record spoolVersion true", _spool_edited(spoolVersion=True), 2,
             "not a spool record of version 1"),
    # run
    BadInput("run", "no command", lambda c: ["--"], 2, "Missing argument"),
    BadInput("run", "--network unknown", lambda c: ["--network", "bogus", "--", "true"], 2,
             "Invalid value for '--network'"),
    BadInput("run", "--evidence-file /dev/null",
             lambda c: ["--evidence-file", str(c.device("null", 3)), "--", "true"], 2,
             "a character device"),
    BadInput("run", "--evidence-file FIFO",
             lambda c: ["--evidence-file", str(c.fifo()), "--", "true"], 2, "a FIFO"),
    # probe
    # copy (nothing reaches a registry: every row fails on its local input first)
    BadInput("copy", "neither direction", lambda c: ["out", "127.0.0.1:5000/app"], 2,
             "exactly one of"),
    BadInput("copy", "layout dir that is no layout",
             lambda c: ["--from-oci-layout", str(c.directory("empty")), "127.0.0.1:5000/app"], 2,
             "not an OCI image layout"),
    BadInput("copy", "uppercase REF", lambda c: ["--from-oci-layout", "out", "Host/App:v1"], 2,
             "not a valid image name"),
    BadInput("copy", "layout tag with a space", lambda c: ["--from-oci-layout", "out:a b", "x/y"],
             2, "is not a tag"),
    # append (OCI layouts only)
    BadInput("append", "base that is no layout",
             lambda c: ["--base", str(c.directory("nolayout")), "--to-oci-layout", "img",
                        str(c.directory("out"))], 2, "not an OCI image layout"),
    BadInput("append", "missing base directory",
             lambda c: ["--base", "b", "--to-oci-layout", "img", "--prefix", "../x", "out"], 2,
             "not an OCI image layout"),
    BadInput("probe", "--connect without port", lambda c: ["--connect", "nohost"], 2,
             "expected HOST:PORT"),
    BadInput("probe", "--timeout 0", lambda c: ["--timeout", "0"], 2, "--timeout"),
    BadInput("probe", "--evidence-file FIFO", lambda c: ["--evidence-file", str(c.fifo())], 2,
             "a FIFO"),
    # generate-key-pair (run in the row's directory)
    BadInput("generate-key-pair", "password file FIFO", lambda c: [], 2, f"{E} (a FIFO)",
             env=lambda c: {"ATTEST_STEP_PASSWORD_FILE": str(c.fifo("pw"))}),
    BadInput("generate-key-pair", "password file 300 MB", lambda c: [], 2, "larger than",
             env=lambda c: {"ATTEST_STEP_PASSWORD_FILE": str(c.sparse("pw", HUGE))}),
    BadInput("generate-key-pair", "key exists", _existing_pub, 2, "already exists",
             env=lambda c: {"COSIGN_PASSWORD": WRONG_PASSWORD}),
    BadInput("generate-key-pair", "prefix in a missing directory",
             lambda c: ["--output-key-prefix", str(c.path("no/such/dir/k"))], 2, "cannot write",
             env=lambda c: {"COSIGN_PASSWORD": WRONG_PASSWORD}),
    BadInput("generate-key-pair", "prefix.key is a FIFO, even with --force",
             lambda c: ["--output-key-prefix", str(c.fifo("k.key").with_suffix("")), "--force"], 2,
             "a FIFO", env=lambda c: {"COSIGN_PASSWORD": WRONG_PASSWORD}),
    # public-key
    BadInput("public-key", "--key FIFO", lambda c: ["--key", str(c.fifo())], 2, f"{E} (a FIFO)"),
    BadInput("public-key", "--key 300 MB", lambda c: ["--key", str(c.sparse("k", HUGE))], 2,
             "larger than"),
    BadInput("public-key", "wrong password", lambda c: ["--key", _key(c)], 2,
             "cannot decrypt key", env=lambda c: {"COSIGN_PASSWORD": WRONG_PASSWORD}),
    BadInput("public-key", "--outfile link to a file",
             lambda c: ["--key", str(c.pem.key), "--outfile",
                        str(c.link("o.pub", c.file("victim", "keep")))], 2, "symbolic link"),
]  # fmt: skip


def _run(case: Case, row: BadInput) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COSIGN_", "ATTEST_STEP_"))}
    args = row.args(case)
    env.update(row.env(case))
    return subprocess.run(
        [str(Path(sys.executable).parent / "attest-step"), row.verb, *args],
        capture_output=True, text=True, check=False, timeout=60, env=env, cwd=case.tmp,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_the_table_covers_every_verb() -> None:
    assert {row.verb for row in BAD_INPUTS} == set(COMMANDS)
    assert len({row.id for row in BAD_INPUTS}) == len(BAD_INPUTS), "row names must be unique"


@pytest.mark.parametrize("row", BAD_INPUTS, ids=lambda row: row.id)
def test_bad_input(row: BadInput, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    for name in row.fixtures:
        request.getfixturevalue(name)
    case = Case(tmp_path, request)
    proc = _run(case, row)
    shown = f"exit {proc.returncode}\nstdout: {proc.stdout!r}\nstderr: {proc.stderr!r}"
    assert proc.returncode == row.code, shown
    assert "Traceback" not in proc.stderr + proc.stdout, shown
    assert "internal error" not in proc.stderr, shown
    assert proc.stderr.count("\n") == 1 and proc.stderr.endswith("\n"), shown
    assert proc.stderr.startswith("attest-step: error: "), shown
    assert row.says in proc.stderr, shown
    leaked = [s for s in case.secrets() if s in proc.stdout + proc.stderr]
    assert not leaked, f"secret material in the output: {shown}"
