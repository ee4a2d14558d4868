"""The CPU backend's platform (:mod:`.cpu_backend`): verl's platform ``cpu`` (device ``cpu``,
collectives over gloo, Ray's ``GPU`` resource as the slot counter), the plain ``gloo`` default
process group, and verl's FSDP engines registered for ``cpu``."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Optional

import torch

from ..integration.patching import require, require_params


def requested() -> bool:
    """True when this process was asked for the CPU backend (``VERL_PLATFORM=cpu``)."""
    import os

    return os.environ.get("VERL_PLATFORM", "").strip().lower() == "cpu"


def register() -> None:
    """The platform, the gloo default and the engines."""
    _register_platform()
    _use_plain_gloo()
    _register_engines()


def _register_platform() -> None:
    from verl.plugin.platform.platform_base import PlatformBase
    from verl.plugin.platform.platform_manager import PlatformRegistry

    @PlatformRegistry.register(platform="cpu")
    class PlatformCPU(PlatformBase):
        """verl's platform interface on the CPU: no device state, gloo, Ray ``GPU`` slots."""

        device_name = "cpu"
        vendor_name = "cpu"

        @property
        def device_module(self):
            return CPU_DEVICE

        def is_available(self) -> bool:
            return True

        def is_platform_available(self, use_smi_check=False) -> bool:
            return requested()  # never auto-detected: only on request

        # device calls: the answers live once, in the device module verl also uses directly
        def current_device(self) -> str:
            return CPU_DEVICE.current_device()

        def device_count(self) -> int:
            return CPU_DEVICE.device_count()

        def set_device(self, device_index: int) -> None:
            CPU_DEVICE.set_device(device_index)

        def synchronize(self, device_index: Optional[int] = None) -> None:
            CPU_DEVICE.synchronize()

        def manual_seed(self, seed: int) -> None:
            CPU_DEVICE.manual_seed(seed)

        def manual_seed_all(self, seed: int) -> None:
            CPU_DEVICE.manual_seed_all(seed)

        def set_allocator_settings(self, settings: str) -> None:
            pass

        def empty_cache(self) -> None:
            CPU_DEVICE.empty_cache()

        def get_device_capability(self, device_index: int = 0):
            return None, None

        def communication_backend_name(self) -> str:
            return "gloo"

        def visible_devices_envvar(self) -> str:
            # Ray sets it for actors holding (logical) GPUs; nothing on the CPU reads it
            return "CUDA_VISIBLE_DEVICES"

        @contextmanager
        def nvtx_range(self, msg: str):
            yield

        def _nothing(self, *args, **kwargs) -> None:
            """A profiler that does nothing on the CPU."""

        profiler_start = profiler_stop = _nothing

        def ray_resource_name(self) -> str:
            return "GPU"

        def ray_noset_envvars(self) -> list[str]:
            return []

        def is_ipc_supported(self) -> bool:
            return False

        def cudart(self):
            return None


class _CPUDeviceModule:
    """``torch.cpu`` plus the memory and RNG calls verl makes on ``torch.cuda``: memory figures
    are the process's resident memory (there is no separate device memory), RNG is torch's."""

    def __getattr__(self, name):
        return getattr(torch.cpu, name)

    @staticmethod
    def _rss() -> int:
        import psutil

        return psutil.Process().memory_info().rss

    def memory_allocated(self, device=None) -> int:
        return self._rss()

    memory_reserved = max_memory_allocated = max_memory_reserved = memory_allocated

    def mem_get_info(self, device=None) -> tuple[int, int]:
        import psutil

        vm = psutil.virtual_memory()
        return vm.available, vm.total

    def _nothing(self, *args, **kwargs) -> None:
        """What has no CPU counterpart: peak-memory resets, cache frees, IPC collection, device choice."""

    reset_peak_memory_stats = empty_cache = ipc_collect = set_device = _nothing

    def current_device(self) -> str:
        # verl passes it straight to .to(device=...) / torch.device(...)
        return "cpu"

    def device_count(self) -> int:
        return 1

    def get_rng_state(self, device=None):
        return torch.get_rng_state()

    def set_rng_state(self, state, device=None) -> None:
        torch.set_rng_state(state)

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    manual_seed_all = manual_seed

    def get_device_name(self, device=None) -> str:
        import platform

        return platform.processor() or "cpu"


CPU_DEVICE = _CPUDeviceModule()


def _use_plain_gloo() -> None:
    """Make ``gloo`` the default backend of verl's process-group helper. Must run before
    ``verl.workers.engine_workers`` is imported (it binds the function by name); the plugin loads
    while ``import verl`` runs, which is before."""
    import verl.utils.distributed as dist_utils

    patch = "CPU backend: gloo process groups"
    require(dist_utils, ["initialize_global_process_group_ray"], patch=patch)
    require_params(dist_utils.initialize_global_process_group_ray, ["timeout_second", "backend"], patch=patch)
    original = dist_utils.initialize_global_process_group_ray
    if getattr(original, "_medix_cpu", False):
        return

    def initialize_global_process_group_ray(timeout_second=None, backend=None):
        return original(timeout_second=timeout_second, backend=backend or "gloo")

    initialize_global_process_group_ray._medix_cpu = True
    dist_utils.initialize_global_process_group_ray = initialize_global_process_group_ray
    import sys

    workers = sys.modules.get("verl.workers.engine_workers")
    if workers is not None:  # imported before us: rebind there too
        workers.initialize_global_process_group_ray = initialize_global_process_group_ray


def _register_engines() -> None:
    from verl.workers.engine.base import EngineRegistry
    from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithLMHead, FSDPEngineWithValueHead

    require(EngineRegistry, ["_engines", "register"], patch="CPU backend: FSDP engines on cpu")
    for model_type, cls in (("language_model", FSDPEngineWithLMHead), ("value_model", FSDPEngineWithValueHead)):
        for backend in ("fsdp", "fsdp2"):
            if "cpu" not in EngineRegistry._engines.get(model_type, {}).get(backend, {}):
                EngineRegistry.register(model_type=model_type, backend=backend, device="cpu")(cls)
