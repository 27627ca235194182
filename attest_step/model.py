"""Small typed records shared across modules."""

from __future__ import annotations

from typing import Any


class Subject:
    """An in-toto ResourceDescriptor used as a Statement subject.

    Immutable, compared by value, like the frozen dataclass it replaces, but about half as
    costly to build (``attest-step hash`` builds one per file: tens of thousands).
    """

    __slots__ = ("annotations", "digest", "name")

    name: str
    digest: dict[str, str]
    annotations: dict[str, str]

    def __init__(
        self, name: str, digest: dict[str, str], annotations: dict[str, str] | None = None
    ) -> None:
        _set_name(self, name)
        _set_digest(self, digest)
        _set_annotations(self, {} if annotations is None else annotations)

    def __setattr__(self, key: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {key!r}")

    def __delattr__(self, key: str) -> None:
        raise AttributeError(f"cannot delete field {key!r}")

    def _fields(self) -> tuple[str, dict[str, str], dict[str, str]]:
        return (self.name, self.digest, self.annotations)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Subject)
        return self._fields() == other._fields()

    def __hash__(self) -> int:  # as the frozen dataclass: TypeError (the fields are dicts)
        return hash(self._fields())

    def __repr__(self) -> str:
        return (
            f"Subject(name={self.name!r}, digest={self.digest!r}, annotations={self.annotations!r})"
        )

    def __reduce__(self) -> tuple[type[Subject], tuple[str, dict[str, str], dict[str, str]]]:
        return (Subject, self._fields())

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "digest": dict(self.digest)}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out


_set_name = Subject.__dict__["name"].__set__
_set_digest = Subject.__dict__["digest"].__set__
_set_annotations = Subject.__dict__["annotations"].__set__
