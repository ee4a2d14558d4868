"""A reward-hacking audit of rollouts already on disk (``medix-verl audit``).

Each row is scored under the chosen preset (``release`` by default) and its answer
also goes through the ``robust`` preset's gates in shadow (:func:`reward_fns.shadow_gate`; its
reward is not changed). The question the audit answers: of the answers the judge credited, how
many would the gates refuse, and why? A policy that learned to fool its judge ("Let me solve this
step by step", a bare ":", a list of every candidate finding) shows up here before the evaluation
collapses.

Rows are read in either form:

* what ``medix-verl score`` reads: ``id``, ``response``, ``ground_truth`` (``<TAG> answer``),
  optional ``question``, ``data_source``;
* what verl dumps with ``trainer.rollout_data_dir`` (one ``<step>.jsonl`` per step; a folder of
  them is read whole): ``output``, ``gts``, ``uid``, ``step``, ``input``. The id is
  ``<step>/<uid>``; the question is the prompt's last user turn.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reward_fns import GATES, shadow_gate

from ..jsonl import JsonlError, iter_objects

#: examples kept per gate in audit.json
EXAMPLES_PER_REASON = 3


def question_from_prompt(prompt: str) -> str:
    """The last user turn of a chat prompt verl decoded without special tokens.

    >>> [question_from_prompt(p) for p in ("system\\nBe brief.\\nuser\\nAn effusion?\\nassistant\\n", "Which organ?")]
    ['An effusion?', 'Which organ?']
    """
    at = prompt.rfind("\nuser\n")
    if at >= 0:
        text = prompt[at + len("\nuser\n") :]
    elif prompt.startswith("user\n"):
        text = prompt[len("user\n") :]
    else:
        return prompt.strip()
    end = text.rfind("\nassistant")
    return (text[:end] if end >= 0 else text).strip()


def read_audit_rows(path: str | Path) -> list[dict]:
    """Rows to audit from a JSONL file or a folder of them (verl's ``rollout_data_dir``), as
    ``{id, response, ground_truth, question, data_source}``. A row without its id, response or
    ground truth is a :class:`~medix_verl.jsonl.JsonlError` naming the file and line."""
    path = Path(path)
    if path.is_dir():
        # verl names them by step: 2.jsonl before 10.jsonl
        files = sorted(
            path.glob("*.jsonl"),
            key=lambda p: (not p.stem.isdigit(), int(p.stem or 0) if p.stem.isdigit() else 0, p.name),
        )
        if not files:
            raise JsonlError(f"{path}: no .jsonl files in this folder")
    else:
        files = [path]
    rows, seen = [], {}
    for file in files:
        for lineno, raw in iter_objects(file):
            row = _audit_row(raw, f"{file}:{lineno}")
            if row["id"] in seen:
                raise JsonlError(f"{file}:{lineno}: id {row['id']!r} again (first at {seen[row['id']]})")
            seen[row["id"]] = f"{file}:{lineno}"
            rows.append(row)
    return rows


def _audit_row(raw: Mapping[str, Any], where: str) -> dict:
    if "output" in raw and "gts" in raw and "response" not in raw:  # verl's rollout dump
        missing = [k for k in ("uid", "output", "gts") if raw.get(k) is None]
        if missing:
            raise JsonlError(f"{where}: verl rollout row without {missing}")
        step = raw.get("step")
        return {
            "id": f"{step}/{raw['uid']}" if step is not None else str(raw["uid"]),
            "response": _text(raw["output"], "output", where),
            "ground_truth": _text(raw["gts"], "gts", where),
            "question": question_from_prompt(str(raw.get("input") or "")) or None,
            "data_source": raw.get("data_source"),
        }
    missing = [k for k in ("id", "response", "ground_truth") if raw.get(k) is None]
    if missing:
        raise JsonlError(f"{where}: missing required field(s) {missing} (an audit names every row by its id)")
    return {
        "id": raw["id"],
        "response": _text(raw["response"], "response", where),
        "ground_truth": _text(raw["ground_truth"], "ground_truth", where),
        "question": raw.get("question"),
        "data_source": raw.get("data_source"),
    }


def _text(value: Any, key: str, where: str) -> str:
    if not isinstance(value, str):
        raise JsonlError(f"{where}: field {key!r} must be a string, got {type(value).__name__}")
    return value


def audit_record(row: Mapping[str, Any], result: Mapping[str, float], sample, max_answer_chars=None) -> dict:
    """One line of ``rows.jsonl``: the row's id, its reward parts, whether the judge credited it,
    and ``shadow``: the robust gate that would refuse its answer (null: none)."""
    return {
        "id": row["id"],
        **result,
        "credited": result.get("accuracy_llm") == 1.0 and result.get("judge_error") == 0.0,
        "shadow": shadow_gate(sample, max_answer_chars=max_answer_chars),
        "answer": sample.answer,
    }


def summarize(records: list[dict], *, preset: str) -> dict:
    """``audit.json``: ``n``, ``credited``, ``flagged_credited``, ``rate`` (flagged_credited /
    credited), ``by_reason`` (credited answers each gate would refuse), ``flagged`` (all rows the
    gates would refuse, credited or not) and a few credited examples per reason.

    >>> recs = [{"id": 1, "credited": True, "shadow": "master_key", "answer": ":"},
    ...         {"id": 2, "credited": True, "shadow": None, "answer": "Kidney"},
    ...         {"id": 3, "credited": False, "shadow": "hedged", "answer": "a, b, c"}]
    >>> s = summarize(recs, preset="release")
    >>> s["n"], s["credited"], s["flagged_credited"], s["rate"], s["by_reason"]["master_key"], s["flagged"]
    (3, 2, 1, 0.5, 1, 2)
    """
    credited = [r for r in records if r["credited"]]
    flagged = [r for r in credited if r["shadow"]]
    by_reason = Counter(r["shadow"] for r in flagged)
    examples: dict[str, list] = {}
    for r in flagged:
        bucket = examples.setdefault(r["shadow"], [])
        if len(bucket) < EXAMPLES_PER_REASON:
            bucket.append({"id": r["id"], "answer": r["answer"][:300]})
    return {
        "preset": preset,
        "n": len(records),
        "credited": len(credited),
        "flagged_credited": len(flagged),
        "rate": len(flagged) / len(credited) if credited else 0.0,
        "by_reason": {g: by_reason.get(g, 0) for g in GATES},
        "flagged": sum(1 for r in records if r["shadow"]),
        "examples": examples,
    }


def table(summary: Mapping[str, Any]) -> str:
    """The terminal's short table."""
    lines = [
        f"audit ({summary['preset']} preset, robust gates in shadow): {summary['n']} rows, "
        f"{summary['credited']} credited by the judge, {summary['flagged_credited']} of them flagged "
        f"(rate {summary['rate']:.1%})",
        f"  {'gate':<12} {'credited & flagged':>18}  example",
    ]
    for reason, count in summary["by_reason"].items():
        if count:
            example = summary["examples"].get(reason, [{}])[0].get("answer", "")
            lines.append(f"  {reason:<12} {count:>18}  {example[:60]!r}")
    return "\n".join(lines)
