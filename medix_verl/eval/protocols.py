"""How the evaluation asks its judge and reads the verdicts: two protocols.

* ``release`` (the default): the MediX-R1 release's ``evaluate`` / ``_run_eval_rounds``, byte for
  byte: its ``BASE_PROMPT`` / ``MIMIC_PROMPT`` with the ``" /no_think"`` suffix, contents as
  one-part text lists, ``"Please reevaluate and make sure your judgment is correct."`` after each
  reply, ``temperature 0, max_tokens 512, top_p 1`` and nothing else, the prediction cut after the
  last ``</think>`` (elif ``</thinking>``), each reply cut the same way and read from its first
  ``{`` to its last ``}``, its ``score`` taken as it is, ``scores.count(1) >= 2`` for the 0/1 tasks
  and the mean of the three scores for the MIMIC tasks. Where the release crashes and loses the
  sample (no parseable JSON, no ``score``, a MIMIC score that is not a number) the round is asked
  again and, if it stays unreadable, the sample is counted as a judge failure: the only deviation.
* ``medix`` (opt-in): the project's own judge: prompts that say what counts as correct, a strict
  verdict (an integer in range, else re-asked), thinking switched off through
  ``chat_template_kwargs``, an ``(empty)`` placeholder for an empty prediction.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

REEVALUATE_RELEASE = "Please reevaluate and make sure your judgment is correct."
NO_THINK = " /no_think"

RELEASE_BASE_PROMPT = """You are a medical expert.

Your task is to evaluate whether the Predicted Answer correctly answers the Medical Question, based on the Ground Truth (Correct Answer) provided.

Question:
{question}

Correct Answer:
{correct_answer}

Predicted Answer:
{predicted_answer}

Score 1 if the predicted answer matches the correct answer either fully in text or by indicating the correct option label (e.g., "B", "Option B", or a paraphrased version that clearly identifies the correct choice). Score 0 if the predicted answer is incorrect or points to the wrong option.

Respond strictly in the following JSON format:

```json
{{
"score": <score>
}}
```{no_think_suffix}"""

RELEASE_MIMIC_PROMPT = """You are a medical expert evaluating the clinical accuracy, completeness, and relevance of a generated medical report or summary.

Your task is to compare an AI-generated report or summary to a reference (gold standard) report or summary, based on a clinical instruction or question. Assess the generated output on how well it preserves key clinical information, factual correctness, and clinical reasoning relevant to the task.

Assign a score between 0 and 5 using the following scale:

0 - Completely incorrect: Clinically irrelevant, misleading, or factually wrong. No meaningful alignment with the instruction or reference.

1 - Poor match: Barely relevant or mostly incorrect. Contains significant clinical misinformation or omits nearly all critical details.

2 - Weak match: Some fragments of relevant content are present, but major clinical errors or omissions exist. Clinical utility is low.

3 - Fair match: Contains several relevant points, but includes notable errors, missing findings, or misinterpretations that affect clinical reliability.

4 - Good match: Mostly accurate and clinically sound. Minor issues or missing details, but the overall meaning and purpose are preserved.

5 - Perfect or near-perfect match: Clinically accurate, complete, and faithful to the instruction and reference. No significant omissions or errors.

Respond only in the following example JSON format:

Example JSON format:
```json
{{
"score": <score between 0 and 5>
}}
```

Now, evaluate the following:

### Clinical Instruction or Question::
{question}

### Reference Report or Summary:
{correct_answer}

### AI-Generated Report or Summary:
{predicted_answer}{no_think_suffix}"""

MEDIX_BINARY_PROMPT = (
    "You are an expert medical evaluator. Decide whether the model's answer to the question is correct "
    "according to the reference answer.\n"
    "Count it correct if it gives the reference answer in other words, or, for a multiple-choice question, "
    "the correct option label or the correct option's text. Count it wrong if it is incorrect, incomplete "
    "in a way that changes the meaning, or gives several different answers.\n\n"
    "Question:\n{question}\n\nReference answer:\n{reference}\n\nModel answer:\n{prediction}\n\n"
    'Respond with JSON only: {{"score": 1}} if correct, {{"score": 0}} if not.'
)
MEDIX_RUBRIC_PROMPT = (
    "You are an expert radiologist grading a generated radiology text against the reference.\n"
    "Score it from 0 to 5: 5 = all clinically relevant findings correct and nothing wrong added; "
    "4 = minor omissions; 3 = some important findings missing or one error; 2 = several errors or "
    "omissions; 1 = mostly wrong; 0 = unrelated or empty.\n\n"
    "Task:\n{question}\n\nReference:\n{reference}\n\nGenerated:\n{prediction}\n\n"
    'Respond with JSON only: {{"score": N}} with N an integer from 0 to 5.'
)
MEDIX_REEVALUATE = (
    "Please re-evaluate the model answer carefully against the reference once more and give your final "
    'judgement in the same JSON format ({"score": ...}).'
)
_THINK_END = re.compile(r"</think(?:ing)?>")
_JSON_OBJ = re.compile(r"\{[^{}]*\}")


def release_cut(text: str) -> str:
    """The release's cut of a reply: after the last ``</think>``, stripped; elif ``</thinking>``,
    the same; else the text unchanged (not stripped).

    >>> release_cut("<think>a</think> B. </think> C "), release_cut("<thinking>x</thinking> yes"), release_cut(" as is ")
    ('C', 'yes', ' as is ')
    """
    for tag in ("</think>", "</thinking>"):
        if tag in text:
            return text.split(tag)[-1].strip()
    return text


def release_score(reply: str, rubric: bool) -> Any:
    """The release's reading of one judge reply: cut, from the first ``{`` to the last ``}``,
    ``json.loads``, ``["score"]`` as it is. ``None`` where the release would raise (and, for the
    MIMIC rubric, where the score is not a finite number its mean could use).

    >>> release_score('<thinking>{"score": 0}</thinking>{"score": 1}', False)
    1
    >>> release_score('{"score": "1"}', False), release_score('{"score": true}', False), release_score("no json", False)
    ('1', True, None)
    >>> release_score('{"score": 3.5}', True), release_score('{"score": "4"}', True)
    (3.5, None)
    """
    text = release_cut(reply)
    start, end = text.find("{"), text.rfind("}") + 1
    try:
        value = json.loads(text[start:end])["score"]
    except (ValueError, KeyError, TypeError, IndexError):
        return None
    if rubric and (not isinstance(value, (int, float)) or not math.isfinite(value)):
        return None
    return value


def release_vote(scores: list, rubric: bool) -> float:
    """The release's per-sample score: ``1 if scores.count(1) >= 2 else 0`` (with three rounds;
    ``list.count`` compares with ``==``, so ``True`` and ``1.0`` count and ``"1"`` does not), or
    for MIMIC the mean of the scores divided by 5 (the release sums scores over ``5 x samples``).

    >>> release_vote([1, "1", True], False), release_vote([1, 0, "1"], False), release_vote([4, 3.5, True], True)
    (1.0, 0.0, 0.5666666666666667)
    """
    if rubric:
        return sum(scores) / len(scores) / 5.0
    return 1.0 if scores.count(1) * 2 > len(scores) else 0.0


def medix_score(reply: str, rubric: bool) -> int | None:
    """The ``score`` of the first JSON object in the reply if it is an integer in range, else None.

    >>> medix_score('Sure. {"score": 1}', False), medix_score('{"score": 7}', True), medix_score("yes", False)
    (1, None, None)
    """
    allowed = range(6) if rubric else range(2)
    for match in _JSON_OBJ.finditer(reply or ""):
        try:
            value = json.loads(match.group(0)).get("score")
        except (ValueError, AttributeError):
            continue
        if isinstance(value, bool):
            continue
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and value in allowed:
            return value
        return None
    return None


def medix_cut(text: str) -> str:
    """The answer part of a reply: the text after the last ``</think>`` / ``</thinking>``, stripped.

    >>> medix_cut("<think>hmm</think> B. Aspirin")
    'B. Aspirin'
    """
    ends = list(_THINK_END.finditer(text))
    return (text[ends[-1].end() :] if ends else text).strip()


def medix_vote(scores: list[int], rubric: bool) -> float:
    """Majority of the binary rounds, or the mean of the 0-5 rubric rounds divided by 5.

    >>> medix_vote([1, 0, 1], False), medix_vote([0, 0, 1], False), medix_vote([5, 4, 3], True)
    (1.0, 0.0, 0.8)
    """
    if rubric:
        return sum(scores) / len(scores) / 5.0
    return 1.0 if sum(scores) * 2 > len(scores) else 0.0


def _text_part(text: str) -> list[dict]:
    return [{"type": "text", "text": text}]


@dataclass(frozen=True)
class JudgeProtocol:
    """One way of judging: the first message, the re-evaluation turn, the request parameters and
    the reading of replies and rounds."""

    name: str
    params: dict

    def cut_prediction(self, raw: str) -> str:
        return release_cut(raw) if self.name == "release" else medix_cut(raw)

    def first_message(self, question: str, reference: str, prediction: str, rubric: bool) -> dict:
        if self.name == "release":
            template = RELEASE_MIMIC_PROMPT if rubric else RELEASE_BASE_PROMPT
            text = template.format(
                question=question, correct_answer=reference, predicted_answer=prediction, no_think_suffix=NO_THINK
            )
            return {"role": "user", "content": _text_part(text)}
        template = MEDIX_RUBRIC_PROMPT if rubric else MEDIX_BINARY_PROMPT
        text = template.format(question=question, reference=reference, prediction=prediction or "(empty)")
        return {"role": "user", "content": text}

    def reply_turns(self, reply: str) -> list[dict]:
        """What follows a judge reply in the conversation: the reply, then the request to re-evaluate."""
        if self.name == "release":
            return [
                {"role": "assistant", "content": _text_part(reply)},
                {"role": "user", "content": _text_part(REEVALUATE_RELEASE)},
            ]
        return [{"role": "assistant", "content": reply}, {"role": "user", "content": MEDIX_REEVALUATE}]

    def score(self, reply: str, rubric: bool):
        return release_score(reply, rubric) if self.name == "release" else medix_score(reply, rubric)

    def vote(self, scores: list, rubric: bool) -> float:
        return release_vote(scores, rubric) if self.name == "release" else medix_vote(scores, rubric)


PROTOCOLS = {
    "release": JudgeProtocol("release", {"temperature": 0.0, "max_tokens": 512, "top_p": 1.0}),
    "medix": JudgeProtocol(
        "medix",
        {"temperature": 0.0, "top_p": 1.0, "max_tokens": 256, "chat_template_kwargs": {"enable_thinking": False}},
    ),
}


def get_protocol(name: str) -> JudgeProtocol:
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ValueError(f"unknown judge protocol {name!r}; choose one of {sorted(PROTOCOLS)}") from None
