"""The local judge server (SmolLM2 from its wheel, transformers) on 127.0.0.1, used through the
project's own ChatClient and the paper's judge request."""

import asyncio
import threading

import aiohttp
import pytest
from aiohttp import web

pytestmark = pytest.mark.slow  # a SmolLM2 server for the module


@pytest.fixture(scope="module")
def local_judge(smollm2_dir):
    from medix_verl.devkit.local_judge import LocalJudge

    judge = LocalJudge(smollm2_dir, threads=1)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box = {}

    async def start():
        runner = web.AppRunner(judge.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        box["port"] = site._server.sockets[0].getsockname()[1]
        box["runner"] = runner

    def run():
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        ready.set()
        loop.run_forever()

    threading.Thread(target=run, daemon=True).start()
    assert ready.wait(60)
    yield judge, f"http://127.0.0.1:{box['port']}/v1"
    asyncio.run_coroutine_threadsafe(box["runner"].cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)


def test_paper_judge_request_gets_a_real_completion(local_judge):
    from medix_verl.clients.chat import ChatClient, reply_text
    from reward_fns import PAPER_JUDGE_PARAMS, paper_judge_messages

    judge, url = local_judge
    client = ChatClient(url, "smollm2-135m-instruct", timeout=60, retries=0)

    async def go():
        try:
            return await client.complete_choice(
                paper_judge_messages("Left lung", "Left lung", "Where?"), PAPER_JUDGE_PARAMS
            )
        finally:
            await client.aclose()

    choice = asyncio.run(go())
    text = reply_text(choice)
    assert isinstance(text, str) and text.strip()
    # max_tokens=4 of the paper's request is honoured (a reply of at most 4 tokens)
    assert len(judge.tokenizer(text, add_special_tokens=False)["input_ids"]) <= 4
    assert judge.served >= 1


@pytest.mark.parametrize(
    "body, message",
    [
        ({"messages": [], "max_tokens": 2}, "non-empty list"),
        ({"messages": [{"role": "user", "content": "hi"}], "n": 2}, "only n=1"),
        ({"messages": [{"role": "user", "content": "hi"}], "logprobs": True}, "logprobs are not supported"),
        ({"messages": [{"role": "user", "content": {"x": 1}}]}, "content must be text"),
    ],
)
def test_bad_requests_are_400_with_a_reason(local_judge, body, message):
    _, url = local_judge

    async def go():
        async with aiohttp.ClientSession() as s:
            async with s.post(f"{url}/chat/completions", json=body) as r:
                return r.status, await r.json()

    status, payload = asyncio.run(go())
    assert status == 400 and message in payload["error"]["message"]


def test_models_endpoint(local_judge):
    _, url = local_judge

    async def go():
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{url}/models") as r:
                return await r.json()

    assert asyncio.run(go())["data"][0]["id"] == "smollm2-135m-instruct"
