"""The JSON path of ``attest-step hash --output json``: byte-identical to json.dumps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attest_step.errors import AttestStepError
from attest_step.hashing import hash_paths, hash_paths_json
from attest_step.hashing.engine import hash_entries_hex, hash_files_json
from attest_step.hashing.jsontext import sha256_items, wrap_items
from attest_step.walk import Excludes, walk_tree

# Raw file name components: printable, spaces, quotes, backslashes, newlines, non-ASCII
# UTF-8 and bytes that are not UTF-8 (percent-encoded names, maybe out of order).
COMPONENT = st.one_of(
    st.text(
        st.characters(codec="utf-8", exclude_characters="/\0"),
        min_size=1,
        max_size=6,
    ).map(lambda t: t.encode("utf-8")),
    st.binary(min_size=1, max_size=4).filter(lambda b: b"/" not in b and b"\0" not in b),
).filter(lambda b: b not in (b".", b".."))
TREES = st.dictionaries(
    st.lists(COMPONENT, min_size=1, max_size=3).map(tuple),
    st.binary(max_size=64),
    min_size=1,
    max_size=12,
)


def make_tree(root: Path, files: dict[tuple[bytes, ...], bytes]) -> int:
    """Write ``files``; returns how many were written (a path that is a prefix of another
    one is skipped: it cannot be both a file and a directory)."""
    base = os.fsencode(root)
    written = 0
    for parts, data in sorted(files.items()):
        path = os.path.join(base, *parts)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "xb") as handle:
                handle.write(data)
        except (FileExistsError, NotADirectoryError, IsADirectoryError):
            continue
        written += 1
    return written


def expected_json(paths: list[Path]) -> bytes:
    subjects = hash_paths(paths)
    return json.dumps([s.to_dict() for s in subjects], indent=2, sort_keys=True).encode()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(files=TREES)
def test_json_is_json_dumps_for_random_trees(
    tmp_path_factory: pytest.TempPathFactory, files: dict[tuple[bytes, ...], bytes]
) -> None:
    root = tmp_path_factory.mktemp("tree")
    if not make_tree(root, files):
        return
    try:
        expected = expected_json([root])
    except AttestStepError as err:  # e.g. two names equal once percent-encoded
        with pytest.raises(AttestStepError) as caught:
            hash_paths_json([root])
        assert str(caught.value) == str(err)
        return
    assert hash_paths_json([root]) == expected


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(files=TREES, workers=st.integers(1, 3))
def test_forked_workers_render_the_same_items(
    tmp_path_factory: pytest.TempPathFactory, files: dict[tuple[bytes, ...], bytes], workers: int
) -> None:
    root = tmp_path_factory.mktemp("tree")
    if not make_tree(root, files):
        return
    entries = walk_tree(os.fsencode(root), Excludes(()))
    names = [entry.name for entry in entries]
    hexes, _ = hash_entries_hex(entries, workers=1)
    forked = hash_files_json(entries, names, workers=workers, fork_min_files=1)
    assert forked == sha256_items(names, hexes).encode("ascii")
    subjects = [{"digest": {"sha256": h}, "name": n} for n, h in zip(names, hexes, strict=True)]
    assert wrap_items(forked.decode("ascii")) == json.dumps(subjects, indent=2, sort_keys=True)


def test_empty_items_wrap_like_json_dumps() -> None:
    assert wrap_items(sha256_items([], [])) == json.dumps([], indent=2) == "[]"


def test_forked_json_reports_the_first_error_in_entry_order(tmp_path: Path) -> None:
    for n in range(40):
        (tmp_path / f"f{n:02}").write_bytes(b"x")
    entries = walk_tree(os.fsencode(tmp_path), Excludes(()))
    (tmp_path / "f07").unlink()
    (tmp_path / "f31").unlink()
    with pytest.raises(AttestStepError, match=r"f07: cannot open for hashing"):
        hash_files_json(entries, [e.name for e in entries], workers=2, fork_min_files=1)


def test_json_path_refuses_links_and_mismatched_names(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"a")
    os.symlink("a", tmp_path / "l")
    links = walk_tree(os.fsencode(tmp_path), Excludes(()), keep_links=True)
    with pytest.raises(ValueError, match="file entries only"):
        hash_files_json(links, [e.name for e in links])
    files = walk_tree(os.fsencode(tmp_path), Excludes(()))
    with pytest.raises(ValueError, match="one name per entry"):
        hash_files_json(files, [])


def test_cli_process_output_is_json_dumps(tmp_path: Path) -> None:
    """The whole process (forked workers, one write, early exit) against json.dumps."""
    root = tmp_path / "out"
    for n in range(1200):
        path = os.path.join(os.fsencode(root), b"d%d" % (n % 3), b'f %d "q"\\\n\xc3\xa9' % n)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(b"%d" % n)
    os.symlink("d0/" + os.listdir(root / "d0")[0], root / "link")
    result = subprocess.run(
        [sys.executable, "-m", "attest_step", "hash", str(root), "--output", "json"],
        capture_output=True,
        check=True,
    )
    assert result.stdout == expected_json([root]) + b"\n"
    assert result.stderr == b""
