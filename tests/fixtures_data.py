"""Fixture datasets in the published MediX columns, with real encoded images of every awkward kind."""

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image


def encode(img, fmt="PNG", **kw):
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def rgba_png(size=(64, 48)):
    arr = np.zeros((size[1], size[0], 4), dtype=np.uint8)
    arr[..., 0] = 200
    arr[..., 3] = np.linspace(0, 255, size[0], dtype=np.uint8)[None, :]
    return encode(Image.fromarray(arr))


def palette_png(size=(40, 40)):
    img = Image.new("P", size)
    img.putpalette([i % 256 for i in range(768)])
    img.putdata([(x * 7) % 256 for x in range(size[0] * size[1])])
    return encode(img)


def gray16_png(size=(50, 30)):
    arr = (np.arange(size[0] * size[1], dtype=np.uint16).reshape(size[1], size[0]) * 40).astype(np.uint16)
    return encode(Image.fromarray(arr))


def gray_jpeg(size=(60, 60)):
    return encode(Image.fromarray(np.full((size[1], size[0]), 128, dtype=np.uint8)), "JPEG")


def rgb_jpeg(size=(80, 60), seed=0):
    rng = np.random.default_rng(seed)
    return encode(Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)), "JPEG", quality=90)


def truncated_png():
    return rgb_png()[:200]


def rgb_png(size=(64, 64), seed=1):
    rng = np.random.default_rng(seed)
    return encode(Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)))


def large_png():
    return encode(Image.new("RGB", (2600, 1800), (10, 20, 30)))  # 4.68 Mpx > 4,194,304


def img(b):
    return {"bytes": b, "path": None}


def published_rows():
    """(rows, expectations): each row in the published columns, and what should happen to it."""
    rows = [
        dict(
            id="ok-rgba",
            image=[img(rgba_png())],
            source="slake",
            problem="What organ is shown?",
            solution="<CT_SCAN> Liver",
        ),
        dict(
            id="ok-palette",
            image=[img(palette_png())],
            source="pmc",
            problem="Describe.",
            solution="<GRAPHICS> A chart",
        ),
        dict(
            id="ok-16bit", image=[img(gray16_png())], source="pmc", problem="Which view?", solution="<X_RAY> PA view."
        ),
        dict(
            id="ok-gray", image=[img(gray_jpeg())], source="rad", problem="Is it normal?", solution="<ULTRASOUND> yes"
        ),
        dict(
            id="ok-two",
            image=[img(rgb_jpeg()), img(rgb_png())],
            source="rad",
            problem="Compare the two.",
            solution="<MRI_SCAN> Larger lesion on the second",
        ),
        dict(
            id="ok-none",
            image=[],
            source="text",
            problem="Define tachycardia.",
            solution="<OTHER> Heart rate above 100 per minute",
        ),
        dict(id="ok-large", image=[img(large_png())], source="slake", problem="Where?", solution="<CT_SCAN> Left lung"),
        dict(id="bad-trunc", image=[img(truncated_png())], source="slake", problem="What?", solution="<CT_SCAN> x y"),
        dict(id="bad-tag", image=[img(rgb_png())], source="slake", problem="What?", solution="<BRAIN_SCAN> tumour"),
        dict(id="bad-notag", image=[img(rgb_png())], source="pmc", problem="What?", solution="tumour"),
        dict(id="bad-empty-problem", image=[img(rgb_png())], source="pmc", problem="   ", solution="<CT_SCAN> mass"),
        dict(id="bad-empty-answer", image=[img(rgb_png())], source="pmc", problem="What?", solution="<CT_SCAN>  . "),
        dict(id="ok-rgba", image=[img(rgba_png())], source="slake", problem="Duplicate id", solution="<CT_SCAN> Liver"),
    ]
    expected_rejects = {
        "bad-trunc": "bad_image",
        "bad-tag": "unknown_modality",
        "bad-notag": "unknown_modality",
        "bad-empty-problem": "empty_problem",
        "bad-empty-answer": "empty_answer",
    }
    return rows, expected_rejects


PUBLISHED_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("image", pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))),
        ("source", pa.string()),
        ("problem", pa.string()),
        ("solution", pa.string()),
    ]
)


def write_published_parquet(path, rows, row_group_size=4):
    pq.write_table(pa.Table.from_pylist(rows, schema=PUBLISHED_SCHEMA), path, row_group_size=row_group_size)
    return path
