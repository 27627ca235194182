"""Run a command in fresh user, mount, PID and network namespaces and watch it from outside.

Process layout (Python 3.11 has no ``os.unshare``, so libc's ``unshare(2)`` is called through
ctypes; no external binary is involved)::

    attest-step run (P, caller's namespaces; observes and writes the evidence)
      └─ C1: unshare(NEWUSER|NEWNS|NEWPID|NEWNET); P writes its uid/gid maps
           └─ C2: PID 1 of the new PID namespace; brings ``lo`` up; shields; init
                └─ C3: unshare(NEWUSER|NEWNS) (nested); Landlock; execvp(CMD)

P opens ``/proc/<C2>/ns/net`` and ``/proc/<C2>/net/{dev,route,ipv6_route}`` before the command
starts. Those open files pin the namespace, so P re-reads them after the whole tree has ended:
when C3 exits, C2 SIGKILLs every other process of the PID namespace, reaps them and exits;
when PID 1 of a PID namespace exits the kernel kills whatever is left there.

C1, C2 and C3 report to P through one pipe of JSON lines (``messages``): one writer at a
time, and P finds each message by its key, never by its position. The command's own standard
input, output and error are P's, inherited unchanged.

The evidence (``--evidence-dir``) is out of the command's reach:

- P opens the evidence volume (a mount point) before the fork and writes the record through
  that descriptor only after the tree has ended. C1 closes the descriptor at once.
- C2, root of the first new user namespace, mounts an empty read-only tmpfs over every path
  of its mount namespace that reaches the volume (``shield.paths_reaching``). C3 then
  creates a *nested* user and mount namespace: the kernel locks every mount it inherits from
  the more privileged namespace, so the command, root of the nested one, cannot unmount or
  move the tmpfs, and a non-recursive bind mount of a parent is refused.
- Outer processes: the command is the only user of its (nested) user namespace, and the
  kernel's capability rules refuse ptrace access, hence ``/proc/<pid>/root``, ``cwd``, ``fd``
  and ``mem``, to a process of another user namespace without CAP_SYS_PTRACE there. On top
  of that, when it can, C2 mounts a fresh /proc of the new PID namespace (outer processes
  have no ``/proc/<pid>`` there; a container's masked /proc prevents it) and C3 enters a
  Landlock domain (the same rule again, by another mechanism). P, C1 and C2 are
  non-dumpable while the command runs. The command inherits only descriptors 0, 1, 2.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import signal
import stat
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, BinaryIO

from attest_step.errors import AttestStepError
from attest_step.hermetic import evidence, procnet, shield
from attest_step.hermetic.messages import Messages, send
from attest_step.hermetic.volume import EvidenceVolume

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
_FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)
# Python ignores these at start-up, and an ignored signal stays ignored across exec: the
# command gets them back at their default, as subprocess's restore_signals does, so that a
# command writing to a closed pipe ends as it would outside (``yes | head -1``).
_RESTORED = (signal.SIGPIPE, signal.SIGXFSZ)
_MAX_ID = 4294967295


@dataclass
class RunResult:
    """The outcome of one isolated run and the evidence record describing it."""

    exit_code: int
    record: dict[str, Any]
    messages: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Hide:
    """The evidence volume's directory, as the init must hide it."""

    device: int
    inode: int
    mount_device: str
    fs_root: str


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _unshare(flags: int) -> None:
    if _libc().unshare(flags) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def _prctl(option: int, value: int) -> None:
    _libc().prctl(option, value, 0, 0, 0)


def _proc_pid() -> int:
    """The caller's pid as the mounted /proc numbers it.

    Not always ``os.getpid()``: under Tekton's hermetic mode the step runs in a PID
    namespace of its own while /proc is still the container's.
    """
    return int(os.readlink("/proc/self"))


def _errno(err: OSError) -> str:
    return errno.errorcode.get(err.errno or 0, "?")


def _exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)


def _reap_all() -> int:
    """Reap every child until none is left; the number reaped."""
    count = 0
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return count
        count += 1


def _hide_evidence(hide: Hide, info: dict[str, Any]) -> str | None:
    """Cover every path to the evidence volume; why the command must not run, or None."""
    paths = shield.paths_reaching(shield.read_mountinfo(), hide.mount_device, hide.fs_root)
    hidden: list[str] = info["evidenceHidden"]
    for path in paths:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue  # covered by another mount: not reachable through this one
        if not stat.S_ISDIR(st.st_mode):
            return f"the evidence volume is also mounted at {path}, which is not a directory"
        shield.hide(path)
        hidden.append(path)
    still = [p for p in paths if shield.same_file(p, hide.device, hide.inode)]
    if still or not hidden:
        return f"the evidence volume is still reachable ({', '.join(still) or 'no path hidden'})"
    if shield.cwd_within(hide.device, hide.inode):
        return "the working directory is inside the evidence volume"
    for fd in (0, 1, 2):
        with contextlib.suppress(OSError):
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                return f"descriptor {fd} is a directory"
    return None


def _shield(hide: Hide | None) -> tuple[dict[str, Any], str | None]:
    """C2, before the command exists: private mounts, fresh /proc, the evidence hidden.

    Returns what was done and, when the command must not run, why.
    """
    info: dict[str, Any] = {"nestedUserNamespace": True, "parentNonDumpable": True}
    try:
        shield.make_private()
    except OSError as err:
        return info, f"cannot make the mounts private ({_errno(err)})"
    proc_error = shield.mount_fresh_proc()
    info["procfs"] = "fresh" if proc_error is None else "outer"
    if proc_error is not None:
        info["procfsError"] = proc_error
    info["landlock"] = shield.landlock_abi() or None
    info["evidenceHidden"] = []
    if hide is None:
        return info, None
    try:
        return info, _hide_evidence(hide, info)
    except OSError as err:
        return info, f"cannot hide the evidence volume ({err})"


def _init(argv: list[str], network: str, ctl: int, out: int, hide: Hide | None) -> int:
    """C2: PID 1 of the new namespace. Returns the exit code for C1 to pass on."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    proc_pid = _proc_pid()  # before a fresh /proc hides the outer numbers
    if network == "none":
        try:
            procnet.bring_loopback_up()
        except OSError as err:
            send(out, {"error": "loopback", "errno": _errno(err)})
            return 125
    info, problem = _shield(hide)
    if problem is not None:
        send(out, {"error": "shield", "errno": problem})
        return 125
    inside = evidence.view(
        observer="attest-step run init (inside, PID 1)",
        at="before-command",
        netns=os.readlink("/proc/self/ns/net"),
        dev=_read_text("/proc/self/net/dev"),
        route=_read_text("/proc/self/net/route"),
        ipv6_route=_read_optional("/proc/self/net/ipv6_route"),
        with_flags=True,
    )
    send(out, {"inside": inside, "shield": info, "procPid": proc_pid})
    if os.read(ctl, 1) != b"g":
        return 125
    _prctl(PR_SET_DUMPABLE, 0)
    go_r, go_w = os.pipe()
    ready_r, ready_w = os.pipe()
    child = os.fork()
    if child == 0:
        code = 125
        try:
            os.close(go_w)
            os.close(ready_r)
            code = _command(argv, go_r, ready_w, out, info["landlock"] or 0)
        finally:
            os._exit(code)
    os.close(go_r)
    os.close(ready_w)
    # The command's pid as /proc numbers it: with the outer /proc (no fresh one could be
    # mounted) that is its pid in the outer PID namespace, not the one fork() returned.
    ready = os.read(ready_r, 32)
    if not ready.startswith(b"u") or not ready[1:].isdigit():
        os.waitpid(child, 0)
        return 125
    try:
        _write_maps(int(ready[1:]), nested=True)
    except OSError as err:
        send(out, {"error": "nested-maps", "errno": _errno(err)})
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        return 125
    os.write(go_w, b"x")
    os.close(go_w)
    os.close(ready_r)

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signum)

    for signum in _FORWARDED:
        signal.signal(signum, forward)
    status = 0
    while True:
        pid, wait_status = os.waitpid(-1, 0)
        if pid == child:
            status = wait_status
            break
    with contextlib.suppress(ProcessLookupError):
        os.kill(-1, signal.SIGKILL)
    leftovers = _reap_all()
    done: dict[str, Any] = {"exitCode": _exit_code(status), "leftoverProcessesKilled": leftovers}
    if os.WIFSIGNALED(status):
        done["signal"] = signal.Signals(os.WTERMSIG(status)).name
    send(out, {"done": done})
    return _exit_code(status)


def _command(argv: list[str], go: int, ready: int, out: int, landlock: int) -> int:
    """C3: a nested user and mount namespace (locking C2's mounts), Landlock, then exec."""
    # Dumpable until the exec, so that C2 may write this process's id maps.
    _prctl(PR_SET_DUMPABLE, 1)
    try:
        _unshare(CLONE_NEWUSER | CLONE_NEWNS)
    except OSError as err:
        send(out, {"error": "nested-unshare", "errno": _errno(err)})
        return 125
    os.write(ready, b"u" + os.readlink("/proc/self").encode())
    if os.read(go, 1) != b"x":
        return 125
    os.close(go)
    os.close(ready)
    if landlock:
        try:
            shield.landlock_restrict(landlock)
        except OSError as err:
            send(out, {"error": "landlock", "errno": str(err)})
            return 125
    shield.mark_fds_cloexec(3)
    for signum in _FORWARDED + _RESTORED:
        signal.signal(signum, signal.SIG_DFL)
    try:
        os.execvp(argv[0], argv)  # noqa: S606 - runs the user's build command
    except OSError as err:
        send(out, {"execError": _errno(err), "argv0": argv[0]})
        return 127 if err.errno == errno.ENOENT else 126


def _read_text(path: str) -> str:
    with open(path) as handle:
        return handle.read()


def _read_optional(path: str) -> str | None:
    try:
        return _read_text(path)
    except OSError:
        return None


def _child(
    argv: list[str], flags: int, network: str, ctl: int, out: int, *, hide: Hide | None
) -> int:
    """C1: create the namespaces, wait for the id maps, start PID 1 and pass on its status."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    try:
        _unshare(flags)
    except OSError as err:
        send(out, {"error": "unshare", "errno": _errno(err)})
        return 125
    send(out, {"unshared": True, "procPid": _proc_pid()})
    if os.read(ctl, 1) != b"m":
        return 125
    init = os.fork()
    if init == 0:
        code = 125
        try:
            code = _init(argv, network, ctl, out, hide)
        finally:
            os._exit(code)
    # Nothing more to say: the init writes to the same pipe from now on (messages.py).
    _prctl(PR_SET_DUMPABLE, 0)
    _, status = os.waitpid(init, 0)
    return _exit_code(status)


def _outer_root() -> bool:
    """True when the caller's user namespace maps every id (its creator was root)."""
    with open("/proc/self/uid_map") as handle:
        return any(line.split()[2:3] == [str(_MAX_ID)] for line in handle)


def _write_maps(pid: int, *, nested: bool = False) -> None:
    """The id maps of ``pid``'s new user namespace.

    First level, written by P: as root an identity map of every id, like Tekton's
    entrypoint (files keep their owners, and the command is root only inside the new user
    namespace); otherwise the caller's uid and gid map to 0. Nested level, written by C2
    (root of the first level): an identity map of what the first level maps.
    """
    if nested:
        everything = _outer_root()
        setgroups = "allow" if everything else "deny"
        uid_map = gid_map = f"0 0 {_MAX_ID if everything else 1}"
    elif os.geteuid() == 0:
        setgroups, uid_map, gid_map = "allow", f"0 0 {_MAX_ID}", f"0 0 {_MAX_ID}"
    else:
        setgroups, uid_map = "deny", f"0 {os.geteuid()} 1"
        gid_map = f"0 {os.getegid()} 1"
    for name, text in (("setgroups", setgroups), ("uid_map", uid_map), ("gid_map", gid_map)):
        with open(f"/proc/{pid}/{name}", "w") as handle:
            handle.write(text)


class _Pinned:
    """Files of the child's network namespace, opened while it lives and re-read later."""

    def __init__(self, pid: int) -> None:
        base = f"/proc/{pid}"
        self.ns_fd = os.open(f"{base}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        self.netns = os.readlink(f"{base}/ns/net")
        self.files: dict[str, BinaryIO | None] = {}
        for name in ("dev", "route", "ipv6_route"):
            try:
                self.files[name] = open(f"{base}/net/{name}", "rb")  # noqa: SIM115
            except OSError:
                self.files[name] = None

    def read(self, name: str) -> str | None:
        handle = self.files.get(name)
        if handle is None:
            return None
        handle.seek(0)
        return handle.read().decode()

    def view(self, at: str) -> dict[str, Any]:
        return evidence.view(
            observer="attest-step run (outside, /proc/<pid>/net)",
            at=at,
            netns=self.netns,
            dev=self.read("dev") or "",
            route=self.read("route") or "",
            ipv6_route=self.read("ipv6_route"),
            with_flags=False,
        )

    def close(self) -> None:
        for handle in self.files.values():
            if handle is not None:
                handle.close()
        os.close(self.ns_fd)


def _fail(message: str, pid: int) -> AttestStepError:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
    return AttestStepError(message)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def run(
    argv: list[str],
    *,
    network: str = "none",
    step: str | None = None,
    volume: EvidenceVolume | None = None,
) -> RunResult:
    """Run ``argv`` isolated (``network="none"``) or not (``"host"``) and describe the run.

    With ``volume`` (opened by the caller before this call), the init hides the volume from
    the command and the record is written there after the command's tree has ended.

    Raises AttestStepError, without running the command, when the namespaces cannot be
    created or the command cannot be kept away from its evidence: never falls back to
    running with the caller's network or with the evidence in reach.
    """
    if not argv:
        raise AttestStepError("run: no command given; write it after '--'")
    flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID
    if network == "none":
        flags |= CLONE_NEWNET
    hide = None
    if volume is not None:
        hide = Hide(volume.device, volume.inode, volume.mount_device, volume.fs_root)
    parent_netns = os.readlink("/proc/self/ns/net")
    started_on, started = _now(), time.monotonic()
    ctl_r, ctl_w = os.pipe()
    out_r, out_w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 125
        try:
            if volume is not None:
                os.close(volume.fd)
            os.close(ctl_w)
            os.close(out_r)
            code = _child(argv, flags, network, ctl_r, out_w, hide=hide)
        finally:
            os._exit(code)
    os.close(ctl_r)
    os.close(out_w)
    messages = Messages(os.fdopen(out_r, "rb"))
    pinned: _Pinned | None = None
    try:
        first = messages.until("unshared")
        if "unshared" not in first:
            raise _fail(
                f"run: cannot create user/mount/PID/network namespaces "
                f"({first.get('errno', 'child failed')}); the command was NOT run. Enable "
                "unprivileged user namespaces (user.max_user_namespaces > 0; no AppArmor "
                "userns restriction) and allow unshare in seccomp, or use Tekton's "
                "TEKTON_HERMETIC=1",
                pid,
            )
        c1 = first.get("procPid")
        try:
            if not isinstance(c1, int):
                raise OSError(errno.EPROTO, "no pid from the child")
            _write_maps(c1)
        except OSError as err:
            raise _fail(
                f"run: cannot write the uid/gid maps of the new user namespace "
                f"({err.strerror}); the command was NOT run",
                pid,
            ) from err
        # From here on nobody needs to open this process's /proc files: keep the command out.
        _prctl(PR_SET_DUMPABLE, 0)
        os.write(ctl_w, b"m")
        inside = messages.until("inside")
        init_pid = inside.get("procPid")
        if not isinstance(init_pid, int) or "inside" not in inside:
            raise _fail(
                f"run: the isolated init did not start ({inside.get('error', 'no message')}: "
                f"{inside.get('errno', '')}); the command was NOT run",
                pid,
            )
        pinned = _Pinned(init_pid)
        before = pinned.view("before-command")
        os.write(ctl_w, b"g")
        os.close(ctl_w)
        ctl_w = -1
        _, status = os.waitpid(pid, 0)
        tail = messages.rest()
        after = pinned.view("after-process-tree-ended")
    finally:
        if ctl_w >= 0:
            os.close(ctl_w)
        messages.close()
        if pinned is not None:
            pinned.close()
    exit_code = _exit_code(status)
    failure = next((m for m in tail if "error" in m), None)
    if failure is not None:
        raise AttestStepError(
            f"run: the command could not be started isolated ({failure['error']}: "
            f"{failure.get('errno', '')}); the command was NOT run"
        )
    done: dict[str, Any] = next((m["done"] for m in tail if "done" in m), {})
    exec_error = next((m for m in tail if "execError" in m), None)
    command: dict[str, Any] = {
        "argv": list(argv),
        "exitCode": exit_code,
        "netns": pinned.netns,
        "leftoverProcessesKilled": done.get("leftoverProcessesKilled"),
    }
    if "signal" in done:
        command["signal"] = done["signal"]
    if exec_error is not None:
        command["execError"] = exec_error["execError"]
    isolation: dict[str, Any] = {
        "network": network,
        "namespaces": ["user", "mnt", "pid"] + (["net"] if network == "none" else []),
        "uidMap": "identity (all ids)" if os.geteuid() == 0 else f"0 -> {os.geteuid()}",
        "loopbackUp": network == "none",
    }
    isolation.update(inside.get("shield") or {})
    record: dict[str, Any] = {
        "mediaType": evidence.EVIDENCE_MEDIA_TYPE,
        "producer": evidence.producer("run"),
        "step": step,
        "isolation": isolation,
        "parentNetns": parent_netns,
        "command": command,
        "views": [inside["inside"], before, after],
        "startedOn": started_on,
        "finishedOn": _now(),
        "durationSeconds": round(time.monotonic() - started, 3),
    }
    if volume is not None and step is not None:
        now = volume.names_now()
        changed = sorted((now - volume.names_before) | (volume.names_before - now))
        record["evidenceVolume"] = {
            "dir": str(volume.path),
            "file": volume.next_name(step),
            "changedWhileRunning": changed,
        }
    record["contradictions"] = evidence.contradictions(record)
    return RunResult(exit_code=exit_code, record=record, messages=messages.seen)
