"""The registry of named reward parts.

The package computes four parts itself (:data:`BUILTIN_PARTS`). A user adds one by decorating a
function with :func:`reward_part` and giving it a weight in the weight tree
(``weights={"brevity": 0.05, ...}``); the package itself is not edited.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Union

from .weights import WeightTree, leaf_parts

if TYPE_CHECKING:
    from .composite import PreparedSample

#: Parts computed by the package itself; every result carries them.
BUILTIN_PARTS: tuple[str, ...] = ("accuracy_llm", "accuracy_embed", "modality", "format")
#: Keys every result dict carries, in this order (custom parts follow).
RESULT_KEYS: tuple[str, ...] = (
    "score",
    "format",
    "modality",
    "accuracy_llm",
    "accuracy_embed",
    "judge_error",
    "judge_overlength",
)

PartFn = Callable[["PreparedSample"], Union[float, Awaitable[float]]]
_PARTS: dict[str, PartFn] = {}


def reward_part(name: str) -> Callable[[PartFn], PartFn]:
    """Register ``fn(sample: PreparedSample) -> float`` (or an async function) as part ``name``.

    The value must be a finite number; give the part a weight in the weight tree to use it.

    >>> @reward_part("doc_example_brevity")
    ... def brevity(sample):
    ...     return 1.0 if len(sample.answer) < 80 else 0.0
    >>> "doc_example_brevity" in registered_parts()
    True
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"reward part name must be an identifier, got {name!r}")
    if name in BUILTIN_PARTS or name in RESULT_KEYS:
        raise ValueError(f"reward part name {name!r} is reserved for a built-in part")

    def decorator(fn: PartFn) -> PartFn:
        previous = _PARTS.get(name)
        if previous is not None and _qualname(previous) != _qualname(fn):
            raise ValueError(f"reward part {name!r} is already registered by {_qualname(previous)}")
        _PARTS[name] = fn
        return fn

    return decorator


def _qualname(fn: Callable) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def registered_parts() -> dict[str, PartFn]:
    """The custom parts registered so far (name -> function)."""
    return dict(_PARTS)


async def evaluate_part(name: str, sample: PreparedSample) -> float:
    """Run custom part ``name`` on ``sample`` and check its value."""
    fn = _PARTS.get(name)
    if fn is None:
        raise KeyError(f"no reward part named {name!r}; registered: {sorted(_PARTS)}")
    value = fn(sample)
    if inspect.isawaitable(value):
        value = await value
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"reward part {name!r} returned {value!r}, not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"reward part {name!r} returned {value}, not a finite number")
    return value


def check_parts_known(weights: WeightTree) -> None:
    unknown = [n for n in leaf_parts(weights) if n not in BUILTIN_PARTS and n not in _PARTS]
    if unknown:
        raise ValueError(
            f"weights name unknown reward part(s) {unknown}; built-in: {list(BUILTIN_PARTS)}, "
            f"registered: {sorted(_PARTS)} (register one with @reward_fns.reward_part and load its module "
            "through the 'part_modules' setting)"
        )
