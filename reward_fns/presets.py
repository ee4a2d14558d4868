"""Presets: complete reward definitions (rules, judge request, verdict, weights).

* ``release``: the published MediX-R1 reward, rule for rule (the default); ``paper``, its name
  before, still works and warns;
* ``robust``: opt-in hardening for when a policy starts gaming the judge.

"As released" is one word across the project: the ``release`` preset, the ``release`` judge
protocol of the evaluation, ``release`` in the docs and the CLI.

>>> get_preset("release").name
'release'
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Union

from . import robust as _robust
from . import rules
from .judge_prompt import PAPER_JUDGE_PARAMS, paper_judge_messages
from .weights import PAPER_WEIGHTS


@dataclass(frozen=True)
class Preset:
    """A complete reward definition: the rules, the judge request and the weights."""

    name: str
    description: str
    format_reward: Callable[[str], float]
    verdict: Callable[[str], Union[bool, None]]
    judge_messages: Callable[..., list[dict]]
    judge_params: Mapping[str, Any]
    embed_threshold: float
    weights: Mapping[str, Any] = field(default_factory=lambda: copy.deepcopy(PAPER_WEIGHTS))
    #: ``answer_is_valid(answer) -> bool``: the release's validity rule (an invalid answer gets
    #: both accuracy parts 0 without a judge call). Exactly one of it and ``gate`` is set.
    answer_is_valid: Union[Callable[[str], bool], None] = None
    #: ``gate(answer, question=, reference=, max_answer_chars=...) -> reason | None``: answers refused before the judge,
    #: with the reason reported as a ``gate_<reason>`` flag.
    gate: Union[Callable[..., Union[str, None]], None] = None
    #: credit a case-insensitive exact match before any validity rule (the paper checks validity first)
    exact_first: bool = False
    #: how many times an unparseable verdict is asked again before it counts as a judge error
    verdict_retries: int = 0
    #: a ground truth without ``>`` has no tag; the release then compares the modality with the
    #: whole ground truth plus ``">"`` (``split(">", 1)[0] + ">"``): ``release`` does the same
    tagless_modality_as_released: bool = False

    def __post_init__(self):
        if (self.answer_is_valid is None) == (self.gate is None):
            raise ValueError(f"preset {self.name!r}: set exactly one of answer_is_valid and gate")

    @property
    def gate_keys(self) -> tuple[str, ...]:
        """Extra result keys (``gate_<reason>``, 0/1) this preset reports for monitoring."""
        return tuple(f"gate_{g}" for g in _robust.GATES) if self.gate is not None else ()


RELEASE = Preset(
    name="release",
    description="The published MediX-R1 reward, rule for rule (spec section 4).",
    format_reward=rules.paper_format_reward,
    verdict=rules.paper_verdict,
    judge_messages=paper_judge_messages,
    judge_params=PAPER_JUDGE_PARAMS,
    embed_threshold=0.8,
    answer_is_valid=rules.paper_answer_is_valid,
    tagless_modality_as_released=True,
)

ROBUST = Preset(
    name="robust",
    description=(
        "Opt-in hardened reward: gated answers (master keys, hedges, grader-directed text, over-long) "
        "get no accuracy credit and never reach the judge; a fenced judge prompt that shows the question; "
        "a strict YES/NO verdict; one thinking and one answer block, nothing after."
    ),
    format_reward=_robust.robust_format_reward,
    verdict=rules.strict_verdict,
    judge_messages=_robust.robust_judge_messages,
    judge_params=_robust.ROBUST_JUDGE_PARAMS,
    embed_threshold=0.8,
    gate=_robust.gate_answer,
    exact_first=True,
    verdict_retries=1,
)

#: the release preset under its former name (kept for code that imports it)
PAPER = RELEASE

PRESETS: dict[str, Preset] = {p.name: p for p in (RELEASE, ROBUST)}
#: former names, still accepted with a warning
PRESET_ALIASES = {"paper": "release"}


def preset_name(name: str) -> str:
    """``name``, or the preset a former name stands for (with a ``FutureWarning``)."""
    if name in PRESET_ALIASES:
        import warnings

        warnings.warn(
            f"reward preset {name!r} is now called {PRESET_ALIASES[name]!r} (the same reward)",
            FutureWarning,
            stacklevel=3,
        )
        return PRESET_ALIASES[name]
    return name


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[preset_name(name)]
    except KeyError:
        raise ValueError(f"unknown reward preset {name!r}; choose one of {sorted(PRESETS)}") from None
