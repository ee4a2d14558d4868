"""MedixScorer: the composite reward end to end with a loopback judge and the real MiniLM embedder."""

import asyncio
import textwrap

import pytest

import reward_fns as rf
from medix_verl.clients.chat import ChatClient, ServerUnavailableError
from medix_verl.devkit.fake_judge import FakeJudge
from medix_verl.integration.reward_fn import compute_score
from medix_verl.reward.scorer import MedixScorer
from medix_verl.reward.settings import RewardSettings


def resp(answer, tag="<CT_SCAN>"):
    return f"{tag}<thinking>reasoning</thinking><answer>{answer}</answer>"


def make_scorer(judge, minilm, **settings):
    client = ChatClient(judge.url, "m", backoff=0.01, **settings.pop("client", {}))
    return MedixScorer(RewardSettings(**settings), judge=client, embedder=minilm)


def score(scorer, *args, **kwargs):
    async def go():
        try:
            return await scorer.score(*args, **kwargs)
        finally:
            await scorer.aclose()

    return asyncio.run(go())


def test_full_credit_paraphrase(minilm):
    with FakeJudge() as judge:
        out = score(
            make_scorer(judge, minilm), resp("left lower lobe pneumonia"), "<CT_SCAN> Pneumonia in the left lower lobe"
        )
    # lenient fake judge: neither contains the other -> NO; embedding: paraphrase -> 1
    assert out["accuracy_llm"] == 0.0 and out["accuracy_embed"] == 1.0
    assert out["score"] == pytest.approx(0.9 * (0.375 + 0.05) + 0.1)
    assert list(out) == list(rf.RESULT_KEYS)


def test_judge_yes_embed_no(minilm):
    with FakeJudge(policy=lambda c: "YES") as judge:
        out = score(make_scorer(judge, minilm), resp("fracture of the radius"), "<CT_SCAN> normal chest")
    assert (out["accuracy_llm"], out["accuracy_embed"], out["judge_error"]) == (1.0, 0.0, 0.0)
    assert out["score"] == pytest.approx(0.9 * (0.575 + 0.05) + 0.1)


def test_exact_match_skips_the_judge(minilm):
    with FakeJudge() as judge:
        out = score(make_scorer(judge, minilm), resp("Pneumothorax."), "<CT_SCAN> Pneumothorax")
    assert judge.received == 0
    assert out["score"] == pytest.approx(1.0)


def test_invalid_answer_skips_both(minilm):
    with FakeJudge(policy=lambda c: "YES") as judge:
        out = score(make_scorer(judge, minilm), resp("ratio 3:1"), "<CT_SCAN> ratio 3:1")
    assert judge.received == 0
    assert (out["accuracy_llm"], out["accuracy_embed"]) == (0.0, 0.0)


def test_failed_request_marks_judge_error(minilm):
    with FakeJudge(status=500) as judge:
        out = score(
            make_scorer(judge, minilm, client={"retries": 1, "max_error_rate": 1.0}),
            resp("pleural effusion on the right"),
            "<CT_SCAN> right pleural effusion",
        )
    assert out["judge_error"] == 1.0 and out["accuracy_llm"] == 0.0
    assert out["accuracy_embed"] == 1.0  # the embedding part still counts


def test_dead_judge_raises(minilm):
    scorer = MedixScorer(RewardSettings(judge_url="http://127.0.0.1:9/v1", judge_retries=0), embedder=minilm)
    with pytest.raises(ServerUnavailableError, match="127.0.0.1:9"):
        score(scorer, resp("pleural effusion"), "<CT_SCAN> effusion of the pleura")


def test_missing_judge_url_is_explained(minilm):
    scorer = MedixScorer(RewardSettings(), embedder=minilm)
    with pytest.raises(RuntimeError, match="no judge configured"):
        score(scorer, resp("pleural effusion"), "<CT_SCAN> effusion of the pleura")


def test_score_many_keeps_order_and_checks_error_rate(minilm):
    rows = [{"response": resp(f"finding {i}"), "ground_truth": f"<CT_SCAN> finding {i} seen"} for i in range(30)]
    with FakeJudge(latency=0.01) as judge:
        scorer = make_scorer(judge, minilm)

        async def go():
            try:
                return await scorer.score_many(rows)
            finally:
                await scorer.aclose()

        out = asyncio.run(go())
    assert [o["accuracy_llm"] for o in out] == [1.0] * 30
    with FakeJudge(status=500) as judge:
        scorer = make_scorer(judge, minilm, client={"retries": 0, "max_error_rate": 0.5, "min_calls_for_rate": 1000})
        with pytest.raises(ServerUnavailableError, match="in this scoring call"):
            asyncio.run(scorer.score_many(rows[:5]))


def test_custom_part_registered_from_a_file(tmp_path, minilm):
    part_file = tmp_path / "my_parts.py"
    part_file.write_text(
        textwrap.dedent(
            """
            from reward_fns import reward_part

            @reward_part("test_brevity")
            def brevity(sample):
                return 1.0 if len(sample.answer) <= 12 else 0.0
            """
        )
    )
    weights = {
        "accuracy": {"weight": 0.8, "parts": {"accuracy_llm": 0.575, "accuracy_embed": 0.375, "modality": 0.05}},
        "format": 0.1,
        "test_brevity": 0.1,
    }
    with FakeJudge() as judge:
        scorer = make_scorer(judge, minilm, weights=weights, part_modules=(str(part_file),))
        short = score(scorer, resp("Pneumothorax"), "<CT_SCAN> Pneumothorax")
        scorer = make_scorer(judge, minilm, weights=weights, part_modules=(str(part_file),))
        long = score(scorer, resp("A large right-sided pneumothorax"), "<CT_SCAN> A large right-sided pneumothorax")
    assert short["test_brevity"] == 1.0 and long["test_brevity"] == 0.0
    assert short["score"] == pytest.approx(0.8 + 0.1 + 0.1)
    assert long["score"] == pytest.approx(0.8 + 0.1)


def test_unknown_part_or_key_is_rejected():
    with pytest.raises(ValueError, match="unknown reward part"):
        RewardSettings.from_kwargs({"weights": {"format": 0.1, "nope": 1.0}})
    with pytest.raises(ValueError, match=r"unknown reward kwargs: \['judge_ulr'\]"):
        RewardSettings.from_kwargs({"judge_ulr": "x"})


def test_compute_score_entry_point(minilm_path):
    with FakeJudge() as judge:
        kwargs = dict(judge_url=judge.url, judge_model="m", embed_model=minilm_path, embed_device="cpu")

        async def go():
            a = await compute_score("slake", resp("Pneumonia"), "<CT_SCAN> Pneumonia", {"question": "q"}, **kwargs)
            b = await compute_score("slake", resp("pneumonia, left"), "<MRI_SCAN> pneumonia", None, **kwargs)
            return a, b

        a, b = asyncio.run(go())
    assert list(a) == list(b) == list(rf.RESULT_KEYS)
    assert a["score"] == pytest.approx(1.0)
    assert b["modality"] == 0.0 and b["accuracy_llm"] == 1.0


def test_paper_judge_request_is_the_releases_body(minilm):
    # the body the release's chat_with_vllm posts for create_prompt(predict, ground_truth), written out
    # from training/examples/reward_function/medical.py (its f-string ends with a newline)
    predicted, reference = "left lower lobe pneumonia", "Pneumonia in the left lower lobe"
    release_prompt = (
        "You are a helpful assistant.\n"
        'Given a predicted answer and the ground truth answer, respond with exactly "YES" if the content matches, '
        'otherwise respond with "NO".\n'
        'Start your response with "YES" or "NO" in uppercase.\n'
        "\n"
        f"Predicted:{predicted}\n"
        f"Ground Truth:{reference}\n"
    )
    release_body = {
        "model": "m",
        "messages": [{"role": "user", "content": release_prompt}],
        "max_tokens": 4,
        "temperature": 0.0,
        "chat_template_kwargs": {"enable_thinking": False},
        "top_p": 1.0,
    }
    seen = []

    def judge_policy(payload):
        seen.append(payload)
        return "NO"

    with FakeJudge(chat_policy=judge_policy) as judge:
        score(make_scorer(judge, minilm), resp(predicted), f"<CT_SCAN> {reference}")
    assert seen == [release_body]
    assert seen[0]["messages"][0]["content"].encode() == release_prompt.encode()


def test_judge_requests_never_wait_for_embeddings():
    # embeddings are held back until the judge has received every row's request: a scorer that
    # holds a row's slot until its embedding is done stalls here (its window fills with rows whose
    # embeddings cannot finish) and the wait times out
    import numpy as np

    from medix_verl.clients.embedder import BaseEmbedder

    rows = [{"response": resp(f"finding {i}"), "ground_truth": f"<CT_SCAN> other {i}"} for i in range(100)]

    class HeldBack(BaseEmbedder):
        def __init__(self, gate):
            super().__init__(batch_size=4)
            self.gate = gate

        async def _encode_batch(self, texts):
            await self.gate.wait()
            return np.ones((len(texts), 4), dtype=np.float32)

    async def go(judge):
        gate = asyncio.Event()
        scorer = MedixScorer(
            RewardSettings(judge_max_concurrency=8),
            judge=ChatClient(judge.url, "m", max_concurrency=8),
            embedder=HeldBack(gate),
        )

        async def release_when_all_judged():
            while judge.received < len(rows):
                await asyncio.sleep(0.01)
            gate.set()

        releaser = asyncio.ensure_future(release_when_all_judged())
        try:
            return await asyncio.wait_for(scorer.score_many(rows), timeout=60)
        finally:
            releaser.cancel()
            await scorer.aclose()

    with FakeJudge() as judge:
        results = asyncio.run(go(judge))
    assert len(results) == 100 and judge.received == 100
    assert all(r["accuracy_embed"] == 1.0 for r in results)  # the held-back embeddings did arrive
