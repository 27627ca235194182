"""--dir-digest: the listing format of docs/hashing.md, recomputed independently."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attest_step.dirdigest import HEADER, dir_digest, listing
from attest_step.hashing import hash_paths
from attest_step.hashing.file import Hashed
from attest_step.walk import Excludes, walk_tree


def reference_dir_digest(root: Path) -> str:
    """Written from the spec in docs/hashing.md, sharing no code with attest_step."""
    rows: list[tuple[bytes, bytes]] = []
    base = os.fsencode(root)
    for dirpath, dirnames, filenames in os.walk(base):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, base)
            st_ = os.lstat(full)
            if stat.S_ISLNK(st_.st_mode):
                mode, content = b"120000", os.readlink(full)
            else:
                mode = b"100755" if st_.st_mode & 0o100 else b"100644"
                with open(full, "rb") as handle:
                    content = handle.read()
            hexdigest = hashlib.sha256(content).hexdigest().encode()
            rows.append((rel, mode + b" " + hexdigest + b" " + rel + b"\0"))
    body = b"".join(row for _, row in sorted(rows))
    return hashlib.sha256(b"attest-step dir-digest v1\n" + body).hexdigest()


def tree_digest(root: Path, excludes: tuple[str, ...] = ()) -> str:
    subjects = hash_paths([root], dir_digest=True, excludes=excludes)
    assert len(subjects) == 1
    assert subjects[0].name == root.name
    assert subjects[0].annotations == {"digestFormat": "attest-step-dir-digest-v1"}
    return subjects[0].digest["sha256"]


def build(root: Path) -> None:
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "a.txt").write_bytes(b"alpha\n")
    (root / "sub" / "b").write_bytes(b"")
    (root / "sub" / "deeper" / "tool").write_bytes(b"#!/bin/sh\n")
    (root / "sub" / "deeper" / "tool").chmod(0o755)
    (root / "link-out").symlink_to("/etc/passwd")
    (root / "dirlink").symlink_to("sub")
    (root / "a-b").write_bytes(b"sorts before a/ by bytes")
    with open(os.fsencode(root) + b"/n\xe9", "wb") as handle:
        handle.write(b"latin-1 name")


def test_matches_independent_reference(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    build(root)
    assert tree_digest(root) == reference_dir_digest(root)


def test_exact_bytes_of_a_small_listing(tmp_path: Path) -> None:
    root = tmp_path / "t"
    root.mkdir()
    (root / "x").write_bytes(b"x")
    (root / "l").symlink_to("x")
    entries = walk_tree(os.fsencode(root), Excludes(()), keep_links=True)
    hexes = [hashlib.sha256(b"x").hexdigest() for _ in entries]
    hashed = [Hashed(hexes[0], 0o120777), Hashed(hexes[1], 0o100640)]
    expected = (
        HEADER
        + b"120000 " + hexes[0].encode() + b" l\0"
        + b"100644 " + hexes[1].encode() + b" x\0"
    )  # fmt: skip
    assert listing(entries, hashed) == expected
    assert dir_digest(entries, hashed) == hashlib.sha256(expected).hexdigest()


def test_empty_directory_digest_is_the_header_alone(tmp_path: Path) -> None:
    (tmp_path / "e").mkdir()
    assert tree_digest(tmp_path / "e") == hashlib.sha256(HEADER).hexdigest()


@pytest.mark.parametrize(
    "change",
    ["content", "mode", "rename", "add", "link-target", "empty-file"],
)
def test_every_listed_property_changes_the_digest(tmp_path: Path, change: str) -> None:
    root = tmp_path / "tree"
    build(root)
    before = tree_digest(root)
    if change == "content":
        (root / "a.txt").write_bytes(b"beta\n")
    elif change == "mode":
        (root / "a.txt").chmod(0o744)
    elif change == "rename":
        (root / "a.txt").rename(root / "A.txt")
    elif change == "add":
        (root / "sub" / "new").write_bytes(b"")
    elif change == "link-target":
        (root / "dirlink").unlink()
        (root / "dirlink").symlink_to("sub/")
    else:
        (root / "empty").write_bytes(b"")
    assert tree_digest(root) != before


def test_group_and_other_bits_and_empty_dirs_do_not_matter(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    build(root)
    before = tree_digest(root)
    (root / "a.txt").chmod(0o600)
    (root / "sub" / "empty-dir").mkdir()
    assert tree_digest(root) == before


def test_excluded_entries_are_not_listed(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    build(root)
    before = tree_digest(root)
    (root / "junk.log").write_bytes(b"noise")
    assert tree_digest(root, ("*.log",)) == before


def test_links_are_never_followed(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    build(root)
    before = tree_digest(root)
    (root / "sub" / "b").write_bytes(b"changed through the real path")
    after = tree_digest(root)
    assert after != before  # the real file changed ...
    (root / "sub" / "b").write_bytes(b"")
    assert tree_digest(root) == before  # ... and dirlink/b was never hashed twice


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    files=st.dictionaries(
        st.lists(st.sampled_from(["a", "b", "a-", "é", "z z"]), min_size=1, max_size=3).map(
            "/".join
        ),
        st.binary(max_size=64),
        max_size=8,
    )
)
def test_random_trees_match_reference(
    tmp_path_factory: pytest.TempPathFactory, files: dict[str, bytes]
) -> None:
    root = tmp_path_factory.mktemp("tree")
    for rel, data in files.items():
        path = root / rel
        if any(parent.is_file() for parent in path.parents) or path.is_dir():
            continue  # a name used both as a file and a directory
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    assert tree_digest(root) == reference_dir_digest(root)
