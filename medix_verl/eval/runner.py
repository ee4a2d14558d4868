"""Reference-based LLM-as-judge evaluation over the MediX-R1 benchmarks (spec section 6).

The policy answers every question through an OpenAI-compatible server as the release's
``generate`` asks it (one user message of content parts: the image re-encoded as JPEG, then the
text); a judge model grades each answer against the reference in a three-round conversation (each
round followed by a request to re-evaluate) under a judge protocol (:mod:`.protocols`: the
release's by default). The 0/1 tasks take the majority of the rounds, the MIMIC tasks the mean of
their 0-5 rubric scores divided by 5.

Every finished sample is appended to ``OUT/samples.jsonl``; a re-run does only what is missing.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from data_prep.eval_sets import IMAGE_TASKS, TASKS, TEXT_TASKS

from ..clients.chat import ChatClient, ChatRequestError, reply_text
from .protocols import JudgeProtocol, get_protocol
from .runstate import LOG_NAME, FolderLock, SampleLog, check_fingerprint, file_sha256

#: the release's generation request (``generate``): greedy, 2,048 new tokens
GEN_PARAMS = {"max_tokens": 2048, "temperature": 0.0, "top_p": 1.0}
#: the release's generation client times out after 180 s; ours defaults to more (--timeout)
FORCE_THINK_SUFFIX = " <think>"


# ----------------------------------------------------------------------------- data
def resolve_tasks(spec: str, data_dir: Path) -> list[str]:
    if spec == "all":
        names = list(TEXT_TASKS + IMAGE_TASKS)
    elif spec == "text":
        names = list(TEXT_TASKS)
    elif spec == "image":
        names = list(IMAGE_TASKS)
    else:
        names = [t.strip() for t in spec.split(",") if t.strip()]
        unknown = [t for t in names if t not in TASKS]
        if unknown:
            raise ValueError(f"unknown task(s) {unknown}; tasks: {', '.join(TASKS)} (or all, text, image)")
    missing = [t for t in names if not (data_dir / f"{t}.parquet").exists()]
    if missing:
        if spec in ("all", "text", "image"):
            names = [t for t in names if t not in missing]
            if not names:
                raise FileNotFoundError(f"{data_dir}: none of the {spec} tasks' parquet files exist")
        else:
            raise FileNotFoundError(
                f"{data_dir}: no {', '.join(m + '.parquet' for m in missing)} (write them with data_prep.eval_sets)"
            )
    return names


def load_samples(data_dir: Path, task: str, limit: int | None) -> list[dict]:
    import pyarrow.parquet as pq

    path = data_dir / f"{task}.parquet"
    table = pq.read_table(path)
    need = {"id", "task", "question", "choices", "answer", "images", "kind"}
    missing = need - set(table.column_names)
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
    rows = table.to_pylist()
    return rows[:limit] if limit else rows


def release_jpeg(data: bytes) -> bytes:
    """An image as the release sends it: decoded, ``.convert("RGB")`` (alpha dropped, not
    composited), saved as JPEG at PIL's default quality."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        rgb = img.convert("RGB")
    buf = io.BytesIO()
    rgb.save(buf, format="JPEG")
    return buf.getvalue()


def image_part(image: dict) -> dict:
    url = "data:image/jpeg;base64," + base64.b64encode(release_jpeg(image["bytes"])).decode()
    return {"type": "image_url", "image_url": {"url": url}}


def generation_messages(sample: dict, system_prompt: str | None, force_think: bool = False) -> list[dict]:
    """The release's generation messages: an optional system message, then one user message whose
    content is the image part(s) and one text part (``" <think>"`` appended with ``force_think``)."""
    messages = [{"role": "system", "content": [{"type": "text", "text": system_prompt}]}] if system_prompt else []
    text = sample["question"] + (FORCE_THINK_SUFFIX if force_think else "")
    content = [image_part(im) for im in sample.get("images") or []] + [{"type": "text", "text": text}]
    messages.append({"role": "user", "content": content})
    return messages


# ----------------------------------------------------------------------------- running
@dataclass
class EvalConfig:
    tasks: str
    data_dir: Path
    model_url: str
    model: str
    judge_url: str
    judge_model: str
    output: Path
    max_concurrency: int = 32
    rounds: int = 3
    system_prompt: str | None = None
    limit: int | None = None
    timeout: float = 600.0
    judge_timeout: float = 120.0
    retries: int = 3
    verdict_retries: int = 2
    progress: bool = True
    protocol: str = "release"
    force_think: bool = False
    force_new: bool = False
    max_failure_rate: float = 0.02


@dataclass
class Counters:
    generation_failures: int = 0
    judge_failures: int = 0
    unparseable: int = 0


async def _judge_sample(
    judge: ChatClient,
    protocol: JudgeProtocol,
    sample: dict,
    prediction: str,
    rounds: int,
    verdict_retries: int,
    counters: Counters,
) -> tuple[list, str | None]:
    rubric = TASKS[sample["task"]].judging == "rubric"
    messages = [protocol.first_message(sample["question"], sample["answer"], prediction, rubric)]
    scores: list = []
    for round_no in range(rounds):
        score = None
        for attempt in range(verdict_retries + 1):
            try:
                choice = await judge.complete_choice(messages, protocol.params, use_cache=attempt == 0)
            except ChatRequestError as exc:
                return scores, f"judge request failed in round {round_no + 1}: {exc}"
            reply = reply_text(choice)
            score = protocol.score(reply, rubric)
            if score is not None:
                break
            counters.unparseable += 1
            judge.forget(messages, protocol.params)
        if score is None:
            return (
                scores,
                f"unparseable verdict in round {round_no + 1} after {verdict_retries + 1} tries: {reply[:120]!r}",
            )
        scores.append(score)
        messages.extend(protocol.reply_turns(reply))
    return scores, None


def run_settings(cfg: EvalConfig, protocol: JudgeProtocol) -> dict:
    """What must be equal for a resumed run to reuse earlier answers (server URLs may change)."""
    return {
        "model": cfg.model,
        "judge_model": cfg.judge_model,
        "protocol": protocol.name,
        "rounds": cfg.rounds,
        "system_prompt": cfg.system_prompt,
        "force_think": cfg.force_think,
        "generation_params": GEN_PARAMS,
        "judge_params": protocol.params,
    }


class TooManyFailures(RuntimeError):
    """The run finished, but more samples failed than ``max_failure_rate`` allows."""


async def run_eval(cfg: EvalConfig) -> dict:
    """Run (or resume) an evaluation in ``cfg.output``, holding the folder's lock throughout."""
    protocol = get_protocol(cfg.protocol)
    tasks = resolve_tasks(cfg.tasks, cfg.data_dir)
    hashes = {t: file_sha256(cfg.data_dir / f"{t}.parquet") for t in tasks}
    with FolderLock(cfg.output):
        check_fingerprint(cfg.output, run_settings(cfg, protocol), hashes, force_new=cfg.force_new)
        results = await _run_locked(cfg, protocol, tasks)
    failed = results["run"]["failed_samples"]
    if failed > cfg.max_failure_rate * results["run"]["samples"]:
        generation = sum(t["generation_failures"] for t in results["tasks"].values())
        raise TooManyFailures(
            f"{failed} of {results['run']['samples']} samples failed ({generation} in generation, "
            f"{failed - generation} in judging), over --max-failure-rate "
            f"{cfg.max_failure_rate:g}; their accuracy is left out of the report. Run the same command again "
            f"to retry them (see {cfg.output / 'samples.jsonl'}, field 'failure')"
        )
    return results


async def _run_locked(cfg: EvalConfig, protocol: JudgeProtocol, tasks: list[str]) -> dict:
    samples = [s for t in tasks for s in load_samples(cfg.data_dir, t, cfg.limit)]
    log = SampleLog(cfg.output / LOG_NAME)
    if log.skipped_lines:
        print(
            f"medix-verl eval: {log.path}: skipped {len(log.skipped_lines)} unreadable line(s) "
            f"(line {', '.join(map(str, log.skipped_lines[:10]))}); their samples are done again",
            file=sys.stderr,
        )
    skipped_lines = len(log.skipped_lines)

    def finished(sample) -> bool:
        rec = log.done.get((sample["task"], str(sample["id"])))
        return rec is not None and rec.get("score") is not None

    todo = [s for s in samples if not finished(s)]
    retried = sum(1 for s in todo if (s["task"], str(s["id"])) in log.done)
    policy = ChatClient(
        cfg.model_url,
        cfg.model,
        max_concurrency=cfg.max_concurrency,
        timeout=cfg.timeout,
        retries=cfg.retries,
        cache_size=0,
        max_error_rate=0.5,
        role="policy server",
    )
    judge = ChatClient(
        cfg.judge_url,
        cfg.judge_model,
        max_concurrency=cfg.max_concurrency,
        timeout=cfg.judge_timeout,
        retries=cfg.retries,
        max_error_rate=0.5,
    )
    counters = Counters()
    bars = {}
    if cfg.progress:
        from tqdm import tqdm

        bars["gen"] = tqdm(total=len(todo), desc="generating", unit="q", file=sys.stderr, position=0)
        bars["judge"] = tqdm(total=len(todo), desc="judging", unit="q", file=sys.stderr, position=1)
    limit = asyncio.Semaphore(cfg.max_concurrency * 2)

    async def one(sample):
        async with limit:
            record = {
                "task": sample["task"],
                "id": str(sample["id"]),
                "kind": sample["kind"],
                "answer": sample["answer"],
            }
            try:
                raw = await policy.complete(generation_messages(sample, cfg.system_prompt, cfg.force_think), GEN_PARAMS)
            except ChatRequestError as exc:
                counters.generation_failures += 1
                record.update(
                    raw_output=None, prediction=None, rounds=[], score=None, failure=f"generation failed: {exc}"
                )
            else:
                prediction = protocol.cut_prediction(raw)
                if "gen" in bars:
                    bars["gen"].update(1)
                rounds, failure = await _judge_sample(
                    judge, protocol, sample, prediction, cfg.rounds, cfg.verdict_retries, counters
                )
                rubric = TASKS[sample["task"]].judging == "rubric"
                score = None if failure else protocol.vote(rounds, rubric)
                if failure:
                    counters.judge_failures += 1
                record.update(raw_output=raw, prediction=prediction, rounds=rounds, score=score, failure=failure)
            log.append(record)
            if "judge" in bars:
                bars["judge"].update(1)

    started = time.perf_counter()
    try:
        await asyncio.gather(*(one(s) for s in todo))
    finally:
        for bar in bars.values():
            bar.close()
        await policy.aclose()
        await judge.aclose()
    log.compact()
    log.close()
    results = summarize(cfg.output, tasks, samples, log.done)
    results["run"] = {
        "model": cfg.model,
        "judge_model": cfg.judge_model,
        "protocol": protocol.name,
        "rounds": cfg.rounds,
        "samples": len(samples),
        "new_samples": len(todo),
        "resumed_samples": len(samples) - len(todo),
        "retried_failures": retried,
        "skipped_log_lines": skipped_lines,
        "failed_samples": sum(1 for s in samples if not finished(s)),
        "seconds": round(time.perf_counter() - started, 2),
        "unparseable_verdicts": counters.unparseable,
        "generation_failures": counters.generation_failures,
        "judge_failures": counters.judge_failures,
    }
    write_reports(cfg.output, results)
    return results


def summarize(out: Path, tasks: list[str], samples: list[dict], done: dict) -> dict:
    per_task = {}
    for task in tasks:
        recs = [
            done[(s["task"], str(s["id"]))] for s in samples if s["task"] == task and (s["task"], str(s["id"])) in done
        ]
        scored = [r["score"] for r in recs if r.get("score") is not None]
        per_task[task] = {
            "n": len([s for s in samples if s["task"] == task]),
            "scored": len(scored),
            "accuracy": round(100.0 * sum(scored) / len(scored), 2) if scored else None,
            "judge_failures": sum(1 for r in recs if r.get("failure") and r.get("prediction") is not None),
            "generation_failures": sum(1 for r in recs if r.get("prediction") is None),
        }
    accs = [v["accuracy"] for v in per_task.values() if v["accuracy"] is not None]
    return {"tasks": per_task, "overall": round(sum(accs) / len(accs), 2) if accs else None, "overall_over": len(accs)}


def write_reports(out: Path, results: dict, title: str | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        f"# {title or 'MediX-R1 evaluation'}",
        "",
        "| task | n | accuracy | judge failures | generation failures |",
        "|---|---:|---:|---:|---:|",
    ]
    for task, v in results["tasks"].items():
        acc = "n/a" if v["accuracy"] is None else f"{v['accuracy']:.2f}"
        lines.append(f"| {task} | {v['n']} | {acc} | {v['judge_failures']} | {v['generation_failures']} |")
    overall = "n/a" if results["overall"] is None else f"{results['overall']:.2f}"
    lines += [f"| **overall** (unweighted mean of {results['overall_over']} tasks) | | **{overall}** | | |", ""]
    (out / "results.md").write_text("\n".join(lines))
    plot_bars({"run": results}, out / "results.png", title=title or "MediX-R1 evaluation")


def plot_bars(runs: dict[str, dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(t for r in runs.values() for t in r["tasks"]))
    labels = tasks + ["overall"]
    width = 0.8 / max(1, len(runs))
    fig, ax = plt.subplots(figsize=(max(8, 0.7 * len(labels) * max(1, len(runs)) + 2), 5.5))
    for k, (name, res) in enumerate(runs.items()):
        values = [(res["tasks"].get(t) or {}).get("accuracy") for t in tasks] + [res.get("overall")]
        xs = [i + (k - (len(runs) - 1) / 2) * width for i in range(len(labels))]
        bars = ax.bar(xs, [v or 0 for v in values], width, label=name)
        for bar, v in zip(bars, values):
            ax.annotate(
                "n/a" if v is None else f"{v:.1f}",
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=8,
                xytext=(0, 2),
                textcoords="offset points",
            )
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=40, ha="right")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 105)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    if len(runs) > 1:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def compare(dirs: list[Path], out: Path | None) -> str:
    runs = {}
    for d in dirs:
        path = Path(d) / "results.json"
        if not path.exists():
            raise FileNotFoundError(f"{path}: not found (run medix-verl eval first)")
        name = Path(d).name or str(d)
        if name in runs:  # two runs in folders of the same name: tell them apart by path
            name = str(d)
        runs[name] = json.loads(path.read_text())
    tasks = list(dict.fromkeys(t for r in runs.values() for t in r["tasks"]))
    header = "| task | " + " | ".join(runs) + " |"
    lines = [header, "|---|" + "---:|" * len(runs)]
    for task in tasks + ["overall"]:
        cells = []
        for res in runs.values():
            v = res.get("overall") if task == "overall" else (res["tasks"].get(task) or {}).get("accuracy")
            cells.append("n/a" if v is None else f"{v:.2f}")
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    table = "\n".join(lines) + "\n"
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "compare.md").write_text(table)
        plot_bars(runs, out / "compare.png", title="MediX-R1 evaluation: comparison")
    return table
