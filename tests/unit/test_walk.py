"""The walk: naming, excludes, symlink policy, special files, non-UTF-8 names."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from attest_step.errors import AttestStepError, UsageError
from attest_step.walk import Excludes, Kind, decode_name, encode_name, walk_tree


def names(root: Path, excludes: tuple[str, ...] = (), keep_links: bool = False) -> list[str]:
    entries = walk_tree(os.fsencode(root), Excludes(excludes), keep_links=keep_links)
    return [e.name for e in entries]


def make(root: Path, *rels: str) -> None:
    for rel in rels:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rel)


def test_names_are_relative_sorted_and_slash_separated(tmp_path: Path) -> None:
    make(tmp_path, "b", "a/z", "a/b/c", "a-b")
    assert names(tmp_path) == ["a-b", "a/b/c", "a/z", "b"]  # raw-byte order


def test_empty_directories_give_nothing(tmp_path: Path) -> None:
    (tmp_path / "empty" / "deeper").mkdir(parents=True)
    assert names(tmp_path) == []


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("*.log", ["a/keep.txt", "keep.txt"]),
        ("a", ["keep.txt", "x.log"]),
        ("a/*", ["keep.txt", "x.log"]),
        ("/x.log", ["a/keep.txt", "a/x.log", "keep.txt"]),
        ("a/*.log", ["a/keep.txt", "keep.txt", "x.log"]),
        ("**/x.log", ["a/keep.txt", "keep.txt"]),
        ("keep.tx?", ["a/x.log", "x.log"]),
        ("[kx]*", []),
        ("[!k]*", ["keep.txt"]),  # also leaves out the directory "a"
        ("nothing", ["a/keep.txt", "a/x.log", "keep.txt", "x.log"]),
    ],
)
def test_exclude_patterns(tmp_path: Path, pattern: str, expected: list[str]) -> None:
    make(tmp_path, "keep.txt", "x.log", "a/keep.txt", "a/x.log")
    assert names(tmp_path, (pattern,)) == expected


def test_star_does_not_cross_slash(tmp_path: Path) -> None:
    make(tmp_path, "a/b/c.log", "a/c.log")
    assert names(tmp_path, ("a/*.log",)) == ["a/b/c.log"]


def test_excluded_directory_is_not_entered(tmp_path: Path) -> None:
    make(tmp_path, "ok")
    (tmp_path / "cache").mkdir()
    os.mkfifo(tmp_path / "cache" / "fifo")  # would be refused if walked
    assert names(tmp_path, ("cache",)) == ["ok"]


@pytest.mark.parametrize("pattern", ["", "/", "//"])
def test_empty_exclude_is_a_usage_error(pattern: str) -> None:
    with pytest.raises(UsageError, match="--exclude"):
        Excludes([pattern])


def test_link_to_file_inside_is_hashed_under_link_name(tmp_path: Path) -> None:
    make(tmp_path, "real")
    (tmp_path / "alias").symlink_to("real")
    entries = walk_tree(os.fsencode(tmp_path), Excludes(()))
    by_name = {e.name: e for e in entries}
    assert sorted(by_name) == ["alias", "real"]
    assert by_name["alias"].path == by_name["real"].path
    assert by_name["alias"].kind is Kind.FILE


def test_link_to_directory_inside_is_not_descended(tmp_path: Path) -> None:
    make(tmp_path, "d/f")
    (tmp_path / "dl").symlink_to("d")
    assert names(tmp_path) == ["d/f"]


def test_link_escaping_root_is_an_error_naming_it(tmp_path: Path) -> None:
    root = tmp_path / "root"
    make(root, "ok")
    make(tmp_path, "outside")
    (root / "esc").symlink_to("../outside")
    with pytest.raises(AttestStepError, match=r"root/esc: symbolic link points outside"):
        names(root)
    assert names(root, ("esc",)) == ["ok"]


def test_absolute_link_escaping_root_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "etc").symlink_to("/etc")
    with pytest.raises(AttestStepError, match="outside"):
        names(tmp_path)


@pytest.mark.parametrize("target", ["missing", "loop"])
def test_broken_or_looping_link_is_an_error(tmp_path: Path, target: str) -> None:
    (tmp_path / "loop").symlink_to("loop") if target == "loop" else None
    (tmp_path / "bad").symlink_to(target)
    with pytest.raises(AttestStepError, match="bad: symbolic link is broken or loops"):
        names(tmp_path)


def test_keep_links_records_every_link_unfollowed(tmp_path: Path) -> None:
    make(tmp_path, "f")
    (tmp_path / "esc").symlink_to("/etc/passwd")
    (tmp_path / "dangling").symlink_to("nowhere")
    entries = walk_tree(os.fsencode(tmp_path), Excludes(()), keep_links=True)
    links = {e.name: e.link_target for e in entries if e.kind is Kind.LINK}
    assert links == {"dangling": b"nowhere", "esc": b"/etc/passwd"}


def test_fifo_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(AttestStepError, match="pipe: is a FIFO"):
        names(tmp_path)


def test_socket_is_refused(tmp_path: Path) -> None:
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(tmp_path / "s"))
        with pytest.raises(AttestStepError, match="s: is a socket"):
            names(tmp_path)
    finally:
        sock.close()


def test_link_to_device_inside_is_refused(tmp_path: Path) -> None:
    # A device node cannot be made without privileges; a link to /dev/null escapes anyway.
    (tmp_path / "null").symlink_to("/dev/null")
    with pytest.raises(AttestStepError, match="null"):
        names(tmp_path)


def test_non_utf8_names_are_percent_encoded(tmp_path: Path) -> None:
    raw = os.fsencode(tmp_path) + b"/caf\xe9%.txt"
    with open(raw, "wb") as handle:
        handle.write(b"x")
    entries = walk_tree(os.fsencode(tmp_path), Excludes(()))
    assert [e.name for e in entries] == ["caf%E9%25.txt"]
    assert entries[0].rel == b"caf\xe9%.txt"


def test_exclude_matches_encoded_non_utf8_name(tmp_path: Path) -> None:
    with open(os.fsencode(tmp_path) + b"/bad\xff", "wb"):
        pass
    assert names(tmp_path, ("bad%FF",)) == []


@given(st.text())
def test_utf8_names_are_unchanged(text: str) -> None:
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates are not UTF-8
        return
    assert encode_name(raw) == text


@given(st.binary())
def test_encoding_is_reversible_and_ascii_safe_for_invalid_bytes(raw: bytes) -> None:
    name = encode_name(raw)
    name.encode("utf-8")  # always valid UTF-8 (JSON-safe)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        assert decode_name(name) == raw
    else:
        assert name == raw.decode("utf-8")
