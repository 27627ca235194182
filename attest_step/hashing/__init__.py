"""Hashing files and trees into subjects.

CONTRACT used by ``attest`` and ``hash``:
``hash_paths(paths, excludes=(), dir_digest=False) -> list[Subject]``: subjects named relative
to each root given, sorted by name, deterministic; raises AttestStepError on any problem.

Naming (docs/hashing.md): a file argument gives one subject named by its base name; a
directory argument gives one subject per file below it, named by the path relative to that
directory (the directory's own name is not part of it), or with ``dir_digest=True`` a single
subject named by the directory's base name whose digest covers the whole tree. Subjects of all
arguments share one namespace: two arguments that yield the same name are an error.
"""

from __future__ import annotations

import gc
import itertools
import operator
import os
import stat
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from attest_step.dirdigest import FORMAT_ANNOTATION
from attest_step.dirdigest import dir_digest as tree_digest
from attest_step.errors import UsageError
from attest_step.hashing.engine import hash_entries_hex, hash_files_json
from attest_step.hashing.file import Hashed
from attest_step.hashing.jsontext import subjects_json
from attest_step.model import Subject
from attest_step.walk import Entry, Excludes, Kind, encode_name, shown, walk_tree

if TYPE_CHECKING:
    from os import PathLike

    PathArg = str | bytes | PathLike[str] | PathLike[bytes]

__all__ = ["hash_paths", "hash_paths_json"]

_ENTRY_NAME = operator.attrgetter("name")


class _Root(NamedTuple):
    given: bytes
    entries: list[Entry]
    tree_name: str | None
    """Subject name of a directory digest; None for per-file subjects."""


def _base_name(given: bytes) -> bytes:
    base = os.path.basename(os.path.normpath(os.path.abspath(given)))
    return base or b"/"


def _plan_root(given: bytes, excludes: Excludes, dir_digest_mode: bool) -> _Root:
    if not given:
        raise UsageError("PATH: an empty path was given; name a file or directory to hash")
    try:
        st = os.stat(given)
    except OSError as err:
        raise UsageError(
            f"{shown(given)}: cannot hash it ({err.strerror or err}); "
            "give an existing file or directory"
        ) from None
    # A path given on the command line is the user's choice: a link there is followed once.
    real = os.path.realpath(given)
    if stat.S_ISDIR(st.st_mode):
        entries = walk_tree(real, excludes, keep_links=dir_digest_mode)
        if dir_digest_mode:
            return _Root(given, entries, encode_name(_base_name(given)))
        if not entries:
            raise UsageError(
                f"{shown(given)}: the directory has no files to hash (empty, or all excluded); "
                "check the path and the --exclude patterns"
            )
        return _Root(given, entries, None)
    if stat.S_ISREG(st.st_mode):
        rel = _base_name(given)
        entry = Entry(rel, encode_name(rel), real, Kind.FILE)
        return _Root(given, [entry], None)
    raise UsageError(
        f"{shown(given)}: is not a regular file or directory (a FIFO, socket or device); "
        "give the files the build produced"
    )


def hash_paths(
    paths: Sequence[PathArg], *, excludes: Sequence[str] = (), dir_digest: bool = False
) -> list[Subject]:
    """Subjects for ``paths``, sorted by name; see the module docstring for naming."""
    if not paths:
        raise UsageError("PATH: nothing to hash; give at least one file or directory")
    # Tens of thousands of entries, digests and subjects, none of them in a reference
    # cycle: the cyclic garbage collector would only re-scan them (~8% of the time).
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _hash_paths(paths, excludes, dir_digest)
    finally:
        if collecting:
            gc.enable()


def hash_paths_json(
    paths: Sequence[PathArg], *, excludes: Sequence[str] = (), dir_digest: bool = False
) -> bytes:
    """``json.dumps([s.to_dict() for s in hash_paths(...)], indent=2, sort_keys=True)``
    encoded (ASCII), byte for byte, with the same checks and errors.

    The path of ``attest-step hash --output json``: for one directory whose names come in
    order (the usual case), no Subject is built and the hashing workers render the JSON
    text of their own batches; anything else goes through :func:`hash_paths`.
    """
    if not paths:
        raise UsageError("PATH: nothing to hash; give at least one file or directory")
    collecting = gc.isenabled()
    gc.disable()
    try:
        matcher = Excludes(excludes)
        roots = [_plan_root(os.fsencode(path), matcher, dir_digest) for path in paths]
        if len(roots) == 1 and roots[0].tree_name is None:
            entries = roots[0].entries
            names = list(map(_ENTRY_NAME, entries))
            if _increasing(names):  # sorted, no duplicates: nothing left to check
                items = hash_files_json(entries, names)
                return b"[\n" + items + b"\n]" if items else b"[]"
        return subjects_json(_subjects(roots)).encode("ascii")
    finally:
        if collecting:
            gc.enable()


def _hash_paths(
    paths: Sequence[PathArg], excludes: Sequence[str], dir_digest: bool
) -> list[Subject]:
    matcher = Excludes(excludes)
    return _subjects([_plan_root(os.fsencode(path), matcher, dir_digest) for path in paths])


def _subjects(roots: list[_Root]) -> list[Subject]:
    every = [entry for root in roots for entry in root.entries]
    hexes, modes = hash_entries_hex(every)

    subjects: list[Subject] = []
    owner: dict[str, bytes] = {}

    def claim(name: str, given: bytes) -> None:
        previous = owner.setdefault(name, given)
        if previous is not given:
            raise UsageError(
                f"{shown(given)}: yields the subject name {name!r}, which "
                f"{shown(previous)} yields too; hash the common parent directory instead "
                "or --exclude one of them"
            )

    position = 0
    unsorted = False
    for root in roots:
        count = len(root.entries)
        root_hexes = hexes[position : position + count]
        root_modes = modes[position : position + count]
        position += count
        if root.tree_name is not None:
            claim(root.tree_name, root.given)
            digest = tree_digest(root.entries, list(map(Hashed, root_hexes, root_modes)))
            subjects.append(Subject(root.tree_name, {"sha256": digest}, dict([FORMAT_ANNOTATION])))
            continue
        names = list(map(_ENTRY_NAME, root.entries))
        # Entries come in byte order of their paths, which for UTF-8 is also the code point
        # order of the names: strictly increasing names are sorted and free of duplicates.
        # Only percent-encoding can reorder names or make two equal: then check and sort.
        ordered = _increasing(names)
        if not ordered and len(set(names)) != len(names):
            seen: set[str] = set()
            for name in names:
                if name in seen:
                    raise UsageError(
                        f"{shown(root.given)}: two files are both named {name!r} once "
                        "non-UTF-8 bytes are percent-encoded; rename one or --exclude it"
                    )
                seen.add(name)
        if owner or len(roots) > 1:
            for name in names:
                claim(name, root.given)
        subjects.extend(map(Subject, names, [{"sha256": hexdigest} for hexdigest in root_hexes]))
        unsorted = unsorted or not ordered
    if len(roots) > 1 or unsorted:
        subjects.sort(key=_subject_name)
    return subjects


def _subject_name(subject: Subject) -> str:
    return subject.name


def _increasing(names: list[str]) -> bool:
    return all(map(operator.lt, names, itertools.islice(names, 1, None)))
