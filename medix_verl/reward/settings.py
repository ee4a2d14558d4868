"""The one schema of the reward's settings.

Every key is declared once, in :class:`RewardSettings`, with its default, type, check, help text
and (for some) environment variable. Everything that takes reward settings is generated from it:

* verl: ``reward.custom_reward_function.reward_kwargs.<key>`` (:meth:`RewardSettings.from_kwargs`);
* the environment: ``MEDIX_JUDGE_URL`` and the others named in the schema, used when a key is unset;
* the CLI: ``medix-verl score --<key-name>`` for every key (:func:`add_arguments`), plus the short
  aliases the CLI had before (``--timeout`` for ``--judge-timeout``, ...);
* the README's settings table (:func:`markdown_table`; a test keeps the two equal).

Unknown keys are an error: a typo must not pass silently.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import math
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from reward_fns import PRESET_ALIASES, PRESETS, check_parts_known, get_preset, preset_name, validate_weights

from ..clients.embedder import DEFAULT_EMBED_MODEL

DEFAULT_JUDGE_MODEL = "Qwen/Qwen3-4B-Instruct-2507"


# ----------------------------------------------------------------------------- checks
def _positive(value) -> str | None:
    return None if math.isfinite(value) and value > 0 else "must be a finite number > 0"


def _non_negative(value) -> str | None:
    return None if math.isfinite(value) and value >= 0 else "must be a finite number >= 0"


def _at_least_one(value) -> str | None:
    return None if value >= 1 else "must be >= 1"


def _rate(value) -> str | None:
    return None if math.isfinite(value) and 0.0 <= value <= 1.0 else "must be in [0, 1]"


def _cosine(value) -> str | None:
    return None if math.isfinite(value) and -1.0 <= value <= 1.0 else "must be a cosine similarity in [-1, 1]"


def _open_unit(value) -> str | None:
    return None if math.isfinite(value) and 0.0 < value < 1.0 else "must be in (0, 1)"


def _url_list(value) -> str | None:
    from ..clients.pool import UrlListError, parse_url_list

    try:
        parse_url_list(value, what="")
    except UrlListError as exc:
        return str(exc).removeprefix(": ")
    return None


def _preset(value) -> str | None:
    return None if value in PRESETS or value in PRESET_ALIASES else f"must be one of {sorted(PRESETS)}"


def setting(
    default: Any = None,
    help: str = "",
    *,
    type: str = "str",
    env: str | None = None,
    aliases: tuple[str, ...] = (),
    check: Callable[[Any], str | None] | None = None,
    shown_default: str | None = None,
):
    """One key of the schema. ``type``: ``str``, ``int``, ``float``, ``json`` (a mapping given as
    JSON on the CLI) or ``list`` (repeatable flag)."""
    meta = {"help": help, "type": type, "env": env, "aliases": aliases, "check": check, "shown_default": shown_default}
    if type == "list":
        return field(default_factory=tuple, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class RewardSettings:
    """Every knob of the composite reward (see the module docstring for where they come from)."""

    preset: str = setting(
        "release",
        "`release` (as released, rule for rule; `paper` is its former name) or `robust` (opt-in hardening)",
        check=_preset,
    )
    judge_url: str | None = setting(
        None,
        "OpenAI base URL of the judge, e.g. `http://10.0.0.5:8085/v1`, or replicas of one judge model as a "
        "comma list (or a YAML list): each request goes to the least loaded replica, and one that fails is "
        "taken out while the others answer (unused when verl manages the judge)",
        env="MEDIX_JUDGE_URL",
        check=_url_list,
    )
    judge_model: str | None = setting(
        None,
        "served judge model name (verl-managed judge: `reward.reward_model.model_path`)",
        env="MEDIX_JUDGE_MODEL",
        shown_default=DEFAULT_JUDGE_MODEL,
    )
    judge_api_key: str | None = setting(
        None,
        "bearer token sent to the judge (and only to it); prefer the environment to a config file",
        env="MEDIX_JUDGE_API_KEY",
    )
    judge_max_concurrency: int = setting(
        64,
        "judge requests in flight per reward worker and judge replica (also the connection pool)",
        type="int",
        aliases=("--max-concurrency",),
        check=_at_least_one,
    )
    judge_timeout: float = setting(
        30.0, "seconds per judge attempt", type="float", aliases=("--timeout",), check=_positive
    )
    judge_retries: int = setting(
        3,
        "retries of a transient failure (refused/reset connection, timeout, 408, 429, 5xx)",
        type="int",
        aliases=("--retries",),
        check=lambda v: None if v >= 0 else "must be >= 0",
    )
    judge_backoff: float = setting(
        0.5, "base delay (s) of the exponential backoff with jitter between retries", type="float", check=_non_negative
    )
    judge_cache_size: int = setting(
        200_000,
        "judge replies cached (LRU; identical in-flight requests are sent once); 0 disables",
        type="int",
        check=lambda v: None if v >= 0 else "must be >= 0",
    )
    max_error_rate: float = setting(
        0.2, "abort when more than this share of the last `error_window` judge calls failed", type="float", check=_rate
    )
    error_window: int = setting(200, "judge calls the error rate is measured over", type="int", check=_at_least_one)
    min_calls_for_rate: int = setting(
        20, "judge calls needed before the error rate can abort", type="int", check=_at_least_one
    )
    embed_model: str = setting(
        DEFAULT_EMBED_MODEL,
        "sentence-transformers id or local path (or the served name with `embed_url`)",
        env="MEDIX_EMBED_MODEL",
    )
    embed_url: str | None = setting(
        None, "use a remote OpenAI-compatible `/v1/embeddings` endpoint instead", env="MEDIX_EMBED_URL"
    )
    embed_device: str | None = setting(
        None, "`cpu`, `cuda`, `cuda:1`, ...", shown_default="CUDA when visible, else CPU"
    )
    embed_batch_size: int = setting(
        128, "texts from concurrently scored samples encoded together", type="int", check=_at_least_one
    )
    embed_max_wait_ms: float = setting(
        2.0, "how long a text waits for its batch to fill", type="float", check=_non_negative
    )
    embed_threshold: float | None = setting(
        None,
        "cosine threshold of embedding accuracy (see `calibrate-embed`)",
        type="float",
        check=_cosine,
        shown_default="the preset's (0.8)",
    )
    max_answer_chars: int | None = setting(
        None, "`robust`: longer answers get no accuracy credit", type="int", check=_at_least_one, shown_default="300"
    )
    non_answer_margin: float | None = setting(
        0.05,
        "`robust`: no credit for an answer whose 3 nearest non-answer prototypes are closer, by more than "
        "this cosine margin, than its 3 nearest answer prototypes (`gate_master_key`); null: off",
        type="float",
        check=_cosine,
    )
    judge_yes_threshold: float | None = setting(
        None, "credit when P(YES) from the judge's logprobs reaches it", type="float", check=_open_unit
    )
    weights: Mapping[str, Any] | None = setting(
        None, "the weight tree (JSON on the CLI)", type="json", shown_default="the preset's"
    )
    part_modules: tuple[str, ...] = setting(
        help="modules or `.py` files that register custom parts (repeatable on the CLI)",
        type="list",
        aliases=("--part-module",),
        shown_default="none",
    )

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            check = f.metadata["check"]
            if value is None or check is None:
                continue
            if isinstance(value, bool) or (
                f.metadata["type"] in ("int", "float") and not isinstance(value, (int, float))
            ):
                raise ValueError(f"reward setting {f.name} must be a number, got {value!r}")
            problem = check(value)
            if problem:
                raise ValueError(f"reward setting {f.name} {problem}, got {value!r}")

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any] | None, *, where: str = "reward kwargs") -> RewardSettings:
        """Settings from a mapping (verl's ``reward_kwargs``, the CLI), unset keys from the environment."""
        data = _plain(dict(kwargs or {}))
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown {where}: {unknown}; known keys: {sorted(known)}")
        for key in ("judge_url", "embed_url"):  # a YAML list of replicas: the comma list it means
            if isinstance(data.get(key), (list, tuple)):
                data[key] = ",".join(str(u).strip() for u in data[key])
        if isinstance(data.get("part_modules"), str):
            data["part_modules"] = [data["part_modules"]]
        if data.get("part_modules") is not None:
            data["part_modules"] = tuple(data["part_modules"])
        for f in fields(cls):
            var = f.metadata["env"]
            if var and data.get(f.name) in (None, "") and os.environ.get(var):
                data[f.name] = os.environ[var]
        if isinstance(data.get("preset"), str):
            data["preset"] = preset_name(data["preset"])
        settings = cls(**{k: v for k, v in data.items() if v is not None or k in ("weights",)})
        settings.validate()
        return settings

    def validate(self) -> None:
        """The checks that need the registries: the preset, custom part modules, the weight tree."""
        preset = get_preset(self.preset)
        load_part_modules(self.part_modules)
        weights = validate_weights(self.weights) if self.weights is not None else preset.weights
        check_parts_known(weights)

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


# ----------------------------------------------------------------------------- generated interfaces
def flag(name: str) -> str:
    """``judge_timeout`` -> ``--judge-timeout``."""
    return "--" + name.replace("_", "-")


def _default_text(f) -> str:
    shown = f.metadata["shown_default"]
    if shown is not None:
        return shown
    default = f.default if f.default is not MISSING else None
    if default is None:
        return "none"
    return (
        f"`{default}`" if isinstance(default, str) else f"{default:g}" if isinstance(default, float) else str(default)
    )


def _json_mapping(text: str):
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {type(value).__name__}")
    return value


_ARG_TYPES = {"int": int, "float": float, "str": str, "json": _json_mapping, "list": str}


def add_arguments(parser: argparse.ArgumentParser, keys: tuple[str, ...] | None = None) -> None:
    """Add ``--key-name`` (and its aliases) for every reward setting (or only ``keys``).

    Unset flags stay unset (``None``), so the schema's defaults and environment fallbacks apply.
    """
    group = parser.add_argument_group("reward settings (the same keys as verl's reward_kwargs)")
    for f in fields(RewardSettings):
        if keys is not None and f.name not in keys:
            continue
        meta = f.metadata
        env = f"; env {meta['env']}" if meta["env"] else ""
        kwargs: dict[str, Any] = {
            "dest": f.name,
            "default": None,
            "help": f"{_strip_md(meta['help'])} (default: {_strip_md(_default_text(f))}{env})",
            "type": _ARG_TYPES[meta["type"]],
        }
        if meta["type"] == "list":
            kwargs["action"] = "append"
        if f.name == "preset":
            kwargs["choices"] = sorted(PRESETS) + sorted(PRESET_ALIASES)
        if meta["type"] in ("int", "float"):
            kwargs["metavar"] = "N" if meta["type"] == "int" else "X"
        group.add_argument(flag(f.name), *meta["aliases"], **kwargs)


def kwargs_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The reward settings given on a command line (unset flags left out)."""
    return {f.name: getattr(args, f.name) for f in fields(RewardSettings) if getattr(args, f.name, None) is not None}


def markdown_table() -> str:
    """The README's settings table."""
    lines = ["| key | CLI | default | meaning |", "|---|---|---|---|"]
    for f in fields(RewardSettings):
        meta = f.metadata
        cli = ", ".join(f"`{a}`" for a in (flag(f.name), *meta["aliases"]))
        default = _default_text(f) + (f" (`${meta['env']}`)" if meta["env"] else "")
        lines.append(f"| `{f.name}` | {cli} | {default} | {meta['help']} |")
    return "\n".join(lines)


def _strip_md(text: str) -> str:
    return text.replace("`", "").replace("%", "%%")


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


if __name__ == "__main__":
    print(markdown_table())
