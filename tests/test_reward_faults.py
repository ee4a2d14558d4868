"""Judge faults never become rewards: replies without content, cancelled callers of a shared
request, malformed log-probabilities."""

import asyncio
import math

import pytest

import reward_fns as rf
from medix_verl.clients.chat import ChatClient, ChatRequestError
from medix_verl.devkit.fake_judge import FakeJudge
from medix_verl.reward.scorer import MedixScorer
from medix_verl.reward.settings import RewardSettings

MSG = [{"role": "user", "content": "Predicted:pneumonia\nGround Truth:pneumonia"}]
EMPTY_BODIES = [
    {"choices": [{"index": 0, "message": {"role": "assistant", "content": None}}]},
    {"choices": [{"index": 0, "message": {"role": "assistant"}}]},
    {"choices": []},
    {"object": "chat.completion"},
    {"choices": [{"index": 0, "message": {"role": "assistant", "content": "   "}}]},
]


@pytest.mark.parametrize("body", EMPTY_BODIES)
def test_a_reply_without_content_is_a_retried_uncached_judge_error(body):
    with FakeJudge(body_policy=lambda payload: body) as judge:
        client = ChatClient(judge.url, "m", retries=2, backoff=0.01, max_error_rate=1.0)

        async def go():
            try:
                first = await asyncio.gather(client.complete_choice(MSG), return_exceptions=True)
                second = await asyncio.gather(client.complete_choice(MSG), return_exceptions=True)
                return first[0], second[0]
            finally:
                await client.aclose()

        first, second = asyncio.run(go())
    assert isinstance(first, ChatRequestError) and isinstance(second, ChatRequestError)
    assert judge.received == 6  # 3 attempts each: retried, and the failure was not cached
    assert client.stats.errors == 2 and client.stats.cache_hits == 0


def score_against(body, minilm, **settings):
    """One paraphrase (it needs the judge) scored against a judge that always answers ``body``."""
    with FakeJudge(body_policy=lambda payload: body) as judge:
        scorer = MedixScorer(
            RewardSettings(max_error_rate=1.0, **settings),
            judge=ChatClient(judge.url, "m", retries=1, backoff=0.01, max_error_rate=1.0),
            embedder=minilm,
        )

        async def go():
            try:
                return await scorer.score("<CT_SCAN><thinking>r</thinking><answer>lobar pneumonia</answer>",
                                          "<CT_SCAN> pneumonia")  # fmt: skip
            finally:
                await scorer.aclose()

        return asyncio.run(go())


def test_the_scorer_counts_a_contentless_reply_as_a_judge_error(minilm):
    result = score_against(EMPTY_BODIES[0], minilm)
    assert result["judge_error"] == 1.0 and result["accuracy_llm"] == 0.0


def test_a_cancelled_caller_does_not_fail_the_others_waiting_on_the_same_request():
    with FakeJudge(latency=0.3) as judge:
        client = ChatClient(judge.url, "m")

        async def go():
            owner = asyncio.ensure_future(client.complete(MSG))
            await asyncio.sleep(0.05)
            joiner = asyncio.ensure_future(client.complete(MSG))
            await asyncio.sleep(0.05)
            owner.cancel()  # what asyncio.wait_for does on a timeout
            try:
                return await joiner, owner.cancelled()
            finally:
                await client.aclose()

        reply, cancelled = asyncio.run(go())
    assert cancelled and reply == "YES" and judge.received == 1 and client.stats.dedup_hits == 1


@pytest.mark.parametrize(
    "top",
    [
        [{"token": "YES", "logprob": float("nan")}, {"token": "NO", "logprob": -1.0}],
        [{"token": "YES", "logprob": "abc"}],
        [{"token": "YES", "logprob": 0.5}],  # a probability above 1
        ["YES"],
        "YES",
    ],
)
def test_malformed_logprobs_are_unreadable_not_a_silent_no(top):
    assert rf.yes_probability({"logprobs": {"content": [{"top_logprobs": top}]}}) is None


def test_the_logprob_verdict_path_turns_bad_logprobs_into_judge_errors(minilm):
    bad = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "YES"},
                        "logprobs": {"content": [{"token": "YES", "logprob": math.nan,
                                                  "top_logprobs": [{"token": "YES", "logprob": math.nan}]}]}}]}  # fmt: skip
    assert score_against(bad, minilm, judge_yes_threshold=0.5)["judge_error"] == 1.0


def test_sessions_close_with_each_event_loop(minilm):
    # verl's naive manager (and scripts) may call the async compute_score under asyncio.run each
    # time: every loop's HTTP session must close with its loop, with no "Unclosed client session"
    import gc
    import warnings

    from medix_verl.integration.reward_fn import compute_score
    from medix_verl.reward.scorer import get_scorer

    with FakeJudge() as judge, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kwargs = {"judge_url": judge.url, "judge_model": "m", "embed_model": "unused-here"}
        scorer = get_scorer(RewardSettings.from_kwargs(kwargs))
        scorer.embedder = minilm
        for i in range(3):
            asyncio.run(
                compute_score(
                    "d", f"<CT_SCAN><thinking>r</thinking><answer>x{i} y</answer>", "<CT_SCAN> z", None, **kwargs
                )
            )
        gc.collect()
    assert scorer.judge.sessions_opened == 3 and scorer.judge.sessions_closed == 3
    assert not [w for w in caught if "Unclosed" in str(w.message)]


# ----------------------------------------------------------------------------- item 7: keys and exposure
def test_each_key_goes_only_to_its_server(tmp_path, monkeypatch):
    import json
    import subprocess

    from test_evaluate import eval_cmd, judge_policy, policy, write_tasks

    monkeypatch.setenv("OPENAI_API_KEY", "sk-ambient")  # read by nothing of ours
    write_tasks(tmp_path / "data")
    env = dict(__import__("os").environ, MEDIX_JUDGE_API_KEY="judge-secret", MEDIX_MODEL_API_KEY="model-secret")
    with FakeJudge(chat_policy=policy) as model, FakeJudge(chat_policy=judge_policy) as judge:
        cmd = eval_cmd(tmp_path / "data", tmp_path / "out", model.url, judge.url, "--max-failure-rate", "1")
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
        assert proc.returncode == 0, proc.stderr
    assert set(model.authorizations) == {"Bearer model-secret"}
    assert set(judge.authorizations) == {"Bearer judge-secret"}
    assert json.loads((tmp_path / "out" / "results.json").read_text())
    with FakeJudge() as judge:
        asyncio.run(ChatClient(judge.url, "m").complete(MSG))
    assert judge.authorizations == [None]  # no key configured: none sent, whatever the environment holds
    assert RewardSettings.from_kwargs({}).judge_api_key is None
    monkeypatch.setenv("MEDIX_JUDGE_API_KEY", "judge-secret")
    assert RewardSettings.from_kwargs({}).judge_api_key == "judge-secret"


def test_a_request_beyond_the_judges_context_is_overlength_not_a_fault(minilm):
    """vLLM's HTTP 400 for a prompt beyond --max-model-len is deterministic: scored 0 as
    the release does, counted as judge_overlength, sent once, never toward the error rate. Any
    other 400 stays a judge error."""
    with FakeJudge(context_chars=600) as judge:
        client = ChatClient(judge.url, "m", retries=3, backoff=0.01, min_calls_for_rate=1, max_error_rate=0.0)
        scorer = MedixScorer(RewardSettings(), judge=client, embedder=minilm)

        async def go():
            try:
                long = await scorer.score(
                    "<X_RAY><thinking>t</thinking><answer>" + "opacity " * 200 + "</answer>", "<X_RAY> pneumonia"
                )
                short = await scorer.score("<X_RAY><thinking>t</thinking><answer>lobar pneumonia</answer>",
                                           "<X_RAY> pneumonia")  # fmt: skip
                return long, short
            finally:
                await scorer.aclose()

        long, short = asyncio.run(go())
    assert long["judge_overlength"] == 1.0 and long["judge_error"] == 0.0 and long["accuracy_llm"] == 0.0
    assert short["judge_overlength"] == 0.0 and short["judge_error"] == 0.0
    assert client.stats.overlength == 1 and client.stats.errors == 0 and judge.received == 2
    assert client._fatal is None
    with FakeJudge(status=400) as judge:
        client = ChatClient(judge.url, "m", retries=3, backoff=0.01, max_error_rate=1.0)

        async def other():
            try:
                with pytest.raises(ChatRequestError) as err:
                    await client.complete([{"role": "user", "content": "x"}])
                return err.value
            finally:
                await client.aclose()

        err = asyncio.run(other())
    assert err.kind == "http" and client.stats.errors == 1 and client.stats.overlength == 0


@pytest.mark.slow
def test_two_thousand_samples_through_every_fault_at_once(minilm):
    """2,000 samples scored against a judge that mixes every fault (HTTP 200 without content,
    5xx, reset connections, replies slower than the timeout) while a tenth of the callers are
    cancelled, as verl's rate limiter cancels them. No sample is scored from a fault: every sample
    without judge_error has the verdict its answer deserves; the counts reconcile; nothing hangs."""
    import random
    import time

    n = 2000
    rng = random.Random(7)

    def contentless(payload):
        return (
            {"choices": [{"index": 0, "message": {"role": "assistant", "content": None}}]}
            if rng.random() < 0.06
            else None
        )

    samples = []
    for i in range(n):
        deserves_yes = i % 2 == 0
        answer = f"pneumonia case {i} in the left lower lobe" if deserves_yes else f"fracture {i} of the femur"
        samples.append(
            (f"<X_RAY><thinking>t</thinking><answer>{answer}</answer>", f"<X_RAY> pneumonia case {i}", deserves_yes)
        )
    cancelled_ids = set(rng.sample(range(n), n // 10))
    timeout, retries = 0.5, 2
    with FakeJudge(
        error_rate=0.05, reset_rate=0.03, stall_rate=0.03, stall_s=3.0, body_policy=contentless, seed=3
    ) as judge:
        client = ChatClient(judge.url, "m", timeout=timeout, retries=retries, backoff=0.01, max_concurrency=64,
                            max_error_rate=1.0)  # fmt: skip
        scorer = MedixScorer(RewardSettings(max_error_rate=1.0), judge=client, embedder=minilm)

        async def one(i):
            response, truth, _ = samples[i]
            call = scorer.score(response, truth)
            if i in cancelled_ids:
                return await asyncio.wait_for(call, timeout=0.02)  # the caller gives up: cancelled
            return await call

        async def go():
            try:
                return await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True), 300)
            finally:
                await scorer.aclose()

        started = time.perf_counter()
        results = asyncio.run(go())
        elapsed = time.perf_counter() - started
    cancelled = [r for r in results if isinstance(r, asyncio.TimeoutError)]
    others = [r for r in results if isinstance(r, BaseException) and not isinstance(r, asyncio.TimeoutError)]
    assert not others, others[:3]
    scored = [(i, r) for i, r in enumerate(results) if isinstance(r, dict) and r["judge_error"] == 0.0]
    errored = [(i, r) for i, r in enumerate(results) if isinstance(r, dict) and r["judge_error"] == 1.0]
    assert len(scored) + len(errored) + len(cancelled) == n  # counts reconcile
    assert len(cancelled) >= n // 20 and len(errored) > 0 and len(scored) > n // 2
    # not one verdict made of a fault: every judged sample got exactly the verdict it deserves
    wrong = [i for i, r in scored if r["accuracy_llm"] != (1.0 if samples[i][2] else 0.0)]
    assert wrong == []
    assert all(r["accuracy_llm"] == 0.0 for _, r in errored)
    # the client's own ledger agrees: every errored sample is one failed call
    assert client.stats.errors >= len(errored)
    # bounded: a call takes at most (retries + 1) attempts of `timeout` plus backoff, in parallel
    assert elapsed < 240, elapsed
