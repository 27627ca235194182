"""A hostile command under ``attest-step run`` against its own evidence, with real namespaces.

Each test is a "pod": ``unshare --mount`` (a private mount namespace, gone when the test
ends) in which the evidence volume is a mount point of its own, as an emptyDir is in a pod.
There the test runs ``attest-step run --evidence-dir`` with an attacking command (a Python
snippet that tries one attack and prints what happened), then the consumer,
``attest-step attest --evidence-dir``, exactly as the attest step does.

The tests run as root here. ``*_as_non_root`` variants run the isolating parent as uid 65532
(as the catalog's build step does in a pod): the same attacks fail the same way.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from attest_step.policy import evaluate_policy
from tests.fixtures.keys import PemKey
from tests.fixtures.tools import require_machine

pytestmark = pytest.mark.netns
ATTEST_STEP = str(Path(sys.executable).parent / "attest-step")
PYTHON = sys.executable
SYSTEM_PYTHON = "/usr/bin/python3.11"
REPO = Path(__file__).resolve().parents[2]
NON_ROOT = 65532


@dataclass
class Pod:
    root: Path  # a temporary directory owned by uid 65532, holding the two below
    ev: Path  # the evidence volume's mount point
    ws: Path  # the workspace the command may write
    out: Path  # outside ``root``: the subject, the attack's report, the envelope


@dataclass
class Outcome:
    attack: dict[str, Any]
    run_code: int
    attest_code: int
    attest_stderr: str
    log: str
    statement: dict[str, Any] | None

    def isolation(self) -> tuple[dict[str, Any], dict[str, Any]]:
        assert self.statement is not None, self.log
        (item,) = [
            b
            for b in self.statement["predicate"]["runDetails"]["byproducts"]
            if b["name"] == "attest-step/network-isolation/build"
        ]
        return item["annotations"], json.loads(base64.b64decode(item["content"]))


@pytest.fixture
def pod() -> Iterator[Pod]:
    root = Path(tempfile.mkdtemp(prefix="attest-step-pod-"))
    out = Path(tempfile.mkdtemp(prefix="attest-step-pod-out-"))
    try:
        ev, ws = root / "ev", root / "ws"
        for directory in (ev, ws):
            directory.mkdir()
        for directory in (root, ev, ws):
            directory.chmod(0o755)
            os.chown(directory, NON_ROOT, NON_ROOT)
        (out / "subject").mkdir()
        (out / "subject" / "app.txt").write_text("built\n")
        yield Pod(root, ev, ws, out)
    finally:
        # The rename attack moves the whole directory: remove what it left, and only that.
        for leftover in (root, root.with_name(root.name + ".moved"), out):
            shutil.rmtree(leftover, ignore_errors=True)


def run_pod(
    pod: Pod,
    key: PemKey,
    attack: str,
    *,
    network: str = "host",
    user: int | None = None,
    mask_proc: bool = False,
    extra_setup: str = "",
    declare: str = "build/run",
) -> Outcome:
    """Run the attack under ``attest-step run``, then ``attest`` on the evidence volume."""
    run = ATTEST_STEP
    python = PYTHON
    if user is not None:
        # The venv's interpreter lives under /root here: run the same code with Debian's
        # python3.11 and the venv's packages, as uid ``user``.
        python = SYSTEM_PYTHON
        path = shlex.quote(f"{REPO}:{REPO}/.venv/lib/python3.11/site-packages")
        run = (
            f"env PYTHONPATH={path} setpriv --reuid {user} --regid {user} --clear-groups "
            f"{SYSTEM_PYTHON} -m attest_step"
        )
    ev, ws, out = (shlex.quote(str(p)) for p in (pod.ev, pod.ws, pod.out))
    script = f"""
set -u
mount --bind {ev} {ev}
{"mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys" if mask_proc else ""}
{extra_setup}
cd {ws}
EV={ev} WS={ws} {run} run --network {network} --evidence-dir {ev} \
    --step-name build -- {python} -c {shlex.quote(attack)} >{out}/attack.json
echo "run=$?" >{out}/codes
cd /
{ATTEST_STEP} attest --key {shlex.quote(str(key.key))} --subject-path {out}/subject \
    --no-upload --output-file {out}/envelope.json --evidence-dir {ev} \
    --declare-hermetic {declare} --task-step build 2>{out}/attest.err
echo "attest=$?" >>{out}/codes
"""
    proc = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    codes = dict(line.split("=", 1) for line in (pod.out / "codes").read_text().split())
    attack_text = (pod.out / "attack.json").read_text()
    # every attack prints its outcome: nothing printed means the run itself failed
    assert attack_text.strip(), f"run={codes.get('run')}: {proc.stdout}{proc.stderr}"
    envelope = pod.out / "envelope.json"
    statement = None
    if envelope.exists():
        payload = json.loads(envelope.read_bytes())["payload"]
        statement = json.loads(base64.b64decode(payload))
    return Outcome(
        attack=json.loads(attack_text),
        run_code=int(codes["run"]),
        attest_code=int(codes["attest"]),
        attest_stderr=(pod.out / "attest.err").read_text(),
        log=proc.stdout + proc.stderr,
        statement=statement,
    )


# A record as an isolated run writes it, with a fake namespace id: what a forger would write.
FORGED = json.dumps(
    {
        "mediaType": "application/vnd.attest-step.network-evidence.v1+json",
        "producer": {"name": "attest-step", "version": "0.1.0", "verb": "run"},
        "step": "build",
        "isolation": {
            "network": "none",
            "namespaces": ["user", "mnt", "pid", "net"],
            "nestedUserNamespace": True,
            "procfs": "fresh",
            "landlock": 7,
            "evidenceHidden": ["/x"],
        },
        "parentNetns": "net:[1]",
        "command": {"argv": ["make"], "exitCode": 0, "netns": "net:[2]"},
        "views": [
            {"observer": o, "at": a, "netns": "net:[2]", "interfaces": [{"name": "lo"}]}
            for o, a in [
                ("attest-step run init (inside, PID 1)", "before-command"),
                ("attest-step run (outside, /proc/<pid>/net)", "before-command"),
                ("attest-step run (outside, /proc/<pid>/net)", "after-process-tree-ended"),
            ]
        ],
        "startedOn": "2026-01-01T00:00:00Z",
        "finishedOn": "2026-01-01T00:00:01Z",
        "evidenceVolume": {"dir": "/x", "file": "build.json", "changedWhileRunning": []},
    }
)
PRELUDE = f"""
import ctypes, json, os
EV, WS = os.environ["EV"], os.environ["WS"]
FORGED = {FORGED!r}
out = {{}}
def attempt(name, action):
    try:
        action()
        out[name] = "ok"
    except OSError as err:
        out[name] = err.strerror
def forge(directory):
    with open(os.path.join(directory, "build.json"), "w") as handle:
        handle.write(FORGED)
"""


def attack_code(body: str) -> str:
    return PRELUDE + body + "\nprint(json.dumps(out))\n"


def assert_genuine(outcome: Outcome) -> None:
    """The consumer found the isolating parent's record: observed, and it shows the network
    (--network host), so the step is not hermetic however the command tried."""
    assert outcome.run_code == 0, outcome.log
    assert outcome.attest_code == 0, outcome.attest_stderr + outcome.log
    annotations, content = outcome.isolation()
    assert annotations["hermetic"] is False
    assert annotations["status"] == "contradicted"
    (entry,) = content["evidence"]
    assert entry["source"] == "observed"
    assert entry["record"]["isolation"]["network"] == "host"
    assert any("parent's network namespace" in c for c in content["contradictions"])
    assert outcome.statement is not None
    violations = evaluate_policy(
        outcome.statement, {"requireHermetic": True, "requireObservedIsolation": True}
    )
    assert violations, "a networked build passed requireHermetic"


@pytest.fixture
def key(pem_keys: dict[str, PemKey]) -> PemKey:
    return pem_keys["ecdsa-p256"]


def test_isolated_run_is_observed_and_hermetic(pod: Pod, key: PemKey) -> None:
    outcome = run_pod(pod, key, attack_code(""), network="none")
    assert outcome.run_code == 0, outcome.log
    assert outcome.attest_code == 0, outcome.attest_stderr
    annotations, content = outcome.isolation()
    assert annotations["hermetic"] is True and annotations["observedIsolation"] is True
    assert annotations["sources"] == ["declared", "observed"]
    (entry,) = content["evidence"]
    isolation = entry["record"]["isolation"]
    assert isolation["procfs"] == "fresh"
    assert isolation["evidenceHidden"] == [str(pod.ev)]
    assert isolation["nestedUserNamespace"] is True
    assert outcome.statement is not None
    assert evaluate_policy(outcome.statement, {"requireObservedIsolation": True}) == []


def test_attack_child_replaces_evidence_dir(pod: Pod, key: PemKey) -> None:
    """The issue's attack: mv the evidence directory away, put a forged one in its place."""
    outcome = run_pod(
        pod,
        key,
        attack_code(
            'attempt("rename", lambda: os.rename(EV, EV + ".old"))\n'
            'attempt("mkdir", lambda: os.makedirs(EV, exist_ok=True))\n'
            'attempt("forge", lambda: forge(EV))\n'
        ),
    )
    assert outcome.attack["rename"] == "Device or resource busy"
    assert outcome.attack["forge"] == "Read-only file system"
    assert_genuine(outcome)


def test_attack_child_writes_its_own_evidence_file(pod: Pod, key: PemKey) -> None:
    outcome = run_pod(
        pod,
        key,
        attack_code(
            'attempt("forge", lambda: forge(EV))\n'
            'attempt("symlink", lambda: os.symlink("/etc/passwd", EV + "/build.2.json"))\n'
            'attempt("listing", lambda: out.__setitem__("entries", os.listdir(EV)))\n'
        ),
    )
    assert outcome.attack["forge"] == "Read-only file system"
    assert outcome.attack["symlink"] == "Read-only file system"
    assert outcome.attack["entries"] == []  # the command sees an empty cover, not the volume
    assert_genuine(outcome)


def test_attack_child_unmounts_the_cover(pod: Pod, key: PemKey) -> None:
    outcome = run_pod(
        pod,
        key,
        attack_code(
            "libc = ctypes.CDLL(None, use_errno=True)\n"
            "def umount(flags):\n"
            "    if libc.umount2(EV.encode(), flags) != 0:\n"
            "        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))\n"
            'attempt("umount", lambda: umount(0))\n'
            'attempt("umount-detach", lambda: umount(2))\n'
            'attempt("forge", lambda: forge(EV))\n'
        ),
    )
    # The cover is locked: inherited from a more privileged mount namespace.
    assert outcome.attack["umount"] == "Invalid argument"
    assert outcome.attack["umount-detach"] == "Invalid argument"
    assert outcome.attack["forge"] == "Read-only file system"
    assert_genuine(outcome)


def test_attack_child_bind_mounts_the_parent_to_see_under_the_cover(pod: Pod, key: PemKey) -> None:
    outcome = run_pod(
        pod,
        key,
        attack_code(
            "libc = ctypes.CDLL(None, use_errno=True)\n"
            "def bind(source, target, flags):\n"
            "    os.makedirs(target, exist_ok=True)\n"
            "    if libc.mount(source.encode(), target.encode(), None, flags, None) != 0:\n"
            "        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))\n"
            "parent = os.path.dirname(EV)\n"
            'attempt("bind", lambda: bind(parent, WS + "/peek", 4096))\n'
            'attempt("rbind", lambda: bind(parent, WS + "/rpeek", 4096 | 16384))\n'
            'attempt("forge-rbind", lambda: forge(WS + "/rpeek/" + os.path.basename(EV)))\n'
        ),
    )
    assert outcome.attack["bind"] == "Invalid argument"  # would reveal the inside of a lock
    assert outcome.attack["rbind"] == "ok"  # copies the cover along
    assert outcome.attack["forge-rbind"] == "Read-only file system"
    assert_genuine(outcome)


def test_attack_child_reaches_evidence_through_proc_pid_root(pod: Pod, key: PemKey) -> None:
    outcome = run_pod(
        pod,
        key,
        attack_code(
            "pids = [p for p in os.listdir('/proc') if p.isdigit()]\n"
            "out['pids'] = pids\n"
            "for pid in pids:\n"
            "    for way in ('root', 'cwd'):\n"
            "        attempt(f'{way}-{pid}', lambda: forge(f'/proc/{pid}/{way}' + EV))\n"
            "    try:\n"
            "        fds = os.listdir(f'/proc/{pid}/fd')\n"
            "    except OSError:\n"
            "        fds = []\n"
            "    for n in fds:\n"
            "        path = f'/proc/{pid}/fd/{n}'\n"
            "        attempt(f'fd-{pid}-{n}', lambda: os.close(os.open(path, 0)))\n"
        ),
    )
    # A fresh /proc: only the command's own PID namespace (init 1 and the command).
    assert sorted(outcome.attack["pids"], key=int)[:1] == ["1"]
    own = str(max(int(p) for p in outcome.attack["pids"]))
    assert outcome.attack["root-1"] == "Permission denied"  # the init is not dumpable
    fds = {k: v for k, v in outcome.attack.items() if k.startswith("fd-1-")}
    assert fds and set(fds.values()) == {"Permission denied"}
    assert outcome.attack[f"root-{own}"] == "Read-only file system"  # its own root: the cover
    assert_genuine(outcome)


def test_attack_child_reaches_evidence_through_outer_proc_when_proc_is_masked(
    pod: Pod, key: PemKey
) -> None:
    """In a container /proc has masked paths and no fresh /proc can be mounted: the command
    sees every process of the machine, many of them root and dumpable like it, and enters
    none. The kernel refuses ptrace access (root, cwd, mem) to a process of another user
    namespace; Landlock refuses it again. (Checked by hand: with Landlock switched off this
    test still passes, because of the user namespace alone.)"""
    outcome = run_pod(
        pod,
        key,
        attack_code(
            "me = int(os.readlink('/proc/self'))  # its number in the outer /proc\n"
            "pids = [p for p in os.listdir('/proc') if p.isdigit() and int(p) != me]\n"
            "out['pids'] = len(pids)\n"
            "reached = []\n"
            "for pid in pids:\n"
            "    for way in ('root', 'cwd'):\n"
            "        try:\n"
            "            forge(f'/proc/{pid}/{way}' + EV)\n"
            "            reached.append(f'{pid}/{way}')\n"
            "        except OSError:\n"
            "            pass\n"
            "    try:\n"
            "        if not open(f'/proc/{pid}/cmdline', 'rb').read():\n"
            "            continue  # a kernel thread: no memory to open\n"
            "        open(f'/proc/{pid}/mem', 'r+b').close()\n"
            "        reached.append(f'{pid}/mem')\n"
            "    except OSError:\n"
            "        pass\n"
            "out['reached'] = reached\n"
        ),
        mask_proc=True,
    )
    assert outcome.attack["pids"] > 10  # the machine's processes are visible...
    assert outcome.attack["reached"] == []  # ...but none of them can be entered
    _, content = outcome.isolation()
    isolation = content["evidence"][0]["record"]["isolation"]
    assert isolation["procfs"] == "outer" and isolation["procfsError"] == "EPERM"
    assert isolation["landlock"] >= 1
    assert_genuine(outcome)


def test_attack_child_uses_another_mount_of_the_volume(pod: Pod, key: PemKey) -> None:
    alias = shlex.quote(str(pod.root / "alias"))
    outcome = run_pod(
        pod,
        key,
        attack_code('attempt("forge-alias", lambda: forge(os.environ["ALIAS"]))\n'),
        extra_setup=f"mkdir {alias} && mount --bind {shlex.quote(str(pod.ev))} {alias} && "
        f"export ALIAS={alias}",
    )
    # run_code and the log say why when the command never printed its outcome
    assert outcome.attack.get("forge-alias") == "Read-only file system", (
        outcome.run_code,
        outcome.log,
    )
    _, content = outcome.isolation()
    hidden = content["evidence"][0]["record"]["isolation"]["evidenceHidden"]
    assert sorted(hidden) == sorted([str(pod.ev), str(pod.root / "alias")])
    assert_genuine(outcome)


def test_attack_child_uses_an_inherited_descriptor(pod: Pod, key: PemKey) -> None:
    outcome = run_pod(
        pod,
        key,
        attack_code(
            "def via_fd():\n"
            "    fd = os.open('build.json', os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=7)\n"
            "    os.write(fd, FORGED.encode())\n"
            'attempt("fd7", via_fd)\n'
        ),
        extra_setup=f"exec 7<{shlex.quote(str(pod.ev))}",
    )
    assert outcome.attack["fd7"] == "Bad file descriptor"
    assert_genuine(outcome)


def test_attack_child_renames_the_parent_directory(pod: Pod, key: PemKey) -> None:
    """The volume's mount point cannot be renamed, but its parent directory can: the forged
    directory then sits at the old path. The consumer refuses it (not a mount point), and
    the genuine record went with the real volume."""
    outcome = run_pod(
        pod,
        key,
        attack_code(
            "parent = os.path.dirname(EV)\n"
            'attempt("rename-parent", lambda: os.rename(parent, parent + ".moved"))\n'
            'attempt("mkdir", lambda: os.makedirs(EV))\n'
            'attempt("forge", lambda: forge(EV))\n'
        ),
    )
    assert outcome.attack == {"rename-parent": "ok", "mkdir": "ok", "forge": "ok"}
    assert outcome.attest_code == 2
    assert "not the mount point of a volume" in outcome.attest_stderr
    assert outcome.statement is None
    moved = pod.root.with_name(pod.root.name + ".moved") / "ev" / "build.json"
    genuine = json.loads(moved.read_text())
    assert genuine["isolation"]["network"] == "host"  # the isolating parent's record


def test_attack_child_replaces_evidence_dir_as_non_root(pod: Pod, key: PemKey) -> None:
    require_machine(
        Path("/proc/sys/user/max_user_namespaces").read_text().strip() != "0",
        "unprivileged user namespaces",
    )
    require_machine(Path(SYSTEM_PYTHON).exists(), SYSTEM_PYTHON)
    outcome = run_pod(
        pod,
        key,
        attack_code(
            'out["uid"] = os.getuid()\n'
            'attempt("rename", lambda: os.rename(EV, EV + ".old"))\n'
            'attempt("forge", lambda: forge(EV))\n'
            'attempt("root-1", lambda: forge("/proc/1/root" + EV))\n'
        ),
        user=NON_ROOT,
    )
    assert outcome.attack.get("uid") == 0, outcome.log  # root of its own user namespace only
    assert outcome.attack["rename"] == "Device or resource busy"
    assert outcome.attack["forge"] == "Read-only file system"
    assert outcome.attack["root-1"] == "Permission denied"
    _, content = outcome.isolation()
    assert content["evidence"][0]["record"]["isolation"]["uidMap"] == f"0 -> {NON_ROOT}"
    assert_genuine(outcome)


def test_attack_unwrapped_step_writes_a_forged_record_into_the_volume(
    pod: Pod, key: PemKey
) -> None:
    """A step NOT under run (here: TEKTON_HERMETIC mode, declared build/tekton) that mounts the
    evidence volume can write a complete-looking record. It is not labelled observed: the
    step is not declared to run under attest-step run."""
    outcome = run_pod(
        pod,
        key,
        attack_code(""),
        network="none",
        extra_setup=f"printf %s {shlex.quote(FORGED)} >{shlex.quote(str(pod.ev))}/build.2.json",
        declare="build/tekton",
    )
    assert outcome.attest_code == 0, outcome.attest_stderr
    annotations, content = outcome.isolation()
    assert annotations["observedIsolation"] is False
    assert {e["source"] for e in content["evidence"]} == {"reported"}
    assert outcome.statement is not None
    (violation,) = evaluate_policy(outcome.statement, {"requireObservedIsolation": True})
    assert "no isolation observed" in violation


def test_run_refuses_an_evidence_dir_that_is_not_a_mount_point(pod: Pod) -> None:
    marker = pod.ws / "ran"
    proc = subprocess.run(
        [
            ATTEST_STEP,
            *("run", "--evidence-dir", str(pod.ev), "--step-name", "build"),
            *("--", "touch", str(marker)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "not the mount point of a volume" in proc.stderr
    assert not marker.exists()
