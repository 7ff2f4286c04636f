"""HuBERT (content features) and Chinese BERT (phone features) through `transformers`, loaded from numpy weights.

Weights are read with our restricted loader (`checkpoints.load_hf_weights`) and handed to `transformers` model
classes built from the folder's own `config.json`, so no pickle is ever trusted and every size comes from the
config. Older checkpoints' tensor names (`weight_g`/`weight_v`, `gamma`/`beta`) are mapped to current ones.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from transformers import BertConfig, BertModel, HubertConfig, HubertModel

from ...checkpoints import CheckpointError, load_hf_weights

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


def _load_into(module: nn.Module, weights: dict[str, np.ndarray], source, optional_prefixes=()) -> None:
    expected = module.state_dict()
    state = {}
    for key, value in weights.items():
        key = _rename(key)
        if key in expected:
            state[key] = torch.from_numpy(np.asarray(value, dtype=np.float32))
    missing = sorted(set(expected) - set(state))
    missing = [k for k in missing if not k.startswith(optional_prefixes) and not k.endswith("position_ids")]
    if missing:
        raise CheckpointError(f"{source}: missing weights {missing[:5]}{' …' if len(missing) > 5 else ''}")
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
        if config["num_hidden_layers"] < 3:
            raise CheckpointError(f"{directory}: BERT needs at least 3 layers (GPT-SoVITS reads hidden_states[-3])")
        if config["hidden_size"] != 1024:
            raise CheckpointError(f"{directory}: BERT hidden_size must be 1024 (the GPT's bert_proj is 1024 → 512)")
        config = dict(config, num_hidden_layers=config["num_hidden_layers"] - 2)
        model = BertModel(BertConfig(**config), add_pooling_layer=False)
        stripped = {k[len("bert."):] if k.startswith("bert.") else k: v for k, v in weights.items()}
        _load_into(model, stripped, directory)
        return cls(model.eval())

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """`attention_mask` (1 real, 0 padding): the runtime pads ids to a few lengths, so one compiled graph serves
        every sentence with a bounded set of shapes; the real tokens' states are those of the unpadded ids (the
        padding is masked out of every attention, positions count from the start). None: all real (upstream)."""
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        return self.model(input_ids=input_ids, attention_mask=mask, token_type_ids=torch.zeros_like(input_ids)).last_hidden_state
