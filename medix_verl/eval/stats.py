"""Uncertainty and paired comparison for evaluation results (all values are shares in [0, 1];
the reports show percent).

* per task: a 95% Wilson interval for 0/1 scores, a percentile bootstrap interval for the MIMIC
  rubric means;
* over tasks: a bootstrap interval of the unweighted mean of task accuracies, resampling samples
  within each task;
* two runs on the same samples: the paired difference with a paired bootstrap interval, an exact
  McNemar p-value for 0/1 tasks (a paired bootstrap p-value for rubric tasks), Holm's correction
  over tasks.

Bootstraps are seeded, so a report is reproducible.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import binomtest

BOOTSTRAP = 2000
SEED = 0


def is_binary(values) -> bool:
    return all(v in (0.0, 1.0) for v in values)


def wilson(k: int, n: int) -> tuple[float, float]:
    """95% Wilson score interval of ``k`` successes in ``n`` trials.

    >>> [round(x, 4) for x in wilson(8, 10)]
    [0.4902, 0.9433]
    """
    if n == 0:
        return (float("nan"), float("nan"))
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return (float(ci.low), float(ci.high))


def bootstrap_mean(values, *, b: int = BOOTSTRAP, seed: int = SEED) -> tuple[float, float]:
    """Percentile 95% bootstrap interval of the mean of ``values``."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, (b, x.size))].mean(axis=1)
    return (float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5)))


def task_interval(values) -> tuple[float, float]:
    """Wilson for 0/1 scores, bootstrap otherwise."""
    values = list(values)
    if is_binary(values):
        return wilson(int(sum(values)), len(values))
    return bootstrap_mean(values)


def overall_interval(per_task: dict[str, list[float]], *, b: int = BOOTSTRAP, seed: int = SEED) -> tuple[float, float]:
    """Bootstrap interval of the unweighted mean over tasks, resampling samples within each task."""
    tasks = [np.asarray(v, dtype=float) for v in per_task.values() if len(v)]
    if not tasks:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    draws = np.zeros(b)
    for x in tasks:
        draws += x[rng.integers(0, x.size, (b, x.size))].mean(axis=1)
    draws /= len(tasks)
    return (float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5)))


def paired_bootstrap(a, b_values, *, b: int = BOOTSTRAP, seed: int = SEED) -> tuple[float, float, float]:
    """Paired bootstrap of ``mean(b - a)``: (low, high) of the 95% interval and a two-sided p-value
    (twice the share of resampled differences on the far side of 0, at most 1)."""
    d = np.asarray(b_values, dtype=float) - np.asarray(a, dtype=float)
    if d.size == 0:
        return (float("nan"), float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, (b, d.size))].mean(axis=1)
    if np.all(d == 0):
        p = 1.0
    else:
        p = float(min(1.0, 2 * min(np.mean(means <= 0), np.mean(means >= 0))))
    return (float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5)), p)


def mcnemar_exact(a, b_values) -> float:
    """Exact two-sided McNemar p-value for paired 0/1 outcomes: a binomial test of the discordant
    pairs (``a`` right and ``b`` wrong vs the reverse) at 1/2.

    >>> mcnemar_exact([1] + [0] * 9 + [1] * 5, [0] + [1] * 9 + [1] * 5)
    0.021484375
    """
    a, b_values = np.asarray(a), np.asarray(b_values)
    only_a = int(np.sum((a == 1) & (b_values == 0)))
    only_b = int(np.sum((a == 0) & (b_values == 1)))
    if only_a + only_b == 0:
        return 1.0
    return float(binomtest(min(only_a, only_b), only_a + only_b, 0.5).pvalue)


def holm(p_values: dict[str, float], alpha: float = 0.05) -> dict[str, bool]:
    """Holm's step-down correction: which hypotheses are rejected at family-wise level ``alpha``.

    >>> holm({"a": 0.01, "b": 0.04, "c": 0.03})
    {'a': True, 'b': False, 'c': False}
    >>> holm({"a": 0.01, "b": 0.02})
    {'a': True, 'b': True}
    """
    order = sorted((p, k) for k, p in p_values.items() if p == p)
    out = dict.fromkeys(p_values, False)
    m = len(order)
    for rank, (p, key) in enumerate(order):
        if p > alpha / (m - rank):
            break
        out[key] = True
    return out


def verdict_agreement(a, b_values, *, levels: int | None = None) -> dict:
    """How two judges agree on the same answers: ``n``, raw ``agreement`` (share of equal
    verdicts) and Cohen's ``kappa`` (chance-corrected; None when it is undefined, e.g. both judges
    gave one verdict throughout). ``levels``: a rubric of ``levels`` equally spaced scores over
    [0, 1] (MIMIC's 0-5 is 6): the quadratic-weighted kappa instead, named in ``kappa_kind``.

    >>> a = [1, 1, 0, 0, 1, 0, 1, 1, 0, 1]
    >>> b = [1, 0, 0, 0, 1, 0, 1, 1, 1, 1]
    >>> v = verdict_agreement(a, b)
    >>> v["n"], v["agreement"], round(v["kappa"], 4), v["kappa_kind"]
    (10, 0.8, 0.5833, 'cohen')
    >>> verdict_agreement([0.8, 0.6, 1.0], [0.8, 0.4, 1.0], levels=6)["kappa_kind"]
    'quadratic_weighted'
    """
    from sklearn.metrics import cohen_kappa_score

    a, b_values = list(a), list(b_values)
    if len(a) != len(b_values):
        raise ValueError(f"{len(a)} verdicts against {len(b_values)}")
    if not a:
        return {"n": 0, "agreement": None, "kappa": None, "kappa_kind": None}
    if levels:
        x = [int(round(v * (levels - 1))) for v in a]
        y = [int(round(v * (levels - 1))) for v in b_values]
        kind, weights, labels = "quadratic_weighted", "quadratic", list(range(levels))
    else:
        x, y = [int(round(v)) for v in a], [int(round(v)) for v in b_values]
        kind, weights, labels = "cohen", None, [0, 1]
    agreement = sum(p == q for p, q in zip(x, y)) / len(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = float(cohen_kappa_score(x, y, labels=labels, weights=weights))
    return {
        "n": len(x),
        "agreement": agreement,
        "kappa": kappa if math.isfinite(kappa) else None,
        "kappa_kind": kind,
    }
