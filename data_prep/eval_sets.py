"""Prepare the 17 MediX-R1 evaluation benchmarks (spec section 6) in one unified format.

    python -m data_prep.eval_sets --task TASK --input SRC --output DIR [--image-root DIR] [--limit N]
    python -m data_prep.eval_sets --list

SRC is the hub id (when a hub is reachable) or a local copy (parquet file or folder,
``save_to_disk`` folder) with that dataset's own columns. Writes ``DIR/<TASK>.parquet`` with
columns ``id, task, question, choices, answer, images, kind`` (kind: ``mcq``, ``open``,
``yes_no``, ``report``), ``DIR/<TASK>.rejects.jsonl`` and ``DIR/<TASK>.stats.json`` (rows in =
rows out + rows rejected).

Multiple-choice questions are rendered as the release does: ``question\\n\\nChoices:\\nA. ...``,
and the reference answer is the choice text.
"""

from __future__ import annotations

import argparse
import string
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from .common import Ledger, ShardedParquetWriter, iter_source, run_cli
from .images import ImageError, normalize_image

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("task", pa.string()),
        ("question", pa.string()),
        ("choices", pa.list_(pa.string())),
        ("answer", pa.string()),
        ("images", pa.list_(pa.struct([("bytes", pa.binary())]))),
        ("kind", pa.string()),
    ]
)
KINDS = ("mcq", "open", "yes_no", "report")
EVAL_MAX_PIXELS = 16_777_216  # keep evaluation images essentially as they are; only absurd sizes shrink


class Skip(Exception):
    """A row that is rejected: ``code`` is the reason class, the message the detail."""

    def __init__(self, code: str, detail: str):
        super().__init__(detail)
        self.code = code


def render_mcq(question: str, choices: list[str]) -> str:
    """The release's multiple-choice rendering.

    >>> render_mcq("Which?", ["a", "b"])
    'Which?\\n\\nChoices:\\nA. a\\nB. b'
    """
    letters = string.ascii_uppercase
    return question.strip() + "\n\nChoices:\n" + "\n".join(f"{letters[i]}. {c}" for i, c in enumerate(choices))


def _text(row: dict, *names: str, required: bool = True) -> str | None:
    for name in names:
        value = row.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    if required:
        present = [n for n in names if n in row]
        raise Skip("missing_field", f"no non-empty {'/'.join(names)} (present: {present or 'none of them'})")
    return None


def _answer_index(value: Any, n: int) -> int:
    if isinstance(value, str):
        v = value.strip()
        if len(v) == 1 and v.upper() in string.ascii_uppercase[:n]:
            return string.ascii_uppercase.index(v.upper())
        if v.isdigit():
            value = int(v)
        else:
            raise Skip("bad_answer", f"answer {value!r} is not a choice letter or index")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < n:
        raise Skip("bad_answer", f"answer index {value!r} outside the {n} choices")
    return value


def _mcq(question: str, choices: list, answer: Any) -> dict:
    choices = [str(c).strip() for c in choices]
    if len(choices) < 2 or any(not c for c in choices):
        raise Skip("bad_choices", f"need at least two non-empty choices, got {choices!r}")
    idx = _answer_index(answer, len(choices))
    return {"question": render_mcq(question, choices), "choices": choices, "answer": choices[idx], "kind": "mcq"}


def _short_answer(question: str, answer: str) -> dict:
    kind = "yes_no" if answer.strip().lower() in ("yes", "no") else "open"
    return {"question": question, "choices": None, "answer": answer.strip(), "kind": kind}


# ----------------------------------------------------------------------------- adapters (dataset's own columns)
def mmlu(row):  # hails/mmlu_no_train: question, subject, choices, answer (0-3)
    return _mcq(_text(row, "question"), row.get("choices") or [], row.get("answer"))


def medmcqa(row):  # openlifescienceai/medmcqa: question, opa..opd, cop (0-3)
    return _mcq(_text(row, "question"), [row.get(k) or "" for k in ("opa", "opb", "opc", "opd")], row.get("cop"))


def medqa(row):  # GBaker/MedQA-USMLE-4-options-hf: sent1 (+ sent2), ending0..3, label
    question = " ".join(p for p in (_text(row, "sent1"), _text(row, "sent2", required=False)) if p)
    return _mcq(question, [row.get(f"ending{i}") or "" for i in range(4)], row.get("label"))


def usmle_sa(row):  # HuggingSara/usmle_self_assessment: question, options ({A: ..} or list), answer / answer_idx
    options = row.get("options")
    if isinstance(options, dict):
        keys = sorted(k for k, v in options.items() if v)
        choices = [options[k] for k in keys]
    elif isinstance(options, list):
        choices, keys = options, list(string.ascii_uppercase[: len(options)])
    else:
        raise Skip("bad_choices", f"options is {type(options).__name__}, expected a mapping or list")
    answer = row.get("answer_idx") if row.get("answer_idx") not in (None, "") else row.get("answer")
    if isinstance(answer, str) and answer.strip() in choices and answer.strip() not in keys:
        answer = choices.index(answer.strip())
    elif isinstance(answer, str) and answer.strip().upper() in keys:
        answer = keys.index(answer.strip().upper())
    return _mcq(_text(row, "question"), choices, answer)


def pubmedqa(row):  # question, context (str or list or {"contexts": [...]}) , final_decision / answer
    question = _text(row, "question", "QUESTION")
    context = row.get("context") or row.get("CONTEXTS") or row.get("contexts")
    if isinstance(context, dict):
        context = context.get("contexts")
    if isinstance(context, list):
        context = " ".join(str(c) for c in context)
    if isinstance(context, str) and context.strip():
        question = f"{context.strip()}\n\nQuestion: {question}"
    answer = _text(row, "final_decision", "answer", "final_answer")
    if answer.lower() not in ("yes", "no", "maybe"):
        raise Skip("bad_answer", f"PubMedQA answer must be yes/no/maybe, got {answer!r}")
    return {"question": question, "choices": None, "answer": answer.lower(), "kind": "yes_no"}


def mimic_summarization(row):  # findings -> impression
    findings = _text(row, "findings", "question", "input", "text")
    instruction = _text(row, "instruction", "prompt", required=False)
    question = (
        f"{instruction}\n\n{findings}"
        if instruction
        else ("Summarize the following radiology findings into an impression.\n\n" + findings)
    )
    return {
        "question": question,
        "choices": None,
        "answer": _text(row, "impression", "answer", "summary", "output"),
        "kind": "report",
    }


def mimic_generation(row):  # image(s) -> report
    question = (
        _text(row, "question", "instruction", "prompt", required=False)
        or "Write the radiology report for this chest X-ray."
    )
    return {
        "question": question,
        "choices": None,
        "answer": _text(row, "report", "answer", "findings", "output"),
        "kind": "report",
    }


def slake(row):  # BoKelvin/SLAKE: img_name, question, answer, q_lang
    lang = row.get("q_lang")
    if lang is not None and lang != "en":
        raise Skip("not_english", f"q_lang={lang!r}; the benchmark uses the English questions")
    return _short_answer(_text(row, "question"), _text(row, "answer"))


def vqa(row):  # flaviagiammarino/vqa-rad and path-vqa: image, question, answer
    return _short_answer(_text(row, "question"), _text(row, "answer"))


def pmc_vqa(row):  # PMC-VQA: Question, Choice A..D ("A:text"), Answer / Answer_label, Figure_path
    choices = []
    for letter in "ABCD":
        raw = row.get(f"Choice {letter}")
        if raw is None:
            continue
        text = str(raw).strip()
        if len(text) > 1 and text[0].upper() == letter and text[1] in ":.)":
            text = text[2:].strip()
        choices.append(text)
    answer = row.get("Answer_label") or row.get("Answer")
    if isinstance(answer, str) and answer.strip() in choices:
        answer = choices.index(answer.strip())
    return _mcq(_text(row, "Question", "question"), choices, answer)


def pmc_vqa_hard(row):  # open-ended PMC-VQA: the answer text, no choices
    answer = row.get("Answer")
    if isinstance(answer, str) and len(answer.strip()) == 1 and row.get(f"Choice {answer.strip().upper()}"):
        answer = pmc_vqa(row)["answer"]
    if not isinstance(answer, str) or not answer.strip():
        raise Skip("missing_field", "no Answer text")
    return {"question": _text(row, "Question", "question"), "choices": None, "answer": answer.strip(), "kind": "open"}


@dataclass(frozen=True)
class TaskSpec:
    """One evaluation task: where its rows come from, how a row is rendered, how it is judged.

    The one registry of the 17 tasks (:data:`TASKS`): ``data_prep`` converts with it and
    ``medix_verl.eval`` selects, renders and judges with it.
    """

    name: str
    adapter: Callable[[dict], dict]  # the dataset's own row -> question, choices, answer, kind
    hub_id: str
    split: str
    columns: tuple[str, ...]  # the dataset's published columns the adapter reads
    image_columns: tuple[str, ...] = ()  # columns holding images or image paths
    subset: str | None = None  # hub config name
    judging: str = "binary"  # "binary": judge says 0/1, majority of rounds; "rubric": 0-5, mean / 5

    def __post_init__(self):
        if self.judging not in JUDGING:
            raise ValueError(f"task {self.name}: judging must be one of {JUDGING}, got {self.judging!r}")

    @property
    def has_images(self) -> bool:
        return bool(self.image_columns)

    @property
    def modality(self) -> str:
        """``"image"`` for image+text tasks, ``"text"`` otherwise."""
        return "image" if self.has_images else "text"


JUDGING = ("binary", "rubric")
_MMLU = (
    "clinical_knowledge",
    "college_biology",
    "college_medicine",
    "medical_genetics",
    "professional_medicine",
    "anatomy",
)
_MMLU_COLS = ("question", "subject", "choices", "answer")
_VQA_COLS = ("image", "question", "answer")
_PMC_COLS = ("Figure_path", "Question", "Choice A", "Choice B", "Choice C", "Choice D", "Answer", "Answer_label")
_MEDIX = "sahalshajim/medix-eval-sets"
TASKS: dict[str, TaskSpec] = {
    **{f"mmlu_{s}": TaskSpec(f"mmlu_{s}", mmlu, "hails/mmlu_no_train", "test", _MMLU_COLS, subset=s) for s in _MMLU},
    "medmcqa": TaskSpec(
        "medmcqa",
        medmcqa,
        "openlifescienceai/medmcqa",
        "validation",
        ("id", "question", "opa", "opb", "opc", "opd", "cop"),
    ),
    "medqa": TaskSpec(
        "medqa",
        medqa,
        "GBaker/MedQA-USMLE-4-options-hf",
        "test",
        ("id", "sent1", "sent2", "ending0", "ending1", "ending2", "ending3", "label"),
    ),
    "usmle_sa": TaskSpec(
        "usmle_sa",
        usmle_sa,
        "HuggingSara/usmle_self_assessment",
        "test",
        ("question", "options", "answer", "answer_idx"),
    ),
    "pubmedqa": TaskSpec(
        "pubmedqa", pubmedqa, _MEDIX, "test", ("question", "context", "final_decision"), subset="pubmedqa"
    ),
    "mimic_cxr_summarization": TaskSpec(
        "mimic_cxr_summarization",
        mimic_summarization,
        _MEDIX,
        "test",
        ("findings", "impression"),
        subset="mimic_cxr_summarization",
        judging="rubric",
    ),
    "slake": TaskSpec(
        "slake",
        slake,
        "BoKelvin/SLAKE",
        "test",
        ("img_name", "question", "answer", "q_lang"),
        image_columns=("image", "img_name"),
    ),
    "vqa_rad": TaskSpec("vqa_rad", vqa, "flaviagiammarino/vqa-rad", "test", _VQA_COLS, image_columns=("image",)),
    "path_vqa": TaskSpec("path_vqa", vqa, "flaviagiammarino/path-vqa", "test", _VQA_COLS, image_columns=("image",)),
    "pmc_vqa": TaskSpec(
        "pmc_vqa", pmc_vqa, "xmcmic/PMC-VQA", "test", _PMC_COLS, image_columns=("image", "Figure_path")
    ),
    "pmc_vqa_hard": TaskSpec(
        "pmc_vqa_hard", pmc_vqa_hard, "xmcmic/PMC-VQA", "test", _PMC_COLS, image_columns=("image", "Figure_path")
    ),
    "mimic_cxr_generation": TaskSpec(
        "mimic_cxr_generation",
        mimic_generation,
        _MEDIX,
        "test",
        ("images", "report"),
        image_columns=("images", "image", "image_path"),
        judging="rubric",
    ),
}
TEXT_TASKS = tuple(n for n, t in TASKS.items() if not t.has_images)
IMAGE_TASKS = tuple(n for n, t in TASKS.items() if t.has_images)
RUBRIC_TASKS = tuple(n for n, t in TASKS.items() if t.judging == "rubric")
assert len(TASKS) == 17


def _images(row: dict, spec: TaskSpec, image_root: Path | None) -> list[dict]:
    for column in spec.image_columns:
        value = row.get(column)
        if value is None or value == []:
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        out = []
        for k, item in enumerate(values):
            if isinstance(item, str) and not Path(item).is_absolute():
                if image_root is None:
                    raise Skip("bad_image", f"image {k} is a relative path {item!r}: pass --image-root")
                item = str(image_root / item)
            try:
                out.append({"bytes": normalize_image(item, min_pixels=1, max_pixels=EVAL_MAX_PIXELS)["bytes"]})
            except ImageError as exc:
                raise Skip("bad_image", f"image {k}: {exc}") from None
        return out
    raise Skip("missing_image", f"no image in column(s) {list(spec.image_columns)}")


def convert_task(
    task: str,
    src: str,
    out_dir: str | Path,
    *,
    image_root: str | None = None,
    limit: int | None = None,
    progress: bool = False,
) -> dict:
    try:
        spec = TASKS[task]
    except KeyError:
        raise ValueError(f"unknown task {task!r}; tasks: {', '.join(TASKS)}") from None
    out_dir = Path(out_dir)
    root = Path(image_root) if image_root else None
    writer = ShardedParquetWriter(out_dir, task, SCHEMA)
    ledger = Ledger(out_dir, task)
    seen: set[str] = set()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(desc=task, unit="row", file=sys.stderr, total=limit)
    index = 0
    for batch in iter_source(src, spec.split, batch_size=64, hub_config=spec.subset):
        for row in batch:
            if limit is not None and index >= limit:
                break
            if spec.subset and row.get("subject") not in (None, spec.subset) and task.startswith("mmlu_"):
                # a local MMLU copy may hold every subject: other subjects are not this task's rows
                index += 1
                ledger.rows_in += 1
                ledger.reject(row.get("id"), f"subject {row.get('subject')!r} is not {spec.subset!r}", "other_subject")
                continue
            ledger.rows_in += 1
            row_id = str(row.get("id") if row.get("id") not in (None, "") else row.get("qid") or f"{task}-{index}")
            index += 1
            try:
                item = spec.adapter(row)
                item["images"] = _images(row, spec, root) if spec.has_images else []
                if row_id in seen:
                    raise Skip("duplicate_id", "id already written earlier in this task")
            except Skip as exc:
                ledger.reject(row_id, str(exc), exc.code)
            else:
                seen.add(row_id)
                writer.write({"id": row_id, "task": task, **item})
                ledger.accept(kind=item["kind"])
            if bar is not None:
                bar.update(1)
        if limit is not None and index >= limit:
            break
    if bar is not None:
        bar.close()
    files = writer.close()
    return ledger.close({"task": task, "source": str(src), "files": [f.name for f in files]})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data_prep.eval_sets", description=__doc__.splitlines()[0])
    parser.add_argument("--task", help=f"one of: {', '.join(TASKS)}")
    parser.add_argument("--input", help="hub id or local copy (parquet file/folder, save_to_disk folder)")
    parser.add_argument("--output", help="output folder")
    parser.add_argument(
        "--image-root", help="folder that relative image paths (SLAKE img_name, PMC-VQA Figure_path) are under"
    )
    parser.add_argument("--limit", type=int)
    parser.add_argument("--list", action="store_true", help="list the tasks and their sources")
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args(argv)
    if args.list:
        for name, spec in TASKS.items():
            print(
                f"{name:28s} {'image+text' if spec.has_images else 'text':10s} {spec.judging:6s} {spec.hub_id}"
                f"{' (' + spec.subset + ')' if spec.subset else ''} [{spec.split}]"
            )
        return 0
    if not (args.task and args.input and args.output):
        parser.error("--task, --input and --output are required")
    return run_cli(
        "data_prep.eval_sets",
        args.output,
        lambda: convert_task(
            args.task,
            args.input,
            args.output,
            image_root=args.image_root,
            limit=args.limit,
            progress=not args.quiet,
        ),
    )


if __name__ == "__main__":
    sys.exit(main())
