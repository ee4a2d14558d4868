"""Memory and speed of data_prep.medix_rl_data as the dataset grows.

Generates 2k and 20k synthetic rows in the published columns with 512x512 JPEG images, converts
each in a fresh process, and prints rows/s and peak RSS of each run and their ratio (target: the
20k run's peak RSS <= 1.3x the 2k run's, i.e. memory does not grow with the dataset).

    python benchmarks/data_prep_scaling.py [--small 2000] [--large 20000] [--num-proc 2]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TAGS = ["<X_RAY>", "<CT_SCAN>", "<MRI_SCAN>", "<ULTRASOUND>", "<MICROSCOPY>"]
SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("image", pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))),
        ("source", pa.string()),
        ("problem", pa.string()),
        ("solution", pa.string()),
    ]
)

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from data_prep.medix_rl_data import convert
t = time.perf_counter()
stats = convert(sys.argv[2], "train", sys.argv[3], num_proc=int(sys.argv[4]), progress=False)
elapsed = time.perf_counter() - t
print(json.dumps({"rows": stats["rows_in"], "out": stats["rows_out"], "seconds": elapsed,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "workers_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def make_images(n=64, size=512):
    rng = np.random.default_rng(0)
    out = []
    yy, xx = np.mgrid[0:size, 0:size]
    for i in range(n):
        base = (np.sin(xx / (8 + i)) + np.cos(yy / (11 + i))) * 60 + 128
        arr = np.clip(base[..., None] + rng.normal(0, 12, (size, size, 3)), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="JPEG", quality=85)
        out.append(buf.getvalue())
    return out


def write_dataset(path, rows, images):
    with pq.ParquetWriter(path, SCHEMA) as writer:
        for start in range(0, rows, 500):
            batch = []
            for i in range(start, min(rows, start + 500)):
                batch.append(
                    {
                        "id": f"row-{i}",
                        "image": [{"bytes": images[i % len(images)], "path": None}],
                        "source": f"src{i % 7}",
                        "problem": f"What is the finding in image {i}?",
                        "solution": f"{TAGS[i % len(TAGS)]} finding number {i}",
                    }
                )
            writer.write_table(pa.Table.from_pylist(batch, schema=SCHEMA))


def run(src, out, num_proc):
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, ROOT, src, out, str(num_proc)], capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=2000)
    parser.add_argument("--large", type=int, default=20000)
    parser.add_argument("--num-proc", type=int, default=2)
    args = parser.parse_args()
    images = make_images()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, rows in (("small", args.small), ("large", args.large)):
            src = os.path.join(tmp, f"{label}.parquet")
            t = time.perf_counter()
            write_dataset(src, rows, images)
            gen = time.perf_counter() - t
            r = run(src, os.path.join(tmp, f"{label}-out"), args.num_proc)
            results[label] = r
            size = os.path.getsize(src) / 2**20
            print(
                f"{rows:>6} rows ({size:.0f} MB input, generated in {gen:.0f}s): converted in {r['seconds']:.1f}s = "
                f"{r['rows'] / r['seconds']:.0f} rows/s; peak RSS main {r['peak_rss_mb']:.0f} MB, "
                f"workers {r['workers_peak_rss_mb']:.0f} MB"
            )
    small, large = results["small"], results["large"]
    print(
        f"RATIO peak RSS {args.large}/{args.small} rows: main {large['peak_rss_mb'] / small['peak_rss_mb']:.2f}x, "
        f"workers {large['workers_peak_rss_mb'] / small['workers_peak_rss_mb']:.2f}x (target <= 1.3x)"
    )
    print(
        f"RATIO throughput {args.large}/{args.small} rows: "
        f"{(large['rows'] / large['seconds']) / (small['rows'] / small['seconds']):.2f}x"
    )


if __name__ == "__main__":
    main()
