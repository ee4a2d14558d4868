"""Calibrate the embedding-accuracy threshold for an embedding model on labelled pairs.

Pairs: JSONL rows ``{"a": ..., "b": ..., "same": 1|0, "category": optional}``; ``same=1`` for
answers that mean the same (synonyms, abbreviations, paraphrases), ``0`` for near misses
(laterality, negation, severity, a different finding). The package ships such a set, written
for this project: ``medix_verl/reward/data/embed_pairs.jsonl``.

The best threshold maximises Youden's J (true-positive rate minus false-positive rate); ties
go to the higher threshold (fewer false credits).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..jsonl import JsonlError, iter_objects

DEFAULT_PAIRS = Path(__file__).parent / "data" / "embed_pairs.jsonl"


@dataclass
class Calibration:
    thresholds: np.ndarray
    tpr: np.ndarray
    fpr: np.ndarray
    auc: float
    best_threshold: float
    best_tpr: float
    best_fpr: float
    similarities: np.ndarray
    labels: np.ndarray


def read_pairs(path: str | Path) -> list[dict]:
    rows = []
    for lineno, row in iter_objects(path):
        if not isinstance(row.get("a"), str) or not isinstance(row.get("b"), str):
            raise JsonlError(f"{path}:{lineno}: need string fields 'a' and 'b'")
        if row.get("same") not in (0, 1, True, False):
            raise JsonlError(f"{path}:{lineno}: 'same' must be 0 or 1, got {row.get('same')!r}")
        rows.append(row)
    labels = {int(r["same"]) for r in rows}
    if labels != {0, 1}:
        raise JsonlError(f"{path}: need pairs of both labels (same=1 and same=0), got {sorted(labels)}")
    return rows


def roc(similarities: np.ndarray, labels: np.ndarray) -> Calibration:
    """ROC over every distinct similarity as a threshold (credit when similarity >= threshold),
    computed by scikit-learn; the best threshold maximises Youden's J, ties to the higher one."""
    from sklearn.metrics import roc_auc_score, roc_curve

    similarities, labels = np.asarray(similarities, dtype=np.float64), np.asarray(labels).astype(int)
    fpr, tpr, thresholds = roc_curve(labels, similarities, drop_intermediate=False)
    # scikit-learn starts with a threshold above every score (nothing credited): not a real choice
    fpr, tpr, thresholds = fpr[1:], tpr[1:], thresholds[1:]
    auc = float(roc_auc_score(labels, similarities))
    j = tpr - fpr
    best = int(np.flatnonzero(j == j.max())[0])  # thresholds descend: first = highest threshold
    return Calibration(
        thresholds, tpr, fpr, auc, float(thresholds[best]), float(tpr[best]), float(fpr[best]), similarities, labels
    )


def calibrate(pairs: list[dict], embedder) -> Calibration:
    a = embedder.encode_now([p["a"] for p in pairs])
    b = embedder.encode_now([p["b"] for p in pairs])
    # float32 unit vectors give cosines a rounding step past +-1 (1.0000001 for identical texts):
    # a cosine is in [-1, 1], and so must be any threshold offered as embed_threshold
    sims = np.clip(np.sum(a.astype(np.float64) * b, axis=1), -1.0, 1.0)
    return roc(sims, np.array([int(p["same"]) for p in pairs]))


def report(cal: Calibration, pairs: list[dict], current: float = 0.8) -> str:
    lines = [
        f"pairs: {len(pairs)} ({int(cal.labels.sum())} same, {int((1 - cal.labels).sum())} different)",
        f"ROC AUC: {cal.auc:.3f}",
        "threshold    TPR    FPR",
    ]
    for t, tp, fp in zip(cal.thresholds, cal.tpr, cal.fpr):
        lines.append(f"   {t:7.4f}  {tp:5.2f}  {fp:5.2f}")
    at = cal.similarities >= current
    cur_tpr = (at & (cal.labels == 1)).sum() / cal.labels.sum()
    cur_fpr = (at & (cal.labels == 0)).sum() / (1 - cal.labels).sum()
    lines.append(f"at the paper's threshold {current:g}: TPR {cur_tpr:.2f}, FPR {cur_fpr:.2f}")
    cats: dict[str, list] = {}
    for p, s in zip(pairs, cal.similarities):
        cats.setdefault(p.get("category", "?") + (" (same)" if p["same"] else " (different)"), []).append(s)
    for cat, values in sorted(cats.items()):
        lines.append(f"  {cat:32s} mean similarity {np.mean(values):.3f} (n={len(values)})")
    lines.append(f"best threshold (Youden J): {cal.best_threshold:.4f}  TPR {cal.best_tpr:.2f}  FPR {cal.best_fpr:.2f}")
    return "\n".join(lines)
