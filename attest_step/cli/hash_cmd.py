"""``attest-step hash``: print the subjects an attestation would carry.

Imports only click and the hashing modules (no crypto, no registry client, not even
pathlib): start-up is part of what ``make bench`` measures (docs/hashing.md).
"""

from __future__ import annotations

import sys

import click

from attest_step.cli.options import exclude_option, output_option
from attest_step.fileio import write_all
from attest_step.hashing import hash_paths, hash_paths_json
from attest_step.hashing.jsontext import subjects_json
from attest_step.model import Subject

__all__ = ["hash_command", "subjects_json", "text_line"]


def text_line(subject: Subject) -> str:
    """``sha256:<hex>  <name>`` like sha256sum; a name with ``\\`` or a newline is escaped
    and the line starts with ``\\`` (sha256sum's convention)."""
    name = subject.name
    digest = subject.digest["sha256"]
    if "\\" in name or "\n" in name or "\r" in name:
        escaped = name.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
        return f"\\sha256:{digest}  {escaped}"
    return f"sha256:{digest}  {name}"


@click.command("hash")
@click.argument("paths", nargs=-1, type=click.Path())
@exclude_option
@click.option(
    "--dir-digest",
    is_flag=True,
    help="Make each directory ONE subject: SHA-256 over a canonical listing of "
    "(path, mode, sha256) (docs/hashing.md).",
)
@click.option(
    "--image",
    "images",
    multiple=True,
    metavar="REF@sha256:HEX",
    help="Also print an image subject (repeatable).",
)
@output_option
def hash_command(
    paths: tuple[str, ...],
    excludes: tuple[str, ...],
    dir_digest: bool,
    images: tuple[str, ...],
    output: str,
) -> None:
    """Hash files, directory trees and images into in-toto subjects.

    A file is named by its base name; files below a directory by their path relative to it.
    Symbolic links are never followed out of a directory; FIFOs, sockets and devices are
    refused; a file that changes while it is hashed is an error.
    """
    if not paths and not images:
        raise click.UsageError("give at least one PATH or --image REF@sha256:HEX")
    if output == "json" and not images:
        write_stdout(hash_paths_json(paths, excludes=excludes, dir_digest=dir_digest) + b"\n")
        return
    subjects = hash_paths(paths, excludes=excludes, dir_digest=dir_digest) if paths else []
    if images:
        from attest_step.subjects import image_refs, image_subjects  # noqa: PLC0415 - only when used

        subjects = sorted(
            [*subjects, *image_subjects(image_refs(images))],
            key=lambda s: (s.name, s.digest["sha256"]),
        )
    if output == "json":
        click.echo(subjects_json(subjects))
    else:
        for subject in subjects:
            click.echo(text_line(subject))


def write_stdout(data: bytes) -> None:
    """What ``click.echo(data.decode(), nl=False)`` writes, for ASCII ``data``: with one
    ``os.write`` loop on the descriptor when there is one (megabytes of JSON)."""
    stream = sys.stdout
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):  # captured output (tests, CliRunner)
        click.echo(data.decode("ascii"), nl=False)
        return
    stream.flush()
    write_all(fd, data)
