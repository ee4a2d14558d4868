"""Evaluation numbers users can compare: intervals, paired comparison, image ablation and judge
consistency, checked against independently computed values and scripted loopback servers."""

import base64
import io
import json
import math
import re
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from data_prep.eval_sets import SCHEMA
from medix_verl.devkit.fake_judge import FakeJudge
from medix_verl.eval import stats


def text_of(content):
    return content if isinstance(content, str) else "".join(p.get("text", "") for p in content if p["type"] == "text")


# ----------------------------------------------------------------------------- statistics
def test_wilson_matches_the_closed_form():
    k, n, z = 37, 50, 1.959963984540054
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert stats.wilson(k, n) == pytest.approx((centre - half, centre + half), abs=1e-9)


def test_mcnemar_exact_on_a_known_discordant_count():
    # 2 pairs only A got right, 12 only B got right, 30 both, 6 neither: p = 2 * P(X <= 2), X ~ Bin(14, 1/2)
    a = [1] * 2 + [0] * 12 + [1] * 30 + [0] * 6
    b = [0] * 2 + [1] * 12 + [1] * 30 + [0] * 6
    expected = 2 * sum(math.comb(14, i) for i in range(3)) / 2**14
    assert stats.mcnemar_exact(a, b) == pytest.approx(expected)
    assert stats.mcnemar_exact([1, 0], [1, 0]) == 1.0


def test_bootstrap_intervals_cover_the_mean_and_collapse_without_spread():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, 400)
    low, high = stats.bootstrap_mean(x)
    se = x.std(ddof=1) / math.sqrt(x.size)
    assert low < x.mean() < high and high - low == pytest.approx(2 * 1.96 * se, rel=0.15)
    assert stats.overall_interval({"a": [1.0] * 5, "b": [0.0] * 7}) == (0.5, 0.5)
    lo, hi, p = stats.paired_bootstrap([0.0] * 30, [1.0] * 30)
    assert (lo, hi) == (1.0, 1.0) and p == 0.0


# ----------------------------------------------------------------------------- paired comparison (CLI)
N = 40


def _mcq_task(folder):
    rows = [
        {"id": f"q{i}", "task": "medqa", "question": f"Case {i:02d}?\n\nChoices:\nA. Alpha\nB. Beta",
         "choices": ["Alpha", "Beta"], "answer": "Alpha", "images": [], "kind": "mcq"}
        for i in range(N)
    ]  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), folder / "medqa.parquet")


def _policy_right_on(right):
    def answer(payload):
        case = int(re.search(r"Case (\d+)", text_of(payload["messages"][-1]["content"])).group(1))
        return "A. Alpha" if case in right else "B. Beta"

    return answer


def _judge(payload):
    first = text_of(payload["messages"][0]["content"])
    ref, pred = re.search(r"Correct Answer:\n(.*?)\n\nPredicted Answer:\n(.*?)\n\nScore 1", first, re.S).groups()
    return f'{{"score": {1 if ref in pred else 0}}}'


def _eval(data, out, policy, judge, *extra):
    cmd = [sys.executable, "-m", "medix_verl.cli", "eval", "--tasks", "all", "--data-dir", str(data),
           "--model-url", policy.url, "--model", "m", "--judge-url", judge.url, "--judge-model", "j",
           "--output", str(out), "-q", *extra]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads((out / "results.json").read_text())


@pytest.mark.slow
def test_eval_compare_pairs_samples_and_refuses_different_data(tmp_path):
    _mcq_task(tmp_path / "data")
    right_a = set(range(10)) | {30, 31}  # A right on 12
    right_b = set(range(28))  # B right on 28: 2 only-A (30, 31), 18 only-B (10..27)
    with FakeJudge(chat_policy=_judge) as judge:
        with FakeJudge(chat_policy=_policy_right_on(right_a)) as pa_:
            _eval(tmp_path / "data", tmp_path / "A", pa_, judge)
        with FakeJudge(chat_policy=_policy_right_on(right_b)) as pb_:
            _eval(tmp_path / "data", tmp_path / "B", pb_, judge)
    proc = subprocess.run(
        [sys.executable, "-m", "medix_verl.cli", "eval-compare", str(tmp_path / "A"), str(tmp_path / "B"),
         "-o", str(tmp_path / "cmp")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    cmp = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    t = cmp["tasks"]["medqa"]
    expected_p = 2 * sum(math.comb(20, i) for i in range(3)) / 2**20
    assert (t["n_paired"], t["a"], t["b"], t["diff"]) == (N, 30.0, 70.0, 40.0)
    assert t["p_value"] == pytest.approx(expected_p) and t["significant"] is True
    assert t["ci95"][0] > 0 and t["ci95"][1] <= 100
    assert cmp["overall"]["diff"] == 40.0 and cmp["overall"]["n_paired"] == N
    assert "| medqa | 40 | 30.00 | 70.00 | +40.00 * |" in proc.stdout
    # the same task name over other data is refused
    run_b = json.loads((tmp_path / "B" / "run.json").read_text())
    run_b["tasks"]["medqa"] = "0" * 64
    (tmp_path / "B" / "run.json").write_text(json.dumps(run_b))
    proc = subprocess.run(
        [sys.executable, "-m", "medix_verl.cli", "eval-compare", str(tmp_path / "A"), str(tmp_path / "B")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and "evaluated different data for task(s) ['medqa']" in proc.stderr


# ----------------------------------------------------------------------------- image ablation
M = 20


def _color_image(i):
    buf = io.BytesIO()
    Image.new("RGB", (24, 16), (i * 12 + 8, 40, 40)).save(buf, format="PNG")
    return buf.getvalue()


def _image_task(folder):
    rows = [
        {"id": f"v{i}", "task": "rad_vqa", "question": "Which organ is this?", "choices": None,
         "answer": f"organ {i:02d}", "images": [{"bytes": _color_image(i)}], "kind": "open"}
        for i in range(M)
    ]  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), folder / "rad_vqa.parquet")


def _looks_at_the_image(payload):
    part = payload["messages"][-1]["content"][0]
    data = base64.b64decode(part["image_url"]["url"].split(",", 1)[1])
    red = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))[..., 0].mean()
    return f"organ {max(0, round((red - 8) / 12)):02d}"


@pytest.mark.slow
@pytest.mark.parametrize(("mode", "accuracy"), [("blank", 5.0), ("shuffle", 0.0)])
def test_image_ablation_shows_how_much_the_image_matters(tmp_path, mode, accuracy):
    _image_task(tmp_path / "data")
    with FakeJudge(chat_policy=_looks_at_the_image) as policy, FakeJudge(chat_policy=_judge) as judge:
        res = _eval(tmp_path / "data", tmp_path / "out", policy, judge, "--image-ablation", mode)
    task = res["tasks"]["rad_vqa"]
    assert task["accuracy"] == 100.0  # with its own image, the policy reads every answer off it
    ab = task["ablation"]
    # blank: all black, read as organ 00: only v0 right; shuffle: the next sample's image: none right
    assert (ab["mode"], ab["n_paired"], ab["accuracy"], ab["diff"]) == (mode, M, accuracy, accuracy - 100.0)
    assert ab["ci95"][0] <= ab["diff"] <= ab["ci95"][1] < 0
    md = (tmp_path / "out" / "results.md").read_text()
    assert f"| rad_vqa | 100.00 | {mode} | {accuracy:.2f} | {accuracy - 100:.2f} |" in md


# ----------------------------------------------------------------------------- judge consistency
SCRIPT = {  # case -> the judge's three rounds
    0: [1, 1, 1],
    1: [1, 0, 0],  # disagrees, flipped
    2: [0, 1, 1],  # disagrees, flipped
    3: [1, 0, 1],  # disagrees, back where it started
    4: [0, 0, 0],
}


def _scripted_judge(payload):
    case = int(re.search(r"Case (\d+)", text_of(payload["messages"][0]["content"])).group(1))
    return f'{{"score": {SCRIPT[case % 5][(len(payload["messages"]) - 1) // 2]}}}'


@pytest.mark.slow
def test_consistency_counts_and_option_disagreements(tmp_path):
    _mcq_task(tmp_path / "data")
    # the policy always picks "A. Alpha", the right option; the script's majority says wrong for
    # cases 1 and 4 of every five: those 2 of 5 disagree with the chosen option
    with (
        FakeJudge(chat_policy=_policy_right_on(set(range(N)))) as policy,
        FakeJudge(chat_policy=_scripted_judge) as judge,
    ):
        res = _eval(tmp_path / "data", tmp_path / "out", policy, judge)
    t = res["tasks"]["medqa"]
    assert (t["rounds_disagree"], t["flipped"], t["judge_option_agreement"]) == (0.6, 0.4, 0.6)
    rows = [json.loads(x) for x in (tmp_path / "out" / "judge_option_disagreements.jsonl").read_text().splitlines()]
    assert sorted(int(r["id"][1:]) % 5 for r in rows) == [1] * 8 + [4] * 8
    assert all(r["chosen"] == r["correct"] == "A" and r["judge_score"] == 0.0 for r in rows)


# ----------------------------------------------------------------------------- closed vs open, modality
def test_closed_and_open_accuracies_and_modalities_on_a_fixed_table(tmp_path):
    from medix_verl.eval.reports import write_reports
    from medix_verl.eval.runner import key_of, summarize

    # (reference, modality, score): closed 3 of 4 right, open 1 of 3 right (one open failed: left out)
    table = [
        ("Yes", "CT", 1.0), ("no", "CT", 1.0), ("No.", "MRI", 0.0), (" yes ", "X-Ray", 1.0),
        ("liver", "CT", 1.0), ("left kidney", "MRI", 0.0), ("spleen", "MRI", 0.0), ("heart", "CT", None),
    ]  # fmt: skip
    samples, done = [], {}
    for i, (ref, modality, score) in enumerate(table):
        s = {"task": "slake_vqa", "id": f"s{i}", "kind": "yes_no" if ref.strip(" .").lower() in ("yes", "no") else "open",
             "answer": ref.strip(), "modality": modality}  # fmt: skip
        samples.append(s)
        done[key_of(s)] = {"score": score, "rounds": [] if score is None else [int(score)] * 3,
                           "prediction": "x", "failure": None if score is not None else "judge failed"}  # fmt: skip
    res = summarize(tmp_path, ["slake_vqa"], samples, done)
    by = res["tasks"]["slake_vqa"]["by_answer_type"]
    assert (by["closed"]["n"], by["closed"]["accuracy"]) == (4, 75.0)
    assert (by["open"]["n"], by["open"]["accuracy"]) == (3, 33.33)
    assert by["closed"]["ci95"] == [round(100 * x, 2) for x in stats.wilson(3, 4)]
    mods = res["tasks"]["slake_vqa"]["by_modality"]
    assert {m: (e["n"], e["accuracy"]) for m, e in mods.items()} == {
        "CT": (3, 100.0), "MRI": (3, 0.0), "X-Ray": (1, 100.0)
    }  # fmt: skip
    write_reports(tmp_path, res)
    md = (tmp_path / "results.md").read_text()
    assert "| slake_vqa | 4 | 75.00 |" in md and "| 3 | 33.33 |" in md and "| slake_vqa | MRI | 3 | 0.00 |" in md


# ----------------------------------------------------------------------------- judge agreement
def _fake_run(folder, verdicts, outputs, task="rad_vqa"):
    """A run folder as medix-verl eval leaves it: results.json and samples.jsonl."""
    folder.mkdir(parents=True)
    with open(folder / "samples.jsonl", "w") as f:
        for i, (v, out) in enumerate(zip(verdicts, outputs)):
            f.write(json.dumps({"task": task, "id": f"q{i}", "score": float(v), "raw_output": out}) + "\n")
    acc = 100.0 * sum(verdicts) / len(verdicts)
    (folder / "results.json").write_text(json.dumps({"tasks": {task: {"accuracy": acc}}, "overall": acc}))


def test_two_judges_on_the_same_answers_report_agreement_and_kappa(tmp_path):
    from medix_verl.eval.compare import compare, paired_comparison

    a = [1, 1, 0, 0, 1, 0, 1, 1, 0, 1]
    b = [1, 0, 0, 0, 1, 0, 1, 1, 1, 1]
    answers = [f"answer {i}" for i in range(10)]
    _fake_run(tmp_path / "judge_a", a, answers)
    _fake_run(tmp_path / "judge_b", b, answers)
    res = paired_comparison(tmp_path / "judge_a", tmp_path / "judge_b")
    ja = res["tasks"]["rad_vqa"]["judge_agreement"]
    # by hand: p_o = 8/10; both judges say 1 six times in ten: p_e = 0.6^2 + 0.4^2 = 0.52
    assert ja["n"] == 10 and ja["agreement"] == 0.8
    assert ja["kappa"] == pytest.approx((0.8 - 0.52) / (1 - 0.52)) and ja["kappa_kind"] == "cohen"
    assert res["overall"]["judge_agreement"]["kappa"] == pytest.approx(ja["kappa"])
    table = compare([tmp_path / "judge_a", tmp_path / "judge_b"], tmp_path / "cmp")
    assert "| 10, 80.0%, 0.583 |" in table
    saved = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert saved["tasks"]["rad_vqa"]["judge_agreement"]["agreement"] == 0.8


def test_runs_over_different_answers_keep_the_paired_comparison_only(tmp_path):
    from medix_verl.eval.compare import paired_comparison

    _fake_run(tmp_path / "model_a", [1, 0, 1, 1], ["a", "b", "c", "d"])
    _fake_run(tmp_path / "model_b", [1, 1, 1, 0], ["w", "x", "y", "z"])
    res = paired_comparison(tmp_path / "model_a", tmp_path / "model_b")
    assert res["tasks"]["rad_vqa"]["n_paired"] == 4 and "judge_agreement" not in res["tasks"]["rad_vqa"]
    assert "judge_agreement" not in res["overall"]


def test_a_rubric_task_reports_the_weighted_kappa():
    v = stats.verdict_agreement([0.8, 0.6, 1.0, 0.0], [0.8, 0.4, 1.0, 0.2], levels=6)
    # by hand on the 0-5 scale: pairs (4,4) (3,2) (5,5) (0,1); quadratic weights (i-j)^2/25
    from sklearn.metrics import cohen_kappa_score

    assert v["agreement"] == 0.5 and v["kappa_kind"] == "quadratic_weighted"
    assert v["kappa"] == pytest.approx(
        cohen_kappa_score([4, 3, 5, 0], [4, 2, 5, 1], labels=list(range(6)), weights="quadratic")
    )
