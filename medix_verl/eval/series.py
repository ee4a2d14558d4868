"""Benchmark accuracy across a training run's checkpoints (``medix-verl eval-series``).

For each ``global_step_N`` of a checkpoint folder (every ``every``-th, by step) that holds a
Hugging Face model (verl's FSDP shards merged by ``recipes/merge_checkpoint.sh``:
``actor/huggingface_merged``; or a folder with a ``config.json``), the series starts the policy
server with the user's command (``--serve``, a template with ``{model}``, ``{name}``, ``{port}``),
waits until it answers ``/v1/models``, evaluates with one judge into ``OUT/step_N/`` (an ordinary
``medix-verl eval`` run: locked, fingerprinted, resumable, exactly once), stops the server, and
goes on. A step whose run finished without failures is not served again. ``OUT/series.json``
and ``OUT/series.png`` hold each task's accuracy with its 95% interval, and the overall, against
the step.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

from .runner import EvalConfig, TooManyFailures, run_eval

_STEP = re.compile(r"^global_step_(\d+)$")
#: where a merged model may sit inside a global_step_N folder, in the order they are looked for
MODEL_PLACES = ("actor/huggingface_merged", "huggingface_merged", "actor/huggingface", "huggingface", ".")


class SeriesError(ValueError):
    """The checkpoint folder or the serve command cannot make a series."""


def find_checkpoints(folder: Path, every: int = 1) -> list[tuple[int, Path]]:
    """``(step, model folder)`` of each ``global_step_N`` with a Hugging Face model (a
    ``config.json`` and weights), every ``every``-th by step. A step folder without one is an
    error naming it (merge it first), not skipped silently."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SeriesError(f"{folder}: not a folder of checkpoints")
    steps = sorted((int(m.group(1)), p) for p in folder.iterdir() if p.is_dir() and (m := _STEP.match(p.name)))
    if not steps:
        raise SeriesError(f"{folder}: no global_step_N folders")
    out, unmerged = [], []
    for step, path in steps[:: max(1, int(every))]:
        model = next(
            (path / place for place in MODEL_PLACES if _is_hf_model(path / place)),
            None,
        )
        if model is None:
            unmerged.append(path)
        else:
            out.append((step, model.resolve()))
    if unmerged:
        raise SeriesError(
            "no merged Hugging Face model in "
            + ", ".join(str(p) for p in unmerged)
            + " (bash recipes/merge_checkpoint.sh STEP_DIR writes actor/huggingface_merged)"
        )
    return out


def _is_hf_model(path: Path) -> bool:
    return (path / "config.json").is_file() and any(
        path.glob(pattern) for pattern in ("*.safetensors", "*.bin", "*.safetensors.index.json")
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PolicyServer:
    """The policy server of one checkpoint, from the ``--serve`` template, in its own process
    group (stopped with everything it started)."""

    def __init__(self, template: str, model: Path, name: str, port: int, log: Path, ready_timeout: float):
        self.command = template.format(model=shlex.quote(str(model)), name=shlex.quote(name), port=port)
        self.url = f"http://127.0.0.1:{port}/v1"
        self.log, self.ready_timeout = log, ready_timeout
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> PolicyServer:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.log, "ab")
        self.proc = subprocess.Popen(
            self.command, shell=True, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
        handle.close()
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SeriesError(
                    f"the policy server exited ({self.proc.returncode}) before answering: {self.command} "
                    f"(see {self.log})"
                )
            try:
                with urllib.request.urlopen(self.url + "/models", timeout=5):
                    return self
            except OSError:
                time.sleep(1)
        self.__exit__()
        raise SeriesError(
            f"the policy server did not answer at {self.url} within {self.ready_timeout:g}s (see {self.log})"
        )

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(self.proc.pid, signal.SIGKILL)


def finished(out: Path, cfg: EvalConfig) -> bool:
    """A step's run that ended with every sample scored, under the same settings (else it is run:
    ``medix-verl eval`` refuses a folder of another run, naming the differences)."""
    from .protocols import get_protocol
    from .runner import run_settings

    path, run_path = out / "results.json", out / "run.json"
    if not path.exists() or not run_path.exists():
        return False
    recorded = json.loads(run_path.read_text()).get("settings")
    if recorded != json.loads(json.dumps(run_settings(cfg, get_protocol(cfg.protocol)))):
        return False
    run = json.loads(path.read_text()).get("run") or {}
    return run.get("failed_samples", 1) == 0


async def run_series(
    checkpoints: Path, base: EvalConfig, serve: str, *, every: int = 1, ready_timeout: float = 900.0, log=print
) -> dict:
    """Evaluate every checkpoint into ``base.output/step_N`` and write the series' reports."""
    if "{model}" not in serve or "{port}" not in serve:
        raise SeriesError(f"--serve must contain {{model}} and {{port}} (and may use {{name}}): {serve!r}")
    steps = find_checkpoints(checkpoints, every)
    out = Path(base.output)
    out.mkdir(parents=True, exist_ok=True)
    failed = []
    for step, model in steps:
        folder = out / f"step_{step}"
        name = f"step_{step}"
        if finished(folder, replace(base, model=name, output=folder)):
            log(f"step {step}: done earlier ({folder})")
            continue
        port = free_port()
        log(f"step {step}: serving {model} as {name} on port {port}")
        with PolicyServer(serve, model, name, port, folder / "policy_server.log", ready_timeout) as server:
            cfg = replace(base, model_url=server.url, model=name, output=folder, progress=False)
            try:
                results = await run_eval(cfg)
            except TooManyFailures as exc:
                failed.append(step)
                log(f"step {step}: {exc}")
                continue
        log(f"step {step}: overall {results['overall']} ({folder / 'results.md'})")
    series = collect(out, [s for s, _ in steps])
    (out / "series.json").write_text(json.dumps(series, indent=2) + "\n")
    plot_series(series, out / "series.png")
    series["failed_steps"] = failed
    return series


def collect(out: Path, steps: list[int]) -> dict:
    """``series.json``: per task and overall, the accuracy, its interval and n at each step."""
    tasks: dict[str, list[dict]] = {}
    overall = []
    for step in steps:
        path = out / f"step_{step}" / "results.json"
        if not path.exists():
            continue
        res = json.loads(path.read_text())
        for task, v in res["tasks"].items():
            tasks.setdefault(task, []).append(
                {"step": step, "accuracy": v.get("accuracy"), "ci95": v.get("ci95"), "n": v.get("scored")}
            )
        overall.append({"step": step, "accuracy": res.get("overall"), "ci95": res.get("overall_ci95")})
    return {"steps": steps, "tasks": tasks, "overall": overall}


def plot_series(series: dict, path: Path) -> None:
    """Accuracy against the step: the overall and each task, with 95% intervals; text and image
    tasks in panels of their own."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from data_prep.eval_sets import TASKS

    groups = {
        "overall": {"overall": series["overall"]},
        "text tasks": {t: v for t, v in series["tasks"].items() if not TASKS.get(t) or not TASKS[t].has_images},
        "image tasks": {t: v for t, v in series["tasks"].items() if TASKS.get(t) and TASKS[t].has_images},
    }
    groups = {g: v for g, v in groups.items() if v}
    fig, axes = plt.subplots(1, len(groups), figsize=(6 * len(groups), 4.5), squeeze=False)
    for ax, (title, lines) in zip(axes[0], groups.items()):
        for name, points in lines.items():
            points = [p for p in points if p["accuracy"] is not None]
            if not points:
                continue
            x = [p["step"] for p in points]
            y = [p["accuracy"] for p in points]
            low = [p["accuracy"] - p["ci95"][0] if p.get("ci95") else 0 for p in points]
            high = [p["ci95"][1] - p["accuracy"] if p.get("ci95") else 0 for p in points]
            ax.errorbar(x, y, yerr=[low, high], marker="o", capsize=3, label=name)
        ax.set_title(title)
        ax.set_xlabel("training step")
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(0, 100)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main_log(message: str) -> None:
    print(f"medix-verl eval-series: {message}", file=sys.stderr, flush=True)
