"""Spec section 4, rule by rule, for the release preset."""

import pytest

import reward_fns as rf
from reward_fns import rules


# 4.1 normalisation
@pytest.mark.parametrize(
    "raw, expected",
    [
        (
            "< X_RAY >\n<thinking>\n r \n</thinking>\n\n<answer> a </answer>",
            "<X_RAY><thinking>r</thinking><answer>a</answer>",
        ),
        ("a / b", "a/b"),
        ("1 < 2 and 3 > 2", "1<2 and 3>2"),
        ("no markup at all", "no markup at all"),
        ("< / answer >", "</answer>"),
    ],
)
def test_normalize(raw, expected):
    assert rules.normalize_response(raw) == expected


# 4.2 ground truth
@pytest.mark.parametrize(
    "gt, tag, answer",
    [
        ("<CT_SCAN> Left lower lobe pneumonia.", "<CT_SCAN>", "Left lower lobe pneumonia"),
        ("<X_RAY>...Pneumothorax...", "<X_RAY>", "Pneumothorax"),
        ("<OTHER>   yes  ", "<OTHER>", "yes"),
        ("<MRI_SCAN> a > b", "<MRI_SCAN>", "a > b"),  # only the first '>' splits
        ("<BROKEN", None, None),
        ("", None, None),
    ],
)
def test_ground_truth(gt, tag, answer):
    parsed = rules.parse_ground_truth(gt)
    assert (parsed.tag, parsed.answer) == (tag, answer)


# 4.3 extraction
@pytest.mark.parametrize(
    "normalized, answer",
    [
        ("<thinking>x</thinking><answer>first</answer><answer>second</answer>", "first"),
        ("<answer>\nmulti\nline.\n</answer>", "multi\nline"),
        ("<thinking>x</thinking>plain answer.", "<thinking>x</thinking>plain answer"),
        ("<answer>unclosed", "<answer>unclosed"),
        ("...", ""),
    ],
)
def test_extract(normalized, answer):
    assert rules.extract_answer(normalized) == answer


# 4.4 validity (quirks included)
@pytest.mark.parametrize(
    "answer, valid",
    [
        ("", False),
        ("B", False),
        ("ok", True),
        ("3:1", False),  # published quirk: any ':' is invalid
        ("is it?", False),
        ("a__b", False),
        ("a_b", True),
        ("T2-weighted MRI", True),
    ],
)
def test_validity(answer, valid):
    assert rules.paper_answer_is_valid(answer) is valid


# 4.8 format
@pytest.mark.parametrize(
    "normalized, score",
    [
        ("<CT_SCAN><thinking>r</thinking><answer>a</answer>", 1.0),
        ("preamble <thinking>r</thinking>\n<answer>a</answer>\n", 1.0),
        ("<thinking>r</thinking><answer>a</answer>tail", 0.0),
        ("<answer>a</answer>", 0.0),
        ("<thinking>r</thinking>", 0.0),
        ("<thinking>r</thinking>x<answer>a</answer>", 0.0),
        # published quirk: lazy groups still let repeated blocks fully match
        ("<thinking>a</thinking><answer>b</answer><thinking>c</thinking><answer>d</answer>", 1.0),
    ],
)
def test_format(normalized, score):
    assert rules.paper_format_reward(normalized) == score


# 4.9 modality
@pytest.mark.parametrize(
    "normalized, tag, score",
    [
        ("<CT_SCAN><thinking>r</thinking>", "<CT_SCAN>", 1.0),
        ("<ct_scan><thinking>r</thinking>", "<CT_SCAN>", 1.0),
        ("<CT_SCAN>", "<CT_SCAN>", 0.0),  # no <thinking>
        ("<MRI_SCAN><thinking>r</thinking>", "<CT_SCAN>", 0.0),
        ("Sure! <CT_SCAN><thinking>r</thinking>", "<CT_SCAN>", 0.0),
        ("<CT_SCAN><thinking>r</thinking>", None, 0.0),
    ],
)
def test_modality(normalized, tag, score):
    assert rules.modality_reward(normalized, tag) == score


def test_all_16_tags():
    assert len(rf.MODALITY_TAGS) == 16 and len(set(rf.MODALITY_TAGS)) == 16
    for tag in rf.MODALITY_TAGS:
        s = rf.prepare(f"{tag}<thinking>r</thinking><answer>Answer text</answer>", f"{tag} Answer text")
        assert (s.modality, s.format, s.route) == (1.0, 1.0, rf.ROUTE_EXACT)


# 4.6 verdict
@pytest.mark.parametrize(
    "reply, paper, strict",
    [
        ("YES", True, True),
        ("yes", True, True),
        ("NO", False, False),
        ("No, YES", True, False),  # paper quirk: 'YES' anywhere
        ("eyes", True, None),
        ("", False, None),
        ("  Yes.", True, True),
        ("Maybe", False, None),
    ],
)
def test_verdicts(reply, paper, strict):
    assert rules.paper_verdict(reply) is paper
    assert rules.strict_verdict(reply) is strict


def test_judge_prompt_is_verbatim():
    msg = rf.paper_judge_messages("Pneumonia", "Lobar pneumonia")
    assert msg == [
        {
            "role": "user",
            "content": "You are a helpful assistant.\n"
            'Given a predicted answer and the ground truth answer, respond with exactly "YES" if the content '
            'matches, otherwise respond with "NO".\n'
            'Start your response with "YES" or "NO" in uppercase.\n\n'
            # the release's create_prompt is a triple-quoted f-string closed on its own line: one
            # newline after the ground truth, in every request
            "Predicted:Pneumonia\nGround Truth:Lobar pneumonia\n",
        }
    ]
    assert rf.PAPER_JUDGE_PARAMS == {
        "max_tokens": 4,
        "temperature": 0.0,
        "top_p": 1.0,
        "chat_template_kwargs": {"enable_thinking": False},
    }


# 4.4 / 4.5 routing
@pytest.mark.parametrize(
    "response, gt, route",
    [
        ("<X_RAY><thinking>r</thinking><answer>Pneumothorax</answer>", "<X_RAY> Pneumothorax.", rf.ROUTE_EXACT),
        ("<X_RAY><thinking>r</thinking><answer>pneumothorax</answer>", "<X_RAY> Pneumothorax", rf.ROUTE_MODEL),
        ("<X_RAY><thinking>r</thinking><answer>B</answer>", "<X_RAY> B", rf.ROUTE_INVALID),
        ("<X_RAY><thinking>r</thinking><answer>Ratio 3:1</answer>", "<X_RAY> Ratio 3:1", rf.ROUTE_INVALID),
        ("<X_RAY><thinking>r</thinking><answer>Pneumothorax</answer>", "Pneumothorax", rf.ROUTE_NO_REFERENCE),
    ],
)
def test_routes(response, gt, route):
    assert rf.prepare(response, gt).route == route


# 4.10 weights
@pytest.mark.parametrize("j", [0, 1])
@pytest.mark.parametrize("e", [0, 1])
@pytest.mark.parametrize("m", [0, 1])
@pytest.mark.parametrize("f", [0, 1])
def test_paper_weights_exact(j, e, m, f):
    got = rf.combine({"accuracy_llm": j, "accuracy_embed": e, "modality": m, "format": f}, rf.PAPER_WEIGHTS)
    assert got == 0.9 * (0.575 * j + 0.375 * e + 0.05 * m) + 0.1 * f


def test_result_keys_are_stable():
    s = rf.prepare("garbage", "<OTHER> x y")
    out = (
        rf.score_without_models(s)
        if s.route != rf.ROUTE_MODEL
        else rf.assemble(s, rf.PAPER_WEIGHTS, accuracy_llm=0, accuracy_embed=0)
    )
    assert tuple(out) == rf.RESULT_KEYS


def test_presets_switch():
    assert rf.get_preset("release") is rf.RELEASE
    assert rf.get_preset("robust").name == "robust"
    with pytest.raises(ValueError, match="unknown reward preset 'nope'"):
        rf.get_preset("nope")


def test_weight_validation_names_the_path():
    with pytest.raises(ValueError, match=r"weights.accuracy.parts.modality must be a finite number"):
        rf.validate_weights({"accuracy": {"weight": 0.9, "parts": {"modality": "x"}}})
    with pytest.raises(ValueError, match="unknown reward part"):
        rf.check_parts_known({"nonexistent_part": 1.0})
    with pytest.raises(ValueError, match="reserved"):
        rf.reward_part("format")


def test_non_string_inputs_are_rejected():
    with pytest.raises(TypeError, match="response must be a string"):
        rf.prepare(None, "<X_RAY> a")
    with pytest.raises(TypeError, match="ground_truth must be a string"):
        rf.prepare("x", 3)


# 4.9 modality when the ground truth has no '>'
def test_paper_modality_without_a_tag_compares_with_the_ground_truth_plus_gt_sign():
    # the release: ground_truth.split(">", 1)[0] + ">" is the whole ground truth plus ">"
    paper = rf.prepare("CT SCAN><thinking>r</thinking><answer>x</answer>", "CT SCAN", rf.PAPER)
    assert paper.modality == 1.0 and paper.route == rf.ROUTE_NO_REFERENCE
    assert rf.prepare("<CT_SCAN><thinking>r</thinking><answer>x</answer>", "CT SCAN", rf.PAPER).modality == 0.0
    robust = rf.prepare("CT SCAN><thinking>r</thinking><answer>x</answer>", "CT SCAN", rf.ROBUST)
    assert robust.modality == 0.0  # robust: no tag, no modality credit


def test_the_former_name_of_the_release_preset_works_and_warns():
    from medix_verl.reward.settings import RewardSettings

    with pytest.warns(FutureWarning, match="'paper' is now called 'release'"):
        assert rf.get_preset("paper") is rf.RELEASE
    with pytest.warns(FutureWarning, match="'paper' is now called 'release'"):
        settings = RewardSettings.from_kwargs({"preset": "paper", "judge_url": "http://127.0.0.1:1/v1"})
    assert settings.preset == "release"  # what runs, results and fingerprints record
