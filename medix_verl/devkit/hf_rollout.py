"""The CPU backend's rollout (:mod:`.cpu_backend`), ``hf_cpu``: transformers generation in a Ray
actor per replica, fed the actor's weights after every step, with vLLM's sleep mode and its
OpenAI ``/v1/chat/completions`` (:mod:`.openai_server`), what a verl-managed judge is called
through."""

from __future__ import annotations

import asyncio
import os
from typing import Any, Optional

import torch
from verl.workers.rollout.base import BaseRollout

from ..integration.patching import require
from . import openai_server

ROLLOUT_NAME = "hf_cpu"


def register() -> None:
    from verl.workers.rollout import base
    from verl.workers.rollout.replica import RolloutReplicaRegistry

    require(base, ["_ROLLOUT_REGISTRY"], patch="CPU backend: hf_cpu rollout")
    require(RolloutReplicaRegistry, ["register"], patch="CPU backend: hf_cpu rollout")
    base._ROLLOUT_REGISTRY[(ROLLOUT_NAME, "async")] = f"{__name__}.HFServerAdapter"
    RolloutReplicaRegistry.register(ROLLOUT_NAME, lambda: _replica_class())


# ---------------------------------------------------------------------------------------------
# rollout: a transformers generation server per replica, fed weights by the actor
# ---------------------------------------------------------------------------------------------
def server_actor_name(replica_rank: int, role: str = "", suffix: str = "") -> str:
    """The Ray name of a replica's server. The policy's servers are looked up by name from its
    workers (weight sync, sleep mode); a judge's or teacher's (``role``) are not, but need names
    of their own beside the policy's."""
    return f"{ROLLOUT_NAME}_{role + '_' if role else ''}server_{replica_rank}{suffix}"


def token_log_probs(step_logits, tokens, temperature: float = 1.0) -> list[float]:
    """Log-probability of ``tokens[i]`` under ``softmax(step_logits[i] / temperature)``.

    In float64: torch's fp32 ``log_softmax`` on CPU sums the vocabulary's exponentials so that
    over 150k entries the many small ones are partly lost: for a confident token it was off by
    ~6e-4 (the actor's ``logits - logsumexp`` is not), which showed as ``actor/ppo_kl`` ~3e-4.
    """
    return [
        torch.log_softmax(step.double() / temperature, dim=-1)[tok].item()
        for step, tok in zip(step_logits, tokens, strict=True)
    ]


class HFGenerationServer:
    """Ray actor that holds a transformers copy of the policy and generates token ids.

    The methods are those verl's trainer and agent loop call on a rollout server; memory
    management (sleep / wake up / kv cache) has nothing to do on the CPU.
    """

    def __init__(self, model_path: str, trust_remote_code: bool, rollout_config: dict, replica_rank: int):
        from transformers import (
            AutoConfig,
            AutoModelForCausalLM,
            AutoModelForImageTextToText,
            AutoProcessor,
            AutoTokenizer,
        )

        torch.set_num_threads(max(1, int(os.environ.get("MEDIX_CPU_ROLLOUT_THREADS", "1"))))
        config = AutoConfig.from_pretrained(model_path, trust_remote_code=trust_remote_code)
        vision = hasattr(config, "vision_config")
        loader = AutoModelForImageTextToText if vision else AutoModelForCausalLM
        self.model = loader.from_pretrained(
            model_path, dtype=torch.float32, attn_implementation="sdpa", trust_remote_code=trust_remote_code
        ).eval()
        self.processor = (
            AutoProcessor.from_pretrained(model_path, trust_remote_code=trust_remote_code) if vision else None
        )
        self.tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=trust_remote_code)
        self.served_name = model_path  # vLLM serves `vllm serve <path>` under the path
        self.image_token_id = getattr(config, "image_token_id", None)
        self.merge = getattr(getattr(config, "vision_config", None), "spatial_merge_size", 1) or 1
        self.config = rollout_config
        self.max_model_len = int(
            rollout_config.get("max_model_len") or rollout_config["prompt_length"] + rollout_config["response_length"]
        )
        # what sleep() released and wake_up() has not brought back (vLLM's sleep mode, by tag)
        self.released: set[str] = set()
        self.replica_rank = replica_rank
        # seeded as vLLM's engine is (rollout.seed); samples still depend on the order requests arrive
        torch.manual_seed(int(rollout_config.get("seed", 0)) + replica_rank)
        self.global_steps: Optional[int] = None
        self.weight_updates = 0
        self._lock = asyncio.Lock()
        self._aborting = False
        self._reported_images = False

    # -- generation ------------------------------------------------------------------------
    async def generate(
        self,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        request_id: str,
        image_data: Optional[list[Any]] = None,
        video_data: Optional[list[Any]] = None,
        audio_data: Optional[list[Any]] = None,
        mm_processor_kwargs: Optional[dict[str, Any]] = None,
        priority: int = 0,
        **unused: Any,
    ):
        from verl.workers.rollout.replica import TokenOutput

        if video_data or audio_data:
            raise NotImplementedError(
                f"{ROLLOUT_NAME} rollout: video and audio inputs are not supported (request {request_id})"
            )
        params = dict(sampling_params)
        prompt_len, response_len = self.config["prompt_length"], self.config["response_length"]
        max_tokens = params.pop("max_tokens", params.pop("max_new_tokens", None))
        if max_tokens is None:
            max_tokens = min(response_len, prompt_len + response_len - len(prompt_ids))
        max_tokens = max(1, int(max_tokens))
        want_logprobs = bool(params.pop("logprobs", False))
        self._check_awake(f"request {request_id}")
        async with self._lock:  # one generation at a time: the CPU is the bottleneck anyway
            if self._aborting:
                return TokenOutput(
                    token_ids=[], stop_reason="aborted", extra_fields={"global_steps": self.global_steps}
                )
            token_ids, log_probs, stop = await asyncio.to_thread(
                self._generate,
                list(prompt_ids),
                params,
                max_tokens,
                image_data,
                mm_processor_kwargs or {},
                want_logprobs,
            )
        return TokenOutput(
            token_ids=token_ids,
            log_probs=log_probs,
            stop_reason=stop,
            extra_fields={"global_steps": self.global_steps},
        )

    @torch.no_grad()
    def _generate(self, prompt_ids, params, max_tokens, images, mm_kwargs, want_logprobs):
        from transformers import GenerationConfig

        inputs: dict[str, Any] = {"input_ids": torch.tensor([prompt_ids], dtype=torch.long)}
        inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
        if images:
            if self.processor is None:
                raise ValueError(f"{ROLLOUT_NAME} rollout: got images for a text-only model")
            vision = self.processor.image_processor(images=images, return_tensors="pt", **mm_kwargs)
            pads = sum(1 for t in prompt_ids if t == self.image_token_id)
            expected = int(vision["image_grid_thw"].prod(dim=-1).sum()) // (self.merge**2)
            if pads != expected:
                raise ValueError(
                    f"{ROLLOUT_NAME} rollout: the prompt has {pads} image tokens but its {len(images)} image(s) "
                    f"make {expected} (grid {vision['image_grid_thw'].tolist()})"
                )
            inputs.update(vision)
            if hasattr(self.processor, "create_mm_token_type_ids"):
                # transformers >= 5.3 builds Qwen-VL's 3D (M-RoPE) positions only from these type
                # ids; without them it silently falls back to 1D text positions, and the rollout
                # would sample from a different model than the actor trains (verl's agent loop
                # builds the same ids for the actor's position ids)
                types = self.processor.create_mm_token_type_ids([prompt_ids])
                inputs["mm_token_type_ids"] = torch.tensor(types, dtype=torch.long)
            if not self._reported_images:
                self._reported_images = True
                print(
                    f"{ROLLOUT_NAME} rollout replica {self.replica_rank}: first request with images: {len(images)} image(s), "
                    f"grid {vision['image_grid_thw'].tolist()}, {pads} image tokens",
                    flush=True,
                )
        temperature = float(params.get("temperature", 1.0) or 0.0)
        top_k = int(params.get("top_k", -1) or -1)
        sample = temperature > 0
        gen = GenerationConfig(
            max_new_tokens=max_tokens,
            do_sample=sample,
            # vLLM's meaning: top_k <= 0 is no top-k (transformers' default would be 50)
            temperature=temperature if sample else 1.0,
            top_p=float(params.get("top_p", 1.0)) if sample else 1.0,
            top_k=top_k if (sample and top_k > 0) else 0,
            repetition_penalty=float(params.get("repetition_penalty", 1.0) or 1.0),
            eos_token_id=self.model.generation_config.eos_token_id,
            pad_token_id=self.model.generation_config.pad_token_id,
            output_logits=want_logprobs,
            return_dict_in_generate=True,
        )
        out = self.model.generate(**inputs, generation_config=gen)
        new = out.sequences[0, len(prompt_ids) :].tolist()
        eos = gen.eos_token_id
        eos = set(eos if isinstance(eos, (list, tuple)) else [eos])
        stop = "completed" if new and new[-1] in eos else "length"
        log_probs = None
        if want_logprobs:
            # raw logits / temperature, as the actor computes them (top-p/top-k truncation not applied)
            scale = temperature if sample else 1.0
            log_probs = token_log_probs([step[0] for step in out.logits], new, scale)
        return new, log_probs, stop

    # -- sleep mode ------------------------------------------------------------------------
    def _check_awake(self, what: str, tags=("weights", "kv_cache")) -> None:
        asleep = sorted(self.released & set(tags))
        if asleep:
            raise RuntimeError(
                f"{ROLLOUT_NAME} replica {self.replica_rank} ({self.config.get('mode')}) got {what} while asleep: "
                f"{', '.join(asleep)} released by sleep() and not resumed by wake_up() (vLLM would have freed them)"
            )

    # -- OpenAI chat endpoint (how verl's reward loop reaches a verl-managed judge) ---------
    async def start_http(self) -> str:
        """Serve ``/v1/chat/completions`` and ``/v1/models`` on this node; returns ``host:port``."""
        import ray

        host = ray.util.get_node_ip_address().strip("[]")
        app = openai_server.application(self._http_chat, self.served_name)
        self._runner, port = await openai_server.serve(app, host)
        return f"{host}:{port}"

    async def _http_chat(self, request):
        from aiohttp import web

        error = openai_server.error
        try:
            payload = await request.json()
            messages = payload["messages"]
            if payload.get("model") != self.served_name:
                return error(404, f"The model `{payload.get('model')}` does not exist.")
            text = [
                {"role": m.get("role", "user"), "content": openai_server.message_text(m["content"])} for m in messages
            ]
            ids = self.tokenizer.apply_chat_template(
                text, add_generation_prompt=True, tokenize=True, **(payload.get("chat_template_kwargs") or {})
            )
            ids = list(ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            return error(400, f"bad request: {type(exc).__name__}: {exc}")
        if payload.get("logprobs"):
            return error(400, f"{ROLLOUT_NAME}: logprobs are not served over HTTP")
        max_tokens = max(1, int(payload.get("max_tokens") or 16))
        if len(ids) + max_tokens > self.max_model_len:
            return openai_server.context_error(self.max_model_len, len(ids), max_tokens)
        try:
            self._check_awake("a chat request")
        except RuntimeError as exc:
            # loudly, in the run's log: verl's router passes on a bare 500 without this message
            print(f"ERROR {exc}", flush=True)
            return error(503, str(exc))
        params = {k: payload[k] for k in ("temperature", "top_p", "top_k") if k in payload}
        async with self._lock:
            new, _, stop = await asyncio.to_thread(self._generate, ids, params, max_tokens, None, {}, False)
        reply = self.tokenizer.decode(new, skip_special_tokens=True)
        finish = "stop" if stop == "completed" else "length"
        body = openai_server.completion(
            self.served_name, reply, prompt_tokens=len(ids), completion_tokens=len(new), finish_reason=finish
        )
        return web.json_response(body)

    # -- weights ---------------------------------------------------------------------------
    def update_weights(self, named_tensors: dict[str, torch.Tensor], global_steps: Optional[int] = None) -> int:
        """Load the actor's weights (HF names). Every parameter must arrive; unknown names are errors."""
        self._check_awake("new weights", tags=("weights",))
        own = self.model.state_dict()
        unknown = sorted(set(named_tensors) - set(own))
        if unknown:
            raise KeyError(f"{ROLLOUT_NAME} rollout: the actor sent weights the rollout model lacks: {unknown[:5]}")
        missing = sorted(name for name in set(own) - set(named_tensors) if not _is_tied_copy(self.model, name))
        if missing:
            raise KeyError(f"{ROLLOUT_NAME} rollout: the actor did not send weights for: {missing[:5]}")
        with torch.no_grad():
            for name, tensor in named_tensors.items():
                target = own[name]
                if target.shape != tensor.shape:
                    raise ValueError(
                        f"{ROLLOUT_NAME} rollout: {name} has shape {tuple(tensor.shape)}, expected {tuple(target.shape)}"
                    )
                target.copy_(tensor.to(target.dtype))
        self.weight_updates += 1
        if global_steps is not None:
            self.global_steps = global_steps
        return len(named_tensors)

    def weight_checksum(self) -> float:
        with torch.no_grad():
            return float(sum(p.double().abs().sum() for p in self.model.parameters()))

    def stats(self) -> dict:
        return {
            "weight_updates": self.weight_updates,
            "global_steps": self.global_steps,
            "released": sorted(self.released),
        }

    def set_global_steps(self, global_steps: int) -> None:
        self.global_steps = global_steps

    # -- lifecycle calls verl makes on every rollout server --------------------------------
    async def wake_up(self, tags: Optional[list[str]] = None) -> None:
        self.released -= set(tags or ("weights", "kv_cache"))

    async def sleep(self) -> None:
        # as verl's vLLM server: nothing to free without free_cache_engine, nor in standalone mode
        if not self.config.get("free_cache_engine", True) or self.config.get("mode") == "standalone":
            return
        async with self._lock:  # drain the running generation first
            self.released = {"weights", "kv_cache"}

    def is_asleep(self) -> bool:
        return bool(self.released)

    async def clear_kv_cache(self) -> None:
        pass

    async def release_kv_cache(self) -> None:
        pass

    async def resume_kv_cache(self) -> None:
        pass

    async def wait_for_requests_to_drain(self) -> None:
        async with self._lock:
            pass

    async def abort_all_requests(self, reject_request: bool = False) -> dict:
        self._aborting = True  # queued requests return "aborted"; the running one finishes
        async with self._lock:
            pass
        return {"aborted_count": 0, "request_ids": []}

    async def resume_generation(self) -> None:
        self._aborting = False

    async def start_profile(self, **kwargs) -> None:
        pass

    async def stop_profile(self) -> None:
        pass


def _is_tied_copy(model, name: str) -> bool:
    """``lm_head.weight`` of a model with tied embeddings is the embedding matrix itself."""
    tied = getattr(model, "_tied_weights_keys", None) or {}
    keys = tied.keys() if isinstance(tied, dict) else tied
    return getattr(model.config, "tie_word_embeddings", False) and name in set(keys)


def _local_model_path(model_config) -> str:
    local = (
        getattr(model_config, "local_path", None)
        if not hasattr(model_config, "get")
        else model_config.get("local_path")
    )
    if local:
        return local
    from verl.utils.fs import copy_to_local

    return copy_to_local(model_config.get("path") if hasattr(model_config, "get") else model_config.path)


def _replica_class():
    import ray
    from verl.workers.rollout.replica import RolloutReplica

    class HFCPUReplica(RolloutReplica):
        """One :class:`HFGenerationServer` per replica, on the node of the replica's first worker."""

        async def launch_servers(self):
            node_id = await self.workers[0].__ray_call__.remote(lambda w: ray.get_runtime_context().get_node_id())
            role = "reward" if self.is_reward_model else "teacher" if getattr(self, "is_teacher_model", False) else ""
            rollout = self.config
            server = (
                ray.remote(HFGenerationServer)
                .options(
                    name=server_actor_name(self.replica_rank, role, getattr(self, "name_suffix", "")),
                    num_cpus=0,
                    max_concurrency=self.max_concurrency,
                    scheduling_strategy=ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(
                        node_id=node_id, soft=False
                    ),
                )
                .remote(
                    model_path=_local_model_path(self.model_config),
                    trust_remote_code=bool(self.model_config.get("trust_remote_code", False)),
                    rollout_config={
                        "prompt_length": rollout.prompt_length,
                        "response_length": rollout.response_length,
                        "max_model_len": getattr(rollout, "max_model_len", None),
                        "seed": getattr(rollout, "seed", 0),
                        "free_cache_engine": bool(getattr(rollout, "free_cache_engine", True)),
                        "mode": str(getattr(self.rollout_mode, "value", self.rollout_mode)).lower(),
                    },
                    replica_rank=self.replica_rank,
                )
            )
            await server.stats.remote()  # surfaces load errors here, not at the first request
            self.servers = [server]
            self._server_handle = server
            self._server_address = await server.start_http.remote()

    return HFCPUReplica


class HFServerAdapter(BaseRollout):
    """Lives in the actor worker: hands the actor's weights to its replica's generation server."""

    def __init__(self, config, model_config, device_mesh, replica_rank: int = -1):
        super().__init__(config, model_config, device_mesh)
        rank = int(os.environ.get("RANK", "0"))
        world = (
            self.config.tensor_model_parallel_size
            * self.config.data_parallel_size
            * self.config.pipeline_model_parallel_size
        )
        self.replica_rank = rank // world if replica_rank == -1 else replica_rank
        self.is_leader = rank % world == 0
        self._server = None

    def _handle(self):
        import ray

        if self._server is None:
            self._server = ray.get_actor(server_actor_name(self.replica_rank))
        return self._server

    async def resume(self, tags: list[str]):
        if self.is_leader:
            await self._handle().wake_up.remote(tags)

    async def release(self):
        if self.is_leader:
            await self._handle().sleep.remote()

    @torch.no_grad()
    async def update_weights(self, weights, global_steps: int = None, wire_format: str = "named_tensors", **kwargs):
        if wire_format != "named_tensors":
            raise NotImplementedError(f"{ROLLOUT_NAME} rollout takes full named tensors, not {wire_format!r}")
        if kwargs.get("peft_config") is not None:
            raise NotImplementedError(f"{ROLLOUT_NAME} rollout: LoRA adapters are not supported; use lora.merge=True")
        # every rank must drain the generator (FSDP gathers are collective); the leader sends
        named = {}
        for name, tensor in weights:
            tensor = tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor
            if self.is_leader:
                named[name] = tensor.detach().to("cpu", copy=True)
        if self.is_leader:
            await self._handle().update_weights.remote(named, global_steps)
