"""A sample whose judge call failed leaves its GRPO group's baseline and gets zero advantage: the
medix trainer's ``_compute_advantage`` runs verl 0.9.1's own ``_compute_advantage`` on the judged
rows only and writes zeros for the others. Driven here on verl's real trainer class over an
in-memory stand-in for the transfer queue's key-value calls (the real one needs a running Ray
cluster; the tiny CPU run uses it)."""

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf


class MemoryQueue:
    """transfer_queue's ``kv_batch_get`` / ``kv_batch_put`` over a dict: one dict of fields per
    key, response-level fields as 1-D tensors, returned as verl reads them (jagged tensors)."""

    def __init__(self):
        self.rows = {}

    def kv_batch_get(self, keys, partition_id, select_fields=None):
        from tensordict import NonTensorData, NonTensorStack, TensorDict

        fields = [f for f in select_fields if all(f in self.rows[k] for k in keys)]
        out = {}
        for name in fields:
            values = [self.rows[k][name] for k in keys]
            if isinstance(values[0], str):
                out[name] = NonTensorStack(*(NonTensorData(v) for v in values))
            else:
                out[name] = torch.nested.nested_tensor(values, layout=torch.jagged)
        return TensorDict(out, batch_size=len(keys))

    def kv_batch_put(self, keys, partition_id, fields=None, tags=None):
        from transfer_queue import KVBatchMeta

        for name in fields.keys():
            for key, value in zip(keys, fields[name].unbind(), strict=True):
                self.rows[key][name] = value
        written = sorted({name for key in keys for name in self.rows[key]})
        return KVBatchMeta(
            keys=list(keys), tags=[{"done": True} for _ in keys], partition_id=partition_id, fields=written
        )


def run(monkeypatch, groups, errors=(), estimator="grpo", parts=None, judge_errors="mask"):
    """The medix trainer's advantage step on one batch: ``groups`` of scores (one per sample),
    ``errors`` the flat indices whose judge call failed, ``parts`` per-sample GDPO parts.
    Returns (advantages per row, the returned metadata, the step's metrics)."""
    import transfer_queue
    from transfer_queue import KVBatchMeta

    from medix_verl.integration import medix_trainer
    from medix_verl.integration.trainer import register

    trainer_cls, _ = register()
    queue = MemoryQueue()
    keys, infos = [], []
    for g, group in enumerate(groups):
        for j, score in enumerate(group):
            key = f"g{g}_{j}_0"  # verl's {uid}_{session}_{turn}
            length = 2 + (g + j) % 3  # responses of several lengths (GDPO whitens over tokens)
            rm = torch.zeros(length)
            rm[-1] = score
            queue.rows[key] = {"uid": f"g{g}", "response_mask": torch.ones(length), "rm_scores": rm}
            info = {"score": score, "judge_error": float(len(keys) in errors)}
            info.update((parts or {}).get(len(keys), {}))
            infos.append(info)
            keys.append(key)
    monkeypatch.setattr(transfer_queue, "kv_batch_get", queue.kv_batch_get)
    monkeypatch.setattr(transfer_queue, "kv_batch_put", queue.kv_batch_put)
    by_key = dict(zip(keys, infos))
    monkeypatch.setattr(medix_trainer, "_extra_infos", lambda ks, pid: [by_key[k] for k in ks])
    trainer = object.__new__(trainer_cls)
    algorithm = {
        "adv_estimator": estimator,
        "use_kl_in_reward": False,
        "gamma": 1.0,
        "lam": 1.0,
        "norm_adv_by_std_in_grpo": True,
        "rollout_correction": {"bypass_mode": True},
    }
    if estimator == "medix_gdpo":
        algorithm.update(gdpo_reward_keys=["accuracy_llm", "format"], gdpo_reward_weights=[0.9, 0.1])
    trainer.config = OmegaConf.create(
        {
            "algorithm": algorithm,
            "actor_rollout_ref": {"rollout": {"n": max(len(g) for g in groups)}},
            "trainer": {"v1": {"medix": {"judge_errors": judge_errors}}},
        }
    )
    batch = KVBatchMeta(keys=list(keys), tags=[{} for _ in keys], partition_id="train")
    metrics = {}
    out = trainer._compute_advantage(batch, metrics)
    adv = torch.tensor([float(queue.rows[k]["advantages"][-1]) for k in keys])
    assert all(torch.equal(queue.rows[k]["advantages"], queue.rows[k]["returns"]) for k in keys)
    return adv, out, metrics


def test_a_judge_error_is_out_of_the_baseline_and_at_zero_advantage(monkeypatch):
    group = [1.0, 1.0, 0.0, 0.0, 0.0]  # the last is a judge error scored 0
    masked, out, metrics = run(monkeypatch, [group, [1.0, 0.0, 0.0]], errors={4})
    judged_only, _, _ = run(monkeypatch, [group[:4], [1.0, 0.0, 0.0]])
    assert masked[4] == 0.0 and metrics["reward/judge_error_masked"] == 1
    assert torch.allclose(masked[:4], judged_only[:4]) and torch.allclose(masked[5:], judged_only[4:])
    # the whole batch comes back, in its order, with the fields verl wrote for the judged rows
    assert out.keys == [f"g0_{j}_0" for j in range(5)] + [f"g1_{j}_0" for j in range(3)]
    assert {"advantages", "returns"} <= set(out.fields) and all(tag == {"done": True} for tag in out.tags)
    unmasked, _, _ = run(monkeypatch, [group, [1.0, 0.0, 0.0]], errors={4}, judge_errors="score")
    assert unmasked[4] < -0.5  # what the release's scoring does to an answer nobody judged


def test_a_group_of_only_judge_errors_teaches_nothing(monkeypatch):
    adv, _, _ = run(monkeypatch, [[0.0, 0.0], [1.0, 0.0]], errors={0, 1})
    assert adv[0] == adv[1] == 0.0 and adv[2] > 0 > adv[3]
    every, out, _ = run(monkeypatch, [[0.0, 0.0]], errors={0, 1})  # nothing judged at all
    assert torch.equal(every, torch.zeros(2)) and len(out.keys) == 2


def test_the_policy_setting_is_checked():
    from medix_verl.integration.trainer import judge_error_policy

    cfg = OmegaConf.create({"trainer": {"v1": {"medix": {}}}})
    assert judge_error_policy(cfg) == "mask"
    cfg.trainer.v1.medix.judge_errors = "zero"
    with pytest.raises(ValueError, match="judge_errors must be one of"):
        judge_error_policy(cfg)


ROWS = [(1.0, 1.0), (0.0, 1.0), (1.0, 0.0), (0.0, 0.0), (0.0, 1.0), (1.0, 1.0), (0.0, 0.0), (0.0, 1.0)]


def gdpo(monkeypatch, rows, sizes, errors=()):
    """verl's real GDPO through the trainer (what the v1 trainer passes: no prompts, no attention
    mask; the parts from the reward's results)."""
    parts = {i: {"accuracy_llm": a, "format": f} for i, (a, f) in enumerate(rows)}
    groups, start = [], 0
    for size in sizes:
        groups.append([0.9 * a + 0.1 * f for a, f in rows[start : start + size]])
        start += size
    adv, _, metrics = run(monkeypatch, groups, errors=errors, estimator="medix_gdpo", parts=parts)
    return adv, metrics


def test_gdpo_leaves_a_judge_error_out_of_every_part_and_of_the_whitening(monkeypatch):
    masked, metrics = gdpo(monkeypatch, ROWS, [5, 3], errors={4})
    judged_only, _ = gdpo(monkeypatch, ROWS[:4] + ROWS[5:], [4, 3])
    assert masked[4] == 0.0
    assert torch.allclose(masked[:4], judged_only[:4]) and torch.allclose(masked[5:], judged_only[4:])
    unmasked, _ = gdpo(monkeypatch, ROWS, [5, 3])
    assert not torch.allclose(unmasked[:4], judged_only[:4])  # unmasked, it would shift the others
    # each part counts: the same accuracy with a better format scores higher
    assert judged_only[0] > judged_only[2] and judged_only[1] > judged_only[3]
    judged = [r for i, r in enumerate(ROWS) if i != 4]
    assert metrics["gdpo/accuracy_llm/mean"] == pytest.approx(np.mean([a for a, _ in judged]))


def test_gdpo_names_a_sample_without_the_part():
    from medix_verl.integration.trainer import gdpo_parts

    with pytest.raises(RuntimeError, match="trajectory k1 has no reward part 'accuracy_llm'"):
        gdpo_parts([{"accuracy_llm": 1.0}, {"format": 1.0}], ["accuracy_llm"], ["k0", "k1"])


def test_gdpo_is_handed_the_parts_for_one_call_only(monkeypatch):
    from medix_verl.integration import medix_trainer

    gdpo(monkeypatch, ROWS, [5, 3], errors={1})
    assert medix_trainer._GDPO_PARTS.get() is None


def test_gdpo_is_an_estimator_in_verls_registry_and_verls_own_gdpo_is_refused_by_name():
    from verl.trainer.ppo import core_algos

    from medix_verl.integration.trainer import register

    trainer_cls, _ = register()
    estimator = core_algos.get_adv_estimator_fn("medix_gdpo")
    # outside the trainer's advantage step nobody has handed it the parts
    mask = torch.ones(2, 3)
    with pytest.raises(RuntimeError, match="trainer.v1.trainer_mode=medix"):
        estimator(token_level_rewards=mask, response_mask=mask, index=np.array(["g", "g"], dtype=object))
    config = OmegaConf.create({"algorithm": {"adv_estimator": "gdpo"}, "trainer": {"v1": {"trainer_mode": "medix"}}})
    with pytest.raises(ValueError, match="algorithm.adv_estimator=medix_gdpo"):
        trainer_cls(config)
