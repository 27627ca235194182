"""The message pipe from the isolated children of ``attest-step run`` to the isolating parent.

One JSON object per line. The children (C1, the init C2 and, before its ``exec``, C3) share
the write end; the parent reads. Two rules keep the parent's view independent of how the
scheduler orders processes:

- **One writer at a time.** The protocol lets only one process write at any moment: C1 until
  it forks the init, then the init until the parent lets the command start, then the
  command's process only for an error before its ``exec`` and the init only after the
  command's process has ended. A write of up to ``PIPE_BUF`` (4096) bytes is atomic, a
  longer one is not (the init's view of a host network with many interfaces is longer), so
  two concurrent writers could interleave their bytes.
- **Messages are found by key, not by position** (:meth:`Messages.until`): a process whose
  fork returns late under load must not make the parent take one message for another.
"""

from __future__ import annotations

import json
import os
from typing import Any, BinaryIO

MAX_LINE = 1 << 20


def send(fd: int, message: dict[str, Any]) -> None:
    """Write ``message`` as one line, all of it (``os.write`` may write less than asked)."""
    data = memoryview((json.dumps(message) + "\n").encode())
    while data:
        data = data[os.write(fd, data) :]


class Messages:
    """Newline-delimited JSON objects from the children; an empty dict at end of file."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.seen: list[dict[str, Any]] = []

    def next(self) -> dict[str, Any]:
        line = self.stream.readline(MAX_LINE)
        if not line:
            return {}
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            message = None
        if not isinstance(message, dict) or not message:
            return {"error": "garbled message from the isolated child"}
        self.seen.append(message)
        return message

    def until(self, *keys: str) -> dict[str, Any]:
        """The first message holding one of ``keys`` or ``"error"``; ``{}`` at end of file.

        Other messages are skipped (they stay in :attr:`seen`).
        """
        while message := self.next():
            if "error" in message or any(key in message for key in keys):
                return message
        return {}

    def rest(self) -> list[dict[str, Any]]:
        """Every message up to end of file (when every child has ended)."""
        out = []
        while message := self.next():
            out.append(message)
        return out

    def close(self) -> None:
        self.stream.close()
