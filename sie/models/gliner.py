"""GLiNER (uni-encoder span model, span_mode 'marker' / 'markerV0'): zero-shot entity spans.

Re-implemented on our runner contract instead of depending on the `gliner` package (which pins
transformers < 5.17). The checkpoint is GLiNER's own layout (gliner_config.json + pytorch_model.bin or
model.safetensors):
- `token_rep_layer.bert_layer.model.*`: the DeBERTa-v2 backbone, run through transformers (fallback
  runner adapter), then `token_rep_layer.projection` to GLiNER's hidden size;
- `rnn.lstm`: a bidirectional LSTM over word representations (first sub-token of each word);
- `prompt_rep_layer`: a 2-layer MLP over the <<ENT>> token states (one per label);
- `span_rep_layer.span_rep_layer`: start/end MLPs, ReLU(concat), an output projection.
Score of (start word i, width k, label c) = sigmoid(span_rep[i, k] · prompt_rep[c]).
Input preparation (prompt words, word splitting) and span decoding are the GLiNER kind's
(sie.runtime.kinds.gliner).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import AddedToken, Tokenizer
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from sie.errors import ModelLoadFailed
from sie.models.auto import AutoModelRunner
from sie.models.linear import Linear
from sie.models.runner import PackedBatch, Runner
from sie.models.weights import load_safetensors, load_tensor_file

# Card `architecture` → runner class, read by sie/models/__init__.py without importing this module.
ARCHITECTURES = {"gliner": "GlinerRunner"}
BACKBONE = "token_rep_layer.bert_layer.model."
SPAN = "span_rep_layer.span_rep_layer."


@dataclass(frozen=True)
class GlinerConfig:
    hidden_size: int
    max_width: int
    max_len: int                 # most words of a text the model looks at
    span_mode: str
    ent_token: str
    sep_token: str
    class_token_index: int
    embed_ent_token: bool
    model_name: str
    encoder_config: dict | None

    @classmethod
    def read(cls, folder: Path) -> GlinerConfig:
        path = folder / "gliner_config.json"
        if not path.exists():
            raise ModelLoadFailed(f"{folder}: no gliner_config.json (architecture 'gliner' needs a GLiNER checkpoint)")
        raw = json.loads(path.read_text())
        problems = []
        if raw.get("span_mode", "markerV0") not in ("marker", "markerV0"):
            problems.append(f"span_mode '{raw.get('span_mode')}' (supported: marker, markerV0)")
        if raw.get("fuse_layers") or raw.get("post_fusion_schema") or raw.get("labels_encoder"):
            problems.append("fused layers, post-fusion or a labels encoder (bi-encoder GLiNER)")
        if raw.get("num_rnn_layers", 1) != 1:
            problems.append(f"num_rnn_layers {raw.get('num_rnn_layers')} (supported: 1)")
        if raw.get("subtoken_pooling", "first") != "first":
            problems.append(f"subtoken_pooling '{raw.get('subtoken_pooling')}' (supported: first)")
        if raw.get("words_splitter_type", "whitespace") != "whitespace":
            problems.append(f"words_splitter_type '{raw.get('words_splitter_type')}' (supported: whitespace)")
        if problems:
            raise ModelLoadFailed(f"{path}: unsupported GLiNER variant: {'; '.join(problems)}")
        return cls(hidden_size=raw["hidden_size"], max_width=raw.get("max_width", 12), max_len=raw.get("max_len", 384),
                   span_mode=raw.get("span_mode", "markerV0"), ent_token=raw.get("ent_token", "<<ENT>>"),
                   sep_token=raw.get("sep_token", "<<SEP>>"), class_token_index=raw.get("class_token_index", -1),
                   embed_ent_token=raw.get("embed_ent_token", True), model_name=raw["model_name"],
                   encoder_config=raw.get("encoder_config"))


def _gliner_tensors(folder: Path) -> dict[str, torch.Tensor]:
    if list(folder.glob("*.safetensors")):
        return load_safetensors(folder)
    return load_tensor_file(folder / "pytorch_model.bin")


def _base_model_folder(model_name: str) -> Path:
    """The backbone's own folder (config, tokenizer) for checkpoints that only name it: local cache only."""
    local = Path(model_name)
    if local.is_dir():
        return local
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(model_name, local_files_only=True,
                                      allow_patterns=["*.json", "*.model", "*.txt"]))
    except Exception:
        raise ModelLoadFailed(f"gliner_config.json names backbone '{model_name}' without an encoder_config; its "
                              f"config and tokenizer must be in the local Hugging Face cache "
                              f"(huggingface-cli download {model_name} --include '*.json' '*.model')") from None


class GlinerRunner(Runner):
    """Packed ids → projected token states [T, gliner hidden]. Brings its own tokenizer (the backbone's plus
    GLiNER's prompt tokens) and hands the span head the tensors it read; no `linear_slots` (the backbone runs
    in transformers: CPU precision modes other than fp32 do not apply)."""

    def __init__(self, config: GlinerConfig, backbone: AutoModelRunner, projection: Linear | None,
                 folder: Path, head_tensors: dict[str, torch.Tensor] | None = None) -> None:
        self.gliner = config
        self._head_tensors = head_tensors  # handed once to GlinerSpanHead: the checkpoint is read only once
        self.backbone = backbone
        self.projection = projection
        self.folder = folder
        self.config = backbone.model.config
        self.device, self.dtype = backbone.device, backbone.dtype
        self.hidden_size = config.hidden_size

    @classmethod
    def load(cls, path: Path, *, device: torch.device, dtype: torch.dtype) -> GlinerRunner:
        from transformers import AutoConfig, DebertaV2Config, DebertaV2Model

        config = GlinerConfig.read(path)
        tensors = _gliner_tensors(path)
        if config.encoder_config:
            enc = DebertaV2Config.from_dict(config.encoder_config)
        else:
            enc = AutoConfig.from_pretrained(_base_model_folder(config.model_name))
        if enc.model_type != "deberta-v2":
            raise ModelLoadFailed(f"{path}: GLiNER backbone '{enc.model_type}' is not supported (deberta-v2 is)")
        backbone_state = {k[len(BACKBONE):]: v for k, v in tensors.items() if k.startswith(BACKBONE)}
        if "embeddings.word_embeddings.weight" not in backbone_state:
            raise ModelLoadFailed(f"{path}: no {BACKBONE}embeddings.word_embeddings.weight in the checkpoint")
        enc.vocab_size = backbone_state["embeddings.word_embeddings.weight"].shape[0]
        model = DebertaV2Model(enc)
        missing, unexpected = model.load_state_dict(backbone_state, strict=False)
        missing = [m for m in missing if "position_ids" not in m]
        if missing or unexpected:
            raise ModelLoadFailed(f"{path}: backbone weights do not fit its config (missing {missing[:3]}, "
                                  f"unexpected {unexpected[:3]})")
        model = model.to(device=device, dtype=dtype).eval()
        proj = None
        if "token_rep_layer.projection.weight" in tensors:
            proj = Linear(tensors["token_rep_layer.projection.weight"].to(device=device, dtype=dtype),
                          tensors["token_rep_layer.projection.bias"].to(device=device, dtype=dtype))
        head = {k: v for k, v in tensors.items() if not k.startswith("token_rep_layer.")}
        return cls(config, AutoModelRunner(model, device=device, dtype=dtype), proj, path, head)

    def take_head_tensors(self) -> dict[str, torch.Tensor] | None:
        tensors, self._head_tensors = self._head_tensors, None
        return tensors

    def backend_tokenizer(self) -> Tokenizer:
        """The tokenizer with GLiNER's added tokens ([FLERT], <<ENT>>, <<SEP>>, in that order, as the
        reference adds them when a checkpoint does not ship its own tokenizer)."""
        path = self.folder / "tokenizer.json"
        if path.exists():
            tok = Tokenizer.from_file(str(path))
        else:
            from transformers import AutoTokenizer

            base = _base_model_folder(self.gliner.model_name)
            tok = AutoTokenizer.from_pretrained(base, use_fast=True).backend_tokenizer
            tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                                    for t in ("[FLERT]", self.gliner.ent_token, self.gliner.sep_token)])
        vocab = tok.get_vocab_size(with_added_tokens=True)
        if vocab > self.backbone.model.config.vocab_size:
            raise ModelLoadFailed(f"{self.folder}: tokenizer has {vocab} tokens but the embeddings only "
                                  f"{self.backbone.model.config.vocab_size} rows")
        return tok

    def class_token_id(self, tokenizer: Tokenizer) -> int:
        if self.gliner.class_token_index >= 0:
            return self.gliner.class_token_index
        tid = tokenizer.token_to_id(self.gliner.ent_token)
        if tid is None:
            raise ModelLoadFailed(f"{self.folder}: the tokenizer has no '{self.gliner.ent_token}' token")
        return tid

    @torch.inference_mode()
    def forward(self, batch: PackedBatch) -> torch.Tensor:
        h = self.backbone.forward(batch)
        return h if self.projection is None else self.projection(h)


def _mlp(tensors: dict[str, torch.Tensor], prefix: str, device, dtype) -> list[Linear]:
    """nn.Sequential(Linear, ReLU, Dropout, Linear) saved as prefix.0 / prefix.3, or a single Linear."""
    if f"{prefix}.weight" in tensors:
        return [Linear(tensors[f"{prefix}.weight"].to(device=device, dtype=dtype),
                       tensors[f"{prefix}.bias"].to(device=device, dtype=dtype))]
    return [Linear(tensors[f"{prefix}.{i}.weight"].to(device=device, dtype=dtype),
                   tensors[f"{prefix}.{i}.bias"].to(device=device, dtype=dtype)) for i in (0, 3)]


def _run_mlp(layers: list[Linear], x: torch.Tensor) -> torch.Tensor:
    for i, layer in enumerate(layers):
        x = layer(x if i == 0 else torch.relu(x))
    return x


class GlinerSpanHead:
    """Word states + label states → span probabilities [words, max_width, labels] per text."""

    def __init__(self, config: GlinerConfig, tensors: dict[str, torch.Tensor], *, device: torch.device,
                 dtype: torch.dtype) -> None:
        self.max_width = config.max_width
        h = config.hidden_size
        self.lstm = torch.nn.LSTM(h, h // 2, num_layers=1, bidirectional=True, batch_first=True)
        self.lstm.load_state_dict({k[len("rnn.lstm."):]: v for k, v in tensors.items() if k.startswith("rnn.lstm.")})
        self.lstm = self.lstm.to(device=device, dtype=dtype).eval()
        self.project_start = _mlp(tensors, SPAN + "project_start", device, dtype)
        self.project_end = _mlp(tensors, SPAN + "project_end", device, dtype)
        self.out_project = _mlp(tensors, SPAN + "out_project", device, dtype)
        self.prompt = _mlp(tensors, "prompt_rep_layer", device, dtype)

    @classmethod
    def load(cls, folder: Path, *, device: torch.device, dtype: torch.dtype,
             tensors: dict[str, torch.Tensor] | None = None) -> GlinerSpanHead:
        """`tensors`: the checkpoint's non-backbone tensors when the runner already read them."""
        if tensors is None:
            tensors = {k: v for k, v in _gliner_tensors(folder).items() if not k.startswith("token_rep_layer.")}
        try:
            return cls(GlinerConfig.read(folder), tensors, device=device, dtype=dtype)
        except (KeyError, RuntimeError) as e:
            raise ModelLoadFailed(f"{folder}: GLiNER head weights missing or mis-shaped: {e}") from None

    @torch.inference_mode()
    def __call__(self, hidden: torch.Tensor, batch: PackedBatch, word_tokens: list[list[int]],
                 label_tokens: list[list[int]]) -> list[torch.Tensor]:
        """`word_tokens[i]`: packed-relative token index of each word's first sub-token (-1: the word
        got no token, e.g. cut by truncation: its state stays zero, as in the reference);
        `label_tokens[i]`: token index of each <<ENT>> marker. Returns sigmoid scores [W_i, K, C_i]."""
        B, H, device = batch.num_seqs, hidden.shape[1], hidden.device
        cu = batch.cu_seqlens.tolist()
        W = max(1, max(len(w) for w in word_tokens))
        words = torch.zeros(B, W, H, device=device, dtype=hidden.dtype)
        for i, toks in enumerate(word_tokens):
            idx = torch.tensor(toks, device=device, dtype=torch.long)
            real = idx >= 0
            words[i, torch.nonzero(real, as_tuple=True)[0]] = hidden[cu[i] + idx[real]]
        lengths = torch.tensor([max(1, len(w)) for w in word_tokens])
        packed = pack_padded_sequence(words, lengths, batch_first=True, enforce_sorted=False)
        words, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=W)
        start = _run_mlp(self.project_start, words)                                     # [B, W, H]
        end = _run_mlp(self.project_end, words)
        K = self.max_width
        end = torch.cat([end, end.new_zeros(B, K, H)], dim=1)                           # room for i + k >= W
        ends = torch.stack([end[:, k: k + W] for k in range(K)], dim=2)                 # [B, W, K, H]
        spans = torch.cat([start[:, :, None, :].expand(-1, -1, K, -1), ends], dim=-1).relu()
        spans = _run_mlp(self.out_project, spans)                                       # [B, W, K, H]
        out = []
        for i, labels in enumerate(label_tokens):
            n = len(word_tokens[i])
            prompts = _run_mlp(self.prompt, hidden[cu[i] + torch.tensor(labels, device=device, dtype=torch.long)])
            probs = torch.sigmoid(torch.einsum("wkd,cd->wkc", spans[i, :n], prompts).float())
            # Spans running past the last word do not exist: probability 0 (the reference scores them as
            # if they were span (0, 0) and relies on decoding to skip them).
            fits = torch.arange(n, device=device)[:, None] + torch.arange(K, device=device)[None, :] < n
            out.append(probs * fits[:, :, None])
        return out


def estimate(folder: Path, dtype: torch.dtype):
    """(backbone config or None, weight bytes in `dtype`) before loading: GLiNER folders have no config.json.
    The checkpoint is stored in fp32, so its file size scales by the element size."""
    from transformers import DebertaV2Config

    config = GlinerConfig.read(folder)
    files = list(folder.glob("*.safetensors")) or [folder / "pytorch_model.bin"]
    stored = sum(f.stat().st_size for f in files if f.exists())
    encoder = DebertaV2Config.from_dict(config.encoder_config) if config.encoder_config else None
    return encoder, stored * torch.tensor([], dtype=dtype).element_size() // 4
