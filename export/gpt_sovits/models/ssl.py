"""HuBERT (content features) and Chinese BERT (phone features) through `transformers`, loaded from numpy weights.

Weights are read with our restricted loader (`checkpoints.load_hf_weights`) and handed to `transformers` model
classes built from the folder's own `config.json`, so no pickle is ever trusted and every size comes from the
config. Older checkpoints' tensor names (`weight_g`/`weight_v`, `gamma`/`beta`) are mapped to current ones.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import BertConfig, BertModel, HubertConfig, HubertModel

from ...checkpoints import CheckpointError, config_ints, load_hf_weights, planned_shapes

try:  # transformers' own validation of a config (newer huggingface_hub); older hubs raise only what it catches
    from huggingface_hub.errors import StrictDataclassError
except ImportError:
    StrictDataclassError = ()

# The sizes a folder's config.json gives the model (checked as whole numbers in range before anything is built) and
# those of them that are counts (layers, heads, groups)
_HUBERT_SIZES = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                 "num_conv_pos_embeddings", "num_conv_pos_embedding_groups", "conv_dim", "conv_kernel", "conv_stride")
_BERT_SIZES = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size",
               "max_position_embeddings", "type_vocab_size")
_COUNTS = ("num_hidden_layers", "num_attention_heads", "num_conv_pos_embedding_groups")

_RENAMES = (
    (".weight_g", ".parametrizations.weight.original0"),
    (".weight_v", ".parametrizations.weight.original1"),
    (".gamma", ".weight"),
    (".beta", ".bias"),
)


def _rename(key: str) -> str:
    for old, new in _RENAMES:
        if key.endswith(old):
            return key[: -len(old)] + new
    return key


def _planned(directory, config: dict, build, sizes: tuple[str, ...], what: str,
             weights: dict[str, np.ndarray], optional_prefixes: tuple[str, ...] = ()) -> None:
    """Check a Hugging Face folder's config before its model is built: its sizes (`sizes`, the first four required)
    whole numbers in range, the model built on torch's meta device (no memory), and every weight the file has for
    that model of the model's shape, so a crafted config.json is a one-line error, not a request for terabytes."""
    path = Path(directory) / "config.json"
    missing = [key for key in sizes[:4] if key not in config]
    if missing:
        raise CheckpointError(f"{path}: the {what} config has no {', '.join(missing)}")
    config_ints(config, sizes, path, what, counts=_COUNTS)

    def build_checked():
        try:
            return build(config)
        except StrictDataclassError as exc:  # transformers' own config validation
            raise CheckpointError(f"the {what} config cannot build a model ({str(exc).splitlines()[0][:160]})") \
                from None

    planned = planned_shapes(build_checked, path, what)
    _check_complete(planned, {_rename(key) for key in weights}, directory, optional_prefixes)
    wrong = [f"{key} {tuple(np.shape(value))} vs {planned[_rename(key)]}" for key, value in weights.items()
             if _rename(key) in planned and tuple(np.shape(value)) != planned[_rename(key)]]
    if wrong:
        raise CheckpointError(f"{directory}: {len(wrong)} {what} weights do not have the shapes its config.json gives "
                              f"them ({wrong[0]}{', …' if len(wrong) > 1 else ''})")


def _check_complete(expected, present: set[str], source, optional_prefixes: tuple[str, ...]) -> None:
    missing = sorted(set(expected) - present)
    missing = [k for k in missing if not k.startswith(optional_prefixes) and not k.endswith("position_ids")]
    if missing:
        raise CheckpointError(f"{source}: missing weights {missing[:5]}{' …' if len(missing) > 5 else ''}")


def _load_into(module: nn.Module, weights: dict[str, np.ndarray], source, optional_prefixes=()) -> None:
    expected = module.state_dict()
    state = {}
    for key, value in weights.items():
        key = _rename(key)
        if key in expected:
            state[key] = torch.from_numpy(np.asarray(value, dtype=np.float32))
    _check_complete(expected, set(state), source, optional_prefixes)
    module.load_state_dict(state, strict=False)


class HubertContent(nn.Module):
    """Raw 16 kHz waveform `[B, S]` → HuBERT `last_hidden_state` transposed to `[B, hidden, frames]`."""

    def __init__(self, model: HubertModel):
        super().__init__()
        self.model = model

    @classmethod
    def from_dir(cls, directory) -> "HubertContent":
        weights, config = load_hf_weights(directory)
        if config.get("model_type") != "hubert":
            raise CheckpointError(f"{directory}: config.json says model_type={config.get('model_type')!r}, expected 'hubert'")
        _planned(directory, config, lambda c: HubertModel(HubertConfig(**c)), _HUBERT_SIZES, "HuBERT", weights,
                 optional_prefixes=("masked_spec_embed",))
        model = HubertModel(HubertConfig(**config))
        _load_into(model, weights, directory, optional_prefixes=("masked_spec_embed",))
        return cls(model.eval())

    def fold_weight_norm(self) -> None:
        """Bake the positional conv's weight norm into a plain weight (exporters keep the norm ops otherwise)."""
        for module in self.model.modules():
            if hasattr(module, "parametrizations"):
                torch.nn.utils.parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)

    def forward(self, wav16k: torch.Tensor) -> torch.Tensor:
        return self.model(wav16k).last_hidden_state.transpose(1, 2)


class BertPhoneFeatures(nn.Module):
    """Token ids `[B, L]` → `hidden_states[-3]` of the full model `[B, L, hidden]`.

    Upstream reads the third-last hidden state, i.e. the output of layer `n - 2`; only those layers are built,
    and the masked-LM head is dropped.
    """

    def __init__(self, model: BertModel):
        super().__init__()
        self.model = model

    @classmethod
    def from_dir(cls, directory) -> "BertPhoneFeatures":
        weights, config = load_hf_weights(directory)
        if config.get("model_type") != "bert":
            raise CheckpointError(f"{directory}: config.json says model_type={config.get('model_type')!r}, expected 'bert'")
        config_ints(config, _BERT_SIZES, Path(directory) / "config.json", "BERT", counts=_COUNTS)
        if config.get("num_hidden_layers", 0) < 3:
            raise CheckpointError(f"{directory}: BERT needs at least 3 layers (GPT-SoVITS reads hidden_states[-3])")
        if config.get("hidden_size") != 1024:
            raise CheckpointError(f"{directory}: BERT hidden_size must be 1024 (the GPT's bert_proj is 1024 → 512)")
        config = dict(config, num_hidden_layers=config["num_hidden_layers"] - 2)
        stripped = {k[len("bert."):] if k.startswith("bert.") else k: v for k, v in weights.items()}
        _planned(directory, config, lambda c: BertModel(BertConfig(**c), add_pooling_layer=False), _BERT_SIZES,
                 "BERT", stripped)
        model = BertModel(BertConfig(**config), add_pooling_layer=False)
        _load_into(model, stripped, directory)
        return cls(model.eval())

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """`attention_mask` (1 real, 0 padding): the runtime pads ids to a few lengths, so one compiled graph serves
        every sentence with a bounded set of shapes; the real tokens' states are those of the unpadded ids (the
        padding is masked out of every attention, positions count from the start). None: all real (upstream)."""
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        return self.model(input_ids=input_ids, attention_mask=mask, token_type_ids=torch.zeros_like(input_ids)).last_hidden_state
