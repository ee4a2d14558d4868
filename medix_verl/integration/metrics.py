"""Per-part reward metrics for a training step, from the ``reward_extra_info`` verl keeps for
every trajectory (what :class:`medix_verl.integration.reward_manager.MedixRewardManager` returns).

>>> infos = [
...     {"score": 1.0, "accuracy_llm": 1.0, "accuracy_embed": 1.0, "format": 1.0, "modality": 1.0,
...      "judge_error": 0.0, "answer_length": 12.0, "response_length": 40.0},
...     {"score": 0.1, "accuracy_llm": 0.0, "accuracy_embed": 0.0, "format": 1.0, "modality": 0.0,
...      "judge_error": 1.0, "answer_length": 4.0, "response_length": 20.0, "gate_hedged": 1.0},
... ]
>>> m = reward_part_metrics(infos)
>>> m["reward/accuracy_llm/mean"], m["reward/judge_error_rate"], m["reward/answer_length/mean"]
(0.5, 0.5, 8.0)
>>> m["reward/gate_hedged/mean"]  # a key only some samples carry counts 0 where absent
0.5
>>> m["reward/samples"]
2

Over the samples the judge answered (what the policy is worth where the judge did not fail; the
same as the plain means when no call failed):

>>> m["reward/judged/accuracy_llm/mean"], m["reward/judged/samples"]
(1.0, 1)

How many prompt groups carry a GRPO signal (a group whose responses all scored the same has zero
advantage and contributes no policy gradient):

>>> group_spread_metrics({"a": [0.5, 0.5, 0.5], "b": [0.1, 0.9, 0.1], "c": [1.0]})
{'reward/groups': 3, 'reward/flat_group_ratio': 0.6666666666666666}
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

PREFIX = "reward"
#: logged as a rate, not a mean (same number, clearer name)
RATE_KEYS = {"judge_error": "judge_error_rate", "judge_overlength": "judge_overlength_rate"}
#: parts also logged over the judged samples only (``reward/judged/<part>/mean``)
JUDGED_KEYS = ("score", "accuracy_llm", "accuracy_embed")
#: keys that are flags carried by some samples only (0 where absent)
FLAG_PREFIXES = ("gate_",)
#: the shadow gates' per-sample keys: summed up by :func:`shadow_metrics`, not averaged
SHADOW_PREFIX = "shadow_"


def reward_part_metrics(infos: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Mean of every numeric reward part over ``infos`` (one dict per trajectory), plus
    min/max of the score and the judge error rate. Non-numeric values are ignored."""
    infos = [i for i in infos if isinstance(i, Mapping)]
    if not infos:
        return {}
    keys: dict[str, None] = {}
    for info in infos:
        for key, value in info.items():
            if not key.startswith(SHADOW_PREFIX) and as_number(value) is not None:
                keys.setdefault(key, None)
    out: dict[str, float] = {f"{PREFIX}/samples": len(infos)}
    for key in keys:
        values = [as_number(i.get(key)) for i in infos]
        if key.startswith(FLAG_PREFIXES):
            values = [0.0 if v is None else v for v in values]
        values = [v for v in values if v is not None]
        if not values:
            continue
        mean = sum(values) / len(values)
        if key in RATE_KEYS:
            out[f"{PREFIX}/{RATE_KEYS[key]}"] = mean
        else:
            out[f"{PREFIX}/{key}/mean"] = mean
        if key == "score":
            out[f"{PREFIX}/score/min"] = min(values)
            out[f"{PREFIX}/score/max"] = max(values)
    if "judge_error" in keys:
        judged = [i for i in infos if as_number(i.get("judge_error")) == 0.0]
        out[f"{PREFIX}/judged/samples"] = len(judged)
        for key in JUDGED_KEYS:
            values = [v for i in judged if (v := as_number(i.get(key))) is not None]
            if values:
                out[f"{PREFIX}/judged/{key}/mean"] = sum(values) / len(values)
    return out


def shadow_metrics(infos: Iterable[Mapping[str, Any]], reasons: Iterable[str]) -> dict[str, float]:
    """The hack alarm's view of a step (``reward/shadow/...``) from the per-sample keys the
    ``medix`` manager adds under a preset without gates (``shadow_credited``: the judge credited
    the answer; ``shadow_gate``: the robust gate that would refuse it, "" for none):

    * ``flagged_credited``: the share of judge-credited samples that the gates would refuse;
    * ``<reason>``: that share for each gate (they add up to ``flagged_credited``);
    * ``credited``: how many samples the judge credited;
    * ``judge_yes_embed_no`` / ``judge_no_embed_yes``: among judged samples, the judge and the
      embedding part disagreeing each way (a judge being fooled says yes where the embedding
      does not).

    >>> infos = [
    ...     {"accuracy_llm": 1.0, "accuracy_embed": 0.0, "judge_error": 0.0, "shadow_credited": 1.0, "shadow_gate": "master_key"},
    ...     {"accuracy_llm": 1.0, "accuracy_embed": 1.0, "judge_error": 0.0, "shadow_credited": 1.0, "shadow_gate": ""},
    ...     {"accuracy_llm": 0.0, "accuracy_embed": 0.0, "judge_error": 0.0, "shadow_credited": 0.0, "shadow_gate": ""},
    ...     {"accuracy_llm": 0.0, "accuracy_embed": 1.0, "judge_error": 0.0, "shadow_credited": 0.0, "shadow_gate": ""},
    ... ]
    >>> m = shadow_metrics(infos, ["master_key", "hedged"])
    >>> m["reward/shadow/flagged_credited"], m["reward/shadow/master_key"], m["reward/shadow/hedged"]
    (0.5, 0.5, 0.0)
    >>> m["reward/shadow/judge_yes_embed_no"], m["reward/shadow/judge_no_embed_yes"]
    (0.25, 0.25)
    """
    infos = [i for i in infos if isinstance(i, Mapping)]
    out: dict[str, float] = {}
    shadowed = [i for i in infos if as_number(i.get("shadow_credited")) is not None]
    if shadowed:
        credited = [i for i in shadowed if as_number(i.get("shadow_credited")) == 1.0]
        n = len(credited)
        gates = [str(i.get("shadow_gate") or "") for i in credited]
        out[f"{PREFIX}/shadow/credited"] = n
        out[f"{PREFIX}/shadow/flagged_credited"] = sum(1 for g in gates if g) / n if n else 0.0
        for reason in reasons:
            out[f"{PREFIX}/shadow/{reason}"] = gates.count(reason) / n if n else 0.0
    judged = [
        (as_number(i.get("accuracy_llm")), as_number(i.get("accuracy_embed")))
        for i in infos
        if as_number(i.get("judge_error")) == 0.0
    ]
    judged = [(llm, emb) for llm, emb in judged if llm is not None and emb is not None]
    if judged:
        out[f"{PREFIX}/shadow/judge_yes_embed_no"] = sum(1 for llm, emb in judged if llm >= 0.5 > emb) / len(judged)
        out[f"{PREFIX}/shadow/judge_no_embed_yes"] = sum(1 for llm, emb in judged if emb >= 0.5 > llm) / len(judged)
    return out


def group_spread_metrics(scores_by_group: Mapping[str, list[float]], tol: float = 1e-6) -> dict[str, float]:
    """``reward/flat_group_ratio``: the share of prompt groups whose scores are all equal (within
    ``tol``), i.e. groups with no GRPO advantage; ``reward/groups``: how many groups."""
    groups = [list(v) for v in scores_by_group.values() if len(v)]
    if not groups:
        return {}
    flat = sum(1 for v in groups if max(v) - min(v) <= tol)
    return {f"{PREFIX}/groups": len(groups), f"{PREFIX}/flat_group_ratio": flat / len(groups)}


def as_number(value: Any) -> float | None:
    """``value`` as a finite float, or None (non-numeric, non-scalar, NaN or infinite)."""
    if isinstance(value, bool):
        return float(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if hasattr(value, "shape") and getattr(value, "shape", ()) not in ((), (1,)):
        return None
    return number if math.isfinite(number) else None


def replica_metrics(by_worker: Mapping[str, list[dict]], before: Mapping[int, dict] | None = None):
    """``judge/replica/<i>/...`` for one step from every reward worker's cumulative per-replica
    counts (:meth:`medix_verl.clients.pool.ReplicaPool.summary` with ``counts``): requests,
    errors and ejections in the step (against ``before``, the totals of the previous step), the
    step's mean latency, and whether every worker has the replica in service. Returns
    ``(metrics, totals)``; pass ``totals`` as ``before`` next step.

    >>> w1 = [{"url": "http://a:1/v1", "requests": 10, "errors": 1, "ejections": 0, "successes": 9,
    ...        "latency_sum_s": 0.9, "in_service": True}]
    >>> w2 = [{"url": "http://a:1/v1", "requests": 6, "errors": 0, "ejections": 1, "successes": 6,
    ...        "latency_sum_s": 0.3, "in_service": False}]
    >>> m, totals = replica_metrics({"w1": w1, "w2": w2})
    >>> m["judge/replica/0/requests"], m["judge/replica/0/ejections"], m["judge/replica/0/in_service"]
    (16, 1, 0.0)
    >>> round(m["judge/replica/0/latency_mean_s"], 3)
    0.08
    >>> w1[0].update(requests=14, successes=13, latency_sum_s=1.3)
    >>> replica_metrics({"w1": w1, "w2": w2}, totals)[0]["judge/replica/0/requests"]
    4
    """
    totals: dict[int, dict] = {}
    in_service: dict[int, bool] = {}
    for replicas in by_worker.values():
        for i, r in enumerate(replicas):
            t = totals.setdefault(
                i,
                {"url": r["url"], "requests": 0, "errors": 0, "ejections": 0, "successes": 0, "latency_sum_s": 0.0},
            )
            for key in ("requests", "errors", "ejections", "successes", "latency_sum_s"):
                t[key] += r.get(key, 0)
            in_service[i] = in_service.get(i, True) and bool(r.get("in_service", True))
    before = before or {}
    out: dict[str, float] = {}
    for i, t in totals.items():
        b = before.get(i, {})
        step = {k: t[k] - b.get(k, 0) for k in ("requests", "errors", "ejections", "successes", "latency_sum_s")}
        prefix = f"judge/replica/{i}"
        out[f"{prefix}/requests"] = step["requests"]
        out[f"{prefix}/errors"] = step["errors"]
        out[f"{prefix}/ejections"] = step["ejections"]
        out[f"{prefix}/latency_mean_s"] = step["latency_sum_s"] / step["successes"] if step["successes"] else 0.0
        out[f"{prefix}/in_service"] = float(in_service[i])
    return out, totals
