"""Legacy tensor names in checkpoints, renamed to the current ones as transformers renames them on load,
so runners and heads spell only current names. Every reader in sie.models.weights applies them.

The rule set is transformers' "legacy" conversion mapping (transformers/conversion_mapping.py,
`get_checkpoint_conversion_mapping("legacy")`, applied to every model it loads), copied with its
semantics: each pattern is searched in the key, must end at a name boundary, and the first occurrence
of the matched text is replaced; rules apply in order, each to the result of the one before.
- `LayerNorm.gamma` / `LayerNorm.beta`: BERT-era checkpoints converted from TensorFlow;
- `.weight_g` / `.weight_v`: weight-normed layers saved before torch's parametrizations;
- a doubled `.model` after `language_model`: checkpoints saved by transformers 5.10-5.23.
(transformers also adds or strips the wrapper prefix, 'bert.', 'model.': sie does that where it looks a
name up, `strip_prefix` / `find_tensor`.)
"""

from __future__ import annotations

import re

import torch

from sie.errors import ModelLoadFailed

LEGACY_RENAMES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"LayerNorm\.gamma(?!\w)"), "LayerNorm.weight"),
    (re.compile(r"LayerNorm\.beta(?!\w)"), "LayerNorm.bias"),
    (re.compile(r"\.weight_g(?!\w)"), ".parametrizations.weight.original0"),
    (re.compile(r"\.weight_v(?!\w)"), ".parametrizations.weight.original1"),
    (re.compile(r"^model\.language_model\.model(?!\w)|^language_model\.model\.model(?!\w)"), "model.language_model"),
)


def current_name(key: str) -> str:
    """`key` with every legacy rename applied (unchanged when it has none)."""
    for pattern, new in LEGACY_RENAMES:
        match = pattern.search(key)
        if match:
            key = key.replace(match.group(0), new, 1)
    return key


def with_current_names(tensors: dict[str, torch.Tensor], where: object) -> dict[str, torch.Tensor]:
    """`tensors` keyed by current names; a checkpoint holding one tensor under both names is refused
    (which one to keep would be a guess)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in tensors.items():
        name = current_name(key)
        if name in out:
            raise ModelLoadFailed(f"{where}: checkpoint holds tensor '{name}' twice (also under a legacy name)")
        out[name] = value
    return out
