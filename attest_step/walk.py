"""Walking output trees into a flat, sorted list of files to hash.

Policy (documented in docs/hashing.md):

* Names are relative to the root given, ``/``-separated, and built from the raw bytes of the
  file names. A name that is not valid UTF-8 is percent-encoded (see :func:`encode_name`).
* The walk never follows a symbolic link out of the root. A link whose target, resolved
  inside the root, is a regular file inside the root is hashed by its target's content under the
  link's own name; a link to a directory inside the root is not descended (its files are
  already listed under their real names). A link that escapes the root, dangles or loops is an
  error naming it (exclude it with ``--exclude``). With ``keep_links=True`` (the directory
  digest) every link is recorded as a link, by its target text, and never followed.
* FIFOs, sockets and devices are refused with an error naming them.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Sequence
from enum import Enum
from typing import NamedTuple

from attest_step.errors import AttestStepError, UsageError


class Kind(Enum):
    FILE = "file"
    LINK = "link"


class FileStat(NamedTuple):
    """The fields of a stat result that identify a file's content at one moment."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int
    mode: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileStat:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode)


class Entry(NamedTuple):
    """One thing to hash: a regular file (maybe reached through an in-root link) or a link.

    The walk reads only directory listings (file types come from ``d_type``); each file is
    ``lstat``-ed right before it is opened, by whichever worker hashes it.
    """

    rel: bytes
    """Path relative to the root, raw bytes, ``/``-separated."""
    name: str
    """``rel`` as a subject name (see :func:`encode_name`)."""
    path: bytes
    """Absolute path of the regular file to open (the link target for followed links)."""
    kind: Kind
    link_target: bytes = b""
    """For ``Kind.LINK``: the link's text, as readlink returns it."""


def encode_name(raw: bytes) -> str:
    """Turn raw path bytes into a subject name.

    Valid UTF-8 is used as it is. Otherwise every byte that is not part of a valid UTF-8
    sequence becomes ``%XX`` (upper-case hex), and every literal ``%`` becomes ``%25`` so the
    name can be decoded back to its bytes. Such a name may equal a genuine UTF-8 name; that
    collision is reported as a duplicate subject name.
    """
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("utf-8", "surrogateescape")
        out: list[str] = []
        for char in text:
            code = ord(char)
            if 0xDC80 <= code <= 0xDCFF:
                out.append(f"%{code - 0xDC00:02X}")
            elif char == "%":
                out.append("%25")
            else:
                out.append(char)
        return "".join(out)


def decode_name(name: str) -> bytes:
    """Inverse of :func:`encode_name` for names that were percent-encoded."""
    data = name.encode("utf-8")
    if b"%" not in data:
        return data
    return re.sub(rb"%([0-9A-F]{2})", lambda m: bytes([int(m.group(1), 16)]), data)


def shown(path: bytes | str) -> str:
    """A path for an error message: printable, one line."""
    text = os.fsdecode(path) if isinstance(path, bytes) else path
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\n", "\\n")


class Excludes:
    """``--exclude`` globs.

    A pattern without ``/`` matches any single path component at any depth (``*.log``,
    ``__pycache__``). A pattern with ``/`` matches the whole relative name from the root
    (``build/tmp/*``); a leading ``/`` anchors any pattern to the root (``/x.log``). ``*`` and
    ``?`` never match ``/``; ``**`` as a whole component matches any number of components;
    ``[...]`` is a set (``[!...]`` negated).
    An excluded directory is not walked at all. Patterns apply to entries found while walking
    directories, never to the paths given on the command line.
    """

    def __init__(self, patterns: Sequence[str]) -> None:
        self._component: list[re.Pattern[str]] = []
        self._full: list[re.Pattern[str]] = []
        for pattern in patterns:
            if not pattern or pattern.strip("/") == "":
                raise UsageError(f"--exclude: {pattern!r} is empty; give a glob such as '*.log'")
            anchored = pattern.startswith("/")
            body = pattern.strip("/")
            if anchored or "/" in body:
                self._full.append(re.compile(_translate(body, full=True)))
            else:
                self._component.append(re.compile(_translate(body, full=False)))

    def __bool__(self) -> bool:
        return bool(self._component or self._full)

    def excluded(self, name: str, base: str) -> bool:
        """True when the entry called ``name`` (relative) with last component ``base`` is out."""
        return any(p.fullmatch(base) for p in self._component) or any(
            p.fullmatch(name) for p in self._full
        )


def _translate(glob: str, *, full: bool) -> str:
    parts: list[str] = []
    components = glob.split("/") if full else [glob]
    for index, comp in enumerate(components):
        last = index == len(components) - 1
        if full and comp == "**":
            parts.append(".*" if last else "(?:[^/]*/)*")
            continue
        parts.append(_translate_component(comp))
        if not last:
            parts.append("/")
    return "".join(parts)


def _translate_component(comp: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(comp):
        char = comp[i]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = comp.find("]", i + 2 if comp[i + 1 : i + 2] in ("!", "]") else i + 1)
            if end == -1:
                out.append(re.escape(char))
            else:
                inner = comp[i + 1 : end]
                if inner.startswith("!"):
                    inner = "^" + inner[1:]
                inner = inner.replace("\\", "\\\\")
                out.append(f"(?!/)[{inner}]")
                i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def _special_error(path: bytes, mode: int) -> AttestStepError:
    kind = (
        "a FIFO"
        if stat.S_ISFIFO(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "a device"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "not a regular file"
    )
    return UsageError(
        f"{shown(path)}: is {kind}; only regular files, directories and links can be hashed "
        "(leave it out with --exclude)"
    )


def _inside(root: bytes, path: bytes) -> bool:
    return path == root or path.startswith(root.rstrip(b"/") + b"/")


def _resolve_link(root: bytes, link: bytes) -> tuple[bytes, int]:
    """Resolve an in-root link; raise naming it when it escapes, dangles or loops."""
    try:
        target = os.path.realpath(link, strict=True)
    except (OSError, RuntimeError) as err:
        raise UsageError(
            f"{shown(link)}: symbolic link is broken or loops ({_reason(err)}); "
            "fix it or leave it out with --exclude"
        ) from None
    if not _inside(root, target):
        raise UsageError(
            f"{shown(link)}: symbolic link points outside the tree being hashed "
            f"(to {shown(target)}); links are never followed out of the root, "
            "leave it out with --exclude or copy the file in"
        )
    return target, os.lstat(target).st_mode


def _reason(err: BaseException) -> str:
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return str(err) or type(err).__name__


def walk_tree(root: bytes, excludes: Excludes, *, keep_links: bool = False) -> list[Entry]:
    """Every file below the directory ``root`` (an absolute, resolved path), sorted by ``rel``.

    ``keep_links=False`` (subjects per file): in-root links to files are hashed by content,
    links to directories are skipped, other links are errors. ``keep_links=True`` (directory
    digest): every link is an entry of kind LINK and is never followed.
    """
    entries: list[Entry] = []
    append = entries.append
    new = tuple.__new__  # Entry(...) without its Python-level __new__: one per file
    file_kind = Kind.FILE
    has_excludes = bool(excludes)
    stack: list[bytes] = [b""]
    while stack:
        rel_dir = stack.pop()
        abs_dir = root + b"/" + rel_dir if rel_dir else root
        prefix = rel_dir + b"/" if rel_dir else b""
        try:
            with os.scandir(abs_dir) as iterator:
                children = list(iterator)
        except OSError as err:
            raise UsageError(
                f"{shown(abs_dir)}: cannot list the directory ({_reason(err)})"
            ) from None
        subdirs: list[bytes] = []
        for child in children:
            raw = child.name
            rel = prefix + raw
            try:
                name = rel.decode("utf-8")
            except UnicodeDecodeError:
                name = encode_name(rel)
            if has_excludes and excludes.excluded(name, encode_name(raw)):
                continue
            try:
                if child.is_file(follow_symlinks=False):
                    append(new(Entry, (rel, name, child.path, file_kind, b"")))
                elif child.is_dir(follow_symlinks=False):
                    subdirs.append(rel)
                elif child.is_symlink():
                    if keep_links:
                        target_text = os.readlink(child.path)
                        append(Entry(rel, name, child.path, Kind.LINK, target_text))
                        continue
                    target, mode = _resolve_link(root, child.path)
                    if stat.S_ISDIR(mode):
                        continue
                    if not stat.S_ISREG(mode):
                        raise _special_error(target, mode)
                    append(Entry(rel, name, target, file_kind))
                else:
                    raise _special_error(child.path, child.stat(follow_symlinks=False).st_mode)
            except OSError as err:
                raise UsageError(f"{shown(child.path)}: cannot inspect ({_reason(err)})") from None
        stack.extend(sorted(subdirs, reverse=True))
    entries.sort()
    return entries
