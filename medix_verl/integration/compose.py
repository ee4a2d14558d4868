"""Compose a MediX-R1 training config against the installed verl, without GPUs.

    python -m medix_verl.integration.compose [OVERRIDES...]          # print the composed config as YAML

Used by ``DRY_RUN=1 bash recipes/<recipe>.sh`` and before every real run. Exits 2, naming the
key, when an override is unknown to verl 0.9.1 (hydra's own check) or when the
:mod:`~medix_verl.integration.preflight` refuses the config: a legacy key that verl 0.9.1's reward loop
silently ignores (top-level ``custom_reward_function.*`` and ``reward_model.*``), a bad medix
trainer setting, or a layout verl would reject at run time (its report goes to stderr;
``MEDIX_PREFLIGHT=0`` skips the layout checks, for rehearsing a failure on purpose).
"""

from __future__ import annotations

import sys
from pathlib import Path

CONFIG_DIR = Path(__file__).parent / "config"
CONFIG_NAME = "medix_r1"
# legacy sections kept by verl 0.9.1 for backward compatibility, ignored by its reward loop
LEGACY_SECTIONS = {
    "custom_reward_function": "reward.custom_reward_function",
    "reward_model": "reward.reward_model / reward.reward_manager / reward.num_workers",
}


def compose(overrides: list[str], config_name: str = CONFIG_NAME):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        return hydra_compose(config_name=config_name, overrides=list(overrides))


def ignored_keys(cfg) -> list[str]:
    """Legacy keys that are set (not null) in ``cfg``: verl 0.9.1 would silently ignore them."""
    from omegaconf import OmegaConf

    found = []

    def walk(node, path):
        if OmegaConf.is_dict(node):
            for key in node.keys():
                walk(node[key], f"{path}.{key}")
        elif node is not None and not (OmegaConf.is_list(node) and len(node) == 0):
            found.append(path)

    for section, replacement in LEGACY_SECTIONS.items():
        if section in cfg:
            before = len(found)
            walk(cfg[section], section)
            for i in range(before, len(found)):
                found[i] = f"{found[i]} (use {replacement})"
    return found


def main(argv=None) -> int:
    from omegaconf import OmegaConf

    overrides = list(sys.argv[1:] if argv is None else argv)
    try:
        cfg = compose(overrides)
    except Exception as exc:  # hydra's errors name the bad override
        print(
            f"medix_verl.integration.compose: cannot compose the config: {type(exc).__name__}: {exc}", file=sys.stderr
        )
        return 2
    print(OmegaConf.to_yaml(cfg, resolve=False))
    from .preflight import before_training

    report = before_training(cfg)
    print(report.render(), file=sys.stderr)
    return 0 if report.ok else 2


if __name__ == "__main__":
    sys.exit(main())
