"""The README's first command: real GRPO steps of verl's main_ppo on this CPU-only machine, with
the tiny offline Qwen2.5-VL, synthetic MediX data through data_prep, SmolLM2 as the judge behind a
local OpenAI-compatible server, and the composite reward. Asserts what the run must show: the
steps ran, every reward part was logged each step, and the trained weights differ from the start.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STEPS = 2


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("tiny_cpu")
    env = dict(os.environ)
    env.pop("VERL_PLATFORM", None)  # the recipe sets it for its own processes
    proc = subprocess.run(
        ["bash", str(ROOT / "recipes" / "medix_r1_tiny_cpu.sh"), "--workdir", str(workdir), "--steps", str(STEPS)],
        capture_output=True,
        text=True,
        timeout=1200,
        env=env,
    )
    summary_file = workdir / "summary.json"
    assert summary_file.exists(), proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc, json.loads(summary_file.read_text()), workdir


def test_the_tiny_runs_config_composes_with_a_pool_of_judges(tmp_path):
    """``--judge-url A,B`` (a pool of replicas) is one string to hydra, as on the recipes, and the
    reward reads it as two replicas."""
    from medix_verl.clients.pool import parse_url_list
    from medix_verl.devkit.tiny_run import server_judge_overrides, train_overrides
    from medix_verl.integration.compose import compose
    from medix_verl.reward.settings import RewardSettings

    pool = "http://127.0.0.1:8001/v1,http://127.0.0.1:8002/v1"
    judge = server_judge_overrides(pool, "judge")
    overrides = train_overrides(tmp_path / "model", tmp_path / "data", tmp_path / "ckpt", judge, "minilm", 2, 2, [])
    cfg = compose(overrides, config_name="medix_r1_tiny_cpu")
    kwargs = cfg.reward.custom_reward_function.reward_kwargs
    assert kwargs.judge_url == pool
    assert parse_url_list(RewardSettings.from_kwargs(dict(kwargs)).judge_url, what="judge_url") == pool.split(",")
    finished = compose(
        train_overrides(tmp_path, tmp_path, tmp_path, server_judge_overrides(None, "judge"), "m", 2, 2, []),
        config_name="medix_r1_tiny_cpu",
    )
    assert finished.reward.custom_reward_function.reward_kwargs.judge_url is None


def step_rows(workdir):
    """The run's metrics.jsonl: one dict of verl's logged metrics per training step."""
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_steps_ran_and_weights_changed(tiny_run):
    proc, summary, workdir = tiny_run
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert summary["exit_code"] == 0 and summary["problems"] == []
    assert summary["steps"] == STEPS
    w = summary["weights"]
    # no weight decay in the tiny config: changed weights mean a non-zero policy gradient
    assert w["changed"] > 0 and w["max_abs_diff"] > 0, w
    rows = step_rows(workdir)
    for row in rows:
        # the rollout sampled from the model the actor trains: the actor's log-probs of the sampled
        # tokens match the rollout's (bypass mode uses them as the old ones; one mini-batch, so
        # ppo_kl is measured before the update). Measured about 1e-7; a rollout that built other
        # position ids than the actor (1D instead of Qwen-VL's M-RoPE) gave about 0.2, and one
        # whose log-probs came from fp32 log_softmax about 3e-4.
        assert abs(row["actor/ppo_kl"]) < 1e-5, row["actor/ppo_kl"]
        # GRPO: a gradient exactly when some group's responses scored differently
        assert (row["actor/grad_norm"] > 0) == (row["reward/flat_group_ratio"] < 1), row
        assert row["reward/groups"] == 4
    assert any(row["reward/flat_group_ratio"] < 1 for row in rows), "no step had a group with varied rewards"


@pytest.mark.slow
def test_every_reward_part_logged_each_step(tiny_run):
    proc, summary, workdir = tiny_run
    rows = step_rows(workdir)
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
    for row in rows:
        for part in (
            "score",
            "accuracy_llm",
            "accuracy_embed",
            "format",
            "modality",
            "answer_length",
            "response_length",
        ):
            value = row[f"reward/{part}/mean"]
            assert isinstance(value, float), (part, value)
        assert 0.0 <= row["reward/judge_error_rate"] <= 1.0
        assert row["reward/samples"] == 16  # 4 prompts x 4 responses
        # the per-part means recombine into verl's own score mean (same samples, same weights)
        assert row["reward/score/mean"] == pytest.approx(row["critic/score/mean"], abs=1e-5)
    # the reward workers' judge client, per replica (here one server), reaches the trainer's metrics
    assert sum(row.get("judge/replica/0/requests", 0) for row in rows) > 0
    assert rows[-1]["judge/replica/0/in_service"] == 1.0 and rows[-1]["judge/replica/0/errors"] == 0
    # the per-step lines the recipe prints
    assert "step 1: score" in proc.stdout and "weights:" in proc.stdout
    # the release preset's hack alarm: the robust gates in shadow, and the judge/embedding disagreement
    for row in rows:
        credited = row["reward/shadow/credited"]
        assert 0 <= credited <= 16 and 0.0 <= row["reward/shadow/flagged_credited"] <= 1.0
        reasons = sum(row[f"reward/shadow/{g}"] for g in ("empty", "master_key", "hedged", "instruction", "too_long"))
        assert reasons + row["reward/shadow/placeholder"] == pytest.approx(row["reward/shadow/flagged_credited"])
        assert row["reward/shadow/alarm"] in (0.0, 1.0)
        assert 0.0 <= row["reward/shadow/judge_yes_embed_no"] + row["reward/shadow/judge_no_embed_yes"] <= 1.0


@pytest.mark.slow
def test_images_reached_the_rollout_and_data_went_through_data_prep(tiny_run):
    _, _, workdir = tiny_run
    log = (workdir / "train.log").read_text(errors="replace")
    assert "Traceback" not in log
    line = next(x for x in log.splitlines() if "hf_cpu rollout replica 0: first request with images" in x)
    assert "image tokens" in line and "grid [[1," in line
    stats = json.loads((workdir / "data" / "train.stats.json").read_text())
    assert stats["rows_in"] == stats["rows_out"] == 24 and stats["rows_rejected"] == 0, stats


@pytest.mark.slow
def test_merge_checkpoint_script_gives_a_loadable_hf_folder(tiny_run, tmp_path):
    _, _, workdir = tiny_run
    step = workdir / "checkpoints" / f"global_step_{STEPS}"
    target = tmp_path / "hf"
    proc = subprocess.run(
        ["bash", str(ROOT / "recipes" / "merge_checkpoint.sh"), str(step), str(target)],
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, PYTHON=sys.executable),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(str(target))
    processor = AutoProcessor.from_pretrained(str(target))  # processor files came along
    assert processor.tokenizer.convert_tokens_to_ids("<|image_pad|>") == 151655
    ours = {k: v for f in target.glob("*.safetensors") for k, v in load_file(str(f)).items()}
    reference = {k: v for f in (workdir / "merged").glob("*.safetensors") for k, v in load_file(str(f)).items()}
    assert ours.keys() == reference.keys() and all(torch.equal(ours[k], reference[k]) for k in ours)
    assert sum(p.numel() for p in model.parameters()) > 0


def test_merge_checkpoint_script_rejects_a_folder_without_shards(tmp_path):
    proc = subprocess.run(
        ["bash", str(ROOT / "recipes" / "merge_checkpoint.sh"), str(tmp_path)], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "has no FSDP shards" in proc.stderr


def _rerun(tiny_run, tmp_path, *args, env=None):
    """The tiny run again, one step, in ``tmp_path`` with the fixture's data and models."""
    _, _, workdir = tiny_run
    for name in ("data", "model_init", "smollm2"):
        (tmp_path / name).symlink_to(workdir / name)
    return subprocess.run(
        ["bash", str(ROOT / "recipes" / "medix_r1_tiny_cpu.sh"), "--workdir", str(tmp_path), "--steps", "1", *args],
        capture_output=True,
        text=True,
        timeout=900,
        env=dict(os.environ, **(env or {})),
    )


def _band_run(tiny_run, tmp_path, on_exhausted, env=None, judge=("--judge", "verl")):
    """DAPO with the release's rule inside verl's replay buffer, with a band no group can reach
    (mean in (0.99, 1.0)) and a budget of 3 dropped groups. The judge is verl's (JUDGE=verl), in
    its own resource pool, as DAPO needs on GPUs: the reward while sampling (or ``judge``: the
    tiny run's options for another one)."""
    return _rerun(
        tiny_run,
        tmp_path,
        *judge,
        "--",
        "algorithm.filter_groups.enable=true",
        "algorithm.filter_groups.metric=score",
        "trainer.v1.medix.group_filter.rule=mean_band",
        "trainer.v1.medix.group_filter.low=0.99",
        "trainer.v1.medix.group_filter.high=1.0",
        "trainer.v1.medix.group_filter.max_filtered_groups=3",
        f"trainer.v1.medix.group_filter.on_exhausted={on_exhausted}",
        env=env,
    )


@pytest.mark.slow
def test_release_group_rule_filters_then_keeps_what_comes_when_asked(tiny_run, tmp_path):
    """Also the GPU path's JUDGE=verl on the CPU backend: a real step with verl's judge in its own
    resource pool, reached through verl's router; and ADV=gdpo on the tiny recipe (one run for
    both, to keep CI short): verl's GDPO with the release preset's parts as reward keys, each part's
    gdpo/<part>/mean logged."""
    proc = _band_run(tiny_run, tmp_path, "keep", env={"ADV": "gdpo"})
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert proc.returncode == 0 and summary["problems"] == [], proc.stdout[-4000:]
    assert "judge: verl-managed" in proc.stdout and "OK: verl's validate_config" in proc.stdout
    row = step_rows(tmp_path)[0]
    assert row["reward/judge_error_rate"] == 0.0 and row["reward/samples"] >= 16  # verl's judge answered
    assert row["training/filter_groups/mean_band_filtered_groups"] >= 4  # past the budget of 3
    assert row["training/filter_groups/mean_band_gave_up"] == 1.0
    assert row["training/filter_groups/evicted_samples"] >= 4
    assert "GDPO (not the paper's setting)" in proc.stdout
    for part in ("accuracy_llm", "accuracy_embed", "format", "modality"):
        # the parts GDPO normalised are the reward's, over the same samples
        assert row[f"gdpo/{part}/mean"] == pytest.approx(row[f"reward/{part}/mean"]), part
        assert row[f"gdpo/{part}/std"] >= 0.0


@pytest.mark.slow
def test_release_group_rule_stops_the_run_past_its_budget_as_released(tiny_run, tmp_path):
    """The release raises "Generated too many" after 20 generation batches; so does the default.
    (A loopback judge: the rule is the trainer's, whoever judges; the verl judge is the test above's.)"""
    from medix_verl.devkit.fake_judge import FakeJudge

    with FakeJudge() as judge:
        proc = _band_run(tiny_run, tmp_path, "stop", judge=("--judge-url", judge.url))
    log = (tmp_path / "train.log").read_text()
    assert proc.returncode != 0
    assert "groups dropped in step 1, more than max_filtered_groups=3" in log and "Generated too many" in log
    assert not step_rows(tmp_path)  # no step was trained


@pytest.mark.slow
def test_a_sleeping_verl_judge_is_refused_and_fails_loudly_when_rehearsed(tiny_run, tmp_path):
    """With its own pool and free_cache_engine=true, verl puts the judge to sleep at
    start-up and nothing wakes it. The preflight refuses the layout; rehearsed anyway
    (MEDIX_PREFLIGHT=0), the CPU backend's judge, asleep as vLLM's would be, fails every judge
    call of the first step, and the run stops on the judge's error rate instead of refilling the
    failed groups forever (on vLLM: fails or hangs)."""
    asleep = "reward.reward_model.rollout.free_cache_engine=true"
    (tmp_path / "refused").mkdir()
    proc = _rerun(tiny_run, tmp_path / "refused", "--judge", "verl", "--", asleep)
    assert proc.returncode == 2 and "[judge-asleep]" in proc.stdout, proc.stdout[-3000:]
    assert not (tmp_path / "refused" / "train.log").exists()  # refused before anything started
    proc = _rerun(
        tiny_run,
        tmp_path,
        "--judge",
        "verl",
        "--",
        asleep,
        "+reward.custom_reward_function.reward_kwargs.min_calls_for_rate=8",  # stop within the first step
        env={"MEDIX_PREFLIGHT": "0"},
    )
    log = (tmp_path / "train.log").read_text(errors="replace")
    assert proc.returncode != 0
    assert "got a chat request while asleep: kv_cache, weights released by sleep()" in log
    # verl 0.9.1 would drop each failed group and refill it forever; the medix trainer stops
    assert "the reward stopped: ServerUnavailableError: judge error rate" in log
    assert not step_rows(tmp_path)


def _kill_everything(proc) -> int:
    """SIGKILL the run and every process under it (main_ppo, Ray's daemons and workers), as a
    preempted node loses them; returns how many were killed."""
    import signal

    import psutil

    try:
        procs = psutil.Process(proc.pid).children(recursive=True) + [psutil.Process(proc.pid)]
    except psutil.NoSuchProcess:
        procs = []
    for p in procs:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    proc.wait(timeout=60)
    return len(procs)


def _wait_for(predicate, proc, what, timeout=900):
    import time

    deadline = time.time() + timeout
    while not predicate():
        assert proc.poll() is None, f"the run ended ({proc.returncode}) before {what}"
        assert time.time() < deadline, f"no {what} in {timeout} s"
        time.sleep(0.5)


@pytest.mark.slow
@pytest.mark.preemption
def test_killed_run_resumes_with_the_same_command_and_logs_every_step_once(tiny_run, tmp_path):
    """Preemption on the tiny CPU run, with the same command each time (5 steps, a checkpoint
    every 2): killed with SIGKILL (every process) after step 3 was trained but only step 2
    checkpointed; resumed, then asked to stop (STOP_REQUESTED, as the SLURM script does before a
    time limit) and stopped after step 3 with a checkpoint; resumed again to the end; run once more,
    it does nothing."""
    from medix_verl.devkit.fake_judge import FakeJudge
    from medix_verl.devkit.tiny_run import EXIT_STOPPED

    _, _, fixture = tiny_run
    for name in ("data", "model_init"):
        (tmp_path / name).symlink_to(fixture / name)
    data_mtime = (fixture / "data" / "train.parquet").stat().st_mtime
    warm_mtime = (fixture / "model_init" / ".warm_started").stat().st_mtime

    def metrics():
        path = tmp_path / "metrics.jsonl"
        return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []

    def verl_steps():
        from medix_verl.devkit.tiny_run import read_step_metrics

        return [row["step"] for row in read_step_metrics(tmp_path / "verl_metrics.jsonl")]

    with FakeJudge() as judge, FakeJudge() as other_judge:  # a pool of two replicas
        cmd = [
            "bash",
            str(ROOT / "recipes" / "medix_r1_tiny_cpu.sh"),
            "--workdir",
            str(tmp_path),
            "--steps",
            "5",
            "--save-freq",
            "2",
            "--judge-url",
            f"{judge.url},{other_judge.url}",
        ]

        def start():
            return subprocess.Popen(
                cmd, stdout=open(tmp_path / "attempts.log", "a"), stderr=subprocess.STDOUT, start_new_session=True
            )

        # attempt 1: killed after step 3 is logged (checkpoint: step 2)
        proc = start()
        _wait_for(lambda: 3 in verl_steps(), proc, "step 3")
        assert (tmp_path / "checkpoints" / "latest_checkpointed_iteration.txt").read_text() == "2"
        assert _kill_everything(proc) > 3
        first = {row["step"]: row for row in metrics()}
        assert sorted(first) == [1, 2, 3]

        # attempt 2: resumes from step 2; a stop request while step 3 runs
        proc = start()
        _wait_for(lambda: "resumed at step 2" in (tmp_path / "train.log").read_text(), proc, "the resume")
        (tmp_path / "checkpoints" / "STOP_REQUESTED").touch()
        assert proc.wait(timeout=900) == EXIT_STOPPED
        summary = json.loads((tmp_path / "summary.json").read_text())
        assert summary["stopped_on_request"] and summary["checkpoint_step"] == 3
        assert not (tmp_path / "checkpoints" / "STOP_REQUESTED").exists()
        rows = metrics()
        assert [row["step"] for row in rows] == [1, 2, 3]
        # step 3 was trained again (from step 2's weights): its line is the second attempt's
        assert rows[2]["reward/total/samples"] == 48 and rows[2] != first[3]
        assert rows[0] == first[1] and rows[1] == first[2]

        # attempt 3: resumes from step 3 and finishes
        proc = start()
        assert proc.wait(timeout=900) == 0, (tmp_path / "attempts.log").read_text()[-3000:]
    log = (tmp_path / "train.log").read_text()
    attempts = log.split("==== ")[1:]
    assert len(attempts) == 3
    trained = [sorted({int(x.split("step:")[1].split()[0]) for x in a.splitlines() if " step:" in x}) for a in attempts]
    assert trained[1] == [3] and trained[2] == [4, 5], trained  # checkpointed steps are not trained again
    assert "resumed at step 3: cumulative counts restored" in attempts[2]
    rows = metrics()
    assert [row["step"] for row in rows] == [1, 2, 3, 4, 5]  # every step exactly once
    # the trainer's cumulative counts went on from the checkpoint instead of starting again
    assert [row["reward/total/samples"] for row in rows] == [16, 32, 48, 64, 80]
    # both judge replicas served the run, and the trainer logged each
    for i in (0, 1):
        assert sum(row.get(f"judge/replica/{i}/requests", 0) for row in rows) > 0
    assert judge.served > 0 and other_judge.served > 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["exit_code"] == 0 and summary["problems"] == [] and summary["weights"]["changed"] > 0
    # the data and the warm start were made once, by the fixture
    assert (fixture / "data" / "train.parquet").stat().st_mtime == data_mtime
    assert (fixture / "model_init" / ".warm_started").stat().st_mtime == warm_mtime

    # attempt 4: finished, nothing to do
    again = subprocess.run(cmd[:-2] + ["--judge-url", "http://127.0.0.1:9/v1"], capture_output=True, text=True)
    assert again.returncode == 0 and "already finished: 5 steps" in again.stdout
    # another run in the same folder is refused, naming what differs
    other = subprocess.run(cmd[:5] + ["6"] + cmd[6:], capture_output=True, text=True)
    assert other.returncode == 2 and "steps: 5 then, 6 now" in other.stdout and "--fresh" in other.stdout
