"""The MediX-R1 reward rules (spec section 4), as pure functions on strings.

Everything here is deterministic and free of I/O. Each rule follows the published release
exactly, quirks included; the docstrings give examples that ``tests/test_rules.py`` checks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: The 16 modality tags of the release, in the order the training prompt lists them.
MODALITY_TAGS: tuple[str, ...] = (
    "<X_RAY>",
    "<MICROSCOPY>",
    "<CLINICAL_PHOTOGRAPHY>",
    "<CT_SCAN>",
    "<GRAPHICS>",
    "<ANGIOGRAPHY>",
    "<PET_SCAN>",
    "<ULTRASOUND>",
    "<MRI_SCAN>",
    "<FUNDUS_PHOTOGRAPHY>",
    "<OCT_SCAN>",
    "<ENDOSCOPY>",
    "<MAMMOGRAPHY>",
    "<FLUOROSCOPY>",
    "<OTHER>",
    "<SPECT>",
)

PAPER_NORMALIZE_PATTERN = re.compile(r"\s*(<|>|/)\s*")  # the release's; quadratic on long whitespace
_MARKUP_SPLIT = re.compile(r"([<>/])")
# The release's patterns, kept for reference and for the equivalence tests. They backtrack
# quadratically on adversarial input, so the functions below implement the same semantics with
# linear scans.
PAPER_ANSWER_PATTERN = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
PAPER_FORMAT_PATTERN = re.compile(r"<thinking>.*?</thinking>\s*<answer>.*?</answer>", re.DOTALL)
_JOINT = re.compile(r"</thinking>\s*<answer>")
THINKING_OPEN = "<thinking>"


def normalize_response(response: str) -> str:
    """Remove whitespace around ``<``, ``>`` and ``/`` everywhere (spec 4.1).

    >>> normalize_response("< CT_SCAN > <thinking> a / b </ thinking >")
    '<CT_SCAN><thinking>a/b</thinking>'
    """
    # same as PAPER_NORMALIZE_PATTERN.sub(r"\1", response), in linear time: the text between two
    # markup characters loses its whitespace on the side(s) that touch one (str.strip and the
    # pattern's \s agree on what whitespace is: both are str.isspace)
    parts = _MARKUP_SPLIT.split(response)
    if len(parts) == 1:
        return response
    last = len(parts) - 1
    for i in range(0, len(parts), 2):  # the text between markup characters; odd items are markup
        if i == 0:
            parts[i] = parts[i].rstrip()
        elif i == last:
            parts[i] = parts[i].lstrip()
        else:
            parts[i] = parts[i].strip()
    return "".join(parts)


def _strip_answer(text: str) -> str:
    return text.strip().strip(".")


@dataclass(frozen=True)
class GroundTruth:
    """A parsed ``"<TAG> answer"`` ground truth. ``tag`` is None when the string has no ``>``."""

    tag: str | None
    answer: str | None

    @property
    def valid(self) -> bool:
        return self.tag is not None


def parse_ground_truth(ground_truth: str) -> GroundTruth:
    """Split a ground truth into tag (up to and including the first ``>``) and answer (spec 4.2).

    The answer is stripped of whitespace, then of leading and trailing dots.

    >>> parse_ground_truth("<CT_SCAN> Left lower lobe pneumonia.")
    GroundTruth(tag='<CT_SCAN>', answer='Left lower lobe pneumonia')
    >>> parse_ground_truth("no tag here")
    GroundTruth(tag=None, answer=None)
    """
    cut = ground_truth.find(">")
    if cut < 0:
        return GroundTruth(None, None)
    return GroundTruth(ground_truth[: cut + 1], _strip_answer(ground_truth[cut + 1 :]))


def extract_answer(normalized: str) -> str:
    """The predicted answer (spec 4.3): the first ``<answer>`` block's content, else the whole text.

    >>> extract_answer("<X_RAY><thinking>x</thinking><answer> Pneumothorax. </answer>")
    'Pneumothorax'
    >>> extract_answer("just text.")
    'just text'
    """
    # same as PAPER_ANSWER_PATTERN.search: the first <answer> with a </answer> after it, up to
    # the first such </answer> (if the first <answer> has none, no later one has either)
    start = normalized.find("<answer>")
    if start >= 0:
        end = normalized.find("</answer>", start + 8)
        if end >= 0:
            return _strip_answer(normalized[start + 8 : end])
    return _strip_answer(normalized)


def paper_answer_is_valid(answer: str) -> bool:
    """Spec 4.4: empty, one character long, or containing ``__``, ``:`` or ``?`` is invalid.

    >>> paper_answer_is_valid("Pneumothorax"), paper_answer_is_valid("B"), paper_answer_is_valid("3:1")
    (True, False, False)
    """
    if len(answer) <= 1:
        return False
    return not any(bad in answer for bad in ("__", ":", "?"))


def paper_format_reward(normalized: str) -> float:
    """Spec 4.8: 1.0 iff the text from the first ``<thinking>`` (stripped) fully matches
    ``<thinking>.*?</thinking>\\s*<answer>.*?</answer>``. Text before ``<thinking>`` is allowed.

    >>> paper_format_reward("<OTHER><thinking>r</thinking> <answer>a</answer>")
    1.0
    >>> paper_format_reward("<thinking>r</thinking><answer>a</answer> trailing")
    0.0
    """
    start = normalized.find(THINKING_OPEN)
    if start < 0:
        return 0.0
    text = normalized[start:].strip()
    # same as PAPER_FORMAT_PATTERN.fullmatch(text): the lazy groups match anything, so it holds iff
    # text = "<thinking>" ... "</thinking>" ws "<answer>" ... "</answer>" for some joint occurrence
    if not text.endswith("</answer>"):
        return 0.0
    joint = _JOINT.search(text, len(THINKING_OPEN))
    return 1.0 if joint is not None and joint.end() <= len(text) - len("</answer>") else 0.0


def modality_reward(normalized: str, tag: str | None) -> float:
    """Spec 4.9: 1.0 iff the text before the first ``<thinking>``, stripped and upper-cased,
    equals the ground truth's tag upper-cased. 0 without ``<thinking>`` or without a tag.

    >>> modality_reward("<ct_scan><thinking>r</thinking>", "<CT_SCAN>")
    1.0
    >>> modality_reward("<CT_SCAN> <MRI_SCAN><thinking>r</thinking>", "<CT_SCAN>")
    0.0
    """
    start = normalized.find(THINKING_OPEN)
    if start < 0 or tag is None:
        return 0.0
    return 1.0 if normalized[:start].strip().upper() == tag.upper() else 0.0


def paper_verdict(reply: str) -> bool:
    """Spec 4.6: the judge said yes iff ``"YES"`` occurs anywhere in the upper-cased reply.

    >>> paper_verdict("Yes."), paper_verdict("NO"), paper_verdict("eyes")
    (True, False, True)
    """
    return "YES" in reply.upper()


def strict_verdict(reply: str) -> bool | None:
    """A stricter reading: the reply must begin with YES or NO (after whitespace, any case).

    Returns None for an unparseable reply.

    >>> strict_verdict(" YES"), strict_verdict("no, because"), strict_verdict("The answer is YES")
    (True, False, None)
    """
    head = reply.lstrip()[:3].upper()
    if head.startswith("YES"):
        return True
    if head.startswith("NO"):
        return False
    return None


def yes_probability(choice: dict) -> float | None:
    """P(YES) / (P(YES) + P(NO)) from an OpenAI chat choice's first-token ``top_logprobs``.

    None when the choice has no logprobs, when an entry is malformed (not a mapping, a log-prob
    that is not a number, NaN or above 0), or when neither YES nor NO is among the top tokens.

    >>> import math
    >>> c = {"logprobs": {"content": [{"top_logprobs": [
    ...     {"token": "YES", "logprob": math.log(0.6)}, {"token": "NO", "logprob": math.log(0.2)},
    ...     {"token": "Yes", "logprob": math.log(0.1)}]}]}}
    >>> round(yes_probability(c), 4)
    0.7778
    """
    import math

    try:
        top = (choice.get("logprobs") or {})["content"][0]["top_logprobs"]
    except (KeyError, IndexError, TypeError, AttributeError):
        return None
    if not isinstance(top, list):
        return None
    p_yes = p_no = 0.0
    for item in top:
        if not isinstance(item, dict):
            return None  # a malformed entry: the verdict cannot be read, never a silent NO
        try:
            logprob = float(item.get("logprob", float("-inf")))
        except (TypeError, ValueError):
            return None
        if math.isnan(logprob) or logprob > 1e-6:  # NaN, or a "probability" above 1
            return None
        token = str(item.get("token", "")).strip().upper()
        prob = math.exp(logprob)
        if token == "YES":
            p_yes += prob
        elif token == "NO":
            p_no += prob
    if p_yes + p_no == 0.0:
        return None
    return p_yes / (p_yes + p_no)
