"""Start the scrypt of a cosign encrypted key before the command line is even loaded.

``attest-step sign`` and ``attest`` spend ~130 ms in scrypt (GIL released) decrypting a
cosign key. :class:`KdfPrefetch` is started by ``attest_step.cli.main.main`` from the raw
``--key`` argument and ``COSIGN_PASSWORD``, before click and the key loader are imported,
and computes scrypt on a daemon thread while they load. The key loader then asks it for the
key through :meth:`KdfPrefetch.derive`, which returns the precomputed key only when the
password, salt and cost settings are exactly the ones it used, and computes it otherwise.

Only a regular file holding an ``ENCRYPTED SIGSTORE/COSIGN PRIVATE KEY`` block with cost
settings cosign accepts is considered. Every failure here is silent: the key loader then
does the work itself and reports the problem as usual. Nothing is printed, and this module
imports only the standard library and :mod:`attest_step.keys.scrypt` (which loads its
implementation on first use).
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Mapping, Sequence

from attest_step.keys import scrypt

PASSWORD_ENV = "COSIGN_PASSWORD"  # noqa: S105 (a variable name)
# Same labels and (N, r, p) triples as attest_step.keys.cosign_format (not imported: with
# the PEM parser and its regular expressions it costs ~6 ms before scrypt could start).
_LABELS = (b"ENCRYPTED SIGSTORE PRIVATE KEY", b"ENCRYPTED COSIGN PRIVATE KEY")
_ACCEPTED = frozenset({(32768, 8, 1), (65536, 8, 1), (131072, 8, 1)})
_MAX_FILE = 1 << 20  # a cosign key is ~0.5 KiB
_NOT_FILES = ("://", "pkcs11:")


def scrypt_key(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    """The 32-byte scrypt key, as ``cosign_format`` derives it."""
    return scrypt.derive(password, salt, n, r, p)


def key_argument(argv: Sequence[str]) -> str | None:
    """The value of the last ``--key VALUE`` / ``--key=VALUE`` in a verb's arguments."""
    key: str | None = None
    for index, arg in enumerate(argv):
        if arg == "--":
            break
        if arg in ("-h", "--help"):
            return None
        if arg == "--key" and index + 1 < len(argv):
            key = argv[index + 1]
        elif arg.startswith("--key="):
            key = arg[len("--key=") :]
    return key


def _b64(value: object) -> bytes | None:
    import binascii  # noqa: PLC0415 - built in

    if isinstance(value, str):
        value = value.encode("ascii", "replace")
    if not isinstance(value, bytes):
        return None
    try:
        return binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError):
        return None


def scrypt_settings(data: bytes) -> tuple[bytes, int, int, int] | None:
    """(salt, N, r, p) of a cosign encrypted key file's content; None if it is not one."""
    for label in _LABELS:
        begin = b"-----BEGIN " + label + b"-----"
        start = data.find(begin)
        if start < 0:
            continue
        end = data.find(b"-----END " + label + b"-----", start)
        if end < 0:
            return None
        body = b"".join(data[start + len(begin) : end].split())
        doc_bytes = _b64(body)
        if doc_bytes is None:
            return None
        import json  # noqa: PLC0415 - start-up

        try:
            doc = json.loads(doc_bytes)
        except ValueError:
            return None
        kdf = doc.get("kdf") if isinstance(doc, dict) else None
        if not isinstance(kdf, dict) or kdf.get("name") != "scrypt":
            return None
        params = kdf.get("params")
        if not isinstance(params, dict):
            return None
        n, r, p = (params.get(name) for name in ("N", "r", "p"))
        if not (type(n) is int and type(r) is int and type(p) is int):  # not bool either
            return None
        salt = _b64(kdf.get("salt"))
        if (n, r, p) not in _ACCEPTED or salt is None:
            return None
        return salt, n, r, p
    return None


def _read_key_file(key_ref: str) -> bytes | None:
    """The content of ``key_ref`` if it names a small regular file (never a FIFO, a
    directory or a KMS URI); None otherwise."""
    if not key_ref or any(marker in key_ref for marker in _NOT_FILES):
        return None
    try:
        info = os.stat(key_ref)  # before open(): opening a FIFO would block
        if not stat.S_ISREG(info.st_mode) or info.st_size > _MAX_FILE:
            return None
        # Non-blocking and checked again: a FIFO swapped in after stat() cannot block.
        fd = os.open(key_ref, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        with open(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            return handle.read(_MAX_FILE + 1)
    except OSError:
        return None


class KdfPrefetch:
    """A scrypt started early on a daemon thread; see the module docstring."""

    def __init__(self, password: bytes, salt: bytes, n: int, r: int, p: int) -> None:
        self._inputs = (salt, n, r, p)
        self._password = password
        self._key: bytes | None = None
        self._thread = threading.Thread(target=self._run, name="attest-step-kdf", daemon=True)

    @classmethod
    def start(cls, key_ref: str, environ: Mapping[str, str] | None = None) -> KdfPrefetch | None:
        """Start scrypt for the cosign key file ``key_ref`` with ``COSIGN_PASSWORD``.

        None (and no thread) unless the variable is set and ``key_ref`` is a cosign
        encrypted key with accepted cost settings. Never raises.
        """
        env = os.environ if environ is None else environ
        try:
            value = env.get(PASSWORD_ENV)
            if value is None:
                return None
            data = _read_key_file(key_ref)
            settings = scrypt_settings(data) if data is not None else None
            if settings is None:
                return None
            prefetch = cls(value.encode("utf-8"), *settings)
            # Loaded here, not on the thread, where it would share the GIL with the
            # imports of the main thread.
            scrypt.prepare()
            prefetch._thread.start()
        except Exception:  # the key loader does the work and reports the problem
            return None
        return prefetch

    @classmethod
    def from_argv(
        cls, argv: Sequence[str], environ: Mapping[str, str] | None = None
    ) -> KdfPrefetch | None:
        """:meth:`start` for the ``--key`` of a verb's arguments (without the verb)."""
        key_ref = key_argument(argv)
        return None if key_ref is None else cls.start(key_ref, environ)

    def _run(self) -> None:
        salt, n, r, p = self._inputs
        try:
            self._key = scrypt_key(self._password, salt, n, r, p)
        except Exception:  # silent: derive() computes again and reports any problem
            self._key = None

    def wait(self) -> None:
        """Return once the early scrypt has finished (a no-op if it was never started)."""
        if self._thread.is_alive():
            self._thread.join()

    def derive(self, password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
        """scrypt(password, salt, N, r, p) to 32 bytes, precomputed when the inputs match.

        Waits for the early thread first in every case, so at most one scrypt (up to 128 MiB
        for N=131072) runs at a time and no thread is left running afterwards.
        """
        self.wait()
        import hmac  # noqa: PLC0415 - after scrypt started

        key = self._key
        if (
            key is not None
            and (salt, n, r, p) == self._inputs
            and hmac.compare_digest(password, self._password)
        ):
            return key
        return scrypt_key(password, salt, n, r, p)

    def __repr__(self) -> str:
        return f"KdfPrefetch(N={self._inputs[1]}, r={self._inputs[2]}, p={self._inputs[3]})"
