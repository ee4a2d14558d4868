"""Everything that imports verl: the ``verl.plugins`` entry point (:mod:`.plugin`), the ``medix``
reward manager, the ``compute_score`` entry (:mod:`.reward_fn`), the ``medix`` trainer and its step
metrics, the dataset class, fixes for verl bugs (:mod:`.compat`), config composition and checks
(:mod:`.compose`) and the packaged hydra configs (``config/``).

Importing this package itself imports nothing from verl; its modules do."""
