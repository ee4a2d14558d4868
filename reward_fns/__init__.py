"""Pure MediX-R1 reward functions: no verl, no Ray, no network.

Import what you need from here::

    from reward_fns import prepare, PAPER, combine, reward_part
"""
from .composite import (
    BUILTIN_PARTS,
    PAPER,
    PAPER_WEIGHTS,
    PRESETS,
    RESULT_KEYS,
    ROBUST,
    ROUTE_EXACT,
    ROUTE_INVALID,
    ROUTE_MODEL,
    ROUTE_NO_REFERENCE,
    PreparedSample,
    Preset,
    assemble,
    check_parts_known,
    combine,
    evaluate_part,
    get_preset,
    leaf_parts,
    prepare,
    registered_parts,
    reward_part,
    score_without_models,
    validate_weights,
)
from .robust import GATES, fence, gate_answer, robust_format_reward, robust_judge_messages
from .judge_prompt import PAPER_JUDGE_PARAMS, PAPER_JUDGE_TEMPLATE, paper_judge_messages
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

__all__ = [name for name in dir() if not name.startswith("_")]
