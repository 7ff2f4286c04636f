"""How MetaVoice-1B is cut into graphs (see `edgevoice_export.graphs.GraphSpec`).

* `speaker_encoder`: partial mels `[partials, frames, bands]` → partial embeddings (resampling, trimming, the mel
  spectrogram, slicing and the final mean stay on the host, `edgevoice.metavoice.speaker`);
* `stage1` (OpenVINO, stateful: the `[2, heads, L, head_dim]` caches live in the request and grow in place) and
  `stage1_step` (onnxruntime: host buffers with a slot mask): new ids (the whole text for the prefill, then one
  token per step) → both guidance rows' logits at the last one. One graph serves prefill and decoding, so the
  weights are stored once. Guidance, sampling and the stop rule run on the host in float32, in upstream's order;
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


class ExtendGraph(nn.Module):
    def __init__(self, gpt: MetaVoiceGPT):
        super().__init__()
        self.gpt = gpt

    def forward(self, ids, start, speaker, *caches):
        n = self.gpt.n_layer
        logits, keys, values = self.gpt.extend(ids, start, speaker, caches[:n], caches[n:])
        return (logits, *keys, *values)


class StepGraph(nn.Module):
    def __init__(self, gpt: MetaVoiceGPT):
        super().__init__()
        self.gpt = gpt

    def forward(self, ids, start, speaker, past_mask, *caches):
        n = self.gpt.n_layer
        logits, keys, values = self.gpt.step(ids, start, speaker, past_mask, caches[:n], caches[n:])
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
    """`stage1` (OpenVINO, stateful) and `stage1_step` (onnxruntime): one graph each for prefill and decoding, so
    the 1.2 B weights are stored once per format."""
    args, n = gpt.args, gpt.n_layer
    vocab, heads, head_dim = args.vocab_sizes[0], args.n_head, args.n_embd // args.n_head
    spk = gpt.speaker_cond_pos.in_features
    block = args.block_size

    def caches(length, seed):
        return tuple(seeded_randn(ROWS, heads, length, head_dim, seed=seed + i) for i in range(2 * n))

    def extend_example(new, past, seed):
        new, past = min(new, block // 2), min(past, block // 2 - 1)
        return (seeded_randint(vocab, 1, new, seed=seed), torch.tensor([past]), _speaker(spk, seed + 1),
                *caches(past, seed + 2))

    def step_example(new, capacity, filled, seed):
        new, filled = min(new, block // 2), min(filled, block // 2 - 1)
        mask = torch.zeros(ROWS, capacity)
        mask[:, filled:] = float("-inf")
        return (seeded_randint(vocab, 1, new, seed=seed), torch.tensor([filled]), _speaker(spk, seed + 1), mask,
                *caches(capacity, seed + 2))

    ids_spec = [TensorSpec("ids", "int64", [1, "new"]), TensorSpec("start", "int64", [1]),
                TensorSpec("speaker", "float32", [1, spk])]
    extend = GraphSpec(
        "stage1", ExtendGraph(gpt),
        ids_spec + [TensorSpec(name, "float32", [ROWS, heads, "past", head_dim]) for name in cache_names("past", n)],
        [TensorSpec("logits", "float32", [ROWS, vocab])]
        + [TensorSpec(name, "float32", [ROWS, heads, "present", head_dim]) for name in cache_names("present", n)],
        # traced on a chunk after a cache (no axis of size 0 or 1), then decode steps at two cache lengths and a
        # prefill (nothing cached)
        [extend_example(9, 23, 40), extend_example(1, 60, 10), extend_example(1, 130, 20),
         extend_example(57, 0, 30)],
        formats=("openvino",),
        stateful=dict(zip(cache_names("past", n), cache_names("present", n))),
    )
    step = GraphSpec(
        "stage1_step", StepGraph(gpt),
        ids_spec + [TensorSpec("past_mask", "float32", [ROWS, "capacity"])]
        + [TensorSpec(name, "float32", [ROWS, heads, "capacity", head_dim]) for name in cache_names("past", n)],
        [TensorSpec("logits", "float32", [ROWS, vocab])]
        + [TensorSpec(name, "float32", [ROWS, heads, "new", head_dim]) for name in cache_names("new", n)],
        [step_example(9, 16, 9, 80), step_example(1, 64, 60, 50), step_example(1, 128, 77, 60),
         step_example(57, 64, 0, 70)],
        formats=("onnx",),  # onnxruntime's stage 1; OpenVINO runs the stateful `stage1`
    )
    return [extend, step]


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
