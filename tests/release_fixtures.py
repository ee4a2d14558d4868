"""Small copies of the 17 evaluation datasets in their published columns (the release's
``tasks.yaml``), with awkward rows, and the scripted policy and judge that answer them.

The golden file ``tests/golden/release_eval.json`` holds what the MediX-R1 release's own code
(``eval/utils.py``: ``load_dataset_with_params``, ``generate``, ``evaluate``; ``eval/eval.py``'s
aggregation) produced on exactly these inputs, with these scripted servers: each rendered sample,
each request body, each score. ``tests/test_eval_release.py`` runs ``data_prep.eval_sets`` and
``medix-verl eval`` on the same inputs and compares.
"""

import hashlib
import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

# (hub id, config, split) of each source, and which tasks read it
SOURCES = {
    "mmlu": ("hails/mmlu_no_train", None, "test"),
    "medmcqa": ("openlifescienceai/medmcqa", None, "validation"),
    "medqa": ("GBaker/MedQA-USMLE-4-options-hf", None, "test"),
    "usmle_sa": ("HuggingSara/usmle_self_assessment", None, "train"),
    "pubmedqa": ("sahalshajim/medix-eval-sets", "pubmedqa", "test"),
    "mimic_cxr": ("sahalshajim/medix-eval-sets", "mimic_cxr", "test"),
    "slake": ("BoKelvin/SLAKE", None, "test"),
    "vqa_rad": ("flaviagiammarino/vqa-rad", None, "test"),
    "path_vqa": ("flaviagiammarino/path-vqa", None, "test"),
    "pmc_vqa": ("sahalshajim/medix-eval-sets", "pmc_vqa", "test"),
    "pmc_vqa_hard": ("sahalshajim/medix-eval-sets", "pmc_vqa_hard", "test"),
}
MMLU_SUBJECTS = (
    "clinical_knowledge",
    "college_biology",
    "college_medicine",
    "medical_genetics",
    "professional_medicine",
    "anatomy",
)
# task -> source name (MMLU: one file per subject, as the hub's configs are)
TASK_SOURCE = {
    **{f"mmlu_{s}": f"mmlu_{s}" for s in MMLU_SUBJECTS},
    "medmcqa": "medmcqa",
    "medqa": "medqa",
    "usmle_sa": "usmle_sa",
    "pubmedqa": "pubmedqa",
    "mimic_cxr_report_summarization": "mimic_cxr",
    "mimic_cxr_report_generation": "mimic_cxr",
    "slake_vqa": "slake",
    "rad_vqa": "vqa_rad",
    "path_vqa": "path_vqa",
    "pmc_vqa": "pmc_vqa",
    "pmc_vqa_hard": "pmc_vqa_hard",
}
MIMIC_URL = "https://physionet.org/files/mimic-cxr-jpg/2.0.0/files/p10/p100/s500/{name}"


def _encode(img, fmt, **kw):
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def image(kind: str, seed: int) -> bytes:
    """Small deterministic images of the kinds datasets hold."""
    rng = np.random.default_rng(seed)
    if kind == "rgb_jpeg":
        return _encode(Image.fromarray(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)), "JPEG", quality=90)
    if kind == "rgba_png":  # alpha: the release drops it (convert("RGB")), it does not composite
        arr = rng.integers(0, 255, (10, 14, 4), dtype=np.uint8)
        arr[..., 3] = np.linspace(0, 255, 14, dtype=np.uint8)[None, :]
        return _encode(Image.fromarray(arr), "PNG")
    if kind == "palette_png":
        img = Image.new("P", (9, 9))
        img.putpalette([(i * 5) % 256 for i in range(768)])
        img.putdata([(x * 7 + seed) % 256 for x in range(81)])
        return _encode(img, "PNG")
    if kind == "gray_png":
        return _encode(Image.fromarray(rng.integers(0, 255, (11, 11), dtype=np.uint8)), "PNG")
    raise ValueError(kind)


def _img(data: bytes) -> dict:
    return {"bytes": data, "path": None}


def source_rows() -> dict[str, list[dict]]:
    """Every source's rows, in its published columns."""
    rows: dict[str, list[dict]] = {}
    for k, subject in enumerate(MMLU_SUBJECTS):
        rows[f"mmlu_{subject}"] = [
            {
                "question": f"  Which {subject.replace('_', ' ')} structure  is\n  meant? ",
                "subject": subject,
                "choices": ["Femur ", " Tibia", "", "Radius"],
                "answer": k % 4,
            },
            {"question": "Plain question?", "subject": subject, "choices": ["a", "b", "c", "d"], "answer": 3},
        ]
    rows["medmcqa"] = [
        {
            "id": "0a1",
            "question": "Drug of choice  for X?",
            "opa": "A1",
            "opb": " B1 ",
            "opc": "C1",
            "opd": "D1",
            "cop": 1,
            "choice_type": "single",
            "exp": "because",
            "subject_name": "Pharmacology",
            "topic_name": None,
        },
        {
            "id": "0a2",
            "question": "Empty last option?",
            "opa": "x",
            "opb": "y",
            "opc": "z",
            "opd": "",
            "cop": 3,
            "choice_type": "single",
            "exp": None,
            "subject_name": "Anatomy",
            "topic_name": None,
        },
    ]
    rows["medqa"] = [
        {
            "id": "q1",
            "sent1": "A 45-year-old man presents with chest pain.",
            "sent2": "Which is next?",
            "ending0": "ECG",
            "ending1": "CT",
            "ending2": "MRI",
            "ending3": "Echo",
            "label": 0,
        },
        {
            "id": "q2",
            "sent1": "A child with fever.  ",
            "sent2": "",
            "ending0": "w",
            "ending1": "x",
            "ending2": "y",
            "ending3": "z",
            "label": 2,
        },
    ]
    rows["usmle_sa"] = [
        {
            "question": "Next step in management?",
            "options": {"A": "CT", "B": "MRI", "C": "Biopsy", "D": None},
            "answer": "MRI",
            "answer_idx": "B",
        },
        {
            "question": "Most likely diagnosis?",
            "options": {"A": "Flu", "B": "Cold", "C": None, "D": "Sepsis"},
            "answer": "Sepsis ",
            "answer_idx": "D",
        },
    ]
    rows["pubmedqa"] = [
        {
            "QUESTION": "Does X reduce Y?",
            "CONTEXTS": ["We studied X in 40 patients.", "Second context."],
            "LABELS": ["BACKGROUND", "METHODS"],
            "MESHES": ["Humans"],
            "YEAR": "2001",
            "reasoning_required_pred": "yes",
            "reasoning_free_pred": "yes",
            "final_decision": "yes",
            "LONG_ANSWER": "X reduced Y in most patients.",
        },
        {
            "QUESTION": "Is Z safe?",
            "CONTEXTS": ["Only one context."],
            "LABELS": ["RESULTS"],
            "MESHES": [],
            "YEAR": "2010",
            "reasoning_required_pred": "maybe",
            "reasoning_free_pred": "no",
            "final_decision": "maybe",
            "LONG_ANSWER": "Not clear. ",
        },
    ]
    rows["mimic_cxr"] = [
        {
            "image": MIMIC_URL.format(name="a1.jpg"),
            "report": "FINDINGS: No focal consolidation. IMPRESSION: Normal.",
            "summary": "No acute cardiopulmonary process.",
        },
        {
            "image": MIMIC_URL.format(name="a2.jpg"),
            "report": "Small left pleural effusion.  ",
            "summary": "Small left effusion.",
        },
    ]
    rows["slake"] = [
        {
            "img_name": "xmlab1/source.jpg",
            "question": "Which organ is abnormal?",
            "answer": "Liver",
            "q_lang": "en",
            "location": "Abdomen",
            "modality": "CT",
            "answer_type": "OPEN",
            "content_type": "Organ",
            "qid": 1,
        },
        {
            "img_name": "xmlab1/source.jpg",
            "question": "哪个器官异常？",
            "answer": "肝脏",
            "q_lang": "zh",
            "location": "Abdomen",
            "modality": "CT",
            "answer_type": "OPEN",
            "content_type": "Organ",
            "qid": 2,
        },
        {
            "img_name": "xmlab2/source.jpg",
            "question": "Is this an MRI?",
            "answer": "No",
            "q_lang": "en",
            "location": "Brain",
            "modality": "CT",
            "answer_type": "CLOSED",
            "content_type": "Modality",
            "qid": 3,
        },
    ]
    rows["vqa_rad"] = [
        {"image": _img(image("rgb_jpeg", 1)), "question": "is there a fracture?", "answer": "yes"},
        {"image": _img(image("gray_png", 2)), "question": "what organ is shown?", "answer": "liver"},
    ]
    rows["path_vqa"] = [
        {"image": _img(image("palette_png", 3)), "question": "what is present?", "answer": "necrosis"},
        {"image": _img(image("rgb_jpeg", 4)), "question": "is this benign?", "answer": "no"},
    ]
    rows["pmc_vqa"] = [
        {
            "image": _img(image("rgba_png", 5)),
            "question": "What does the arrow show? ",
            "choices": ["A: mass", "B: cyst ", "C: vessel", "D: artifact"],
            "answer": "B: cyst",
        },
        {
            "image": _img(image("rgb_jpeg", 6)),
            "question": "Which modality?",
            "choices": ["A: CT", "B: MRI", "C: US", "D: PET"],
            "answer": "A: CT",
        },
    ]
    rows["pmc_vqa_hard"] = [
        {"image": _img(image("rgb_jpeg", 7)), "question": "Describe the lesion.", "answer": "A round cyst"},
        {"image": _img(image("rgba_png", 8)), "question": "Where is the mass?", "answer": "Left upper lobe"},
    ]
    return rows


def image_files() -> dict[str, bytes]:
    """Files referred to by path or URL: SLAKE's ``imgs/<img_name>``, MIMIC's PhysioNet files."""
    return {
        "slake/imgs/xmlab1/source.jpg": image("rgb_jpeg", 11),
        "slake/imgs/xmlab2/source.jpg": image("gray_png", 12),
        "mimic/a1.jpg": image("rgb_jpeg", 13),
        "mimic/a2.jpg": image("gray_png", 14),
    }


def write_sources(root) -> None:
    """``root/<source>/<split>.parquet`` for every source, and the image files under ``root``."""
    for name, rows in source_rows().items():
        split = SOURCES["mmlu" if name.startswith("mmlu_") else name][2]
        (root / name).mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows), root / name / f"{split}.parquet")
    for rel, data in image_files().items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def image_root(task: str, root):
    if task == "slake_vqa":
        return root / "slake" / "imgs"
    if task.startswith("mimic"):
        return root / "mimic"
    return None


# ----------------------------------------------------------------------------- scripted servers
def _digest(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def policy_reply(text: str) -> str:
    """The evaluated model's answer to a question text: think blocks, spacing, option labels."""
    kinds = [
        "<think>the options, one by one</think> B. The second option",
        "<thinking>reasoning</thinking>\n  Liver  ",
        "  an answer with spaces around  ",
        "A",
        "<think>a</think>first</think> final answer",
    ]
    return kinds[_digest(text) % len(kinds)]


def judge_reply(first_prompt: str, round_no: int, rubric: bool) -> str:
    """The judge's reply in round ``round_no`` (0-based) for a conversation: odd but parseable
    forms the release reads (think blocks, code fences, strings, booleans, floats)."""
    d = _digest(first_prompt) + round_no
    if rubric:
        forms = [
            '{"score": 4}',
            '```json\n{\n"score": 3.5\n}\n```',
            '<think>{"score": 0}</think>{"score": true}',
            '{"score": 5}',
        ]
    else:
        forms = [
            '```json\n{\n"score": 1\n}\n```',
            '<think>{"score": 0}</think>{"score": 1}',
            '{"score": "1"}',
            '{"score": true}',
            '{"score": 0}',
            'Sure: {"score": 1.0} done',
        ]
    return forms[d % len(forms)]


def conversation_round(messages: list) -> int:
    """0, 1, 2 for a judge request with 1, 3, 5 messages."""
    return (len(messages) - 1) // 2


def text_of(content) -> str:
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if p.get("type") == "text")


def is_judge_request(payload: dict) -> bool:
    return payload.get("max_tokens") == 512 or text_of(payload["messages"][0]["content"]).startswith(
        "You are a medical expert"
    )


def reply_for(payload: dict) -> str:
    """One loopback server answers both roles, as the release's localhost:8005 does."""
    messages = payload["messages"]
    if is_judge_request(payload):
        first = text_of(messages[0]["content"])
        return judge_reply(first, conversation_round(messages), "0 and 5" in first)
    return policy_reply(text_of(messages[-1]["content"]))


def canonical(payload: dict) -> str:
    return json.dumps(payload, sort_keys=True, ensure_ascii=False)
