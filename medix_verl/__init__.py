"""medix-verl: MediX-R1 (open-ended RL for medical VLMs) on verl 0.9.x.

The package is laid out by what each part talks to; imports run one way, from the top of this
list down (a room may import the rooms below it, never above):

* :mod:`medix_verl.devkit`: what lets the whole pipeline run on a CPU (CPU backend for verl, tiny
  run, tiny offline models, synthetic data, local and fake judges). Loaded only when asked for
  (``VERL_PLATFORM=cpu``, the tiny recipe, tests); nothing below imports it.
* :mod:`medix_verl.integration`: everything that imports verl (the ``verl.plugins`` entry point, reward
  manager, ``compute_score`` entry, trainer, step metrics, dataset class, compat fixes, config
  composition and the hydra configs).
* :mod:`medix_verl.eval`: the evaluation (runner, judge protocol, reports).
* :mod:`medix_verl.reward`: the composite scorer with its clients attached, its settings schema,
  embedding-threshold calibration.
* :mod:`medix_verl.clients`: HTTP and model clients: the OpenAI-compatible chat client (judge and
  evaluated policy), the embedder (local or remote), the retry policy they share.

``medix_verl.cli`` (the ``medix-verl`` command) and ``medix_verl.jsonl`` sit beside the rooms. The
reward rules themselves are in the framework-free top-level ``reward_fns``; dataset conversion in
``data_prep`` (which ``medix_verl`` may use, never the reverse).
"""

__version__ = "0.1.0"
