"""Preflight: what verl 0.9.1 would reject at run time, checked before a GPU is touched.

``DRY_RUN=1 bash recipes/<recipe>.sh`` and every real run compose the config and call
:func:`preflight` on it (through ``python -m medix_verl.verl.compose``). It runs verl's own static
check (``verl.utils.config.validate_config``, as ``verl/trainer/main_ppo.py:main`` does) and then
the constraints that verl checks only at run time, after models are loaded and the first rollout is
done. Each check names the verl code path that would fail, the numbers, and a layout that works.

Refusals stop the run (exit 2). Notes are printed and do not stop it.

    python -m medix_verl.verl.preflight [OVERRIDES...]     # the report for a composed config
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import sys
from dataclasses import dataclass, field
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


def preflight(cfg, *, run_verl_validate: bool = True) -> Report:
    """Check a composed MediX-R1 training config (an OmegaConf ``DictConfig``) for what verl 0.9.1
    would reject at run time. Never raises for a bad layout: it is a :class:`Report` refusal."""
    report = Report()
    refuse = report.refusals.append
    nnodes = int(_get(cfg, "trainer.nnodes", 1))
    gpus = int(_get(cfg, "trainer.n_gpus_per_node", 1))
    train_gpus = nnodes * gpus
    n = int(_get(cfg, "actor_rollout_ref.rollout.n", 1))
    batch = int(_get(cfg, "data.train_batch_size"))
    mini = int(_get(cfg, "actor_rollout_ref.actor.ppo_mini_batch_size"))
    sp = int(_get(cfg, "actor_rollout_ref.actor.ulysses_sequence_parallel_size", 1))
    tp = int(_get(cfg, "actor_rollout_ref.rollout.tensor_model_parallel_size", 1))
    rollout_dp = int(_get(cfg, "actor_rollout_ref.rollout.data_parallel_size", 1))
    rollout_pp = int(_get(cfg, "actor_rollout_ref.rollout.pipeline_model_parallel_size", 1))
    prompt_len = int(_get(cfg, "data.max_prompt_length"))
    response_len = int(_get(cfg, "data.max_response_length"))
    seq_len = prompt_len + response_len
    rm = _get(cfg, "reward.reward_model", {}) or {}
    judge_verl = bool(rm.get("enable", False))
    kwargs = _get(cfg, "reward.custom_reward_function.reward_kwargs", {}) or {}

    if nnodes < 1 or gpus < 1:
        refuse(
            Problem(
                "no-training-gpus",
                f"trainer.nnodes={nnodes} x trainer.n_gpus_per_node={gpus}: no GPU would train"
                + (" (JUDGE=verl takes JUDGE_GPUS of each node's GPUS_PER_NODE)" if judge_verl else ""),
                "set GPUS_PER_NODE (and NNODES) to the GPUs this run may use",
                "verl/single_controller/ray/base.py (resource pools)",
            )
        )
        return report

    # ---- verl's own static check (verl/trainer/main_ppo.py:main calls it before anything starts)
    if run_verl_validate:
        verl_problem = _verl_validate(cfg)
        if verl_problem is not None:
            refuse(verl_problem)

    # ---- the actor's data-parallel split of every mini-batch
    # verl/trainer/ppo/v1/trainer_base.py:_update_actor sends ppo_mini_batch_size * rollout.n
    # samples as one mini-batch; verl/workers/engine_workers.py:TrainingWorker.train_mini_batch
    # asserts mini_batch_size % engine.get_data_parallel_size() == 0 (FSDP: world / ulysses sp)
    samples_per_mini = mini * n
    dp = train_gpus // sp if sp and train_gpus % sp == 0 else None
    if dp is None:
        refuse(
            Problem(
                "ulysses-sp",
                f"{train_gpus} training GPUs do not split into Ulysses groups of {sp}",
                f"use a multiple of {sp} training GPUs",
                "verl/workers/engine/fsdp/transformer_impl.py (device mesh)",
            )
        )
    elif samples_per_mini % dp:
        good = [g for g in _divisors_within(samples_per_mini, 64) if g % max(tp, 1) == 0 and g > 1]
        refuse(
            Problem(
                "actor-data-parallel",
                f"a mini-batch is ppo_mini_batch_size x rollout.n = {mini} x {n} = {samples_per_mini} samples; "
                f"it must divide by the actor's data-parallel size {dp} ({nnodes} node(s) x {gpus} GPUs"
                + (f" / ulysses {sp}" if sp > 1 else "")
                + f"), and {samples_per_mini} / {dp} = {samples_per_mini / dp:.2f}. It would crash at the "
                "first actor update, after model loading and the first rollout",
                f"train on a number of GPUs that divides {samples_per_mini} and the rollout TP {tp} "
                f"({', '.join(map(str, good[:8]))}): 8 training GPUs per node with the judge on another "
                "node (JUDGE=server JUDGE_URL=http://<judge-node>:8085/v1), or one 8-GPU node split 4 + 4 "
                "(JUDGE=verl JUDGE_GPUS=4). Shrinking the mini-batch would change the optimisation",
                "verl/workers/engine_workers.py:TrainingWorker.train_mini_batch",
            )
        )
    if batch % mini:
        refuse(
            Problem(
                "mini-batches",
                f"data.train_batch_size {batch} is not a multiple of actor.ppo_mini_batch_size {mini}",
                "make the train batch a multiple of the mini-batch",
                "verl/trainer/ppo/v1/trainer_base.py:_update_actor",
            )
        )

    # ---- rollout replicas: tensor parallel groups must tile the training GPUs
    rollout_world = tp * rollout_dp * rollout_pp
    if train_gpus % rollout_world or (rollout_world > gpus and rollout_world % gpus):
        refuse(
            Problem(
                "rollout-tensor-parallel",
                f"rollout tensor x data x pipeline parallel = {rollout_world} GPUs per replica does not tile "
                f"{nnodes} node(s) x {gpus} GPUs",
                f"use a rollout TP that divides {gpus} ({', '.join(map(str, _divisors_within(gpus, gpus)))})",
                "verl/workers/rollout/replica.py:RolloutReplica.__init__ and LLMServerManager",
            )
        )

    elif rollout_world > gpus:
        report.notes.append(
            f"a rollout replica ({rollout_world} GPUs) spans {rollout_world // gpus} nodes of {gpus} training GPUs: "
            "vLLM's tensor parallel then runs over the network"
        )

    # ---- token limits of dynamic batching and of the rollout engine
    if _get(cfg, "actor_rollout_ref.actor.use_dynamic_bsz", False):
        for key in (
            "actor_rollout_ref.actor.ppo_max_token_len_per_gpu",
            "actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu",
            "actor_rollout_ref.ref.log_prob_max_token_len_per_gpu",
        ):
            limit = _get(cfg, key)
            if limit is not None and int(limit) * sp < seq_len:
                refuse(
                    Problem(
                        "dynamic-batch-tokens",
                        f"{key} = {limit} (x ulysses {sp}) is below one sequence: prompt {prompt_len} + "
                        f"response {response_len} = {seq_len} tokens",
                        f"set {key}>={math.ceil(seq_len / sp)}",
                        "verl/utils/seqlen_balancing.py:get_seqlen_balanced_partitions (max_token_len >= seq len)",
                    )
                )
    else:
        micro = _get(cfg, "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu")
        if micro and dp and (samples_per_mini // max(dp, 1)) % int(micro):
            refuse(
                Problem(
                    "micro-batches",
                    f"{samples_per_mini // dp} samples per GPU per mini-batch do not split into micro-batches "
                    f"of {micro}",
                    "choose a micro-batch that divides it, or use_dynamic_bsz=true",
                    "verl/workers/engine_workers.py:TrainingWorker.train_mini_batch",
                )
            )
    max_model_len = _get(cfg, "actor_rollout_ref.rollout.max_model_len")
    if _get(cfg, "actor_rollout_ref.rollout.name") in ("vllm", "sglang"):
        if max_model_len is None:
            refuse(
                Problem(
                    "policy-max-model-len",
                    "actor_rollout_ref.rollout.max_model_len is null: vLLM then sizes the KV cache for the "
                    "model's whole context (128k-256k tokens) instead of prompt + response",
                    f"set actor_rollout_ref.rollout.max_model_len={seq_len} (the release batches {seq_len} tokens)",
                    "verl/workers/rollout/vllm_rollout/vllm_async_server.py (max_model_len = max_position_embeddings)",
                )
            )
        elif int(max_model_len) < seq_len:
            refuse(
                Problem(
                    "policy-max-model-len",
                    f"actor_rollout_ref.rollout.max_model_len {max_model_len} < prompt {prompt_len} + "
                    f"response {response_len}",
                    f"set actor_rollout_ref.rollout.max_model_len={seq_len}",
                    "vLLM rejects longer prompts with HTTP 400 during the rollout",
                )
            )

    # ---- checkpoints
    save_freq = int(_get(cfg, "trainer.save_freq", -1))
    if save_freq > 0 and _get(cfg, "trainer.max_actor_ckpt_to_keep") is None:
        refuse(
            Problem(
                "checkpoint-rotation",
                f"a checkpoint every {save_freq} steps and trainer.max_actor_ckpt_to_keep=null keeps every "
                "one of them (optimizer state included) until the disk is full",
                f"set trainer.max_actor_ckpt_to_keep={RELEASE_CKPT_TO_KEEP} (the release's save_limit)",
                "verl/utils/checkpoint (no rotation when the limit is null)",
            )
        )

    # ---- resume after preemption
    _check_resume(cfg, report, nnodes=nnodes, save_freq=save_freq)

    # ---- DAPO generation batching
    if _get(cfg, "algorithm.filter_groups.enable", False):
        gen = _get(cfg, "data.gen_batch_size")
        if gen is not None and int(gen) != 1:
            refuse(
                Problem(
                    "dapo-gen-batch",
                    f"data.gen_batch_size={gen} is replaced by 1 when algorithm.filter_groups.enable is set "
                    "(verl refills prompt by prompt and logs only a warning)",
                    "remove data.gen_batch_size; the release's give-up budget is "
                    "trainer.v1.medix.group_filter.max_filtered_groups",
                    "verl/trainer/ppo/v1/trainer_base.py:_build_replay_buffer (gen_batch_size=1)",
                )
            )
        if judge_verl and not rm.get("enable_resource_pool", False):
            refuse(
                Problem(
                    "dapo-judge-pool",
                    "DAPO group filtering needs the reward while sampling, which a colocated verl judge "
                    "(reward.reward_model.enable_resource_pool=false) cannot give",
                    "reward.reward_model.enable_resource_pool=true (JUDGE=verl does this) or JUDGE=server",
                    "verl/trainer/ppo/v1/trainer_base.py:_resolve_filter_groups_metric (assert)",
                )
            )

    # ---- the judge
    _check_judge(cfg, report, judge_verl=judge_verl, rm=rm, kwargs=kwargs, nnodes=nnodes, gpus=gpus)

    _check_gdpo(cfg, report, kwargs)

    # ---- the layout, for the report
    report.layout += [
        ("nodes x training GPUs", f"{nnodes} x {gpus} (actor data-parallel {dp})"),
        ("mini-batch", f"{mini} prompts x {n} = {samples_per_mini} samples ({samples_per_mini // (dp or 1)} per GPU)"),
        ("rollout", f"{_get(cfg, 'actor_rollout_ref.rollout.name')} TP {tp}, max_model_len {max_model_len}"),
        ("sequence", f"prompt {prompt_len} + response {response_len} = {seq_len} tokens"),
    ]
    if judge_verl:
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
    ckpt = _get(cfg, "trainer.max_actor_ckpt_to_keep")
    report.layout.append(("checkpoints", f"every {save_freq} steps, keep {ckpt}"))
    return report


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


def _check_resume(cfg, report: Report, *, nnodes: int, save_freq: int) -> None:
    """Whether a preempted run can resume: verl resumes from ``trainer.default_local_dir``
    (``resume_mode=auto``), where every training rank writes its own shard of each checkpoint."""
    import os

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
        report.refusals.append(
            Problem(
                "checkpoint-dir-not-shared",
                f"trainer.default_local_dir={folder} is on {fstype} ({point}): each of the {nnodes} nodes writes "
                "its ranks' shards into its own memory, where no other node sees them and a preempted node "
                "loses them",
                "set CKPT_DIR (trainer.default_local_dir) to a folder on a filesystem every node mounts "
                "(NFS, Lustre, GPFS, ...)",
                "verl/trainer/ppo/v1/trainer_base.py:_save_checkpoint / _load_checkpoint",
            )
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


def _check_gdpo(cfg, report: Report, kwargs) -> None:
    """``algorithm.adv_estimator=gdpo``: its reward keys must be parts the reward preset produces
    (verl asserts each is in the batch at the first advantage, after a step's generation), and
    only the medix trainer puts them there (verl's v1 trainer passes ``uid`` alone)."""
    from . import gdpo

    algorithm = _get(cfg, "algorithm", {}) or {}
    if algorithm.get("adv_estimator") != gdpo.ESTIMATOR:
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
    if _get(cfg, "trainer.v1.trainer_mode") != "medix":
        problems.append(
            "verl 0.9.1's v1 trainer does not put the reward parts in the batch GDPO reads "
            f"(trainer.v1.trainer_mode={_get(cfg, 'trainer.v1.trainer_mode')})"
        )
    for message in problems:
        report.refusals.append(
            Problem(
                "gdpo-reward-keys",
                message,
                "set ADV=gdpo on the recipe (it sets the preset's parts and weights) and keep "
                "trainer.v1.trainer_mode=medix",
                "verl/trainer/ppo/core_algos.py:compute_gdpo_outcome_advantage",
            )
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


def _url_list_problem(value) -> Problem | None:
    from ..clients.pool import UrlListError, parse_url_list

    try:
        parse_url_list(value if isinstance(value, str) else list(value), what="reward_kwargs.judge_url")
    except UrlListError as exc:
        return Problem(
            "judge-url-list",
            str(exc),
            "JUDGE_URL=http://HOST1:PORT/v1,http://HOST2:PORT/v1 (each replica once, with scheme and port)",
            "the reward's start-up in every reward worker (medix_verl/clients/pool.py:parse_url_list)",
        )
    return None


def _urls(value) -> list[str]:
    """The judge URLs of a reward_kwargs value (one URL, a comma list or a list)."""
    if isinstance(value, str):
        return [u.strip() for u in value.split(",") if u.strip()]
    return [str(u) for u in value or []]


def _check_judge(cfg, report: Report, *, judge_verl: bool, rm, kwargs, nnodes: int, gpus: int) -> None:
    refuse = report.refusals.append
    judge_url = kwargs.get("judge_url")
    judge_model = kwargs.get("judge_model")
    response_len = int(_get(cfg, "data.max_response_length"))
    if judge_verl:
        rm_roll = rm.get("rollout") or {}
        if rm.get("enable_resource_pool", False) and rm_roll.get("free_cache_engine", True):
            refuse(
                Problem(
                    "judge-asleep",
                    "the verl-managed judge has its own GPUs (enable_resource_pool=true) and "
                    "rollout.free_cache_engine=true: verl puts it to sleep at start-up and, in this mode, "
                    "nothing wakes it (every judge call of the first step fails or hangs)",
                    "reward.reward_model.rollout.free_cache_engine=false (JUDGE=verl does this): its GPUs "
                    "hold nothing else",
                    "verl/experimental/reward_loop/reward_model.py:RewardModelManager.__init__ (sleep); "
                    "wake_up only in RewardLoopManager.compute_rm_score",
                )
            )
        model_path = rm.get("model_path")
        if judge_model and judge_model != model_path:
            refuse(
                Problem(
                    "judge-model-name",
                    f"verl serves the judge under its model_path {model_path!r}, the reward would ask for "
                    f"{judge_model!r}: every judge call is refused",
                    "leave reward_kwargs.judge_model null with JUDGE=verl (the reward then uses model_path)",
                    "verl/workers/rollout/vllm_rollout/vllm_async_server.py (vllm serve <model path>)",
                )
            )
        if judge_url:
            report.notes.append(
                f"reward_kwargs.judge_url={judge_url} is ignored: verl passes its judge router's address"
            )
        tp = int(rm_roll.get("tensor_model_parallel_size") or 1)
        rm_gpus = int(rm.get("n_gpus_per_node") or 0)
        if rm.get("enable_resource_pool", False) and (rm_gpus < tp or rm_gpus % tp):
            refuse(
                Problem(
                    "judge-tensor-parallel",
                    f"the judge pool has {rm_gpus} GPUs per node, judge TP is {tp}",
                    "JUDGE_GPUS a multiple of JUDGE_TP",
                    "verl/experimental/reward_loop/reward_model.py:_initialize_llm_servers (num_replicas > 0)",
                )
            )
        judge_ctx = rm_roll.get("max_model_len")
        rm_nodes = int(rm.get("nnodes") or 1)
        if rm.get("enable_resource_pool", False) and rm_nodes > nnodes:
            refuse(
                Problem(
                    "judge-nodes",
                    f"the judge's pool spans {rm_nodes} nodes (reward.reward_model.nnodes, JUDGE_NODES) but the run "
                    f"has {nnodes}: verl cannot place {rm_nodes} x {rm_gpus} judge GPUs",
                    f"JUDGE_NODES <= NNODES ({nnodes})",
                    "verl/trainer/ppo/v1/trainer_base.py:_init_resource_pool_mgr (reward pool placement)",
                )
            )
        if rm.get("enable_resource_pool", False) and rm_gpus >= tp and rm_gpus % tp == 0:
            report.layout.append(
                (
                    "judge replicas",
                    f"{rm_gpus} GPUs x {rm_nodes} node(s) / TP {tp} = {rm_gpus * rm_nodes // tp}, "
                    "behind verl's least-loaded router",
                )
            )
        if rm.get("enable_resource_pool", False) and nnodes > rm_nodes:
            report.notes.append(
                f"the judge's pool is on {rm_nodes} node(s) but training uses {gpus} GPUs on each of {nnodes} "
                f"nodes: {rm_gpus} GPUs stay idle on each of the other {nnodes - rm_nodes} node(s); with several "
                "nodes a judge server on a node of its own (JUDGE=server) trains on every GPU"
            )
    else:
        if not judge_url:
            refuse(
                Problem(
                    "no-judge",
                    "no judge: reward_kwargs.judge_url is empty and verl manages none",
                    "JUDGE_URL=http://<host>:8085/v1 (recipes/serve_judge.sh) or JUDGE=verl",
                    "the first judge call of the first step",
                )
            )
        elif (bad := _url_list_problem(judge_url)) is not None:
            refuse(bad)
        elif nnodes > 1 and any(is_loopback_url(u) for u in _urls(judge_url)):
            refuse(
                Problem(
                    "judge-url-loopback",
                    f"{nnodes} nodes and a loopback judge URL in {judge_url}: verl runs reward workers on every "
                    "node, and those on other nodes would call their own 127.0.0.1",
                    "serve the judge on an address every node reaches (JUDGE_HOST=0.0.0.0 with "
                    "MEDIX_JUDGE_API_KEY on the judge node) and pass JUDGE_URL=http://<judge-node-ip>:8085/v1",
                    "verl/experimental/reward_loop/reward_loop.py:_init_reward_loop_workers (round-robin nodes)",
                )
            )
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


def main(argv=None) -> int:
    from .compose import compose

    overrides = list(sys.argv[1:] if argv is None else argv)
    report = preflight(compose(overrides))
    print(report.render())
    return 0 if report.ok else 2


if __name__ == "__main__":
    sys.exit(main())
