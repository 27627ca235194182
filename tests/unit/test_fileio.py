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

import pytest
from click.testing import CliRunner

from attest_step.cli.main import cli
from attest_step.errors import UsageError
from attest_step.fileio import read_small_file, write_atomically
from tests.fixtures.keys import KeyPair, PemKey
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

    reader = threading.Thread(target=read)
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
