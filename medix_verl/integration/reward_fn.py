"""verl's ``reward.custom_reward_function`` entry point::

    reward.custom_reward_function.path=pkg://medix_verl.integration.reward_fn
    reward.custom_reward_function.name=compute_score

It works with verl's ``naive`` reward manager and with ours (``reward.reward_manager.name=medix``);
settings go in ``reward.custom_reward_function.reward_kwargs`` (the keys of
:class:`~medix_verl.reward.settings.RewardSettings`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..reward.scorer import get_scorer
from ..reward.settings import RewardSettings
from .faults import publish_judge_stats, reporting_faults

_SETTINGS: dict[str, RewardSettings] = {}


def _settings_for(kwargs: Mapping[str, Any]) -> RewardSettings:
    key = json.dumps(kwargs, sort_keys=True, default=repr)
    settings = _SETTINGS.get(key)
    if settings is None:
        settings = _SETTINGS[key] = RewardSettings.from_kwargs(kwargs)
    return settings


_CALL_KEYS = {"reward_router_address", "reward_model_tokenizer", "reward_model_path"}


def verl_judge_model(settings: RewardSettings, served: str | None) -> str:
    """The model name to ask verl's judge for: verl serves it under ``reward.reward_model.model_path``
    (``vllm serve <path>``; its own reward loop asks for that name too). A ``judge_model`` that
    names something else would have every judge call refused: it is an error here, at start-up."""
    if not served:
        raise ValueError(
            "verl manages the judge but did not say which model it serves (reward.reward_model.model_path)"
        )
    if settings.judge_model and settings.judge_model != served:
        raise ValueError(
            f"reward_kwargs.judge_model={settings.judge_model!r} but verl serves its judge as "
            f"reward.reward_model.model_path={served!r}: leave judge_model null with a verl-managed judge"
        )
    return served


async def compute_score(
    data_source: str | None,
    solution_str: str,
    ground_truth: str,
    extra_info: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, float]:
    """verl ``reward.custom_reward_function`` entry point (async).

    ``kwargs`` are the :class:`RewardSettings` keys (from ``reward_kwargs``), plus what verl passes
    per call: ``reward_router_address`` (the judge verl manages, when ``reward.reward_model.enable``)
    and ``reward_model_tokenizer`` (ignored).

    Returns ``score, format, modality, accuracy_llm, accuracy_embed, judge_error, judge_overlength`` (and custom parts).
    """
    router = kwargs.pop("reward_router_address", None)
    # verl's naive manager passes the judge's tokenizer, loaded from reward.reward_model.model_path
    judge_tokenizer = kwargs.pop("reward_model_tokenizer", None)
    model_path = kwargs.pop("reward_model_path", None) or getattr(judge_tokenizer, "name_or_path", None)
    for key in _CALL_KEYS:
        kwargs.pop(key, None)
    settings = _settings_for(kwargs)
    scorer = get_scorer(
        settings, judge_url=router, judge_model=verl_judge_model(settings, model_path) if router else None
    )
    question = None
    if isinstance(extra_info, Mapping):
        question = extra_info.get("question")
    # a judge that is down is reported first: the medix trainer stops the run on it
    result = await reporting_faults(
        scorer.score(solution_str, ground_truth, data_source=data_source, question=question, extra_info=extra_info)
    )
    publish_judge_stats(scorer.judge)  # per-replica counts for the trainer's judge/replica/* metrics
    return result
