"""The MediX-R1 reward rules (spec section 4), as pure functions on strings.

Everything here is deterministic and free of I/O. Each rule follows the published release
exactly, quirks included; the docstrings give examples that ``tests/test_rules.py`` checks.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

#: The 16 modality tags of the release, in the order the training prompt lists them.
MODALITY_TAGS: tuple[str, ...] = (
    "<X_RAY>", "<MICROSCOPY>", "<CLINICAL_PHOTOGRAPHY>", "<CT_SCAN>", "<GRAPHICS>",
    "<ANGIOGRAPHY>", "<PET_SCAN>", "<ULTRASOUND>", "<MRI_SCAN>", "<FUNDUS_PHOTOGRAPHY>",
    "<OCT_SCAN>", "<ENDOSCOPY>", "<MAMMOGRAPHY>", "<FLUOROSCOPY>", "<OTHER>", "<SPECT>",
)

_AROUND_MARKUP = re.compile(r"\s*(<|>|/)\s*")
_FIRST_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_PAPER_FORMAT = re.compile(r"<thinking>.*?</thinking>\s*<answer>.*?</answer>", re.DOTALL)
THINKING_OPEN = "<thinking>"


def normalize_response(response: str) -> str:
    """Remove whitespace around ``<``, ``>`` and ``/`` everywhere (spec 4.1).

    >>> normalize_response("< CT_SCAN > <thinking> a / b </ thinking >")
    '<CT_SCAN><thinking>a/b</thinking>'
    """
    return _AROUND_MARKUP.sub(r"\1", response)


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
    found = _FIRST_ANSWER.search(normalized)
    return _strip_answer(found.group(1) if found else normalized)


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
    return 1.0 if _PAPER_FORMAT.fullmatch(normalized[start:].strip()) else 0.0


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
