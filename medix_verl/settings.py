"""Reward settings: one flat, documented set of keys, read from verl's
``reward.custom_reward_function.reward_kwargs``, the CLI, or the environment."""
from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from reward_fns import check_parts_known, get_preset, validate_weights

from .embedder import DEFAULT_EMBED_MODEL

DEFAULT_JUDGE_MODEL = "Qwen/Qwen3-4B-Instruct-2507"


@dataclass(frozen=True)
class RewardSettings:
    """Every knob of the composite reward. Unknown keys are an error (a typo must not pass silently).

    Environment fallbacks: ``MEDIX_JUDGE_URL``, ``MEDIX_JUDGE_MODEL``, ``MEDIX_EMBED_MODEL``,
    ``MEDIX_EMBED_URL``.
    """

    preset: str = "paper"
    judge_url: str | None = None
    judge_model: str | None = None
    judge_api_key: str | None = None
    judge_max_concurrency: int = 64
    judge_timeout: float = 30.0
    judge_retries: int = 3
    judge_backoff: float = 0.5
    judge_cache_size: int = 200_000
    max_error_rate: float = 0.2
    error_window: int = 200
    min_calls_for_rate: int = 20
    embed_model: str | None = None
    embed_url: str | None = None
    embed_device: str | None = None
    embed_batch_size: int = 128
    embed_max_wait_ms: float = 2.0
    embed_threshold: float | None = None
    max_answer_chars: int | None = None
    judge_yes_threshold: float | None = None
    weights: Mapping[str, Any] | None = None
    part_modules: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any] | None, *, where: str = "reward kwargs") -> "RewardSettings":
        data = _plain(dict(kwargs or {}))
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown {where}: {unknown}; known keys: {sorted(known)}")
        if isinstance(data.get("part_modules"), str):
            data["part_modules"] = [data["part_modules"]]
        if data.get("part_modules") is not None:
            data["part_modules"] = tuple(data["part_modules"])
        env = {
            "judge_url": "MEDIX_JUDGE_URL",
            "judge_model": "MEDIX_JUDGE_MODEL",
            "embed_model": "MEDIX_EMBED_MODEL",
            "embed_url": "MEDIX_EMBED_URL",
        }
        for key, var in env.items():
            if data.get(key) in (None, "") and os.environ.get(var):
                data[key] = os.environ[var]
        settings = cls(**{k: v for k, v in data.items() if v is not None or k in ("weights",)})
        settings.validate()
        return settings

    def validate(self) -> None:
        preset = get_preset(self.preset)
        load_part_modules(self.part_modules)
        weights = validate_weights(self.weights) if self.weights is not None else preset.weights
        check_parts_known(weights)
        if self.embed_threshold is not None and not -1.0 <= self.embed_threshold <= 1.0:
            raise ValueError(f"embed_threshold must be a cosine similarity in [-1, 1], got {self.embed_threshold}")
        if self.judge_yes_threshold is not None and not 0.0 < self.judge_yes_threshold < 1.0:
            raise ValueError(f"judge_yes_threshold must be in (0, 1), got {self.judge_yes_threshold}")
        if self.max_answer_chars is not None and self.max_answer_chars < 1:
            raise ValueError(f"max_answer_chars must be >= 1, got {self.max_answer_chars}")
        if not 0.0 <= self.max_error_rate <= 1.0:
            raise ValueError(f"max_error_rate must be in [0, 1], got {self.max_error_rate}")

    @property
    def resolved_weights(self) -> dict[str, Any]:
        return validate_weights(self.weights) if self.weights is not None else dict(get_preset(self.preset).weights)

    @property
    def resolved_threshold(self) -> float:
        return self.embed_threshold if self.embed_threshold is not None else get_preset(self.preset).embed_threshold

    def key(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, default=str)


def _plain(value: Any) -> Any:
    """OmegaConf containers -> plain Python (without importing omegaconf when it is absent)."""
    if type(value).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf

        return OmegaConf.to_container(value, resolve=True)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def load_part_modules(modules) -> None:
    """Import modules that register custom reward parts: dotted names, ``pkg://name`` or ``.py`` paths."""
    for spec in modules or ():
        if spec.startswith("pkg://"):
            spec = spec[len("pkg://") :]
        if spec.endswith(".py") or os.sep in spec:
            path = Path(spec).expanduser().resolve()
            if not path.is_file():
                raise FileNotFoundError(f"part module file not found: {path}")
            name = f"medix_parts_{abs(hash(str(path)))}"
            if name in sys.modules:
                continue
            module_spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            module_spec.loader.exec_module(module)
        else:
            importlib.import_module(spec)
