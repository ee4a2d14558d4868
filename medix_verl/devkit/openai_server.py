"""The dev kit's one OpenAI-compatible HTTP surface, as vLLM serves it: the routes
(``POST /v1/chat/completions``, ``GET /v1/models``, others on request), the completion, model-list
and error bodies, and start-up on a port. The fake judge (:mod:`.fake_judge`), the local SmolLM2
judge (:mod:`.local_judge`) and the CPU backend's generation server (:mod:`.hf_rollout`) each
answer a request their own way and speak through this.

>>> body = completion("judge", "YES", prompt_tokens=12, completion_tokens=1)
>>> body["choices"][0]["message"], body["usage"]["total_tokens"]
({'role': 'assistant', 'content': 'YES'}, 13)
>>> message_text([{"type": "image_url", "image_url": {}}, {"type": "text", "text": "Which organ?"}])
'Which organ?'
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def message_text(content) -> str:
    """A message's text: the string, or the text of its OpenAI content parts (images dropped)."""
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content


def completion(
    model: str | None,
    reply: str,
    *,
    prompt_tokens: int,
    completion_tokens: int,
    finish_reason: str = "stop",
    choice: dict | None = None,
) -> dict:
    """A ``chat.completion`` body with one choice (``choice`` adds to it, e.g. ``logprobs``)."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply},
                "finish_reason": finish_reason,
                **(choice or {}),
            }
        ],
        "usage": {
            "prompt_tokens": int(prompt_tokens),
            "completion_tokens": int(completion_tokens),
            "total_tokens": int(prompt_tokens) + int(completion_tokens),
        },
    }


def error(status: int, message: str, kind: str = "BadRequestError") -> web.Response:
    """An error as vLLM answers it (clients read ``message``)."""
    body = {"object": "error", "message": message, "type": kind, "code": status, "error": {"message": message}}
    return web.json_response(body, status=status)


def context_error(limit: int, prompt: int, completion: int | None = None) -> web.Response:
    """vLLM's words for a request longer than the model's context (``prompt`` tokens in the messages,
    ``completion`` asked for), so that clients read it as vLLM's."""
    if completion is None:
        asked, reduce = f"{prompt} tokens in the messages", "the messages"
    else:
        asked = f"{prompt + completion} tokens ({prompt} in the messages, {completion} in the completion)"
        reduce = "the messages or completion"
    return error(
        400,
        f"This model's maximum context length is {limit} tokens. However, you requested {asked}. "
        f"Please reduce the length of {reduce}.",
    )


def application(chat: Handler, model_name: Callable[[], str] | str, **more: Handler) -> web.Application:
    """The routes: ``chat`` at ``/v1/chat/completions``, the model list at ``/v1/models``, and each of
    ``more`` (``embeddings=handler``) at ``/v1/<name>`` (POST)."""

    async def models(request: web.Request) -> web.Response:
        name = model_name() if callable(model_name) else model_name
        return web.json_response({"object": "list", "data": [{"id": name, "object": "model"}]})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    for name, handler in more.items():
        app.router.add_post(f"/v1/{name}", handler)
    return app


async def serve(app: web.Application, host: str = "127.0.0.1", port: int = 0, **runner_options) -> tuple:
    """Serve ``app`` on ``host:port`` (0: a free port) in the running event loop: (runner, port)."""
    runner = web.AppRunner(app, access_log=None, **runner_options)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]
