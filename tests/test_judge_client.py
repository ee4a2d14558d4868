"""ChatClient against a real HTTP server on 127.0.0.1 (medix_verl.devkit.fake_judge)."""

import asyncio
import socket
import time

import pytest

from medix_verl.clients.chat import ChatClient, ChatRequestError, ServerUnavailableError
from medix_verl.devkit.fake_judge import FakeJudge

MSG = [{"role": "user", "content": "Predicted:pneumonia\nGround Truth:lobar pneumonia"}]


def run(coro):
    return asyncio.run(coro)


async def _complete_all(client, messages_list):
    try:
        return await asyncio.gather(*(client.complete(m) for m in messages_list), return_exceptions=True)
    finally:
        await client.aclose()


def _msgs(i):
    return [{"role": "user", "content": f"Predicted:answer {i}\nGround Truth:answer {i}"}]


def test_answers_and_sends_the_payload():
    with FakeJudge() as judge:
        client = ChatClient(judge.url, "judge-model")
        out = run(_complete_all(client, [MSG]))
    assert out == ["YES"]
    sent = judge.payloads[0]
    assert sent["model"] == "judge-model" and sent["messages"] == MSG


def test_dedup_and_cache():
    with FakeJudge(latency=0.2) as judge:
        client = ChatClient(judge.url, "m")

        async def go():
            first = await asyncio.gather(*(client.complete(MSG) for _ in range(10)))
            again = await client.complete(MSG)
            await client.aclose()
            return first, again

        first, again = run(go())
    assert first == ["YES"] * 10 and again == "YES"
    assert judge.received == 1
    assert client.stats.dedup_hits == 9 and client.stats.cache_hits == 1 and client.stats.requests == 1


def test_concurrency_cap_is_respected():
    with FakeJudge(latency=0.05) as judge:
        client = ChatClient(judge.url, "m", max_concurrency=4)
        run(_complete_all(client, [_msgs(i) for i in range(20)]))
    assert judge.max_in_service == 4
    assert judge.received == 20


def test_flaky_server_is_retried():
    with FakeJudge(fail_first=2, fail_status=503) as judge:
        client = ChatClient(judge.url, "m", retries=3, backoff=0.01)
        out = run(_complete_all(client, [_msgs(i) for i in range(5)]))
    assert out == ["YES"] * 5
    assert client.stats.retries == 10 and client.stats.errors == 0
    assert judge.received == 15


def test_429_is_retried_but_404_is_not():
    with FakeJudge(fail_first=1, fail_status=429) as judge:
        client = ChatClient(judge.url, "m", retries=2, backoff=0.01)
        assert run(_complete_all(client, [MSG])) == ["YES"]
    with FakeJudge(status=404) as judge:
        client = ChatClient(judge.url, "m", retries=5, backoff=0.01)
        (err,) = run(_complete_all(client, [MSG]))
    assert isinstance(err, ChatRequestError) and "HTTP 404" in str(err)
    assert judge.received == 1 and client.stats.retries == 0


def test_malformed_body_is_a_request_error():
    with FakeJudge(malformed=True) as judge:
        client = ChatClient(judge.url, "m", retries=3, backoff=0.01)
        (err,) = run(_complete_all(client, [MSG]))
    assert isinstance(err, ChatRequestError) and "no chat completion" in str(err)
    # a 200 without a readable completion (a proxy's error page, an empty choices list) is a fault
    # of the moment like a 503: retried, then a judge error, never a verdict
    assert judge.received == 4 and err.transient and client.stats.errors == 1


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_refused_connection_raises_unavailable_with_url():
    url = f"http://127.0.0.1:{_free_port()}/v1"
    client = ChatClient(url, "m", retries=2, backoff=0.01)
    with pytest.raises(ServerUnavailableError, match=r"unreachable at http://127\.0\.0\.1:\d+/v1/chat/completions"):
        run(client.complete(MSG))
    assert client.stats.requests == 3
    # once declared dead, later calls fail at once
    with pytest.raises(ServerUnavailableError):
        run(client.complete(_msgs(1)))
    assert client.stats.requests == 3


def test_hanging_judge_times_out_and_is_declared_dead():
    with FakeJudge(hang=True) as judge:
        client = ChatClient(judge.url, "m", timeout=0.3, retries=1, backoff=0.01)
        started = time.perf_counter()
        with pytest.raises(ServerUnavailableError, match=r"never answered within 0.3s"):
            run(client.complete(MSG))
        assert time.perf_counter() - started < 5


def test_error_rate_threshold_trips():
    with FakeJudge(error_rate=0.6, seed=1) as judge:
        client = ChatClient(judge.url, "m", retries=0, max_error_rate=0.3, min_calls_for_rate=10, cache_size=0)
        results = run(_complete_all(client, [_msgs(i) for i in range(60)]))
    fatal = [r for r in results if isinstance(r, ServerUnavailableError)]
    assert fatal, "the error-rate threshold never tripped"
    assert "max_error_rate=0.3" in str(fatal[0]) and judge.url in str(fatal[0])


def test_low_error_rate_becomes_row_errors_only():
    with FakeJudge(error_rate=0.1, seed=3) as judge:
        client = ChatClient(judge.url, "m", retries=0, max_error_rate=0.5, min_calls_for_rate=10)
        results = run(_complete_all(client, [_msgs(i) for i in range(50)]))
    row_errors = [r for r in results if isinstance(r, ChatRequestError)]
    assert 0 < len(row_errors) < 15
    assert not [r for r in results if isinstance(r, ServerUnavailableError)]
    assert client.stats.errors == len(row_errors)


def test_reset_connections_are_retried_then_reported():
    with FakeJudge(reset=True) as judge:
        client = ChatClient(judge.url, "m", retries=2, backoff=0.01, max_error_rate=1.0)
        (err,) = run(_complete_all(client, [MSG]))
    assert isinstance(err, ChatRequestError) and err.kind == "broken"
    assert judge.received == 3


def test_client_works_across_event_loops():
    with FakeJudge() as judge:
        client = ChatClient(judge.url, "m", cache_size=0)
        assert run(_complete_all(client, [_msgs(1)])) == ["YES"]
        assert run(_complete_all(client, [_msgs(2)])) == ["YES"]


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="judge model name is empty"):
        ChatClient("http://127.0.0.1:1/v1", "")
    with pytest.raises(ValueError, match="judge URL is empty"):
        ChatClient("  ", "m")
