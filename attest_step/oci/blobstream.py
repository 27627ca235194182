"""Blobs as streams, checked while they flow (oras-go's ``content.VerifyReader``).

:class:`VerifiedStream` reads a blob from any reader against its descriptor: it never
hands out more than the descriptor's size, refuses a stream that ends early, and checks
the digest (and that nothing follows) *before* it returns the last chunk, so a consumer
that writes what it reads (a temporary file, an HTTP request body) never holds the whole
of a wrong blob. Both backends of :class:`~attest_step.oci.store.Store` use it for
``open_blob`` and ``put_blob_stream``; :class:`HashingWriter` hashes what a writer (the
tar of ``append``) produces.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from typing import BinaryIO, Protocol

from attest_step.errors import RegistryError
from attest_step.oci.documents import check_digest_syntax
from attest_step.oci.types import Descriptor

CHUNK = 1 << 20
"""How much is read or written at a time (1 MiB)."""


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def blob_descriptor(digest: str, size: int) -> Descriptor:
    """The descriptor of a blob known by digest and size only."""
    return Descriptor("application/octet-stream", digest, size)


def check_blob_size(desc: Descriptor, limit: int, what: str) -> None:
    """Refuse a descriptor larger than ``--max-blob-size`` (or of a negative size)."""
    if desc.size < 0:
        raise RegistryError(f"{what}: its descriptor says {desc.size} bytes; not a size")
    if desc.size > limit:
        raise RegistryError(
            f"{what}: its descriptor says {desc.size} bytes, more than --max-blob-size "
            f"({limit} bytes); not read"
        )


class VerifiedStream:
    """``source`` read as the blob ``desc`` (sha256 only); errors are one-line
    :class:`RegistryError` naming ``what``. Rewindable (``seek(0)``) when the source is;
    ``len()`` is the descriptor's size, so an HTTP client sends it with a Content-Length."""

    def __init__(self, source: Readable, desc: Descriptor, what: str) -> None:
        check_digest_syntax(desc.digest, what)
        if not desc.digest.startswith("sha256:"):
            raise RegistryError(f"{what}: only sha256 blobs can be streamed")
        self.desc = desc
        self.what = what
        self._source = source
        self._lock = threading.Lock()
        """One reader at a time: an abandoned HTTP exchange may still be reading."""
        self._closed = False
        self._reset()

    def _reset(self) -> None:
        self._hash = hashlib.sha256()
        self._done = 0

    def __len__(self) -> int:
        return self.desc.size

    def tell(self) -> int:
        return self._done

    def seek(self, offset: int, whence: int = 0) -> int:
        """Only back to the start (a retried or re-authenticated upload)."""
        seek = getattr(self._source, "seek", None)
        if offset != 0 or whence != 0 or seek is None:
            raise RegistryError(f"{self.what}: the stream cannot be read again; retry the command")
        with self._lock:
            seek(0)
            self._reset()
        return 0

    def close(self) -> None:
        """Stop handing out data (the source is the caller's to close)."""
        with self._lock:
            self._closed = True

    def read(self, size: int = -1, /) -> bytes:
        with self._lock:
            if self._closed:
                raise ValueError(f"{self.what}: read after close")
            left = self.desc.size - self._done
            if left == 0:
                return b""
            want = left if size is None or size < 0 else min(size, left)
            chunk = self._source.read(min(want, CHUNK))
            if not chunk:
                raise RegistryError(
                    f"{self.what}: the stream ended after {self._done} bytes, its descriptor "
                    f"says {self.desc.size}"
                )
            self._hash.update(chunk)
            self._done += len(chunk)
            if self._done == self.desc.size:
                self._check_end()
            return chunk

    def _check_end(self) -> None:
        if self._source.read(1):
            raise RegistryError(
                f"{self.what}: the stream is longer than the {self.desc.size} bytes its "
                "descriptor says"
            )
        got = "sha256:" + self._hash.hexdigest()
        if got != self.desc.digest:
            raise RegistryError(
                f"{self.what}: the content does not match its digest (got {got}); "
                "something is corrupting or substituting it"
            )

    def drain(self) -> None:
        """Read to the end (checking it) and discard."""
        while self.read(CHUNK):
            pass

    def read_all(self) -> bytes:
        """The rest of the blob, checked (only for small blobs)."""
        return b"".join(iter(lambda: self.read(CHUNK), b""))


def verified(reader: Readable, desc: Descriptor, what: str) -> VerifiedStream:
    """``reader`` as a :class:`VerifiedStream` of ``desc`` (itself when it already is one)."""
    same = (desc.digest, desc.size)
    if isinstance(reader, VerifiedStream) and (reader.desc.digest, reader.desc.size) == same:
        return reader
    return VerifiedStream(reader, desc, what)


class HashingWriter:
    """A write-only file over ``target`` that counts and hashes what is written."""

    def __init__(self, target: BinaryIO) -> None:
        self._target = target
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self._target.write(data)
        self._hash.update(data)
        self.size += len(data)
        return len(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._target.flush()

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


class FetchOnRead:
    """A blob's body from ``fetch`` (e.g. a download into a temporary file), called on the
    first read only: a reader that is never read fetches nothing."""

    def __init__(self, fetch: Callable[[], BinaryIO]) -> None:
        self._fetch = fetch
        self._file: BinaryIO | None = None

    def read(self, size: int = -1, /) -> bytes:
        if self._file is None:
            self._file = self._fetch()
        return self._file.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0 if self._file is None else self._file.seek(offset, whence)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
