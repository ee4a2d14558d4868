"""Weight trees: how the named parts of the reward are combined into one score.

A weight tree maps a name to either a number (a part's weight) or a group
``{"weight": w, "parts": {...}}``. The ``release`` preset's tree is the published one (spec 4.10)::

    score = 0.9 * (0.575 * accuracy_llm + 0.375 * accuracy_embed + 0.05 * modality) + 0.1 * format

>>> combine({"accuracy_llm": 1, "accuracy_embed": 1, "modality": 1, "format": 1}, PAPER_WEIGHTS)
1.0
>>> round(combine({"accuracy_llm": 1, "accuracy_embed": 0, "modality": 1, "format": 1}, PAPER_WEIGHTS), 4)
0.6625
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Union

PAPER_WEIGHTS: dict[str, Any] = {
    "accuracy": {"weight": 0.9, "parts": {"accuracy_llm": 0.575, "accuracy_embed": 0.375, "modality": 0.05}},
    "format": 0.1,
}

WeightTree = Mapping[str, Union[float, int, Mapping[str, Any]]]


def leaf_parts(weights: WeightTree) -> list[str]:
    """Names of the parts a weight tree uses, depth first.

    >>> leaf_parts(PAPER_WEIGHTS)
    ['accuracy_llm', 'accuracy_embed', 'modality', 'format']
    """
    names: list[str] = []
    for name, node in weights.items():
        if isinstance(node, Mapping):
            names.extend(leaf_parts(node["parts"]))
        else:
            names.append(name)
    return names


def validate_weights(weights: Any, where: str = "weights") -> dict[str, Any]:
    """Check a weight tree (numbers, or ``{"weight", "parts"}`` groups) and return a plain copy.

    Raises ValueError naming the offending path. Unknown part names are reported by
    :func:`check_parts_known`, which runs once custom parts are registered.
    """
    if not isinstance(weights, Mapping) or not weights:
        raise ValueError(f"{where} must be a non-empty mapping, got {weights!r}")
    out: dict[str, Any] = {}
    for name, node in weights.items():
        path = f"{where}.{name}"
        if isinstance(node, Mapping):
            extra = set(node) - {"weight", "parts"}
            if extra or "parts" not in node:
                raise ValueError(f"{path}: a group needs exactly 'weight' and 'parts', got keys {sorted(node)}")
            out[name] = {
                "weight": _number(node.get("weight", 1.0), f"{path}.weight"),
                "parts": validate_weights(node["parts"], f"{path}.parts"),
            }
        else:
            out[name] = _number(node, path)
    seen = leaf_parts(out)
    dupes = sorted({n for n in seen if seen.count(n) > 1})
    if dupes and where == "weights":
        raise ValueError(f"{where}: part(s) {dupes} appear more than once")
    return out


def _number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{path} must be a finite number, got {value!r}")
    return float(value)


def combine(parts: Mapping[str, float], weights: WeightTree) -> float:
    """The weighted sum of ``parts`` over the weight tree, evaluated in the tree's order."""
    total = 0.0
    for name, node in weights.items():
        if isinstance(node, Mapping):
            total += node["weight"] * combine(parts, node["parts"])
        else:
            total += node * parts[name]
    return total
