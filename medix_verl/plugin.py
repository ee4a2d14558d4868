"""``verl.plugins`` entry point, loaded by every process that imports verl: registers the ``medix``
reward manager and trainers, applies :mod:`medix_verl.compat`, and with ``VERL_PLATFORM=cpu``
switches on :mod:`medix_verl.cpu_backend`."""
from . import compat, cpu_backend
from . import reward_manager  # noqa: F401

compat.apply()
if cpu_backend.requested():
    cpu_backend.activate()
