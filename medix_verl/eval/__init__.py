"""The evaluation (``medix-verl eval``): the runner (generation, three-round judging, resume,
reports). Tasks come from the one registry, :data:`data_prep.eval_sets.TASKS`."""
