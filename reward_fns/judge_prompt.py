"""The judge request of the release (spec section 4.6), as data: no transport here."""

from __future__ import annotations

PAPER_JUDGE_TEMPLATE = (
    "You are a helpful assistant.\n"
    'Given a predicted answer and the ground truth answer, respond with exactly "YES" if the content matches, '
    'otherwise respond with "NO".\n'
    'Start your response with "YES" or "NO" in uppercase.\n'
    "\n"
    "Predicted:{predicted}\n"
    "Ground Truth:{reference}\n"  # the release's triple-quoted f-string closes on its own line
)

#: Sampling parameters of the release's judge call.
PAPER_JUDGE_PARAMS = {
    "max_tokens": 4,
    "temperature": 0.0,
    "top_p": 1.0,
    "chat_template_kwargs": {"enable_thinking": False},
}


def paper_judge_messages(predicted: str, reference: str, question: str | None = None) -> list[dict]:
    """One user message, exactly as released. ``question`` is ignored by the paper prompt.

    >>> paper_judge_messages("Pneumonia", "Lobar pneumonia")[0]["content"].splitlines()[-2:]
    ['Predicted:Pneumonia', 'Ground Truth:Lobar pneumonia']
    """
    return [{"role": "user", "content": PAPER_JUDGE_TEMPLATE.format(predicted=predicted, reference=reference)}]
