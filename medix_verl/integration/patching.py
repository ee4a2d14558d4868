"""Checks for code that reaches into verl's internals (replaced functions, private registries,
subclassed private methods): each patch names what it needs, and a verl without it fails loudly,
naming the installed verl and the version the patch was written for, instead of misbehaving.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

#: the verl release every patch in this package was written for and tested against
WRITTEN_FOR = "0.9.1"


class VerlMismatchError(RuntimeError):
    """The installed verl lacks something a medix-verl patch replaces or relies on."""


def installed_verl() -> str:
    try:
        import verl

        return getattr(verl, "__version__", "unknown")
    except ImportError:  # pragma: no cover - every caller has verl
        return "not installed"


def _name(owner: Any) -> str:
    return getattr(owner, "__qualname__", None) or getattr(owner, "__name__", None) or type(owner).__name__


def require(owner: Any, names: Iterable[str], *, patch: str) -> None:
    """Raise :class:`VerlMismatchError` unless ``owner`` has every attribute in ``names``.

    >>> import json
    >>> require(json, ["loads", "dumps"], patch="example")
    >>> require(json, ["no_such_thing"], patch="example")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    medix_verl.integration.patching.VerlMismatchError: example: json has no ['no_such_thing'] (written for verl 0.9.1; installed: ...)
    """
    missing = [n for n in names if not hasattr(owner, n)]
    if missing:
        raise VerlMismatchError(
            f"{patch}: {_name(owner)} has no {missing} (written for verl {WRITTEN_FOR}; installed: {installed_verl()})"
        )


def require_params(fn: Any, params: Iterable[str], *, patch: str) -> None:
    """Raise :class:`VerlMismatchError` unless callable ``fn`` takes every parameter in ``params``."""
    have = set(inspect.signature(fn).parameters)
    missing = [p for p in params if p not in have]
    if missing:
        raise VerlMismatchError(
            f"{patch}: {_name(fn)} takes no {missing} (written for verl {WRITTEN_FOR}; installed: {installed_verl()})"
        )
