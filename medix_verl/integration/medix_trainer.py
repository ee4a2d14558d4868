"""The ``medix`` trainer's classes (:mod:`medix_verl.integration.trainer` says what they add): verl 0.9.1's
synchronous v1 trainer and replay buffer, subclassed, registered with verl's trainer registry when
this module is imported (:func:`medix_verl.integration.trainer.register` does, from the verl plugin).
What they override or read of verl's private classes is checked first
(:mod:`medix_verl.integration.patching`): a verl without it stops here, naming what is missing.

Judge-error masking uses the subclass's own ``_compute_advantage``: verl's advantage runs on the
judged rows only (the batch's ``select_keys``), and the masked rows get advantages and returns of
0 in the transfer queue, so a masked row is in no group's baseline, in no GDPO part's
normalisation and in no batch whitening. GDPO runs as the estimator ``medix_gdpo``, registered
here with verl's estimator registry (:mod:`medix_verl.integration.gdpo`): the trainer hands it the
parts for the one ``_compute_advantage`` call through a context variable of this module.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter, defaultdict
from contextvars import ContextVar

import numpy as np
import torch
import transfer_queue as tq
from tensordict import TensorDict
from transfer_queue import KVBatchMeta
from verl.trainer.ppo import core_algos
from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer
from verl.trainer.ppo.v1.trainer_base import register_trainer
from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync
from verl.workers.utils.padding import response_to_nested

from reward_fns import GATES

from . import gdpo
from .faults import judge_stats, open_fault_box
from .metrics import PREFIX, as_number, group_spread_metrics, replica_metrics, reward_part_metrics, shadow_metrics
from .patching import require, require_params
from .trainer import (
    MEAN_BAND_NEEDS,
    STATE_FILE,
    TOTALS,
    TRAINER_NAME,
    HackAlarm,
    _extra_infos,
    _group,
    checkpoint_root,
    gdpo_parts,
    group_filter_settings,
    hack_alarm_settings,
    judge_error_policy,
    keep_group,
    load_state,
    save_state,
    stop_file,
    stop_on_reward_fault,
)

#: what the subclasses below override or read of verl's private v1 trainer and replay buffer
_BUFFER_NEEDS = ("sample", "_dapo_filtered_keys", "_metrics_prefix")
_BUFFER_STATE = ("_dapo_classification_cache", "finished_keys", "partitions", "filter_groups_metric")
_BUFFER_ARGS = (
    "trainer_mode",
    "trainer_config",
    "max_off_policy_threshold",
    "max_off_policy_strategy",
    "sampler_kwargs",
    "refill_fn",
    "filter_groups_metric",
    "sync_refill_failed_groups",
    "train_batch_size",
    "gen_batch_size",
    "max_inflight_gen_batches",
)
_TRAINER_NEEDS = (
    "_build_replay_buffer",
    "_compute_metrics",
    "_compute_advantage",
    "_save_checkpoint",
    "_load_checkpoint",
    "on_step_end",
)


def check_verl() -> None:
    """Stop with a :class:`~medix_verl.integration.patching.VerlMismatchError` naming what the classes
    below need of verl and the installed verl lacks."""
    patch = "medix trainer"
    # medix_gdpo: registered with verl's estimator registry, runs verl's GDPO function
    require(core_algos, ["register_adv_est", "compute_gdpo_outcome_advantage"], patch=patch)
    require_params(
        core_algos.compute_gdpo_outcome_advantage,
        (
            "token_level_rewards",
            "response_mask",
            "index",
            "norm_adv_by_std_in_grpo",
            "config",
            "non_tensor_batch",
            "batch",
        ),
        patch=patch,
    )
    require(ReplayBuffer, _BUFFER_NEEDS, patch=patch)
    require_params(ReplayBuffer.__init__, _BUFFER_ARGS, patch=patch)
    require(PPOTrainerSync, _TRAINER_NEEDS, patch=patch)
    require(KVBatchMeta, ["select_keys"], patch=patch)


check_verl()

#: the parts of the rows in the medix trainer's current GDPO advantage call (None outside one)
_GDPO_PARTS: ContextVar[dict | None] = ContextVar("medix_gdpo_parts", default=None)


@core_algos.register_adv_est(gdpo.ESTIMATOR)
def medix_gdpo_advantage(
    token_level_rewards, response_mask, index, config=None, norm_adv_by_std_in_grpo=True, **kwargs
):
    """verl's GDPO (``compute_gdpo_outcome_advantage``) given the reward parts, prompts and attention
    mask the v1 trainer does not pass: the parts come from the medix trainer's advantage step."""
    parts = _GDPO_PARTS.get()
    if parts is None:
        raise RuntimeError(
            f"algorithm.adv_estimator={gdpo.ESTIMATOR} runs inside the medix trainer's advantage step "
            "(trainer.v1.trainer_mode=medix), which hands it the reward parts"
        )
    non_tensor_batch, batch = gdpo.inputs(parts, index, response_mask)
    return core_algos.compute_gdpo_outcome_advantage(
        token_level_rewards=token_level_rewards,
        response_mask=response_mask,
        index=index,
        norm_adv_by_std_in_grpo=norm_adv_by_std_in_grpo,
        config=config,
        non_tensor_batch=non_tensor_batch,
        batch=batch,
    )


class MeanBandReplayBuffer(ReplayBuffer):
    """verl's synchronous replay buffer with the release's DAPO group rule."""

    def __init__(self, *args, band: dict, **kwargs):
        super().__init__(*args, **kwargs)
        require(self, _BUFFER_STATE, patch="medix trainer's mean-band replay buffer")
        self.band = band
        self._filtered_this_step = 0
        self._step = None

    def _exhausted(self) -> bool:
        return self._filtered_this_step > self.band["max_filtered_groups"]

    def sample(self, global_steps, partition_id, batch_size):
        self._filtered_this_step = 0
        self._step = global_steps
        batch, metrics = super().sample(global_steps, partition_id, batch_size)
        if partition_id != "val":
            prefix = self._metrics_prefix(partition_id)
            metrics[f"{prefix}/filter_groups/mean_band_filtered_groups"] = self._filtered_this_step
            metrics[f"{prefix}/filter_groups/mean_band_gave_up"] = float(self._exhausted())
        return batch, metrics

    def _dapo_filtered_keys(self, partition_id):
        if partition_id == "val" or self.filter_groups_metric is None:
            return set(), Counter()
        cache = self._dapo_classification_cache[partition_id]
        finished = self.finished_keys[partition_id]
        for uid in list(cache.keys() - finished):
            del cache[uid]
        new = finished - cache.keys()
        if new and self._exhausted():
            if self.band["on_exhausted"] == "stop":
                # the release's ray_trainer raises here ("Generated too many. Please check your data.")
                raise RuntimeError(
                    f"DAPO mean-band filter: {self._filtered_this_step} groups dropped in step {self._step}, "
                    f"more than max_filtered_groups={self.band['max_filtered_groups']} (the release's 20 "
                    "generation batches of 128 prompts). Generated too many: check the data and the judge "
                    "(reward/judge_error_rate), or set trainer.v1.medix.group_filter.on_exhausted=keep"
                )
            # opt-in: keep what comes for the rest of the step
            for uid in new:
                cache[uid] = None
            new = set()
        keys = [key for key in self.partitions[partition_id] if _group(key) in new]
        values = defaultdict(list)
        for key, info in zip(keys, _extra_infos(keys, partition_id), strict=True):
            metric = self.filter_groups_metric
            if metric not in info:
                raise RuntimeError(
                    f"trajectory {key} has no reward metric {metric!r} for the mean-band group filter "
                    f"(its reward_extra_info keys: {sorted(info)})"
                )
            values[_group(key)].append(float(info[metric]))
        for uid in new:
            if not values[uid]:
                raise RuntimeError(f"finished group {uid} has no trajectories to filter on")
            mean = float(np.mean(values[uid]))
            filtered = not keep_group(values[uid], self.band["low"], self.band["high"])
            cache[uid] = round(mean, 4) if filtered else None
            self._filtered_this_step += int(filtered)
        dropped = {uid: v for uid, v in cache.items() if v is not None}
        return set(dropped), Counter(dropped.values())


@register_trainer(TRAINER_NAME)
class MedixTrainer(PPOTrainerSync):
    """verl's synchronous v1 trainer with per-part reward metrics and the release's group rule."""

    def __init__(self, config):
        problem = gdpo.estimator_problem(config.algorithm.adv_estimator, config.trainer.v1.trainer_mode)
        if problem:
            raise ValueError(problem)
        super().__init__(config)

    def _build_replay_buffer(self):
        self.trainer_mode = "sync"  # everything else behaves exactly as verl's sync trainer
        band = group_filter_settings(self.config)
        self._fault_box = open_fault_box()  # the reward reports a dead judge here
        # verl's builder resolves every argument (DAPO metric, batch sizes, refill); the band
        # rule rebuilds the buffer as our subclass with the same arguments
        buffer = super()._build_replay_buffer()
        buffer.refill_fn = stop_on_reward_fault(buffer.refill_fn)
        if band["rule"] == "mean_band":
            if buffer.filter_groups_metric is None:
                raise ValueError(MEAN_BAND_NEEDS)
            buffer = MeanBandReplayBuffer(**{name: getattr(buffer, name) for name in _BUFFER_ARGS}, band=band)
        buffer.sample = stop_on_reward_fault(buffer.sample)
        return buffer

    # ---------------------------------------------------------------- preemption
    def _totals(self) -> Counter:
        if not hasattr(self, "_medix_totals"):
            self._medix_totals = Counter(dict.fromkeys(TOTALS, 0))
        return self._medix_totals

    def _save_checkpoint(self):
        # the state first: verl marks a checkpoint complete (latest_checkpointed_iteration.txt)
        # only after its own parts are written, so a complete checkpoint always has it
        folder = os.path.join(checkpoint_root(self.config), f"global_step_{self.global_steps}")
        save_state(folder, self.global_steps, self._totals())
        super()._save_checkpoint()
        self._medix_saved_step = self.global_steps

    def _load_checkpoint(self):
        super()._load_checkpoint()
        totals = self._totals()
        stop = stop_file(self.config)
        if os.path.exists(stop):
            os.remove(stop)
            print(f"[medix trainer] removed a stop request left from an earlier attempt: {stop}", flush=True)
        if not self.global_steps:
            return
        if self.config.trainer.resume_mode == "resume_path":
            folder = os.path.abspath(self.config.trainer.resume_from_path)
        else:
            folder = os.path.join(checkpoint_root(self.config), f"global_step_{self.global_steps}")
        state = load_state(folder)
        if state is None:
            print(
                f"[medix trainer] WARNING: resumed at step {self.global_steps} from {folder}, which has no "
                f"{STATE_FILE}: the run's cumulative counts (reward/total/*) start at 0",
                flush=True,
            )
        else:
            totals.update({k: int(v) for k, v in state["totals"].items()})
            print(
                f"[medix trainer] resumed at step {self.global_steps}: cumulative counts restored from "
                f"{folder}/{STATE_FILE} ({dict(totals)}); per-step counts, the reward's judge error-rate "
                "window and its fault box start empty",
                flush=True,
            )

    def _save_unless_saved(self) -> None:
        """A checkpoint of this step, unless verl's save_freq already made it."""
        if getattr(self, "_medix_saved_step", None) != self.global_steps:
            self._save_checkpoint()

    def on_step_end(self):
        hack = getattr(self, "_medix_hack_stop", None)
        if hack is not None:
            self._save_unless_saved()
            raise RuntimeError(f"{hack} (checkpoint global_step_{self.global_steps} saved)")
        stop = stop_file(self.config)
        if os.path.exists(stop):
            self._save_unless_saved()
            os.remove(stop)
            print(
                f"[medix trainer] stop requested ({stop}): checkpoint global_step_{self.global_steps} saved; "
                "stopping after this step (the same command resumes)",
                flush=True,
            )
            self.total_training_steps = self.global_steps  # verl's loop ends after this step
        super().on_step_end()

    # ---------------------------------------------------------------- advantage
    def _count_step(self, infos, masked: int, metrics) -> None:
        """The step's part of the run's totals (counted before the step's checkpoint)."""
        totals = self._totals()
        totals["samples"] += len(infos)
        totals["judge_errors"] += sum(as_number(info.get("judge_error")) == 1.0 for info in infos)
        totals["judge_error_masked"] += masked
        for key, value in metrics.items():
            if key.endswith("/filter_groups/mean_band_filtered_groups"):
                totals["mean_band_filtered_groups"] += int(value)
            elif key.endswith("/filter_groups/mean_band_gave_up"):
                totals["mean_band_gave_up_steps"] += int(value)

    def _compute_advantage(self, batch, metrics):
        real = {k for k, tag in zip(batch.keys, batch.tags) if not tag.get("is_padding", False)}
        infos = _extra_infos(batch.keys, batch.partition_id)
        masking = judge_error_policy(self.config) == "mask"
        masked = (
            [k for k, info in zip(batch.keys, infos) if as_number(info.get("judge_error")) == 1.0] if masking else []
        )
        if masking:
            metrics[f"{PREFIX}/judge_error_masked"] = len(masked)
        self._count_step([i for k, i in zip(batch.keys, infos) if k in real], len(masked), metrics)
        dropped = set(masked)
        judged = batch.select_keys([k for k in batch.keys if k not in dropped]) if masked else batch
        if not judged.keys:
            out = None
        elif self.config.algorithm.adv_estimator == gdpo.ESTIMATOR:
            out = self._gdpo_advantage(judged, infos, batch.keys, real, metrics)
        else:
            out = super()._compute_advantage(judged, metrics)
        if not masked:
            return out
        return self._zero_advantage(batch, masked, out)

    def _gdpo_advantage(self, judged, infos, keys, real, metrics):
        """verl's GDPO on the judged rows, with the parts it reads put into its batch."""
        gdpo_keys = list(self.config.algorithm.get("gdpo_reward_keys") or [])
        if not gdpo_keys:
            raise ValueError(
                f"algorithm.adv_estimator={gdpo.ESTIMATOR} needs algorithm.gdpo_reward_keys: ADV=gdpo on the recipe sets "
                "the reward preset's parts and weights (python -m medix_verl.integration.gdpo PRESET prints them)"
            )
        by_key = dict(zip(keys, infos))
        parts = gdpo_parts([by_key[k] for k in judged.keys], gdpo_keys, judged.keys)
        for key, values in parts.items():
            real_values = [v for k, v in zip(judged.keys, values) if k in real]
            metrics[f"gdpo/{key}/mean"] = float(np.mean(real_values)) if real_values else 0.0
            metrics[f"gdpo/{key}/std"] = float(np.std(real_values)) if real_values else 0.0
        # verl 0.9.1's v1 trainer passes uid alone to the estimator: medix_gdpo_advantage reads the
        # parts of this call's rows (in judged.keys' order, as verl reads them) from here
        token = _GDPO_PARTS.set(parts)
        try:
            return super()._compute_advantage(judged, metrics)
        finally:
            _GDPO_PARTS.reset(token)

    def _zero_advantage(self, batch, masked: list[str], judged_out):
        """Advantages and returns of 0 for the ``masked`` rows (and what verl's advantage step
        wrote for the judged rows besides: token-level rewards of 0, importance weights of 1);
        the whole batch's metadata, in its order."""
        pid = batch.partition_id
        written = set(judged_out.fields or []) if judged_out is not None else set()
        data = tq.kv_batch_get(keys=masked, partition_id=pid, select_fields=["response_mask"])
        response_mask = data["response_mask"]
        zeros = torch.zeros_like(data.to_padded_tensor()["response_mask"], dtype=torch.float32)
        fields = {"advantages": zeros, "returns": zeros}
        if self.config.algorithm.use_kl_in_reward:
            fields["token_level_rewards"] = zeros
        if "rollout_is_weights" in written:
            fields["rollout_is_weights"] = torch.ones_like(zeros)
        nested = TensorDict(
            {name: response_to_nested(value, response_mask) for name, value in fields.items()}, batch_size=len(masked)
        )
        put = tq.kv_batch_put(keys=masked, partition_id=pid, fields=nested)
        tags = dict(zip(put.keys, put.tags))
        if judged_out is not None:
            tags.update(zip(judged_out.keys, judged_out.tags))
        return KVBatchMeta(
            keys=list(batch.keys),
            tags=[tags[k] for k in batch.keys],
            partition_id=pid,
            fields=(judged_out or put).fields,
            extra_info=(judged_out or batch).extra_info,
        )

    def _compute_metrics(self, batch, metrics, timing_raw, global_steps, epoch):
        super()._compute_metrics(batch, metrics, timing_raw, global_steps, epoch)
        keys = [k for k, tag in zip(batch.keys, batch.tags) if not tag.get("is_padding", False)]
        infos = _extra_infos(keys, batch.partition_id)
        metrics.update(reward_part_metrics(infos))
        metrics.update(shadow_metrics(infos, GATES))
        self._watch_for_hacks(global_steps, metrics, infos)
        scores = defaultdict(list)
        for key, info in zip(keys, infos, strict=True):
            if (score := as_number(info.get("score"))) is not None:
                scores[_group(key)].append(score)
        metrics.update(group_spread_metrics(scores))
        metrics.update({f"{PREFIX}/total/{k}": v for k, v in self._totals().items()})
        self._log_judge_replicas(metrics)

    def _watch_for_hacks(self, step, metrics, infos) -> None:
        if not hasattr(self, "_hack_alarm"):
            self._hack_alarm = HackAlarm(**hack_alarm_settings(self.config))
        message = self._hack_alarm.observe(step, metrics, infos)
        if message is None:
            return
        print(f"[medix trainer] WARNING: {message}", flush=True)
        warnings.warn(message, RuntimeWarning, stacklevel=1)
        if self._hack_alarm.stop:
            self._medix_hack_stop = message

    def _log_judge_replicas(self, metrics) -> None:
        """``judge/replica/<i>/...`` from the reward workers' judge clients; the URLs once."""
        stats = judge_stats()
        if not stats:
            return
        step, self._replica_totals = replica_metrics(stats, getattr(self, "_replica_totals", None))
        metrics.update(step)
        if not getattr(self, "_replica_urls_logged", False):
            for i, t in sorted(self._replica_totals.items()):
                print(f"[medix trainer] judge/replica/{i}: {t['url']}", flush=True)
            self._replica_urls_logged = True
