"""MedixDataset through verl's real multimodal path: RLHFDataset machinery, qwen_vl_utils vision
processing, the Qwen2.5-VL processor with the real Qwen vocabulary, and M-RoPE position ids."""

import asyncio

import pytest
import torch
from fixtures_data import published_rows, write_published_parquet
from helpers import compose_verl_config
from qwen_vl_utils import smart_resize

from data_prep.medix_rl_data import convert

MIN_PX, MAX_PX = 56 * 56, 224 * 224
IMAGE_PAD = 151655


@pytest.fixture(scope="module")
def parquets(tmp_path_factory):
    rows, _ = published_rows()
    good = [r for r in rows if r["id"].startswith("ok-")][:-1]  # drop the duplicate id
    base = tmp_path_factory.mktemp("mm")
    raw = write_published_parquet(base / "raw.parquet", good)
    convert(str(raw), "train", base / "prepared", min_pixels=MIN_PX, max_pixels=MAX_PX, progress=False)
    return base / "prepared" / "train.parquet", raw, good


def make_dataset(path, tiny_vl, **data_overrides):
    from verl.utils.tokenizer import hf_processor, hf_tokenizer

    from medix_verl.integration.dataset import MedixDataset

    overrides = [
        f"data.{k}={v}" for k, v in data_overrides.items() if k in ("max_prompt_length", "filter_overlong_prompts")
    ]
    overrides += [f"+data.{k}={v}" for k, v in data_overrides.items() if k in ("min_pixels", "max_pixels")]
    config = compose_verl_config(
        [f"actor_rollout_ref.model.path={tiny_vl}", "data.filter_overlong_prompts_workers=null", *overrides]
    )
    tokenizer = hf_tokenizer(str(tiny_vl))
    processor = hf_processor(str(tiny_vl))
    return MedixDataset(str(path), tokenizer, config.data, processor=processor), processor, config


async def model_inputs(ds, processor, config, item):
    """What verl's agent loop does with a dataset row before generation."""
    from verl.utils.tokenizer import build_multimodal_processor_inputs

    row = ds[item]
    messages = row["raw_prompt"]
    images, videos, _ = await type(ds).process_multi_modal_info(messages, image_patch_size=14, config=config.data)
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = build_multimodal_processor_inputs(processor, text=[text], images=images, videos=videos)
    return row, images, inputs


def expected_tokens(image_bytes_list, min_px, max_px):
    import io

    from PIL import Image

    total = 0
    grids = []
    for b in image_bytes_list:
        w, h = Image.open(io.BytesIO(b)).size
        rh, rw = smart_resize(h, w, factor=28, min_pixels=min_px, max_pixels=max_px)
        grid = (1, rh // 14, rw // 14)
        grids.append(list(grid))
        total += grid[1] * grid[2] // 4
    return total, grids


@pytest.mark.slow
def test_prepared_parquet_gives_correct_model_inputs(parquets, tiny_vl):
    import pyarrow.parquet as pq

    prepared, _, good = parquets
    table = pq.read_table(prepared).to_pylist()
    ds, processor, config = make_dataset(prepared, tiny_vl, max_prompt_length=4096)
    assert len(ds) == len(good)
    for i, src_row in enumerate(table):
        row, images, inputs = asyncio.run(model_inputs(ds, processor, config, i))
        n_pad = int((inputs["input_ids"][0] == IMAGE_PAD).sum())
        want, grids = expected_tokens([im["bytes"] for im in src_row["images"]], MIN_PX, MAX_PX)
        assert n_pad == want, src_row["extra_info"]["id"]
        if grids:
            assert inputs["image_grid_thw"].tolist() == grids
        else:
            assert images is None or len(images) == 0
        # the reward sees modality and question
        assert row["extra_info"]["modality"] == src_row["reward_model"]["ground_truth"].split(">")[0] + ">"
        assert row["extra_info"]["question"] and row["reward_model"]["ground_truth"]
        pos, _ = processor.get_rope_index(
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            image_grid_thw=inputs.get("image_grid_thw"),
            mm_token_type_ids=(inputs["input_ids"] == IMAGE_PAD).long(),
        )
        assert tuple(pos.shape) == (3, 1, inputs["input_ids"].shape[1])
        if grids:  # M-RoPE: image tokens span a 2-D grid, so height/width ids differ inside the image
            mask = inputs["input_ids"][0] == IMAGE_PAD
            assert not torch.equal(pos[1, 0, mask], pos[2, 0, mask])


@pytest.mark.slow
def test_raw_published_rows_match_prepared(parquets, tiny_vl):
    prepared, raw, good = parquets
    ds_raw, processor, config = make_dataset(raw, tiny_vl, max_prompt_length=4096, min_pixels=MIN_PX, max_pixels=MAX_PX)
    ds_pre, _, _ = make_dataset(prepared, tiny_vl, max_prompt_length=4096)
    assert len(ds_raw) == len(ds_pre) == len(good)
    for i in range(len(good)):
        _, _, a = asyncio.run(model_inputs(ds_raw, processor, config, i))
        _, _, b = asyncio.run(model_inputs(ds_pre, processor, config, i))
        assert torch.equal(a["input_ids"], b["input_ids"])
        assert ds_raw[i]["extra_info"]["modality"] == ds_pre[i]["extra_info"]["modality"]
        assert ds_raw[i]["extra_info"]["index"] == ds_raw[i]["index"] == i


@pytest.mark.slow
def test_per_image_pixel_bounds_are_honoured(parquets, tiny_vl):
    prepared, _, _ = parquets
    ds, processor, config = make_dataset(prepared, tiny_vl, max_prompt_length=4096)
    # rewrite the bounds of one row's image in place: larger max -> more tokens
    import pyarrow.parquet as pq

    rows = pq.read_table(prepared).to_pylist()
    idx = next(i for i, r in enumerate(rows) if r["extra_info"]["id"] == "ok-rgba")
    _, _, small = asyncio.run(model_inputs(ds, processor, config, idx))
    ds.dataframe = ds.dataframe.map(
        lambda r: {"images": [dict(im, min_pixels=112 * 112 * 4, max_pixels=448 * 448) for im in r["images"]]}
    )
    _, _, big = asyncio.run(model_inputs(ds, processor, config, idx))
    n_small = int((small["input_ids"] == IMAGE_PAD).sum())
    n_big = int((big["input_ids"] == IMAGE_PAD).sum())
    want_big, _ = expected_tokens([rows[idx]["images"][0]["bytes"]], 112 * 112 * 4, 448 * 448)
    assert n_big == want_big > n_small


@pytest.mark.slow
def test_overlong_filter_works(parquets, tiny_vl):
    prepared, _, good = parquets
    ds_all, processor, config = make_dataset(prepared, tiny_vl, max_prompt_length=4096)
    lengths = []
    for i in range(len(ds_all)):
        _, _, inputs = asyncio.run(model_inputs(ds_all, processor, config, i))
        lengths.append(inputs["input_ids"].shape[1])
    cut = sorted(lengths)[len(lengths) // 2]
    ds_cut, _, _ = make_dataset(prepared, tiny_vl, max_prompt_length=cut, filter_overlong_prompts=True)
    assert len(ds_cut) == sum(1 for n in lengths if n <= cut)
    assert 0 < len(ds_cut) < len(good)
