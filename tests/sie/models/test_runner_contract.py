"""Every registered runner family keeps the runner contract, and a loaded model's footprint is exactly the
bytes of the tensors it holds.

The footprint (`LoadedModel.nbytes`, what the LRU pool budgets) comes from sie's walk over the runner and
its heads. The reference here is independent of that walk: Python's own object graph (`gc.get_referents`)
followed from the runner and the heads, so a tensor a runner keeps anywhere (a closure, a set, a field
the walk does not know) shows up here and not in the footprint.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from declared import by_entry
from object_graph import reachable_storages
from tiny_cards import card_yaml

from sie.catalog import load_card
from sie.models import RUNNERS, runner_class
from sie.models.runner import Runner
from sie.runtime.loaded_model import LoadedModel, load_model
from sie.runtime.memory import weights_bytes

CPU = torch.device("cpu")
# architecture → (tiny model, what tiny_models builds it with, the card's capabilities), declared by the family's
# own test module (`CONTRACT_MODELS`, see declared.py): the heads that read weights (SPLADE, sequence and token
# classification, yes/no, GLiNER spans) each load with one family.
DECLARED = by_entry("CONTRACT_MODELS")
FAMILIES = {arch: where[0][1] for arch, where in DECLARED.items()}  # one each: checked below


def _folder(arch: str, tiny_models, minilm_path: Path, tmp_path: Path) -> Path:
    kind, build_options, _ = FAMILIES[arch]
    if kind == "gliner":
        import tiny_models as tm

        folder = tmp_path / "gliner"
        return folder if folder.exists() else tm.build_gliner(folder, minilm_path)
    return tiny_models(kind, **build_options)


def _load(arch: str, folder: Path, tmp_path: Path, precision: str | None = None) -> LoadedModel:
    path = tmp_path / "card.yaml"
    path.write_text(card_yaml(f"t/{arch}", folder, arch, FAMILIES[arch][2]))
    return load_model(load_card(path), CPU, cpu_precision=precision)


def test_every_registered_family_is_a_runner():
    missing, stale = sorted(set(RUNNERS) - set(DECLARED)), sorted(set(DECLARED) - set(RUNNERS))
    assert not missing and not stale, f"runners no test module's CONTRACT_MODELS loads: {missing}; not runners: {stale}"
    twice = {arch: [module for module, _ in where] for arch, where in DECLARED.items() if len(where) > 1}
    assert not twice, f"declared by more than one test module: {twice}"
    for arch in RUNNERS:
        assert issubclass(runner_class(arch), Runner), arch


@pytest.mark.parametrize("arch", sorted(RUNNERS))
def test_footprint_is_every_tensor_the_runner_and_heads_hold(arch, tiny_models, minilm_path, tmp_path):
    loaded = _load(arch, _folder(arch, tiny_models, minilm_path, tmp_path), tmp_path)
    runner = loaded.runner
    for name in Runner.__annotations__:   # every contract member is set (or has its declared default)
        assert hasattr(runner, name), f"{arch}: runner has no '{name}'"
    assert runner.config is not None and runner.hidden_size > 0 and runner.device == CPU
    held = reachable_storages(runner, loaded.heads)
    assert loaded.nbytes == sum(held.values())
    assert loaded.nbytes > 0


@pytest.mark.parametrize("arch", ["bert", "qwen3"])
def test_int8_footprint_counts_the_quantized_layers(arch, tiny_models, minilm_path, tmp_path):
    fp32 = _load(arch, _folder(arch, tiny_models, minilm_path, tmp_path), tmp_path)
    int8 = _load(arch, _folder(arch, tiny_models, minilm_path, tmp_path), tmp_path, precision="int8")
    assert int8.precision == "int8"
    assert int8.nbytes == sum(reachable_storages(int8.runner, int8.heads).values())
    assert int8.nbytes < fp32.nbytes  # int8 weights replace fp32 ones: the budget sees the smaller model


def test_bert_runner_holds_exactly_the_checkpoint_tensors_it_reads(tiny_models, tmp_path):
    """No table is kept beside what forward reads (the position table folded with token type 0 replaces
    the position table, it does not join it): the runner's bytes are the checkpoint's minus the pooler,
    which a runner never reads."""
    from safetensors.torch import load_file

    folder = tiny_models("bert")
    runner = runner_class("bert").load(folder, device=CPU, dtype=torch.float32)
    checkpoint = load_file(str(folder / "model.safetensors"))
    read = sum(t.nbytes for name, t in checkpoint.items() if not name.startswith("pooler."))
    assert read < weights_bytes(folder, torch.float32)           # the tiny checkpoint has a pooler
    assert sum(reachable_storages(runner).values()) == read
