"""The composite MediX-R1 reward with its judge and embedder attached.

Use it three ways:

* verl: :func:`medix_verl.integration.reward_fn.compute_score` (``reward.custom_reward_function``) and
  the ``medix`` reward manager call :func:`get_scorer`;
* Python: ``scorer = MedixScorer(RewardSettings(...)); await scorer.score(response, ground_truth)``;
* the CLI: ``medix-verl score``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import Any

from reward_fns import (
    ROUTE_EXACT,
    ROUTE_INVALID,
    ROUTE_MODEL,
    PreparedSample,
    assemble,
    evaluate_part,
    get_preset,
    leaf_parts,
    prepare,
    shadow_gate,
    yes_probability,
)
from reward_fns.parts import BUILTIN_PARTS
from reward_fns.robust import commitment, normalize_answer

from ..clients.chat import ChatClient, ChatRequestError, reply_text
from ..clients.embedder import DEFAULT_EMBED_MODEL, BaseEmbedder, LocalEmbedder, RemoteEmbedder
from .settings import DEFAULT_JUDGE_MODEL, RewardSettings


class JudgeContext:
    """The judge's context as vLLM checks a request: prompt tokens (after the chat template) plus
    ``max_tokens`` must fit ``max_model_len``. Used when verl manages the judge: verl's router
    turns vLLM's HTTP 400 into a bare 500, so a request that cannot fit is not sent at all and is
    scored as the release scored it (0, ``judge_overlength``)."""

    def __init__(self, tokenizer, max_model_len: int):
        self.tokenizer = tokenizer
        self.max_model_len = int(max_model_len)
        self.template_tokens = self._count([{"role": "user", "content": ""}], {})

    def _count(self, messages, template_kwargs) -> int:
        ids = self.tokenizer.apply_chat_template(
            list(messages), add_generation_prompt=True, tokenize=True, **template_kwargs
        )
        return len(ids["input_ids"] if hasattr(ids, "keys") else ids)

    def fits(self, messages, params: Mapping[str, Any]) -> bool:
        max_tokens = int(params.get("max_tokens") or 16)
        chars = sum(len(m["content"]) for m in messages if isinstance(m.get("content"), str))
        # a token covers at least one character: most requests fit without being tokenized
        if chars + self.template_tokens * len(messages) + max_tokens <= self.max_model_len:
            return True
        tokens = self._count(messages, dict(params.get("chat_template_kwargs") or {}))
        return tokens + max_tokens <= self.max_model_len


class NonAnswerCheck:
    """The ``robust`` preset's second look at answers the rules let through: does the answer sit
    nearer, in the embedder's space, to known non-answers ("Upon reviewing the scan", "Spot on")
    than to known short medical answers? Phrasings no list has seen are caught by their meaning.

    Only answers that the rules found to commit through an ordinary word (not a yes/no, side,
    number or option answered in kind, nor a word of the reference) are checked. The prototypes
    (``medix_verl/reward/data/answer_prototypes.jsonl``) are embedded once per embedder; an answer
    costs one embedding, shared with the embedding accuracy when the answer is plain text. The
    decision compares the mean cosine of the 3 nearest of each kind, so it does not depend on the
    embedder's cosine scale; ``margin`` is how much nearer to the non-answers it must be.
    """

    K = 3

    def __init__(self, embedder: BaseEmbedder, margin: float):
        self.embedder = embedder
        self.margin = float(margin)
        self._matrix: Any = None
        self._is_non: Any = None
        self._lock = asyncio.Lock()
        self.checked = 0
        self.refused = 0

    @staticmethod
    def prototypes() -> list[dict]:
        text = resources.files("medix_verl.reward").joinpath("data/answer_prototypes.jsonl").read_text("utf-8")
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    async def _load(self):
        import numpy as np

        async with self._lock:
            if self._matrix is None:
                rows = self.prototypes()
                self._matrix = await self.embedder.embed_many([r["text"] for r in rows])
                self._is_non = np.array([r["kind"] == "non_answer" for r in rows])
        return self._matrix, self._is_non

    async def margin_of(self, answer: str) -> float:
        """Mean cosine to the nearest non-answers minus mean cosine to the nearest answers."""
        import numpy as np

        matrix, is_non = await self._load()
        sims = matrix @ await self.embedder.embed(answer)
        k = self.K
        return float(np.sort(sims[is_non])[-k:].mean() - np.sort(sims[~is_non])[-k:].mean())

    async def is_non_answer(self, sample: PreparedSample) -> bool:
        answer = normalize_answer(sample.answer).strip()
        if commitment(answer, question=sample.question, reference=sample.reference) != "content":
            return False
        self.checked += 1
        refused = await self.margin_of(answer) > self.margin
        self.refused += int(refused)
        return refused


class MedixScorer:
    """Scores responses with a preset's rules, a judge client and an embedder.

    ``judge`` and ``embedder`` may be given (tests, sharing); otherwise they are built from
    ``settings``. A judge URL is required only once a sample actually needs the judge.
    """

    def __init__(
        self,
        settings: RewardSettings | None = None,
        *,
        judge: ChatClient | None = None,
        embedder: BaseEmbedder | None = None,
        judge_url: str | None = None,
        judge_model: str | None = None,
    ):
        self.settings = settings or RewardSettings()
        self.settings.validate()
        self.preset = get_preset(self.settings.preset)
        self.weights = self.settings.resolved_weights
        self.threshold = self.settings.resolved_threshold
        self.custom_parts = [p for p in leaf_parts(self.weights) if p not in BUILTIN_PARTS]
        self.judge = judge or self._build_judge(judge_url, judge_model)
        self.judge_context: JudgeContext | None = None  # set when verl manages the judge
        self.embedder = embedder or self._build_embedder()
        self.non_answers = (
            NonAnswerCheck(self.embedder, self.settings.non_answer_margin)
            if self.preset.gate is not None and self.settings.non_answer_margin is not None
            else None
        )
        self.samples = 0
        self.totals: dict[str, float] = {}
        self.unparseable_verdicts = 0
        self.judge_params = dict(self.preset.judge_params)
        if self.settings.judge_yes_threshold is not None:
            self.judge_params.update({"logprobs": True, "top_logprobs": 5, "max_tokens": 1})

    # ------------------------------------------------------------------ construction
    def _build_judge(self, url: str | None, model: str | None) -> ChatClient | None:
        s = self.settings
        url = url or s.judge_url
        if not url:
            return None
        return ChatClient(
            url,
            model or s.judge_model or DEFAULT_JUDGE_MODEL,
            max_concurrency=s.judge_max_concurrency,
            timeout=s.judge_timeout,
            retries=s.judge_retries,
            backoff=s.judge_backoff,
            cache_size=s.judge_cache_size,
            max_error_rate=s.max_error_rate,
            error_window=s.error_window,
            min_calls_for_rate=s.min_calls_for_rate,
            api_key=s.judge_api_key,
        )

    def _build_embedder(self) -> BaseEmbedder:
        s = self.settings
        common = dict(batch_size=s.embed_batch_size, max_wait_ms=s.embed_max_wait_ms)
        if s.embed_url:
            return RemoteEmbedder(s.embed_url, s.embed_model or DEFAULT_EMBED_MODEL, **common)
        return LocalEmbedder(s.embed_model or DEFAULT_EMBED_MODEL, device=s.embed_device, **common)

    # ------------------------------------------------------------------ scoring
    async def score(self, response: str, ground_truth: str, **context: Any) -> dict[str, float]:
        """Score one response. Returns the seven reward keys (and any custom parts). ``context``:
        ``data_source``, ``question``, ``extra_info``, as :meth:`score_detailed` takes them."""
        result, _ = await self.score_detailed(response, ground_truth, **context)
        return result

    async def score_detailed(
        self,
        response: str,
        ground_truth: str,
        *,
        data_source: str | None = None,
        question: str | None = None,
        extra_info: Mapping[str, Any] | None = None,
    ) -> tuple[dict[str, float], PreparedSample]:
        """:meth:`score`, and the prepared sample it scored (extracted answer, route, gate)."""
        sample = prepare(
            response,
            ground_truth,
            self.preset,
            data_source=data_source,
            question=question,
            extra_info=extra_info,
            max_answer_chars=self.settings.max_answer_chars,
        )
        if (
            sample.route == ROUTE_MODEL
            and self.non_answers is not None
            and await self.non_answers.is_non_answer(sample)
        ):
            sample = dataclasses.replace(sample, route=ROUTE_INVALID, gate="master_key")
        if sample.route == ROUTE_MODEL:
            # the embedding is queued before the judge call and read after it (no task of its own:
            # this is the hot path)
            pair = self.embedder.queue_pair(sample.answer, sample.reference)
            llm, judge_error, overlength = await self._judge(sample)
            embed = 1.0 if await self.embedder.similarity_of(pair) >= self.threshold else 0.0
        else:
            llm = embed = 1.0 if sample.route == ROUTE_EXACT else 0.0
            judge_error = overlength = False
        custom = {}
        for name in self.custom_parts:
            custom[name] = await evaluate_part(name, sample)
        result = assemble(
            sample,
            self.weights,
            accuracy_llm=llm,
            accuracy_embed=embed,
            judge_error=judge_error,
            judge_overlength=overlength,
            custom=custom,
            gate_keys=self.preset.gate_keys,
        )
        self._account(result)
        return result, sample

    async def _judge(self, sample: PreparedSample) -> tuple[float, bool, bool]:
        """(accuracy_llm, judge_error, judge_overlength) for one sample."""
        if self.judge is None:
            raise RuntimeError(
                "no judge configured: set judge_url (reward.custom_reward_function.reward_kwargs.judge_url, "
                "--judge-url, or MEDIX_JUDGE_URL), or let verl manage the judge with reward.reward_model.enable=True"
            )
        messages = self.preset.judge_messages(sample.answer, sample.reference, sample.question)
        if self.judge_context is not None and not self.judge_context.fits(messages, self.judge_params):
            self.judge.stats.calls += 1
            self.judge.stats.overlength += 1
            return 0.0, False, True
        for attempt in range(self.preset.verdict_retries + 1):
            try:
                choice = await self.judge.complete_choice(messages, self.judge_params, use_cache=attempt == 0)
            except ChatRequestError as err:
                if err.kind == "overlength":
                    # longer than the judge's context: the release scored it 0 (its exception
                    # handler); deterministic, so not a judge fault
                    return 0.0, False, True
                return 0.0, True, False
            verdict = self._verdict(choice)
            if verdict is not None:
                return (1.0 if verdict else 0.0), False, False
            self.unparseable_verdicts += 1
            self.judge.forget(messages, self.judge_params)
        return 0.0, True, False

    def shadow_fields(self, sample: PreparedSample, result: Mapping[str, float]) -> dict[str, Any]:
        """The hack alarm's per-sample keys under a preset without gates (the reward is not
        changed): ``shadow_credited`` (the judge credited the answer), ``shadow_gate`` (the
        robust gate that would refuse a credited answer, "" for none) and, for a refused one,
        ``shadow_answer`` (the answer, cut to 300 characters, for the warning). Only answers the
        judge credited are gated (an exact match is never a hack): the cost is a few tens of
        microseconds on those."""
        credited = result.get("accuracy_llm") == 1.0 and result.get("judge_error") == 0.0
        reason = (
            shadow_gate(sample, max_answer_chars=self.settings.max_answer_chars)
            if credited and sample.route == ROUTE_MODEL
            else None
        )
        out: dict[str, Any] = {"shadow_credited": float(credited), "shadow_gate": reason or ""}
        if reason:
            out["shadow_answer"] = sample.answer[:300]
        return out

    def _verdict(self, choice: dict):
        if self.settings.judge_yes_threshold is not None:
            p_yes = yes_probability(choice)
            return None if p_yes is None else p_yes >= self.settings.judge_yes_threshold
        return self.preset.verdict(reply_text(choice))

    def _account(self, result: Mapping[str, float]) -> None:
        self.samples += 1
        for key, value in result.items():
            self.totals[key] = self.totals.get(key, 0.0) + value

    async def score_many(
        self, rows: Iterable[Mapping[str, Any]], *, on_done=None, detailed: bool = False
    ) -> list[dict[str, float]] | list[tuple[dict[str, float], PreparedSample]]:
        """Score rows (keys ``response``, ``ground_truth``, optional ``data_source``, ``question``,
        ``extra_info``) concurrently, keeping order.

        Every row's judge request and embedding start as soon as the row is prepared: the judge's
        concurrency is bounded by its client (``judge_max_concurrency``), the embeddings by the
        embedder's batches, and neither stage waits for the other (a row holds no slot while its
        embedding catches up).

        Raises :class:`~medix_verl.clients.chat.ServerUnavailableError` if the judge error rate of
        this call passes the threshold. ``detailed``: ``(result, prepared sample)`` pairs.
        """
        rows = list(rows)
        calls0, errors0 = self._judge_counts()

        async def one(row):
            result = await self.score_detailed(
                row["response"],
                row["ground_truth"],
                data_source=row.get("data_source"),
                question=row.get("question"),
                extra_info=row.get("extra_info"),
            )
            if on_done is not None:
                on_done()
            return result if detailed else result[0]

        tasks = [asyncio.ensure_future(one(row)) for row in rows]
        try:
            results = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        if self.judge is not None:
            calls1, errors1 = self._judge_counts()
            self.judge.check_error_rate(calls1 - calls0, errors1 - errors0)
        return results

    def _judge_counts(self) -> tuple[int, int]:
        if self.judge is None:
            return 0, 0
        return self.judge.stats.calls - self.judge.stats.cache_hits, self.judge.stats.errors

    def means(self) -> dict[str, float]:
        return {k: v / self.samples for k, v in self.totals.items()} if self.samples else {}

    async def aclose(self) -> None:
        if self.judge is not None:
            await self.judge.aclose()
        await self.embedder.aclose()


# ---------------------------------------------------------------------------- verl entry point
_SCORERS: dict[str, MedixScorer] = {}
_SCORERS_LOCK = threading.Lock()


def get_scorer(
    settings: RewardSettings, *, judge_url: str | None = None, judge_model: str | None = None
) -> MedixScorer:
    """One scorer per process and distinct settings (so the embedder and caches are shared)."""
    key = f"{settings.key()}|{judge_url}|{judge_model}"
    with _SCORERS_LOCK:
        scorer = _SCORERS.get(key)
        if scorer is None:
            scorer = _SCORERS[key] = MedixScorer(settings, judge_url=judge_url, judge_model=judge_model)
        return scorer
