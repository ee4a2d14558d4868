"""Preflight: what verl 0.9.1 would reject at run time, checked before a GPU is touched.

Every path that starts training runs the same list of named checks (:data:`CHECKS`, one function
each, with the verl code it answers to): the recipes and ``DRY_RUN=1`` (through
``python -m medix_verl.integration.compose``), the tiny CPU run, the rehearsal and ``medix-verl preflight``. It runs verl's own static
check (``verl.utils.config.validate_config``, as ``verl/trainer/main_ppo.py:main`` does) and then
the constraints that verl checks only at run time, after models are loaded and the first rollout is
done. Each check names the verl code path that would fail, the numbers, and a layout that works.

Refusals stop the run (exit 2). Notes are printed and do not stop it.

    python -m medix_verl.integration.preflight [OVERRIDES...]     # the report for a composed config
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

# the reward's judge request, without the answer and the reference: the paper prompt and the chat
# template take about 250 tokens of Qwen3's tokenizer; a margin for references of a few sentences
JUDGE_PROMPT_OVERHEAD_TOKENS = 512
# the checkpoints the release keeps (training/examples/config.yaml: save_limit 3)
RELEASE_CKPT_TO_KEEP = 3


@dataclass(frozen=True)
class Problem:
    """One constraint a layout breaks: where verl fails, the numbers, what to do instead."""

    check: str
    message: str
    fix: str
    where: str = ""

    def render(self) -> str:
        lines = [f"[{self.check}] {self.message}"]
        if self.where:
            lines.append(f"    where: {self.where}")
        lines.append(f"    fix: {self.fix}")
        return "\n".join(lines)


@dataclass
class Report:
    refusals: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    layout: list[tuple[str, str]] = field(default_factory=list)

    skipped_layout: bool = False

    @property
    def ok(self) -> bool:
        return not self.refusals

    def render(self) -> str:
        out = ["medix-verl preflight (verl 0.9.1)"]
        width = max((len(k) for k, _ in self.layout), default=0)
        out += [f"  {k.ljust(width)}  {v}" for k, v in self.layout]
        out += [f"  note: {n}" for n in self.notes]
        if self.refusals:
            out.append(f"REFUSED: {len(self.refusals)} problem(s) this layout would hit at run time:")
            out += [p.render() for p in self.refusals]
        elif self.skipped_layout:
            out.append("layout checks skipped (MEDIX_PREFLIGHT=0); the config's keys passed")
        else:
            out.append("OK: verl's validate_config and the run-time checks passed")
        return "\n".join(out)


def _get(cfg, dotted: str, default=None):
    from omegaconf import OmegaConf

    value = OmegaConf.select(cfg, dotted, default=default)
    return default if value is None else value


def _divisors_within(n: int, limit: int) -> list[int]:
    return [d for d in range(1, limit + 1) if n % d == 0]


def is_loopback_url(url: str) -> bool:
    """True for a URL whose host is this machine only (``127.0.0.0/8``, ``::1``, ``localhost``)."""
    host = (urlsplit(url if "//" in url else f"http://{url}").hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Facts:
    """The numbers of a composed config that the checks read, computed once."""

    cfg: Any
    nnodes: int
    gpus: int
    n: int
    batch: int
    mini: int
    sp: int
    tp: int
    rollout_world: int
    prompt_len: int
    response_len: int
    rm: Any
    kwargs: Any
    save_freq: int

    @classmethod
    def of(cls, cfg) -> Facts:
        tp = int(_get(cfg, "actor_rollout_ref.rollout.tensor_model_parallel_size", 1))
        dp = int(_get(cfg, "actor_rollout_ref.rollout.data_parallel_size", 1))
        pp = int(_get(cfg, "actor_rollout_ref.rollout.pipeline_model_parallel_size", 1))
        return cls(
            cfg=cfg,
            nnodes=int(_get(cfg, "trainer.nnodes", 1)),
            gpus=int(_get(cfg, "trainer.n_gpus_per_node", 1)),
            n=int(_get(cfg, "actor_rollout_ref.rollout.n", 1)),
            batch=int(_get(cfg, "data.train_batch_size")),
            mini=int(_get(cfg, "actor_rollout_ref.actor.ppo_mini_batch_size")),
            sp=int(_get(cfg, "actor_rollout_ref.actor.ulysses_sequence_parallel_size", 1)),
            tp=tp,
            rollout_world=tp * dp * pp,
            prompt_len=int(_get(cfg, "data.max_prompt_length")),
            response_len=int(_get(cfg, "data.max_response_length")),
            rm=_get(cfg, "reward.reward_model", {}) or {},
            kwargs=_get(cfg, "reward.custom_reward_function.reward_kwargs", {}) or {},
            save_freq=int(_get(cfg, "trainer.save_freq", -1)),
        )

    @property
    def train_gpus(self) -> int:
        return self.nnodes * self.gpus

    @property
    def seq_len(self) -> int:
        return self.prompt_len + self.response_len

    @property
    def samples_per_mini(self) -> int:
        return self.mini * self.n

    @property
    def dp(self) -> int | None:
        """The actor's data-parallel size (FSDP: world / Ulysses groups); None if it does not split."""
        sp = self.sp
        return self.train_gpus // sp if sp and self.train_gpus % sp == 0 else None

    @property
    def judge_verl(self) -> bool:
        return bool(self.rm.get("enable", False))

    @property
    def judge_pool(self) -> bool:
        """A verl-managed judge in a resource pool of its own."""
        return self.judge_verl and bool(self.rm.get("enable_resource_pool", False))


@dataclass(frozen=True)
class Check:
    """One named check: ``run(facts, report)`` adds refusals and notes; ``where`` is the verl code
    it answers to. ``config`` checks are about the keys themselves and run even when the layout
    checks are skipped (``MEDIX_PREFLIGHT=0``); ``gate`` checks stop the list when they refuse."""

    name: str
    run: Callable[[Facts, Report], None]
    where: str
    config: bool = False
    gate: bool = False


def preflight(cfg, *, run_verl_validate: bool = True, layout: bool = True) -> Report:
    """Run :data:`CHECKS` on a composed MediX-R1 training config (an OmegaConf ``DictConfig``).
    Never raises for a bad layout: it is a :class:`Report` refusal. ``layout=False`` runs only the
    checks of the keys themselves (``MEDIX_PREFLIGHT=0``)."""
    report = Report(skipped_layout=not layout)
    facts = Facts.of(cfg)
    for check in CHECKS:
        if not (check.config or layout) or (check.name == "verl-validate-config" and not run_verl_validate):
            continue
        before = len(report.refusals)
        check.run(facts, report)
        if check.gate and len(report.refusals) > before:
            return report
    if layout:
        _describe_layout(facts, report)
    return report


def before_training(cfg, env=None) -> Report:
    """The preflight as every path that starts training runs it: every check, or with
    ``MEDIX_PREFLIGHT=0`` (to rehearse a failure on purpose) only the checks of the keys."""
    import os

    env = os.environ if env is None else env
    return preflight(cfg, layout=env.get("MEDIX_PREFLIGHT", "1") != "0")


def _refuse(report: Report, check: str, message: str, fix: str, where: str) -> None:
    report.refusals.append(Problem(check, message, fix, where))


def _check_training_gpus(f: Facts, report: Report) -> None:
    if f.nnodes < 1 or f.gpus < 1:
        _refuse(
            report,
            "no-training-gpus",
            f"trainer.nnodes={f.nnodes} x trainer.n_gpus_per_node={f.gpus}: no GPU would train"
            + (" (JUDGE=verl takes JUDGE_GPUS of each node's GPUS_PER_NODE)" if f.judge_verl else ""),
            "set GPUS_PER_NODE (and NNODES) to the GPUs this run may use",
            "verl/single_controller/ray/base.py (resource pools)",
        )


def _check_ignored_keys(f: Facts, report: Report) -> None:
    from .compose import ignored_keys

    bad = ignored_keys(f.cfg)
    fix = "set them under reward.* (verl 0.9.1's reward loop reads only those)"
    where = "verl/experimental/reward_loop (reads reward.custom_reward_function, reward.reward_manager)"
    if bad:
        _refuse(report, "ignored-keys", "keys that verl 0.9.1 ignores are set: " + "; ".join(bad), fix, where)


def _check_renamed_modules(f: Facts, report: Report) -> None:
    """Config paths into ``medix_verl.verl``, this package's former name."""
    from omegaconf import OmegaConf

    found = []

    def walk(node, path):
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{path}.{key}" if path else str(key))
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}[{i}]")
        elif isinstance(node, str) and "medix_verl.verl." in node:
            found.append(f"{path}={node}")

    walk(OmegaConf.to_container(f.cfg, resolve=False), "")
    message = "medix_verl.verl is now medix_verl.integration: " + "; ".join(found)
    fix = "write medix_verl.integration where the key says medix_verl.verl"
    if found:
        _refuse(report, "renamed-modules", message, fix, "hydra's import of the path (ModuleNotFoundError at start-up)")


def _check_trainer_settings(f: Facts, report: Report) -> None:
    from .trainer import MEAN_BAND_NEEDS, TRAINER_NAME, group_filter_settings, hack_alarm_settings, judge_error_policy

    cfg = f.cfg
    if _get(cfg, "trainer.v1.trainer_mode") != TRAINER_NAME:
        return
    try:
        judge_error_policy(cfg)
        hack_alarm_settings(cfg)
        band = group_filter_settings(cfg)
    except ValueError as exc:
        _refuse(report, "trainer-settings", str(exc), "fix the key it names", "medix_verl/integration/trainer.py")
        return
    if band["rule"] == "mean_band" and not _get(cfg, "algorithm.filter_groups.enable", False):
        _refuse(
            report,
            "trainer-settings",
            MEAN_BAND_NEEDS,
            "algorithm.filter_groups.enable=true algorithm.filter_groups.metric=score (the DAPO recipe), "
            "or group_filter.rule=verl",
            "verl/trainer/ppo/v1/trainer_base.py:_build_replay_buffer (no filter without filter_groups)",
        )


def _check_verl_validate(f: Facts, report: Report) -> None:
    problem = _verl_validate(f.cfg)
    if problem is not None:
        report.refusals.append(problem)


def _check_actor_data_parallel(f: Facts, report: Report) -> None:
    # verl/trainer/ppo/v1/trainer_base.py:_update_actor sends ppo_mini_batch_size * rollout.n
    # samples as one mini-batch; verl/workers/engine_workers.py:TrainingWorker.train_mini_batch
    # asserts mini_batch_size % engine.get_data_parallel_size() == 0 (FSDP: world / ulysses sp)
    dp, per_mini = f.dp, f.samples_per_mini
    if dp is None:
        _refuse(
            report,
            "ulysses-sp",
            f"{f.train_gpus} training GPUs do not split into Ulysses groups of {f.sp}",
            f"use a multiple of {f.sp} training GPUs",
            "verl/workers/engine/fsdp/transformer_impl.py (device mesh)",
        )
    elif per_mini % dp:
        good = [g for g in _divisors_within(per_mini, 64) if g % max(f.tp, 1) == 0 and g > 1]
        _refuse(
            report,
            "actor-data-parallel",
            f"a mini-batch is ppo_mini_batch_size x rollout.n = {f.mini} x {f.n} = {per_mini} samples; "
            f"it must divide by the actor's data-parallel size {dp} ({f.nnodes} node(s) x {f.gpus} GPUs"
            + (f" / ulysses {f.sp}" if f.sp > 1 else "")
            + f"), and {per_mini} / {dp} = {per_mini / dp:.2f}. It would crash at the "
            "first actor update, after model loading and the first rollout",
            f"train on a number of GPUs that divides {per_mini} and the rollout TP {f.tp} "
            f"({', '.join(map(str, good[:8]))}): 8 training GPUs per node with the judge on another "
            "node (JUDGE=server JUDGE_URL=http://<judge-node>:8085/v1), or one 8-GPU node split 4 + 4 "
            "(JUDGE=verl JUDGE_GPUS=4). Shrinking the mini-batch would change the optimisation",
            "verl/workers/engine_workers.py:TrainingWorker.train_mini_batch",
        )


def _check_mini_batches(f: Facts, report: Report) -> None:
    if f.batch % f.mini:
        _refuse(
            report,
            "mini-batches",
            f"data.train_batch_size {f.batch} is not a multiple of actor.ppo_mini_batch_size {f.mini}",
            "make the train batch a multiple of the mini-batch",
            "verl/trainer/ppo/v1/trainer_base.py:_update_actor",
        )


def _check_rollout_replicas(f: Facts, report: Report) -> None:
    world, gpus = f.rollout_world, f.gpus
    if f.train_gpus % world or (world > gpus and world % gpus):
        _refuse(
            report,
            "rollout-tensor-parallel",
            f"rollout tensor x data x pipeline parallel = {world} GPUs per replica does not tile "
            f"{f.nnodes} node(s) x {gpus} GPUs",
            f"use a rollout TP that divides {gpus} ({', '.join(map(str, _divisors_within(gpus, gpus)))})",
            "verl/workers/rollout/replica.py:RolloutReplica.__init__ and LLMServerManager",
        )
    elif world > gpus:
        report.notes.append(
            f"a rollout replica ({world} GPUs) spans {world // gpus} nodes of {gpus} training GPUs: "
            "vLLM's tensor parallel then runs over the network"
        )


def _check_batch_tokens(f: Facts, report: Report) -> None:
    cfg = f.cfg
    if _get(cfg, "actor_rollout_ref.actor.use_dynamic_bsz", False):
        for key in (
            "actor_rollout_ref.actor.ppo_max_token_len_per_gpu",
            "actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu",
            "actor_rollout_ref.ref.log_prob_max_token_len_per_gpu",
        ):
            limit = _get(cfg, key)
            if limit is not None and int(limit) * f.sp < f.seq_len:
                _refuse(
                    report,
                    "dynamic-batch-tokens",
                    f"{key} = {limit} (x ulysses {f.sp}) is below one sequence: prompt {f.prompt_len} + "
                    f"response {f.response_len} = {f.seq_len} tokens",
                    f"set {key}>={math.ceil(f.seq_len / f.sp)}",
                    "verl/utils/seqlen_balancing.py:get_seqlen_balanced_partitions (max_token_len >= seq len)",
                )
        return
    micro = _get(cfg, "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu")
    if micro and f.dp and (f.samples_per_mini // f.dp) % int(micro):
        _refuse(
            report,
            "micro-batches",
            f"{f.samples_per_mini // f.dp} samples per GPU per mini-batch do not split into micro-batches of {micro}",
            "choose a micro-batch that divides it, or use_dynamic_bsz=true",
            "verl/workers/engine_workers.py:TrainingWorker.train_mini_batch",
        )


def _check_policy_context(f: Facts, report: Report) -> None:
    max_model_len = _get(f.cfg, "actor_rollout_ref.rollout.max_model_len")
    if _get(f.cfg, "actor_rollout_ref.rollout.name") not in ("vllm", "sglang"):
        return
    if max_model_len is None:
        _refuse(
            report,
            "policy-max-model-len",
            "actor_rollout_ref.rollout.max_model_len is null: vLLM then sizes the KV cache for the "
            "model's whole context (128k-256k tokens) instead of prompt + response",
            f"set actor_rollout_ref.rollout.max_model_len={f.seq_len} (the release batches {f.seq_len} tokens)",
            "verl/workers/rollout/vllm_rollout/vllm_async_server.py (max_model_len = max_position_embeddings)",
        )
    elif int(max_model_len) < f.seq_len:
        _refuse(
            report,
            "policy-max-model-len",
            f"actor_rollout_ref.rollout.max_model_len {max_model_len} < prompt {f.prompt_len} + "
            f"response {f.response_len}",
            f"set actor_rollout_ref.rollout.max_model_len={f.seq_len}",
            "vLLM rejects longer prompts with HTTP 400 during the rollout",
        )


def _check_checkpoint_rotation(f: Facts, report: Report) -> None:
    if f.save_freq > 0 and _get(f.cfg, "trainer.max_actor_ckpt_to_keep") is None:
        _refuse(
            report,
            "checkpoint-rotation",
            f"a checkpoint every {f.save_freq} steps and trainer.max_actor_ckpt_to_keep=null keeps every "
            "one of them (optimizer state included) until the disk is full",
            f"set trainer.max_actor_ckpt_to_keep={RELEASE_CKPT_TO_KEEP} (the release's save_limit)",
            "verl/utils/checkpoint (no rotation when the limit is null)",
        )


def _check_dapo(f: Facts, report: Report) -> None:
    if not _get(f.cfg, "algorithm.filter_groups.enable", False):
        return
    gen = _get(f.cfg, "data.gen_batch_size")
    if gen is not None and int(gen) != 1:
        _refuse(
            report,
            "dapo-gen-batch",
            f"data.gen_batch_size={gen} is replaced by 1 when algorithm.filter_groups.enable is set "
            "(verl refills prompt by prompt and logs only a warning)",
            "remove data.gen_batch_size; the release's give-up budget is "
            "trainer.v1.medix.group_filter.max_filtered_groups",
            "verl/trainer/ppo/v1/trainer_base.py:_build_replay_buffer (gen_batch_size=1)",
        )
    if f.judge_verl and not f.judge_pool:
        _refuse(
            report,
            "dapo-judge-pool",
            "DAPO group filtering needs the reward while sampling, which a colocated verl judge "
            "(reward.reward_model.enable_resource_pool=false) cannot give",
            "reward.reward_model.enable_resource_pool=true (JUDGE=verl does this) or JUDGE=server",
            "verl/trainer/ppo/v1/trainer_base.py:_resolve_filter_groups_metric (assert)",
        )


def _describe_layout(f: Facts, report: Report) -> None:
    """The layout, for the report."""
    dp, rm, kwargs = f.dp, f.rm, f.kwargs
    report.layout += [
        ("nodes x training GPUs", f"{f.nnodes} x {f.gpus} (actor data-parallel {dp})"),
        (
            "mini-batch",
            f"{f.mini} prompts x {f.n} = {f.samples_per_mini} samples ({f.samples_per_mini // (dp or 1)} per GPU)",
        ),
        (
            "rollout",
            f"{_get(f.cfg, 'actor_rollout_ref.rollout.name')} TP {f.tp}, max_model_len "
            f"{_get(f.cfg, 'actor_rollout_ref.rollout.max_model_len')}",
        ),
        ("sequence", f"prompt {f.prompt_len} + response {f.response_len} = {f.seq_len} tokens"),
    ]
    if f.judge_verl:
        rm_roll = rm.get("rollout") or {}
        report.layout.append(
            (
                "judge",
                f"verl-managed {rm.get('model_path')} on {rm.get('nnodes')} x {rm.get('n_gpus_per_node')} GPUs "
                f"(TP {rm_roll.get('tensor_model_parallel_size')}, own resource pool "
                f"{bool(rm.get('enable_resource_pool'))}, max_model_len {rm_roll.get('max_model_len')})",
            )
        )
    else:
        urls = _urls(kwargs.get("judge_url"))
        where = f"server at {urls[0]}" if len(urls) < 2 else f"{len(urls)} replicas at {', '.join(urls)} (least loaded)"
        report.layout.append(("judge", f"{where} ({kwargs.get('judge_model')})"))
    ckpt = _get(f.cfg, "trainer.max_actor_ckpt_to_keep")
    report.layout.append(("checkpoints", f"every {f.save_freq} steps, keep {ckpt}"))


#: filesystems every node of a cluster sees (network and parallel filesystems)
SHARED_FILESYSTEMS = ("nfs", "nfs4", "lustre", "gpfs", "beegfs", "ceph", "cephfs", "glusterfs", "wekafs", "panfs")
SHARED_FILESYSTEM_PREFIXES = ("fuse.", "cifs", "smb")
#: filesystems in memory: gone with the node
MEMORY_FILESYSTEMS = ("tmpfs", "ramfs")


def filesystem_of(path: str, mounts: str = "/proc/mounts") -> tuple[str, str]:
    """(mount point, filesystem type) of ``path``, or of its nearest existing parent; ("", "")
    where the mount table cannot be read."""
    import os

    real = os.path.realpath(os.path.abspath(path))
    try:
        with open(mounts) as f:
            table = [line.split()[1:3] for line in f if len(line.split()) >= 3]
    except OSError:
        return "", ""
    best = ("", "")
    for point, fstype in table:
        point = point.replace("\\040", " ")
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best[0]):
            best = (point, fstype)
    return best


def is_shared_filesystem(fstype: str) -> bool:
    """
    >>> is_shared_filesystem("nfs4"), is_shared_filesystem("fuse.gcsfuse"), is_shared_filesystem("ext4")
    (True, True, False)
    """
    return fstype in SHARED_FILESYSTEMS or fstype.startswith(SHARED_FILESYSTEM_PREFIXES)


def _check_resume(f: Facts, report: Report) -> None:
    """Whether a preempted run can resume: verl resumes from ``trainer.default_local_dir``
    (``resume_mode=auto``), where every training rank writes its own shard of each checkpoint."""
    import os

    cfg, nnodes, save_freq = f.cfg, f.nnodes, f.save_freq

    mode = _get(cfg, "trainer.resume_mode", "auto")
    folder = os.path.abspath(str(_get(cfg, "trainer.default_local_dir", "checkpoints")))
    point, fstype = filesystem_of(folder)
    report.layout.append(("resume", f"{mode} from {folder} ({fstype or 'filesystem unknown'})"))
    if mode == "disable":
        report.notes.append("trainer.resume_mode=disable: a run that is stopped starts over from step 0")
    if save_freq <= 0:
        report.notes.append("trainer.save_freq <= 0: no checkpoint is saved, a run that is stopped starts over")
        return
    if fstype in MEMORY_FILESYSTEMS and nnodes > 1:
        _refuse(
            report,
            "checkpoint-dir-not-shared",
            f"trainer.default_local_dir={folder} is on {fstype} ({point}): each of the {nnodes} nodes writes "
            "its ranks' shards into its own memory, where no other node sees them and a preempted node "
            "loses them",
            "set CKPT_DIR (trainer.default_local_dir) to a folder on a filesystem every node mounts "
            "(NFS, Lustre, GPFS, ...)",
            "verl/trainer/ppo/v1/trainer_base.py:_save_checkpoint / _load_checkpoint",
        )
    elif fstype in MEMORY_FILESYSTEMS:
        report.notes.append(
            f"checkpoints go to {folder} on {fstype}: they are lost with the machine, so a preempted run starts over"
        )
    elif nnodes > 1 and fstype and not is_shared_filesystem(fstype):
        report.notes.append(
            f"checkpoints go to {folder} on {fstype} ({point}), not a network filesystem: with {nnodes} nodes "
            "each node writes its ranks' shards there; unless every node mounts this same folder, a resumed run "
            "(on other nodes after a requeue) cannot load them"
        )


def _check_gdpo(f: Facts, report: Report) -> None:
    """GDPO (``algorithm.adv_estimator=medix_gdpo``, or verl's ``gdpo``): its reward keys must be
    parts the reward preset produces (verl asserts each is in the batch at the first advantage,
    after a step's generation), and only the medix trainer's ``medix_gdpo`` puts them there
    (verl's v1 trainer passes ``uid`` alone, so verl's ``gdpo`` fails there)."""
    from . import gdpo

    cfg, kwargs = f.cfg, f.kwargs
    algorithm = _get(cfg, "algorithm", {}) or {}
    estimator = algorithm.get("adv_estimator")
    if estimator not in (gdpo.ESTIMATOR, gdpo.VERL_ESTIMATOR):
        return
    from reward_fns import leaf_parts

    from ..reward.settings import RewardSettings

    try:
        settings = RewardSettings.from_kwargs(dict(kwargs), where="reward.custom_reward_function.reward_kwargs")
        produced = leaf_parts(settings.resolved_weights)
    except (ValueError, TypeError) as exc:
        produced, problems = [], [f"cannot tell the reward's parts: {exc}"]
    else:
        problems = gdpo.check(algorithm, produced)
    wrong_estimator = gdpo.estimator_problem(estimator, _get(cfg, "trainer.v1.trainer_mode"))
    if wrong_estimator:
        problems.append(wrong_estimator)
    for message in problems:
        _refuse(
            report,
            "gdpo-reward-keys",
            message,
            "set ADV=gdpo on the recipe (it sets the preset's parts and weights) and keep "
            "trainer.v1.trainer_mode=medix",
            "verl/trainer/ppo/core_algos.py:compute_gdpo_outcome_advantage",
        )
    if not problems:
        report.notes.append(
            f"GDPO (not the paper's setting): parts {list(algorithm.get('gdpo_reward_keys'))} normalised apart, "
            f"weights {list(algorithm.get('gdpo_reward_weights') or [])}"
        )


def _verl_validate(cfg) -> Problem | None:
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    try:
        # it prints its verdict to stdout, where the composed YAML goes: keep stdout clean
        with contextlib.redirect_stdout(sys.stderr):
            validate_config(cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
    except (AssertionError, ValueError, TypeError, KeyError) as exc:
        return Problem(
            "verl-validate-config",
            f"{type(exc).__name__}: {exc}",
            "change the key verl names",
            "verl/utils/config.py:validate_config",
        )
    return None


def _urls(value) -> list[str]:
    """The judge URLs of a reward_kwargs value (one URL, a comma list or a list), as written, for
    the layout's description (the judge check parses and checks them)."""
    if isinstance(value, str):
        return [u.strip() for u in value.split(",") if u.strip()]
    return [str(u) for u in value or []]


def _check_judge_urls(judge_url, nnodes: int, report: Report) -> None:
    """A judge server's URLs: a list the reward workers accept, and none on loopback with several
    nodes."""
    from ..clients.pool import UrlListError, parse_url_list

    try:
        urls = parse_url_list(
            judge_url if isinstance(judge_url, str) else list(judge_url), what="reward_kwargs.judge_url"
        )
    except UrlListError as exc:
        _refuse(
            report,
            "judge-url-list",
            str(exc),
            "JUDGE_URL=http://HOST1:PORT/v1,http://HOST2:PORT/v1 (each replica once, with scheme and port)",
            "the reward's start-up in every reward worker (medix_verl/clients/pool.py:parse_url_list)",
        )
        return
    if nnodes > 1 and any(is_loopback_url(u) for u in urls):
        _refuse(
            report,
            "judge-url-loopback",
            f"{nnodes} nodes and a loopback judge URL in {judge_url}: verl runs reward workers on every "
            "node, and those on other nodes would call their own 127.0.0.1",
            "serve the judge on an address every node reaches (JUDGE_HOST=0.0.0.0 with "
            "MEDIX_JUDGE_API_KEY on the judge node) and pass JUDGE_URL=http://<judge-node-ip>:8085/v1",
            "verl/experimental/reward_loop/reward_loop.py:_init_reward_loop_workers (round-robin nodes)",
        )


def _check_judge(f: Facts, report: Report) -> None:
    judge_verl, rm, kwargs, nnodes, gpus = f.judge_verl, f.rm, f.kwargs, f.nnodes, f.gpus
    judge_url = kwargs.get("judge_url")
    judge_model = kwargs.get("judge_model")
    response_len = f.response_len
    if judge_verl:
        rm_roll = rm.get("rollout") or {}
        if f.judge_pool and rm_roll.get("free_cache_engine", True):
            _refuse(
                report,
                "judge-asleep",
                "the verl-managed judge has its own GPUs (enable_resource_pool=true) and "
                "rollout.free_cache_engine=true: verl puts it to sleep at start-up and, in this mode, "
                "nothing wakes it (every judge call of the first step fails or hangs)",
                "reward.reward_model.rollout.free_cache_engine=false (JUDGE=verl does this): its GPUs "
                "hold nothing else",
                "verl/experimental/reward_loop/reward_model.py:RewardModelManager.__init__ (sleep); "
                "wake_up only in RewardLoopManager.compute_rm_score",
            )
        model_path = rm.get("model_path")
        if judge_model and judge_model != model_path:
            _refuse(
                report,
                "judge-model-name",
                f"verl serves the judge under its model_path {model_path!r}, the reward would ask for "
                f"{judge_model!r}: every judge call is refused",
                "leave reward_kwargs.judge_model null with JUDGE=verl (the reward then uses model_path)",
                "verl/workers/rollout/vllm_rollout/vllm_async_server.py (vllm serve <model path>)",
            )
        if judge_url:
            report.notes.append(
                f"reward_kwargs.judge_url={judge_url} is ignored: verl passes its judge router's address"
            )
        tp = int(rm_roll.get("tensor_model_parallel_size") or 1)
        rm_gpus = int(rm.get("n_gpus_per_node") or 0)
        if f.judge_pool and (rm_gpus < tp or rm_gpus % tp):
            _refuse(
                report,
                "judge-tensor-parallel",
                f"the judge pool has {rm_gpus} GPUs per node, judge TP is {tp}",
                "JUDGE_GPUS a multiple of JUDGE_TP",
                "verl/experimental/reward_loop/reward_model.py:_initialize_llm_servers (num_replicas > 0)",
            )
        judge_ctx = rm_roll.get("max_model_len")
        rm_nodes = int(rm.get("nnodes") or 1)
        if f.judge_pool and rm_nodes > nnodes:
            _refuse(
                report,
                "judge-nodes",
                f"the judge's pool spans {rm_nodes} nodes (reward.reward_model.nnodes, JUDGE_NODES) but the run "
                f"has {nnodes}: verl cannot place {rm_nodes} x {rm_gpus} judge GPUs",
                f"JUDGE_NODES <= NNODES ({nnodes})",
                "verl/trainer/ppo/v1/trainer_base.py:_init_resource_pool_mgr (reward pool placement)",
            )
        if f.judge_pool and rm_gpus >= tp and rm_gpus % tp == 0:
            report.layout.append(
                (
                    "judge replicas",
                    f"{rm_gpus} GPUs x {rm_nodes} node(s) / TP {tp} = {rm_gpus * rm_nodes // tp}, "
                    "behind verl's least-loaded router",
                )
            )
        if f.judge_pool and nnodes > rm_nodes:
            report.notes.append(
                f"the judge's pool is on {rm_nodes} node(s) but training uses {gpus} GPUs on each of {nnodes} "
                f"nodes: {rm_gpus} GPUs stay idle on each of the other {nnodes - rm_nodes} node(s); with several "
                "nodes a judge server on a node of its own (JUDGE=server) trains on every GPU"
            )
    else:
        if not judge_url:
            _refuse(
                report,
                "no-judge",
                "no judge: reward_kwargs.judge_url is empty and verl manages none",
                "JUDGE_URL=http://<host>:8085/v1 (recipes/serve_judge.sh) or JUDGE=verl",
                "the first judge call of the first step",
            )
        else:
            _check_judge_urls(judge_url, nnodes, report)
        judge_ctx = None
        report.notes.append(
            "the judge server's context (vllm --max-model-len, recipes/serve_judge.sh: 2048) is not visible "
            "here; answers that do not fit are scored 0 as in the release and counted as judge_overlength"
        )
    if judge_ctx:
        need = JUDGE_PROMPT_OVERHEAD_TOKENS + response_len
        if int(judge_ctx) < need:
            report.notes.append(
                f"judge max_model_len {judge_ctx} < about {need} tokens (judge prompt + a whole "
                f"{response_len}-token response): the longest answers do not fit; the reward checks each "
                "request's length with the judge's tokenizer, does not send those, scores them 0 as the "
                "release did and counts them as reward/judge_overlength_rate, not as judge errors"
            )


#: the preflight, in order: every path that starts training runs this list (the recipes through
#: ``compose``, ``DRY_RUN=1``, the tiny CPU run, the rehearsal, ``medix-verl preflight``)
CHECKS: list[Check] = [
    Check("training-gpus", _check_training_gpus, "verl/single_controller/ray/base.py", gate=True),
    Check("ignored-keys", _check_ignored_keys, "verl/experimental/reward_loop", config=True),
    Check("renamed-modules", _check_renamed_modules, "medix_verl/integration (formerly medix_verl/verl)", config=True),
    Check("trainer-settings", _check_trainer_settings, "medix_verl/integration/trainer.py", config=True),
    Check("verl-validate-config", _check_verl_validate, "verl/utils/config.py:validate_config"),
    Check("actor-data-parallel", _check_actor_data_parallel, "verl/workers/engine_workers.py:train_mini_batch"),
    Check("mini-batches", _check_mini_batches, "verl/trainer/ppo/v1/trainer_base.py:_update_actor"),
    Check("rollout-replicas", _check_rollout_replicas, "verl/workers/rollout/replica.py:RolloutReplica"),
    Check("batch-tokens", _check_batch_tokens, "verl/utils/seqlen_balancing.py, verl/workers/engine_workers.py"),
    Check("policy-context", _check_policy_context, "verl/workers/rollout/vllm_rollout/vllm_async_server.py"),
    Check("checkpoint-rotation", _check_checkpoint_rotation, "verl/utils/checkpoint"),
    Check("resume", _check_resume, "verl/trainer/ppo/v1/trainer_base.py:_save_checkpoint / _load_checkpoint"),
    Check("dapo", _check_dapo, "verl/trainer/ppo/v1/trainer_base.py:_build_replay_buffer"),
    Check("judge", _check_judge, "verl/experimental/reward_loop/reward_model.py, medix_verl/clients/pool.py"),
    Check("gdpo", _check_gdpo, "verl/trainer/ppo/core_algos.py:compute_gdpo_outcome_advantage"),
]


def check_overrides(overrides: list[str], prog: str) -> int:
    """Compose the config of ``overrides``, run the preflight on it as training would
    (:func:`before_training`) and print the report: 0 if it passes, 2 if it refuses or the
    config does not compose (hydra's error, which names the override, on stderr)."""
    from .compose import compose

    try:
        cfg = compose(overrides)
    except Exception as exc:  # hydra's errors name the bad override
        print(f"{prog}: cannot compose the config: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    report = before_training(cfg)
    print(report.render())
    return 0 if report.ok else 2


def main(argv=None) -> int:
    return check_overrides(list(sys.argv[1:] if argv is None else argv), "medix_verl.integration.preflight")


if __name__ == "__main__":
    sys.exit(main())
