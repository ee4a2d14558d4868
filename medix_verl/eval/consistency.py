"""How consistent the judge is: across its three rounds, and with a deterministic reading of the
option a multiple-choice answer chose."""

from __future__ import annotations

import re
import string

from .protocols import JudgeProtocol

LETTERS = string.ascii_uppercase[:10]
_LEADING = re.compile(
    r"^(?:\(([A-J])\)"  # (B)
    r"|([A-J])[.):](?:\s|$)"  # B. / B) / B:
    r"|([A-J])$"  # B
    r"|(?i:(?:the\s+)?(?:correct\s+)?(?:option|answer|choice))\s*(?i:is)?\s*[:\-]?\s*\(?([A-J])\b)"  # Option B
)


def _verdict(score, rubric: bool, protocol: JudgeProtocol):
    """A round's verdict as the vote reads it: the release counts ``== 1``."""
    if rubric:
        return float(score)
    return score == 1 if protocol.name == "release" else int(score)


def round_shares(rounds: list[list], rubric: bool, protocol: JudgeProtocol) -> dict:
    """Share of samples whose rounds do not all agree, and whose last round differs from the first
    (the judge changed its mind when asked to re-evaluate).

    >>> from medix_verl.eval.protocols import get_protocol
    >>> round_shares([[1, 1, 1], [0, 1, 1], [1, 0, 1], [1, True, 1.0]], False, get_protocol("release"))
    {'rounds_disagree': 0.5, 'flipped': 0.25}
    """
    rounds = [r for r in rounds if r]
    if not rounds:
        return {"rounds_disagree": None, "flipped": None}
    verdicts = [[_verdict(s, rubric, protocol) for s in r] for r in rounds]
    disagree = sum(1 for v in verdicts if len(set(v)) > 1)
    flipped = sum(1 for v in verdicts if v[0] != v[-1])
    return {"rounds_disagree": disagree / len(rounds), "flipped": flipped / len(rounds)}


def chosen_option(prediction: str | None, choices: list[str] | None) -> str | None:
    """The option letter a multiple-choice answer commits to, where one can be read: a leading
    letter (``B.``, ``B)``, ``(B)``, ``B``, ``Option B``, ``Answer: B``) or exactly one option's text
    in the answer; ``None`` otherwise.

    >>> opts = ["Femur", "Ulna", "Radius"]
    >>> [chosen_option(p, opts) for p in ["B. Ulna", "(C)", "Option A", "Answer: C", "B", "the ulna"]]
    ['B', 'C', 'A', 'C', 'B', 'B']
    >>> [chosen_option(p, opts) for p in ["A femur fracture", "Ulna or radius", "maybe", "D. other"]]
    ['A', None, None, None]

    A letter whose option the source left empty was never shown (the release skips it): not an
    option (usmle_sa's questions with fewer options than letters).

    >>> chosen_option("D", ["CT", "MRI", "Biopsy", ""]), chosen_option("C", ["Flu", "Cold", "", "Sepsis"])
    (None, None)
    """
    if not prediction or not choices:
        return None
    text = prediction.strip()
    found = _LEADING.match(text)
    if found:
        letter = next(g for g in found.groups() if g)
        index = LETTERS.index(letter)
        if index < len(choices) and choices[index] and choices[index].strip():
            return letter
    lowered = text.lower()
    hits = [i for i, c in enumerate(choices) if c and c.strip() and c.strip().lower() in lowered]
    return LETTERS[hits[0]] if len(hits) == 1 else None


def option_agreement(samples: list[dict], done: dict, key_of) -> tuple[float | None, list[dict]]:
    """For multiple-choice samples whose chosen option can be read: the share on which the judge's
    0/1 verdict equals "the chosen option is the right one"; and the disagreeing samples."""
    agree, disagreeing, counted = 0, [], 0
    for s in samples:
        choices = s.get("choices")
        if s.get("kind") != "mcq" or not choices or s["answer"] not in choices:
            continue
        rec = done.get(key_of(s))
        if not rec or rec.get("score") not in (0.0, 1.0):
            continue
        chosen = chosen_option(rec.get("prediction"), choices)
        if chosen is None:
            continue
        right = LETTERS[choices.index(s["answer"])]
        counted += 1
        if (chosen == right) == (rec["score"] == 1.0):
            agree += 1
        else:
            disagreeing.append(
                {
                    "task": s["task"],
                    "id": str(s["id"]),
                    "prediction": rec.get("prediction"),
                    "chosen": chosen,
                    "correct": right,
                    "judge_score": rec["score"],
                }
            )
    return (agree / counted if counted else None), disagreeing
