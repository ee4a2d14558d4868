"""medix-verl: MediX-R1 (open-ended RL for medical VLMs) on verl 0.9.x.

Thin adapters around verl: the composite reward's judge client, embedder and reward manager,
data handling and the CLI. The reward rules themselves live in the framework-free
``reward_fns`` package.
"""
__version__ = "0.1.0"
