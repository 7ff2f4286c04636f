"""Our PyTorch reference of MetaVoice-1B's two GPTs and its speaker encoder, written from upstream's behaviour
(`fam/llm/model.py`, `layers/`, `quantiser/audio/speaker_encoder/model.py`) for inference and export.

Both stages are upstream's `GPT`: token embeddings of every hierarchy summed, plus learned positions, plus the
speaker term `speaker_cond_pos(embedding)` at every position; pre-norm blocks (RMSNorm or LayerNorm; SwiGLU or
GELU), `ln_f`, one linear head per output hierarchy. Stage 1 is causal with its head tied to its embedding, and runs
classifier-free guidance as a batch of two rows: row 0 conditioned on the speaker, row 1 with the speaker term
replaced by zeros. Stage 2 is non-causal and reads the whole block at once.

Stage 1's entry points mirror its graphs (as GPT-SoVITS's do): `prefill` (text → both rows' last logits and every
layer's K/V), `decode` (one token against the cache joined with its own row: what OpenVINO makes stateful) and
`step` (one token against a host buffer with a slot mask: onnxruntime). Caches are `[2, heads, L, head_dim]`.
Module and parameter names equal upstream's checkpoint keys, so `load_state_dict(strict=True)` checks the file.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .checkpoints import GPTArgs, SpeakerEncoderCheckpoint, StageCheckpoint


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class LayerNorm(nn.Module):
    """Upstream's LayerNorm: eps 1e-5, bias only when the model has biases."""

    def __init__(self, dim: int, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


def as_tensors(weights: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Read-only numpy views over the checkpoint's bytes → tensors; `load_state_dict` copies them into the
    module's own parameters, so nothing ever writes through these views (torch's warning does not apply)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return {k: torch.from_numpy(v) for k, v in weights.items()}


def _norm(args: GPTArgs) -> nn.Module:
    return RMSNorm(args.n_embd, args.rmsnorm_eps) if args.norm_type == "rmsnorm" else LayerNorm(args.n_embd, args.bias)


class SwiGLU(nn.Module):
    def __init__(self, dim: int, width: int, bias: bool):
        super().__init__()
        self.w1 = nn.Linear(dim, width, bias=bias)
        self.w3 = nn.Linear(dim, width, bias=bias)

    def forward(self, x):
        return F.silu(self.w1(x)) * self.w3(x)


class MLP(nn.Module):
    def __init__(self, args: GPTArgs):
        super().__init__()
        self.swiglu_mode = args.nonlinearity_type == "swiglu"
        if self.swiglu_mode:
            self.swiglu = SwiGLU(args.n_embd, args.mlp_width, args.bias)
        else:
            self.c_fc = nn.Linear(args.n_embd, args.mlp_width, bias=args.bias)
        self.c_proj = nn.Linear(args.mlp_width, args.n_embd, bias=args.bias)

    def forward(self, x):
        hidden = self.swiglu(x) if self.swiglu_mode else F.gelu(self.c_fc(x))  # exact erf GELU, as nn.GELU()
        return self.c_proj(hidden)


class Attention(nn.Module):
    def __init__(self, args: GPTArgs):
        super().__init__()
        self.heads, self.head_dim = args.n_head, args.n_embd // args.n_head
        self.c_attn = nn.Linear(args.n_embd, 3 * args.n_embd, bias=args.bias)
        self.c_proj = nn.Linear(args.n_embd, args.n_embd, bias=args.bias)

    def qkv(self, x):
        """[B, T, D] → q, k, v as [B, H, T, Dh] (c_attn's output is q ‖ k ‖ v, each split into heads)."""
        b, t, _ = x.shape
        q, k, v = self.c_attn(x).view(b, t, 3, self.heads, self.head_dim).unbind(2)
        return q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)

    def merge(self, y):
        return self.c_proj(y.transpose(1, 2).flatten(2))


class Block(nn.Module):
    def __init__(self, args: GPTArgs):
        super().__init__()
        self.ln_1, self.ln_2 = _norm(args), _norm(args)
        self.attn = Attention(args)
        self.mlp = MLP(args)

    def _finish(self, x, attended):
        x = x + self.attn.merge(attended)
        return x + self.mlp(self.ln_2(x))

    def full(self, x, causal: bool):
        """Every position at once (prefill, stage 2); returns the block output and its K/V."""
        q, k, v = self.attn.qkv(self.ln_1(x))
        return self._finish(x, F.scaled_dot_product_attention(q, k, v, is_causal=causal)), k, v

    def decode(self, x, past_k, past_v):
        """One position against `past_*` joined with its own K/V (the pattern OpenVINO fuses in place)."""
        q, k, v = self.attn.qkv(self.ln_1(x))
        keys, values = torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)
        return self._finish(x, F.scaled_dot_product_attention(q, keys, values)), keys, values

    def step(self, x, past_k, past_v, past_mask):
        """One position against a host buffer `past_*` [B, H, C, Dh] whose spare slots `past_mask` [B, C] holds
        -inf for; the cache is only read, the new row is returned for the host to write."""
        q, k, v = self.attn.qkv(self.ln_1(x))
        q = q * (1.0 / math.sqrt(self.attn.head_dim))
        past_scores = q @ past_k.transpose(-1, -2) + past_mask[:, None, None, :]
        new_score = (q * k).sum(-1, keepdim=True)
        probs = torch.softmax(torch.cat([past_scores, new_score], dim=-1), dim=-1)
        capacity = past_k.shape[2]
        attended = probs[..., :capacity] @ past_v + probs[..., capacity:] * v
        return self._finish(x, attended), k, v


class MetaVoiceGPT(nn.Module):
    """Upstream's `GPT` for inference (names equal the checkpoint's keys)."""

    def __init__(self, args: GPTArgs, speaker_dim: int):
        super().__init__()
        self.args = args
        self.tied = args.target_vocab_sizes is None
        self.transformer = nn.ModuleDict(dict(
            wtes=nn.ModuleList(nn.Embedding(v, args.n_embd) for v in args.vocab_sizes),
            wpe=nn.Embedding(args.block_size, args.n_embd),
            h=nn.ModuleList(Block(args) for _ in range(args.n_layer)),
            ln_f=_norm(args),
        ))
        self.speaker_cond_pos = nn.Linear(speaker_dim, args.n_embd, bias=False)
        self.lm_heads = nn.ModuleList(nn.Linear(args.n_embd, v, bias=False) for v in args.head_vocab_sizes)
        if self.tied:
            for head, wte in zip(self.lm_heads, self.transformer.wtes):
                head.weight = wte.weight

    @classmethod
    def from_checkpoint(cls, checkpoint: StageCheckpoint) -> "MetaVoiceGPT":
        model = cls(checkpoint.args, checkpoint.speaker_dim)
        state = as_tensors(checkpoint.weights)
        if model.tied:
            # upstream loads both keys into one shared parameter; the head's key is copied last, so it wins
            for i in range(len(model.lm_heads)):
                state[f"transformer.wtes.{i}.weight"] = state[f"lm_heads.{i}.weight"]
        model.load_state_dict(state, strict=True)
        return model.eval()

    @property
    def n_layer(self) -> int:
        return self.args.n_layer

    def _embed(self, ids, positions, speaker_rows):
        """ids [B, hierarchies, T], positions [T], speaker_rows [B, 1, D] → [B, T, D], summed in upstream's order."""
        x = torch.zeros(ids.shape[0], ids.shape[2], self.args.n_embd)
        for i, wte in enumerate(self.transformer.wtes):
            x = x + wte(ids[:, i])
        return x + self.transformer.wpe(positions) + speaker_rows

    def _guidance_rows(self, speaker):
        """[1, S] → [2, 1, D]: the speaker term for the conditioned row, zeros for the unconditioned one."""
        term = self.speaker_cond_pos(speaker)[:, None, :]
        return torch.cat([term, torch.zeros_like(term)], dim=0)

    def _head(self, x):
        return self.lm_heads[0](self.transformer.ln_f(x))

    # Stage 1 -------------------------------------------------------------------------------------------------

    def prefill(self, text_ids, speaker):
        """text_ids [1, T], speaker [1, S] → logits [2, V] (cond, uncond) at the last position, keys, values."""
        t = text_ids.shape[1]
        x = self._embed(text_ids.expand(2, t)[:, None, :], torch.arange(t), self._guidance_rows(speaker))
        keys, values = [], []
        for block in self.transformer.h:
            x, k, v = block.full(x, causal=True)
            keys.append(k)
            values.append(v)
        return self._head(x[:, -1]), keys, values

    def decode(self, token, position, speaker, past_keys, past_values):
        """token [1, 1] (fed to both rows), position [1] → logits [2, V] and the caches with the new row."""
        x = self._embed(token.expand(2, 1)[:, None, :], position, self._guidance_rows(speaker))
        keys, values = [], []
        for block, past_k, past_v in zip(self.transformer.h, past_keys, past_values):
            x, k, v = block.decode(x, past_k, past_v)
            keys.append(k)
            values.append(v)
        return self._head(x[:, -1]), keys, values

    def step(self, token, position, speaker, past_mask, past_keys, past_values):
        """As `decode`, against host buffers with a slot mask; returns the new K/V rows only."""
        x = self._embed(token.expand(2, 1)[:, None, :], position, self._guidance_rows(speaker))
        keys, values = [], []
        for block, past_k, past_v in zip(self.transformer.h, past_keys, past_values):
            x, k, v = block.step(x, past_k, past_v, past_mask)
            keys.append(k)
            values.append(v)
        return self._head(x[:, -1]), keys, values

    @torch.no_grad()
    def teacher_forced(self, text_ids, speaker, forced):
        """Reference loop: cond and uncond logits `[1 + len(forced), V]` each, as upstream's cached sampling."""
        logits, keys, values = self.prefill(text_ids, speaker)
        rows = [logits]
        position = text_ids.shape[1]
        for token in forced:
            logits, keys, values = self.decode(torch.tensor([[int(token)]]), torch.tensor([position]), speaker,
                                               keys, values)
            rows.append(logits)
            position += 1
        stacked = torch.stack(rows)
        return stacked[:, 0], stacked[:, 1]

    # Stage 2 -------------------------------------------------------------------------------------------------

    def non_causal(self, ids, speaker):
        """ids [hierarchies, T] (upstream's `in_x` rows), speaker [1, S] → logits [heads, T, V]."""
        t = ids.shape[1]
        x = self._embed(ids[None], torch.arange(t), self.speaker_cond_pos(speaker)[:, None, :])
        for block in self.transformer.h:
            x, _, _ = block.full(x, causal=False)
        x = self.transformer.ln_f(x)
        return torch.stack([head(x[0]) for head in self.lm_heads])


class SpeakerLSTM(nn.Module):
    """Upstream `SpeakerEncoder`'s network: LSTM over partial mels, the last layer's final hidden state → Linear →
    ReLU → L2 normalised per partial. (Slicing, mel and the final mean live on the host.)"""

    def __init__(self, mel_bands: int, hidden: int, layers: int, embedding: int):
        super().__init__()
        self.lstm = nn.LSTM(mel_bands, hidden, layers, batch_first=True)
        self.linear = nn.Linear(hidden, embedding)

    @classmethod
    def from_checkpoint(cls, checkpoint: SpeakerEncoderCheckpoint) -> "SpeakerLSTM":
        model = cls(checkpoint.mel_bands, checkpoint.hidden, checkpoint.layers, checkpoint.embedding)
        model.load_state_dict(as_tensors(checkpoint.weights), strict=True)
        return model.eval()

    def forward(self, mels):
        """mels [partials, frames, bands] → partial embeddings [partials, embedding]."""
        _, (hidden, _) = self.lstm(mels)
        raw = F.relu(self.linear(hidden[-1]))
        return raw / torch.norm(raw, dim=1, keepdim=True)

