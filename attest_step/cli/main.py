"""Console-script entry point: early work first, then the click group.

Before click and the verb are imported (~40 ms), :func:`main` starts what only needs the raw
arguments: for ``sign`` and ``attest`` the scrypt of a cosign ``--key``
(:mod:`attest_step.keys.early_kdf`), and for ``sign`` background imports (``PRELOAD``).
Both reach the verb as click's ``obj`` (:class:`attest_step.cli.early.EarlyWork`). The
group itself lives in :mod:`attest_step.cli.group`; ``cli`` and ``COMMANDS`` are still
importable from here.
"""

from __future__ import annotations

import importlib
import sys
import threading
from typing import TYPE_CHECKING, Any

from attest_step.keys.early_kdf import KdfPrefetch

if TYPE_CHECKING:
    from attest_step.cli.group import COMMANDS, HELP, LazyGroup, cli

__all__ = ["COMMANDS", "HELP", "PRELOAD", "LazyGroup", "cli", "main", "preload"]

# Verbs whose cosign --key scrypt starts before anything else (see early_kdf).
EARLY_KDF_VERBS = ("sign", "attest")


# Verb -> (modules imported on the main thread; modules imported on a background thread,
# started first). ``sign`` spends ~160 ms in scrypt decrypting a cosign key, with the GIL
# released (started by early_kdf() before any of this for a cosign key file with
# COSIGN_PASSWORD). What it does meanwhile is bound by the GIL: ~180 ms of imports on a
# 2-core machine. The registry client (requests, oras, the layouts: ~130 ms) comes first,
# on the background thread, because the registry reads and blob uploads done ahead of the
# signature (``attest_step.oci.prefetch``) can only start once it is loaded and then spend
# most of their time waiting on the network. The main thread imports only what parsing the
# command line needs, starts the prefetch, waits for these imports (``EarlyWork``) and then
# imports the key loader and cryptography while the prefetch waits on the registry.
PRELOAD: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "sign": (
        ("attest_step.cli.oci_cmd", "attest_step.imageref", "attest_step.oci.prefetch"),
        ("attest_step.oci.upload", "attest_step.oci.sign", "tempfile"),
    ),
}


def _import_quietly(names: tuple[str, ...]) -> None:
    """Import ``names``; a failure is left for the verb's own import to report."""
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # reported by the real import later
            return


def preload(argv: list[str]) -> threading.Thread | None:
    """Start importing the heavy modules of the verb in ``argv`` in the background, then
    import its command-line modules; the background thread (None if the verb has none)."""
    verb = next((arg for arg in argv if not arg.startswith("-")), None)
    plan = PRELOAD.get(verb or "")
    if plan is None or any(arg in ("-h", "--help", "--version") for arg in argv):
        return None
    if any(arg == "--pgp-key" or arg.startswith("--pgp-key=") for arg in argv):
        return None  # OpenPGP signing into a lookaside: no registry client to load
    thread = threading.Thread(
        target=_import_quietly, args=(plan[1],), name="attest-step-preload", daemon=True
    )
    thread.start()
    _import_quietly(plan[0])
    return thread


def early_kdf(argv: list[str]) -> KdfPrefetch | None:
    """Start the scrypt of ``sign``/``attest``'s cosign ``--key`` (None if not applicable).

    The group has no options of its own besides --help/--version, so the verb is argv[0].
    """
    if not argv or argv[0] not in EARLY_KDF_VERBS:
        return None
    return KdfPrefetch.from_argv(argv[1:])


def __getattr__(name: str) -> Any:
    """``cli``, ``COMMANDS``, ``HELP`` and ``LazyGroup`` from :mod:`attest_step.cli.group`,
    imported on first use so that :func:`main` runs its early work before click loads."""
    if name in ("cli", "COMMANDS", "HELP", "LazyGroup"):
        from attest_step.cli import group  # noqa: PLC0415 - see the module docstring

        return getattr(group, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    """Console-script entry point."""
    argv = sys.argv[1:]
    kdf = early_kdf(argv)
    imports = preload(argv)
    from attest_step.cli.early import EarlyWork  # noqa: PLC0415 - after the early work
    from attest_step.cli.group import cli  # noqa: PLC0415

    cli.main(args=argv, prog_name="attest-step", obj=EarlyWork(kdf, imports))
