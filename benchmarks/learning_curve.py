"""Does training with the MediX reward learn? A learning curve of real GRPO steps on this CPU.

    python benchmarks/learning_curve.py --workdir W [--steps 24]
    python benchmarks/learning_curve.py --workdir W --compare mask,score --judge-fault-rate 0.3
    python benchmarks/learning_curve.py --workdir W --compare grpo,gdpo

What runs: verl's ``main_ppo`` with the ``medix`` trainer on the CPU backend
(``recipes/medix_r1_tiny_cpu.sh``, :mod:`medix_verl.devkit.tiny_run`), the composite reward with
the release preset and MiniLM as the embedder, on the ``organs`` task
(:func:`medix_verl.devkit.synthetic.make_learnable_rows`): "Which organ filters the blood to make
urine?", with a drawn ultrasound study; the reference is ``<ULTRASOUND> Kidney``. The tiny
Qwen2.5-VL is warm-started on the output format with answers drawn at random from four organs,
so it starts at 1 in 4: what it gets right later, it learned from the reward. The task is
deliberately easy (what the curve tests is the pipeline: rollouts, the composite reward, GRPO, the
update, the weight sync); the curve is honest: same seed, same data, same warm-started weights for
every curve, nothing in the setup changes with the step (learning rate constant, no schedule on the reward).

The judge is a deterministic loopback judge (:class:`medix_verl.devkit.fake_judge.FakeJudge`):
YES when the answer and the reference contain one another, as a real judge rules on a one-word
answer. Not SmolLM2-135M: it says NO to correct answers (a plumbing judge, not a verdict) and
takes 0.2 s a call here, which would spend the time budget on the judge instead of on steps.

``--compare mask,score --judge-fault-rate 0.3``: the same curve twice while 30% of judge calls
fail (HTTP 500, no retries, so each failed call is a judge error of its sample): once with
``trainer.v1.medix.judge_errors=mask`` (failed samples leave their group's baseline), once with
``score`` (as released: a failed call is accuracy 0). Both are measured on the samples the judge
did answer (``reward/judged/*``), where a fault says nothing about the answer.

``--compare grpo,gdpo``: GRPO on the summed score (the paper's) beside verl's GDPO over the
release preset's parts with their weights (``ADV=gdpo``, opt-in).

Writes ``W/<curve>/`` (each a tiny-run workdir: ``verl_metrics.jsonl``, ``metrics.jsonl``,
checkpoints), ``W/learning.json`` (per-step means, first third vs last third, a one-sided
Mann-Whitney test per curve) and ``W/learning.png``. Exits 1 if a curve did not rise (p >= 0.05).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PARTS = ("score", "accuracy_llm", "accuracy_embed", "format", "modality")
#: judge-error policies (mask, score) or advantage estimators (grpo, gdpo)
CURVES = ("mask", "score", "grpo", "gdpo")


def curve_overrides(name: str) -> list[str]:
    """What a curve changes: the judge-error policy, or the advantage estimator (``gdpo``: verl's
    GDPO over the release preset's parts, as ``ADV=gdpo`` sets it; ``grpo``: the recipes' default).

    >>> curve_overrides("score"), curve_overrides("grpo")
    (['trainer.v1.medix.judge_errors=score'], [])
    >>> curve_overrides("gdpo")[0]
    'algorithm.adv_estimator=medix_gdpo'
    """
    if name in ("mask", "score"):
        return [f"trainer.v1.medix.judge_errors={name}"]
    if name == "gdpo":
        from medix_verl.integration.gdpo import overrides

        return overrides("release")
    return []


def log(msg: str) -> None:
    print(f"[learning_curve {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def part_series(rows: list[dict], key: str) -> list[float]:
    return [row.get(key, float("nan")) for row in rows]


def moving_mean(values: list[float], k: int) -> list[float]:
    """The mean of each value and the up to ``k - 1`` before it.

    >>> moving_mean([0.0, 1.0, 2.0, 3.0], 2)
    [0.0, 0.5, 1.5, 2.5]
    """
    return [sum(values[max(0, i - k + 1) : i + 1]) / len(values[max(0, i - k + 1) : i + 1]) for i in range(len(values))]


def rise(values: list[float]) -> dict:
    """First third of the steps against the last third, and a one-sided Mann-Whitney U test
    (are the last third's step means larger?)."""
    from scipy.stats import mannwhitneyu

    k = max(1, len(values) // 3)
    first, last = values[:k], values[-k:]
    test = mannwhitneyu(last, first, alternative="greater")
    return {
        "first_third_mean": sum(first) / len(first),
        "last_third_mean": sum(last) / len(last),
        "rise": sum(last) / len(last) - sum(first) / len(first),
        "steps_per_third": k,
        "test": "Mann-Whitney U, one-sided (last third > first third), over per-step means",
        "p_value": float(test.pvalue),
    }


def run_curve(name: str, args, base: Path, judge_url: str, overrides: list[str]) -> dict:
    workdir = Path(args.workdir) / name
    workdir.mkdir(parents=True, exist_ok=True)
    for item in ("data", "model_init"):  # the same data and warm-started weights for every curve
        link = workdir / item
        if not link.exists():
            link.symlink_to(base / item)
    cmd = [
        "bash",
        str(ROOT / "recipes" / "medix_r1_tiny_cpu.sh"),
        "--workdir",
        str(workdir),
        "--task",
        "organs",
        "--steps",
        str(args.steps),
        "--rows",
        str(args.rows),
        "--warm-steps",
        str(args.warm_steps),
        "--judge-url",
        judge_url,
        "--judge-model",
        "fake",
        "--",
        *overrides,
    ]
    log(f"curve {name}: {args.steps} GRPO steps ({' '.join(overrides) or 'release preset, defaults'})")
    t = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    (workdir / "tiny_run.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"curve {name}: the tiny run failed ({proc.returncode}); see {workdir / 'tiny_run.log'}")
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    curve = {
        "overrides": overrides,
        "seconds": round(time.time() - t, 1),
        "steps": [row["step"] for row in rows],
        "per_step": {
            key: part_series(rows, f"reward/{key}")
            for key in [f"{p}/mean" for p in PARTS]
            + ["judged/score/mean", "judged/accuracy_llm/mean", "judge_error_rate", "judge_error_masked"]
        },
    }
    score = curve["per_step"]["judged/score/mean"]
    curve["score"] = rise(score)
    curve["accuracy_llm"] = rise(curve["per_step"]["judged/accuracy_llm/mean"])
    log(
        "curve {}: score {:.3f} -> {:.3f} (first vs last third), judge accuracy {:.3f} -> {:.3f}, p = {:.2g}, {:.0f} s".format(
            name,
            curve["score"]["first_third_mean"],
            curve["score"]["last_third_mean"],
            curve["accuracy_llm"]["first_third_mean"],
            curve["accuracy_llm"]["last_third_mean"],
            curve["score"]["p_value"],
            curve["seconds"],
        )
    )
    return curve


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = result["curves"]
    compare = len(curves) > 1
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    first = next(iter(curves.values()))
    ax = axes[0]
    for part in PARTS:
        ax.plot(first["steps"], first["per_step"][f"{part}/mean"], label=part, lw=2.5 if part == "score" else 1.2)
    ax.set_title(f"{next(iter(curves))}: the composite and each part\n(mean per step)", fontsize=10)
    ax.set_xlabel("GRPO step")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8)
    ax = axes[1]
    for name, curve in curves.items():
        acc = curve["per_step"]["judged/accuracy_llm/mean"]
        a = curve["accuracy_llm"]
        (line,) = ax.plot(curve["steps"], acc, marker="o", ms=3, lw=0.8, alpha=0.6)
        ax.plot(
            curve["steps"],
            moving_mean(acc, 5),
            color=line.get_color(),
            lw=2.5,
            label=f"{name}: {a['first_third_mean']:.2f} -> {a['last_third_mean']:.2f} (first vs last third), "
            f"p={a['p_value']:.2g}",
        )
    ax.axhline(result["chance"], color="grey", ls=":", lw=1, label="chance")
    title = "judge accuracy on the judged samples\n(thick: mean of 5 steps"
    if compare and result["judge_fault_rate"]:
        title += f"; {result['judge_fault_rate']:.0%} of judge calls failing"
    ax.set_title(title + ")", fontsize=10)
    ax.set_xlabel("GRPO step")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8)
    fig.suptitle(f"MediX reward, tiny Qwen2.5-VL on CPU, task '{result['task']}' ({result['chance']:.2f} = chance)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--rows", type=int, help="training rows (default: 4 per step, one epoch)")
    parser.add_argument("--warm-steps", type=int, default=400)
    parser.add_argument("--lr", type=float, default=2.5e-4, help="the actor's learning rate (constant)")
    parser.add_argument("--mini-batch", type=int, default=1, help="prompts per actor update (4 a step)")
    parser.add_argument(
        "--compare", help="curves side by side: judge-error policies (mask,score) or estimators (grpo,gdpo)"
    )
    parser.add_argument("--judge-fault-rate", type=float, default=0.0, help="share of judge calls that fail")
    args = parser.parse_args(argv)
    if args.steps < 15:
        parser.error("--steps must be >= 15 for a curve")
    args.rows = args.rows or 4 * args.steps
    names = args.compare.split(",") if args.compare else ["mask"]
    bad = [n for n in names if n not in CURVES]
    if bad or len(set(names)) != len(names):
        parser.error(f"--compare takes distinct names from {CURVES}, got {args.compare!r}")
    if not 0.0 <= args.judge_fault_rate < 1.0:
        parser.error("--judge-fault-rate must be in [0, 1)")

    from medix_verl.devkit.fake_judge import FakeJudge
    from medix_verl.devkit.synthetic import LEARNABLE_ANSWERS
    from medix_verl.devkit.tiny_run import cpu_run_env, prepare_data, prepare_model

    workdir = Path(args.workdir).resolve()
    base = workdir / "base"
    base.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    os.environ.update({k: v for k, v in cpu_run_env(base / "unused.jsonl").items() if k.endswith("OFFLINE")})
    data = prepare_data(base, args.rows, 8, "organs")
    prepare_model(base, data, args.warm_steps, "organs")
    log(f"data and warm-started policy in {base} ({time.time() - t0:.0f} s)")
    kw = "reward.custom_reward_function.reward_kwargs"
    result = {
        "task": "organs",
        "chance": 1 / len(LEARNABLE_ANSWERS),
        "judge": "loopback FakeJudge: YES iff answer and reference contain one another (lenient_policy)",
        "judge_fault_rate": args.judge_fault_rate,
        "steps": args.steps,
        "rows": args.rows,
        "curves": {},
    }
    with FakeJudge(error_rate=args.judge_fault_rate, seed=0) as judge:
        for name in names:
            # one prompt group per actor update: 4 updates a step for the compute of one (the
            # tiny config's single update of 1e-3 shakes the output format apart within 10 steps);
            # the learning rate is constant for the whole run
            overrides = [
                f"actor_rollout_ref.actor.optim.lr={args.lr}",
                f"actor_rollout_ref.actor.ppo_mini_batch_size={args.mini_batch}",
            ]
            if args.compare:
                overrides += curve_overrides(name)
            if args.judge_fault_rate:
                # each failed call is a judge error of its sample; the run must not stop on them
                overrides += [f"+{kw}.judge_retries=0", f"+{kw}.max_error_rate=1.0"]
            result["curves"][name] = run_curve(name, args, base, judge.url, overrides)
    result["seconds"] = round(time.time() - t0, 1)
    (workdir / "learning.json").write_text(json.dumps(result, indent=2))
    plot(result, workdir / "learning.png")
    log(f"wrote {workdir / 'learning.json'} and {workdir / 'learning.png'} in {result['seconds']:.0f} s")
    flat = [n for n, c in result["curves"].items() if not (c["score"]["p_value"] < 0.05 and c["score"]["rise"] > 0)]
    for n in flat:
        log(f"curve {n} did not rise significantly: {result['curves'][n]['score']}")
    return 1 if flat else 0


if __name__ == "__main__":
    sys.exit(main())
