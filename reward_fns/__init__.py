"""Pure MediX-R1 reward functions: no verl, no Ray, no network, nothing else of this project.

* :mod:`.rules`: the release's rules (normalisation, answer extraction, format, modality, verdict);
* :mod:`.robust`: the ``robust`` preset's gates, fenced judge prompt and strict format;
* :mod:`.judge_prompt`: the release's training judge request;
* :mod:`.prompts`: the release's training prompt;
* :mod:`.parts`: the registry of named parts (custom parts register here);
* :mod:`.weights`: weight trees and their combination into one score;
* :mod:`.presets`: ``release`` (as published; formerly ``paper``) and ``robust``;
* :mod:`.composite`: one sample through a preset.

Import what you need from here::

    from reward_fns import prepare, RELEASE, combine, reward_part
"""

from .composite import (
    ROUTE_EXACT,
    ROUTE_INVALID,
    ROUTE_MODEL,
    ROUTE_NO_REFERENCE,
    PreparedSample,
    assemble,
    prepare,
    score_without_models,
    shadow_gate,
)
from .judge_prompt import PAPER_JUDGE_PARAMS, PAPER_JUDGE_TEMPLATE, paper_judge_messages
from .parts import BUILTIN_PARTS, RESULT_KEYS, check_parts_known, evaluate_part, registered_parts, reward_part
from .presets import PAPER, PRESET_ALIASES, PRESETS, RELEASE, ROBUST, Preset, get_preset, preset_name
from .prompts import IMAGE_PLACEHOLDER, MEDIX_PROMPT_HEAD, medix_prompt
from .robust import GATES, fence, gate_answer, robust_format_reward, robust_judge_messages
from .rules import (
    MODALITY_TAGS,
    GroundTruth,
    extract_answer,
    modality_reward,
    normalize_response,
    paper_answer_is_valid,
    paper_format_reward,
    paper_verdict,
    parse_ground_truth,
    strict_verdict,
    yes_probability,
)
from .weights import PAPER_WEIGHTS, combine, leaf_parts, validate_weights

__all__ = [
    "BUILTIN_PARTS",
    "GATES",
    "GroundTruth",
    "IMAGE_PLACEHOLDER",
    "MEDIX_PROMPT_HEAD",
    "MODALITY_TAGS",
    "PAPER",
    "PAPER_JUDGE_PARAMS",
    "PAPER_JUDGE_TEMPLATE",
    "PAPER_WEIGHTS",
    "PRESETS",
    "PRESET_ALIASES",
    "RELEASE",
    "preset_name",
    "PreparedSample",
    "Preset",
    "RESULT_KEYS",
    "ROBUST",
    "ROUTE_EXACT",
    "ROUTE_INVALID",
    "ROUTE_MODEL",
    "ROUTE_NO_REFERENCE",
    "assemble",
    "check_parts_known",
    "combine",
    "evaluate_part",
    "extract_answer",
    "fence",
    "gate_answer",
    "get_preset",
    "leaf_parts",
    "medix_prompt",
    "modality_reward",
    "normalize_response",
    "paper_answer_is_valid",
    "paper_format_reward",
    "paper_judge_messages",
    "paper_verdict",
    "parse_ground_truth",
    "prepare",
    "registered_parts",
    "reward_part",
    "robust_format_reward",
    "robust_judge_messages",
    "score_without_models",
    "shadow_gate",
    "strict_verdict",
    "validate_weights",
    "yes_probability",
]
