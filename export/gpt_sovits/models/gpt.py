"""GPT-SoVITS text-to-semantic decoder ("GPT", s1), written from the spec (§3) for inference and export.

Post-LN transformer over `[phones ‖ semantic tokens]` with a prefix mask (phones see all phones, tokens see all
phones and earlier tokens). Two entry points mirror the graphs we export:

* `prefill(phone_ids, bert_features, prompt_tokens)` → logits of the last position and every layer's K/V;
* `step(token, position, past_mask, past_keys, past_values)` → logits and the new K/V row of every layer;
* `decode(token, position, past_keys, past_values)` → logits and every layer's whole K/V (past + new row).

Caches are kept per layer as `[B, heads, L, head_dim]`. `step` takes a cache buffer that may be larger than its
filled part plus a mask over its slots, so a host keeps one buffer per layer, fills it row by row and hands it
over without copying (onnxruntime). `decode` is the concat + scaled-dot-product-attention form that OpenVINO turns
into an in-place stateful KV cache (export/stateful.py).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ...checkpoints import config_ints, planned_shapes, require_shapes

# the model config's whole numbers the GPT is built from (checked before it is: `from_checkpoint`)
CONFIG_SIZES = ("embedding_dim", "hidden_dim", "head", "n_layer", "vocab_size", "phoneme_vocab_size")


def sine_positions(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """Interleaved sin/cos table rows for float positions `[L]` → `[L, dim]` (upstream's float32 recipe)."""
    div_term = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * -(math.log(10000.0) / dim))
    angles = positions.to(torch.float32)[:, None] * div_term[None, :]
    return torch.stack([torch.sin(angles), torch.cos(angles)], dim=-1).reshape(-1, dim)


class ScaledPositions(nn.Module):
    """`x + alpha · pe[positions]`; `alpha` is the learned scalar stored in the checkpoint."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.alpha = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return x + self.alpha * sine_positions(positions, self.dim)[None]


class TokenEmbedding(nn.Module):
    def __init__(self, vocab: int, dim: int):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.word_embeddings(ids)


class SelfAttention(nn.Module):
    """Packed-projection multi-head attention; parameter names follow `nn.MultiheadAttention` (checkpoint keys)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return F.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:  # [B, L, D] -> [B, H, L, Dh]
        return x.unflatten(-1, (self.heads, self.head_dim)).transpose(1, 2)

    def merge_heads(self, x: torch.Tensor) -> torch.Tensor:  # [B, H, L, Dh] -> [B, L, D]
        return x.transpose(1, 2).flatten(2)


class DecoderLayer(nn.Module):
    def __init__(self, dim: int, heads: int, ffn_dim: int, eps: float = 1e-5):
        super().__init__()
        self.self_attn = SelfAttention(dim, heads)
        self.linear1 = nn.Linear(dim, ffn_dim)
        self.linear2 = nn.Linear(ffn_dim, dim)
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.norm2 = nn.LayerNorm(dim, eps=eps)

    def _finish(self, x: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.self_attn.out_proj(attended))
        return self.norm2(x + self.linear2(F.relu(self.linear1(x))))

    def prefill(self, x: torch.Tensor, allowed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        attn = self.self_attn
        q, k, v = (attn.split_heads(t) for t in attn.project(x))
        out = F.scaled_dot_product_attention(q, k, v, allowed)
        return self._finish(x, attn.merge_heads(out)), k, v

    def step(self, x: torch.Tensor, past_k: torch.Tensor, past_v: torch.Tensor, past_mask: torch.Tensor):
        """One query row against a cache `past_*` [B, H, C, Dh] (+ its own new key/value).

        `past_mask` [B, C] is 0 for filled cache slots and -inf for spare capacity, so the host can hand over a
        buffer larger than what is filled and never copy it. Scores against the cache and against the new row are
        joined before the softmax, so the cache is only read.
        """
        attn = self.self_attn
        q, k, v = attn.project(x)  # [B, 1, D]
        kh, vh = attn.split_heads(k), attn.split_heads(v)  # [B, H, 1, Dh]
        qh = attn.split_heads(q) * (1.0 / math.sqrt(attn.head_dim))  # scale the one query row, not the cache
        past_scores = qh @ past_k.transpose(-1, -2) + past_mask[:, None, None, :]  # [B, H, 1, C]
        new_score = (qh * kh).sum(-1, keepdim=True)  # [B, H, 1, 1]
        probs = torch.softmax(torch.cat([past_scores, new_score], dim=-1), dim=-1)
        capacity = past_k.shape[2]
        out = probs[..., :capacity] @ past_v + probs[..., capacity:] * vh
        return self._finish(x, attn.merge_heads(out)), kh, vh

    def decode(self, x: torch.Tensor, past_k: torch.Tensor, past_v: torch.Tensor, mask: torch.Tensor | None):
        """One query row against `past_*` [B, H, L, Dh] joined with its own key/value; returns the joined caches.
        `mask` [B, L+1] (or None: attend to all) is 0 for the slots a row attends to and -inf for its padding."""
        attn = self.self_attn
        q, k, v = (attn.split_heads(t) for t in attn.project(x))
        keys, values = torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)
        out = F.scaled_dot_product_attention(q, keys, values, None if mask is None else mask[:, None, None, :])
        return self._finish(x, attn.merge_heads(out)), keys, values


class TransformerStack(nn.Module):
    def __init__(self, layers: int, dim: int, heads: int, ffn_dim: int):
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(dim, heads, ffn_dim) for _ in range(layers))


class Text2SemanticDecoder(nn.Module):
    """The GPT; module and parameter names equal upstream's checkpoint keys (without the `model.` prefix)."""

    def __init__(self, config: dict):
        super().__init__()
        model = config["model"]
        dim = model["embedding_dim"]
        if model["hidden_dim"] != dim:
            raise ValueError("GPT config: hidden_dim must equal embedding_dim")
        self.dim = dim
        self.vocab_size = model["vocab_size"]
        self.eos = model["EOS"]
        if self.eos != self.vocab_size - 1:
            raise ValueError(f"GPT config: EOS ({self.eos}) must be vocab_size - 1 ({self.vocab_size - 1})")
        self.n_layer = model["n_layer"]
        self.heads = model["head"]
        if dim % self.heads:  # no weight's shape says so: the attention would fail at its first reshape
            raise ValueError(f"GPT config: head {self.heads} does not divide embedding_dim {dim}")
        self.bert_proj = nn.Linear(1024, dim)
        self.ar_text_embedding = TokenEmbedding(model["phoneme_vocab_size"], dim)
        self.ar_text_position = ScaledPositions(dim)
        self.ar_audio_embedding = TokenEmbedding(self.vocab_size, dim)
        self.ar_audio_position = ScaledPositions(dim)
        # Upstream hard-codes the FFN width as 4 × hidden; `linear_units` in the config is ignored.
        self.h = TransformerStack(self.n_layer, dim, self.heads, 4 * dim)
        self.ar_predict_layer = nn.Linear(dim, self.vocab_size, bias=False)

    @classmethod
    def from_checkpoint(cls, checkpoint) -> "Text2SemanticDecoder":
        """Built from the file's config once it has been checked against the file's weights (sizes, then every
        shape on torch's meta device), so a crafted config is a one-line error, never a huge allocation."""
        config_ints(checkpoint.config.get("model"), CONFIG_SIZES, checkpoint.path, "GPT", counts=("head", "n_layer"))
        require_shapes(planned_shapes(lambda: cls(checkpoint.config), checkpoint.path, "GPT"), checkpoint.weights,
                       checkpoint.path, "GPT")
        model = cls(checkpoint.config)
        state = {k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in checkpoint.weights.items()}
        model.load_state_dict(state, strict=True)
        return model.eval()

    def prefill(self, phone_ids: torch.Tensor, bert_features: torch.Tensor, prompt_tokens: torch.Tensor):
        """phone_ids [B,N] int64, bert_features [B,1024,N], prompt_tokens [B,T] → logits [B,V], keys, values."""
        n_text, n_audio = phone_ids.shape[1], prompt_tokens.shape[1]
        x = self.ar_text_embedding(phone_ids) + self.bert_proj(bert_features.transpose(1, 2))
        x = self.ar_text_position(x, torch.arange(n_text))
        y = self.ar_audio_position(self.ar_audio_embedding(prompt_tokens), torch.arange(n_audio))
        xy = torch.cat([x, y], dim=1)
        total = n_text + n_audio
        query = torch.arange(total)[:, None]
        key = torch.arange(total)[None, :]
        # Phones see every phone; tokens see every phone and the tokens up to themselves.
        allowed = (key < n_text) | ((query >= n_text) & (key <= query))
        keys, values = [], []
        for layer in self.h.layers:
            xy, k, v = layer.prefill(xy, allowed)
            keys.append(k)
            values.append(v)
        return self.ar_predict_layer(xy[:, -1]), keys, values

    def step(self, token: torch.Tensor, position: torch.Tensor, past_mask: torch.Tensor, past_keys, past_values):
        """token [B,1] int64, position [B] int64 (each row's audio position of its token), past_mask [B,C]
        (0 = filled, -inf = spare), caches [B,H,C,Dh] → logits [B,V], new K/V rows [B,H,1,Dh]. Rows are
        independent sequences (a batch): each has its own position and its own filled slots."""
        positions = self.ar_audio_position.alpha * sine_positions(position, self.dim)  # [B, D]
        x = self.ar_audio_embedding(token) + positions[:, None]
        keys, values = [], []
        for layer, past_k, past_v in zip(self.h.layers, past_keys, past_values):
            x, k, v = layer.step(x, past_k, past_v, past_mask)
            keys.append(k)
            values.append(v)
        return self.ar_predict_layer(x[:, -1]), keys, values

    def decode(self, token: torch.Tensor, position: torch.Tensor, mask: torch.Tensor | None, past_keys, past_values):
        """token [B,1] int64, position [B] int64, mask [B,L+1] (0 = attend, -inf = a row's padding) or None, caches
        [B,H,L,Dh] → logits [B,V], caches [B,H,L+1,Dh]."""
        x = self.ar_audio_embedding(token) + self.ar_audio_position.alpha * sine_positions(position, self.dim)[:, None]
        keys, values = [], []
        for layer, past_k, past_v in zip(self.h.layers, past_keys, past_values):
            x, k, v = layer.decode(x, past_k, past_v, mask)
            keys.append(k)
            values.append(v)
        return self.ar_predict_layer(x[:, -1]), keys, values

    @torch.no_grad()
    def teacher_forced_logits(self, phone_ids, bert_features, prompt_tokens, forced_tokens) -> torch.Tensor:
        """Raw logits of the prefill and of one step per forced token but the last: [len(forced), V]."""
        logits, keys, values = self.prefill(phone_ids, bert_features, prompt_tokens)
        rows = [logits]
        position = prompt_tokens.shape[1]
        for token in forced_tokens[:-1]:
            mask = torch.zeros(1, keys[0].shape[2])
            logits, new_k, new_v = self.step(token.view(1, 1), torch.tensor([position]), mask, keys, values)
            keys = [torch.cat([k, nk], dim=2) for k, nk in zip(keys, new_k)]
            values = [torch.cat([v, nv], dim=2) for v, nv in zip(values, new_v)]
            rows.append(logits)
            position += 1
        return torch.cat(rows, dim=0)
