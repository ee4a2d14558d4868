"""``medix-verl`` command line.

medix-verl score IN.jsonl -o OUT.jsonl --judge-url URL --judge-model NAME --embed-model PATH_OR_ID
medix-verl audit ROWS -o DIR --judge-url URL [--fail-above 0.1]   (the robust gates in shadow)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

from .clients.chat import ServerUnavailableError
from .clients.embedder import EmbedderError
from .jsonl import JsonlError, iter_objects
from .reward import settings as reward_settings

EXIT_BAD_INPUT = 2
EXIT_JUDGE = 3
EXIT_EMBED = 4
EXIT_FAILURES = 5  # eval: the run finished, but more samples failed than --max-failure-rate allows
EXIT_BUSY = 6  # eval: the output folder is in use, or holds another run


InputError = JsonlError


def read_rows(path: Path) -> list[dict]:
    """Read score input rows; a bad line raises :class:`InputError` naming file and line."""
    rows = []
    for lineno, row in iter_objects(path):
        for key in ("response", "ground_truth"):
            if key not in row:
                raise InputError(f"{path}:{lineno}: missing required field {key!r} (row id={row.get('id')!r})")
            if not isinstance(row[key], str):
                raise InputError(
                    f"{path}:{lineno}: field {key!r} must be a string, got {type(row[key]).__name__} "
                    f"(row id={row.get('id')!r})"
                )
        rows.append(row)
    return rows


def _reward_settings(args: argparse.Namespace, command: str):
    """The reward settings of the command's options, or None after saying what is wrong."""
    from .reward.settings import RewardSettings, kwargs_from_args

    try:
        return RewardSettings.from_kwargs(kwargs_from_args(args), where="option")
    except (ValueError, FileNotFoundError, ImportError) as exc:
        print(f"medix-verl {command}: {exc}", file=sys.stderr)
        return None


def _scorer(args: argparse.Namespace, command: str):
    """A ``MedixScorer`` with the command's reward options, or None after saying what is wrong."""
    from .reward.scorer import MedixScorer

    settings = _reward_settings(args, command)
    return None if settings is None else MedixScorer(settings)


def _score_rows(scorer, rows: list[dict], command: str, **options):
    """``scorer.score_many(rows, **options)`` after checking the judge's replicas, the scorer closed
    after: (the results, 0), or (None, the exit status) after saying which service failed."""

    async def run():
        try:
            await check_judge_replicas(scorer.judge, f"medix-verl {command}")
            return await scorer.score_many(rows, **options)
        finally:
            await scorer.aclose()

    try:
        return asyncio.run(run()), 0
    except ServerUnavailableError as exc:
        print(f"medix-verl {command}: judge failed: {exc}", file=sys.stderr)
        return None, EXIT_JUDGE
    except EmbedderError as exc:
        print(f"medix-verl {command}: embedder failed: {exc}", file=sys.stderr)
        return None, EXIT_EMBED


def _cmd_score(args: argparse.Namespace) -> int:
    try:
        rows = read_rows(Path(args.input))
    except InputError as exc:
        print(f"medix-verl score: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if (scorer := _scorer(args, "score")) is None:
        return EXIT_BAD_INPUT
    started = time.perf_counter()

    progress = None
    if not args.quiet:
        from tqdm import tqdm

        progress = tqdm(total=len(rows), desc="scoring", unit="row", file=sys.stderr, disable=None)

    try:
        results, failed = _score_rows(scorer, rows, "score", on_done=(progress.update if progress else None))
    finally:
        if progress is not None:
            progress.close()
    if failed:
        return failed
    elapsed = time.perf_counter() - started

    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        for row, result in zip(rows, results):
            handle.write(json.dumps({**row, **result}, ensure_ascii=False) + "\n")
    tmp.replace(out)
    _print_summary(scorer, len(rows), elapsed)
    return 0


def _cmd_audit(args: argparse.Namespace) -> int:
    from .reward.audit import audit_record, read_audit_rows, summarize, table

    try:
        rows = read_audit_rows(args.input)
    except InputError as exc:
        print(f"medix-verl audit: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.fail_above is not None and not 0.0 <= args.fail_above <= 1.0:
        print(f"medix-verl audit: --fail-above must be a rate in [0, 1], got {args.fail_above}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if (scorer := _scorer(args, "audit")) is None:
        return EXIT_BAD_INPUT
    started, settings = time.perf_counter(), scorer.settings
    scored, failed = _score_rows(scorer, rows, "audit", detailed=True)
    if failed:
        return failed
    records = [
        audit_record(row, result, sample, settings.max_answer_chars)
        for row, (result, sample) in zip(rows, scored, strict=True)
    ]
    summary = summarize(records, preset=settings.preset)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "rows.jsonl.tmp", "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    (out / "rows.jsonl.tmp").replace(out / "rows.jsonl")
    (out / "audit.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    print(table(summary), file=sys.stderr)
    _print_summary(scorer, len(rows), time.perf_counter() - started)
    if args.fail_above is not None and summary["rate"] > args.fail_above:
        print(
            f"medix-verl audit: rate {summary['rate']:.3f} of credited answers flagged is above --fail-above "
            f"{args.fail_above:g}",
            file=sys.stderr,
        )
        return 1
    return 0


async def check_judge_replicas(client, command: str) -> None:
    """Before any work, with several judge replicas: those that cannot be reached are named and
    left out (the others score); none reachable is :class:`ServerUnavailableError`."""
    if client is None:
        return
    down = await client.check_pool()
    for url, error in down:
        print(
            f"{command}: warning: judge replica {url} does not answer ({error}); scoring with the other "
            f"{len(client.pool) - len(down)} (it is probed again after a cool-down)",
            file=sys.stderr,
        )


def replica_lines(client) -> list[str]:
    """One line per judge replica (requests, errors, mean latency, ejections), for a pool."""
    if client is None or len(client.pool) < 2:
        return []
    return [
        f"  replica {i} {r['url']}: requests={r['requests']} errors={r['errors']} "
        f"latency mean={r['latency_mean_s']:.3f}s ejections={r['ejections']}"
        f"{'' if r['in_service'] else ' (out: ' + str(r['last_error']) + ')'}"
        for i, r in enumerate(client.pool.summary())
    ]


def _print_summary(scorer, n: int, elapsed: float) -> None:
    lines = [f"scored {n} rows in {elapsed:.2f}s ({n / elapsed if elapsed else 0:.1f} rows/s)"]
    means = scorer.means()
    if means:
        lines.append("means: " + "  ".join(f"{k}={v:.4f}" for k, v in means.items()))
    if scorer.judge is not None:
        st = scorer.judge.stats.as_dict()
        lines.append(
            "judge {}: calls={calls} requests={requests} cache_hits={cache_hits} dedup_hits={dedup_hits} "
            "retries={retries} failovers={failovers} errors={errors} latency mean={latency_mean_s:.3f}s "
            "p95={latency_p95_s:.3f}s".format(scorer.judge.url, **st)
        )
        lines += replica_lines(scorer.judge)
    emb = scorer.embedder.stats
    lines.append(
        f"embedder {scorer.embedder.describe()}: texts={emb['texts']} cache_hits={emb['cache_hits']} "
        f"batches={emb['batches']} encoded={emb['encoded']}"
    )
    print("\n".join(lines), file=sys.stderr)


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from .clients.embedder import LocalEmbedder, RemoteEmbedder
    from .reward.calibrate import DEFAULT_PAIRS, calibrate, read_pairs, report

    try:
        pairs = read_pairs(args.pairs or DEFAULT_PAIRS)
    except (OSError, ValueError) as exc:
        print(f"medix-verl calibrate-embed: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if (cfg := _reward_settings(args, "calibrate-embed")) is None:
        return EXIT_BAD_INPUT
    model = cfg.embed_model
    if cfg.embed_url:
        embedder = RemoteEmbedder(cfg.embed_url, model)
    else:
        embedder = LocalEmbedder(model, device=cfg.embed_device)
    try:
        cal = calibrate(pairs, embedder)
    except EmbedderError as exc:
        print(f"medix-verl calibrate-embed: {exc}", file=sys.stderr)
        return EXIT_EMBED
    print(f"model: {model}")
    print(report(cal, pairs, current=args.current))
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "model": model,
                    "pairs": len(pairs),
                    "auc": cal.auc,
                    "best_threshold": cal.best_threshold,
                    "tpr": cal.best_tpr,
                    "fpr": cal.best_fpr,
                    "roc": [
                        {"threshold": float(t), "tpr": float(a), "fpr": float(b)}
                        for t, a, b in zip(cal.thresholds, cal.tpr, cal.fpr)
                    ],
                },
                indent=2,
            )
            + "\n"
        )
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from .eval.runner import TooManyFailures, run_eval
    from .eval.runstate import RunStateError

    model = args.model
    if args.reuse_generations and not model:  # that run's model, as recorded
        run_path = Path(args.reuse_generations) / "run.json"
        if not run_path.exists():
            print(
                f"medix-verl eval: --reuse-generations {args.reuse_generations}: not an evaluation run (no run.json)",
                file=sys.stderr,
            )
            return EXIT_BUSY
        model = json.loads(run_path.read_text()).get("settings", {}).get("model")
    if not model:
        print("medix-verl eval: --model is needed (the served name of the evaluated model)", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not args.model_url and not args.reuse_generations:
        print("medix-verl eval: --model-url is needed (or --reuse-generations RUN)", file=sys.stderr)
        return EXIT_BAD_INPUT
    cfg = _eval_config(
        args,
        model_url=args.model_url,
        model=model,
        progress=not args.quiet,
        force_new=args.force_new,
        image_ablation=args.image_ablation,
        reuse_generations=Path(args.reuse_generations) if args.reuse_generations else None,
    )
    try:
        results = asyncio.run(run_eval(cfg))
    except RunStateError as exc:
        print(f"medix-verl eval: {exc}", file=sys.stderr)
        return EXIT_BUSY
    except (FileNotFoundError, ValueError) as exc:
        print(f"medix-verl eval: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ServerUnavailableError as exc:
        print(f"medix-verl eval: server failed: {exc}", file=sys.stderr)
        return EXIT_JUDGE
    except TooManyFailures as exc:
        print((Path(args.output) / "results.md").read_text())
        print(f"medix-verl eval: {exc}", file=sys.stderr)
        return EXIT_FAILURES
    print((Path(args.output) / "results.md").read_text())
    run = results["run"]
    print(
        f"{run['new_samples']} samples evaluated ({run['retried_failures']} earlier failures retried), "
        f"{run['resumed_samples']} resumed; "
        f"{run['unparseable_verdicts']} unparseable verdicts re-asked; {run['judge_failures']} judge failures; "
        f"{run['generation_failures']} generation failures; reports in {args.output}",
        file=sys.stderr,
    )
    return 0


def _cmd_eval_compare(args: argparse.Namespace) -> int:
    from .eval.compare import compare

    try:
        print(compare([Path(d) for d in args.runs], Path(args.output) if args.output else None), end="")
    except (FileNotFoundError, ValueError, KeyError) as exc:
        print(f"medix-verl eval-compare: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


def _add_judging_arguments(p: argparse.ArgumentParser) -> None:
    """The options ``eval`` and ``eval-series`` share: data, judge, protocol, generation, limits."""
    p.add_argument("--tasks", default="all", help="all | text | image | T1,T2,... (default all)")
    p.add_argument("--data-dir", required=True, help="folder with <task>.parquet from data_prep.eval_sets")
    p.add_argument(
        "--judge-url", required=True, help="OpenAI base URL serving the judge, or its replicas as a comma list"
    )
    p.add_argument("--judge-model", default="Qwen/Qwen3-14B", help="served judge name (default Qwen/Qwen3-14B)")
    p.add_argument("--max-concurrency", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3, help="judge rounds in one conversation (default 3)")
    p.add_argument(
        "--protocol",
        default="release",
        choices=["release", "medix"],
        help="judge protocol: release (the MediX-R1 release's, byte for byte; default) or medix (the project's "
        "own stricter judge, opt-in)",
    )
    p.add_argument(
        "--force-think", action="store_true", help="append ' <think>' to every question (the release's FORCE_THINK=1)"
    )
    p.add_argument(
        "--max-failure-rate",
        type=float,
        default=0.02,
        help="exit 5 if more than this share of samples failed after their retries (default 0.02); a rerun retries them",
    )
    p.add_argument("--system-prompt", help="system prompt for the evaluated model (default none, as released)")
    p.add_argument("--limit", type=int, help="first N samples of each task")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per generation request")
    p.add_argument("--judge-timeout", type=float, default=120.0, help="seconds per judge request")


#: the options of ``eval`` and ``eval-series`` that go into ``EvalConfig`` as they are
_SHARED_EVAL_OPTIONS = (
    "tasks judge_url judge_model max_concurrency rounds system_prompt limit timeout judge_timeout protocol "
    "force_think max_failure_rate"
).split()


def _eval_config(args: argparse.Namespace, **own):
    """An ``EvalConfig`` from the options ``eval`` and ``eval-series`` share
    (:func:`_add_judging_arguments`) and the API keys, plus the command's ``own`` fields."""
    from .eval.runner import EvalConfig

    shared = {name: getattr(args, name) for name in _SHARED_EVAL_OPTIONS}
    return EvalConfig(
        **shared,
        data_dir=Path(args.data_dir),
        output=Path(args.output),
        model_api_key=os.environ.get("MEDIX_MODEL_API_KEY") or None,
        judge_api_key=os.environ.get("MEDIX_JUDGE_API_KEY") or None,
        **own,
    )


def _cmd_eval_series(args: argparse.Namespace) -> int:
    from .eval.runstate import RunStateError
    from .eval.series import SeriesError, main_log, run_series

    base = _eval_config(args, model_url="", model="")
    try:
        series = asyncio.run(
            run_series(Path(args.checkpoints), base, args.serve, every=args.every, ready_timeout=args.ready_timeout,
                       log=main_log)
        )  # fmt: skip
    except RunStateError as exc:
        main_log(str(exc))
        return EXIT_BUSY
    except (SeriesError, FileNotFoundError, ValueError) as exc:
        main_log(str(exc))
        return EXIT_BAD_INPUT
    except ServerUnavailableError as exc:
        main_log(f"server failed: {exc}")
        return EXIT_JUDGE
    main_log(f"series of {len(series['overall'])} step(s) in {args.output}/series.json and series.png")
    return EXIT_FAILURES if series["failed_steps"] else 0


def _cmd_preflight(args: argparse.Namespace) -> int:
    from .integration.preflight import CHECKS

    if args.list:
        for check in CHECKS:
            kind = "keys" if check.config else "layout"
            print(f"{check.name:22} {kind:6}  {check.where}")
        return 0
    if not args.recipe:
        print("medix-verl preflight: name a recipe (or --list)", file=sys.stderr)
        return EXIT_BAD_INPUT
    from .integration.layout import LayoutError, recipe_overrides
    from .integration.preflight import check_overrides

    try:
        overrides = recipe_overrides(args.recipe, extra=args.overrides)
    except LayoutError as exc:
        print(f"medix-verl preflight: {args.recipe}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return check_overrides(overrides, "medix-verl preflight")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medix-verl", description="MediX-R1 on verl: reward scoring and tools.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("score", help="score rollouts offline with the composite reward (JSONL in, JSONL out)")
    p.add_argument(
        "input", help="JSONL rows with 'response', 'ground_truth' ('<TAG> answer'), optional id/question/data_source"
    )
    p.add_argument("-o", "--output", required=True, help="JSONL out: the input fields plus the seven reward keys")
    reward_settings.add_arguments(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_score)

    a = sub.add_parser(
        "audit",
        help="reward-hacking audit of rollouts on disk: score under a preset, the robust gates in shadow",
    )
    a.add_argument(
        "input",
        help="JSONL rows as `score` reads them (with 'id'), or verl's trainer.rollout_data_dir (a folder or one "
        "<step>.jsonl)",
    )
    a.add_argument("-o", "--output", required=True, help="folder: rows.jsonl and audit.json")
    a.add_argument(
        "--fail-above", type=float, help="exit 1 when the share of credited answers the gates flag is above this"
    )
    reward_settings.add_arguments(a)
    a.set_defaults(func=_cmd_audit)

    c = sub.add_parser("calibrate-embed", help="ROC and best embedding threshold on labelled answer pairs")
    c.add_argument("--pairs", help="JSONL of {a, b, same: 0|1, category}; default: the shipped medical pair set")
    reward_settings.add_arguments(c, keys=("embed_model", "embed_url", "embed_device"))
    c.add_argument(
        "--current", type=float, default=0.8, help="threshold to report alongside (default 0.8, the paper's)"
    )
    c.add_argument("--json", help="also write the ROC and the best threshold to this file")
    c.set_defaults(func=_cmd_calibrate)

    e = sub.add_parser("eval", help="reference-based LLM-as-judge evaluation over the benchmarks")
    _add_judging_arguments(e)
    e.add_argument(
        "--model-url",
        help="OpenAI base URL serving the evaluated model (with --reuse-generations: only for answers missing there)",
    )
    e.add_argument("--model", help="served name of the evaluated model (with --reuse-generations: that run's)")
    e.add_argument(
        "--reuse-generations",
        metavar="RUN",
        help="judge the answers of an earlier run folder again (same tasks, data and generation settings, else "
        "exit 6): nothing is sent to the policy server",
    )
    e.add_argument("--output", required=True, help="output folder (samples.jsonl, results.json/.md/.png)")
    e.add_argument(
        "--image-ablation",
        choices=["blank", "shuffle"],
        help="also answer the image tasks with a blank image of the same size, or another sample's image of "
        "the task, and report the accuracy with it and the difference",
    )
    e.add_argument(
        "--force-new",
        action="store_true",
        help="the output folder holds another run: move it to OUTPUT/previous-<time>/ and start again",
    )
    e.add_argument("-q", "--quiet", action="store_true")
    e.set_defaults(func=_cmd_eval)

    es = sub.add_parser("eval-series", help="evaluate a training run's checkpoints, one judge, accuracy per step")
    es.add_argument("--checkpoints", required=True, help="folder of global_step_N (merged: actor/huggingface_merged)")
    es.add_argument("--every", type=int, default=1, help="every K-th checkpoint by step (default 1: all)")
    es.add_argument(
        "--serve",
        required=True,
        help="command that serves one checkpoint, with {model}, {port} and {name}, e.g. "
        '"vllm serve {model} --served-model-name {name} --port {port} --tensor-parallel-size 4"',
    )
    es.add_argument("--ready-timeout", type=float, default=900.0, help="seconds to wait for the server (default 900)")
    es.add_argument("--output", required=True, help="series folder: step_N/ runs, series.json, series.png")
    _add_judging_arguments(es)
    es.set_defaults(func=_cmd_eval_series)

    pf = sub.add_parser(
        "preflight",
        help="the checks every training run passes first, for a recipe in this environment (GPUS_PER_NODE, ...)",
    )
    pf.add_argument("recipe", nargs="?", help="recipes/medix_r1_qwen_7b.sh or its name")
    pf.add_argument("overrides", nargs="*", help="extra hydra overrides, as on the recipe's command line")
    pf.add_argument("--list", action="store_true", help="list the checks and the verl code each answers to")
    pf.set_defaults(func=_cmd_preflight)

    ec = sub.add_parser("eval-compare", help="put several evaluation runs side by side")
    ec.add_argument("runs", nargs="+", help="output folders of medix-verl eval")
    ec.add_argument("-o", "--output", help="write compare.md and compare.png here")
    ec.set_defaults(func=_cmd_eval_compare)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
