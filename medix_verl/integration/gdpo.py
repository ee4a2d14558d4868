"""GDPO as an opt-in (``ADV=gdpo``): verl's GDPO with the composite's parts as its reward keys and
the preset's weights, run as the advantage estimator ``medix_gdpo``. **Not the paper's setting**: the release adds
the parts into one score and normalises that within each group (GRPO); GDPO normalises each part
within its group on its own, then adds them with the same weights and whitens the batch
(arXiv 2601.05242; verl issues #4862, #5394).

verl 0.9.1's GDPO (``adv_estimator=gdpo``) reads each part from the batch's ``non_tensor_batch``,
and the prompts and attention mask from its tensors, none of which its v1 trainer passes (it
passes ``uid`` and the response mask), so under the v1 trainer it fails at the first advantage;
it logs ``gdpo/<key>/mean`` only in the legacy trainer. ``medix_gdpo`` is registered with verl's
estimator registry by the ``medix`` trainer: it hands verl's own GDPO function the parts the
trainer took from the reward's per-sample results (:func:`inputs`), and the trainer logs
``gdpo/<key>/{mean,std}``; judge-error masking holds (a masked sample is left out of every part's
normalisation and of the batch whitening, and gets zero advantage).

>>> gdpo_keys_and_weights("release")
(['accuracy_llm', 'accuracy_embed', 'modality', 'format'], [0.5175, 0.3375, 0.045, 0.1])
>>> print("\\n".join(overrides("release")))
algorithm.adv_estimator=medix_gdpo
++algorithm.gdpo_reward_keys=[accuracy_llm,accuracy_embed,modality,format]
++algorithm.gdpo_reward_weights=[0.5175,0.3375,0.045,0.1]
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from reward_fns import get_preset, leaf_parts
from reward_fns.weights import combine

#: the estimator the ``medix`` trainer registers (verl's GDPO, given the parts)
ESTIMATOR = "medix_gdpo"
#: verl's own, which under the v1 trainer fails at the first advantage
VERL_ESTIMATOR = "gdpo"


def gdpo_keys_and_weights(preset: str, weights: Mapping[str, Any] | None = None) -> tuple[list[str], list[float]]:
    """The leaf parts of the preset's weight tree (or of ``weights``) and each one's weight in
    the score (the product of the weights on its path), rounded to 6 decimals."""
    tree = weights or get_preset(preset).weights
    keys = leaf_parts(tree)
    return keys, [round(combine({k: float(k == key) for k in keys}, tree), 6) for key in keys]


def overrides(preset: str, weights: Mapping[str, Any] | None = None) -> list[str]:
    """The hydra overrides that turn GDPO on for ``preset``."""
    keys, values = gdpo_keys_and_weights(preset, weights)
    return [
        f"algorithm.adv_estimator={ESTIMATOR}",
        f"++algorithm.gdpo_reward_keys=[{','.join(keys)}]",
        f"++algorithm.gdpo_reward_weights=[{','.join(f'{w:g}' for w in values)}]",
    ]


def check(algorithm, produced: list[str]) -> list[str]:
    """Problems of a GDPO config against the parts the reward ``produced`` (empty: fine)."""
    if algorithm.get("adv_estimator") not in (ESTIMATOR, VERL_ESTIMATOR):
        return []
    keys = list(algorithm.get("gdpo_reward_keys") or [])
    weights = algorithm.get("gdpo_reward_weights")
    problems = []
    if not keys:
        problems.append("algorithm.gdpo_reward_keys is empty: ADV=gdpo sets the composite's parts")
    unknown = [k for k in keys if k not in produced]
    if unknown:
        problems.append(
            f"algorithm.gdpo_reward_keys {unknown} are not parts the reward preset produces (it produces {produced})"
        )
    if weights is not None and len(list(weights)) != len(keys):
        problems.append(
            f"algorithm.gdpo_reward_weights has {len(list(weights))} weights for {len(keys)} gdpo_reward_keys"
        )
    return problems


def estimator_problem(adv_estimator: str, trainer_mode: str | None) -> str | None:
    """What is wrong with running ``adv_estimator`` under verl's v1 ``trainer_mode`` for GDPO
    (None: nothing, or not GDPO).

    >>> estimator_problem("medix_gdpo", "medix") is None
    True
    >>> print(estimator_problem("gdpo", "medix"))
    algorithm.adv_estimator=gdpo: verl 0.9.1's v1 trainer does not pass the reward parts, prompts or attention mask that verl's GDPO reads (it fails at the first advantage); set algorithm.adv_estimator=medix_gdpo, verl's GDPO given the parts (ADV=gdpo on a recipe sets it)
    """
    if adv_estimator == VERL_ESTIMATOR:
        return (
            f"algorithm.adv_estimator={VERL_ESTIMATOR}: verl 0.9.1's v1 trainer does not pass the reward parts, "
            "prompts or attention mask that verl's GDPO reads (it fails at the first advantage); set "
            f"algorithm.adv_estimator={ESTIMATOR}, verl's GDPO given the parts (ADV=gdpo on a recipe sets it)"
        )
    if adv_estimator == ESTIMATOR and trainer_mode != "medix":
        return (
            f"algorithm.adv_estimator={ESTIMATOR} is registered and given the reward parts by the medix trainer "
            f"(trainer.v1.trainer_mode=medix), not by trainer.v1.trainer_mode={trainer_mode}"
        )
    return None


def inputs(parts: Mapping[str, Any], index, response_mask) -> tuple[dict, dict]:
    """What verl's GDPO function reads besides the rewards, for rows whose group ids are ``index``
    and whose responses are ``response_mask`` (a 0/1 tensor, rows x response tokens):
    ``non_tensor_batch`` (each part's per-row values, and ``uid``) and ``batch`` (a ``prompts`` of
    width 0 and an ``attention_mask`` that ends at each response's last token, from which GDPO
    places each part's score on that token, as it does with the real ones). A part whose length is
    not the rows' is an error naming it.

    >>> import torch
    >>> mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    >>> non_tensor, batch = inputs({"format": [1.0, 0.0]}, ["g0", "g0"], mask)
    >>> sorted(non_tensor), batch["attention_mask"].tolist(), tuple(batch["prompts"].shape)
    (['format', 'uid'], [[1, 1, 0], [1, 1, 1]], (2, 0))
    """
    import torch

    rows = response_mask.shape[0]
    non_tensor = {"uid": index}
    for key, values in parts.items():
        if len(values) != rows:
            raise ValueError(f"GDPO part {key!r} has {len(values)} values for {rows} rows")
        non_tensor[key] = values
    width = response_mask.shape[1]
    last = width - 1 - response_mask.flip(1).to(torch.int64).argmax(dim=1)  # each response's last token
    ends = torch.arange(width, device=response_mask.device).unsqueeze(0) <= last.unsqueeze(1)
    prompts = torch.zeros((rows, 0), dtype=torch.int64, device=response_mask.device)
    return non_tensor, {"prompts": prompts, "attention_mask": ends.to(torch.int64)}


def main(argv: list[str] | None = None) -> int:
    """``python -m medix_verl.integration.gdpo PRESET``: the overrides, one per line (for the recipes)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m medix_verl.integration.gdpo PRESET", file=sys.stderr)
        return 2
    try:
        print("\n".join(overrides(args[0])))
    except (KeyError, ValueError) as exc:
        print(f"medix_verl.integration.gdpo: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
