"""The ``medix`` trainer: verl 0.9.1's synchronous v1 PPO trainer plus two things MediX-R1 needs,
added through verl's trainer registry (``trainer.v1.trainer_mode=medix``), without forking verl.
Written for verl 0.9.1: what it overrides of verl's private classes is checked when it registers
(:mod:`medix_verl.verl.patching`).

1. Per-part reward metrics at every training step. verl logs only the total score while training
   (its issue #2115); this logs the mean of every part of the composite (``reward/score/mean``,
   ``reward/accuracy_llm/mean``, ``reward/accuracy_embed/mean``, ``reward/format/mean``,
   ``reward/modality/mean``, custom parts, the robust gates' ``reward/gate_*/mean``), the judge
   error rate (``reward/judge_error_rate``) and the mean answer and response lengths, to every
   ``trainer.logger`` backend.

2. The release's DAPO group rule. verl's ``algorithm.filter_groups`` drops a group when all its
   scores are equal; the release keeps a group only if its mean score lies strictly between 0.01
   and 0.99. With ``trainer.v1.medix.group_filter.rule=mean_band`` (and
   ``algorithm.filter_groups.enable=true``, ``metric=score``) the replay buffer applies that rule
   instead; ``rule=verl`` keeps verl's.

   The budget. The release generates batches of 128 prompts until 512 are kept and stops the run
   (``RuntimeError``) after 20 batches: that is, once more than 20 x 128 - 512 = 2,048 groups were
   dropped in one step. verl 0.9.1 refills prompt by prompt under ``filter_groups`` (it replaces
   ``data.gen_batch_size`` by 1), so the budget is stated in dropped groups:
   ``max_filtered_groups`` (2,048). Past it, ``on_exhausted=stop`` (the release) stops the run with
   the release's message; ``keep`` (opt-in) trains on what comes for the rest of the step.

    trainer.v1.medix.group_filter: {rule: mean_band, low: 0.01, high: 0.99, max_filtered_groups: 2048,
                                    on_exhausted: stop}

3. Judge faults never become a training signal. A sample whose judge call failed
   (``judge_error=1``) has accuracy 0, which inside a GRPO group is a strong negative advantage
   for an answer nobody judged. With ``trainer.v1.medix.judge_errors=mask`` (the default) such
   samples leave their group's baseline (mean and std are taken over the judged samples) and get
   zero advantage, so they neither teach nor shift the others; the step logs
   ``reward/judge_error_masked`` (their count). ``judge_errors=score`` trains on them as the
   release does (accuracy 0).

4. Preemption. verl resumes from ``trainer.default_local_dir`` (``trainer.resume_mode=auto``).
   What this trainer keeps across steps is saved with each checkpoint
   (``global_step_N/medix_trainer_state.json``) and restored on resume: the run's cumulative counts,
   logged every step as ``reward/total/<count>`` (samples, judge errors, masked samples, groups the
   mean band dropped, steps whose budget ran out). What is per step starts empty on resume, as
   it does at every step: the DAPO filter's count of the step, the step's judge errors. The
   reward's own judge error-rate window and the fault box start empty too: a resumed run talks
   to a judge that was started again. A file ``STOP_REQUESTED`` in the checkpoint folder (or
   ``trainer.v1.medix.stop_file``) asks the trainer to save a checkpoint after the step it is in
   and stop; the SLURM script writes it shortly before the time limit, then requeues the job.
"""

from __future__ import annotations

import json
import os
import warnings
from collections import Counter, defaultdict

import numpy as np

from reward_fns import GATES

from . import gdpo
from .faults import first_fault, judge_stats, open_fault_box
from .metrics import (
    PREFIX,
    as_number,
    group_spread_metrics,
    replica_metrics,
    reward_part_metrics,
    shadow_metrics,
)
from .patching import require, require_params

TRAINER_NAME = "medix"
RULES = ("verl", "mean_band")
ON_EXHAUSTED = ("stop", "keep")
JUDGE_ERRORS = ("mask", "score")
# the release: batches of 128 prompts, 512 kept a step, RuntimeError after 20 batches
GROUP_FILTER_DEFAULTS = {
    "rule": "verl",
    "low": 0.01,
    "high": 0.99,
    "max_filtered_groups": 20 * 128 - 512,
    "on_exhausted": "stop",
}


def group_filter_settings(config) -> dict:
    """``trainer.v1.medix.group_filter`` with defaults, validated."""
    medix = (config.trainer.v1.get(TRAINER_NAME) or {}) if config is not None else {}
    raw = dict(medix.get("group_filter") or {})
    if "max_tries" in raw:
        raise ValueError(
            "trainer.v1.medix.group_filter.max_tries is gone: verl 0.9.1 generates prompt by prompt under "
            "filter_groups, so the budget is max_filtered_groups (the release's 20 x 128 - 512 = 2048)"
        )
    unknown = set(raw) - set(GROUP_FILTER_DEFAULTS)
    if unknown:
        raise ValueError(f"trainer.v1.medix.group_filter: unknown keys {sorted(unknown)}")
    out = {**GROUP_FILTER_DEFAULTS, **raw}
    out["low"], out["high"] = float(out["low"]), float(out["high"])
    out["max_filtered_groups"] = int(out["max_filtered_groups"])
    if out["rule"] not in RULES:
        raise ValueError(f"trainer.v1.medix.group_filter.rule must be one of {RULES}, got {out['rule']!r}")
    if not out["low"] < out["high"]:
        raise ValueError(f"trainer.v1.medix.group_filter: low ({out['low']}) must be below high ({out['high']})")
    if out["max_filtered_groups"] < 0:
        raise ValueError("trainer.v1.medix.group_filter.max_filtered_groups must be >= 0")
    if out["on_exhausted"] not in ON_EXHAUSTED:
        raise ValueError(
            f"trainer.v1.medix.group_filter.on_exhausted must be one of {ON_EXHAUSTED}, got {out['on_exhausted']!r}"
        )
    return out


HACK_ALARM_DEFAULTS = {"threshold": 0.2, "steps": 3, "stop": False}


def hack_alarm_settings(config) -> dict:
    """``trainer.v1.medix.hack_alarm`` with defaults, validated: warn when more than
    ``threshold`` of the judge-credited answers would be refused by the robust gates
    (``reward/shadow/flagged_credited``) for ``steps`` steps in a row; ``stop: true`` also saves a
    checkpoint and stops the run."""
    medix = (config.trainer.v1.get(TRAINER_NAME) or {}) if config is not None else {}
    raw = dict(medix.get("hack_alarm") or {})
    unknown = set(raw) - set(HACK_ALARM_DEFAULTS)
    if unknown:
        raise ValueError(f"trainer.v1.medix.hack_alarm: unknown keys {sorted(unknown)}")
    out = {**HACK_ALARM_DEFAULTS, **raw}
    out["threshold"], out["steps"] = float(out["threshold"]), int(out["steps"])
    if not 0.0 <= out["threshold"] < 1.0:
        raise ValueError(f"trainer.v1.medix.hack_alarm.threshold must be in [0, 1), got {out['threshold']}")
    if out["steps"] < 1:
        raise ValueError(f"trainer.v1.medix.hack_alarm.steps must be >= 1, got {out['steps']}")
    if not isinstance(out["stop"], bool):
        raise ValueError(f"trainer.v1.medix.hack_alarm.stop must be true or false, got {out['stop']!r}")
    return out


class HackAlarm:
    """Watches ``reward/shadow/flagged_credited`` step by step (a run under a preset without
    gates): when it passes ``threshold`` for ``steps`` steps in a row, :meth:`observe` returns a
    warning naming the most frequent gate and an example answer (again every ``steps`` steps
    while it lasts) and sets ``reward/shadow/alarm`` to 1.

    >>> alarm = HackAlarm(threshold=0.2, steps=2, stop=False)
    >>> infos = [{"shadow_credited": 1.0, "shadow_gate": "master_key", "shadow_answer": "Let me think"}]
    >>> alarm.observe(1, {"reward/shadow/flagged_credited": 0.5}, infos) is None
    True
    >>> print(alarm.observe(2, {"reward/shadow/flagged_credited": 0.5}, infos))  # doctest: +ELLIPSIS
    HACK ALARM at step 2: 50% of the answers the judge credited would be refused by the robust gates...master_key...'Let me think'...
    >>> alarm.observe(3, {"reward/shadow/flagged_credited": 0.1}, infos) is None
    True
    """

    def __init__(self, threshold: float, steps: int, stop: bool):
        self.threshold, self.steps, self.stop = float(threshold), int(steps), bool(stop)
        self.in_a_row = 0

    def observe(self, step: int, metrics: dict, infos) -> str | None:
        share = metrics.get(f"{PREFIX}/shadow/flagged_credited")
        if share is None:
            return None
        self.in_a_row = self.in_a_row + 1 if share > self.threshold else 0
        tripped = self.in_a_row >= self.steps
        metrics[f"{PREFIX}/shadow/alarm"] = float(tripped)
        if not tripped or (self.in_a_row - self.steps) % self.steps:
            return None
        flagged = [i for i in infos if isinstance(i, dict) and i.get("shadow_gate")]
        reasons = Counter(str(i["shadow_gate"]) for i in flagged)
        reason, count = reasons.most_common(1)[0] if reasons else ("?", 0)
        example = next((i.get("shadow_answer") for i in flagged if i.get("shadow_gate") == reason), None)
        return (
            f"HACK ALARM at step {step}: {share:.0%} of the answers the judge credited would be refused by the "
            f"robust gates, above {self.threshold:.0%} for {self.in_a_row} steps in a row; most often "
            f"{reason} ({count} of {len(flagged)} this step), e.g. {example!r}. The judge may be being gamed: "
            "look at reward/shadow/* and the judge/embedding disagreement, audit the rollouts "
            "(medix-verl audit), and consider the robust preset"
            + ("; stopping (trainer.v1.medix.hack_alarm.stop=true)" if self.stop else "")
        )


def judge_error_policy(config) -> str:
    """``trainer.v1.medix.judge_errors``: ``mask`` (default) or ``score`` (as released)."""
    medix = (config.trainer.v1.get(TRAINER_NAME) or {}) if config is not None else {}
    policy = medix.get("judge_errors", "mask")
    if policy not in JUDGE_ERRORS:
        raise ValueError(f"trainer.v1.medix.judge_errors must be one of {JUDGE_ERRORS}, got {policy!r}")
    return policy


#: written into each checkpoint folder, read back on resume
STATE_FILE = "medix_trainer_state.json"
#: created in the checkpoint folder to ask for a save and a stop after the current step
STOP_FILE = "STOP_REQUESTED"
#: the run's cumulative counts (``reward/total/<name>``), saved with every checkpoint
TOTALS = ("samples", "judge_errors", "judge_error_masked", "mean_band_filtered_groups", "mean_band_gave_up_steps")


def checkpoint_root(config) -> str:
    """``trainer.default_local_dir`` as verl resolves it (relative to the working directory)."""
    return os.path.abspath(config.trainer.default_local_dir)


def stop_file(config) -> str:
    """Where a stop is requested: ``trainer.v1.medix.stop_file``, else ``STOP_REQUESTED`` in the
    checkpoint folder."""
    medix = (config.trainer.v1.get(TRAINER_NAME) or {}) if config is not None else {}
    return os.path.abspath(medix.get("stop_file") or os.path.join(checkpoint_root(config), STOP_FILE))


def save_state(folder: str, step: int, totals: dict) -> str:
    """Write the trainer's state for checkpoint ``folder`` (aside, then renamed into place).

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> _ = save_state(folder, 3, {"samples": 48, "judge_errors": 2})
    >>> load_state(folder)
    {'step': 3, 'totals': {'samples': 48, 'judge_errors': 2}}
    >>> load_state(tempfile.mkdtemp()) is None
    True
    """
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, STATE_FILE)
    with open(path + ".tmp", "w") as f:
        json.dump({"step": int(step), "totals": {k: int(v) for k, v in totals.items()}}, f)
    os.replace(path + ".tmp", path)
    return path


def load_state(folder: str) -> dict | None:
    """The state :func:`save_state` wrote in ``folder``, or None if there is none."""
    path = os.path.join(folder, STATE_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def mask_rows(compute, rows: list[int]):
    """``compute`` (verl's advantage function) without ``rows``: it runs on the other rows only
    (so a masked row is in no group's baseline, in no GDPO part's normalisation and in no batch
    whitening), and the masked rows get advantages and returns of 0."""
    import torch

    drop = set(rows)

    def masked(data, *args, **kwargs):
        keep = [i for i in range(len(data)) if i not in drop]
        if "batch_keys" in kwargs:
            kwargs = {**kwargs, "batch_keys": [kwargs["batch_keys"][i] for i in keep]}
        mask = data.batch["response_mask"]
        advantages = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device)
        returns = torch.zeros_like(advantages)
        if keep:
            out = compute(data.select_idxs(keep), *args, **kwargs)
            advantages = advantages.to(out.batch["advantages"].dtype)
            returns = returns.to(out.batch["returns"].dtype)
            advantages[keep] = out.batch["advantages"]
            returns[keep] = out.batch["returns"]
        data.batch["advantages"] = advantages
        data.batch["returns"] = returns
        return data

    return masked


def gdpo_parts(infos, gdpo_keys, batch_keys) -> dict:
    """Each GDPO reward key's per-sample values, from the reward's per-sample results, as the
    arrays verl's GDPO reads from ``non_tensor_batch``. A sample without one is an error naming it
    (padding rows verl adds, with no result at all, count 0)."""
    out = {}
    for key in gdpo_keys:
        values = []
        for trajectory, info in zip(batch_keys, infos, strict=True):
            value = as_number(info.get(key)) if info else 0.0
            if value is None:
                raise RuntimeError(
                    f"GDPO: trajectory {trajectory} has no reward part {key!r} (its reward_extra_info keys: "
                    f"{sorted(info)}); algorithm.gdpo_reward_keys must name parts the reward preset produces"
                )
            values.append(value)
        out[key] = np.array(values, dtype=np.float32)
    return out


def raise_on_reward_fault() -> None:
    """Stop the run if a reward worker reported a fault that must stop it (a judge that is down).
    verl 0.9.1 turns a reward's exception into a failed prompt group: the sync trainer then trains
    on the groups that are left (and stops only once none is), and DAPO's refill replaces each
    failed group with a new prompt, which against a dead judge fails again, forever
    (:mod:`medix_verl.verl.faults`)."""
    fault = first_fault()
    if fault is not None:
        raise RuntimeError(
            f"the reward stopped: {fault}. verl would train on the prompt groups whose reward did not "
            "fail, or replace the failed ones forever: stopping the run"
        )


def stop_on_reward_fault(fn):
    """``fn`` (the replay buffer's ``sample`` or ``refill_fn``) checking for a reward fault first
    and, for ``sample``, again before the batch is trained on."""
    if fn is None or getattr(fn, "_medix_guarded", False):
        return fn

    def guarded(*args, **kwargs):
        raise_on_reward_fault()
        out = fn(*args, **kwargs)
        raise_on_reward_fault()
        return out

    guarded._medix_guarded = True
    return guarded


def keep_group(values, low: float, high: float) -> bool:
    """The release's rule: keep a group iff ``low < mean(values) < high``.

    >>> keep_group([0.0, 0.0, 1.0], 0.01, 0.99), keep_group([1.0, 1.0], 0.01, 0.99), keep_group([0.0, 0.005], 0.01, 0.99)
    (True, False, False)
    """
    mean = float(np.mean(values))
    return low < mean < high


def _group(key: str) -> str:
    """The prompt group of a trajectory key ``"<group uid>_<sample>_<turn>"``."""
    return key.split("_")[0]


def _extra_infos(keys, partition_id):
    import transfer_queue as tq

    if not keys:
        return []
    data = tq.kv_batch_get(keys=list(keys), partition_id=partition_id, select_fields=["extra_fields"])
    infos = []
    for value in data["extra_fields"]:
        fields = getattr(value, "data", value)
        infos.append(fields.get("reward_extra_info", {}) if isinstance(fields, dict) else {})
    return infos


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


def _build_classes():
    import verl.trainer.ppo.v1.trainer_base as trainer_base
    from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer
    from verl.trainer.ppo.v1.trainer_base import register_trainer
    from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync

    patch = "medix trainer"
    # _compute_advantage calls this module-level function: masking wraps it for one call
    require(trainer_base, ["compute_advantage_for_multi_trajectories"], patch=patch)
    require(ReplayBuffer, _BUFFER_NEEDS, patch=patch)
    require_params(ReplayBuffer.__init__, _BUFFER_ARGS, patch=patch)
    require(PPOTrainerSync, _TRAINER_NEEDS, patch=patch)

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

        def _build_replay_buffer(self):
            self.trainer_mode = "sync"  # everything else behaves exactly as verl's sync trainer
            band = group_filter_settings(self.config)
            self._fault_box = open_fault_box()  # the reward reports a dead judge here
            # verl's builder resolves every argument (DAPO metric, batch sizes, refill); the band
            # rule rebuilds the buffer as our subclass with the same arguments
            buffer = super()._build_replay_buffer()
            buffer.refill_fn = stop_on_reward_fault(buffer.refill_fn)
            buffer.sample = stop_on_reward_fault(buffer.sample)
            if band["rule"] != "mean_band":
                return buffer
            if buffer.filter_groups_metric is None:
                raise ValueError(
                    "trainer.v1.medix.group_filter.rule=mean_band needs algorithm.filter_groups.enable=true "
                    "and algorithm.filter_groups.metric=score"
                )
            banded = MeanBandReplayBuffer(**{name: getattr(buffer, name) for name in _BUFFER_ARGS}, band=band)
            banded.sample = stop_on_reward_fault(banded.sample)
            return banded

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

        def on_step_end(self):
            hack = getattr(self, "_medix_hack_stop", None)
            if hack is not None:
                if getattr(self, "_medix_saved_step", None) != self.global_steps:
                    self._save_checkpoint()
                raise RuntimeError(f"{hack} (checkpoint global_step_{self.global_steps} saved)")
            stop = stop_file(self.config)
            if os.path.exists(stop):
                if getattr(self, "_medix_saved_step", None) != self.global_steps:
                    self._save_checkpoint()
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
            keys = [k for k, tag in zip(batch.keys, batch.tags) if not tag.get("is_padding", False)]
            infos = _extra_infos(batch.keys, batch.partition_id)
            real = set(keys)
            masking = judge_error_policy(self.config) == "mask"
            rows = [i for i, info in enumerate(infos) if as_number(info.get("judge_error")) == 1.0] if masking else []
            if masking:
                metrics[f"{PREFIX}/judge_error_masked"] = len(rows)
            self._count_step([i for k, i in zip(batch.keys, infos) if k in real], len(rows), metrics)
            compute = original = trainer_base.compute_advantage_for_multi_trajectories
            if rows:
                compute = mask_rows(compute, rows)
            if self.config.algorithm.adv_estimator == gdpo.ESTIMATOR:
                gdpo_keys = list(self.config.algorithm.get("gdpo_reward_keys") or [])
                if not gdpo_keys:
                    raise ValueError(
                        "algorithm.adv_estimator=gdpo needs algorithm.gdpo_reward_keys: ADV=gdpo on the recipe sets "
                        "the reward preset's parts and weights (python -m medix_verl.verl.gdpo PRESET prints them)"
                    )
                parts = gdpo_parts(infos, gdpo_keys, batch.keys)
                for key, values in parts.items():
                    real_values = [v for k, v in zip(batch.keys, values) if k in real]
                    metrics[f"gdpo/{key}/mean"] = float(np.mean(real_values))
                    metrics[f"gdpo/{key}/std"] = float(np.std(real_values))
                compute = gdpo.with_parts(compute, parts)
            if compute is original:
                return super()._compute_advantage(batch, metrics)
            trainer_base.compute_advantage_for_multi_trajectories = compute
            try:
                return super()._compute_advantage(batch, metrics)
            finally:
                trainer_base.compute_advantage_for_multi_trajectories = original

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

    return MedixTrainer, MeanBandReplayBuffer


_classes = None


def register():
    """Register the ``medix`` trainer with verl (idempotent); returns (trainer, replay buffer) classes."""
    global _classes
    import verl  # noqa: F401  (importing verl loads its plugins, ours included, which registers first)

    if _classes is None:
        _classes = _build_classes()
    return _classes
