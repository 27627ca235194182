"""attest_step/oci/blobstream.py: a stream is checked before its last byte is handed out.

Property: whatever the read sizes and however the source breaks up its answers, a stream
that is the blob gives back exactly its bytes, and a stream that is not (other bytes, fewer,
more) raises one RegistryError while what was handed out is still short of the whole.
"""

from __future__ import annotations

import hashlib
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from attest_step.errors import RegistryError
from attest_step.oci.blobstream import HashingWriter, VerifiedStream, blob_descriptor
from attest_step.oci.types import sha256_digest


class _Trickle:
    """A source that answers at most ``step`` bytes per read (a socket, a pipe)."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data = io.BytesIO(data)
        self._step = step

    def read(self, size: int = -1, /) -> bytes:
        return self._data.read(self._step if size < 0 else min(size, self._step))


def _read_through(stream: VerifiedStream, sizes: list[int]) -> bytes:
    got = bytearray()
    for size in sizes * (1 + stream.desc.size):
        chunk = stream.read(size)
        if not chunk:
            break
        got += chunk
    return bytes(got)


_sizes = st.lists(st.integers(min_value=1, max_value=5000), min_size=1, max_size=5)


@given(data=st.binary(max_size=20000), sizes=_sizes, step=st.integers(1, 4096))
def test_the_blob_itself_reads_back_whole(data: bytes, sizes: list[int], step: int) -> None:
    desc = blob_descriptor(sha256_digest(data), len(data))
    stream = VerifiedStream(_Trickle(data, step), desc, "blob")
    assert _read_through(stream, sizes) == data
    assert stream.read(10) == b""


@given(
    data=st.binary(min_size=1, max_size=20000),
    sizes=_sizes,
    step=st.integers(1, 4096),
    change=st.sampled_from(["flip", "shorter", "longer"]),
)
def test_anything_else_fails_before_the_whole_is_handed_out(
    data: bytes, sizes: list[int], step: int, change: str
) -> None:
    desc = blob_descriptor(sha256_digest(data), len(data))
    if change == "flip":
        served = bytes([data[0] ^ 1]) + data[1:]
    elif change == "shorter":
        served = data[:-1]
    else:
        served = data + b"x"
    stream = VerifiedStream(_Trickle(served, step), desc, "blob")
    got = bytearray()
    with pytest.raises(RegistryError, match=r"^blob: "):
        for size in sizes * (2 + len(data)):
            got += stream.read(size)
    assert len(got) < len(data)


def test_a_rewindable_source_can_be_read_again_and_others_cannot() -> None:
    data = b"x" * 3000
    desc = blob_descriptor(sha256_digest(data), len(data))
    stream = VerifiedStream(io.BytesIO(data), desc, "blob")
    assert stream.read_all() == data and stream.tell() == len(data)
    assert stream.seek(0) == 0 and stream.read_all() == data
    once = VerifiedStream(_Trickle(data, 100), desc, "blob")
    once.read(10)
    with pytest.raises(RegistryError, match="cannot be read again"):
        once.seek(0)


def test_the_hashing_writer_hashes_and_counts_what_it_passes_on() -> None:
    out = io.BytesIO()
    writer = HashingWriter(out)
    writer.write(b"abc")
    writer.write(b"def")
    assert out.getvalue() == b"abcdef" and writer.size == writer.tell() == 6
    assert writer.digest == "sha256:" + hashlib.sha256(b"abcdef").hexdigest()
