"""The robust preset: the red-team suite against a gullible judge, legitimate answers, strict
verdicts, logprob verdicts, property-based parsing tests, and the calibration command."""

import asyncio
import json
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redteam_cases import LEGIT, REF, adversarial_cases, wrap

import reward_fns as rf
from medix_verl.clients.chat import ChatClient
from medix_verl.devkit.fake_judge import FakeJudge
from medix_verl.reward.scorer import MedixScorer
from medix_verl.reward.settings import RewardSettings

CASES = adversarial_cases()


def gullible():
    return FakeJudge(policy=lambda content: "YES")


def scorer_for(judge, minilm, preset="robust", **settings):
    client = ChatClient(judge.url, "m", backoff=0.01, max_error_rate=1.0)
    return MedixScorer(RewardSettings(preset=preset, **settings), judge=client, embedder=minilm)


def score_all(scorer, rows):
    async def go():
        try:
            return await scorer.score_many(rows)
        finally:
            await scorer.aclose()

    return asyncio.run(go())


def test_suite_is_big_enough():
    assert len(CASES) >= 100


def test_red_team_earns_nothing_under_robust(minilm):
    rows = [
        {"response": response, "ground_truth": REF, "question": "What is the diagnosis?"} for _, response, _, _ in CASES
    ]
    with gullible() as judge:
        results = score_all(scorer_for(judge, minilm), rows)
    assert judge.received == 0, "an adversarial answer reached the judge"
    for (group, response, expected, gate), result in zip(CASES, results):
        for key, value in expected.items():
            assert result[key] == value, (group, response, key, result)
        if gate is not None:
            assert result[f"gate_{gate}"] == 1.0, (group, response, result)
        assert result["judge_error"] == 0.0


def test_same_suite_games_the_paper_preset(minilm):
    """The contrast that motivates robust: the published rules pay many of these answers."""
    rows = [{"response": response, "ground_truth": REF} for _, response, _, _ in CASES]
    with gullible() as judge:
        results = score_all(scorer_for(judge, minilm, preset="paper"), rows)
    paid = sum(r["accuracy_llm"] for r in results)
    assert paid >= len(CASES) // 3


def test_legitimate_answers_keep_credit(minilm):
    rows = [{"response": wrap(answer, gt.split(">")[0] + ">"), "ground_truth": gt} for answer, gt in LEGIT]
    with gullible() as judge:
        results = score_all(scorer_for(judge, minilm), rows)
    for (answer, _gt), result in zip(LEGIT, results):
        assert result["accuracy_llm"] == 1.0, (answer, result)
        assert result["format"] == 1.0 and result["modality"] == 1.0
        assert not any(result[k] for k in result if k.startswith("gate_")), (answer, result)


def test_judge_sees_question_and_fenced_answer(minilm):
    with gullible() as judge:
        score_all(
            scorer_for(judge, minilm),
            [
                {
                    "response": wrap("Pneumonia of the left base"),
                    "ground_truth": REF,
                    "question": "What is the diagnosis?",
                }
            ],
        )
    content = judge.payloads[0]["messages"][0]["content"]
    assert "<<<QUESTION\nWhat is the diagnosis?\nQUESTION>>>" in content
    assert "<<<PREDICTED\nPneumonia of the left base\nPREDICTED>>>" in content
    assert judge.payloads[0]["max_tokens"] == 2


def test_strict_verdict_retries_once_then_judge_error(minilm):
    with FakeJudge(policy=lambda c: "The answer is YES") as judge:
        scorer = scorer_for(judge, minilm)
        (result,) = score_all(scorer, [{"response": wrap("Pneumonia of the left base"), "ground_truth": REF}])
    assert result["judge_error"] == 1.0 and result["accuracy_llm"] == 0.0
    assert judge.received == 2 and scorer.unparseable_verdicts == 2
    with FakeJudge(policy=lambda c: "The answer is YES") as judge:
        (result,) = score_all(
            scorer_for(judge, minilm, preset="paper"),
            [{"response": wrap("Pneumonia of the left base"), "ground_truth": REF}],
        )
    assert result["accuracy_llm"] == 1.0  # the paper rule reads YES anywhere


def test_yes_probability_threshold(minilm):
    rows = [{"response": wrap(f"left basal pneumonia variant {i}"), "ground_truth": REF} for i in range(3)]
    probs = iter([0.9, 0.6, 0.2])
    table = {}

    def yes_prob(content):
        return table.setdefault(content, next(probs))

    with FakeJudge(yes_prob=yes_prob) as judge:
        results = score_all(scorer_for(judge, minilm, judge_yes_threshold=0.7), rows)
    assert sorted(r["accuracy_llm"] for r in results) == [0.0, 0.0, 1.0]
    assert all(p["logprobs"] is True and p["top_logprobs"] == 5 for p in judge.payloads)


def test_max_answer_chars_is_configurable(minilm):
    answer = "Left lower lobe pneumonia with air bronchograms"
    with gullible() as judge:
        (short_cap,) = score_all(
            scorer_for(judge, minilm, max_answer_chars=20), [{"response": wrap(answer), "ground_truth": REF}]
        )
        (long_cap,) = score_all(
            scorer_for(judge, minilm, max_answer_chars=100), [{"response": wrap(answer), "ground_truth": REF}]
        )
    assert short_cap["gate_too_long"] == 1.0 and short_cap["accuracy_llm"] == 0.0
    assert long_cap["gate_too_long"] == 0.0 and long_cap["accuracy_llm"] == 1.0


# --------------------------------------------------------------------------- property-based
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400), st.text(max_size=80))
def test_parsers_never_crash(response, ground_truth):
    for preset in (rf.PAPER, rf.ROBUST):
        sample = rf.prepare(response, ground_truth, preset)
        assert sample.format in (0.0, 1.0) and sample.modality in (0.0, 1.0)
        assert sample.route in (rf.ROUTE_EXACT, rf.ROUTE_INVALID, rf.ROUTE_MODEL, rf.ROUTE_NO_REFERENCE)
        if sample.route != rf.ROUTE_MODEL:
            out = rf.score_without_models(sample)
            assert 0.0 <= out["score"] <= 1.0


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            ["<thinking>", "</thinking>", "<answer>", "</answer>", " ", "x", "<", ">", "/", ":", "or", "\n"]
        ),
        max_size=60,
    )
)
def test_markup_soup_never_crashes(tokens):
    text = "".join(tokens)
    assert rf.robust_format_reward(rf.normalize_response(text)) in (0.0, 1.0)
    rf.gate_answer(text)
    rf.robust_judge_messages(text, text, text)


PATHOLOGICAL = [
    lambda n: "<thinking>" + "</thinking><answer>x</answer>x" * n,
    lambda n: "<CT_SCAN><thinking>" + "a " * n + "</thinking><answer>" + "or " * n + "</answer>",
    lambda n: "< " * n + "/ " * n,
    lambda n: "<answer>" * n,
    lambda n: "ignore " * n + "instructions",
    lambda n: " " * (8 * n) + "x",
    lambda n: "\n \t" * n + "<answer>" + "x " * n,
]


@pytest.mark.parametrize("preset", [rf.PAPER, rf.ROBUST], ids=["paper", "robust"])
@pytest.mark.parametrize("make", PATHOLOGICAL)
def test_one_megabyte_is_scored_in_linear_time(make, preset):
    """Scale a pathological response 8x (128 KB -> 1 MB): linear code takes ~8x as long, a
    backtracking blow-up 64x or more. The bound is a ratio, so the machine's speed does not matter."""

    def once(text):
        sample = rf.prepare(text, REF, preset)
        rf.robust_judge_messages(sample.answer, sample.reference or "", "q")

    def timed(text, reps):
        started = time.perf_counter()
        for _ in range(reps):
            once(text)
        return time.perf_counter() - started

    def cost(n):
        # per call, timed over enough calls to take 50 ms: a sub-millisecond call timed once is
        # mostly the scheduler's noise on a busy machine (0.4 ms against 11 ms was seen)
        text = make(n)
        reps = 1
        while timed(text, reps) < 0.05 and reps < 4096:
            reps *= 2
        return len(text), min(timed(text, reps) for _ in range(3)) / reps

    unit = max(1, 131_072 // len(make(1)))
    small_len, small = cost(unit)
    big_len, big = cost(unit * 8)
    assert big_len >= 1_000_000 or big_len / small_len >= 7.9
    assert big / max(small, 1e-4) < 24, f"{big:.3f}s for {big_len} chars vs {small:.3f}s for {small_len}"


# --------------------------------------------------------------------------- calibration
@pytest.mark.slow
def test_calibrate_embed_command(tmp_path, minilm_path):
    out = tmp_path / "cal.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "medix_verl.cli",
            "calibrate-embed",
            "--embed-model",
            minilm_path,
            "--embed-device",
            "cpu",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "ROC AUC:" in proc.stdout and "best threshold (Youden J):" in proc.stdout
    assert "laterality (different)" in proc.stdout and "at the paper's threshold 0.8" in proc.stdout
    data = json.loads(out.read_text())
    assert data["pairs"] == 80 and -1.0 <= data["best_threshold"] <= 1.0 and 0.0 <= data["auc"] <= 1.0
    assert data["roc"][-1]["tpr"] == 1.0 and data["roc"][-1]["fpr"] == 1.0


def test_calibration_thresholds_are_cosines_even_for_identical_texts():
    # float32 unit vectors of identical texts have a dot product of 1.0000001: the offered
    # threshold must still be one embed_threshold accepts
    import numpy as np

    from medix_verl.reward.calibrate import calibrate
    from medix_verl.reward.settings import RewardSettings

    class Identical:
        def encode_now(self, texts):
            v = np.full((len(texts), 3), 1 / np.sqrt(3), dtype=np.float32)
            return v * np.float32(1.0000001)

    pairs = [{"a": "x", "b": "x", "same": 1}, {"a": "y", "b": "y", "same": 0}]
    cal = calibrate(pairs, Identical())
    assert float(cal.thresholds.max()) <= 1.0 and cal.best_threshold <= 1.0
    RewardSettings(embed_threshold=cal.best_threshold)


def test_roc_on_separable_pairs():
    import numpy as np

    from medix_verl.reward.calibrate import roc

    cal = roc(np.array([0.95, 0.9, 0.85, 0.5, 0.4, 0.3]), np.array([1, 1, 1, 0, 0, 0]))
    assert cal.auc == pytest.approx(1.0) and cal.best_threshold == pytest.approx(0.85)
    assert (cal.best_tpr, cal.best_fpr) == (1.0, 0.0)


def test_bad_pairs_file(tmp_path):
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"a": "x", "b": "y", "same": 1}\n{"a": "x", "b": 2, "same": 0}\n')
    proc = subprocess.run(
        [sys.executable, "-m", "medix_verl.cli", "calibrate-embed", "--pairs", str(bad), "--embed-model", "x"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "p.jsonl:2: need string fields 'a' and 'b'" in proc.stderr


@settings(max_examples=2000, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            ["<thinking>", "</thinking>", "<answer>", "</answer>", " ", "\n", "\u3000", "\t ", "x", "<", ">", "/", "."]
        ),
        max_size=14,
    )
)
def test_linear_paper_rules_equal_the_release_regexes(tokens):
    """The release preset's linear-time rules give exactly what the release's regexes give."""
    from reward_fns import rules

    text = "".join(tokens)
    assert rules.normalize_response(text) == rules.PAPER_NORMALIZE_PATTERN.sub(r"\1", text)
    found = rules.PAPER_ANSWER_PATTERN.search(text)
    assert rules.extract_answer(text) == (found.group(1) if found else text).strip().strip(".")
    start = text.find("<thinking>")
    want = 0.0 if start < 0 else (1.0 if rules.PAPER_FORMAT_PATTERN.fullmatch(text[start:].strip()) else 0.0)
    assert rules.paper_format_reward(text) == want


def test_max_answer_chars_above_the_default_is_honoured(minilm):
    answer = "consolidation " * 30  # 420 chars: over the default cap, under the configured one
    with gullible() as judge:
        (raised,) = score_all(
            scorer_for(judge, minilm, max_answer_chars=1000), [{"response": wrap(answer), "ground_truth": REF}]
        )
        (default,) = score_all(scorer_for(judge, minilm), [{"response": wrap(answer), "ground_truth": REF}])
    assert raised["gate_too_long"] == 0.0 and raised["accuracy_llm"] == 1.0
    assert default["gate_too_long"] == 1.0 and default["accuracy_llm"] == 0.0
