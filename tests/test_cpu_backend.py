"""The CPU backend's rollout server on its own (the full loop runs in test_tiny_cpu_run.py):
generation with images through the real Qwen2.5-VL processor, log-probabilities that match the
actor's, and weight updates that are strict about names and shapes."""

import asyncio

import pytest
import torch
from PIL import Image

pytestmark = pytest.mark.slow  # servers and subprocesses throughout


@pytest.fixture(scope="module")
def server(tiny_vl):
    from medix_verl.devkit.hf_rollout import HFGenerationServer

    return HFGenerationServer(str(tiny_vl), False, {"prompt_length": 512, "response_length": 12}, replica_rank=0)


@pytest.fixture(scope="module")
def prompt(tiny_vl):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(str(tiny_vl))
    image = Image.new("RGB", (112, 84), (120, 30, 200))
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Which organ?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    ids = processor(text=[text], images=[image], return_tensors="pt")["input_ids"][0].tolist()
    return ids, image


def generate(server, ids, image, **params):
    sampling = {"temperature": 1.0, "top_p": 1.0, "top_k": -1, "logprobs": True, **params}
    return asyncio.run(server.generate(prompt_ids=ids, sampling_params=sampling, request_id="t", image_data=[image]))


def actor_log_probs(model_dir, model, ids, response, image):
    """Log-probs of ``response`` as verl's actor computes them: the processor verl loads (with the
    model's ``get_rope_index`` bound to it), the M-RoPE position ids of verl's agent loop
    (``AgentLoopWorker._compute_position_ids``, text row + 3 vision rows), one forward pass and
    verl's ``logprobs_from_logits``."""
    from types import SimpleNamespace

    from verl.experimental.agent_loop.agent_loop import AgentLoopWorker
    from verl.utils import hf_processor
    from verl.utils.torch_functional import logprobs_from_logits

    processor = hf_processor(str(model_dir))
    full = torch.tensor([ids + response])
    mask = torch.ones_like(full)
    mm = dict(processor.image_processor(images=[image], return_tensors="pt"))
    mm["mm_token_type_ids"] = torch.zeros_like(full)  # verl rebuilds it from the token ids
    pixel_values, grid = mm["pixel_values"], mm["image_grid_thw"]
    position_ids = AgentLoopWorker._compute_position_ids(SimpleNamespace(processor=processor), full, mask, mm)
    with torch.no_grad():
        logits = model(
            input_ids=full,
            attention_mask=mask,
            position_ids=position_ids.transpose(0, 1),
            pixel_values=pixel_values,
            image_grid_thw=grid,
        ).logits[0]
    start = len(ids)
    return logprobs_from_logits(logits[start - 1 : start - 1 + len(response)], torch.tensor(response))


def test_generates_with_images_and_returns_the_policys_log_probs(server, prompt, tiny_vl):
    ids, image = prompt
    torch.manual_seed(0)
    out = generate(server, ids, image)
    assert 1 <= len(out.token_ids) <= 12 and len(out.log_probs) == len(out.token_ids)
    assert out.stop_reason in ("completed", "length")
    # the actor recomputes log-probs over prompt + response with verl's 3D (M-RoPE) positions:
    # they must agree (that is what lets the CPU config use the rollout's log-probs as the old
    # ones, and what makes the rollout sample from the policy being trained)
    ref = actor_log_probs(tiny_vl, server.model, ids, out.token_ids, image)
    assert torch.allclose(torch.tensor(out.log_probs, dtype=torch.float32), ref, atol=2e-5), (
        out.log_probs,
        ref.tolist(),
    )


def test_token_log_probs_match_the_actor_for_a_confident_token_over_a_real_vocabulary():
    # a trained policy: one token at +11.4 and a long low tail over Qwen's 151,936 entries, where
    # torch's fp32 CPU log_softmax loses part of the tail's mass
    from verl.utils.torch_functional import logprobs_from_logits

    from medix_verl.devkit.hf_rollout import token_log_probs

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(151936, generator=g) - 5.2
    logits[7] = 11.4
    tokens = torch.tensor([7, 8])
    for temperature in (1.0, 0.7):
        scaled = torch.stack([logits, logits]) / temperature
        actor = logprobs_from_logits(scaled, tokens)  # what verl's actor computes
        exact = torch.log_softmax(scaled.double(), dim=-1)[torch.arange(2), tokens]
        got = torch.tensor(token_log_probs([logits, logits], tokens.tolist(), temperature), dtype=torch.float64)
        # exact to float64 rounding, whatever the machine's fp32 kernels (their error on this tail
        # varied from 7e-5 to 6e-4 between machines, so the test no longer leans on it)
        assert torch.allclose(got, exact, atol=1e-9), (got, exact)
        assert torch.allclose(got.float(), actor, atol=2e-5), (got, actor)
    assert -0.1 < float(token_log_probs([logits], [7])[0]) < 0  # a confident token
    with pytest.raises(ValueError):  # one token per step
        token_log_probs([logits], [7, 8])


def test_greedy_is_deterministic_and_top_k_minus_one_means_no_top_k(server, prompt):
    ids, image = prompt
    a = generate(server, ids, image, temperature=0.0)
    b = generate(server, ids, image, temperature=0.0)
    assert a.token_ids == b.token_ids
    # with top_k=-1 sampling must reach tokens outside the 50 most likely (transformers' default
    # top_k=50 would make the log-probs of a random tiny model about log(1/50))
    torch.manual_seed(1)
    out = generate(server, ids, image)
    assert min(out.log_probs) < -5.0


def test_image_token_count_mismatch_is_an_error(server, prompt):
    ids, image = prompt
    pad = server.image_token_id
    fewer = [t for i, t in enumerate(ids) if not (t == pad and i == ids.index(pad))]
    with pytest.raises(ValueError, match=r"prompt has \d+ image tokens but its 1 image\(s\) make \d+"):
        generate(server, fewer, image)


def test_weight_updates_are_applied_and_strict(server):
    state = {k: v.clone() for k, v in server.model.state_dict().items()}
    name = next(k for k in state if k.endswith("mlp.down_proj.weight"))
    before = server.weight_checksum()
    sent = dict(state)
    sent[name] = state[name] + 1.0
    tied = [k for k in state if k == "lm_head.weight"]
    for k in tied:  # the tied head is the embedding itself: it may be left out
        sent.pop(k)
    assert server.update_weights(sent, global_steps=3) == len(sent)
    assert torch.equal(server.model.state_dict()[name], state[name] + 1.0)
    assert server.weight_checksum() != before and server.stats() == {
        "weight_updates": 1,
        "global_steps": 3,
        "released": [],
    }
    with pytest.raises(KeyError, match="lacks: \\['model.not_a_weight'\\]"):
        server.update_weights({**sent, "model.not_a_weight": torch.zeros(1)})
    with pytest.raises(KeyError, match="did not send weights for"):
        server.update_weights({k: v for k, v in sent.items() if k != name})
    with pytest.raises(ValueError, match=f"{name} has shape"):
        server.update_weights({**sent, name: torch.zeros(3, 3)})
    server.update_weights(state)  # restore for other tests


def test_cpu_platform_is_opt_in(monkeypatch):
    from medix_verl.devkit import cpu_backend

    monkeypatch.delenv("VERL_PLATFORM", raising=False)
    assert not cpu_backend.requested()
    monkeypatch.setenv("VERL_PLATFORM", "CPU")
    assert cpu_backend.requested()


def test_sleep_mode_is_vllms(tiny_vl, prompt):
    """sleep releases weights and KV cache (as verl's vLLM server does, unless free_cache_engine is
    false or the replica is standalone); wake_up brings them back by tag; a request or new weights
    while asleep is an error, never a silent generation from freed memory."""
    from medix_verl.devkit.hf_rollout import HFGenerationServer

    cfg = {"prompt_length": 512, "response_length": 4, "mode": "hybrid", "free_cache_engine": True}
    server = HFGenerationServer(str(tiny_vl), False, cfg, replica_rank=0)
    ids, image = prompt
    asyncio.run(server.sleep())
    assert server.is_asleep()
    with pytest.raises(RuntimeError, match="while asleep: kv_cache, weights released by sleep"):
        generate(server, ids, image)
    asyncio.run(server.wake_up(["weights"]))  # verl's update_weights: weights first ...
    server.update_weights(server.model.state_dict())
    with pytest.raises(RuntimeError, match="while asleep: kv_cache"):
        generate(server, ids, image)
    asyncio.run(server.wake_up(["kv_cache"]))  # ... then the KV cache
    assert len(generate(server, ids, image).token_ids) >= 1
    for kept in ({"free_cache_engine": False}, {"mode": "standalone"}):
        other = HFGenerationServer(str(tiny_vl), False, {**cfg, **kept}, replica_rank=1)
        asyncio.run(other.sleep())
        assert not other.is_asleep()


def test_chat_endpoint_answers_as_vllm_does(smollm2_dir):
    """The OpenAI endpoint a verl-managed judge is reached through: the served name is the model
    path, an unknown model is 404, a request beyond max_model_len is vLLM's HTTP 400, asleep is 503."""
    import json
    import urllib.error
    import urllib.request

    from medix_verl.devkit.hf_rollout import HFGenerationServer

    cfg = {"prompt_length": 120, "response_length": 8, "mode": "colocated", "free_cache_engine": True}
    server = HFGenerationServer(str(smollm2_dir), False, cfg, replica_rank=0)

    async def go():
        address = await server.start_http()

        def post(body):
            req = urllib.request.Request(
                f"http://{address}/v1/chat/completions", json.dumps(body).encode(), {"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(req, timeout=60) as r:
                    return r.status, json.loads(r.read())
            except urllib.error.HTTPError as e:
                return e.code, json.loads(e.read())

        ask = {"model": str(smollm2_dir), "messages": [{"role": "user", "content": "Is 2 even? YES or NO."}]}
        out = [await asyncio.to_thread(post, {**ask, "max_tokens": 2})]
        out.append(await asyncio.to_thread(post, {**ask, "model": "Qwen/Qwen3-4B-Instruct-2507"}))
        out.append(await asyncio.to_thread(post, {**ask, "messages": [{"role": "user", "content": "word " * 300}]}))
        await server.sleep()
        out.append(await asyncio.to_thread(post, ask))
        return address, out

    address, (ok, unknown, long, asleep) = asyncio.run(go())
    assert ok[0] == 200 and ok[1]["model"] == str(smollm2_dir) and ok[1]["choices"][0]["message"]["content"]
    assert ok[1]["usage"]["completion_tokens"] <= 2
    assert unknown[0] == 404
    assert long[0] == 400 and "maximum context length is 128 tokens" in long[1]["message"]
    assert asleep[0] == 503 and "while asleep" in asleep[1]["message"]
