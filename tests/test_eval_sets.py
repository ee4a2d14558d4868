"""data_prep.eval_sets: small fixtures in each benchmark's own columns -> the unified format."""

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fixtures_data import rgb_jpeg, rgba_png, truncated_png
from PIL import Image

from data_prep.eval_sets import IMAGE_TASKS, TASKS, TEXT_TASKS, convert_task


def write(path, rows):
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def img(b):
    return {"bytes": b, "path": None}


def test_seventeen_tasks():
    assert len(TASKS) == 17 and len(TEXT_TASKS) == 11 and len(IMAGE_TASKS) == 6


FIXTURES = {
    "mmlu_anatomy": (
        [
            {
                "question": "Which bone?",
                "subject": "anatomy",
                "choices": ["Femur", "Tibia", "Ulna", "Radius"],
                "answer": 2,
            },
            {"question": "Other subject", "subject": "virology", "choices": ["a", "b"], "answer": 0},
            {"question": "Bad index", "subject": "anatomy", "choices": ["a", "b"], "answer": 5},
        ],
        {
            "n_out": 1,
            "first": ("Which bone?\n\nChoices:\nA. Femur\nB. Tibia\nC. Ulna\nD. Radius", "Ulna", "mcq"),
            "rejects": {"other_subject": 1, "bad_answer": 1},
        },
    ),
    "medmcqa": (
        [{"id": "m1", "question": "Drug of choice?", "opa": "A1", "opb": "B1", "opc": "C1", "opd": "D1", "cop": 1}],
        {"n_out": 1, "first": ("Drug of choice?\n\nChoices:\nA. A1\nB. B1\nC. C1\nD. D1", "B1", "mcq")},
    ),
    "medqa": (
        [
            {
                "id": "q1",
                "sent1": "A 45-year-old man...",
                "sent2": "",
                "ending0": "x",
                "ending1": "y",
                "ending2": "z",
                "ending3": "w",
                "label": 3,
            }
        ],
        {"n_out": 1, "first": ("A 45-year-old man...\n\nChoices:\nA. x\nB. y\nC. z\nD. w", "w", "mcq")},
    ),
    "usmle_sa": (
        [
            {"question": "Next step?", "options": {"A": "CT", "B": "MRI", "C": "Biopsy"}, "answer": "MRI"},
            {"question": "No answer", "options": {"A": "CT", "B": "MRI", "C": None}, "answer": None},
        ],
        {
            "n_out": 1,
            "first": ("Next step?\n\nChoices:\nA. CT\nB. MRI\nC. Biopsy", "MRI", "mcq"),
            "rejects": {"bad_answer": 1},
        },
    ),
    "pubmedqa": (
        [
            {
                "QUESTION": "Does X reduce Y?",
                "CONTEXTS": ["We studied X.", "More."],
                "final_decision": "yes",
                "LONG_ANSWER": "It did.",
            },
            {"QUESTION": "Bad", "CONTEXTS": [], "final_decision": "no", "LONG_ANSWER": "x"},
        ],
        {
            "n_out": 1,
            "first": (
                "Contexts:\nWe studied X.\n\nQuestion:\nDoes X reduce Y?\n\nChoices:\nA. True\nB. False\nC. maybe",
                "yes\nIt did.",
                "mcq",
            ),
            "rejects": {"missing_field": 1},
        },
    ),
    "mimic_cxr_report_summarization": (
        [
            {
                "image": "https://physionet.org/files/p1/a.jpg",
                "report": "No focal consolidation.",
                "summary": "No acute process.",
            },
            {"image": "https://physionet.org/files/p1/b.jpg", "report": "x", "summary": None},
        ],
        {
            "n_out": 1,
            "first": (
                "Write a short summary of the following report.\n\nReport:\nNo focal consolidation.:",
                "No acute process.",
                "report",
            ),
            "rejects": {"bad_answer": 1},
        },
    ),
    "rad_vqa": (
        [
            {"image": img(rgb_jpeg()), "question": "Is there a fracture?", "answer": "yes"},
            {"image": img(rgba_png()), "question": "Which organ?", "answer": "liver"},
            {"image": img(truncated_png()), "question": "Broken image", "answer": "no"},
        ],
        {"n_out": 2, "first": ("Is there a fracture?", "yes", "yes_no"), "rejects": {"bad_image": 1}},
    ),
    "path_vqa": (
        [{"image": img(rgb_jpeg()), "question": "What is shown?", "answer": "granuloma"}],
        {"n_out": 1, "first": ("What is shown?", "granuloma", "open")},
    ),
    "pmc_vqa": (
        [
            {
                "image": img(rgb_jpeg()),
                "question": "Modality?",
                "choices": ["A:CT", "B:MRI", "C:X-ray", "D:PET"],
                "answer": "B:MRI",
            }
        ],
        {"n_out": 1, "first": ("Modality?\n\nChoices:\nA. A:CT\nB. B:MRI\nC. C:X-ray\nD. D:PET", "B:MRI", "mcq")},
    ),
    "pmc_vqa_hard": (
        [{"image": img(rgb_jpeg()), "question": "What modality is used?", "answer": "Magnetic resonance imaging"}],
        {"n_out": 1, "first": ("What modality is used?", "Magnetic resonance imaging", "open")},
    ),
    "mimic_cxr_report_generation": (
        [
            {"image": "https://physionet.org/files/p1/a.jpg", "report": "Lungs are clear."},
            {"image": None, "report": "no image"},
            {"image": "https://physionet.org/files/p1/not_downloaded.jpg", "report": "x"},
        ],
        {
            "n_out": 1,
            "first": ("Generate a detailed report based on the scan.", "Lungs are clear.", "report"),
            "rejects": {"missing_image": 1, "bad_image": 1},
            "files": {"a.jpg": rgb_jpeg()},
        },
    ),
}


@pytest.mark.parametrize("task", list(FIXTURES))
def test_task_fixture(task, tmp_path):
    rows, want = FIXTURES[task]
    src = write(tmp_path / "src.parquet", rows)
    for name, data in want.get("files", {}).items():
        (tmp_path / "imgs").mkdir(exist_ok=True)
        (tmp_path / "imgs" / name).write_bytes(data)
    stats = convert_task(task, str(src), tmp_path / "out", image_root=str(tmp_path / "imgs"))
    assert stats["rows_in"] == len(rows) == stats["rows_out"] + stats["rows_rejected"]
    assert stats["rows_out"] == want["n_out"]
    assert stats["rejected_by_reason"] == want.get("rejects", {})
    table = pq.read_table(tmp_path / "out" / f"{task}.parquet")
    assert table.schema.names == ["id", "task", "question", "choices", "answer", "images", "kind", "modality"]
    first = table.to_pylist()[0]
    question, answer, kind = want["first"]
    if question is not None:
        assert first["question"] == question
    assert (first["answer"], first["kind"], first["task"]) == (answer, kind, task)
    if kind == "mcq":
        assert first["choices"]
        if task != "pubmedqa":  # PubMedQA's reference is the decision and the long answer
            assert first["answer"] in first["choices"]
    else:
        assert first["choices"] is None
    if TASKS[task].has_images:
        assert first["images"], "image tasks carry their images"
        for im in first["images"]:  # the original bytes: the evaluation converts them as the release does
            assert im["bytes"] in [
                r[c]["bytes"] for r in rows for c in ("image",) if isinstance(r.get(c), dict)
            ] + list(want.get("files", {}).values())
            assert Image.open(io.BytesIO(im["bytes"])).convert("RGB").mode == "RGB"
    else:
        assert first["images"] == []
    rejects = [json.loads(x) for x in (tmp_path / "out" / f"{task}.rejects.jsonl").read_text().splitlines()]
    assert len(rejects) == stats["rows_rejected"]


def test_slake_english_only_and_image_root(tmp_path):
    root = tmp_path / "imgs" / "xmlab1"
    root.mkdir(parents=True)
    (root / "source.jpg").write_bytes(rgb_jpeg())
    rows = [
        {
            "qid": 1,
            "img_name": "xmlab1/source.jpg",
            "question": "Is this a CT?",
            "answer": "Yes",
            "q_lang": "en",
            "modality": "CT",
        },  # fmt: skip
        {"qid": 2, "img_name": "xmlab1/source.jpg", "question": "这是CT吗?", "answer": "是", "q_lang": "zh"},
        {"qid": 3, "img_name": "xmlab1/missing.jpg", "question": "Where?", "answer": "Lung", "q_lang": "en"},
    ]
    src = write(tmp_path / "slake.parquet", rows)
    stats = convert_task("slake_vqa", str(src), tmp_path / "out", image_root=str(tmp_path / "imgs"))
    assert stats["rows_out"] == 1 and stats["rejected_by_reason"] == {"bad_image": 1, "not_english": 1}
    out = pq.read_table(tmp_path / "out" / "slake_vqa.parquet").to_pylist()[0]
    assert out["id"] == "slake_vqa_0" and out["kind"] == "yes_no" and out["answer"] == "Yes"
    assert out["modality"] == "CT"  # SLAKE's own field, for results.json's by_modality
    # the release numbers only the English rows it keeps: the missing image took number 1
    rejects = [json.loads(x) for x in (tmp_path / "out" / "slake_vqa.rejects.jsonl").read_text().splitlines()]
    assert {r["id"] for r in rejects if r["reason"] == "bad_image"} == {"slake_vqa_1"}
    no_root = convert_task("slake_vqa", str(src), tmp_path / "out2")
    assert no_root["rejected_by_reason"]["bad_image"] == 2


def test_unknown_task_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="unknown task 'mmlu_cardiology'"):
        convert_task("mmlu_cardiology", "x", tmp_path)


# ----------------------------------------------------------------------------- sources as published
def test_slake_as_published_test_json_and_imgs_zip(tmp_path):
    """SLAKE ships test.json (a JSON array) and imgs.zip: read as they are, no unzipping."""
    import zipfile

    src = tmp_path / "SLAKE"
    src.mkdir()
    rows = [
        {"qid": 1, "img_name": "xmlab1/source.jpg", "question": "Is this a CT?", "answer": "Yes", "q_lang": "en",
         "modality": "CT"},
        {"qid": 2, "img_name": "xmlab2/source.jpg", "question": "Which organ?", "answer": "Liver", "q_lang": "en",
         "modality": "MRI"},
        {"qid": 3, "img_name": "xmlab1/source.jpg", "question": "这是CT吗?", "answer": "是", "q_lang": "zh"},
        {"qid": 4, "img_name": "../outside.jpg", "question": "Where?", "answer": "Lung", "q_lang": "en"},
    ]  # fmt: skip
    (src / "test.json").write_text(json.dumps(rows))
    (src / "train.json").write_text(json.dumps(rows[:1]))  # another split: not read
    with zipfile.ZipFile(src / "imgs.zip", "w") as z:
        z.writestr("imgs/xmlab1/source.jpg", rgb_jpeg())
        z.writestr("imgs/xmlab2/source.jpg", rgb_jpeg(seed=2))
    stats = convert_task("slake_vqa", str(src), tmp_path / "out", image_root=str(src / "imgs.zip"))
    assert stats["rows_in"] == 4 and stats["rows_out"] == 2, stats
    assert stats["rejected_by_reason"] == {"not_english": 1, "bad_image": 1}  # ../ leaves the archive
    out = pq.read_table(tmp_path / "out" / "slake_vqa.parquet").to_pylist()
    assert [(r["answer"], r["modality"]) for r in out] == [("Yes", "CT"), ("Liver", "MRI")]
    assert out[0]["images"][0]["bytes"] == rgb_jpeg()


def test_medqa_as_published_jsonl_files(tmp_path):
    """GBaker/MedQA-USMLE-4-options-hf ships one JSONL file per split."""
    src = tmp_path / "medqa"
    src.mkdir()
    row = {"id": "q1", "sent1": "A 45-year-old man ... Which drug?", "sent2": "", "ending0": "Aspirin",
           "ending1": "Heparin", "ending2": "Warfarin", "ending3": "Alteplase", "label": 1}  # fmt: skip
    (src / "phrases_no_exclude_test.jsonl").write_text(
        json.dumps(row) + "\n\n" + json.dumps({**row, "label": 3}) + "\n"
    )
    (src / "phrases_no_exclude_train.jsonl").write_text(json.dumps(row) + "\n")
    stats = convert_task("medqa", str(src), tmp_path / "out")
    assert stats["rows_out"] == 2
    out = pq.read_table(tmp_path / "out" / "medqa.parquet").to_pylist()
    assert [r["answer"] for r in out] == ["Heparin", "Alteplase"] and out[0]["choices"][0] == "Aspirin"
    # the file alone works too; a bad line is named
    (tmp_path / "bad.jsonl").write_text(json.dumps(row) + "\n{not json\n")
    with pytest.raises(Exception, match=r"bad\.jsonl:2: not valid JSON"):
        convert_task("medqa", str(tmp_path / "bad.jsonl"), tmp_path / "out2")


def test_usmle_options_the_source_leaves_out_are_not_choices(tmp_path):
    """usmle_sa's options dict holds None for letters a question does not use: the release skips
    them; they stay null in `choices` (the other letters keep their place) and no letter reads as them."""
    from medix_verl.eval.consistency import chosen_option

    rows = [{"question": "Most likely diagnosis?", "options": {"A": "Flu", "B": "Cold", "C": None, "D": "Sepsis"},
             "answer": "Sepsis"}]  # fmt: skip
    convert_task("usmle_sa", str(write(tmp_path / "src.parquet", rows)), tmp_path / "out")
    (out,) = pq.read_table(tmp_path / "out" / "usmle_sa.parquet").to_pylist()
    assert out["choices"] == ["Flu", "Cold", None, "Sepsis"]
    assert "\nC." not in out["question"] and "\nD. Sepsis" in out["question"]
    assert chosen_option("C", out["choices"]) is None and chosen_option("D", out["choices"]) == "D"
