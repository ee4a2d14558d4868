"""The preflight: every recipe in every layout the README documents composes and passes, the
README's old layouts and each run-time trap are refused with a message (never a traceback), and
the refusals agree with verl 0.9.1's own run-time code."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from medix_verl.integration import layout
from medix_verl.integration.compose import compose
from medix_verl.integration.preflight import is_loopback_url, preflight

ROOT = Path(__file__).resolve().parent.parent
REMOTE = "http://10.0.0.5:8085/v1"
RECIPES = {
    "7b": ("medix_r1_qwen_7b.sh", {}),
    "8b-grpo": ("medix_r1_qwen3vl_8b_grpo.sh", {}),
    "2b-dapo": ("medix_r1_qwen3vl_dapo.sh", {"SIZE": "2b"}),
    "8b-dapo": ("medix_r1_qwen3vl_dapo.sh", {"SIZE": "8b"}),
    "30b-dapo": ("medix_r1_qwen3vl_dapo.sh", {"SIZE": "30b"}),
}
# the README's table "GPU layouts": name -> environment
LAYOUTS = {
    "1 node, judge on another node": {"JUDGE_URL": REMOTE},
    "1 node, 4 + 4 with a judge server": {"GPUS_PER_NODE": "4", "JUDGE_URL": "http://127.0.0.1:8085/v1"},
    "1 node, 4 + 4 with JUDGE=verl": {"JUDGE": "verl"},
    "2 nodes (Ray or SLURM), judge on its own node": {"NNODES": "2", "JUDGE_URL": REMOTE},
    "4 nodes (Ray or SLURM), judge on its own node": {"NNODES": "4", "JUDGE_URL": REMOTE},
    "2 nodes, JUDGE=verl": {"NNODES": "2", "JUDGE": "verl"},
}
# the 30B rollout runs tensor parallel 8 (as released): it needs all 8 GPUs of a training node
NEEDS_8_TRAINING_GPUS = {"30b-dapo"}
SPLIT_LAYOUTS = {"1 node, 4 + 4 with a judge server", "1 node, 4 + 4 with JUDGE=verl"}


def recipe_overrides(recipe: str, env: dict, *extra: str) -> list[str]:
    """What the recipe passes to verl in ``env`` (the user's environment is not this process's)."""
    script, recipe_env = RECIPES[recipe]
    return layout.recipe_overrides(script, {**recipe_env, **env}, extra)


def check(recipe, env, *extra):
    return preflight(compose(recipe_overrides(recipe, env, *extra)))


def refused(report) -> set[str]:
    return {p.check for p in report.refusals}


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("recipe", list(RECIPES))
def test_every_documented_layout_passes_or_is_refused_with_a_reason(recipe, layout):
    report = check(recipe, LAYOUTS[layout])
    text = report.render()
    if recipe in NEEDS_8_TRAINING_GPUS and layout in SPLIT_LAYOUTS:
        assert refused(report) == {"rollout-tensor-parallel"}, text
        assert "use a rollout TP that divides 4" in text
    else:
        assert report.ok, text
        assert "OK: verl's validate_config and the run-time checks passed" in text
    if recipe in NEEDS_8_TRAINING_GPUS and layout == "2 nodes, JUDGE=verl":
        assert "spans 2 nodes" in text  # verl allows a replica across nodes; it is said, not refused


@pytest.mark.parametrize(
    "env, numbers",
    [
        ({"GPUS_PER_NODE": "6"}, "data-parallel size 6"),  # the old README: judge server on GPUs 6,7
        ({"JUDGE": "verl", "JUDGE_GPUS": "2"}, "data-parallel size 6"),  # the old JUDGE=verl default
        ({"NNODES": "2", "JUDGE": "verl", "JUDGE_GPUS": "2", "JUDGE_URL": REMOTE}, "data-parallel size 12"),
    ],
)
def test_the_old_readme_layouts_are_refused_naming_the_numbers(env, numbers):
    report = check("7b", env)
    assert refused(report) == {"actor-data-parallel"}
    text = report.render()
    assert numbers in text and "128 x 5 = 640 samples" in text and "4 + 4" in text
    assert "verl/workers/engine_workers.py:TrainingWorker.train_mini_batch" in text


def test_several_nodes_with_a_loopback_judge_are_refused():
    report = check("7b", {"NNODES": "2"})  # JUDGE_URL defaults to 127.0.0.1
    assert refused(report) == {"judge-url-loopback"}
    assert "JUDGE_URL=http://<judge-node-ip>:8085/v1" in report.render()


@pytest.mark.parametrize(
    "extra, name",
    [
        ("reward.reward_model.rollout.free_cache_engine=true", "judge-asleep"),
        ("reward.custom_reward_function.reward_kwargs.judge_model=Qwen/Qwen3-4B-Instruct-2507", "judge-model-name"),
        ("reward.reward_model.rollout.tensor_model_parallel_size=3", "judge-tensor-parallel"),
        ("reward.reward_model.enable_resource_pool=false", "dapo-judge-pool"),
    ],
)
def test_judge_verl_traps_are_refused(extra, name):
    env = {"JUDGE": "verl", "JUDGE_MODEL": "/models/qwen3-4b"}
    assert refused(check("8b-dapo", env, extra)) == {name}


@pytest.mark.parametrize(
    "extra, name",
    [
        ("actor_rollout_ref.rollout.max_model_len=null", "policy-max-model-len"),
        ("actor_rollout_ref.rollout.max_model_len=4096", "policy-max-model-len"),
        ("trainer.max_actor_ckpt_to_keep=null", "checkpoint-rotation"),
        ("+data.gen_batch_size=128", "dapo-gen-batch"),
        ("actor_rollout_ref.actor.ppo_max_token_len_per_gpu=8000", "dynamic-batch-tokens"),
        ("data.train_batch_size=500", "mini-batches"),
    ],
)
def test_run_time_traps_are_refused(extra, name):
    assert name in refused(check("8b-dapo", {"JUDGE_URL": REMOTE}, extra))


@pytest.mark.parametrize("env", [{"GPUS_PER_NODE": "0"}, {"JUDGE": "verl", "GPUS_PER_NODE": "4"}])
def test_no_training_gpus_is_refused_not_a_traceback(env):
    report = check("7b", {"JUDGE_URL": REMOTE, **env})
    assert refused(report) == {"no-training-gpus"} and "no GPU would train" in report.render()


def test_verls_own_validate_config_runs_first():
    report = check("7b", {"JUDGE_URL": REMOTE}, "actor_rollout_ref.rollout.temperature=0")
    assert "verl-validate-config" in refused(report)  # val do_sample with temperature 0: verl's own assert


def test_the_judge_context_is_reported_not_refused():
    report = check("7b", {"JUDGE": "verl"})
    assert report.ok and any("judge max_model_len 2048" in n and "judge_overlength" in n for n in report.notes)


@pytest.mark.parametrize("nnodes, gpus", [(1, 8), (1, 6), (1, 4), (2, 6), (2, 8), (3, 8), (1, 5), (1, 3)])
@pytest.mark.parametrize("mini, n", [(128, 5), (64, 8), (32, 3)])
def test_the_data_parallel_rule_is_verls_own_assertion(nnodes, gpus, mini, n):
    """The preflight refuses exactly the layouts whose first actor update fails verl 0.9.1's real
    TrainingWorker.train_mini_batch (driven with what verl's _update_actor sends: the mini-batch
    times rollout.n) on an engine whose data-parallel size is the layout's."""
    import torch
    from tensordict import TensorDict
    from verl.workers.engine_workers import TrainingWorker

    class PastTheCheck(Exception):
        pass

    class Engine:  # stands in for FSDP: only its data-parallel size matters before the check
        def get_data_parallel_size(self):
            return nnodes * gpus

        def get_data_parallel_rank(self):
            raise PastTheCheck

    class Worker:
        engine = Engine()

    data = TensorDict({"x": torch.zeros(4, 1)}, batch_size=[4])
    data.set_non_tensor("mini_batch_size", mini * n)
    try:
        TrainingWorker.train_mini_batch(Worker(), data)
    except PastTheCheck:
        verl_fails = False
    except AssertionError:
        verl_fails = True
    overrides = [
        f"trainer.nnodes={nnodes}",
        f"trainer.n_gpus_per_node={gpus}",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={mini}",
        f"actor_rollout_ref.rollout.n={n}",
        f"data.train_batch_size={mini * 4}",
        "actor_rollout_ref.rollout.tensor_model_parallel_size=1",
        f"reward.custom_reward_function.reward_kwargs.judge_url={REMOTE}",
    ]
    report = preflight(compose(overrides), run_verl_validate=False)
    assert ("actor-data-parallel" in refused(report)) == verl_fails


@pytest.mark.slow
def test_dry_run_refuses_with_exit_2_and_a_message_not_a_traceback(monkeypatch, capsys):
    """The recipe's shell end to end once (the other recipe tests compose in this process)."""
    env = dict(os.environ, DRY_RUN="1", PYTHON=sys.executable, GPUS_PER_NODE="6")
    proc = subprocess.run(
        ["bash", str(ROOT / "recipes" / "medix_r1_qwen_7b.sh")], capture_output=True, text=True, env=env, timeout=180
    )
    assert proc.returncode == 2
    assert "REFUSED: 1 problem(s)" in proc.stderr and "[actor-data-parallel]" in proc.stderr
    assert "Traceback" not in proc.stderr
    for name, value in {"DRY_RUN": "1", "GPUS_PER_NODE": "8", "JUDGE_URL": REMOTE}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("JUDGE", raising=False)
    assert layout.main(["medix_r1_qwen_7b"]) == 0
    out = capsys.readouterr()
    assert "OK: verl's validate_config" in out.err
    assert out.out.lstrip().startswith(("model_engine", "actor_rollout_ref", "data", "hydra"))  # YAML only


@pytest.mark.parametrize(
    "url, loopback",
    [
        ("http://127.0.0.1:8085/v1", True),
        ("http://localhost:8085/v1", True),
        ("http://[::1]:8085/v1", True),
        ("127.0.0.2:8000", True),
        ("http://10.0.0.5:8085/v1", False),
        ("http://judge.cluster:8085/v1", False),
    ],
)
def test_loopback_urls(url, loopback):
    assert is_loopback_url(url) is loopback


def test_recipes_resume_from_one_absolute_checkpoint_folder_per_run_name(tmp_path):
    overrides = recipe_overrides("7b", {"JUDGE_URL": REMOTE, "EXPERIMENT": "exp1"})
    assert "trainer.resume_mode=auto" in overrides
    assert f"trainer.default_local_dir={os.getcwd()}/checkpoints/exp1" in overrides
    overrides = recipe_overrides("7b", {"JUDGE_URL": REMOTE, "CKPT_DIR": str(tmp_path), "RESUME_MODE": "disable"})
    assert f"trainer.default_local_dir={tmp_path}" in overrides and "trainer.resume_mode=disable" in overrides
    report = check("7b", {"JUDGE_URL": REMOTE, "RESUME_MODE": "disable"})
    assert report.ok and any("starts over" in n for n in report.notes)


def test_a_multi_node_checkpoint_folder_in_memory_is_refused():
    report = check("7b", {"NNODES": "2", "JUDGE_URL": REMOTE, "CKPT_DIR": "/dev/shm/medix_ckpt"})
    assert refused(report) == {"checkpoint-dir-not-shared"}
    text = report.render()
    assert "/dev/shm/medix_ckpt" in text and "tmpfs" in text and "CKPT_DIR" in text
    one_node = check("7b", {"JUDGE_URL": REMOTE, "CKPT_DIR": "/dev/shm/medix_ckpt"})
    assert one_node.ok and any("/dev/shm/medix_ckpt" in n and "lost" in n for n in one_node.notes)


def test_a_multi_node_checkpoint_folder_on_a_local_disk_is_a_warning(tmp_path):
    from medix_verl.integration.preflight import filesystem_of

    _, fstype = filesystem_of(str(tmp_path))
    report = check("7b", {"NNODES": "2", "JUDGE_URL": REMOTE, "CKPT_DIR": str(tmp_path / "ckpt")})
    assert report.ok
    assert f"{tmp_path / 'ckpt'} ({fstype})" in report.render()
    warned = [n for n in report.notes if str(tmp_path / "ckpt") in n]
    if fstype in ("ext4", "xfs", "btrfs", "overlay"):
        assert warned and "not a network filesystem" in warned[0]


def test_filesystem_of_takes_the_longest_mount_and_knows_network_filesystems(tmp_path):
    from medix_verl.integration.preflight import filesystem_of, is_shared_filesystem

    mounts = tmp_path / "mounts"
    mounts.write_text(
        "/dev/sda1 / ext4 rw 0 0\n"
        "nas:/export /shared nfs4 rw 0 0\n"
        "tmpfs /shared/scratch tmpfs rw 0 0\n"
        "lus@o2ib:/fs /lustre\\040fs lustre rw 0 0\n"
    )
    assert filesystem_of("/shared/ckpt/run1", str(mounts)) == ("/shared", "nfs4")
    assert filesystem_of("/shared/scratch/x", str(mounts)) == ("/shared/scratch", "tmpfs")
    assert filesystem_of("/sharedother/x", str(mounts)) == ("/", "ext4")
    assert filesystem_of("/lustre fs/run", str(mounts)) == ("/lustre fs", "lustre")
    assert filesystem_of("/x", str(tmp_path / "missing")) == ("", "")
    assert is_shared_filesystem("lustre") and not is_shared_filesystem("tmpfs")


def test_a_judge_url_list_reaches_the_reward_as_one_string_and_is_checked():
    urls = "http://10.0.0.5:8085/v1,http://10.0.0.5:8086/v1,http://10.0.0.6:8085/v1"
    overrides = recipe_overrides("7b", {"JUDGE_URL": urls, "NNODES": "2"})
    cfg = compose(overrides)
    assert cfg.reward.custom_reward_function.reward_kwargs.judge_url == urls  # not a hydra sweep
    report = preflight(cfg)
    assert report.ok, report.render()
    assert "3 replicas at http://10.0.0.5:8085/v1" in report.render()
    from medix_verl.reward.settings import RewardSettings

    assert RewardSettings.from_kwargs(cfg.reward.custom_reward_function.reward_kwargs).judge_url == urls
    # one loopback replica among them is refused on several nodes, naming the list
    loop = check("7b", {"JUDGE_URL": urls + ",http://127.0.0.1:8085/v1", "NNODES": "2"})
    assert refused(loop) == {"judge-url-loopback"}
    dup = check("7b", {"JUDGE_URL": "http://10.0.0.5:8085/v1,http://10.0.0.5:8085/v1"})
    assert refused(dup) == {"judge-url-list"} and "repeats entry 1" in dup.render()


def test_judge_nodes_spread_the_verl_judge_and_more_than_the_run_has_is_refused():
    env = {"JUDGE": "verl", "JUDGE_MODEL": "/models/qwen3-4b", "NNODES": "2", "JUDGE_NODES": "2"}
    overrides = recipe_overrides("7b", env)
    assert "reward.reward_model.nnodes=2" in overrides
    report = check("7b", env)
    assert report.ok, report.render()
    assert "4 GPUs x 2 node(s) / TP 2 = 4" in report.render()
    assert not any("stay idle" in n for n in report.notes)  # a judge on every node: no idle GPUs
    one = check("7b", {**env, "JUDGE_NODES": "1"})
    assert one.ok and any("stay idle" in n for n in one.notes)
    too_many = check("7b", {**env, "JUDGE_NODES": "3"})
    assert "judge-nodes" in refused(too_many) and "JUDGE_NODES <= NNODES (2)" in too_many.render()


def test_adv_gdpo_sets_the_presets_parts_and_bad_keys_are_refused():
    overrides = recipe_overrides("7b", {"ADV": "gdpo"})
    assert "algorithm.adv_estimator=medix_gdpo" in overrides
    assert "++algorithm.gdpo_reward_keys=[accuracy_llm,accuracy_embed,modality,format]" in overrides
    report = check("7b", {"ADV": "gdpo"})
    assert report.ok, report.render()
    assert any("GDPO (not the paper's setting)" in n for n in report.notes)
    robust = recipe_overrides("7b", {"ADV": "gdpo", "PRESET": "robust"})
    assert any(o.startswith("++algorithm.gdpo_reward_keys=[") for o in robust)
    bad = check("7b", {"ADV": "gdpo"}, "++algorithm.gdpo_reward_keys=[accuracy_llm,not_a_part]")
    assert refused(bad) == {"gdpo-reward-keys"}
    assert "['not_a_part']" in bad.render() and "2 gdpo_reward_keys" in bad.render()
    sync = check("7b", {"ADV": "gdpo"}, "trainer.v1.trainer_mode=sync")
    assert refused(sync) == {"gdpo-reward-keys"} and "trainer_mode=sync" in sync.render()
    # verl's own gdpo fails at the first advantage under the v1 trainer: refused, naming ours
    verls = check("7b", {"ADV": "gdpo"}, "algorithm.adv_estimator=gdpo")
    assert refused(verls) == {"gdpo-reward-keys"} and "algorithm.adv_estimator=medix_gdpo" in verls.render()
    with pytest.raises(layout.LayoutError, match="ADV must be gdpo"):
        recipe_overrides("7b", {"ADV": "gpdo"})


def test_a_path_into_the_packages_former_name_is_refused_naming_the_key():
    old = "reward.custom_reward_function.path=pkg://medix_verl.verl.reward_fn"
    report = check("7b", {"JUDGE_URL": REMOTE}, old)
    assert refused(report) == {"renamed-modules"}
    assert "reward.custom_reward_function.path=pkg://medix_verl.verl.reward_fn" in report.render()
    assert "medix_verl.integration" in report.render()


def test_every_check_names_the_code_it_answers_to_and_runs_on_every_path():
    from medix_verl.integration.preflight import CHECKS

    names = [c.name for c in CHECKS]
    assert len(names) == len(set(names)) and all(c.where for c in CHECKS)
    # the key checks run even when the layout checks are skipped (MEDIX_PREFLIGHT=0)
    cfg = compose(recipe_overrides("7b", {"GPUS_PER_NODE": "6"}, "reward_model.reward_manager=naive"))
    keys_only = preflight(cfg, layout=False)
    assert refused(keys_only) == {"ignored-keys"} and "layout checks skipped" not in keys_only.render()
    assert refused(preflight(cfg)) == {"ignored-keys", "actor-data-parallel"}


def test_the_preflight_command_lists_the_checks_and_checks_a_recipe(monkeypatch, capsys):
    from medix_verl.cli import main
    from medix_verl.integration.preflight import CHECKS

    assert main(["preflight", "--list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listed] == [c.name for c in CHECKS]
    for name in ("JUDGE", "JUDGE_URL", "MEDIX_JUDGE_URL", "NNODES", "ADV"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GPUS_PER_NODE", "6")
    assert main(["preflight", "recipes/medix_r1_qwen_7b.sh"]) == 2
    assert "[actor-data-parallel]" in capsys.readouterr().out
    monkeypatch.setenv("GPUS_PER_NODE", "8")
    monkeypatch.setenv("JUDGE_URL", REMOTE)
    assert main(["preflight", "medix_r1_qwen_7b", "trainer.total_epochs=1"]) == 0
    assert main(["preflight", "nope"]) == 2 and "no training recipe 'nope'" in capsys.readouterr().err
