"""Read-modify-write of one tag of a :class:`~attest_step.oci.store.Store` without
compare-and-swap, shared by the tag layout (``.sig``/``.att`` manifests) and the referrers
fallback index, for both backends.

A registry has no compare-and-swap on tags, so two writers updating a tag at once can lose
an update (last PUT wins). :func:`read_modify_write` narrows and detects it:

* right before its PUT it checks with a HEAD that the tag still has the digest it merged
  from; if not, another writer is active and it reads and merges again instead of writing
  (not counted as an attempt), so a writer can only overwrite what it has not seen during
  its HEAD->PUT gap (one round trip), not during its whole read-modify-write;
* after its PUT it waits a settle time (twice its own HEAD->PUT gap, at least 20 ms
  while it has seen no other writer, at least 50 ms and jittered once it has; at most
  500 ms) and
  re-reads the tag until it has not changed for one such period, checking the update is
  complete; if not it merges again after a random pause, a bounded number of times, then
  fails with a one-line RegistryUnavailable (exit 75);
* a 404 on the tag counts only when the tag list agrees (:func:`read_confirmed`).

What is merged and what "complete" means is up to the caller (:class:`Update`). A store
nobody else writes meanwhile (``Store.exclusive``: the OCI layout under its lock) is read,
merged and written once, without the settle wait.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import NamedTuple

from attest_step.errors import RegistryUnavailable
from attest_step.oci.store import Manifest, Store

RACE_ATTEMPTS = 12
"""Rounds in which our write was overwritten after its PUT before giving up."""
UNCHANGED_ATTEMPTS = 64
"""Reads before a PUT that found the tag changed since the read before; each means another
writer's PUT went through, so they are bounded separately (and by the deadline)."""
STABLE_ROUNDS = 8
SETTLE_MIN = 0.05
"""Settle floor once another writer has been seen during the operation."""
SETTLE_QUIET_MIN = 0.02
"""Settle floor while no other writer has been seen (the common, uncontended case)."""
SETTLE_MAX = 0.5
SETTLE_FACTOR = 2.0
"""Settle time per second of our own HEAD->PUT gap."""


class Pace(NamedTuple):
    """Where the random pauses and the sleeps of a read-modify-write come from (tests may
    pass their own)."""

    rand: random.Random
    sleep: Callable[[float], None]


SYSTEM_PACE = Pace(random.SystemRandom(), time.sleep)


def settle_time(window: float, rand: random.Random, *, contended: bool = True) -> float:
    """How long to wait after a PUT before checking it stuck: twice our own HEAD->PUT gap
    (a concurrent writer can only overwrite us with a PUT that follows a HEAD answered
    before our PUT landed, so from within its own such gap, about as long: the factor is
    the margin for a writer slower than us), within [20 ms (no other writer seen) or
    50 ms, 500 ms]. Once another writer has been seen, times a random 1-1.5 so that racing
    writers do not re-check in lock step; without one there is nobody to desynchronise
    from."""
    floor = SETTLE_MIN if contended else SETTLE_QUIET_MIN
    base: float = min(SETTLE_MAX, max(floor, SETTLE_FACTOR * window))
    return base * rand.uniform(1.0, 1.5) if contended else base


def wait_stable(
    store: Store,
    tag: str,
    *,
    written: str,
    holds: Callable[[Manifest | None], bool],
    window: float,
    pace: Pace,
    contended: bool = True,
) -> Manifest | None:
    """After writing ``written`` at ``tag``: wait until the tag stops changing for one
    settle period while still satisfying ``holds``; None when it stopped holding (our item
    was overwritten: merge again). Stability matters because a writer that read the tag
    before our PUT can still PUT after a single check."""
    previous = written
    check: Manifest | None = None
    for _ in range(STABLE_ROUNDS):
        pace.sleep(settle_time(window, pace.rand, contended=contended))
        check = store.get_manifest(tag)
        if not holds(check):
            return None
        assert check is not None
        if check.digest == previous:
            return check
        previous = check.digest  # another writer merged us in; make sure it settles
        contended = True
    return check


class Put(NamedTuple):
    digest: str | None
    """The digest written; None when the tag moved since the read and nothing was written."""
    window: float
    """Seconds in which another writer's PUT could have been overwritten unseen: from the
    HEAD to the end of the PUT, or from the read when the HEAD could not tell."""
    checked: bool


def put_if_unchanged(
    store: Store,
    tag: str,
    *,
    read: Manifest | None,
    read_started: float,
    data: bytes,
    media_type: str,
) -> Put:
    """PUT ``data`` at ``tag`` unless a HEAD shows the tag moved since ``read`` was taken.

    Not atomic (registries have no compare-and-swap), but it shrinks the window in which
    this writer can overwrite another's PUT from its whole read-modify-write to one round
    trip. A registry that answers the HEAD without a digest is written to unchecked.
    """
    started = time.monotonic()
    now = store.manifest_digest(tag)
    if now not in ("", read.digest if read is not None else None):
        return Put(None, time.monotonic() - started, checked=True)
    digest = store.put_manifest(tag, data, media_type)
    checked = now != ""
    return Put(digest, time.monotonic() - (started if checked else read_started), checked)


def read_confirmed(store: Store, tag: str, pace: Pace = SYSTEM_PACE) -> Manifest | None:
    """GET the tag; a 404 counts only when the tag list agrees.

    distribution 2.8 rewrites a tag's link file in place, so a GET racing another writer
    can answer 404 for a tag that exists. The tag list reads directory names, which do not
    flicker, so it tells a real absence from a misread.
    """
    for _ in range(5):
        current = store.get_manifest(tag)
        if current is not None or tag not in store.list_tags():
            return current
        pace.sleep(0.02)
    raise RegistryUnavailable(
        f"{store.name}:{tag}: listed but unreadable; retry the push (attest-step push --from DIR)"
    )


class Read(NamedTuple):
    """One confirmed read of the tag and when it started (monotonic seconds)."""

    manifest: Manifest | None
    started: float


def read_tag(store: Store, tag: str, pace: Pace = SYSTEM_PACE) -> Read:
    """:func:`read_confirmed` with its start time, e.g. to read ahead of the update."""
    started = time.monotonic()
    return Read(read_confirmed(store, tag, pace), started)


class Outcome(NamedTuple):
    digest: str
    """The tag's digest once complete."""
    status: str
    """``present`` when the first read was already complete, else ``pushed``."""
    attempts: int


class Update(NamedTuple):
    """What a read-modify-write of one tag writes, and when it is done."""

    build: Callable[[Manifest | None], bytes]
    """The bytes to write given the tag's current manifest (None: absent)."""
    complete: Callable[[Manifest | None], bool]
    """Whether a manifest read at the tag already has the update; called on every read, so
    it may also record what it has seen."""
    media_type: str
    """The media type of what ``build`` returns."""
    what: str
    """The tag's content, for the error after ``RACE_ATTEMPTS`` overwritten rounds."""


def read_modify_write(
    store: Store,
    tag: str,
    update: Update,
    *,
    pace: Pace = SYSTEM_PACE,
    first: Read | None = None,
) -> Outcome:
    """Write ``update`` at ``tag`` until ``update.complete`` holds for what it stably has.

    ``first``: a read taken earlier (e.g. while the key was decrypted), used instead of the
    first read; the HEAD before the PUT reads again if the tag moved since.
    """
    attempt = 0
    moved = 0
    contended = False
    while attempt < RACE_ATTEMPTS:
        attempt += 1
        read, first = first or read_tag(store, tag, pace), None
        current = read.manifest
        if update.complete(current):
            assert current is not None
            return Outcome(current.digest, "present" if attempt == 1 else "pushed", attempt)
        put = put_if_unchanged(
            store,
            tag,
            read=current,
            read_started=read.started,
            data=update.build(current),
            media_type=update.media_type,
        )
        if store.exclusive and put.digest is not None:
            return Outcome(put.digest, "pushed", attempt)
        if put.digest is None:  # another writer's PUT landed since our read: read again
            contended = True
            moved += 1
            if moved < UNCHANGED_ATTEMPTS:
                attempt -= 1
            continue
        contended = contended or attempt > 1 or not put.checked
        stable = wait_stable(
            store,
            tag,
            written=put.digest,
            holds=update.complete,
            window=put.window,
            pace=pace,
            contended=contended,
        )
        if stable is not None:
            return Outcome(stable.digest, "pushed", attempt)
        # Someone overwrote the tag after our PUT: merge again after a random pause.
        pace.sleep(pace.rand.uniform(0.0, min(1.0, 0.05 * attempt)))
    raise RegistryUnavailable(
        f"{store.name}:{tag}: concurrent writers overwrote {update.what} "
        f"{RACE_ATTEMPTS} times; retry the push (attest-step push --from DIR)"
    )
