"""The ``medix`` trainer: verl 0.9.1's synchronous v1 PPO trainer plus what MediX-R1 needs, added
through verl's trainer registry (``trainer.v1.trainer_mode=medix``), without forking verl. This
module holds its settings and the functions it is made of (no verl import); the classes are in
:mod:`medix_verl.integration.medix_trainer`, which checks what it overrides of verl's private classes
when it registers (:mod:`medix_verl.integration.patching`).

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
from collections import Counter

import numpy as np

from .faults import first_fault
from .metrics import (
    PREFIX,
    as_number,
)

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


#: the mean band filters groups inside verl's DAPO filter, which only runs with filter_groups on
MEAN_BAND_NEEDS = (
    "trainer.v1.medix.group_filter.rule=mean_band needs algorithm.filter_groups.enable=true "
    "and algorithm.filter_groups.metric=score"
)


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
    (:mod:`medix_verl.integration.faults`)."""
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


def register():
    """Register the ``medix`` trainer with verl (idempotent); returns (trainer, replay buffer) classes.
    The classes live in :mod:`medix_verl.integration.medix_trainer`, which imports verl's trainer."""
    import verl  # noqa: F401  (importing verl loads its plugins, ours included, which registers first)

    from . import medix_trainer

    return medix_trainer.MedixTrainer, medix_trainer.MeanBandReplayBuffer
