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
        """Every position at once with no cache (stage 2; stage 1's reference prefill)."""
        q, k, v = self.attn.qkv(self.ln_1(x))
        return self._finish(x, F.scaled_dot_product_attention(q, k, v, is_causal=causal)), k, v

    def extend(self, x, past_k, past_v, allowed):
        """New positions against `past_*` joined with their own K/V (the pattern OpenVINO fuses into an in-place
        KV cache); `allowed` [T, P+T] is the causal mask of the new rows. Returns the joined caches."""
        q, k, v = self.attn.qkv(self.ln_1(x))
        keys, values = torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)
        return self._finish(x, F.scaled_dot_product_attention(q, keys, values, attn_mask=allowed)), keys, values

    def step(self, x, past_k, past_v, past_mask, causal):
        """New positions against a host buffer `past_*` [B, H, C, Dh] whose spare slots `past_mask` [B, C] holds
        -inf for, and causally among themselves (`causal` [T, T], 0 / -inf); the buffer is only read, the new
        rows are returned for the host to write."""
        q, k, v = self.attn.qkv(self.ln_1(x))
        q = q * (1.0 / math.sqrt(self.attn.head_dim))
        past_scores = q @ past_k.transpose(-1, -2) + past_mask[:, None, None, :]  # [B, H, T, C]
        new_scores = q @ k.transpose(-1, -2) + causal  # [B, H, T, T]
        probs = torch.softmax(torch.cat([past_scores, new_scores], dim=-1), dim=-1)
        capacity = past_k.shape[2]
        attended = probs[..., :capacity] @ past_v + probs[..., capacity:] @ v
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
        """Built on the meta device and given the checkpoint's tensors in place (`assign`): the 1.2 B-parameter
        stage 1 then costs its 5 GB once, not twice (random init, then a copy)."""
        with torch.device("meta"):
            model = cls(checkpoint.args, checkpoint.speaker_dim)
        state = as_tensors(checkpoint.weights)
        if model.tied:
            # upstream loads both keys into one shared parameter; the head's key is copied last, so it wins
            for i in range(len(model.lm_heads)):
                state[f"transformer.wtes.{i}.weight"] = state[f"lm_heads.{i}.weight"]
        model.load_state_dict(state, strict=True, assign=True)
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

    def _rows(self, ids, start, speaker):
        """ids [1, T] fed to both guidance rows at positions start … start+T−1 → embeddings [2, T, D]."""
        t = ids.shape[1]
        return self._embed(ids.expand(2, t)[:, None, :], start + torch.arange(t), self._guidance_rows(speaker))

    def extend(self, ids, start, speaker, past_keys, past_values):
        """ids [1, T] after a cache of P = `start` positions → logits [2, V] (cond, uncond) at the last new
        position and the caches with the new rows. Prefill is T = len(text) with empty caches, decoding T = 1."""
        x = self._rows(ids, start, speaker)
        t, total = ids.shape[1], past_keys[0].shape[2] + ids.shape[1]
        allowed = torch.arange(total)[None, :] <= (total - t + torch.arange(t))[:, None]
        keys, values = [], []
        for block, past_k, past_v in zip(self.transformer.h, past_keys, past_values):
            x, k, v = block.extend(x, past_k, past_v, allowed)
            keys.append(k)
            values.append(v)
        return self._head(x[:, -1]), keys, values

    def step(self, ids, start, speaker, past_mask, past_keys, past_values):
        """As `extend`, against host buffers with a slot mask; returns the new K/V rows only."""
        x = self._rows(ids, start, speaker)
        t = ids.shape[1]
        causal = torch.zeros(t, t).masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf"))
        keys, values = [], []
        for block, past_k, past_v in zip(self.transformer.h, past_keys, past_values):
            x, k, v = block.step(x, past_k, past_v, past_mask, causal)
            keys.append(k)
            values.append(v)
        return self._head(x[:, -1]), keys, values

    def empty_cache(self) -> list[torch.Tensor]:
        shape = (2, self.args.n_head, 0, self.args.n_embd // self.args.n_head)
        return [torch.zeros(shape) for _ in range(self.n_layer)]

    @torch.no_grad()
    def teacher_forced(self, text_ids, speaker, forced):
        """Reference loop: cond and uncond logits `[1 + len(forced), V]` each, as upstream's cached sampling."""
        logits, keys, values = self.extend(text_ids, torch.tensor([0]), speaker, self.empty_cache(),
                                           self.empty_cache())
        rows = [logits]
        for token in forced:
            logits, keys, values = self.extend(torch.tensor([[int(token)]]), torch.tensor([keys[0].shape[2]]),
                                               speaker, keys, values)
            rows.append(logits)
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

