"""Reference-based LLM-as-judge evaluation over the MediX-R1 benchmarks (spec section 6).

The policy answers every question through an OpenAI-compatible server as the release's
``generate`` asks it (one user message of content parts: the image re-encoded as JPEG, then the
text); a judge model grades each answer against the reference in a three-round conversation (each
round followed by a request to re-evaluate) under a judge protocol (:mod:`.protocols`: the
release's by default). The 0/1 tasks take the majority of the rounds, the MIMIC tasks the mean of
their 0-5 rubric scores divided by 5.

Every finished sample is appended to ``OUT/samples.jsonl``; a re-run does only what is missing.
This module runs an evaluation and computes its results; :mod:`.reports` writes them
(``results.md``, ``results.png``), :mod:`.compare` puts several runs side by side.
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
from . import consistency, stats
from .protocols import JudgeProtocol, get_protocol
from .reports import write_reports
from .runstate import LOG_NAME, FolderLock, SampleLog, check_fingerprint, file_sha256
from .runstate import record_key as key_of

#: the release's generation request (``generate``): greedy, 2,048 new tokens (its client times out
#: after 180 s; ours after --timeout)
GEN_PARAMS = {"max_tokens": 2048, "temperature": 0.0, "top_p": 1.0}
#: the release's FORCE_THINK=1
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
    image_ablation: str | None = None
    model_api_key: str | None = None  # sent to the policy server only
    judge_api_key: str | None = None  # sent to the judge only
    reuse_generations: Path | None = None  # a run folder whose answers are judged again


#: the settings that decide the answers (a run whose answers are reused must match them)
GENERATION_SETTINGS = ("model", "system_prompt", "force_think", "generation_params", "limit")


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
    rubric = TASKS[sample["task"]].rubric
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
    settings = {
        "model": cfg.model,
        "judge_model": cfg.judge_model,
        "protocol": protocol.name,
        "rounds": cfg.rounds,
        "system_prompt": cfg.system_prompt,
        "force_think": cfg.force_think,
        "generation_params": GEN_PARAMS,
        "judge_params": protocol.params,
        "limit": cfg.limit,
    }
    if cfg.reuse_generations is not None:
        settings["generations_from"] = str(Path(cfg.reuse_generations).resolve())
    return settings


class ReusedGenerations:
    """The answers of an earlier run (``--reuse-generations RUN``), checked against this run: the
    same tasks with the same data (sha256 of each task's parquet) and the same generation settings
    (model, system prompt, force-think, sampling, limit), else :class:`RunStateError` (exit 6)
    naming each difference."""

    def __init__(self, folder: Path, cfg: EvalConfig, tasks: list[str], hashes: dict[str, str]):
        from .runstate import RUN_NAME, RunStateError

        self.folder = Path(folder)
        run_path, log_path = self.folder / RUN_NAME, self.folder / LOG_NAME
        if not run_path.exists() or not log_path.exists():
            raise RunStateError(
                f"--reuse-generations {self.folder}: not an evaluation run (no {RUN_NAME} and {LOG_NAME})"
            )
        recorded = json.loads(run_path.read_text())
        settings, their_tasks = recorded.get("settings", {}), recorded.get("tasks", {})
        differ = []
        for task in tasks:
            if task not in their_tasks:
                differ.append(f"task {task}: not in that run (it has {', '.join(sorted(their_tasks)) or 'none'})")
            elif their_tasks[task] != hashes[task]:
                differ.append(
                    f"task data {task}: that run's sha256 {their_tasks[task][:12]}..., now {hashes[task][:12]}..."
                )
        mine = run_settings(cfg, get_protocol(cfg.protocol))
        for key in GENERATION_SETTINGS:
            if settings.get(key) != mine[key]:
                differ.append(f"{key}: that run {settings.get(key)!r}, now {mine[key]!r}")
        if differ:
            raise RunStateError(
                f"--reuse-generations {self.folder}: its answers are not answers to this run:\n  " + "\n  ".join(differ)
            )
        self.records = SampleLog.read_only(log_path)

    def answer(self, sample: dict) -> str | None:
        """The raw answer the earlier run generated for ``sample`` (None: missing or failed there)."""
        rec = self.records.get(key_of(sample))
        return None if rec is None else rec.get("raw_output")

    def unknown_ids(self, samples: list[dict]) -> list[tuple]:
        """Samples of that run that this run's data no longer has (reported, not judged)."""
        known = {key_of(s) for s in samples}
        return sorted(k for k in self.records if k not in known and k[0] in {s["task"] for s in samples})


class TooManyFailures(RuntimeError):
    """The run finished, but more samples failed than ``max_failure_rate`` allows."""


async def run_eval(cfg: EvalConfig) -> dict:
    """Run (or resume) an evaluation in ``cfg.output``, holding the folder's lock throughout."""
    protocol = get_protocol(cfg.protocol)
    tasks = resolve_tasks(cfg.tasks, cfg.data_dir)
    hashes = {t: file_sha256(cfg.data_dir / f"{t}.parquet") for t in tasks}
    reused = None
    if cfg.reuse_generations is not None:
        if Path(cfg.reuse_generations).resolve() == Path(cfg.output).resolve():
            raise ValueError("--reuse-generations must be another run's folder than --output")
        reused = ReusedGenerations(cfg.reuse_generations, cfg, tasks, hashes)
    elif not cfg.model_url:
        raise ValueError("--model-url is needed (or --reuse-generations RUN to judge an earlier run's answers)")
    with FolderLock(cfg.output):
        check_fingerprint(cfg.output, run_settings(cfg, protocol), hashes, force_new=cfg.force_new)
        results = await _run_locked(cfg, protocol, tasks, reused)
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


def ablated(samples: list[dict], mode: str) -> list[dict]:
    """The image tasks' samples again, with a blank image of the same size (``blank``: black) or
    another sample's image of the same task (``shuffle``: each takes the next sample's image)."""
    from PIL import Image

    out = []
    by_task: dict[str, list[dict]] = {}
    for s in samples:
        if s.get("images"):
            by_task.setdefault(s["task"], []).append(s)
    for group in by_task.values():
        for i, s in enumerate(group):
            if mode == "blank":
                images = []
                for im in s["images"]:
                    with Image.open(io.BytesIO(im["bytes"])) as real:
                        size = real.size
                    buf = io.BytesIO()
                    Image.new("RGB", size, (0, 0, 0)).save(buf, format="PNG")
                    images.append({"bytes": buf.getvalue()})
            elif mode == "shuffle":
                images = group[(i + 1) % len(group)]["images"]
            else:
                raise ValueError(f"--image-ablation must be blank or shuffle, got {mode!r}")
            out.append({**s, "images": images, "variant": mode})
    return out


async def _run_locked(
    cfg: EvalConfig, protocol: JudgeProtocol, tasks: list[str], reused: ReusedGenerations | None = None
) -> dict:
    samples = [s for t in tasks for s in load_samples(cfg.data_dir, t, cfg.limit)]
    variants = ablated(samples, cfg.image_ablation) if cfg.image_ablation else []
    log = SampleLog(cfg.output / LOG_NAME)
    if log.skipped_lines:
        print(
            f"medix-verl eval: {log.path}: skipped {len(log.skipped_lines)} unreadable line(s) "
            f"(line {', '.join(map(str, log.skipped_lines[:10]))}); their samples are done again",
            file=sys.stderr,
        )
    skipped_lines = len(log.skipped_lines)

    def finished(sample) -> bool:
        rec = log.done.get(key_of(sample))
        return rec is not None and rec.get("score") is not None

    todo = [s for s in samples + variants if not finished(s)]
    retried = sum(1 for s in todo if key_of(s) in log.done)
    reuse = {"run": str(reused.folder), "reused": 0, "generated": 0, "missing": 0} if reused else None
    if reused is not None:
        unknown = reused.unknown_ids(samples)
        reuse["unknown_ids"] = len(unknown)
        if unknown:
            print(
                f"medix-verl eval: {len(unknown)} sample(s) of {reused.folder} are not in this run's data (not judged): "
                + ", ".join(f"{t}/{i}" for t, i, _ in unknown[:10]),
                file=sys.stderr,
            )
    common = {"max_concurrency": cfg.max_concurrency, "retries": cfg.retries, "max_error_rate": 0.5}
    policy = None
    if cfg.model_url:
        # no cache (every round samples anew); the release judges "" as the answer of a model that said nothing
        policy_options = {"cache_size": 0, "role": "policy server", "empty_is_answer": True}
        policy = ChatClient(
            cfg.model_url, cfg.model, timeout=cfg.timeout, api_key=cfg.model_api_key, **common, **policy_options
        )
    judge = ChatClient(cfg.judge_url, cfg.judge_model, timeout=cfg.judge_timeout, api_key=cfg.judge_api_key, **common)
    counters = Counters()
    bars = {}
    if cfg.progress:
        from tqdm import tqdm

        bars["gen"] = tqdm(total=len(todo), desc="generating", unit="q", file=sys.stderr, position=0)
        bars["judge"] = tqdm(total=len(todo), desc="judging", unit="q", file=sys.stderr, position=1)
    # enough samples in flight that neither server waits for the other: while some samples are being
    # judged (3 rounds), others are being generated
    limit = asyncio.Semaphore(cfg.max_concurrency * 4)

    def show_failures():
        for bar in bars.values():
            bar.set_postfix(
                gen_failed=counters.generation_failures,
                judge_failed=counters.judge_failures,
                unreadable=counters.unparseable,
                refresh=False,
            )

    async def one(sample):
        async with limit:
            record = {
                "task": sample["task"],
                "id": str(sample["id"]),
                "kind": sample["kind"],
                "answer": sample["answer"],
            }
            if sample.get("variant"):
                record["variant"] = sample["variant"]
            try:
                raw = reused.answer(sample) if reused is not None else None
                if raw is not None:
                    reuse["reused"] += 1
                elif policy is None:
                    reuse["missing"] += 1
                    raise ChatRequestError(
                        f"no answer in {reused.folder} (missing or failed there) and no --model-url to generate it",
                        transient=False,
                        kind="missing",
                    )
                else:
                    if reuse is not None:
                        reuse["generated"] += 1
                    raw = await policy.complete(
                        generation_messages(sample, cfg.system_prompt, cfg.force_think), GEN_PARAMS
                    )
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
                score = None if failure else protocol.vote(rounds, TASKS[sample["task"]].rubric)
                if failure:
                    counters.judge_failures += 1
                record.update(raw_output=raw, prediction=prediction, rounds=rounds, score=score, failure=failure)
            log.append(record)
            if bars:
                show_failures()
                bars["judge"].update(1)

    started = time.perf_counter()
    try:
        # replicas that cannot be reached are left out (all: the run stops)
        for url, error in await judge.check_pool():
            print(f"medix-verl eval: warning: judge replica {url} does not answer ({error})", file=sys.stderr)
        await asyncio.gather(*(one(s) for s in todo))
    finally:
        for bar in bars.values():
            bar.close()
        if policy is not None:
            await policy.aclose()
        await judge.aclose()
    log.compact()
    log.close()
    results = summarize(cfg.output, tasks, samples, log.done, protocol, cfg.image_ablation)
    results["run"] = {
        "model": cfg.model,
        "judge_model": cfg.judge_model,
        "protocol": protocol.name,
        "rounds": cfg.rounds,
        "image_ablation": cfg.image_ablation,
        "samples": len(samples),
        "new_samples": len(todo),
        "resumed_samples": len(samples) + len(variants) - len(todo),
        "retried_failures": retried,
        "skipped_log_lines": skipped_lines,
        "failed_samples": sum(1 for s in samples if not finished(s)),
        "seconds": round(time.perf_counter() - started, 2),
        "unparseable_verdicts": counters.unparseable,
        "generation_failures": counters.generation_failures,
        "judge_failures": counters.judge_failures,
        "generation_requests": policy.stats.requests if policy else 0,
        "generation_tokens": {
            "prompt": policy.stats.prompt_tokens if policy else 0,
            "completion": policy.stats.completion_tokens if policy else 0,
        },
        "reused_generations": reuse,
        "judge_calls": judge.stats.calls,
        "judge_requests": judge.stats.requests,
        "judge_tokens": {"prompt": judge.stats.prompt_tokens, "completion": judge.stats.completion_tokens},
        "judge_failovers": judge.stats.failovers,
        "judge_replicas": judge.pool.summary(),
    }
    write_reports(cfg.output, results)
    return results


def summarize(
    out: Path,
    tasks: list[str],
    samples: list[dict],
    done: dict,
    protocol: JudgeProtocol | None = None,
    ablation: str | None = None,
) -> dict:
    """Per task: counts, accuracy and its 95% interval, judge consistency, the judge's agreement
    with the chosen option (multiple choice), the image ablation; overall: the unweighted mean
    over tasks and its interval. Accuracies in percent. Writes the judge/option disagreements to
    ``OUT/judge_option_disagreements.jsonl``."""
    protocol = protocol or get_protocol("release")
    per_task, scores_by_task, disagreements = {}, {}, []
    for task in tasks:
        mine = [s for s in samples if s["task"] == task]
        recs = [done[key_of(s)] for s in mine if key_of(s) in done]
        scored = [r for r in recs if r.get("score") is not None]
        values = [float(r["score"]) for r in scored]
        scores_by_task[task] = values
        rubric = TASKS[task].rubric
        entry = {
            "n": len(mine),
            "scored": len(values),
            "accuracy": pct(sum(values) / len(values)) if values else None,
            "ci95": [pct(x) for x in stats.task_interval(values)] if values else None,
            "judge_failures": sum(1 for r in recs if r.get("failure") and r.get("prediction") is not None),
            "generation_failures": sum(1 for r in recs if r.get("prediction") is None),
            **consistency.round_shares([r["rounds"] for r in scored], rubric, protocol),
        }
        agreement, disagreeing = consistency.option_agreement(mine, done, key_of)
        if agreement is not None:
            entry["judge_option_agreement"] = agreement
            disagreements += disagreeing
        if any(s.get("kind") in ("yes_no", "open") for s in mine):  # VQA: closed and open apart
            entry["by_answer_type"] = {
                kind: _accuracy_of([done.get(key_of(s)) for s in mine if answer_type(s["answer"]) == kind])
                for kind in ("closed", "open")
            }
        modalities = sorted({s["modality"] for s in mine if s.get("modality")})
        if modalities:
            entry["by_modality"] = {
                m: _accuracy_of([done.get(key_of(s)) for s in mine if s.get("modality") == m]) for m in modalities
            }
        if ablation and TASKS[task].has_images:
            entry["ablation"] = _ablation_entry(mine, done, ablation)
        per_task[task] = entry
    with open(out / "judge_option_disagreements.jsonl", "w", encoding="utf-8") as handle:
        for row in disagreements:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    accs = [v["accuracy"] for v in per_task.values() if v["accuracy"] is not None]
    scored_tasks = {t: v for t, v in scores_by_task.items() if v}
    return {
        "tasks": per_task,
        "overall": round(sum(accs) / len(accs), 2) if accs else None,
        "overall_ci95": [pct(x) for x in stats.overall_interval(scored_tasks)] if scored_tasks else None,
        "overall_over": len(accs),
    }


def pct(x: float) -> float:
    return round(100.0 * x, 2)


def answer_type(reference: str) -> str:
    """``closed`` for a yes/no reference (case, spaces and a final period aside), else ``open``:
    how medical VQA papers split VQA-RAD, SLAKE and PathVQA.

    >>> answer_type("Yes"), answer_type(" no. "), answer_type("liver"), answer_type("yes, left")
    ('closed', 'closed', 'open', 'open')
    """
    return "closed" if reference.strip().rstrip(".").strip().lower() in ("yes", "no") else "open"


def _accuracy_of(recs: list) -> dict:
    """``{n, accuracy, ci95}`` over the scored records (n: how many the number rests on)."""
    values = [float(r["score"]) for r in recs if r and r.get("score") is not None]
    return {
        "n": len(values),
        "accuracy": pct(sum(values) / len(values)) if values else None,
        "ci95": [pct(x) for x in stats.task_interval(values)] if values else None,
    }


def _ablation_entry(mine: list[dict], done: dict, mode: str) -> dict:
    real, abl = [], []
    for s in mine:
        r, a = done.get(key_of(s)), done.get(key_of({**s, "variant": mode}))
        if r and a and r.get("score") is not None and a.get("score") is not None:
            real.append(float(r["score"]))
            abl.append(float(a["score"]))
    if not real:
        return {"mode": mode, "accuracy": None, "diff": None, "ci95": None, "n_paired": 0}
    low, high, _ = stats.paired_bootstrap(real, abl)
    return {
        "mode": mode,
        "n_paired": len(real),
        "accuracy": pct(sum(abl) / len(abl)),
        "diff": pct((sum(abl) - sum(real)) / len(real)),
        "ci95": [pct(low), pct(high)],
    }
