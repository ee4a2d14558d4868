"""A CPU backend for verl 0.9.1, so ``python -m verl.trainer.main_ppo`` runs real GRPO steps on a
machine without a GPU (CI, laptops). It is switched on by ``VERL_PLATFORM=cpu`` and loaded in every
verl process (driver and Ray workers) through this package's ``verl.plugins`` entry point.

What it adds, each for one thing that stops stock verl on CPU:

* :class:`PlatformCPU`, verl's platform ``cpu``: device ``cpu``, collectives over gloo, and Ray's
  ``GPU`` resource as the slot counter (start Ray with logical GPUs: ``ray_init.num_gpus``).
* verl builds the process group as ``cpu:gloo,<device>:<backend>``, which is ``cpu:gloo,cpu:gloo``
  here and rejected by torch ("Duplicate device type cpu"): the default becomes plain ``gloo``.
* verl's FSDP/FSDP2 engines are registered for ``cuda`` and ``npu`` only: they are registered for
  ``cpu`` too (use ``fsdp2``: FSDP1 refuses CPU parameters with ``sync_module_states``).
* verl's rollouts are vLLM, SGLang and TensorRT-LLM, all GPU-only: rollout ``hf_cpu`` generates with
  transformers in a Ray actor, one per replica, and takes the actor's weights after every step.
  It behaves as verl's vLLM server does where a GPU run depends on it, so that a CPU run fails
  where a GPU run would: ``sleep`` releases "weights" and "kv_cache" (unless
  ``free_cache_engine`` is false or the replica is standalone), ``wake_up``/``resume`` bring them
  back by tag, and generating or taking weights while asleep is an error; every replica serves
  OpenAI ``/v1/chat/completions`` over HTTP (what a verl-managed judge is called through), with
  vLLM's HTTP 400 for a request beyond ``max_model_len``.

Its rooms: :mod:`.cpu_platform` (the platform, gloo, the engines), :mod:`.hf_rollout` (the
rollout and its server), :mod:`.openai_server` (the HTTP surface it shares with the dev kit's
judges). Written for verl 0.9.1: each registration checks that the verl internals it uses are there
(:mod:`medix_verl.integration.patching`). It is meant for small models (the tiny offline Qwen2.5-VL of :mod:`medix_verl.devkit.tiny`): generation
runs one request at a time with ``model.generate``. It changes nothing unless ``VERL_PLATFORM=cpu``.
"""

from __future__ import annotations

from . import cpu_platform, hf_rollout
from .cpu_platform import requested

__all__ = ["ROLLOUT_NAME", "activate", "requested"]

ROLLOUT_NAME = hf_rollout.ROLLOUT_NAME
_activated = False


def activate() -> None:
    """Register the platform, the gloo default, the engines and the rollout (idempotent)."""
    global _activated
    if _activated:
        return
    cpu_platform.register()
    hf_rollout.register()
    _activated = True
