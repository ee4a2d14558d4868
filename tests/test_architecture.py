"""The package's layout holds: imports run one way between top-level packages and between the rooms
of ``medix_verl``; the verl entry point never loads the dev kit on its own; every reward setting
comes from the one schema (CLI, docs/reward.md); every patch of verl internals checks its target."""

import ast
import json
import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# a package (or room) may import only what is listed for it, besides itself
TOP_LEVEL = {"reward_fns": set(), "data_prep": {"reward_fns"}, "medix_verl": {"reward_fns", "data_prep"}}
ROOMS = {  # medix_verl's rooms, from the bottom up
    "clients": set(),
    "reward": {"clients"},
    "eval": {"clients"},
    "integration": {"clients", "reward"},
    "devkit": {"clients", "reward", "integration", "eval"},
}
# the one sanctioned upward import: the verl entry point loads the CPU backend on request only
ALLOWED = {("medix_verl/integration/plugin.py", "medix_verl.devkit")}


def _imports(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(), str(path))
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def _sources(package: str):
    yield from sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(TOP_LEVEL))
def test_top_level_packages_import_one_way(package):
    ours = set(TOP_LEVEL)
    bad = []
    for path in _sources(package):
        for name in _imports(path):
            top = name.split(".")[0]
            if top in ours and top != package and top not in TOP_LEVEL[package]:
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, bad


@pytest.mark.parametrize("room", sorted(ROOMS))
def test_medix_verl_rooms_import_downwards_only(room):
    bad = []
    for path in _sources(f"medix_verl/{room}"):
        rel = str(path.relative_to(ROOT))
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] != "medix_verl" or len(parts) < 2 or parts[1] not in ROOMS or parts[1] == room:
                continue
            if parts[1] not in ROOMS[room] and (rel, f"medix_verl.{parts[1]}") not in ALLOWED:
                bad.append(f"{rel} imports {name}")
    assert not bad, bad


@pytest.mark.parametrize("package", sorted(TOP_LEVEL))
def test_every_import_of_our_own_modules_names_one_that_exists(package):
    """A relative or absolute import of this project's modules that names none (a rename left
    behind) fails only when that code runs: found here, for every file."""
    import importlib.util

    def exists(module: str) -> bool:
        try:
            return importlib.util.find_spec(module) is not None
        except (ModuleNotFoundError, AttributeError, ValueError):  # a name inside a module
            return False

    bad = []
    for path in _sources(package):
        for name in _imports(path):
            if name.split(".")[0] not in TOP_LEVEL:
                continue
            # ``from pkg import name`` also lists ``pkg.name``, which may be an attribute, not a module
            if not exists(name) and not exists(name.rsplit(".", 1)[0]):
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, bad


def test_every_module_is_in_a_room_or_named_beside_them():
    loose = sorted(p.name for p in (ROOT / "medix_verl").glob("*.py"))
    assert loose == ["__init__.py", "cli.py", "jsonl.py"]
    for room in ROOMS:
        doc = ast.get_docstring(ast.parse((ROOT / "medix_verl" / room / "__init__.py").read_text()))
        assert doc, f"medix_verl/{room}/__init__.py says nothing of what the room is for"


def _loaded_modules(env_extra: dict) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "VERL_PLATFORM"}
    env.update(env_extra)
    code = "import sys, medix_verl.integration.plugin; print(__import__('json').dumps(sorted(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_the_verl_entry_point_loads_the_dev_kit_only_on_request():
    gpu_run = _loaded_modules({})
    assert "medix_verl.integration.reward_manager" in gpu_run and "medix_verl.integration.trainer" in gpu_run
    assert not [m for m in gpu_run if m.startswith("medix_verl.devkit")]
    cpu_run = _loaded_modules({"VERL_PLATFORM": "cpu"})
    assert "medix_verl.devkit.cpu_backend" in cpu_run


# ----------------------------------------------------------------------------- one settings schema
def test_score_help_lists_every_reward_setting():
    from medix_verl.reward.settings import RewardSettings, flag

    proc = subprocess.run([sys.executable, "-m", "medix_verl.cli", "score", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    missing = [flag(f.name) for f in fields(RewardSettings) if flag(f.name) not in proc.stdout]
    assert not missing, missing
    for alias in ("--timeout", "--retries", "--max-concurrency", "--part-module"):  # the old short flags stay
        assert alias in proc.stdout


def test_cli_flags_reach_the_settings_and_bad_values_name_the_key():
    from medix_verl.cli import build_parser
    from medix_verl.reward.settings import RewardSettings, kwargs_from_args

    args = build_parser().parse_args(
        [
            "score",
            "in.jsonl",
            "-o",
            "out.jsonl",
            "--judge-yes-threshold",
            "0.7",
            "--max-answer-chars",
            "120",
            "--weights",
            '{"format": 1.0}',
            "--timeout",
            "5",
            "--part-module",
            "a",
            "--part-module",
            "b",
        ]
    )
    kwargs = kwargs_from_args(args)
    assert kwargs == {
        "judge_yes_threshold": 0.7,
        "max_answer_chars": 120,
        "weights": {"format": 1.0},
        "judge_timeout": 5.0,
        "part_modules": ["a", "b"],
    }
    with pytest.raises(ValueError, match="judge_timeout must be a finite number > 0"):
        RewardSettings(judge_timeout=0)
    with pytest.raises(ValueError, match="max_error_rate must be in"):
        RewardSettings(max_error_rate=float("nan"))
    with pytest.raises(ValueError, match="error_window must be >= 1"):
        RewardSettings(error_window=0)


def test_readme_settings_table_is_the_schema():
    from medix_verl.reward.settings import markdown_table

    assert markdown_table() in (ROOT / "docs" / "reward.md").read_text()


# ----------------------------------------------------------------------------- one task registry
def test_the_evaluation_uses_the_task_registry(tmp_path):
    from data_prep.eval_sets import IMAGE_TASKS, RUBRIC_TASKS, TASKS, TEXT_TASKS
    from medix_verl.eval.runner import resolve_tasks

    assert len(TASKS) == 17 and set(TEXT_TASKS) | set(IMAGE_TASKS) == set(TASKS)
    assert RUBRIC_TASKS == ("mimic_cxr_report_summarization", "mimic_cxr_report_generation")
    for name in TASKS:
        (tmp_path / f"{name}.parquet").write_bytes(b"")
    assert resolve_tasks("image", tmp_path) == list(IMAGE_TASKS)
    assert resolve_tasks("text", tmp_path) == list(TEXT_TASKS)
    with pytest.raises(ValueError, match="unknown task"):
        resolve_tasks("rad_vqa,not_a_task", tmp_path)


# ----------------------------------------------------------------------------- patches of verl
@pytest.mark.slow
def test_trainer_refuses_a_verl_without_what_it_overrides(monkeypatch):
    from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer

    from medix_verl.integration import medix_trainer
    from medix_verl.integration.patching import VerlMismatchError

    monkeypatch.delattr(ReplayBuffer, "_dapo_filtered_keys")
    with pytest.raises(VerlMismatchError, match=r"_dapo_filtered_keys.*written for verl 0\.9\.1; installed: 0\.9\.1"):
        medix_trainer.check_verl()


def test_compat_fix_is_skipped_with_a_warning_when_its_target_is_gone(monkeypatch):
    import verl.models.transformers.qwen2_vl as qwen2_vl

    from medix_verl.integration import compat

    monkeypatch.delattr(qwen2_vl, "_get_input_embeds")
    with pytest.warns(UserWarning, match=r"skipped: .*_get_input_embeds.*written for verl 0\.9\.1"):
        compat.apply()


def test_cpu_backend_checks_the_verl_internals_it_registers_into(monkeypatch):
    from verl.workers.rollout import base

    from medix_verl.devkit import hf_rollout
    from medix_verl.integration.patching import VerlMismatchError

    monkeypatch.delattr(base, "_ROLLOUT_REGISTRY")
    with pytest.raises(VerlMismatchError, match="_ROLLOUT_REGISTRY"):
        hf_rollout.register()
