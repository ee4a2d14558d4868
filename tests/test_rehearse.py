"""A documented GPU layout rehearsed on CPU ranks, one real step of verl's main_ppo with the
recipe's composed config (batch geometry kept, only what a CPU cannot hold swapped)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from medix_verl.devkit.rehearse import choose_scale, data_parallel_outcome

ROOT = Path(__file__).resolve().parent.parent


def rehearse(tmp_path, env=None, *args):
    full = {k: v for k, v in os.environ.items() if k not in ("JUDGE", "JUDGE_URL", "MEDIX_JUDGE_URL", "NNODES")}
    full.update(env or {}, PYTHON=sys.executable)
    full.pop("VERL_PLATFORM", None)
    return subprocess.run(
        ["bash", str(ROOT / "recipes" / "rehearse.sh"), str(ROOT / "recipes" / "medix_r1_qwen_7b.sh"),
         "--workdir", str(tmp_path), "--scale", "auto", *args],
        capture_output=True, text=True, env=full, timeout=1500,
    )  # fmt: skip


@pytest.mark.parametrize("dp", [1, 2, 4, 5, 6, 8, 12, 16, 32])
def test_scaling_keeps_whether_the_mini_batch_splits(dp):
    factor = choose_scale("auto", 512, 128, 5, dp)
    assert 512 % factor == 0 and 128 % factor == 0
    assert data_parallel_outcome(128 // factor, 5, dp) == data_parallel_outcome(128, 5, dp)
    assert (128 // factor) * 5 >= dp


def test_a_scale_that_would_change_the_outcome_is_refused():
    assert choose_scale("16", 512, 128, 5, 8) == 16  # 8 x 5 = 40 splits over 8 like 640 does
    with pytest.raises(SystemExit, match="would change the layout's outcome"):
        choose_scale("32", 512, 128, 5, 8)  # 4 x 5 = 20 would not
    with pytest.raises(SystemExit, match="must divide"):
        choose_scale("3", 512, 128, 5, 8)


@pytest.mark.slow
def test_the_preflight_refuses_a_failing_layout_before_anything_starts(tmp_path):
    proc = rehearse(tmp_path, {"GPUS_PER_NODE": "6"})
    assert proc.returncode == 2 and "[actor-data-parallel]" in proc.stdout
    assert not (tmp_path / "rehearse.log").exists()


@pytest.mark.slow
@pytest.mark.rehearsal
def test_the_readme_default_layout_passes_on_eight_ranks(tmp_path):
    """The README's default: 8 training GPUs, the judge on another node (here a loopback fake)."""
    proc = rehearse(tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert proc.returncode == 0 and summary["steps"] == 1, proc.stdout[-3000:]
    assert "1 node(s) x 8 training GPUs" in proc.stdout and "over 8 ranks" in proc.stdout
    assert "swapped for the CPU" in proc.stdout


@pytest.mark.slow
@pytest.mark.rehearsal
def test_the_old_six_gpu_layout_fails_at_verls_own_assertion(tmp_path):
    """What the README's old single-node layout (judge on 2 GPUs, 6 training) did at its first
    actor update, shown by the rehearsal with the preflight switched off."""
    proc = rehearse(tmp_path, {"GPUS_PER_NODE": "6", "MEDIX_PREFLIGHT": "0"})
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert proc.returncode == 1 and summary["steps"] == 0
    assert "AssertionError: Got mini_batch_size=10" in summary["stopped"], summary
    assert "engine_workers.py" in summary["stopped"] and "get_data_parallel_size()=6" in summary["stopped"]


@pytest.mark.slow
@pytest.mark.rehearsal
def test_two_nodes_with_a_verl_judge_on_each_node(tmp_path):
    """JUDGE=verl with JUDGE_NODES=2: verl's judge pool spans both nodes (one replica each, behind
    verl's least-loaded router), two training ranks on each node."""
    env = {
        "NNODES": "2",
        "GPUS_PER_NODE": "3",
        "JUDGE": "verl",
        "JUDGE_GPUS": "1",
        "JUDGE_TP": "1",
        "JUDGE_NODES": "2",
    }
    proc = rehearse(tmp_path, env)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert proc.returncode == 0 and summary["steps"] == 1, proc.stdout[-3000:]
    assert "1 GPUs x 2 node(s) / TP 1 = 2" in proc.stdout and "over 4 ranks" in proc.stdout
    from medix_verl.devkit.tiny_run import read_step_metrics

    (row,) = read_step_metrics(tmp_path / "verl_metrics.jsonl")
    # every judge call answered, through verl's router (the reward's one URL)
    assert row["reward/judge_error_rate"] == 0.0 and row["judge/replica/0/requests"] > 0
