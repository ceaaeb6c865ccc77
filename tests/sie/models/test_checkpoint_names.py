"""Legacy checkpoint names: our renames are transformers' own ("legacy" conversion mapping, the only one it
applies to the families sie runs), and every reader in sie.models.weights applies them."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from sie.errors import ModelLoadFailed
from sie.models.checkpoint_names import LEGACY_RENAMES, current_name
from sie.models.weights import load_safetensors, load_tensor_file, read_named

KEYS = [
    "bert.embeddings.LayerNorm.gamma", "cls.predictions.transform.LayerNorm.beta",
    "roberta.encoder.layer.3.attention.output.LayerNorm.gamma", "encoder.layer.0.output.LayerNorm.weight",
    "LayerNorm.gamma", "x.LayerNorm.gamma_scale", "x.layer_norm.gamma", "x.LayerNorm.betas",
    "encoder.pos_conv.conv.weight_g", "encoder.pos_conv.conv.weight_v", "conv.weight_gain", "weight_g",
    "model.language_model.model.layers.0.mlp.up_proj.weight", "language_model.model.model.norm.weight",
    "model.language_model.layers.0.mlp.up_proj.weight", "lm.model.language_model.model.norm.weight",
    "bert.pooler.dense.weight", "embed_tokens.weight",
]
FAMILIES = ["bert", "roberta", "xlm-roberta", "camembert", "modernbert", "qwen2", "qwen3", "deberta-v2", "distilbert"]


def test_renames_are_transformers_legacy_mapping():
    mapping = pytest.importorskip("transformers.conversion_mapping", reason="transformers < 5 has no conversion "
                                  "mapping (its _fix_state_dict_key_on_load renamed gamma/beta/weight_g/weight_v)")
    from transformers.core_model_loading import apply_renamings

    legacy = mapping.get_checkpoint_conversion_mapping("legacy")
    assert len(legacy) == len(LEGACY_RENAMES), "transformers' legacy renames changed: copy them again"
    for key in KEYS:
        assert current_name(key) == apply_renamings(key, legacy), key
    assert all(mapping.get_checkpoint_conversion_mapping(f) is None for f in FAMILIES)


def _legacy_copy(folder, tmp_path):
    """`folder`'s checkpoint with every LayerNorm saved under its TensorFlow-era name."""
    tensors = load_file(str(folder / "model.safetensors"))
    renamed = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
               for k, v in tensors.items()}
    assert renamed.keys() != tensors.keys()
    out = tmp_path / "legacy"
    out.mkdir()
    save_file(renamed, str(out / "model.safetensors"))
    return out, tensors


def test_every_reader_returns_current_names(tiny_models, tmp_path):
    legacy, tensors = _legacy_copy(tiny_models("bert", head="masked-lm"), tmp_path)
    assert load_safetensors(legacy).keys() == tensors.keys()
    assert load_tensor_file(legacy / "model.safetensors").keys() == tensors.keys()
    name = "cls.predictions.transform.LayerNorm.weight"
    assert torch.equal(read_named(legacy, [name])[name], tensors[name])
    torch.save(load_file(str(legacy / "model.safetensors")), legacy / "heads.pt")
    assert load_tensor_file(legacy / "heads.pt").keys() == tensors.keys()


def test_a_tensor_under_both_names_is_refused(tmp_path):
    save_file({"a.LayerNorm.gamma": torch.ones(2), "a.LayerNorm.weight": torch.ones(2)},
              str(tmp_path / "model.safetensors"))
    with pytest.raises(ModelLoadFailed, match="holds tensor 'a.LayerNorm.weight' twice"):
        load_safetensors(tmp_path)
