"""Prepare the 17 MediX-R1 evaluation benchmarks (spec section 6) as the release renders them.

    python -m data_prep.eval_sets --task TASK --input SRC --output DIR [--image-root DIR] [--limit N]
    python -m data_prep.eval_sets --list

SRC is the hub id (when a hub is reachable) or a local copy (parquet file or folder,
``save_to_disk`` folder) with that dataset's own published columns (the release's ``tasks.yaml``).
Writes ``DIR/<TASK>.parquet`` with columns ``id, task, question, choices, answer, images, kind, modality``
(kind: ``mcq``, ``open``, ``yes_no``, ``report``; modality: the source's own field where it has one, SLAKE), ``DIR/<TASK>.rejects.jsonl`` and
``DIR/<TASK>.stats.json`` (rows in = rows out + rows rejected).

Rendering is the release's ``load_dataset_with_params``, byte for byte: task names, sources and
splits, sample ids ``<task>_<i>`` (``i`` counts the rows the release keeps, so a rejected row still
takes its number), ``question\n\nChoices:\nA. <option>...`` with options and question interiors
as they are (``None`` options skipped, their letter kept), only the final strings stripped,
PubMedQA's first context and ``A. True / B. False / C. maybe``, the MIMIC instructions. Images are
stored as their original bytes; the evaluation converts them to RGB and re-encodes them as JPEG as
the release does. Where the release would crash on a row (a missing field, an answer index out of
range, an unreadable image), the row is rejected with the reason instead.
"""

from __future__ import annotations

import argparse
import string
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pyarrow as pa

from .common import Ledger, ShardedParquetWriter, iter_source, require_columns, run_cli, staged_output
from .images import ImageError, image_bytes, open_checked

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("task", pa.string()),
        ("question", pa.string()),
        ("choices", pa.list_(pa.string())),
        ("answer", pa.string()),
        ("images", pa.list_(pa.struct([("bytes", pa.binary())]))),
        ("kind", pa.string()),
        # the source's own imaging modality where it has one (SLAKE: CT, MRI, X-Ray), else null
        ("modality", pa.string()),
    ]
)
KINDS = ("mcq", "open", "yes_no", "report")
#: the release's option letters (``option_keys``): at most ten options
OPTION_KEYS = string.ascii_uppercase[:10]
#: PubMedQA's choices as the release's YAML loads them (``yes, no, maybe`` -> True, False, "maybe")
PUBMEDQA_CHOICES = (True, False, "maybe")
MIMIC_GENERATION_PROMPT = "Generate a detailed report based on the scan."
MIMIC_SUMMARY_PROMPT = "Write a short summary of the following report.\n\nReport:\n{report}:"


class Skip(Exception):
    """A row that is rejected: ``code`` is the reason class, the message the detail."""

    def __init__(self, code: str, detail: str):
        super().__init__(detail)
        self.code = code


class NotInTask(Exception):
    """A row the release itself leaves out of the task (it takes no sample number)."""

    def __init__(self, code: str, detail: str):
        super().__init__(detail)
        self.code = code


def render_choices(question: Any, options: list) -> str:
    r"""The release's multiple-choice rendering (before the final strip): options and the question
    as they are, ``None`` options skipped with their letter.

    >>> render_choices("Which?", ["a ", None, "", "d"])
    'Which?\n\nChoices:\nA. a \nC. \nD. d'
    """
    text = "" if question is None else f"{question}"
    text += "\n\nChoices:"
    if len(options) > len(OPTION_KEYS):
        raise Skip("bad_choices", f"{len(options)} options; the release letters at most {len(OPTION_KEYS)}")
    for i, option in enumerate(options):
        if option is not None:
            text += f"\n{OPTION_KEYS[i]}. {option}"
    return text


def _plain(question: Any) -> str:
    return "" if question is None else f"{question}"


def _final(question: str, answer: Any, choices: list | None, kind: str) -> dict:
    """The release's final step: both strings stripped (a non-string answer crashes the release)."""
    if not isinstance(answer, str):
        raise Skip("bad_answer", f"reference is {type(answer).__name__} {answer!r}, not a string")
    answer = answer.strip()  # an empty reference is kept, as the release keeps it
    if kind == "auto":
        kind = "yes_no" if answer.lower() in ("yes", "no") else "open"
    return {
        "question": question.strip(),
        # an option the source leaves out (None) is not shown by the release and is not a choice:
        # null in its place, so the letters of the others stay where the release put them
        "choices": None if choices is None else [None if c is None else str(c) for c in choices],
        "answer": answer,
        "kind": kind,
    }


def _pick(options: list, index: Any) -> Any:
    """``choices[index]`` as the release indexes (an int index; anything else is a rejected row)."""
    if isinstance(index, bool) or not isinstance(index, int) or not -len(options) <= index < len(options):
        raise Skip("bad_answer", f"answer index {index!r} outside the {len(options)} choices")
    return options[index]


def _mcq_by_index(row: dict, question_col: str, options: list, index_col: str) -> dict:
    return _final(render_choices(row.get(question_col), options), _pick(options, row.get(index_col)), options, "mcq")


# ----------------------------------------------------------------------------- adapters (dataset's own columns)
def mmlu(row):  # hails/mmlu_no_train: question, choices (list), answer (index)
    return _mcq_by_index(row, "question", list(row.get("choices") or []), "answer")


def medmcqa(row):  # openlifescienceai/medmcqa: question, opa..opd, cop (index)
    return _mcq_by_index(row, "question", [row.get(k) for k in ("opa", "opb", "opc", "opd")], "cop")


def medqa(row):  # GBaker/MedQA-USMLE-4-options-hf: sent1 only (as released), ending0..3, label
    return _mcq_by_index(row, "sent1", [row.get(f"ending{i}") for i in range(4)], "label")


def usmle_sa(row):  # HuggingSara/usmle_self_assessment (split train): question, options (dict), answer (as is)
    options = row.get("options")
    options = list(options.values()) if isinstance(options, dict) else list(options or [])
    return _final(render_choices(row.get("question"), options), row.get("answer"), options, "mcq")


def pubmedqa(row):  # medix-eval-sets/pubmedqa: CONTEXTS (list: the first), QUESTION, final_decision, LONG_ANSWER
    question = ""
    for column in ("CONTEXTS", "QUESTION"):
        value = row.get(column)
        if isinstance(value, (list, tuple)):
            if not value:
                raise Skip("missing_field", f"{column} is an empty list")
            value = value[0]
        question += f"{column.lower().capitalize()}:\n{value}\n\n"
    question += "Choices:"
    for i, option in enumerate(PUBMEDQA_CHOICES):
        question += f"\n{OPTION_KEYS[i]}. {option}"
    parts = [row.get("final_decision"), row.get("LONG_ANSWER")]
    if not all(isinstance(p, str) for p in parts):
        raise Skip("missing_field", "final_decision and LONG_ANSWER must both be strings")
    return _final(question, "".join(p + "\n" for p in parts), [str(c) for c in PUBMEDQA_CHOICES], "mcq")


def mimic_summarization(row):  # medix-eval-sets/mimic_cxr: report -> summary, no image
    return _final(MIMIC_SUMMARY_PROMPT.format(report=row.get("report")), row.get("summary"), None, "report")


def mimic_generation(row):  # medix-eval-sets/mimic_cxr: image (PhysioNet URL) -> report
    return _final(MIMIC_GENERATION_PROMPT, row.get("report"), None, "report")


def slake(row):  # BoKelvin/SLAKE: img_name, question, answer, q_lang (English rows only), modality
    if row.get("q_lang") != "en":
        raise NotInTask("not_english", f"q_lang={row.get('q_lang')!r}; the release keeps the English questions only")
    item = _final(_plain(row.get("question")), row.get("answer"), None, "auto")
    modality = row.get("modality")
    item["modality"] = modality.strip() if isinstance(modality, str) and modality.strip() else None
    return item


def vqa(row):  # vqa-rad, path-vqa, medix-eval-sets/pmc_vqa_hard: image, question, answer
    return _final(_plain(row.get("question")), row.get("answer"), None, "auto")


def pmc_vqa(row):  # medix-eval-sets/pmc_vqa: image, question, choices (list or dict), answer (the text)
    options = row.get("choices")
    options = list(options.values()) if isinstance(options, dict) else list(options or [])
    return _final(render_choices(row.get("question"), options), row.get("answer"), options, "mcq")


@dataclass(frozen=True)
class TaskSpec:
    """One evaluation task: where its rows come from, how a row is rendered, how it is judged.

    The one registry of the 17 tasks (:data:`TASKS`): ``data_prep`` converts with it and
    ``medix_verl.eval`` selects, renders and judges with it. Names, sources, splits and columns
    are the release's (``eval/tasks.yaml``).
    """

    name: str
    adapter: Callable[[dict], dict]  # the dataset's own row -> question, choices, answer, kind
    hub_id: str
    split: str
    columns: tuple[str, ...]  # the dataset's published columns the adapter reads
    image_columns: tuple[str, ...] = ()  # columns holding the image, in the release's order of preference
    subset: str | None = None  # hub config name
    judging: str = "binary"  # "binary": 0/1 per round, majority; "rubric": 0-5 per round, mean / 5

    def __post_init__(self):
        if self.judging not in JUDGING:
            raise ValueError(f"task {self.name}: judging must be one of {JUDGING}, got {self.judging!r}")

    @property
    def has_images(self) -> bool:
        return bool(self.image_columns)

    @property
    def rubric(self) -> bool:
        """Judged on the 0-5 rubric (the MIMIC tasks), not 0/1."""
        return self.judging == "rubric"

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
_MEDIX = "sahalshajim/medix-eval-sets"
_VQA = ("image", "question", "answer")
TASKS: dict[str, TaskSpec] = {
    **{
        f"mmlu_{s}": TaskSpec(
            f"mmlu_{s}", mmlu, "hails/mmlu_no_train", "test", ("question", "choices", "answer"), subset=s
        )
        for s in _MMLU
    },
    "medmcqa": TaskSpec(
        "medmcqa", medmcqa, "openlifescienceai/medmcqa", "validation", ("question", "opa", "opb", "opc", "opd", "cop")
    ),
    "medqa": TaskSpec(
        "medqa",
        medqa,
        "GBaker/MedQA-USMLE-4-options-hf",
        "test",
        ("sent1", "ending0", "ending1", "ending2", "ending3", "label"),
    ),
    "usmle_sa": TaskSpec(
        "usmle_sa", usmle_sa, "HuggingSara/usmle_self_assessment", "train", ("question", "options", "answer")
    ),
    "pubmedqa": TaskSpec(
        "pubmedqa",
        pubmedqa,
        _MEDIX,
        "test",
        ("CONTEXTS", "QUESTION", "final_decision", "LONG_ANSWER"),
        subset="pubmedqa",
    ),
    "mimic_cxr_report_summarization": TaskSpec(
        "mimic_cxr_report_summarization",
        mimic_summarization,
        _MEDIX,
        "test",
        ("report", "summary"),
        subset="mimic_cxr",
        judging="rubric",
    ),
    "slake_vqa": TaskSpec(
        "slake_vqa",
        slake,
        "BoKelvin/SLAKE",
        "test",
        ("img_name", "question", "answer", "q_lang"),
        image_columns=("img_name",),
    ),
    "rad_vqa": TaskSpec("rad_vqa", vqa, "flaviagiammarino/vqa-rad", "test", _VQA, image_columns=("image", "image_id")),
    "path_vqa": TaskSpec(
        "path_vqa", vqa, "flaviagiammarino/path-vqa", "test", _VQA, image_columns=("image", "image_id")
    ),
    "pmc_vqa": TaskSpec(
        "pmc_vqa",
        pmc_vqa,
        _MEDIX,
        "test",
        ("image", "question", "choices", "answer"),
        subset="pmc_vqa",
        image_columns=("image", "image_id"),
    ),
    "pmc_vqa_hard": TaskSpec(
        "pmc_vqa_hard", vqa, _MEDIX, "test", _VQA, subset="pmc_vqa_hard", image_columns=("image", "image_id")
    ),
    "mimic_cxr_report_generation": TaskSpec(
        "mimic_cxr_report_generation",
        mimic_generation,
        _MEDIX,
        "test",
        ("image", "report"),
        subset="mimic_cxr",
        image_columns=("image",),
        judging="rubric",
    ),
}
TEXT_TASKS = tuple(n for n, t in TASKS.items() if not t.has_images)
IMAGE_TASKS = tuple(n for n, t in TASKS.items() if t.has_images)
RUBRIC_TASKS = tuple(n for n, t in TASKS.items() if t.rubric)
assert len(TASKS) == 17


def _image_path(value: str) -> str:
    """A row's image reference as a path under ``--image-root``: SLAKE's relative ``img_name``;
    MIMIC's PhysioNet URL by its base name (the file ``wget`` saves)."""
    if "://" in value:
        return PurePosixPath(value.split("://", 1)[1]).name
    return value


def _images(row: dict, spec: TaskSpec, image_root: Path | None) -> list[dict]:
    """The row's image, as the release picks it (the first non-empty image column), as its
    original bytes; it must decode and convert to RGB, as the release converts it."""
    for column in spec.image_columns:
        value = row.get(column)
        if not value:
            continue
        try:
            data = image_bytes(_image_path(value) if isinstance(value, str) else value, image_root)
            with open_checked(data) as img:
                img.convert("RGB")
        except ImageError as exc:
            raise Skip("bad_image", f"image: {exc}") from None
        except Exception as exc:  # PIL raises many types for broken files
            raise Skip("bad_image", f"image does not decode: {type(exc).__name__}: {exc}") from None
        return [{"bytes": data}]
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
    root = Path(image_root) if image_root else None
    with staged_output(out_dir, task) as staging:
        return _convert_task(task, spec, src, staging, root, limit, progress)


def _convert_task(task, spec, src, staging, root, limit, progress) -> dict:
    writer = ShardedParquetWriter(staging, task, SCHEMA)
    ledger = Ledger(staging, task)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(desc=task, unit="row", file=sys.stderr, total=limit)
    index = 0  # the release's sample number: counts every row it keeps, written or rejected here
    done = False
    for batch in iter_source(src, spec.split, batch_size=64, hub_config=spec.subset):
        for row in batch:
            if limit is not None and index >= limit:
                done = True
                break
            if not ledger.rows_in:
                require_columns(row, spec.columns, str(src), f"task {task}")
            ledger.rows_in += 1
            source_id = row.get("id")
            try:
                if spec.subset and task.startswith("mmlu_") and row.get("subject") not in (None, spec.subset):
                    # a local MMLU copy may hold every subject: other subjects are not this task's rows
                    raise NotInTask("other_subject", f"subject {row.get('subject')!r} is not {spec.subset!r}")
                item = spec.adapter(row)
            except NotInTask as exc:
                ledger.reject(source_id, str(exc), exc.code)
                continue
            except Skip as exc:
                item = exc
            row_id = f"{task}_{index}"
            index += 1
            try:
                if isinstance(item, Skip):
                    raise item
                item["images"] = _images(row, spec, root) if spec.has_images else []
            except Skip as exc:
                ledger.reject(row_id, str(exc), exc.code)
            except MemoryError:  # one oversized row must not end the run
                ledger.reject(row_id, "ran out of memory converting this row", "out_of_memory")
            else:
                writer.write({"id": row_id, "task": task, **item})
                ledger.accept(kind=item["kind"])
            if bar is not None:
                bar.update(1)
        if done:
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
        "--image-root",
        help="folder with the images named by path or URL (SLAKE: the unzipped imgs/ folder; MIMIC: the PhysioNet files)",
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
    options = {"image_root": args.image_root, "limit": args.limit, "progress": not args.quiet}
    return run_cli(
        "data_prep.eval_sets", args.output, lambda: convert_task(args.task, args.input, args.output, **options)
    )


if __name__ == "__main__":
    sys.exit(main())
