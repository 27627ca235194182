"""The message pipe from ``attest-step run``'s isolated children to the isolating parent.

The parent once read the init's message by its position, second after C1's; under load C1's
fork returned after the init had already written, and the parent took one for the other
("the isolated init did not start"). These tests write through real pipes, in every order.
"""

from __future__ import annotations

import io
import json
import os
import threading
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from attest_step.hermetic.messages import Messages, send

INSIDE = {"inside": {"netns": "net:[4026532000]"}, "shield": {}, "procPid": 4242}
OTHER = {"initPid": 2}


def written(*messages: dict[str, Any]) -> Messages:
    """A reader over ``messages`` as the children write them, the writers all gone."""
    read_end, write_end = os.pipe()
    with os.fdopen(read_end, "rb") as reader:
        for message in messages:
            send(write_end, message)
        os.close(write_end)
        return Messages(io.BytesIO(reader.read()))


def test_the_inits_message_is_found_whichever_process_wrote_first() -> None:
    for order in ((OTHER, INSIDE), (INSIDE, OTHER)):
        messages = written({"unshared": True, "procPid": 7}, *order)
        assert messages.until("unshared")["procPid"] == 7
        assert messages.until("inside") == INSIDE


def test_an_error_stops_the_wait_and_end_of_file_is_empty() -> None:
    messages = written(OTHER, {"error": "shield", "errno": "EPERM"}, INSIDE)
    assert messages.until("inside") == {"error": "shield", "errno": "EPERM"}
    assert written(OTHER).until("inside") == {}


def test_garbled_lines_are_errors_not_messages() -> None:
    for line in (b"{not json\n", b"[1, 2]\n", b"{}\n", b'"inside"\n'):
        messages = Messages(io.BytesIO(line + b'{"done": {}}\n'))
        assert messages.until("inside") == {"error": "garbled message from the isolated child"}
        assert messages.rest() == [{"done": {}}]


def test_a_message_longer_than_the_pipe_arrives_whole() -> None:
    """Longer than PIPE_BUF and than the pipe's buffer: the writer blocks and goes on."""
    interfaces = [{"name": f"veth{i:05d}", "rxPackets": i} for i in range(8000)]
    big = {"inside": {"interfaces": interfaces}, "procPid": 1}
    read_end, write_end = os.pipe()
    messages = Messages(os.fdopen(read_end, "rb"))
    writer = threading.Thread(target=send, args=(write_end, big))
    writer.start()
    try:
        received = messages.next()
    finally:
        writer.join()
        os.close(write_end)
        messages.close()
    assert received == big
    assert len(json.dumps(big)) > 1 << 16


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(["unshared", "initPid", "inside", "done", "error", "x"]),
            st.integers() | st.text(max_size=20) | st.none(),
            min_size=1,
            max_size=3,
        ),
        max_size=8,
    )
)
def test_until_returns_the_first_message_with_the_key_or_an_error(
    sent: list[dict[str, Any]],
) -> None:
    messages = written(*sent)
    expected = next((m for m in sent if "inside" in m or "error" in m), {})
    assert messages.until("inside") == expected
    position = sent.index(expected) + 1 if expected else len(sent)
    assert messages.rest() == sent[position:]
