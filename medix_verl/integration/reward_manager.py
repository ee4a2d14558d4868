"""verl 0.9.1 reward-loop manager ``medix``.

Registered under the name ``medix`` when verl loads the ``verl.plugins`` entry point of this
package (``reward.reward_manager.name=medix``), and loadable without the plugin as
``reward.reward_manager.source=importlib reward.reward_manager.module.path=pkg://medix_verl.integration.reward_manager
reward.reward_manager.name=MedixRewardManager``.

It reads its settings from ``reward.custom_reward_function.reward_kwargs`` (the same keys as
:func:`medix_verl.integration.reward_fn.compute_score`), builds the scorer once per reward worker (the
embedding model loads at start-up, not in the first step), and uses the judge verl manages when
``reward.reward_model.enable=True`` (the ``reward_router_address`` verl passes).

Keep ``reward.custom_reward_function.path=pkg://medix_verl.integration.reward_fn``: verl's reward-loop worker
sends samples to the reward manager only when a custom function is configured once a reward
model is enabled.

A batch at once. verl's ``RewardLoopWorker.compute_score_batch`` (the colocated reward path)
slices the batch into one ``DataProto`` per sample and reads the config three times per sample
before the first judge request goes out: about a third of the reward stage's time against a fast
judge. :meth:`MedixRewardManager.run_batch` takes the whole batch (responses decoded in one call,
non-tensor fields read from their arrays) and scores every sample as a task of its own, as
:meth:`run_single` does; :func:`batch_path` makes verl's worker use it for this manager (any other
manager keeps verl's own path). ``run_single`` stays for verl's per-sample calls from the agent loop.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

from verl import DataProto
from verl.experimental.reward_loop.reward_manager import register
from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase

from ..reward.scorer import JudgeContext, get_scorer
from ..reward.settings import RewardSettings
from .faults import publish_judge_stats, reporting_faults
from .patching import require
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
        # a reward worker holds verl, torch and transformers: millions of long-lived objects that
        # every full garbage collection would walk again while thousands of judge requests are in
        # flight. Set aside from collection once they are loaded (gc.freeze, as servers do).
        gc.freeze()

    async def run_single(self, data: DataProto) -> dict:
        last = len(data) - 1  # multi-sequence outputs: score the last sequence
        response, valid_length = self._decode(data, [last])[0]
        return await self._score(response, valid_length, data.non_tensor_batch, last)

    async def run_batch(self, data: DataProto) -> list[dict]:
        """:meth:`run_single` for every row of ``data`` (one sample a row), in order."""
        rows = list(range(len(data)))
        decoded = self._decode(data, rows)
        non_tensor = data.non_tensor_batch
        tasks = [
            asyncio.ensure_future(self._score(response, length, non_tensor, i))
            for i, (response, length) in zip(rows, decoded, strict=True)
        ]
        try:
            return await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    def _decode(self, data: DataProto, rows: list[int]) -> list[tuple[str, int]]:
        """(response text, valid response tokens) of ``rows``, decoded in one call (inline: a
        thread hop cost more than decoding does)."""
        responses = data.batch["responses"]
        response_length = responses.shape[-1]
        lengths = data.batch["attention_mask"][rows, -response_length:].sum(-1).tolist()
        ids = [responses[row, : int(n)].tolist() for row, n in zip(rows, lengths, strict=True)]
        texts = self.tokenizer.batch_decode(ids, skip_special_tokens=True)
        return [(text, int(n)) for text, n in zip(texts, lengths, strict=True)]

    async def _score(self, response: str, valid_length: int, non_tensor, row: int) -> dict:
        def field(key):
            values = non_tensor.get(key)
            return None if values is None else values[row]

        reward_model = field("reward_model") or {}
        if "ground_truth" not in reward_model:
            raise KeyError(
                "sample has no reward_model.ground_truth (data_source="
                f"{field('data_source')!r}); prepare data with data_prep.medix_rl_data"
            )
        extra_info = dict(field("extra_info") or {})
        # a judge that is down is reported first: verl would drop this group and refill it
        # forever; the medix trainer stops the run on it
        result, sample = await reporting_faults(
            self.scorer.score_detailed(
                response,
                reward_model["ground_truth"],
                data_source=field("data_source"),
                question=extra_info.get("question"),
                extra_info=extra_info,
            )
        )
        publish_judge_stats(self.scorer.judge)  # per-replica counts for the trainer's judge/replica/* metrics
        info = dict(result)
        info["response_length"] = float(valid_length)  # tokens
        info["answer_length"] = float(len(sample.answer))  # characters of the extracted answer
        if self.scorer.preset.gate is None:
            info.update(self.scorer.shadow_fields(sample, result))
        return {"reward_score": result["score"], "reward_extra_info": info}


_batch_path_applied = False


def batch_path() -> None:
    """Make verl's ``RewardLoopWorker.compute_score_batch`` hand a ``medix`` manager the whole
    batch (:meth:`MedixRewardManager.run_batch`) where verl would call ``run_single`` per sample
    (that is: a custom reward function is configured, or no reward model is). Other managers, and
    verl's disrm path, keep verl's code. Idempotent; checked against the installed verl."""
    global _batch_path_applied
    if _batch_path_applied:
        return
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker

    require(RewardLoopWorker, ["compute_score_batch", "compute_score"], patch="medix reward batch path")
    verls = RewardLoopWorker.compute_score_batch

    async def compute_score_batch(self, data: DataProto) -> list[dict]:
        manager = getattr(self, "reward_manager", None)
        reward = self.config.reward
        if isinstance(manager, MedixRewardManager) and (
            reward.custom_reward_function.path is not None or not reward.reward_model.enable
        ):
            return await manager.run_batch(data)
        return await verls(self, data)

    compute_score_batch.__doc__ = batch_path.__doc__
    RewardLoopWorker.compute_score_batch = compute_score_batch
    _batch_path_applied = True


batch_path()
