"""An evaluation's reports: ``results.json`` (written by the run), ``results.md`` (tables with
intervals, closed/open and per-modality splits, image ablations, the judge's replicas) and
``results.png`` (accuracy per task with its interval and n, closed/open panel)."""

from __future__ import annotations

import json
from pathlib import Path


def _num(v, fmt="{:.2f}") -> str:
    return "n/a" if v is None else fmt.format(v)


def _table(header: str, align: str, rows: list[str]) -> list[str]:
    """A markdown table and a blank line after it, or nothing without rows."""
    return [header, align, *rows, ""] if rows else []


def ci_text(ci) -> str:
    return "n/a" if not ci else f"[{ci[0]:.2f}, {ci[1]:.2f}]"


def write_reports(out: Path, results: dict, title: str | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        f"# {title or 'MediX-R1 evaluation'}",
        "",
        "| task | n | accuracy | 95% CI | rounds disagree | flipped | judge = option | judge failures | generation failures |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for task, v in results["tasks"].items():
        lines.append(
            f"| {task} | {v['n']} | {_num(v['accuracy'])} | {ci_text(v.get('ci95'))} | "
            f"{_num(v.get('rounds_disagree'), '{:.1%}')} | {_num(v.get('flipped'), '{:.1%}')} | "
            f"{_num(v.get('judge_option_agreement'), '{:.1%}')} | {v['judge_failures']} | {v['generation_failures']} |"
        )
    lines += [
        f"| **overall** (unweighted mean of {results['overall_over']} tasks) | | **{_num(results['overall'])}** | "
        f"{ci_text(results.get('overall_ci95'))} | | | | | |",
        "",
    ]
    tasks = results["tasks"]

    def cell(entry) -> str:  # n | accuracy | interval
        return f"{entry['n']} | {_num(entry['accuracy'])} | {ci_text(entry['ci95'])}"

    lines += _table(
        "| VQA task | closed (yes/no) n | closed accuracy | closed 95% CI | open n | open accuracy | open 95% CI |",
        "|---|---:|---:|---|---:|---:|---|",
        [f"| {t} | {cell(v['by_answer_type']['closed'])} | {cell(v['by_answer_type']['open'])} |"
         for t, v in tasks.items() if v.get("by_answer_type")],
    )  # fmt: skip
    lines += _table(
        "| task | modality | n | accuracy | 95% CI |",
        "|---|---|---:|---:|---|",
        [f"| {t} | {m} | {cell(e)} |" for t, v in tasks.items() for m, e in (v.get("by_modality") or {}).items()],
    )
    lines += _table(
        "| image task | accuracy | ablation | accuracy with it | difference | 95% CI |",
        "|---|---:|---|---:|---:|---|",
        [f"| {t} | {_num(v['accuracy'])} | {ab['mode']} | {_num(ab['accuracy'])} | {_num(ab['diff'])} | {ci_text(ab['ci95'])} |"
         for t, v in tasks.items() if (ab := v.get("ablation"))],
    )  # fmt: skip
    run = results.get("run")
    if run:
        lines.append(
            f"Judge: {run.get('judge_calls', 0)} calls, {run.get('judge_requests', 0)} requests, "
            f"{run.get('judge_tokens', {}).get('prompt', 0)} prompt + {run.get('judge_tokens', {}).get('completion', 0)} "
            f"completion tokens; policy: {run.get('generation_requests', 0)} requests, "
            f"{run.get('generation_tokens', {}).get('completion', 0)} completion tokens (this invocation)."
        )
        lines.append("")
        replicas = run.get("judge_replicas") or []
        if len(replicas) > 1:
            lines += [
                "| judge replica | requests | errors | mean latency (s) | ejections | in service |",
                "|---|---:|---:|---:|---:|---|",
            ]
            lines += [
                f"| {r['url']} | {r['requests']} | {r['errors']} | {r['latency_mean_s']:.3f} | {r['ejections']} | "
                f"{'yes' if r['in_service'] else 'no: ' + str(r['last_error'])[:80]} |"
                for r in replicas
            ]
            lines.append("")
    (out / "results.md").write_text("\n".join(lines))
    plot_bars({"run": results}, out / "results.png", title=title or "MediX-R1 evaluation")


def plot_bars(runs: dict[str, dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(t for r in runs.values() for t in r["tasks"]))
    labels = tasks + ["overall"]
    if len(runs) == 1:  # how many samples each number rests on
        (res,) = runs.values()
        labels = [f"{t}\n(n={(res['tasks'][t] or {}).get('scored', 0)})" for t in tasks] + ["overall"]
    width = 0.8 / max(1, len(runs))
    split = {}
    if len(runs) == 1:
        split = {t: v["by_answer_type"] for t, v in res["tasks"].items() if v.get("by_answer_type")}
    main_width = max(8, 0.7 * len(labels) * max(1, len(runs)) + 2)
    if split:
        fig, (ax, ax_split) = plt.subplots(
            1,
            2,
            figsize=(main_width + 1.4 * len(split) + 2, 5.5),
            gridspec_kw={"width_ratios": [len(labels), 1.6 * len(split)]},
        )
        _plot_split(ax_split, split)
    else:
        fig, ax = plt.subplots(figsize=(main_width, 5.5))
    for k, (name, res) in enumerate(runs.items()):
        values = [(res["tasks"].get(t) or {}).get("accuracy") for t in tasks] + [res.get("overall")]
        cis = [(res["tasks"].get(t) or {}).get("ci95") for t in tasks] + [res.get("overall_ci95")]
        xs = [i + (k - (len(runs) - 1) / 2) * width for i in range(len(labels))]
        texts = ["n/a" if v is None else f"{v:.1f}" for v in values]
        _bars_with_intervals(ax, xs, values, cis, width, name, texts, fontsize=8)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=40, ha="right")
    ax.set_ylabel("accuracy (%), 95% CI")
    ax.set_ylim(0, 110)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    if len(runs) > 1:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _bars_with_intervals(ax, xs, values, cis, width, label, texts, *, fontsize) -> None:
    """Bars of ``values`` (None: 0) with their 95% intervals as error bars, each with a text on top."""
    heights = [v or 0 for v in values]
    errors = [
        [max(0.0, h - ci[0]) if ci else 0 for h, ci in zip(heights, cis)],
        [max(0.0, ci[1] - h) if ci else 0 for h, ci in zip(heights, cis)],
    ]
    bars = ax.bar(xs, heights, width, label=label, yerr=errors, capsize=3, error_kw={"elinewidth": 1})
    for bar, text in zip(bars, texts):
        ax.annotate(
            text,
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=fontsize,
            xytext=(0, 2),
            textcoords="offset points",
        )


def _plot_split(ax, split: dict) -> None:
    """Closed (yes/no) and open questions of each VQA task side by side, with intervals and n."""
    for k, kind in enumerate(("closed", "open")):
        xs = [i + (k - 0.5) * 0.4 for i in range(len(split))]
        entries = [by[kind] for by in split.values()]
        values, cis = [e["accuracy"] for e in entries], [e["ci95"] for e in entries]
        _bars_with_intervals(ax, xs, values, cis, 0.4, kind, [f"n={e['n']}" for e in entries], fontsize=7)
    ax.set_xticks(range(len(split)))
    ax.set_xticklabels(list(split), rotation=40, ha="right")
    ax.set_ylim(0, 110)
    ax.set_title("VQA: closed (yes/no) vs open")
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
