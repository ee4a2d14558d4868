"""One sample through a preset: the model-free rules (:func:`prepare`), then the result dict
(:func:`assemble`) once the judge and the embedder have answered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Union

from . import rules
from .presets import RELEASE, Preset
from .robust import DEFAULT_MAX_ANSWER_CHARS, gate_answer
from .weights import PAPER_WEIGHTS, WeightTree, combine

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
    preset: Preset = RELEASE,
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
        gate := preset.gate(
            answer,
            question=question,
            reference=gt.answer,
            **({"max_answer_chars": max_answer_chars} if max_answer_chars else {}),
        )
    ):
        route = ROUTE_INVALID
    elif preset.gate is None and not preset.answer_is_valid(answer):
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
        modality=rules.modality_reward(
            normalized, gt.tag if gt.tag is not None or not preset.tagless_modality_as_released else ground_truth + ">"
        ),
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
    judge_overlength: bool = False,
    custom: Union[Mapping[str, float], None] = None,
    gate_keys: tuple[str, ...] = (),
) -> dict[str, float]:
    """Build the result dict (the seven :data:`RESULT_KEYS`, then custom parts, then the preset's
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
        # the judge refused the request as longer than its context: scored 0 as the release did
        # (its exception handler), counted under its own name, not as a judge fault
        "judge_overlength": 1.0 if judge_overlength else 0.0,
    }
    for name, value in (custom or {}).items():
        result[name] = value
    for key in gate_keys:
        result[key] = 1.0 if sample.gate is not None and key == f"gate_{sample.gate}" else 0.0
    return result


def shadow_gate(sample: PreparedSample, *, max_answer_chars: Union[int, None] = None) -> Union[str, None]:
    """The gate the ``robust`` preset would refuse this sample's answer with, whatever preset
    prepared it (its reward is not changed): the hack alarm of a run under the release's preset.
    None for an answer the gates let through, and for a sample without a reference.

    >>> shadow_gate(prepare("<X_RAY><thinking>r</thinking><answer>Let me think step by step</answer>", "<X_RAY> Pneumonia"))
    'master_key'
    >>> shadow_gate(prepare("<X_RAY><thinking>r</thinking><answer>Pneumonia</answer>", "<X_RAY> Edema")) is None
    True
    """
    if sample.reference is None:
        return None
    if sample.normalized.count("<answer>") > 1:
        return "hedged"
    return gate_answer(
        sample.answer,
        question=sample.question,
        reference=sample.reference,
        max_answer_chars=max_answer_chars or DEFAULT_MAX_ANSWER_CHARS,
    )


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
