"""``verl.plugins`` entry point, loaded by every process that imports verl: registers the ``medix``
reward manager and the ``medix`` trainer, applies :mod:`medix_verl.compat`, and with
``VERL_PLATFORM=cpu`` switches on :mod:`medix_verl.cpu_backend`.

verl swallows a plugin's import errors (it logs them at debug level), so each step here reports
its own failure as a warning instead of leaving a half-registered package behind silently.
"""
import warnings

from . import compat, cpu_backend


def _step(name, fn):
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - reported, then re-raised to verl's loader
        warnings.warn(f"medix_verl plugin: {name} failed: {exc!r}", stacklevel=2)
        raise


def _register_reward_manager():
    from . import reward_manager  # noqa: F401  (registers "medix" on import)


def _register_trainer():
    from .trainer import register

    register()


_step("reward manager registration", _register_reward_manager)
_step("verl compatibility fixes", compat.apply)
if cpu_backend.requested():
    _step("CPU backend", cpu_backend.activate)
_step("trainer registration", _register_trainer)
