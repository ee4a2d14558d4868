"""verl 0.9.1 reward-loop manager ``medix``.

Registered under the name ``medix`` when verl loads the ``verl.plugins`` entry point of this
package (``reward.reward_manager.name=medix``), and loadable without the plugin as
``reward.reward_manager.source=importlib reward.reward_manager.module.path=pkg://medix_verl.verl.reward_manager
reward.reward_manager.name=MedixRewardManager``.

It reads its settings from ``reward.custom_reward_function.reward_kwargs`` (the same keys as
:func:`medix_verl.verl.reward_fn.compute_score`), builds the scorer once per reward worker (the
embedding model loads at start-up, not in the first step), and uses the judge verl manages when
``reward.reward_model.enable=True`` (the ``reward_router_address`` verl passes).

Keep ``reward.custom_reward_function.path=pkg://medix_verl.verl.reward_fn``: verl's reward-loop worker
sends samples to the reward manager only when a custom function is configured once a reward
model is enabled.
"""

from __future__ import annotations

from typing import Any

from verl import DataProto
from verl.experimental.reward_loop.reward_manager import register
from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase

from ..reward.scorer import JudgeContext, get_scorer
from ..reward.settings import RewardSettings
from .faults import publish_judge_stats, reporting_faults
from .reward_fn import verl_judge_model


@register("medix")
class MedixRewardManager(RewardManagerBase):
    """Scores each rollout with the composite MediX-R1 reward."""

    def __init__(
        self,
        config,
        tokenizer,
        compute_score=None,
        reward_router_address: str | None = None,
        reward_model_tokenizer=None,
        **_: Any,
    ):
        super().__init__(config, tokenizer, compute_score)
        reward_cfg = config.reward
        fn_cfg = reward_cfg.get("custom_reward_function") or {}
        self.settings = RewardSettings.from_kwargs(
            fn_cfg.get("reward_kwargs") or {}, where="reward.custom_reward_function.reward_kwargs"
        )
        judge_model = None
        if reward_router_address:
            rm_cfg = reward_cfg.get("reward_model") or {}
            judge_model = verl_judge_model(self.settings, rm_cfg.get("model_path"))
        self.reward_router_address = reward_router_address
        self.scorer = get_scorer(self.settings, judge_url=reward_router_address, judge_model=judge_model)
        judge_len = ((reward_cfg.get("reward_model") or {}).get("rollout") or {}).get("max_model_len")
        if reward_router_address and reward_model_tokenizer is not None and judge_len:
            # verl's router turns the judge's HTTP 400 (over its context) into a bare 500: such a
            # request is scored here, as the release scored it, instead of being sent
            self.scorer.judge_context = JudgeContext(reward_model_tokenizer, int(judge_len))
        warm_up = getattr(self.scorer.embedder, "warm_up", None)
        if warm_up is not None:
            warm_up()

    async def run_single(self, data: DataProto) -> dict:
        item = data[len(data) - 1]  # multi-sequence outputs: score the last sequence
        response_ids = item.batch["responses"]
        response_length = response_ids.shape[-1]
        valid_length = int(item.batch["attention_mask"][-response_length:].sum())
        # decoded inline: a thread hop per sample cost more than decoding a response does
        response = self.tokenizer.decode(response_ids[:valid_length].tolist(), skip_special_tokens=True)
        non_tensor = item.non_tensor_batch
        reward_model = non_tensor.get("reward_model") or {}
        if "ground_truth" not in reward_model:
            raise KeyError(
                "sample has no reward_model.ground_truth (data_source="
                f"{non_tensor.get('data_source')!r}); prepare data with data_prep.medix_rl_data"
            )
        extra_info = dict(non_tensor.get("extra_info") or {})
        # a judge that is down is reported first: verl would drop this group and refill it
        # forever; the medix trainer stops the run on it
        result, sample = await reporting_faults(
            self.scorer.score_detailed(
                response,
                reward_model["ground_truth"],
                data_source=non_tensor.get("data_source"),
                question=extra_info.get("question"),
                extra_info=extra_info,
            )
        )
        publish_judge_stats(self.scorer.judge)  # per-replica counts for the trainer's judge/replica/* metrics
        info = dict(result)
        info["response_length"] = float(valid_length)  # tokens
        info["answer_length"] = float(len(sample.answer))  # characters of the extracted answer
        return {"reward_score": result["score"], "reward_extra_info": info}
