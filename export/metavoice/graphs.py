"""How MetaVoice-1B is cut into graphs (see `edgevoice_export.graphs.GraphSpec`).

* `speaker_encoder`: partial mels `[partials, frames, bands]` → partial embeddings (resampling, trimming, the mel
  spectrogram, slicing and the final mean stay on the host, `edgevoice.metavoice.speaker`);
* `stage1_prefill`: text ids + speaker embedding → both guidance rows' logits and K/V;
* `stage1_decode` (OpenVINO, stateful: the `[2, heads, L, head_dim]` caches live in the request and grow in place)
  and `stage1_step` (onnxruntime: host buffers with a slot mask): one token → both rows' logits. Guidance,
  sampling and the stop rule run on the host in float32, exactly as upstream orders them;
* `stage2`: the assembled `[hierarchies, block]` rows + speaker → logits of every head at every position;
* `encodec_decode`: codes `[1, n_q, frames]` → 24 kHz waveform (`encodec.py`).
"""

from __future__ import annotations

import torch
from torch import nn

from edgevoice.bundle import TensorSpec

from ..graphs import GraphSpec, seeded_randint, seeded_randn
from .models import MetaVoiceGPT, SpeakerLSTM

ROWS = 2  # classifier-free guidance: conditioned and unconditioned


def cache_names(prefix: str, n_layer: int) -> list[str]:
    return [f"{prefix}_key.{i}" for i in range(n_layer)] + [f"{prefix}_value.{i}" for i in range(n_layer)]


class PrefillGraph(nn.Module):
    def __init__(self, gpt: MetaVoiceGPT):
        super().__init__()
        self.gpt = gpt

    def forward(self, text_ids, speaker):
        logits, keys, values = self.gpt.prefill(text_ids, speaker)
        return (logits, *keys, *values)


class DecodeGraph(nn.Module):
    def __init__(self, gpt: MetaVoiceGPT):
        super().__init__()
        self.gpt = gpt

    def forward(self, token, position, speaker, *caches):
        n = self.gpt.n_layer
        logits, keys, values = self.gpt.decode(token, position, speaker, caches[:n], caches[n:])
        return (logits, *keys, *values)


class StepGraph(nn.Module):
    def __init__(self, gpt: MetaVoiceGPT):
        super().__init__()
        self.gpt = gpt

    def forward(self, token, position, speaker, past_mask, *caches):
        n = self.gpt.n_layer
        logits, keys, values = self.gpt.step(token, position, speaker, past_mask, caches[:n], caches[n:])
        return (logits, *keys, *values)


class Stage2Graph(nn.Module):
    def __init__(self, gpt: MetaVoiceGPT):
        super().__init__()
        self.gpt = gpt

    def forward(self, ids, speaker):
        return self.gpt.non_causal(ids, speaker)


def _speaker(dim: int, seed: int) -> torch.Tensor:
    """A unit vector with non-negative entries, like the encoder's (ReLU then L2 norm)."""
    x = seeded_randn(1, dim, seed=seed).abs()
    return x / x.norm()


def stage1_graphs(gpt: MetaVoiceGPT) -> list[GraphSpec]:
    args, n = gpt.args, gpt.n_layer
    vocab, heads, head_dim = args.vocab_sizes[0], args.n_head, args.n_embd // args.n_head
    spk = gpt.speaker_cond_pos.in_features
    block = args.block_size

    def prefill_example(t, seed):
        return seeded_randint(vocab, 1, min(t, block - 1), seed=seed), _speaker(spk, seed + 1)

    def caches(length, seed):
        return tuple(seeded_randn(ROWS, heads, length, head_dim, seed=seed + i) for i in range(2 * n))

    def decode_example(past, seed):
        past = min(past, block - 1)
        return (seeded_randint(vocab, 1, 1, seed=seed), torch.tensor([past]), _speaker(spk, seed + 1),
                *caches(past, seed + 2))

    def step_example(capacity, filled, seed):
        filled = min(filled, block - 1)
        mask = torch.zeros(ROWS, capacity)
        mask[:, filled:] = float("-inf")
        return (seeded_randint(vocab, 1, 1, seed=seed), torch.tensor([filled]), _speaker(spk, seed + 1), mask,
                *caches(capacity, seed + 2))

    cache_spec = [TensorSpec(name, "float32", [ROWS, heads, "context", head_dim]) for name in cache_names("present", n)]
    prefill = GraphSpec(
        "stage1_prefill", PrefillGraph(gpt),
        [TensorSpec("text_ids", "int64", [1, "tokens"]), TensorSpec("speaker", "float32", [1, spk])],
        [TensorSpec("logits", "float32", [ROWS, vocab])]
        + [TensorSpec(t.name, t.dtype, [ROWS, heads, "tokens", head_dim]) for t in cache_spec],
        [prefill_example(57, 1), prefill_example(23, 2), prefill_example(91, 3)],
    )
    decode = GraphSpec(
        "stage1_decode", DecodeGraph(gpt),
        [TensorSpec("token", "int64", [1, 1]), TensorSpec("position", "int64", [1]),
         TensorSpec("speaker", "float32", [1, spk])]
        + [TensorSpec(name, "float32", [ROWS, heads, "past", head_dim]) for name in cache_names("past", n)],
        [TensorSpec("logits", "float32", [ROWS, vocab])]
        + [TensorSpec(name, "float32", [ROWS, heads, "present", head_dim]) for name in cache_names("present", n)],
        [decode_example(60, 10), decode_example(130, 20), decode_example(9, 30)],
        formats=("openvino",),
        stateful=dict(zip(cache_names("past", n), cache_names("present", n))),
    )
    step = GraphSpec(
        "stage1_step", StepGraph(gpt),
        [TensorSpec("token", "int64", [1, 1]), TensorSpec("position", "int64", [1]),
         TensorSpec("speaker", "float32", [1, spk]), TensorSpec("past_mask", "float32", [ROWS, "capacity"])]
        + [TensorSpec(name, "float32", [ROWS, heads, "capacity", head_dim]) for name in cache_names("past", n)],
        [TensorSpec("logits", "float32", [ROWS, vocab])]
        + [TensorSpec(name, "float32", [ROWS, heads, 1, head_dim]) for name in cache_names("new", n)],
        [step_example(64, 60, 40), step_example(128, 77, 50), step_example(16, 9, 60)],
        formats=("onnx",),  # onnxruntime's decode step; OpenVINO runs stage1_decode
    )
    return [prefill, decode, step]


def stage2_graph(gpt: MetaVoiceGPT) -> GraphSpec:
    args = gpt.args
    spk = gpt.speaker_cond_pos.in_features
    hierarchies, heads, vocab = len(args.vocab_sizes), len(args.head_vocab_sizes), args.head_vocab_sizes[0]
    if len(set(args.head_vocab_sizes)) != 1:
        raise ValueError(f"stage 2 heads of different sizes {args.head_vocab_sizes} are not supported")

    def example(t, seed):
        ids = torch.stack([seeded_randint(v, min(t, args.block_size), seed=seed + i)
                           for i, v in enumerate(args.vocab_sizes)])
        return ids, _speaker(spk, seed + 9)

    return GraphSpec(
        "stage2", Stage2Graph(gpt),
        [TensorSpec("ids", "int64", [hierarchies, "positions"]), TensorSpec("speaker", "float32", [1, spk])],
        [TensorSpec("logits", "float32", [heads, "positions", vocab])],
        # upstream always feeds the whole block; shorter rows check the graph is not tied to one length
        [example(args.block_size, 70), example(args.block_size // 2 + 3, 80)],
    )


def speaker_graph(encoder: SpeakerLSTM, frames: int = 160) -> GraphSpec:
    bands = encoder.lstm.input_size
    embedding = encoder.linear.out_features

    def example(partials, seed):  # power mels: non-negative, heavy-tailed
        return (seeded_randn(partials, frames, bands, seed=seed, scale=2.0) ** 2,)

    return GraphSpec(
        "speaker_encoder", encoder,
        [TensorSpec("mels", "float32", ["partials", frames, bands])],
        [TensorSpec("partial_embeddings", "float32", ["partials", embedding])],
        [example(43, 90), example(5, 91), example(17, 92)],
    )
