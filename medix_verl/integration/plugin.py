"""``verl.plugins`` entry point, loaded by every process that imports verl: registers the ``medix``
reward manager and the ``medix`` trainer, applies :mod:`medix_verl.integration.compat`, and with
``VERL_PLATFORM=cpu`` (and only then) imports the dev kit's CPU backend
(:mod:`medix_verl.devkit.cpu_backend`). A GPU run never imports the dev kit, so nothing in it can
stop the reward manager from registering.

verl swallows a plugin's import errors (it logs them at debug level), so each step here reports
its own failure as a warning instead of leaving a half-registered package behind silently.
"""

import os
import warnings

from . import compat


def cpu_backend_requested() -> bool:
    """True when this process was asked for the CPU backend (``VERL_PLATFORM=cpu``)."""
    return os.environ.get("VERL_PLATFORM", "").strip().lower() == "cpu"


def _step(name, fn):
    try:
        fn()
    except Exception as exc:
        warnings.warn(f"medix_verl plugin: {name} failed: {exc!r}", stacklevel=2)
        raise


def _register_reward_manager():
    from . import reward_manager  # noqa: F401  (registers "medix" on import)


def _activate_cpu_backend():
    from ..devkit import cpu_backend

    cpu_backend.activate()


def _register_trainer():
    from .trainer import register

    register()


_step("reward manager registration", _register_reward_manager)
_step("verl compatibility fixes", compat.apply)
if cpu_backend_requested():
    _step("CPU backend", _activate_cpu_backend)
_step("trainer registration", _register_trainer)
