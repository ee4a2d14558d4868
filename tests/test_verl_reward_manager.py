"""The reward inside verl 0.9.1's real reward loop: hydra-composed config, load_reward_manager,
a real DataProto, run_single, and RewardLoopWorker.compute_score_batch."""

import pytest
import torch
from helpers import compose_verl_config, make_dataproto

from medix_verl.devkit.fake_judge import FakeJudge

ROWS = [
    {
        "response": "<CT_SCAN><thinking>r</thinking><answer>Pneumothorax</answer>",
        "ground_truth": "<CT_SCAN> Pneumothorax",
    },
    {
        "response": "<X_RAY><thinking>r</thinking><answer>right pleural effusion</answer>",
        "ground_truth": "<CT_SCAN> pleural effusion",
    },
    {"response": "no format at all", "ground_truth": "<MRI_SCAN> glioma"},
]


@pytest.fixture(scope="module")
def qwen_tok(tmp_path_factory):
    from medix_verl.devkit.tiny import build_qwen_tokenizer

    path = tmp_path_factory.mktemp("qwen_tok")
    tok = build_qwen_tokenizer(path)
    return path, tok


def _overrides(judge, minilm_path, tok_path, manager):
    kw = "reward.custom_reward_function.reward_kwargs"
    return [
        f"actor_rollout_ref.model.path={tok_path}",
        "reward.custom_reward_function.path=pkg://medix_verl.integration.reward_fn",
        "reward.custom_reward_function.name=compute_score",
        f"+{kw}.judge_url={judge.url}",
        f"+{kw}.judge_model=fake",
        f"+{kw}.embed_model={minilm_path}",
        f"+{kw}.embed_device=cpu",
        *manager,
    ]


MANAGERS = {
    "medix-plugin": ["reward.reward_manager.name=medix"],
    "medix-importlib": [
        "reward.reward_manager.source=importlib",
        "reward.reward_manager.module.path=pkg://medix_verl.integration.reward_manager",
        "reward.reward_manager.name=MedixRewardManager",
    ],
    "naive+compute_score": ["reward.reward_manager.name=naive"],
}


@pytest.mark.parametrize("manager", list(MANAGERS))
def test_load_reward_manager_and_run_single(manager, qwen_tok, minilm_path):
    from verl.trainer.ppo.reward import load_reward_manager

    tok_path, tok = qwen_tok
    with FakeJudge() as judge:
        config = compose_verl_config(_overrides(judge, minilm_path, tok_path, MANAGERS[manager]))
        mgr = load_reward_manager(config, tok, reward_router_address=None, reward_model_tokenizer=None)
        if manager.startswith("medix"):
            assert type(mgr).__name__ == "MedixRewardManager"
        data = make_dataproto(tok, ROWS)
        outs = [mgr.loop.run_until_complete(mgr.run_single(data[i : i + 1])) for i in range(len(ROWS))]
    keys = {"score", "format", "modality", "accuracy_llm", "accuracy_embed", "judge_error"}
    for out in outs:
        assert keys <= set(out["reward_extra_info"])
        assert out["reward_score"] == out["reward_extra_info"]["score"]
    first, second, third = (o["reward_extra_info"] for o in outs)
    assert first["score"] == pytest.approx(1.0)
    # wrong tag, judge says YES (lenient: reference contained in answer), embed of paraphrase
    assert second["modality"] == 0.0 and second["format"] == 1.0 and second["accuracy_llm"] == 1.0
    assert third["format"] == 0.0 and third["modality"] == 0.0
    if manager.startswith("medix"):
        assert first["response_length"] == len(tok.encode(ROWS[0]["response"])) + 1
        # characters of the extracted answer: the <answer> block, else the whole (normalised) text
        assert (first["answer_length"], second["answer_length"], third["answer_length"]) == (
            len("Pneumothorax"),
            len("right pleural effusion"),
            len("no format at all"),
        )
        assert judge.received == 2  # exact match needs no call; row 3's whole-text answer goes to the judge
    rm = type(mgr).assemble_rm_scores(data, [o["reward_score"] for o in outs])
    assert rm.shape == data.batch["responses"].shape
    assert torch.isclose(rm.sum(dim=1), torch.tensor([o["reward_score"] for o in outs])).all()


def test_reward_loop_worker_end_to_end(qwen_tok, minilm_path):
    """verl's own RewardLoopWorker (the class verl runs as a Ray actor), called directly."""
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker

    tok_path, tok = qwen_tok
    with FakeJudge() as judge:
        config = compose_verl_config(_overrides(judge, minilm_path, tok_path, MANAGERS["medix-plugin"]))
        worker = RewardLoopWorker(config)
        data = make_dataproto(tok, ROWS)
        outs = worker.loop.run_until_complete(worker.compute_score_batch(data))
    assert [round(o["reward_score"], 6) for o in outs][0] == 1.0
    assert len(outs) == 3


def test_verl_managed_judge_uses_router_address(qwen_tok, minilm_path):
    from verl.trainer.ppo.reward import load_reward_manager

    tok_path, tok = qwen_tok
    with FakeJudge() as judge:
        overrides = [
            o
            for o in _overrides(judge, minilm_path, tok_path, MANAGERS["medix-plugin"])
            if "judge_url" not in o and "judge_model" not in o
        ]
        overrides.append("reward.reward_model.model_path=Qwen/Qwen3-4B-Instruct-2507")
        config = compose_verl_config(overrides)
        router = f"127.0.0.1:{judge.port}"
        mgr = load_reward_manager(config, tok, reward_router_address=router, reward_model_tokenizer=None)
        data = make_dataproto(tok, ROWS[1:2])
        out = mgr.loop.run_until_complete(mgr.run_single(data))
    assert out["reward_extra_info"]["judge_error"] == 0.0
    assert judge.payloads and judge.payloads[0]["model"] == "Qwen/Qwen3-4B-Instruct-2507"


@pytest.mark.parametrize("manager", ["medix-plugin", "naive+compute_score"])
def test_verl_managed_judge_is_asked_for_the_model_verl_serves(manager, qwen_tok, minilm_path, tmp_path):
    """verl serves its judge under reward.reward_model.model_path (vllm serve <path>);
    the reward must ask for that name, not the default hub id, and a judge_model that names
    another model is refused at start-up instead of failing every judge call."""
    from verl.trainer.ppo.reward import load_reward_manager

    tok_path, tok = qwen_tok
    with FakeJudge() as judge:
        base = [
            o
            for o in _overrides(judge, minilm_path, tok_path, MANAGERS[manager])
            if "judge_url" not in o and "judge_model" not in o
        ]
        # the judge's tokenizer verl loads from model_path (what the naive manager passes on)
        config = compose_verl_config([*base, f"reward.reward_model.model_path={tok_path}"])
        router = f"127.0.0.1:{judge.port}"
        mgr = load_reward_manager(config, tok, reward_router_address=router, reward_model_tokenizer=tok)
        out = mgr.loop.run_until_complete(mgr.run_single(make_dataproto(tok, ROWS[1:2])))
        assert out["reward_extra_info"]["judge_error"] == 0.0
        assert judge.payloads[-1]["model"] == str(tok_path)
        other = compose_verl_config(
            [
                *base,
                f"reward.reward_model.model_path={tok_path}",
                "+reward.custom_reward_function.reward_kwargs.judge_model=Qwen/Qwen3-4B-Instruct-2507",
            ]
        )
        with pytest.raises(ValueError, match="judge_model.*Qwen/Qwen3-4B-Instruct-2507.*model_path"):
            mgr = load_reward_manager(other, tok, reward_router_address=router, reward_model_tokenizer=tok)
            mgr.loop.run_until_complete(mgr.run_single(make_dataproto(tok, ROWS[1:2])))


def test_typo_in_reward_kwargs_fails_loudly(qwen_tok, minilm_path):
    from verl.trainer.ppo.reward import load_reward_manager

    tok_path, tok = qwen_tok
    with FakeJudge() as judge:
        overrides = _overrides(judge, minilm_path, tok_path, MANAGERS["medix-plugin"])
        overrides.append("+reward.custom_reward_function.reward_kwargs.embed_treshold=0.7")
        config = compose_verl_config(overrides)
        with pytest.raises(ValueError, match="embed_treshold"):
            load_reward_manager(config, tok)


def test_verl_managed_judge_scores_what_cannot_fit_its_context_without_sending_it(qwen_tok, minilm_path):
    """verl's router answers a judge's HTTP 400 with a bare 500 (a transient fault to any client):
    with a verl-managed judge, a request that cannot fit reward.reward_model.rollout.max_model_len is
    scored as the release scored it (0, judge_overlength) and never sent."""
    from verl.trainer.ppo.reward import load_reward_manager

    tok_path, tok = qwen_tok
    rows = [
        {
            "response": "<CT_SCAN><thinking>r</thinking><answer>" + "pleural effusion " * 150 + "</answer>",
            "ground_truth": "<CT_SCAN> pleural effusion on the right",
        },  # fmt: skip
        ROWS[1],
    ]
    with FakeJudge() as judge:
        base = [
            o
            for o in _overrides(judge, minilm_path, tok_path, MANAGERS["medix-plugin"])
            if "judge_url" not in o and "judge_model" not in o
        ]
        config = compose_verl_config(
            [*base, f"reward.reward_model.model_path={tok_path}", "reward.reward_model.rollout.max_model_len=400"]
        )
        mgr = load_reward_manager(
            config, tok, reward_router_address=f"127.0.0.1:{judge.port}", reward_model_tokenizer=tok
        )
        data = make_dataproto(tok, rows, response_len=400)
        long, short = (
            mgr.loop.run_until_complete(mgr.run_single(data[i : i + 1]))["reward_extra_info"] for i in (0, 1)
        )
    assert long["judge_overlength"] == 1.0 and long["judge_error"] == 0.0 and long["accuracy_llm"] == 0.0
    assert short["judge_overlength"] == 0.0 and short["judge_error"] == 0.0
    assert judge.received == 1  # only the answer that fits was sent


def test_verls_batch_path_gives_the_medix_manager_the_whole_batch(qwen_tok, minilm_path):
    """RewardLoopWorker.compute_score_batch with the medix manager: one run_batch call instead of a
    sliced DataProto and a run_single per sample, with the very same results as run_single."""
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker

    from medix_verl.integration.reward_manager import MedixRewardManager

    tok_path, tok = qwen_tok
    rows = ROWS * 4
    with FakeJudge() as judge:
        worker = RewardLoopWorker(
            compose_verl_config(_overrides(judge, minilm_path, tok_path, MANAGERS["medix-plugin"]))
        )
        mgr = worker.reward_manager
        assert isinstance(mgr, MedixRewardManager)
        data = make_dataproto(tok, rows)
        calls = {"batch": 0, "single": 0}
        run_batch, run_single = mgr.run_batch, mgr.run_single

        async def counting_batch(d):
            calls["batch"] += 1
            return await run_batch(d)

        async def counting_single(d):
            calls["single"] += 1
            return await run_single(d)

        mgr.run_batch, mgr.run_single = counting_batch, counting_single
        batched = worker.loop.run_until_complete(worker.compute_score_batch(data))
        assert calls == {"batch": 1, "single": 0}
        singles = [worker.loop.run_until_complete(run_single(data[i : i + 1])) for i in range(len(rows))]
    assert batched == singles
    # a row without a reference is refused, naming its data source, as run_single does
    bad = make_dataproto(tok, ROWS)
    bad.non_tensor_batch["reward_model"][1] = {"style": "model"}
    with pytest.raises(KeyError, match="data_source='test'"):
        worker.loop.run_until_complete(worker.compute_score_batch(bad))
