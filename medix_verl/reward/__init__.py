"""The reward with its clients attached: :class:`~medix_verl.reward.scorer.MedixScorer` applies a
``reward_fns`` preset with a judge and an embedder; :mod:`~medix_verl.reward.settings` is the one
schema of its settings (verl ``reward_kwargs``, environment, CLI flags);
:mod:`~medix_verl.reward.calibrate` picks an embedding threshold. No verl imports."""
