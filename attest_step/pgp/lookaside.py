"""containers/image's lookaside layout: where the signatures of an image live on disk.

``BASE/<repository path>@sha256=<hex>/signature-<n>``, n = 1, 2, ... with no gaps; the path
has no registry host (containers/image joins ``reference.Path``). Readers stop at the first
missing n. Writers here add one file at the first free n with a hard link, so two writers
never overwrite each other and a reader never sees half a file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from attest_step.errors import UsageError
from attest_step.fileio import read_small_file, write_all
from attest_step.imageref import ImageRef

MAX_SIGNATURES = 64
"""The most signatures read for (or added to) one image."""
MAX_SIGNATURE_BYTES = 64 << 10
"""The largest signature file read: an atomic signature is well under a kilobyte."""


def image_dir(base: Path, image: ImageRef) -> Path:
    """The directory of ``image``'s signatures under the lookaside ``base``."""
    algorithm, _, hexpart = image.digest.partition(":")
    return base / f"{image.repository}@{algorithm}={hexpart}"


def signature_path(base: Path, image: ImageRef, index: int) -> Path:
    """``signature-<index>`` (1-based) of ``image``."""
    return image_dir(base, image) / f"signature-{index}"


def add_signature(base: Path, image: ImageRef, signature: bytes) -> Path:
    """Store ``signature`` as the next ``signature-<n>`` of ``image``; return its path."""
    directory = image_dir(base, image)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".tmp-signature-", dir=directory)
    except OSError as err:
        raise UsageError(
            f"--lookaside {base}: cannot write {directory} ({err.strerror or err}); "
            "give a writable directory"
        ) from err
    tmp = Path(tmp_name)
    try:
        try:
            write_all(fd, signature)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, 0o644)  # a lookaside is published as is: signatures are public
        for index in range(1, MAX_SIGNATURES + 1):
            final = signature_path(base, image, index)
            try:
                os.link(tmp, final)
            except FileExistsError:
                continue
            return final
    except OSError as err:
        raise UsageError(
            f"--lookaside {base}: cannot write a signature in {directory} "
            f"({err.strerror or err}); give a writable directory"
        ) from err
    finally:
        tmp.unlink(missing_ok=True)
    raise UsageError(
        f"--lookaside {base}: {directory} already holds {MAX_SIGNATURES} signatures; "
        "remove old ones"
    )


def read_signatures(base: Path, image: ImageRef) -> list[tuple[Path, bytes]]:
    """Every ``signature-<n>`` of ``image``, in order, up to the first missing one.

    A file that is not a regular file or is larger than MAX_SIGNATURE_BYTES is a UsageError.
    """
    out: list[tuple[Path, bytes]] = []
    for index in range(1, MAX_SIGNATURES + 1):
        path = signature_path(base, image, index)
        try:
            data = read_small_file(path, "lookaside signature", limit=MAX_SIGNATURE_BYTES)
        except FileNotFoundError:
            break
        except OSError as err:
            raise UsageError(
                f"--lookaside {base}: cannot read {path} ({err.strerror or err})"
            ) from err
        out.append((path, data))
    return out
