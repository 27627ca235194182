"""Groups of click options that reach a command as one typed value.

``registry_options`` hands a command ``registry: RegistryOptions``, ``certificate_options``
``cert_flags: CertificateFlags``: each is an :func:`option_group` whose click parameters are
named as the fields of the value they build.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

F = TypeVar("F", bound=Callable[..., Any])
Decorator = Callable[[Any], Any]


def option_group(
    name: str, build: Callable[..., Any], params: Sequence[str], options: Sequence[Decorator]
) -> Callable[[F], F]:
    """A decorator adding ``options`` to a command, which receives ``name`` =
    ``build(**values)`` in place of the values of the parameters ``params``."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            kwargs[name] = build(**{param: kwargs.pop(param) for param in params})
            return func(*args, **kwargs)

        decorated: Any = wrapper
        for option in reversed(options):
            decorated = option(decorated)
        return cast(F, decorated)

    return decorate
