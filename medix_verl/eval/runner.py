"""Reference-based LLM-as-judge evaluation over the MediX-R1 benchmarks (spec section 6).

The policy answers every question through an OpenAI-compatible server (images inline as data
URLs); a judge model grades each answer against the reference in a three-round conversation
(each round followed by a request to re-evaluate), and the majority of the three verdicts is the
sample's score. The MIMIC report tasks use a 0-5 rubric: the mean of the three rounds divided by 5.

Every finished sample is appended to ``OUT/samples.jsonl``; a re-run does only what is missing.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from data_prep.eval_sets import IMAGE_TASKS, TASKS, TEXT_TASKS

from ..clients.chat import ChatClient, ChatRequestError, reply_text

GEN_PARAMS = {"temperature": 0.0, "top_p": 1.0, "max_tokens": 2048}
JUDGE_PARAMS = {"temperature": 0.0, "top_p": 1.0, "max_tokens": 256, "chat_template_kwargs": {"enable_thinking": False}}
_THINK_END = re.compile(r"</think(?:ing)?>")

JUDGE_BINARY = (
    "You are an expert medical evaluator. Decide whether the model's answer to the question is correct "
    "according to the reference answer.\n"
    "Count it correct if it gives the reference answer in other words, or, for a multiple-choice question, "
    "the correct option label or the correct option's text. Count it wrong if it is incorrect, incomplete "
    "in a way that changes the meaning, or gives several different answers.\n\n"
    "Question:\n{question}\n\nReference answer:\n{reference}\n\nModel answer:\n{prediction}\n\n"
    'Respond with JSON only: {{"score": 1}} if correct, {{"score": 0}} if not.'
)
JUDGE_RUBRIC = (
    "You are an expert radiologist grading a generated radiology text against the reference.\n"
    "Score it from 0 to 5: 5 = all clinically relevant findings correct and nothing wrong added; "
    "4 = minor omissions; 3 = some important findings missing or one error; 2 = several errors or "
    "omissions; 1 = mostly wrong; 0 = unrelated or empty.\n\n"
    "Task:\n{question}\n\nReference:\n{reference}\n\nGenerated:\n{prediction}\n\n"
    'Respond with JSON only: {{"score": N}} with N an integer from 0 to 5.'
)
REEVALUATE = (
    "Please re-evaluate the model answer carefully against the reference once more and give your final "
    'judgement in the same JSON format ({{"score": ...}}).'
)
_JSON_OBJ = re.compile(r"\{[^{}]*\}")


def cut_prediction(text: str) -> str:
    """The answer part of a reply: the text after the last ``</think>`` / ``</thinking>``.

    >>> cut_prediction("<think>hmm</think> B. Aspirin")
    'B. Aspirin'
    """
    ends = list(_THINK_END.finditer(text))
    return (text[ends[-1].end() :] if ends else text).strip()


def parse_score(reply: str, allowed: range) -> int | None:
    """The ``score`` of the first JSON object in ``reply`` if it is an allowed integer, else None.

    >>> parse_score('Sure. {"score": 1}', range(2)), parse_score('{"score": 7}', range(6)), parse_score("yes", range(2))
    (1, None, None)
    """
    for match in _JSON_OBJ.finditer(reply or ""):
        try:
            value = json.loads(match.group(0)).get("score")
        except (ValueError, AttributeError):
            continue
        if isinstance(value, bool):
            continue
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and value in allowed:
            return value
        return None
    return None


def combine_rounds(scores: list[int], rubric: bool) -> float:
    """Majority of the binary rounds, or the mean of the 0-5 rubric rounds divided by 5.

    >>> combine_rounds([1, 0, 1], False), combine_rounds([0, 0, 1], False), combine_rounds([5, 4, 3], True)
    (1.0, 0.0, 0.8)
    """
    if rubric:
        return sum(scores) / len(scores) / 5.0
    return 1.0 if sum(scores) * 2 > len(scores) else 0.0


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


def image_part(image: dict) -> dict:
    data = image["bytes"]
    mime = "image/jpeg" if data[:3] == b"\xff\xd8\xff" else "image/png"
    return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{base64.b64encode(data).decode()}"}}


def generation_messages(sample: dict, system_prompt: str | None) -> list[dict]:
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    if sample.get("images"):
        content = [image_part(im) for im in sample["images"]] + [{"type": "text", "text": sample["question"]}]
    else:
        content = sample["question"]
    messages.append({"role": "user", "content": content})
    return messages


# ----------------------------------------------------------------------------- results log
class SampleLog:
    """``samples.jsonl``: one JSON line per finished sample, appended with a single write."""

    def __init__(self, path: Path):
        self.path = path
        self.done: dict[tuple[str, str], dict] = {}
        if path.exists():
            raw = path.read_bytes()
            good_end = 0
            for line in raw.split(b"\n"):
                if not line.strip():
                    good_end += len(line) + 1
                    continue
                try:
                    rec = json.loads(line)
                    self.done[(rec["task"], str(rec["id"]))] = rec
                    good_end += len(line) + 1
                except (ValueError, KeyError):
                    break  # a line cut by a kill: it and anything after are redone
            if good_end < len(raw):
                with open(path, "r+b") as handle:
                    handle.truncate(min(good_end, len(raw)))
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def append(self, record: dict) -> None:
        os.write(self._fd, (json.dumps(record, ensure_ascii=False) + "\n").encode())
        self.done[(record["task"], str(record["id"]))] = record

    def close(self) -> None:
        os.close(self._fd)


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


@dataclass
class Counters:
    generation_failures: int = 0
    judge_failures: int = 0
    unparseable: int = 0


async def _judge_sample(
    judge: ChatClient, sample: dict, prediction: str, rounds: int, verdict_retries: int, counters: Counters
) -> tuple[list[int], str | None]:
    rubric = TASKS[sample["task"]].judging == "rubric"
    allowed = range(6) if rubric else range(2)
    template = JUDGE_RUBRIC if rubric else JUDGE_BINARY
    messages = [
        {
            "role": "user",
            "content": template.format(
                question=sample["question"], reference=sample["answer"], prediction=prediction or "(empty)"
            ),
        }
    ]
    scores: list[int] = []
    for round_no in range(rounds):
        if round_no:
            messages.append({"role": "user", "content": REEVALUATE.format()})
        score = None
        for attempt in range(verdict_retries + 1):
            try:
                choice = await judge.complete_choice(messages, JUDGE_PARAMS, use_cache=attempt == 0)
            except ChatRequestError as exc:
                return scores, f"judge request failed in round {round_no + 1}: {exc}"
            reply = reply_text(choice)
            score = parse_score(reply, allowed)
            if score is not None:
                break
            counters.unparseable += 1
            judge.forget(messages, JUDGE_PARAMS)
        if score is None:
            return (
                scores,
                f"unparseable verdict in round {round_no + 1} after {verdict_retries + 1} tries: {reply[:120]!r}",
            )
        scores.append(score)
        messages.append({"role": "assistant", "content": reply})
    return scores, None


async def run_eval(cfg: EvalConfig) -> dict:
    tasks = resolve_tasks(cfg.tasks, cfg.data_dir)
    samples = [s for t in tasks for s in load_samples(cfg.data_dir, t, cfg.limit)]
    log = SampleLog(cfg.output / "samples.jsonl")
    todo = [s for s in samples if (s["task"], str(s["id"])) not in log.done]
    policy = ChatClient(
        cfg.model_url,
        cfg.model,
        max_concurrency=cfg.max_concurrency,
        timeout=cfg.timeout,
        retries=cfg.retries,
        cache_size=0,
        max_error_rate=0.5,
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
                raw = await policy.complete(generation_messages(sample, cfg.system_prompt), GEN_PARAMS)
            except ChatRequestError as exc:
                counters.generation_failures += 1
                record.update(
                    raw_output=None, prediction=None, rounds=[], score=None, failure=f"generation failed: {exc}"
                )
            else:
                prediction = cut_prediction(raw)
                if "gen" in bars:
                    bars["gen"].update(1)
                rounds, failure = await _judge_sample(
                    judge, sample, prediction, cfg.rounds, cfg.verdict_retries, counters
                )
                rubric = TASKS[sample["task"]].judging == "rubric"
                score = None if failure else combine_rounds(rounds, rubric)
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
        log.close()
        await policy.aclose()
        await judge.aclose()
    results = summarize(cfg.output, tasks, samples, log.done)
    results["run"] = {
        "model": cfg.model,
        "judge_model": cfg.judge_model,
        "rounds": cfg.rounds,
        "new_samples": len(todo),
        "resumed_samples": len(samples) - len(todo),
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
