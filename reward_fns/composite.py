"""The composite reward: named parts, presets, and their weighted combination.

The score is a weighted sum over a small tree of named parts. The ``paper`` preset's tree is
the published one (spec 4.10)::

    score = 0.9 * (0.575 * accuracy_llm + 0.375 * accuracy_embed + 0.05 * modality) + 0.1 * format

A weight tree maps a name to either a number (a part's weight) or a group
``{"weight": w, "parts": {...}}``. A user adds a part by decorating a function with
:func:`reward_part` and giving it a weight (``weights={"brevity": 0.05, ...}``); the package
itself is not edited.

>>> combine({"accuracy_llm": 1, "accuracy_embed": 1, "modality": 1, "format": 1}, PAPER_WEIGHTS)
1.0
>>> round(combine({"accuracy_llm": 1, "accuracy_embed": 0, "modality": 1, "format": 1}, PAPER_WEIGHTS), 4)
0.6625
"""
from __future__ import annotations

import copy
import inspect
import math
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping, Union

from . import robust as _robust
from . import rules
from .judge_prompt import PAPER_JUDGE_PARAMS, paper_judge_messages

#: Parts computed by the package itself; every result carries them.
BUILTIN_PARTS: tuple[str, ...] = ("accuracy_llm", "accuracy_embed", "modality", "format")
#: Keys every result dict carries, in this order (custom parts follow).
RESULT_KEYS: tuple[str, ...] = ("score", "format", "modality", "accuracy_llm", "accuracy_embed", "judge_error")

PAPER_WEIGHTS: dict[str, Any] = {
    "accuracy": {"weight": 0.9, "parts": {"accuracy_llm": 0.575, "accuracy_embed": 0.375, "modality": 0.05}},
    "format": 0.1,
}

WeightTree = Mapping[str, Union[float, int, Mapping[str, Any]]]


# ----------------------------------------------------------------------------- custom parts
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


async def evaluate_part(name: str, sample: "PreparedSample") -> float:
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


# ----------------------------------------------------------------------------- weights
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


def check_parts_known(weights: WeightTree) -> None:
    unknown = [n for n in leaf_parts(weights) if n not in BUILTIN_PARTS and n not in _PARTS]
    if unknown:
        raise ValueError(
            f"weights name unknown reward part(s) {unknown}; built-in: {list(BUILTIN_PARTS)}, "
            f"registered: {sorted(_PARTS)} (register one with @reward_fns.reward_part and load its module "
            "through the 'part_modules' setting)"
        )


def combine(parts: Mapping[str, float], weights: WeightTree) -> float:
    """The weighted sum of ``parts`` over the weight tree, evaluated in the tree's order."""
    total = 0.0
    for name, node in weights.items():
        if isinstance(node, Mapping):
            total += node["weight"] * combine(parts, node["parts"])
        else:
            total += node * parts[name]
    return total


# ----------------------------------------------------------------------------- presets
@dataclass(frozen=True)
class Preset:
    """A complete reward definition: the rules, the judge request and the weights."""

    name: str
    description: str
    answer_is_valid: Callable[[str], bool]
    format_reward: Callable[[str], float]
    verdict: Callable[[str], Union[bool, None]]
    judge_messages: Callable[..., list[dict]]
    judge_params: Mapping[str, Any]
    embed_threshold: float
    weights: Mapping[str, Any] = field(default_factory=lambda: copy.deepcopy(PAPER_WEIGHTS))
    #: ``gate(answer, max_answer_chars=...) -> reason | None``: answers refused before the judge.
    #: When set, it replaces ``answer_is_valid`` in :func:`prepare`.
    gate: Union[Callable[..., Union[str, None]], None] = None
    #: credit a case-insensitive exact match before any validity rule (the paper checks validity first)
    exact_first: bool = False
    #: how many times an unparseable verdict is asked again before it counts as a judge error
    verdict_retries: int = 0

    @property
    def gate_keys(self) -> tuple[str, ...]:
        """Extra result keys (``gate_<reason>``, 0/1) this preset reports for monitoring."""
        return tuple(f"gate_{g}" for g in _robust.GATES) if self.gate is not None else ()


PAPER = Preset(
    name="paper",
    description="The published MediX-R1 reward, rule for rule (spec section 4).",
    answer_is_valid=rules.paper_answer_is_valid,
    format_reward=rules.paper_format_reward,
    verdict=rules.paper_verdict,
    judge_messages=paper_judge_messages,
    judge_params=PAPER_JUDGE_PARAMS,
    embed_threshold=0.8,
)

ROBUST = Preset(
    name="robust",
    description=(
        "Opt-in hardened reward: gated answers (master keys, hedges, grader-directed text, over-long) "
        "get no accuracy credit and never reach the judge; a fenced judge prompt that shows the question; "
        "a strict YES/NO verdict; one thinking and one answer block, nothing after."
    ),
    answer_is_valid=_robust.robust_answer_is_valid,
    format_reward=_robust.robust_format_reward,
    verdict=rules.strict_verdict,
    judge_messages=_robust.robust_judge_messages,
    judge_params=_robust.ROBUST_JUDGE_PARAMS,
    embed_threshold=0.8,
    gate=_robust.gate_answer,
    exact_first=True,
    verdict_retries=1,
)

PRESETS: dict[str, Preset] = {p.name: p for p in (PAPER, ROBUST)}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown reward preset {name!r}; choose one of {sorted(PRESETS)}") from None


# ----------------------------------------------------------------------------- one sample
# How the accuracy parts of a sample are decided.
ROUTE_NO_REFERENCE = "no_reference"  # ground truth without '>' -> both 0
ROUTE_INVALID = "invalid"  # invalid predicted answer -> both 0
ROUTE_EXACT = "exact"  # predicted == reference -> both 1, no judge call
ROUTE_MODEL = "model"  # ask the judge and the embedder


@dataclass(frozen=True)
class PreparedSample:
    """Everything about one response that needs no model: parsed parts and the rule-based scores."""

    response: str
    ground_truth: str
    normalized: str
    tag: Union[str, None]
    reference: Union[str, None]
    answer: str
    format: float
    modality: float
    route: str
    gate: Union[str, None] = None
    data_source: Union[str, None] = None
    question: Union[str, None] = None
    extra_info: Union[Mapping[str, Any], None] = None


def prepare(
    response: str,
    ground_truth: str,
    preset: Preset = PAPER,
    *,
    data_source: Union[str, None] = None,
    question: Union[str, None] = None,
    extra_info: Union[Mapping[str, Any], None] = None,
    max_answer_chars: Union[int, None] = None,
) -> PreparedSample:
    """Apply every model-free rule of ``preset`` to one response.

    >>> s = prepare("<CT_SCAN><thinking>r</thinking><answer>Pneumonia</answer>", "<CT_SCAN> Pneumonia")
    >>> (s.answer, s.reference, s.format, s.modality, s.route)
    ('Pneumonia', 'Pneumonia', 1.0, 1.0, 'exact')
    """
    if not isinstance(response, str):
        raise TypeError(f"response must be a string, got {type(response).__name__}")
    if not isinstance(ground_truth, str):
        raise TypeError(f"ground_truth must be a string, got {type(ground_truth).__name__}")
    normalized = rules.normalize_response(response)
    gt = rules.parse_ground_truth(ground_truth)
    answer = rules.extract_answer(normalized)
    gate = None
    if not gt.valid:
        route = ROUTE_NO_REFERENCE
    elif preset.exact_first and answer and answer.casefold() == gt.answer.casefold():
        route = ROUTE_EXACT
    elif preset.gate is not None and normalized.count("<answer>") > 1:
        gate, route = "hedged", ROUTE_INVALID  # several answer blocks: several candidate answers
    elif preset.gate is not None and (
        gate := preset.gate(answer, **({"max_answer_chars": max_answer_chars} if max_answer_chars else {}))
    ):
        route = ROUTE_INVALID
    elif preset.gate is None and not preset.answer_is_valid(answer):
        # a preset with a gate judges validity by the gate alone (with the configured cap)
        route = ROUTE_INVALID
    elif answer == gt.answer:
        route = ROUTE_EXACT
    else:
        route = ROUTE_MODEL
    return PreparedSample(
        response=response,
        ground_truth=ground_truth,
        normalized=normalized,
        tag=gt.tag,
        reference=gt.answer,
        answer=answer,
        format=float(preset.format_reward(normalized)),
        modality=rules.modality_reward(normalized, gt.tag),
        route=route,
        gate=gate,
        data_source=data_source,
        question=question,
        extra_info=extra_info,
    )


def assemble(
    sample: PreparedSample,
    weights: WeightTree,
    *,
    accuracy_llm: float,
    accuracy_embed: float,
    judge_error: bool = False,
    custom: Union[Mapping[str, float], None] = None,
    gate_keys: tuple[str, ...] = (),
) -> dict[str, float]:
    """Build the result dict (the six :data:`RESULT_KEYS`, then custom parts, then the preset's
    ``gate_*`` flags) for one sample."""
    parts = {
        "accuracy_llm": float(accuracy_llm),
        "accuracy_embed": float(accuracy_embed),
        "modality": sample.modality,
        "format": sample.format,
        **(custom or {}),
    }
    result = {
        "score": combine(parts, weights),
        "format": parts["format"],
        "modality": parts["modality"],
        "accuracy_llm": parts["accuracy_llm"],
        "accuracy_embed": parts["accuracy_embed"],
        "judge_error": 1.0 if judge_error else 0.0,
    }
    for name, value in (custom or {}).items():
        result[name] = value
    for key in gate_keys:
        result[key] = 1.0 if sample.gate is not None and key == f"gate_{sample.gate}" else 0.0
    return result


def score_without_models(sample: PreparedSample, weights: WeightTree = PAPER_WEIGHTS) -> dict[str, float]:
    """Score a sample whose accuracy parts need no model (any route but ``model``).

    >>> s = prepare("<X_RAY><thinking>r</thinking><answer>B</answer>", "<X_RAY> B")
    >>> round(score_without_models(s)["score"], 6)  # one-character answers are invalid, even when exact
    0.145
    """
    if sample.route == ROUTE_MODEL:
        raise ValueError("this sample needs the judge and the embedder")
    acc = 1.0 if sample.route == ROUTE_EXACT else 0.0
    return assemble(sample, weights, accuracy_llm=acc, accuracy_embed=acc)
