"""The evidence volume: where ``attest-step run`` writes its records and ``attest`` reads them.

The evidence volume is a volume of its own (an emptyDir), mounted only into the steps whose
command runs under ``attest-step run`` and into the attest step. Both sides require the
directory to be the **mount point** of that volume, because a plain directory can be moved
away by anyone who can write its parent (the build can rename a workspace subdirectory and
put a forged one in its place); a mount point cannot be renamed, and each container mounts
the volume itself.

Producer (the isolating parent of ``run``): :meth:`EvidenceVolume.open` before the fork, then
:meth:`EvidenceVolume.write` through the same open directory after the command's whole
process tree has ended. The command never sees the volume (see ``isolate`` and ``shield``).

Consumer (``attest --evidence-dir``): :func:`read_records`, bounded in count and size; every
entry must be a record file named ``<step>.json`` or ``<step>.<n>.json``.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attest_step.errors import AttestStepError, UsageError
from attest_step.fileio import write_new_file
from attest_step.hermetic import evidence, shield

STEP_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
RECORD_NAME = re.compile(
    r"(?P<step>[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)(\.(?P<n>[2-9]|[1-9][0-9]))?\.json"
)
MAX_RECORDS = 64
MAX_RECORDS_PER_STEP = 99


def check_step_name(name: str, what: str) -> str:
    if not STEP_NAME.fullmatch(name):
        raise UsageError(
            f"{what} {name!r}: not a Tekton step name (lowercase letters, digits and '-', "
            "at most 63 characters)"
        )
    return name


def _open_mount_point(path: Path, what: str) -> int:
    """An O_DIRECTORY descriptor of ``path``, which must be the root of a mount."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as err:
        raise UsageError(f"{what} {path}: cannot open the directory ({err.strerror})") from err
    try:
        parent = os.open("..", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
        try:
            own, above = shield.mount_id_of(fd), shield.mount_id_of(parent)
        finally:
            os.close(parent)
    except OSError as err:
        os.close(fd)
        raise UsageError(f"{what} {path}: cannot tell its mount ({err.strerror})") from err
    if own == above:
        os.close(fd)
        raise UsageError(
            f"{what} {path}: not the mount point of a volume. Give the evidence a volume of "
            "its own (an emptyDir mounted only by the isolated steps and the attest step): a "
            "directory inside a workspace can be moved away by the build"
        )
    return fd


@dataclass
class EvidenceVolume:
    """The evidence volume as the isolating parent holds it: opened before the fork."""

    path: Path
    fd: int
    device: int
    inode: int
    mount_device: str
    fs_root: str
    names_before: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def open(cls, path: Path) -> EvidenceVolume:
        fd = _open_mount_point(path, "--evidence-dir")
        try:
            mount_id = shield.mount_id_of(fd)
            entry = next((e for e in shield.read_mountinfo() if e.mount_id == mount_id), None)
            if entry is None:
                raise UsageError(f"--evidence-dir {path}: its mount is not in mountinfo")
            st = os.fstat(fd)
            probe = f".write-test.{os.getpid()}.{secrets.token_hex(4)}"
            try:
                os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=fd))
                os.unlink(probe, dir_fd=fd)
            except OSError as err:
                raise UsageError(
                    f"--evidence-dir {path}: cannot write there ({err.strerror}); the command "
                    "was NOT run"
                ) from err
            names = frozenset(os.listdir(fd))
        except BaseException:
            os.close(fd)
            raise
        return cls(
            path=path,
            fd=fd,
            device=st.st_dev,
            inode=st.st_ino,
            mount_device=entry.device,
            fs_root=entry.root,
            names_before=names,
        )

    def names_now(self) -> frozenset[str]:
        return frozenset(os.listdir(self.fd))

    def next_name(self, step: str) -> str:
        """The first free record name for ``step``: ``<step>.json``, then ``<step>.2.json``…"""
        present = self.names_now()
        for number in range(1, MAX_RECORDS_PER_STEP + 1):
            name = f"{step}.json" if number == 1 else f"{step}.{number}.json"
            if name not in present:
                return name
        raise AttestStepError(
            f"--evidence-dir {self.path}: already {MAX_RECORDS_PER_STEP} records for step {step}"
        )

    def write(self, name: str, data: bytes) -> None:
        """Write ``data`` as ``name``: a fresh temporary file, fsynced, then hard-linked to
        ``name``, which must not exist (a record is never replaced)."""
        temp = f".{name}.{os.getpid()}.{secrets.token_hex(8)}.tmp"
        try:
            write_new_file(self.fd, temp, data)
            try:
                os.link(temp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd, follow_symlinks=False)
            finally:
                os.unlink(temp, dir_fd=self.fd)
            os.fsync(self.fd)
        except OSError as err:
            raise AttestStepError(
                f"--evidence-dir {self.path}: cannot write {name} ({err.strerror})"
            ) from err

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


@dataclass
class FoundRecord:
    """A record read from the evidence volume."""

    name: str
    step: str
    record: dict[str, Any]


def read_records(path: Path) -> list[FoundRecord]:
    """Every record in the evidence volume mounted at ``path``; refuses anything else there."""
    fd = _open_mount_point(path, "--evidence-dir")
    try:
        names = sorted(os.listdir(fd))
        if len(names) > MAX_RECORDS:
            raise UsageError(f"--evidence-dir {path}: more than {MAX_RECORDS} entries")
        found: list[FoundRecord] = []
        for name in names:
            match = RECORD_NAME.fullmatch(name)
            source = f"--evidence-dir {path}: {name}"
            if match is None:
                raise UsageError(
                    f"{source}: not a record of 'attest-step run' (<step>.json); the evidence "
                    "volume must hold nothing else"
                )
            try:
                file_fd = os.open(
                    name,
                    os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                    dir_fd=fd,
                )
            except OSError as err:
                raise UsageError(f"{source}: cannot open it ({err.strerror})") from err
            try:
                if not stat.S_ISREG(os.fstat(file_fd).st_mode):
                    raise UsageError(f"{source}: not a regular file")
                data = evidence.read_bounded(file_fd, evidence.MAX_RECORD_BYTES)
            finally:
                os.close(file_fd)
            record = evidence.parse(data, source=source)
            found.append(FoundRecord(name=name, step=match.group("step"), record=record))
        return found
    finally:
        os.close(fd)
