"""write_atomically never renames over anything but a regular file (issue 11, section 3).

The devices these tests write to are made in the test's own temp dir; the real /dev/null is
never touched.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from attest_step.cli.main import cli
from attest_step.errors import UsageError
from attest_step.fileio import check_replaceable, read_small_file, write_atomically
from tests.fixtures.keys import KeyPair, PemKey, make_secret_mount
from tests.fixtures.tools import require_machine


def _null_twin(directory: Path) -> Path:
    """A character device with /dev/null's numbers, in ``directory`` (root only)."""
    require_machine(os.geteuid() == 0, "root, to make a character device with mknod")
    node = directory / "null"
    os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.chmod(node, 0o666)  # mknod's mode is masked by the umask
    return node


def _assert_still_device(node: Path) -> None:
    info = os.lstat(node)
    assert stat.S_ISCHR(info.st_mode), "the device was replaced by another kind of file"
    assert info.st_rdev == os.makedev(1, 3)
    assert stat.S_IMODE(info.st_mode) == 0o666


def test_attack_output_file_dev_null_as_root_keeps_the_device(tmp_path: Path) -> None:
    node = _null_twin(tmp_path)
    write_atomically(node, b"x" * 100)
    _assert_still_device(node)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null"], "a temp file was left"


def test_attest_output_file_to_a_char_device_keeps_it(
    tmp_path: Path, pem_keys: dict[str, PemKey]
) -> None:
    node = _null_twin(tmp_path)
    subject = tmp_path / "a.txt"
    subject.write_text("a\n")
    result = CliRunner().invoke(
        cli,
        [
            "attest",
            "--key",
            str(pem_keys["ecdsa-p256"].key),
            "--subject-path",
            str(subject),
            "--output-file",
            str(node),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    _assert_still_device(node)


def test_fifo_is_written_in_place(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []

    def read() -> None:
        with open(fifo, "rb") as handle:
            got.append(handle.read())

    reader = threading.Thread(target=read, daemon=True)  # a regression must not hang pytest
    reader.start()
    write_atomically(fifo, b"envelope\n")
    reader.join(timeout=10)
    assert got == [b"envelope\n"]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_symlink_to_a_device_is_written_through_and_kept(tmp_path: Path) -> None:
    node = _null_twin(tmp_path)
    link = tmp_path / "stdout"
    link.symlink_to(node)
    write_atomically(link, b"data")
    assert link.is_symlink()
    _assert_still_device(node)


def test_attack_symlink_to_a_regular_file_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "elsewhere.txt"
    secret.write_text("keep me\n")
    link = tmp_path / "provenance.json"
    link.symlink_to(secret)
    with pytest.raises(UsageError, match="symbolic link"):
        write_atomically(link, b"data")
    assert link.is_symlink()
    assert secret.read_text() == "keep me\n"


def test_directory_target_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "dir"
    target.mkdir()
    with pytest.raises(UsageError, match="not a regular file"):
        write_atomically(target, b"data")
    assert target.is_dir()


def test_regular_file_is_replaced_atomically(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    target.write_text("old")
    inode = target.stat().st_ino
    write_atomically(target, b"new")
    assert target.read_bytes() == b"new"
    assert target.stat().st_ino != inode, "a regular file is replaced by rename, not rewritten"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_dash_writes_stdout(capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    write_atomically(Path("-"), b"to stdout")
    assert capfdbinary.readouterr().out == b"to stdout"


_ENV_WITHOUT_PASSWORD = {k: v for k, v in os.environ.items() if k != "COSIGN_PASSWORD"}


def _attest_step(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real CLI in its own process, with a deadline: a FIFO must not make it hang."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "attest-step"), *args],
        capture_output=True, text=True, check=False, timeout=30,
        env={**_ENV_WITHOUT_PASSWORD, **(env or {})}, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_attack_fifo_as_key_is_refused_without_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "key"
    os.mkfifo(fifo)
    proc = _attest_step("attest", "--key", str(fifo), "--subject-path", str(tmp_path))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "not a regular file" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_attack_zero_device_as_key_is_refused(tmp_path: Path) -> None:
    require_machine(os.geteuid() == 0, "root, to make a character device with mknod")
    zero = tmp_path / "zero"
    os.mknod(zero, 0o666 | stat.S_IFCHR, os.makedev(1, 5))  # /dev/zero's numbers
    proc = _attest_step("attest", "--key", str(zero), "--subject-path", str(tmp_path))
    assert proc.returncode == 2, proc.stderr
    assert "not a regular file" in proc.stderr


def test_attack_huge_key_file_is_refused_before_reading(tmp_path: Path) -> None:
    key = tmp_path / "cosign.key"
    with key.open("wb") as handle:
        handle.truncate(300 * 1024 * 1024)  # sparse: 300 MB without writing them
    proc = _attest_step("attest", "--key", str(key), "--subject-path", str(tmp_path))
    assert proc.returncode == 2, proc.stderr
    assert "larger than 1048576 bytes" in proc.stderr


def test_attack_fifo_as_password_file_is_refused(tmp_path: Path, cosign_key_pair: KeyPair) -> None:
    fifo = tmp_path / "password"
    os.mkfifo(fifo)
    proc = _attest_step(
        "attest", "--key", str(cosign_key_pair.key), "--subject-path", str(tmp_path),
        env={"ATTEST_STEP_PASSWORD_FILE": str(fifo)},
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "not a regular file" in proc.stderr
    assert cosign_key_pair.password not in proc.stdout + proc.stderr


def test_read_small_file_reads_a_regular_file(tmp_path: Path) -> None:
    path = tmp_path / "k"
    path.write_bytes(b"x" * 10)
    assert read_small_file(path, "--key", limit=10) == b"x" * 10
    path.write_bytes(b"x" * 11)
    with pytest.raises(UsageError, match="larger than 10 bytes"):
        read_small_file(path, "--key", limit=10)


def test_closed_stdout_exits_quietly_with_141(tmp_path: Path) -> None:
    """`attest-step hash … | head -1`: no traceback, no 'internal error', status 141."""
    for n in range(3000):
        (tmp_path / f"f{n}").write_text(str(n))
    hasher = subprocess.Popen(
        [str(Path(sys.executable).parent / "attest-step"), "hash", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert hasher.stdout is not None and hasher.stderr is not None
    hasher.stdout.readline()
    hasher.stdout.close()
    assert hasher.wait(timeout=30) == 141
    assert hasher.stderr.read() == b""


# ---------------------------------------------------------------- links, races, aliases


def _twin(directory: Path, name: str, minor: int) -> Path:
    """A character device with the numbers of /dev/<name> (1, minor) in ``directory``."""
    require_machine(os.geteuid() == 0, "root, to make a character device with mknod")
    node = directory / name
    os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, minor))
    return node


def test_attack_symlink_to_a_device_other_than_null_is_refused(tmp_path: Path) -> None:
    """A link planted at the output path must not aim the write at a device."""
    zero = _twin(tmp_path, "zero", 5)  # stands in for /dev/watchdog, /dev/kmsg, ...
    link = tmp_path / "provenance.json"
    link.symlink_to(zero)
    with pytest.raises(UsageError, match="a symbolic link to a character device"):
        write_atomically(link, b"data")
    assert link.is_symlink()
    info = os.lstat(zero)
    assert stat.S_ISCHR(info.st_mode) and info.st_rdev == os.makedev(1, 5)


def test_attack_dangling_symlink_is_refused_not_created_through(tmp_path: Path) -> None:
    link = tmp_path / "out.json"
    link.symlink_to(tmp_path / "elsewhere" / "planted.json")
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(UsageError, match="leads nowhere"):
        write_atomically(link, b"data")
    assert not (tmp_path / "elsewhere" / "planted.json").exists()


def test_attack_device_swapped_for_a_link_after_lstat_is_not_written_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """lstat sees a device, then the entry becomes a link to a file before open()."""
    node = _null_twin(tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("keep me\n")
    out = tmp_path / "out.json"
    out.symlink_to(secret)
    real_lstat = os.lstat
    monkeypatch.setattr(
        "attest_step.fileio.os.lstat", lambda p: real_lstat(node if Path(p) == out else p)
    )
    with pytest.raises(UsageError, match="changed while it was being opened"):
        write_atomically(out, b"overwritten")
    assert secret.read_text() == "keep me\n"


@pytest.mark.parametrize("alias", ["/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"])
def test_dev_stdout_is_standard_output_even_when_redirected_to_a_file(
    alias: str, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    """pytest's capture makes fd 1 a regular file: the alias must not be refused as a link
    to a file, nor reopened (which would overwrite from offset 0)."""
    os.write(1, b"before|")
    write_atomically(Path(alias), b"envelope")
    assert capfdbinary.readouterr().out == b"before|envelope"


def test_process_substitution_pipe_is_written_through(tmp_path: Path) -> None:
    """``--output-file >(gzip > x)``: /dev/fd/N, a link to a pipe."""
    read_end, write_end = os.pipe()
    try:
        write_atomically(Path(f"/proc/self/fd/{write_end}"), b"through the pipe")
        assert os.read(read_end, 100) == b"through the pipe"
    finally:
        os.close(read_end)
        os.close(write_end)


def test_check_replaceable(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "file").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "file")
    for fine in ("missing", "file", "link"):
        check_replaceable(tmp_path / fine, "--evidence-file")
    with pytest.raises(UsageError, match=r"--evidence-file .*fifo: a FIFO"):
        check_replaceable(fifo, "--evidence-file")
    with pytest.raises(UsageError, match="a directory"):
        check_replaceable(tmp_path, "--evidence-file")


@pytest.mark.parametrize("verb", ["run", "probe"])
def test_attack_evidence_file_dev_null_as_root_keeps_the_device(verb: str, tmp_path: Path) -> None:
    """`run`/`probe --evidence-file /dev/null` wrote by rename: a root run replaced the device."""
    node = _null_twin(tmp_path)
    args = ["--evidence-file", str(node)]
    proc = _attest_step(verb, *args, *(["--", "true"] if verb == "run" else []))
    assert proc.returncode == 2, proc.stderr
    assert "a character device" in proc.stderr and proc.stderr.count("\n") == 1
    _assert_still_device(node)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null"]


def test_attack_public_key_outfile_symlink_does_not_overwrite_its_target(
    tmp_path: Path, pem_keys: dict[str, PemKey]
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    link = tmp_path / "cosign.pub"
    link.symlink_to(victim)
    proc = _attest_step(
        "public-key", "--key", str(pem_keys["ecdsa-p256"].key), "--outfile", str(link)
    )
    assert proc.returncode == 2, proc.stderr
    assert "--outfile" in proc.stderr and "symbolic link" in proc.stderr
    assert victim.read_text() == "keep me\n"


def test_attack_fifo_key_file_is_never_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused from stat() alone: opening a device can have effects of its own."""
    fifo = tmp_path / "key"
    os.mkfifo(fifo)
    opened: list[object] = []
    real_open = os.open

    def recording_open(*args: Any, **kwargs: Any) -> int:
        opened.append(args)
        return real_open(*args, **kwargs)

    monkeypatch.setattr("attest_step.fileio.os.open", recording_open)
    with pytest.raises(UsageError, match=r"not a regular file \(a FIFO\)"):
        read_small_file(fifo, "--key")
    assert opened == []


def test_attack_fifo_as_secret_password_is_refused(
    tmp_path: Path, cosign_key_pair: KeyPair
) -> None:
    """A Secret dir whose cosign.password is a FIFO: refused, not skipped in favour of the
    environment's password, and no hang."""
    mount = make_secret_mount(tmp_path / "secret", {"cosign.key": cosign_key_pair.key.read_bytes()})
    os.mkfifo(mount / "..data" / "cosign.password")
    (mount / "cosign.password").symlink_to("..data/cosign.password")
    proc = _attest_step(
        "attest", "--key", str(mount), "--subject-path", str(cosign_key_pair.pub),
        env={"COSIGN_PASSWORD": cosign_key_pair.password},
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "cosign.password is a FIFO, not a regular file" in proc.stderr
    assert cosign_key_pair.password not in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("verb", "flag"),
    [
        ("verify-attestation", "--envelope"),
        ("verify-attestation", "--policy"),
        ("attest", "--params-file"),
    ],
)
def test_attack_fifo_as_other_input_files_is_refused_without_hanging(
    verb: str, flag: str, tmp_path: Path, pem_keys: dict[str, PemKey]
) -> None:
    fifo = tmp_path / "input"
    os.mkfifo(fifo)
    key = pem_keys["ecdsa-p256"]
    extra = {
        "verify-attestation": ["--key", str(key.pub), "--envelope", str(fifo)],
        "attest": ["--key", str(key.key), "--subject-path", str(key.pub), "--output-file", "-"],
    }[verb]
    args = [verb, *extra] if flag == "--envelope" else [verb, *extra, flag, str(fifo)]
    if verb == "verify-attestation" and flag == "--policy":
        envelope = tmp_path / "e.json"
        envelope.write_text("{}")
        args = [verb, "--key", str(key.pub), "--envelope", str(envelope), "--policy", str(fifo)]
    proc = _attest_step(*args)
    assert proc.returncode == 2, proc.stderr
    assert "not a regular file (a FIFO)" in proc.stderr and proc.stderr.count("\n") == 1
