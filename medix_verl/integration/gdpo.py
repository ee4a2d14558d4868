"""GDPO as an opt-in (``ADV=gdpo``): verl's ``algorithm.adv_estimator=gdpo`` with the composite's
parts as its reward keys and the preset's weights. **Not the paper's setting**: the release adds
the parts into one score and normalises that within each group (GRPO); GDPO normalises each part
within its group on its own, then adds them with the same weights and whitens the batch
(arXiv 2601.05242; verl issues #4862, #5394).

verl 0.9.1's GDPO reads each part from the batch's ``non_tensor_batch``, which its v1 trainer does
not fill (it reads ``uid`` and the tensors only), and logs ``gdpo/<key>/mean`` only in the legacy
trainer. The ``medix`` trainer fills the parts from the reward's per-sample results and logs
``gdpo/<key>/{mean,std}``; judge-error masking holds (a masked sample is left out of every part's
normalisation and of the batch whitening, and gets zero advantage).

>>> gdpo_keys_and_weights("release")
(['accuracy_llm', 'accuracy_embed', 'modality', 'format'], [0.5175, 0.3375, 0.045, 0.1])
>>> print("\\n".join(overrides("release")))
algorithm.adv_estimator=gdpo
++algorithm.gdpo_reward_keys=[accuracy_llm,accuracy_embed,modality,format]
++algorithm.gdpo_reward_weights=[0.5175,0.3375,0.045,0.1]
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from reward_fns import get_preset, leaf_parts
from reward_fns.weights import combine

ESTIMATOR = "gdpo"


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
    if algorithm.get("adv_estimator") != ESTIMATOR:
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


def with_parts(compute, parts: Mapping[str, Any]):
    """``compute`` (verl's advantage function) with what verl's GDPO reads put into the batch
    first: the per-part arrays in ``non_tensor_batch``, and where the v1 trainer leaves them out
    (it passes the response mask, not the prompts or the attention mask), a ``prompts`` of width
    0 and an ``attention_mask`` that ends at each response's last token, from which GDPO places
    each part's score on that token, as it does with the real ones."""

    def filled(data, *args, **kwargs):
        import torch

        for key, values in parts.items():
            data.non_tensor_batch[key] = values
        if "prompts" not in data.batch.keys() or "attention_mask" not in data.batch.keys():
            mask = data.batch["response_mask"]
            width = mask.shape[1]
            last = width - 1 - mask.flip(1).to(torch.int64).argmax(dim=1)  # the last response token
            ends = torch.arange(width, device=mask.device).unsqueeze(0) <= last.unsqueeze(1)
            data.batch["attention_mask"] = ends.to(torch.int64)
            data.batch["prompts"] = torch.zeros((mask.shape[0], 0), dtype=torch.int64, device=mask.device)
        return compute(data, *args, **kwargs)

    return filled


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
