"""cosign's tag layout: one manifest per image at ``sha256-<hex>.sig`` / ``.att``, one layer
per signature or attestation, appended by read-modify-write.

A registry has no compare-and-swap on tags, so two signers appending at once can lose a
layer (last PUT wins). ``append_layer`` narrows and detects it:

* right before its PUT it checks with a HEAD that the tag still has the digest it merged
  from; if not, another writer is active and it reads and merges again instead of writing,
  so a writer can only overwrite what it has not seen during its HEAD->PUT gap (one round
  trip), not during its whole read-modify-write;
* after its PUT it waits a settle time (three times its own HEAD->PUT gap, at least 20 ms
  while it has seen no other writer, at least 50 ms once it has; at most 500 ms) and
  re-reads the tag until it has not changed for one such period, checking its layer is
  there; if not it merges again and retries with jitter, a bounded number of times.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from attest_step.errors import RegistryError
from attest_step.oci.registry import Background, Manifest, RegistryClient
from attest_step.oci.types import (
    CONFIG_TYPE,
    MANIFEST_TYPE,
    SIGNATURE_ANNOTATION,
    Descriptor,
    compact_json,
    sha256_digest,
)

SIG_SUFFIX = ".sig"
ATT_SUFFIX = ".att"
MAX_LAYERS = 1000  # cosign refuses manifests with more layers
RACE_ATTEMPTS = 12
_ZERO_TIME = "0001-01-01T00:00:00Z"


@dataclass(frozen=True)
class Layer:
    """One signature/attestation layer: the blob bytes and their descriptor annotations."""

    data: bytes
    media_type: str
    annotations: dict[str, str]

    def descriptor(self) -> Descriptor:
        return Descriptor(
            self.media_type, sha256_digest(self.data), len(self.data), self.annotations
        )


@dataclass(frozen=True)
class AppendResult:
    manifest_digest: str
    status: str  # "pushed" or "present"
    attempts: int


def config_blob(diff_ids: list[str]) -> bytes:
    """go-containerregistry's empty image config after appending layers, as cosign writes."""
    return compact_json(
        {
            "architecture": "",
            "created": _ZERO_TIME,
            "history": [{"created": _ZERO_TIME} for _ in diff_ids],
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "config": {},
        }
    )


def manifest_bytes(layers: list[Descriptor], config: bytes) -> bytes:
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {
            "mediaType": CONFIG_TYPE,
            "size": len(config),
            "digest": sha256_digest(config),
        },
        "layers": [
            {
                "mediaType": d.media_type,
                "size": d.size,
                "digest": d.digest,
                **({"annotations": d.annotations} if d.annotations else {}),
            }
            for d in layers
        ],
    }
    return compact_json(doc)


def layers_of(manifest: Manifest | None) -> list[Descriptor]:
    if manifest is None:
        return []
    doc = manifest.json()
    return [Descriptor.from_dict(layer) for layer in doc.get("layers") or []]


def _same(a: Descriptor, b: Descriptor) -> bool:
    """Same blob and same signature: cosign's duplicate rule."""
    return a.digest == b.digest and a.annotations.get(SIGNATURE_ANNOTATION) == b.annotations.get(
        SIGNATURE_ANNOTATION
    )


SETTLE_MIN = 0.05
"""Settle floor once another writer has been seen during the operation."""
SETTLE_QUIET_MIN = 0.02
"""Settle floor while no other writer has been seen (the common, uncontended case)."""
SETTLE_MAX = 0.5


def settle_time(window: float, rand: random.Random, *, contended: bool = True) -> float:
    """How long to wait after a PUT before checking it stuck: three times our own HEAD->PUT
    gap (a concurrent writer can only overwrite us from within its own such gap, about as
    long), within [20 ms (no other writer seen) or 50 ms, 500 ms], with jitter so that
    racing writers do not re-check in lock step."""
    floor = SETTLE_MIN if contended else SETTLE_QUIET_MIN
    base: float = min(SETTLE_MAX, max(floor, 3 * window))
    return base * rand.uniform(1.0, 1.5)


STABLE_ROUNDS = 8
UNCHANGED_ATTEMPTS = 64
"""Reads before a PUT that found the tag changed since the read before; each means another
writer's PUT went through, so they are bounded separately (and by the deadline)."""


def wait_stable(
    client: RegistryClient,
    repository: str,
    tag: str,
    *,
    written: str,
    holds: Callable[[Manifest | None], bool],
    window: float,
    rand: random.Random,
    sleep: Callable[[float], None],
    contended: bool = True,
) -> Manifest | None:
    """After writing ``written`` at ``tag``: wait until the tag stops changing for one
    settle period while still satisfying ``holds``; None when it stopped holding (our item
    was overwritten: merge again). Stability matters because a writer that read the tag
    before our PUT can still PUT after a single check."""
    previous = written
    check: Manifest | None = None
    for _ in range(STABLE_ROUNDS):
        sleep(settle_time(window, rand, contended=contended))
        check = client.get_manifest(repository, tag)
        if not holds(check):
            return None
        assert check is not None
        if check.digest == previous:
            return check
        previous = check.digest  # another writer merged us in; make sure it settles
        contended = True
    return check


@dataclass(frozen=True)
class Put:
    digest: str | None
    """The digest written; None when the tag moved since the read and nothing was written."""
    window: float
    """Seconds in which another writer's PUT could have been overwritten unseen: from the
    HEAD to the end of the PUT, or from the read when the HEAD could not tell."""
    checked: bool


def put_if_unchanged(
    client: RegistryClient,
    repository: str,
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
    now = client.manifest_digest(repository, tag)
    if now not in ("", read.digest if read is not None else None):
        return Put(None, time.monotonic() - started, checked=True)
    digest = client.put_manifest(repository, tag, data, media_type)
    checked = now != ""
    return Put(digest, time.monotonic() - (started if checked else read_started), checked)


def read_confirmed(
    client: RegistryClient, repository: str, tag: str, sleep: Callable[[float], None]
) -> Manifest | None:
    """GET the tag; a 404 counts only when the tag list agrees.

    distribution 2.8 rewrites a tag's link file in place, so a GET racing another writer
    can answer 404 for a tag that exists. The tag list reads directory names, which do not
    flicker, so it tells a real absence from a misread.
    """
    for _ in range(5):
        current = client.get_manifest(repository, tag)
        if current is not None or tag not in client.list_tags(repository):
            return current
        sleep(0.02)
    raise RegistryError(
        f"{client.host}/{repository}:{tag}: listed but unreadable; retry the push "
        "(attest-step push --from DIR)"
    )


class _Seen:
    """Every layer observed at the tag during this operation, in first-seen order.

    Merging the union (not only the latest read) re-adds a layer another racing writer
    dropped, so a lost update is healed by whoever writes next.
    """

    def __init__(self) -> None:
        self.layers: list[Descriptor] = []

    def add(self, layers: list[Descriptor]) -> None:
        for d in layers:
            if not any(_same(d, x) for x in self.layers):
                self.layers.append(d)

    def missing_from(self, layers: list[Descriptor]) -> list[Descriptor]:
        return [d for d in self.layers if not any(_same(d, x) for x in layers)]


def append_layer(
    client: RegistryClient,
    repository: str,
    tag: str,
    layer: Layer,
    *,
    rng: random.Random | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> AppendResult:
    """Add ``layer`` to the manifest at ``tag`` without dropping anyone else's layer."""
    rand = rng or random.SystemRandom()
    ours = layer.descriptor()
    # The layer blob is uploaded while the tag is read and the config uploaded.
    upload = client.put_blob_background(repository, layer.data)
    try:
        return _append(client, repository, tag, ours, upload, rand, sleep)
    finally:
        with contextlib.suppress(Exception):
            upload.wait()  # joined on every path; its error, if any, was raised already


def _append(  # noqa: PLR0917
    client: RegistryClient,
    repository: str,
    tag: str,
    ours: Descriptor,
    upload: Background,
    rand: random.Random,
    sleep: Callable[[float], None],
) -> AppendResult:
    where = f"{client.host}/{repository}:{tag}"
    seen = _Seen()

    def complete(manifest: Manifest | None) -> bool:
        layers = layers_of(manifest)
        seen.add(layers)
        return any(_same(d, ours) for d in layers) and not seen.missing_from(layers)

    attempt = 0
    moved = 0
    contended = False
    while attempt < RACE_ATTEMPTS:
        attempt += 1
        started = time.monotonic()
        current = read_confirmed(client, repository, tag, sleep)
        if complete(current):
            assert current is not None
            return AppendResult(current.digest, "present" if attempt == 1 else "pushed", attempt)
        layers = layers_of(current)
        merged = [*layers, *(d for d in seen.missing_from(layers) if not _same(d, ours))]
        if not any(_same(d, ours) for d in merged):
            merged.append(ours)
        if len(merged) > MAX_LAYERS:
            raise RegistryError(
                f"{where}: would hold {len(merged)} layers, more than cosign accepts "
                f"({MAX_LAYERS}); remove old signatures before adding more"
            )
        config = config_blob([d.digest for d in merged])
        client.put_blob(repository, config)
        upload.wait()
        data = manifest_bytes(merged, config)
        put = put_if_unchanged(
            client,
            repository,
            tag,
            read=current,
            read_started=started,
            data=data,
            media_type=MANIFEST_TYPE,
        )
        if put.digest is None:  # another writer's PUT landed since our read: read again
            contended = True
            moved += 1
            if moved < UNCHANGED_ATTEMPTS:
                attempt -= 1
            continue
        contended = contended or attempt > 1 or not put.checked
        stable = wait_stable(
            client,
            repository,
            tag,
            written=put.digest,
            holds=complete,
            window=put.window,
            rand=rand,
            sleep=sleep,
            contended=contended,
        )
        if stable is not None:
            return AppendResult(stable.digest, "pushed", attempt)
        # Someone overwrote the tag after our PUT: merge again after a random pause.
        sleep(rand.uniform(0.0, min(1.0, 0.05 * attempt)))
    raise RegistryError(
        f"{where}: concurrent writers overwrote the tag {RACE_ATTEMPTS} times; "
        "retry the push (attest-step push --from DIR)"
    )


def read_layers(
    client: RegistryClient, repository: str, tag: str
) -> list[tuple[Descriptor, bytes]]:
    """Each layer at ``tag`` with its blob (empty list when the tag does not exist)."""
    manifest = client.get_manifest(repository, tag)
    out: list[tuple[Descriptor, bytes]] = []
    for desc in layers_of(manifest):
        out.append((desc, client.get_blob(repository, desc.digest)))
    return out
