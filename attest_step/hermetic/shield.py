"""Kernel calls that keep the command under ``attest-step run`` away from its evidence.

Used by the init (PID 1 of the new namespaces) before it starts the command, and by the
command's own process just before ``exec``:

- ``mountinfo`` parsing, to find every path through which a directory can be reached;
- ``hide``: an empty read-only tmpfs over each of those paths;
- ``mount_fresh_proc``: a procfs of the new PID namespace over ``/proc``, so processes
  outside it have no ``/proc/<pid>`` at all;
- ``landlock_restrict``: a Landlock domain for the command; a process in a domain cannot
  ptrace, or open ``/proc/<pid>/{root,cwd,fd,mem,environ}`` of, a process outside it;
- ``mark_fds_cloexec``: the command inherits standard input, output and error only.

Python 3.11 has no ``os.mount`` nor Landlock: libc's ``mount(2)`` and ``syscall(2)`` are
called through ctypes.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from dataclasses import dataclass
from pathlib import PurePosixPath

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REC = 0x4000
MS_PRIVATE = 0x40000

# asm-generic/unistd.h: the same numbers on every architecture since 5.13.
_SYS_LANDLOCK_CREATE_RULESET = 444
_SYS_LANDLOCK_RESTRICT_SELF = 446
_SYS_CLOSE_RANGE = 436
_LANDLOCK_CREATE_RULESET_VERSION = 1
_LANDLOCK_ACCESS_FS_MAKE_BLOCK = 1 << 11
_LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0
_LANDLOCK_SCOPE_SIGNAL = 1 << 1
_CLOSE_RANGE_CLOEXEC = 1 << 2


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _raise_errno(what: str) -> None:
    code = ctypes.get_errno()
    raise OSError(code, f"{what}: {os.strerror(code)}")


def errno_name(err: OSError) -> str:
    return errno.errorcode.get(err.errno or 0, str(err.errno))


def mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    libc = _libc()
    libc.mount.argtypes = [
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_ulong,
        ctypes.c_char_p,
    ]
    result = libc.mount(
        source.encode(),
        target.encode(),
        fstype.encode() if fstype else None,
        flags,
        data.encode() if data else None,
    )
    if result != 0:
        _raise_errno(f"mount {target}")


def make_private() -> None:
    """Stop mount events from propagating into or out of this mount namespace."""
    mount("none", "/", None, MS_REC | MS_PRIVATE, None)


def mount_fresh_proc() -> str | None:
    """Mount a procfs of the caller's PID namespace on /proc; None, or why it failed.

    The kernel refuses it in a user namespace when the existing /proc has paths masked by
    other mounts (as container runtimes do): EPERM then.
    """
    try:
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
    except OSError as err:
        return errno_name(err)
    return None


@dataclass(frozen=True)
class MountEntry:
    """One line of ``/proc/<pid>/mountinfo`` (the fields this module needs)."""

    mount_id: int
    device: str  # "major:minor"
    root: str  # the directory of the filesystem that is mounted here
    mount_point: str
    fstype: str


def _unescape(field: str) -> str:
    r"""mountinfo escapes space, tab, newline and backslash as ``\ooo``."""
    out: list[str] = []
    i = 0
    while i < len(field):
        char = field[i]
        octal = field[i + 1 : i + 4]
        if char == "\\" and len(octal) == 3 and all(c in "01234567" for c in octal):
            out.append(chr(int(octal, 8)))
            i += 4
        else:
            out.append(char)
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[MountEntry]:
    """Entries of a mountinfo text; lines that do not have the documented shape are skipped."""
    entries: list[MountEntry] = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split(" ")
        tail = right.split(" ")
        if not sep or len(fields) < 6 or not tail or not fields[0].isdigit():
            continue
        entries.append(
            MountEntry(
                mount_id=int(fields[0]),
                device=fields[2],
                root=_unescape(fields[3]),
                mount_point=_unescape(fields[4]),
                fstype=tail[0],
            )
        )
    return entries


def read_mountinfo() -> list[MountEntry]:
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as handle:
        return parse_mountinfo(handle.read())


def mount_id_of(fd: int) -> int:
    """The id of the mount an open file lives on (``mnt_id`` in /proc/self/fdinfo)."""
    with open(f"/proc/self/fdinfo/{fd}", encoding="ascii") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            if key == "mnt_id":
                return int(value)
    raise OSError(errno.ENOTSUP, "no mnt_id in /proc/self/fdinfo")


def _within(path: PurePosixPath, ancestor: PurePosixPath) -> bool:
    return path == ancestor or ancestor in path.parents


def paths_reaching(entries: list[MountEntry], device: str, fs_path: str) -> list[str]:
    """Every path, in the mount table ``entries``, at which directory ``fs_path`` of the
    filesystem on ``device`` (or a part of it) can be reached.

    A mount of an ancestor of ``fs_path`` reaches it below its mount point; a mount of
    ``fs_path`` itself or of a directory inside it is such a path itself.
    """
    target = PurePosixPath(fs_path)
    found: list[str] = []
    for entry in entries:
        if entry.device != device:
            continue
        root = PurePosixPath(entry.root)
        point = PurePosixPath(entry.mount_point)
        if _within(target, root):
            found.append(str(point / target.relative_to(root)))
        elif _within(root, target):
            found.append(str(point))
    return sorted(dict.fromkeys(found), key=lambda p: (p.count("/"), p))


def hide(path: str) -> None:
    """Cover ``path`` with an empty, read-only tmpfs."""
    mount(
        "attest-step-hidden",
        path,
        "tmpfs",
        MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
        "size=4k,nr_inodes=1,mode=0555",
    )


def same_file(path: str, device: int, inode: int) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (device, inode)


def cwd_within(device: int, inode: int, *, max_depth: int = 4096) -> bool:
    """True when the working directory is directory (device, inode) or below it."""
    path = "."
    root = os.stat("/")
    for _ in range(max_depth):
        st = os.stat(path)
        if (st.st_dev, st.st_ino) == (device, inode):
            return True
        if (st.st_dev, st.st_ino) == (root.st_dev, root.st_ino):
            return False
        parent = os.stat(path + "/..")
        if (parent.st_dev, parent.st_ino) == (st.st_dev, st.st_ino):
            return False
        path += "/.."
    return True  # deeper than any real tree: refuse rather than guess


def landlock_abi() -> int:
    """The Landlock ABI version this kernel offers; 0 when Landlock is unavailable."""
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    version = libc.syscall(
        _SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), _LANDLOCK_CREATE_RULESET_VERSION
    )
    return max(int(version), 0)


def landlock_restrict(abi: int) -> None:
    """Put the caller (and everything it starts) in a new Landlock domain.

    What matters is the domain itself: Landlock lets a process in a domain ptrace-access only
    processes in the same domain or a nested one, so every ``/proc/<pid>`` of a process
    outside is closed. From ABI 6 the ruleset only scopes signals and abstract Unix sockets
    to the domain, and the command may still mount (in its own mount namespace, where the
    cover is locked). Before ABI 6 a ruleset must handle some filesystem access: it handles
    "make a block device" (which the command cannot do anyway), and Landlock then also
    refuses the command every mount. Needs no_new_privs or CAP_SYS_ADMIN in the caller's user
    namespace.
    """
    if abi >= 6:
        scoped = _LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | _LANDLOCK_SCOPE_SIGNAL
        attr = struct.pack("QQQ", 0, 0, scoped)
    else:
        attr = struct.pack("Q", _LANDLOCK_ACCESS_FS_MAKE_BLOCK)
    buffer = ctypes.create_string_buffer(attr, len(attr))
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    fd = libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, buffer, ctypes.c_size_t(len(attr)), 0)
    if fd < 0:
        _raise_errno("landlock_create_ruleset")
    try:
        if libc.syscall(_SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(fd), 0) != 0:
            _raise_errno("landlock_restrict_self")
    finally:
        os.close(fd)


def mark_fds_cloexec(first: int = 3) -> None:
    """Close every descriptor from ``first`` up at the next exec."""
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    if (
        libc.syscall(
            _SYS_CLOSE_RANGE, ctypes.c_uint(first), ctypes.c_uint(0xFFFFFFFF), _CLOSE_RANGE_CLOEXEC
        )
        == 0
    ):
        return
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd >= first:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                continue
