"""JSON text of subjects, byte for byte ``json.dumps(list, indent=2, sort_keys=True)``.

Without ``json``'s pure-Python indenting encoder (tens of thousands of subjects), and cheap
enough per item that the hashing workers render their own batches (docs/hashing.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from json.encoder import encode_basestring_ascii as quote  # what json.dumps uses (C in CPython)

from attest_step.model import Subject

__all__ = ["quote", "sha256_items", "subjects_json", "wrap_items"]


def sha256_items(names: Iterable[str], hexes: Iterable[str]) -> str:
    """The items of the JSON list for subjects ``{"name": N, "digest": {"sha256": H}}``.

    Joined by ``",\\n"``, without the enclosing ``[``/``]`` lines. ``hexes`` must be hex
    digests (no character to escape).
    """
    head = '  {\n    "digest": {\n      "sha256": "'
    middle = '"\n    },\n    "name": '
    return ",\n".join(
        [
            f"{head}{hexdigest}{middle}{quote(name)}\n  }}"
            for name, hexdigest in zip(names, hexes, strict=True)
        ]
    )


def wrap_items(items: str) -> str:
    """The whole JSON list around items made by :func:`sha256_items` (``[]`` when empty)."""
    return "[\n" + items + "\n]" if items else "[]"


def subjects_json(subjects: Sequence[Subject]) -> str:
    """Same text as ``json.dumps([s.to_dict() ...], indent=2, sort_keys=True)``."""
    if not subjects:
        return "[]"
    items: list[str] = []
    for subject in subjects:
        if subject.annotations:  # rare (directory digests): json.dumps itself
            import json  # noqa: PLC0415 - not needed by the common case

            items.append(
                "\n".join(
                    "  " + line
                    for line in json.dumps(subject.to_dict(), indent=2, sort_keys=True).split("\n")
                )
            )
            continue
        digest = ",\n".join(
            f"      {quote(key)}: {quote(value)}" for key, value in sorted(subject.digest.items())
        )
        name = quote(subject.name)
        items.append(f'  {{\n    "digest": {{\n{digest}\n    }},\n    "name": {name}\n  }}')
    return "[\n" + ",\n".join(items) + "\n]"
