"""``verl.plugins`` entry point: importing this registers the ``medix`` reward manager."""
from . import reward_manager  # noqa: F401
