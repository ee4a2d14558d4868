"""A small synthetic MediX-R1 dataset with real images, in the published columns
(``id, image, source, problem, solution``) that :mod:`data_prep.medix_rl_data` converts.

Each image is a drawn "scan" (a dark field with a body outline and a bright lesion on the left or
the right, PNG or JPEG); the question asks where the lesion is or what the modality is, and the
reference answer carries the modality tag, as in the published data. It exists so the CPU recipe
and the tests run the real data path with nothing downloaded.

For learning curves, :func:`make_learnable_rows` is a second task: the question names an organ's
function and its answer follows from the question alone. A tiny policy taught the output format
with answers drawn at random from four organs (:data:`LEARNABLE_ANSWERS`) starts at 1 in 4 and
can learn from the reward, in a few GRPO steps, which organ the question asks for.

    python -m medix_verl.devkit.synthetic --rows 16 --out raw/train.parquet --seed 0
"""

from __future__ import annotations

import argparse
import io
import random
from pathlib import Path

# (modality tag, source, how the scan looks)
_KINDS = [
    ("CT_SCAN", "synthetic_ct", "L"),
    ("X_RAY", "synthetic_xray", "L"),
    ("MRI_SCAN", "synthetic_mri", "L"),
    ("ULTRASOUND", "synthetic_us", "L"),
    ("MICROSCOPY", "synthetic_micro", "RGB"),
]
_NAMES = {
    "CT_SCAN": "CT scan",
    "X_RAY": "X-ray",
    "MRI_SCAN": "MRI scan",
    "ULTRASOUND": "ultrasound image",
    "MICROSCOPY": "microscopy image",
}


def draw_scan(rng: random.Random, mode: str, side: str, size: int = 96):
    """A PIL image: body outline and a bright lesion on ``side`` ('left' or 'right' of the patient,
    drawn on the viewer's right or left as radiology displays do)."""
    from PIL import Image, ImageDraw, ImageFilter

    background = (20, 12, 30) if mode == "RGB" else 15
    image = Image.new(mode, (size, size), background)
    draw = ImageDraw.Draw(image)
    body = (200, 150, 190) if mode == "RGB" else 90
    pad = size // 8
    draw.ellipse([pad, pad, size - pad, size - pad], fill=body)
    cx = size * (0.68 if side == "left" else 0.32) + rng.uniform(-4, 4)
    cy = size / 2 + rng.uniform(-10, 10)
    r = rng.uniform(6, 12)
    lesion = (250, 240, 120) if mode == "RGB" else 240
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=lesion)
    return image.filter(ImageFilter.GaussianBlur(1))


def _encode(image, rng: random.Random) -> bytes:
    buf = io.BytesIO()
    if rng.random() < 0.5:
        image.save(buf, format="PNG")
    else:
        image.convert("RGB").save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def make_rows(n: int, seed: int = 0, prefix: str = "syn") -> list[dict]:
    """``n`` rows in the published columns (every sixth one text-only)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        tag, source, mode = _KINDS[(i - i // 6) % len(_KINDS)]
        side = rng.choice(["left", "right"])
        if i % 6 == 5:
            rows.append(
                dict(
                    id=f"{prefix}-{i}",
                    image=[],
                    source="synthetic_text",
                    problem="Which side of the heart receives deoxygenated blood from the body?",
                    solution="<OTHER> The right atrium",
                )
            )
            continue
        image = {"bytes": _encode(draw_scan(rng, mode, side), rng), "path": None}
        if i % 2:
            problem, answer = "On which side is the bright lesion?", f"{side.capitalize()} side"
        else:
            problem, answer = "What imaging modality is this?", _NAMES[tag]
        rows.append(
            dict(id=f"{prefix}-{i}", image=[image], source=source, problem=problem, solution=f"<{tag}> {answer}")
        )
    return rows


#: the learnable task: a question naming an organ's function; the reference is the organ and the
#: modality of its (drawn) study. (Two questions were tried: in 30 steps the tiny policy learned
#: which organs are ever right, then settled on one of them for both questions.)
LEARNABLE_QUESTIONS = {"Kidney": ("Which organ filters the blood to make urine?", 3)}
#: the organs the warm start writes, at random: the answer and three that are never right, so the
#: policy starts at 1 in 4 and can learn from the reward alone which organ the question asks for
LEARNABLE_ANSWERS = ("Heart", "Kidney", "Liver", "Lung")


def make_learnable_rows(n: int, seed: int = 0, prefix: str = "organ") -> list[dict]:
    """``n`` rows of the learnable task in the published columns: a drawn scan of one of the
    kinds (its modality tag in the reference) and a question whose answer is an organ.

    >>> rows = make_learnable_rows(16, seed=0)
    >>> sorted({r["solution"] for r in rows})
    ['<ULTRASOUND> Kidney']
    >>> rows[0]["solution"].startswith("<") and len(rows[0]["image"]) == 1
    True
    """
    rng = random.Random(seed)
    rows = []
    organs = list(LEARNABLE_QUESTIONS)
    for i in range(n):
        organ = organs[rng.randrange(len(organs))]
        question, kind = LEARNABLE_QUESTIONS[organ]
        tag, source, mode = _KINDS[kind]
        image = {"bytes": _encode(draw_scan(rng, mode, rng.choice(["left", "right"])), rng), "path": None}
        rows.append(
            dict(id=f"{prefix}-{i}", image=[image], source=source, problem=question, solution=f"<{tag}> {organ}")
        )
    return rows


def write_parquet(rows: list[dict], path: str | Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            ("id", pa.string()),
            ("image", pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))),
            ("source", pa.string()),
            ("problem", pa.string()),
            ("solution", pa.string()),
        ]
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prefix", default="syn")
    args = parser.parse_args(argv)
    path = write_parquet(make_rows(args.rows, args.seed, args.prefix), args.out)
    print(f"wrote {args.rows} rows to {path}")


if __name__ == "__main__":
    main()
