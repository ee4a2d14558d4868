"""Several evaluation runs side by side (``medix-verl eval-compare``): accuracies per task, paired
differences with intervals where two runs answered the same samples, and the judges' agreement
where they judged the same answers."""

from __future__ import annotations

import json
from pathlib import Path

from data_prep.eval_sets import TASKS

from . import stats
from .reports import ci_text, plot_bars
from .runner import pct
from .runstate import LOG_NAME


def _load_run(folder: Path) -> tuple[dict, dict, dict, dict]:
    """results.json, run.json (or {}), the scored samples {(task, id): score} and their generation
    text {(task, id): raw_output} of a run folder."""
    path = Path(folder) / "results.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found (run medix-verl eval first)")
    run_path = Path(folder) / "run.json"
    run = json.loads(run_path.read_text()) if run_path.exists() else {}
    scores, outputs = {}, {}
    log = Path(folder) / LOG_NAME
    if log.exists():
        for line in log.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("score") is not None and not rec.get("variant"):
                scores[(rec["task"], str(rec["id"]))] = float(rec["score"])
                outputs[(rec["task"], str(rec["id"]))] = rec.get("raw_output")
    return json.loads(path.read_text()), run, scores, outputs


def paired_comparison(a_dir: Path, b_dir: Path) -> dict:
    """Compare two runs on the samples both scored: per task and overall (see :mod:`.stats`)."""
    res_a, run_a, sa, out_a = _load_run(a_dir)
    res_b, run_b, sb, out_b = _load_run(b_dir)
    common = [t for t in res_a["tasks"] if t in res_b["tasks"]]
    ha, hb = run_a.get("tasks", {}), run_b.get("tasks", {})
    differ = [t for t in common if t in ha and t in hb and ha[t] != hb[t]]
    if differ:
        raise ValueError(
            f"{a_dir} and {b_dir} evaluated different data for task(s) {differ} (run.json hashes differ): "
            "their accuracies are not comparable"
        )
    unverified = [t for t in common if t not in ha or t not in hb]
    tasks, pvals, per_task_pairs, same_binary = {}, {}, {}, ([], [])
    for task in common:
        ids = sorted(k for k in sa if k[0] == task and k in sb)
        a = [sa[k] for k in ids]
        b = [sb[k] for k in ids]
        if not ids:
            continue
        per_task_pairs[task] = (a, b)
        low, high, p_boot = stats.paired_bootstrap(a, b)
        binary = stats.is_binary(a + b)
        p = stats.mcnemar_exact(a, b) if binary else p_boot
        pvals[task] = p
        tasks[task] = {
            "n_paired": len(ids),
            "a": pct(sum(a) / len(a)),
            "b": pct(sum(b) / len(b)),
            "diff": pct((sum(b) - sum(a)) / len(a)),
            "ci95": [pct(low), pct(high)],
            "p_value": p,
            "test": "mcnemar_exact" if binary else "paired_bootstrap",
        }
        # the same answers judged twice (a re-judge: another judge, protocol or version): how the
        # two judges agree
        same = [k for k in ids if out_a.get(k) is not None and out_a.get(k) == out_b.get(k)]
        if same:
            rubric = TASKS[task].rubric if task in TASKS else False
            va, vb = [sa[k] for k in same], [sb[k] for k in same]
            tasks[task]["judge_agreement"] = stats.verdict_agreement(va, vb, levels=6 if rubric else None)
            if not rubric:
                same_binary[0].extend(va)
                same_binary[1].extend(vb)
    for task, significant in stats.holm(pvals).items():
        tasks[task]["significant"] = significant
    overall = None
    if tasks:
        # the same stratified bootstrap as the overall interval of one run, over the paired differences
        low, high = stats.overall_interval({t: [y - x for x, y in zip(a, b)] for t, (a, b) in per_task_pairs.items()})
        overall = {
            "n_paired": sum(v["n_paired"] for v in tasks.values()),
            "a": round(sum(v["a"] for v in tasks.values()) / len(tasks), 2),
            "b": round(sum(v["b"] for v in tasks.values()) / len(tasks), 2),
            "diff": round(sum(v["diff"] for v in tasks.values()) / len(tasks), 2),
            "ci95": [pct(low), pct(high)],
        }
    if overall is not None and same_binary[0]:
        overall["judge_agreement"] = stats.verdict_agreement(*same_binary)  # the 0/1 tasks, pooled
    return {"a": str(a_dir), "b": str(b_dir), "tasks": tasks, "overall": overall, "unverified_task_data": unverified}


def _agreement(v: dict | None) -> str:
    if not v:
        return ""
    kappa = "n/a" if v["kappa"] is None else f"{v['kappa']:.3f}"
    kind = "" if v["kappa_kind"] == "cohen" else " (quadratic weighted)"
    return f"{v['n']}, {v['agreement']:.1%}, {kappa}{kind}"


def compare(dirs: list[Path], out: Path | None) -> str:
    """Side-by-side accuracies of several runs; for exactly two, the paired comparison too."""
    runs = {}
    for d in dirs:
        name = Path(d).name or str(d)
        if name in runs:  # two runs in folders of the same name: tell them apart by path
            name = str(d)
        runs[name] = _load_run(Path(d))[0]
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
    paired = None
    if len(dirs) == 2:
        paired = paired_comparison(Path(dirs[0]), Path(dirs[1]))
        a, b = list(runs)
        rows = [
            "",
            f"Paired on the samples both runs scored (B = {b} minus A = {a}; p: exact McNemar for 0/1 tasks, "
            "paired bootstrap for rubric tasks; * significant after Holm over tasks at 0.05):",
            "",
            "| task | n paired | A | B | B - A | 95% CI | p | judges agree (same answers: n, share, kappa) |",
            "|---|---:|---:|---:|---:|---|---:|---|",
        ]
        for task, v in paired["tasks"].items():
            star = " *" if v.get("significant") else ""
            rows.append(
                f"| {task} | {v['n_paired']} | {v['a']:.2f} | {v['b']:.2f} | {v['diff']:+.2f}{star} | "
                f"{ci_text(v['ci95'])} | {v['p_value']:.3g} | {_agreement(v.get('judge_agreement'))} |"
            )
        if paired["overall"]:
            o = paired["overall"]
            rows.append(
                f"| **overall** | {o['n_paired']} | {o['a']:.2f} | {o['b']:.2f} | {o['diff']:+.2f} | {ci_text(o['ci95'])} | | "
                f"{_agreement(o.get('judge_agreement'))} |"
            )
        if paired["unverified_task_data"]:
            rows.append("")
            rows.append(f"(task data not verifiable, no run.json hash: {', '.join(paired['unverified_task_data'])})")
        table += "\n".join(rows) + "\n"
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "compare.md").write_text(table)
        if paired is not None:
            (out / "compare.json").write_text(json.dumps(paired, indent=2) + "\n")
        plot_bars(runs, out / "compare.png", title="MediX-R1 evaluation: comparison")
    return table
