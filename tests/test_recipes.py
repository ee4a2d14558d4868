"""Every training recipe's DRY_RUN composes against the installed verl with the published settings."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def dry_run(monkeypatch, capsys):
    """``DRY_RUN=1 bash recipes/<recipe> [extra]`` in this process: (exit status, stdout, stderr).
    The shell side of a recipe is one line (recipes/_common.sh), run by the tests that start it."""
    from medix_verl.integration import layout

    def run(recipe, env=None, *extra):
        for name in ("JUDGE", "JUDGE_URL", "MEDIX_JUDGE_URL", "NNODES", "GPUS_PER_NODE", "SIZE", "ADV", "PRESET"):
            monkeypatch.delenv(name, raising=False)
        for name, value in {"DRY_RUN": "1", **(env or {})}.items():
            monkeypatch.setenv(name, value)
        capsys.readouterr()
        rc = layout.main([recipe.removesuffix(".sh"), *extra])
        out = capsys.readouterr()
        return rc, out.out, out.err

    return run


@pytest.fixture
def composed(dry_run):
    def compose(recipe, env=None, *extra):
        rc, out, err = dry_run(recipe, env, *extra)
        assert rc == 0, err
        return yaml.safe_load(out)

    return compose


def check_shared(cfg, rollout_tp=2):
    a, r = cfg["actor_rollout_ref"]["actor"], cfg["actor_rollout_ref"]["rollout"]
    assert cfg["data"]["train_batch_size"] == 512 and r["n"] == 5
    assert a["ppo_mini_batch_size"] == 128 and a["ppo_epochs"] == 1
    assert (
        a["optim"]["lr"] == 1e-6
        and a["optim"]["weight_decay"] == 0.01
        and a["optim"]["lr_scheduler_type"] == "constant"
    )
    assert a["grad_clip"] == 1.0 and cfg["trainer"]["total_epochs"] == 2
    assert cfg["trainer"]["test_freq"] == 5 and cfg["trainer"]["save_freq"] == 5
    assert (r["temperature"], r["top_p"]) == (1.0, 1.0)
    assert (r["val_kwargs"]["temperature"], r["val_kwargs"]["top_p"]) == (0.6, 0.95)
    assert r["tensor_model_parallel_size"] == rollout_tp and r["gpu_memory_utilization"] == 0.6
    assert r["max_model_len"] == r["max_num_batched_tokens"] == 8448  # the release's vLLM batch
    assert cfg["trainer"]["max_actor_ckpt_to_keep"] == 3  # the release's save_limit
    assert (cfg["data"]["max_prompt_length"], cfg["data"]["max_response_length"]) == (4352, 4096)
    assert a["fsdp_config"]["param_offload"] and a["fsdp_config"]["optimizer_offload"]
    rw = cfg["reward"]
    assert rw["custom_reward_function"]["path"] == "pkg://medix_verl.integration.reward_fn"
    assert rw["reward_manager"]["name"] == "medix"
    assert cfg["data"]["custom_cls"] == {"path": "pkg://medix_verl.integration.dataset", "name": "MedixDataset"}
    assert cfg["custom_reward_function"]["path"] is None  # the legacy key stays unset
    return a


def test_qwen_7b_gspo(composed):
    a = check_shared(composed("medix_r1_qwen_7b.sh", {"JUDGE_URL": "http://judge:8085/v1"}))
    assert a["policy_loss"]["loss_mode"] == "gspo" and a["loss_agg_mode"] == "seq-mean-token-mean"
    assert (a["clip_ratio_low"], a["clip_ratio_high"]) == (3e-4, 4e-4) and a["use_kl_loss"] is False


def test_qwen3vl_8b_grpo(composed):
    cfg = composed("medix_r1_qwen3vl_8b_grpo.sh")
    a = check_shared(cfg)
    assert a["use_kl_loss"] is True and a["kl_loss_type"] == "low_var_kl" and a["kl_loss_coef"] == 0.01
    assert (a["clip_ratio_low"], a["clip_ratio_high"]) == (0.2, 0.3) and a["loss_agg_mode"] == "token-mean"
    assert cfg["actor_rollout_ref"]["model"]["path"] == "Qwen/Qwen3-VL-8B-Instruct"


@pytest.mark.parametrize(
    "size, model, tp",
    [("2b", "Qwen/Qwen3-VL-2B-Instruct", 2), ("30b", "Qwen/Qwen3-VL-30B-A3B-Thinking", 8)],  # 30b as released
)
def test_qwen3vl_dapo(composed, size, model, tp):
    cfg = composed("medix_r1_qwen3vl_dapo.sh", {"SIZE": size})
    a = check_shared(cfg, rollout_tp=tp)
    assert (a["clip_ratio_low"], a["clip_ratio_high"]) == (0.2, 0.28) and a["use_kl_loss"] is False
    assert cfg["data"]["gen_batch_size"] is None  # verl replaces it by 1 under filter_groups
    assert (
        cfg["algorithm"]["filter_groups"]["enable"] is True and cfg["algorithm"]["filter_groups"]["metric"] == "score"
    )
    band = cfg["trainer"]["v1"]["medix"]["group_filter"]
    assert band == {"rule": "mean_band", "low": 0.01, "high": 0.99, "max_filtered_groups": 2048, "on_exhausted": "stop"}
    assert cfg["trainer"]["v1"]["trainer_mode"] == "medix"
    assert cfg["actor_rollout_ref"]["model"]["path"] == model
    assert cfg["trainer"]["experiment_name"] == f"medix_r1_qwen3vl_{size}_dapo"


def test_judge_placements(composed):
    server = composed("medix_r1_qwen_7b.sh", {"JUDGE_URL": "http://judge:8085/v1", "GPUS_PER_NODE": "4"})
    kw = server["reward"]["custom_reward_function"]["reward_kwargs"]
    assert kw["judge_url"] == "http://judge:8085/v1" and server["trainer"]["n_gpus_per_node"] == 4
    assert kw["judge_model"] == "Qwen/Qwen3-4B-Instruct-2507"
    assert server["reward"]["reward_model"]["enable"] is False
    managed = composed("medix_r1_qwen_7b.sh", {"JUDGE": "verl"})
    rm = managed["reward"]["reward_model"]
    assert rm["enable"] is True and rm["enable_resource_pool"] is True and rm["n_gpus_per_node"] == 4
    assert rm["rollout"]["tensor_model_parallel_size"] == 2 and rm["rollout"]["free_cache_engine"] is False
    assert rm["model_path"] == "Qwen/Qwen3-4B-Instruct-2507" and managed["trainer"]["n_gpus_per_node"] == 4
    kw = managed["reward"]["custom_reward_function"]["reward_kwargs"]
    assert kw["judge_url"] is None and kw["judge_model"] is None  # the reward asks for model_path


def test_dry_run_rejects_unknown_and_ignored_keys(dry_run):
    rc, _, err = dry_run("medix_r1_qwen_7b.sh", None, "actor_rollout_ref.actor.clip_ratio_lo=0.1")
    assert rc == 2 and "clip_ratio_lo" in err
    rc, _, err = dry_run("medix_r1_qwen_7b.sh", None, "custom_reward_function.path=/tmp/x.py")
    assert rc == 2 and "custom_reward_function.path (use reward.custom_reward_function)" in err
    rc, _, err = dry_run("medix_r1_qwen_7b.sh", None, "reward_model.reward_manager=naive")
    assert rc == 2 and "reward_model.reward_manager" in err
    rc, _, err = dry_run("medix_r1_qwen3vl_dapo.sh", None, "trainer.v1.medix.group_filter.rule=mean")
    assert rc == 2 and "group_filter.rule must be one of" in err
    rc, _, err = dry_run("medix_r1_qwen_7b.sh", None, "trainer.v1.medix.group_filter.rule=mean_band")
    assert rc == 2 and "needs algorithm.filter_groups.enable=true" in err
    rc, _, err = dry_run("medix_r1_qwen3vl_dapo.sh", None, "+trainer.v1.medix.group_filter.max_tries=20")
    assert rc == 2 and "max_tries is gone" in err and "max_filtered_groups" in err
    rc, out, _ = dry_run("medix_r1_qwen3vl_dapo.sh", {"GROUP_FILTER": "verl"})
    assert rc == 0 and "rule: verl" in out
    rc, _, err = dry_run("medix_r1_qwen3vl_dapo.sh", {"SIZE": "4b"})
    assert rc == 2 and "SIZE must be 2b, 8b or 30b, got '4b'" in err
    rc, _, err = dry_run("medix_r1_qwen_7b.sh", {"GPUS_PER_NODE": "eight"})
    assert rc == 2 and "GPUS_PER_NODE must be a whole number, got 'eight'" in err


@pytest.mark.slow
def test_real_run_without_gpus_stops_with_a_message():
    env = dict(os.environ, PYTHON=sys.executable, PATH="/usr/bin:/bin")  # no nvidia-smi here
    env.pop("DRY_RUN", None)
    proc = subprocess.run(
        ["bash", str(ROOT / "recipes" / "medix_r1_qwen_7b.sh")], capture_output=True, text=True, timeout=120, env=env
    )
    assert proc.returncode == 3
    assert "needs 8 GPUs per node" in proc.stderr and "has 0" in proc.stderr


def test_gpu_install_is_two_steps_so_flash_attn_builds_against_the_installed_torch(tmp_path):
    """Flash-attn's setup imports torch, so it cannot be resolved in the pip call that
    installs torch: the gpu extra leaves it out and recipes/install_gpu.sh installs it second,
    without build isolation."""
    import ast

    setup = ast.parse((ROOT / "setup.py").read_text())
    extras = next(
        kw.value for node in ast.walk(setup) if isinstance(node, ast.Call) for kw in node.keywords
        if kw.arg == "extras_require"
    )  # fmt: skip
    gpu = ast.literal_eval(extras)["gpu"]
    assert gpu == ["verl[vllm]==0.9.1"] and not any("flash" in req for req in gpu)
    calls = tmp_path / "calls.txt"
    fake = tmp_path / "python"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    fake.chmod(0o755)
    proc = subprocess.run(
        ["bash", str(ROOT / "recipes" / "install_gpu.sh")], capture_output=True, text=True,
        env=dict(os.environ, PYTHON=str(fake)),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = calls.read_text().splitlines()
    pips = [line for line in lines if line.startswith("-m pip install")]
    assert pips[0] == f"-m pip install -e {ROOT}[gpu]"
    assert pips[1] == "-m pip install --no-build-isolation flash-attn==2.8.3"
    assert lines.index(pips[0]) < lines.index(pips[1])


def test_a_real_run_checks_first_then_becomes_verls_main_ppo(monkeypatch, capsys):
    """On a machine with the GPUs, a recipe composes and checks the config (the report on stderr,
    nothing on stdout) and then execs verl's main_ppo with the package's config and the recipe's
    overrides; a refused layout never gets there."""
    from medix_verl.integration import layout

    started = []
    monkeypatch.setattr(layout, "gpus_on_this_machine", lambda: 8)
    monkeypatch.setattr(layout.os, "execv", lambda exe, argv: started.append(argv))
    for name in ("DRY_RUN", "JUDGE", "GPUS_PER_NODE", "NNODES", "SIZE", "ADV", "PRESET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JUDGE_URL", "http://10.0.0.5:8085/v1")
    layout.main(["medix_r1_qwen_7b", "trainer.total_epochs=1"])
    out = capsys.readouterr()
    assert out.out == "" and "OK: verl's validate_config" in out.err
    argv = started[0]
    assert argv[1:3] == ["-m", "verl.trainer.main_ppo"] and "--config-name=medix_r1" in argv
    assert "actor_rollout_ref.actor.policy_loss.loss_mode=gspo" in argv and argv[-1] == "trainer.total_epochs=1"
    monkeypatch.setenv("GPUS_PER_NODE", "6")
    monkeypatch.setattr(layout, "gpus_on_this_machine", lambda: 6)
    assert layout.main(["medix_r1_qwen_7b"]) == 2 and len(started) == 1
    assert "[actor-data-parallel]" in capsys.readouterr().err
