"""Shared helpers for tests (imported as a plain module; tests/ has no __init__.py)."""

from pathlib import Path

import numpy as np
import torch


def compose_verl_config(overrides):
    """verl 0.9.1's real ``ppo_trainer`` config composed by hydra with ``overrides``."""
    import verl
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    config_dir = str(Path(verl.__file__).parent / "trainer" / "config")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        return compose(config_name="ppo_trainer", overrides=list(overrides))


def make_dataproto(tokenizer, rows, prompt_len=8, response_len=48):
    """A real DataProto as the rollout produces it: left-padded prompts, right-padded responses."""
    from verl import DataProto

    n = len(rows)
    prompts = torch.full((n, prompt_len), tokenizer.pad_token_id, dtype=torch.long)
    responses = torch.full((n, response_len), tokenizer.pad_token_id, dtype=torch.long)
    attention = torch.zeros((n, prompt_len + response_len), dtype=torch.long)
    for i, row in enumerate(rows):
        p = tokenizer.encode("question?")[:prompt_len]
        r = tokenizer.encode(row["response"])[: response_len - 1] + [tokenizer.eos_token_id]
        prompts[i, prompt_len - len(p) :] = torch.tensor(p)
        responses[i, : len(r)] = torch.tensor(r)
        attention[i, prompt_len - len(p) : prompt_len] = 1
        attention[i, prompt_len : prompt_len + len(r)] = 1
    return DataProto.from_dict(
        tensors={
            "prompts": prompts,
            "responses": responses,
            "attention_mask": attention,
            "input_ids": torch.cat([prompts, responses], dim=1),
        },
        non_tensors={
            "data_source": np.array([r.get("data_source", "test") for r in rows], dtype=object),
            "reward_model": np.array(
                [{"style": "model", "ground_truth": r["ground_truth"]} for r in rows], dtype=object
            ),
            "extra_info": np.array(
                [{"question": r.get("question", "q"), "index": i} for i, r in enumerate(rows)], dtype=object
            ),
        },
    )
