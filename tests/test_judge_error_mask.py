"""A sample whose judge call failed leaves its GRPO group's baseline and gets zero
advantage (verl 0.9.1's own advantage function, wrapped by the medix trainer)."""

import numpy as np
import pytest
import torch


def grpo(scores_by_group, masked=()):
    """verl's real compute_advantage_for_multi_trajectories on single-turn rows, as the v1 trainer
    calls it, optionally through the medix trainer's mask."""
    from verl import DataProto
    from verl.trainer.ppo.v1.utils import compute_advantage_for_multi_trajectories

    from medix_verl.verl.trainer import mask_rows

    uids, scores, keys = [], [], []
    for g, group in enumerate(scores_by_group):
        uids += [f"g{g}"] * len(group)
        scores += group
        keys += [f"g{g}_{j}_0" for j in range(len(group))]  # verl's {uid}_{session}_{turn}: one turn each
    n, length = len(scores), 3
    rewards = torch.zeros(n, length)
    rewards[:, -1] = torch.tensor(scores)
    data = DataProto.from_dict(
        tensors={"token_level_rewards": rewards, "response_mask": torch.ones(n, length)},
        non_tensors={"uid": np.array(uids, dtype=object)},
    )
    compute = (
        mask_rows(compute_advantage_for_multi_trajectories, list(masked))
        if masked
        else (compute_advantage_for_multi_trajectories)
    )
    out = compute(data, batch_keys=keys, adv_estimator="grpo", num_repeat=1, norm_adv_by_std_in_grpo=True)
    assert list(data.non_tensor_batch["uid"]) == uids  # the caller's uids are left as they were
    return out.batch["advantages"][:, -1]


def test_a_judge_error_is_out_of_the_baseline_and_at_zero_advantage():
    group = [1.0, 1.0, 0.0, 0.0, 0.0]  # the last is a judge error scored 0
    masked = grpo([group, [1.0, 0.0, 0.0]], masked=[4])
    judged_only = grpo([group[:4], [1.0, 0.0, 0.0]])
    assert masked[4] == 0.0
    assert torch.allclose(masked[:4], judged_only[:4]) and torch.allclose(masked[5:], judged_only[4:])
    unmasked = grpo([group, [1.0, 0.0, 0.0]])
    assert unmasked[4] < -0.5  # what the release's scoring does to an answer nobody judged


def test_a_group_of_only_judge_errors_teaches_nothing():
    adv = grpo([[0.0, 0.0], [1.0, 0.0]], masked=[0, 1])
    assert adv[0] == adv[1] == 0.0 and adv[2] > 0 > adv[3]


def test_the_policy_setting_is_checked():
    from omegaconf import OmegaConf

    from medix_verl.verl.trainer import judge_error_policy

    cfg = OmegaConf.create({"trainer": {"v1": {"medix": {}}}})
    assert judge_error_policy(cfg) == "mask"
    cfg.trainer.v1.medix.judge_errors = "zero"
    with pytest.raises(ValueError, match="judge_errors must be one of"):
        judge_error_policy(cfg)


def gdpo(parts_by_row, uids, masked=(), as_v1=False):
    """verl's real GDPO through compute_advantage_for_multi_trajectories, as the medix trainer
    calls it: parts filled in (gdpo.with_parts), optionally through the mask."""
    from omegaconf import OmegaConf
    from verl import DataProto
    from verl.trainer.ppo.v1.utils import compute_advantage_for_multi_trajectories

    from medix_verl.verl import gdpo as medix_gdpo
    from medix_verl.verl.trainer import gdpo_parts, mask_rows

    n, length = len(uids), 3
    keys = [f"{u}_{i}_0" for i, u in enumerate(uids)]
    infos = [dict(zip(("accuracy_llm", "format"), row)) for row in parts_by_row]
    parts = gdpo_parts(infos, ["accuracy_llm", "format"], keys)
    tensors = {"token_level_rewards": torch.zeros(n, length), "response_mask": torch.ones(n, length)}
    if not as_v1:  # verl's v1 trainer passes neither the prompts nor the attention mask
        tensors["prompts"] = torch.zeros(n, 2, dtype=torch.long)
        tensors["attention_mask"] = torch.ones(n, 2 + length, dtype=torch.long)
    data = DataProto.from_dict(tensors=tensors, non_tensors={"uid": np.array(uids, dtype=object)})
    cfg = OmegaConf.create({"gdpo_reward_keys": ["accuracy_llm", "format"], "gdpo_reward_weights": [0.9, 0.1]})
    compute = compute_advantage_for_multi_trajectories
    if masked:
        compute = mask_rows(compute, list(masked))
    compute = medix_gdpo.with_parts(compute, parts)
    out = compute(data, batch_keys=keys, adv_estimator="gdpo", num_repeat=1, config=cfg)
    return out.batch["advantages"][:, -1]


def test_gdpo_leaves_a_judge_error_out_of_every_part_and_of_the_whitening():
    rows = [(1.0, 1.0), (0.0, 1.0), (1.0, 0.0), (0.0, 0.0), (0.0, 1.0), (1.0, 1.0), (0.0, 0.0), (0.0, 1.0)]
    uids = ["a", "a", "a", "a", "a", "b", "b", "b"]
    masked = gdpo(rows, uids, masked=[4])
    judged_only = gdpo(rows[:4] + rows[5:], uids[:4] + uids[5:])
    assert masked[4] == 0.0
    assert torch.allclose(masked[:4], judged_only[:4]) and torch.allclose(masked[5:], judged_only[4:])
    assert not torch.allclose(gdpo(rows, uids)[:4], judged_only[:4])  # unmasked, it would shift the others
    # each part counts: the same accuracy with a better format scores higher
    assert judged_only[0] > judged_only[2] and judged_only[1] > judged_only[3]


def test_gdpo_names_a_sample_without_the_part():
    from medix_verl.verl.trainer import gdpo_parts

    with pytest.raises(RuntimeError, match="trajectory k1 has no reward part 'accuracy_llm'"):
        gdpo_parts([{"accuracy_llm": 1.0}, {"format": 1.0}], ["accuracy_llm"], ["k0", "k1"])


def test_gdpo_runs_on_what_verls_v1_trainer_passes():
    """verl's v1 trainer builds the advantage batch without prompts and attention mask, which
    verl's GDPO reads: filled in from the response mask, the advantages are the same."""
    rows = [(1.0, 1.0), (0.0, 1.0), (1.0, 0.0), (0.0, 0.0), (0.0, 1.0), (1.0, 1.0)]
    uids = ["a", "a", "a", "b", "b", "b"]
    assert torch.allclose(gdpo(rows, uids, as_v1=True), gdpo(rows, uids))
    assert torch.allclose(gdpo(rows, uids, masked=[1], as_v1=True), gdpo(rows, uids, masked=[1]))
