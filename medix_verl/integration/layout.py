"""A training run's overrides from its environment, in one place: what each recipe sets, where
the judge runs, how many nodes and GPUs, which estimator. The recipes (``recipes/*.sh``) call
:func:`main`; the tiny CPU run, the rehearsal and the tests import :func:`recipe_overrides` and
:func:`judge_overrides`.

    python -m medix_verl.integration.layout RECIPE [OVERRIDES...]     # what recipes/RECIPE.sh runs

Environment (defaults in brackets):

- ``MODEL``: the policy (hub id or local folder) [the recipe's]
- ``DATA_DIR``: folder with ``train.parquet`` and ``test.parquet`` from ``data_prep.medix_rl_data``
  [data/medix]; ``TRAIN_FILES`` / ``VAL_FILES`` override the two files
- ``NNODES`` [1], ``GPUS_PER_NODE`` [8]: the GPUs of each node this run may use
- ``JUDGE``: ``server``, a vLLM judge you started (``recipes/serve_judge.sh``) at ``JUDGE_URL``, all
  ``GPUS_PER_NODE`` train (on the same node give the judge its own GPUs and leave the rest to
  training); ``verl``, verl starts the judge in its own resource pool of ``JUDGE_GPUS`` GPUs on
  ``JUDGE_NODES`` nodes, ``GPUS_PER_NODE - JUDGE_GPUS`` train on every node [server]
- ``JUDGE_URL``: [``$MEDIX_JUDGE_URL``, else http://127.0.0.1:8085/v1]; replicas of one judge as a
  comma list (``recipes/serve_judge.sh --replicas N`` prints it): least loaded, failover
- ``JUDGE_MODEL`` [Qwen/Qwen3-4B-Instruct-2507], ``JUDGE_GPUS`` [4], ``JUDGE_TP`` [2],
  ``JUDGE_NODES`` [1] (replicas = JUDGE_GPUS x JUDGE_NODES / JUDGE_TP, behind verl's least-loaded
  router), ``JUDGE_MAX_MODEL_LEN`` [2048, as recipes/serve_judge.sh]
- ``EMBED_MODEL`` [abhinand/MedEmbed-large-v0.1], ``PRESET`` [release]
- ``ADV``: ``gdpo``, verl's GDPO over the preset's parts with its weights (opt-in; not the paper's
  setting) [unset: the recipe's estimator]
- ``SIZE`` (the DAPO recipe): 2b, 8b or 30b [8b]; ``GROUP_FILTER``: mean_band (the release's rule)
  or verl [mean_band]
- ``EXPERIMENT``: the run's name [the recipe's]; ``CKPT_DIR``: checkpoints
  [$PWD/checkpoints/$EXPERIMENT]; a run started again with the same EXPERIMENT resumes from its
  latest checkpoint (``RESUME_MODE`` auto; ``disable`` starts over). With NNODES > 1 every node must
  mount it. ``$CKPT_DIR/STOP_REQUESTED`` asks the trainer to save after the current step and stop.
- ``DRY_RUN=1``: compose the config against the installed verl, print it as YAML and the
  preflight's report (stderr), exit (2 on unknown or ignored keys and on layouts verl would reject
  at run time); needs no GPU. ``MEDIX_PREFLIGHT=0`` skips the preflight (only to rehearse a failure).

>>> env = {"GPUS_PER_NODE": "4", "JUDGE_URL": "http://judge:8085/v1"}
>>> [o for o in recipe_overrides("medix_r1_qwen_7b", env) if "judge_url" in o or "n_gpus" in o]
["reward.custom_reward_function.reward_kwargs.judge_url='http://judge:8085/v1'", 'trainer.n_gpus_per_node=4']
>>> try:
...     recipe_overrides("medix_r1_qwen3vl_dapo", {"SIZE": "4b"})
... except LayoutError as exc:
...     print(exc)
SIZE must be 2b, 8b or 30b, got '4b'
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass

KW = "reward.custom_reward_function.reward_kwargs"
RM = "reward.reward_model"
DEFAULT_JUDGE_URL = "http://127.0.0.1:8085/v1"
DEFAULT_JUDGE_MODEL = "Qwen/Qwen3-4B-Instruct-2507"
DEFAULT_EMBED_MODEL = "abhinand/MedEmbed-large-v0.1"
#: the judge's context, as recipes/serve_judge.sh serves it
DEFAULT_JUDGE_MAX_MODEL_LEN = 2048
#: the judge answers with a few tokens ("YES" / "NO" / a 0-5 grade)
JUDGE_RESPONSE_TOKENS = 8


class LayoutError(ValueError):
    """A variable of the run's environment that cannot be used; the message names it."""


@dataclass(frozen=True)
class Recipe:
    """A training recipe: its policy and the settings it changes in ``medix_r1.yaml``."""

    model: str
    overrides: tuple[str, ...]
    summary: str


_GSPO_7B = Recipe(
    "Qwen/Qwen2.5-VL-7B-Instruct",
    (
        "actor_rollout_ref.actor.policy_loss.loss_mode=gspo",
        "actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-mean",
        "actor_rollout_ref.actor.clip_ratio_low=3e-4",
        "actor_rollout_ref.actor.clip_ratio_high=4e-4",
        "actor_rollout_ref.actor.use_kl_loss=false",
    ),
    "Qwen2.5-VL-7B as released: GSPO, sequence-mean loss, clip 3e-4 / 4e-4, no KL",
)
_GRPO_8B = Recipe(
    "Qwen/Qwen3-VL-8B-Instruct",
    (
        "actor_rollout_ref.actor.policy_loss.loss_mode=vanilla",
        "actor_rollout_ref.actor.loss_agg_mode=token-mean",
        "actor_rollout_ref.actor.clip_ratio_low=0.2",
        "actor_rollout_ref.actor.clip_ratio_high=0.3",
        "actor_rollout_ref.actor.use_kl_loss=true",
        "actor_rollout_ref.actor.kl_loss_type=low_var_kl",
        "actor_rollout_ref.actor.kl_loss_coef=0.01",
    ),
    "Qwen3-VL-8B, GRPO: KL loss (low_var_kl, 0.01), clip 0.2 / 0.3, token-mean loss",
)
DAPO_MODELS = {
    "2b": "Qwen/Qwen3-VL-2B-Instruct",
    "8b": "Qwen/Qwen3-VL-8B-Instruct",
    "30b": "Qwen/Qwen3-VL-30B-A3B-Thinking",
}
GROUP_FILTERS = ("mean_band", "verl")


def _dapo(env: Mapping[str, str]) -> Recipe:
    size = env.get("SIZE") or "8b"
    if size not in DAPO_MODELS:
        raise LayoutError(f"SIZE must be 2b, 8b or 30b, got {size!r}")
    rule = env.get("GROUP_FILTER") or "mean_band"
    if rule not in GROUP_FILTERS:
        raise LayoutError(f"GROUP_FILTER must be one of {GROUP_FILTERS}, got {rule!r}")
    # the 30B as released: rollout tensor parallel 8, all 8 GPUs of a training node
    tp = ("actor_rollout_ref.rollout.tensor_model_parallel_size=8",) if size == "30b" else ()
    return Recipe(
        DAPO_MODELS[size],
        (
            *tp,
            "actor_rollout_ref.actor.policy_loss.loss_mode=vanilla",
            "actor_rollout_ref.actor.loss_agg_mode=token-mean",
            "actor_rollout_ref.actor.clip_ratio_low=0.2",
            "actor_rollout_ref.actor.clip_ratio_high=0.28",
            "actor_rollout_ref.actor.use_kl_loss=false",
            "algorithm.filter_groups.enable=true",
            "algorithm.filter_groups.metric=score",
            f"trainer.v1.medix.group_filter.rule={rule}",
            "trainer.v1.medix.group_filter.low=0.01",
            "trainer.v1.medix.group_filter.high=0.99",
            "trainer.v1.medix.group_filter.max_filtered_groups=2048",
        ),
        f"Qwen3-VL-{size.upper()}, DAPO: clip 0.2 / 0.28, no KL, dynamic sampling ({rule})",
    )


def _experiment(recipe: str, env: Mapping[str, str]) -> str:
    if recipe == "medix_r1_qwen3vl_dapo":
        return f"medix_r1_qwen3vl_{env.get('SIZE') or '8b'}_dapo"
    return recipe


#: recipe name (the script's stem under recipes/) -> its settings for an environment
RECIPES = {
    "medix_r1_qwen_7b": lambda env: _GSPO_7B,
    "medix_r1_qwen3vl_8b_grpo": lambda env: _GRPO_8B,
    "medix_r1_qwen3vl_dapo": _dapo,
}


def recipe_name(recipe: str) -> str:
    """``recipes/medix_r1_qwen_7b.sh``, ``medix_r1_qwen_7b.sh`` or ``medix_r1_qwen_7b``: the name."""
    name = os.path.basename(recipe)
    name = name[:-3] if name.endswith(".sh") else name
    if name not in RECIPES:
        raise LayoutError(f"no training recipe {recipe!r}: one of {sorted(RECIPES)}")
    return name


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise LayoutError(f"{name} must be a whole number, got {raw!r}") from None


def judge_overrides(
    judge: str,
    *,
    url: str | None = None,
    model: str = DEFAULT_JUDGE_MODEL,
    gpus: int = 4,
    nodes: int = 1,
    tp: int = 2,
    max_model_len: int = DEFAULT_JUDGE_MAX_MODEL_LEN,
    rollout: str = "vllm",
) -> list[str]:
    """Where the judge runs. ``server``: the reward calls ``url`` (one URL or a comma list of
    replicas) for ``model``. ``verl``: verl starts the judge in a resource pool of its own
    (``gpus`` per node on ``nodes`` nodes, tensor parallel ``tp``) and passes its router's address
    to the reward, which then asks for the model verl serves. The pool holds nothing else, so the
    judge never sleeps (verl would put it to sleep at start-up and, in this mode, never wake it:
    verl/experimental/reward_loop/reward_model.py)."""
    if judge == "server":
        # quoted: a comma list of replicas is one string to hydra, not a sweep
        return [f"{KW}.judge_url='{url}'", f"{KW}.judge_model={model}"]
    if judge != "verl":
        raise LayoutError(f"JUDGE must be 'server' or 'verl', got {judge!r}")
    return [
        f"{KW}.judge_url=null",
        f"{KW}.judge_model=null",
        f"{RM}.enable=true",
        f"{RM}.enable_resource_pool=true",
        f"{RM}.n_gpus_per_node={gpus}",
        f"{RM}.nnodes={nodes}",
        f"{RM}.model_path={model}",
        f"{RM}.rollout.name={rollout}",
        f"{RM}.rollout.tensor_model_parallel_size={tp}",
        f"{RM}.rollout.free_cache_engine=false",
        f"{RM}.rollout.max_model_len={max_model_len}",
        f"{RM}.rollout.prompt_length={max_model_len - JUDGE_RESPONSE_TOKENS}",
        f"{RM}.rollout.response_length={JUDGE_RESPONSE_TOKENS}",
    ]


def adv_overrides(adv: str | None, preset: str) -> list[str]:
    """``ADV``: ``gdpo`` turns on verl's GDPO over ``preset``'s parts; empty keeps the recipe's."""
    if not adv:
        return []
    if adv != "gdpo":
        raise LayoutError(f"ADV must be gdpo (or unset: the recipe's estimator), got {adv!r}")
    from . import gdpo

    try:
        return gdpo.overrides(preset)
    except (KeyError, ValueError) as exc:
        raise LayoutError(f"ADV=gdpo: {exc}") from None


def run_paths(recipe: str, env: Mapping[str, str] | None = None, cwd: str | None = None) -> tuple[str, str]:
    """The run's name (``EXPERIMENT``) and its checkpoint folder (``CKPT_DIR``, absolute: one
    folder whatever the working directory of each rank)."""
    env = os.environ if env is None else env
    name = recipe_name(recipe)
    experiment = env.get("EXPERIMENT") or _experiment(name, env)
    ckpt = env.get("CKPT_DIR") or f"checkpoints/{experiment}"
    return experiment, os.path.normpath(os.path.join(cwd or os.getcwd(), ckpt))


def recipe_overrides(recipe: str, env: Mapping[str, str] | None = None, extra=(), cwd: str | None = None) -> list[str]:
    """Every override ``recipes/<recipe>.sh`` passes to verl in ``env`` (default: this process's
    environment), in order: the recipe's settings, the run's layout, the judge, the estimator,
    then ``extra`` (the command line's)."""
    env = os.environ if env is None else env
    name = recipe_name(recipe)
    settings = RECIPES[name](env)
    data_dir = env.get("DATA_DIR") or "data/medix"
    experiment, ckpt = run_paths(name, env, cwd)
    nnodes, gpus = _int(env, "NNODES", 1), _int(env, "GPUS_PER_NODE", 8)
    preset = env.get("PRESET") or "release"
    judge = env.get("JUDGE") or "server"
    judge_model = env.get("JUDGE_MODEL") or DEFAULT_JUDGE_MODEL
    out = [
        *settings.overrides,
        f"actor_rollout_ref.model.path={env.get('MODEL') or settings.model}",
        f"data.train_files={env.get('TRAIN_FILES') or data_dir + '/train.parquet'}",
        f"data.val_files={env.get('VAL_FILES') or data_dir + '/test.parquet'}",
        f"trainer.nnodes={nnodes}",
        f"trainer.experiment_name={experiment}",
        f"trainer.default_local_dir={ckpt}",
        f"trainer.resume_mode={env.get('RESUME_MODE') or 'auto'}",
        f"{KW}.preset={preset}",
        f"{KW}.embed_model={env.get('EMBED_MODEL') or DEFAULT_EMBED_MODEL}",
    ]
    if judge == "server":
        url = env.get("JUDGE_URL") or env.get("MEDIX_JUDGE_URL") or DEFAULT_JUDGE_URL
        out += [*judge_overrides("server", url=url, model=judge_model), f"trainer.n_gpus_per_node={gpus}"]
    else:
        judge_gpus = _int(env, "JUDGE_GPUS", 4)
        max_len = _int(env, "JUDGE_MAX_MODEL_LEN", DEFAULT_JUDGE_MAX_MODEL_LEN)
        out.append(f"trainer.n_gpus_per_node={gpus - judge_gpus}")
        out += judge_overrides(
            judge,
            model=judge_model,
            gpus=judge_gpus,
            nodes=_int(env, "JUDGE_NODES", 1),
            tp=_int(env, "JUDGE_TP", 2),
            max_model_len=max_len,
        )
    return [*out, *adv_overrides(env.get("ADV"), preset), *extra]


def gpus_on_this_machine() -> int:
    """The GPUs ``nvidia-smi -L`` lists (0 without it)."""
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(line.startswith("GPU") for line in out.splitlines())


def main(argv=None) -> int:
    """``recipes/<RECIPE>.sh``: DRY_RUN=1 composes and checks; otherwise the GPUs are counted,
    the config composed and checked, and verl's ``main_ppo`` runs in this process."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(__doc__.split("\n\n>>>")[0])
        return 0 if args else 2
    if args[0] == "--checkpoint-dir" and len(args) == 2:  # for the SLURM script's stop request
        try:
            print(run_paths(args[1])[1])
        except LayoutError as exc:
            print(f"{args[1]}: {exc}", file=sys.stderr)
            return 2
        return 0
    try:
        name = recipe_name(args[0])
        overrides = recipe_overrides(name, extra=args[1:])
    except LayoutError as exc:
        print(f"{args[0]}: {exc}", file=sys.stderr)
        return 2
    from .compose import CONFIG_DIR, CONFIG_NAME
    from .compose import main as compose_main

    if os.environ.get("DRY_RUN", "0") == "1":
        return compose_main(overrides)
    need, have = _int(os.environ, "GPUS_PER_NODE", 8), gpus_on_this_machine()
    if have < need:
        print(
            f"{name} needs {need} GPUs per node (GPUS_PER_NODE), this machine has {have}.\n"
            "Use DRY_RUN=1 to check the config on this machine.",
            file=sys.stderr,
        )
        return 3
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):  # the report only, not the YAML
        rc = compose_main(overrides)
    if rc != 0:
        return rc
    command = [sys.executable, "-m", "verl.trainer.main_ppo", f"--config-path={CONFIG_DIR}"]
    os.execv(sys.executable, [*command, f"--config-name={CONFIG_NAME}", *overrides])


if __name__ == "__main__":
    sys.exit(main())
