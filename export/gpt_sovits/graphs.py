"""How GPT-SoVITS is cut into graphs (see `edgevoice_export.graphs.GraphSpec`).

Everything around the graphs stays on the host in numpy: resampling, the spectrogram, tokenisation, the BERT
per-phone expansion, sampling and every loop.
"""

from __future__ import annotations

import torch
from torch import nn

from edgevoice.bundle import TensorSpec
from edgevoice.gpt_sovits.options import stretched_frames
from edgevoice.gpt_sovits.reference import HUBERT_RATE

from ..graphs import GraphSpec, seeded_randint, seeded_randn, sibling
from .models.gpt import Text2SemanticDecoder
from .models.ssl import BertPhoneFeatures, HubertContent


class HubertCodesGraph(nn.Module):
    """16 kHz reference (with upstream's appended silence) → prompt semantic tokens."""

    def __init__(self, hubert: HubertContent, sovits):
        super().__init__()
        self.hubert, self.sovits = hubert, sovits

    def forward(self, wav16k: torch.Tensor) -> torch.Tensor:
        return self.sovits.extract_latent(self.hubert(wav16k))[0]  # [1, T]


class ReferenceEncoderGraph(nn.Module):
    def __init__(self, sovits):
        super().__init__()
        self.sovits = sovits

    def forward(self, refer_spec: torch.Tensor) -> torch.Tensor:
        return self.sovits.reference_embedding(refer_spec)


class ProReferenceEncoderGraph(ReferenceEncoderGraph):
    """v2Pro/Plus: the speaker-verification embedding joins the spectrogram's."""

    def forward(self, refer_spec: torch.Tensor, sv: torch.Tensor) -> torch.Tensor:
        return self.sovits.reference_embedding(refer_spec, sv)


class SovitsLatentGraph(nn.Module):
    """Tokens + phones + `ge` + flow noise → the vocoder's input `z` (text encoder and flow: they attend over the
    whole fragment, so they run on it at once)."""

    def __init__(self, sovits):
        super().__init__()
        self.sovits = sovits

    def forward(self, codes, phone_ids, ge, noise, valid_tokens, valid_phones):
        return self.sovits.latent(codes, phone_ids, ge, noise, (valid_tokens, valid_phones))


class SovitsVocoderGraph(nn.Module):
    """`z` + `ge` → audio. A graph of its own so the runtime can run it on windows of `z` (it only sees a few frames
    to each side): its activations, most of SoVITS's memory, then stay bounded whatever the text's length."""

    def __init__(self, sovits):
        super().__init__()
        self.sovits = sovits  # module paths stay `sovits.dec.*`, as the quantisation policy names them

    def forward(self, z, ge, valid_frames):
        return self.sovits.vocode(z, ge, valid_frames)


class GptPrefillGraph(nn.Module):
    def __init__(self, gpt: Text2SemanticDecoder):
        super().__init__()
        self.gpt = gpt

    def forward(self, phone_ids, bert_features, prompt_tokens):
        logits, keys, values = self.gpt.prefill(phone_ids, bert_features, prompt_tokens)
        return (logits, *keys, *values)


class GptStepGraph(nn.Module):
    def __init__(self, gpt: Text2SemanticDecoder):
        super().__init__()
        self.gpt = gpt

    def forward(self, token, position, past_mask, *caches):
        n = self.gpt.n_layer
        logits, keys, values = self.gpt.step(token, position, past_mask, caches[:n], caches[n:])
        return (logits, *keys, *values)


class GptDecodeGraph(nn.Module):
    def __init__(self, gpt: Text2SemanticDecoder):
        super().__init__()
        self.gpt = gpt

    def forward(self, token, position, *caches):
        n = self.gpt.n_layer
        logits, keys, values = self.gpt.decode(token, position, None, caches[:n], caches[n:])
        return (logits, *keys, *values)


class GptBatchDecodeGraph(GptDecodeGraph):
    def forward(self, token, position, past_mask, *caches):
        n = self.gpt.n_layer
        logits, keys, values = self.gpt.decode(token, position, past_mask, caches[:n], caches[n:])
        return (logits, *keys, *values)


def _cache_names(prefix: str, n_layer: int) -> list[str]:
    return [f"{prefix}_key.{i}" for i in range(n_layer)] + [f"{prefix}_value.{i}" for i in range(n_layer)]


def gpt_graphs(gpt: Text2SemanticDecoder) -> list[GraphSpec]:
    """The GPT's graphs: the prefill, onnxruntime's decode step, and OpenVINO's stateful decode step for one
    sequence and for a batch."""
    return [_prefill_spec(gpt), _step_spec(gpt), *_decode_specs(gpt)]


def _cache_shape(gpt: Text2SemanticDecoder) -> tuple[int, int]:
    return gpt.heads, gpt.dim // gpt.heads


def _prefill_spec(gpt: Text2SemanticDecoder) -> GraphSpec:
    heads, head_dim = _cache_shape(gpt)
    phones = gpt.ar_text_embedding.word_embeddings.num_embeddings

    def example(n_phones, n_prompt, seed):
        return (seeded_randint(phones, 1, n_phones, seed=seed), seeded_randn(1, 1024, n_phones, seed=seed + 1),
                seeded_randint(gpt.vocab_size - 1, 1, n_prompt, seed=seed + 2))

    return GraphSpec(
        "gpt_prefill", GptPrefillGraph(gpt),
        [TensorSpec("phone_ids", "int64", [1, "phones"]), TensorSpec("bert_features", "float32", [1, 1024, "phones"]),
         TensorSpec("prompt_tokens", "int64", [1, "prompt"])],
        [TensorSpec("logits", "float32", [1, gpt.vocab_size])]
        + [TensorSpec(name, "float32", [1, heads, "context", head_dim])
           for name in _cache_names("present", gpt.n_layer)],
        [example(17, 23, 1), example(9, 31, 10), example(60, 12, 20)],
    )


def _step_spec(gpt: Text2SemanticDecoder) -> GraphSpec:
    """onnxruntime's decode step, for one sequence or a batch (OpenVINO runs the stateful gpt_decode for both)."""
    vocab, n = gpt.vocab_size, gpt.n_layer
    heads, head_dim = _cache_shape(gpt)

    def example(capacity, filled, seed, rows=1):
        """`rows` sequences with `filled`, `filled - 3`, ... slots in use (a batch has its gaps masked)."""
        caches = tuple(seeded_randn(rows, heads, capacity, head_dim, seed=seed + i) for i in range(2 * n))
        mask = torch.zeros(rows, capacity)
        for row in range(rows):
            mask[row, filled - 3 * row:] = float("-inf")
        positions = torch.tensor([filled - 7 - 2 * row for row in range(rows)])
        return (seeded_randint(vocab - 1, rows, 1, seed=seed), positions, mask, *caches)

    return GraphSpec(
        "gpt_step", GptStepGraph(gpt),
        [TensorSpec("token", "int64", ["batch", 1]), TensorSpec("position", "int64", ["batch"]),
         TensorSpec("past_mask", "float32", ["batch", "capacity"])]
        + [TensorSpec(name, "float32", ["batch", heads, "capacity", head_dim]) for name in _cache_names("past", n)],
        [TensorSpec("logits", "float32", ["batch", vocab])]
        + [TensorSpec(name, "float32", ["batch", heads, 1, head_dim]) for name in _cache_names("new", n)],
        [example(30, 30, 100), example(64, 57, 200), example(9, 9, 300), example(128, 75, 400),
         example(40, 33, 500, rows=3), example(96, 90, 600, rows=2)],
        formats=("onnx",),
    )


def _decode_specs(gpt: Text2SemanticDecoder) -> list[GraphSpec]:
    """OpenVINO's decode steps: the cache stays in the request (stateful), the host feeds the token and its
    position; one graph for a single sequence and one for a batch."""
    vocab, n = gpt.vocab_size, gpt.n_layer
    heads, head_dim = _cache_shape(gpt)

    def example(past, seed, rows=1, masked=False):
        """`rows` sequences; with `masked`, row r > 0 has its first 2r cache slots masked as padding (a batch)."""
        caches = tuple(seeded_randn(rows, heads, past, head_dim, seed=seed + i) for i in range(2 * n))
        positions = torch.tensor([past - 7 - row for row in range(rows)])
        if not masked:
            return (seeded_randint(vocab - 1, rows, 1, seed=seed), positions, *caches)
        mask = torch.zeros(rows, past + 1)
        for row in range(1, rows):
            mask[row, : 2 * row] = float("-inf")
        return (seeded_randint(vocab - 1, rows, 1, seed=seed), positions, mask, *caches)

    fed = [TensorSpec("token", "int64", ["batch", 1]), TensorSpec("position", "int64", ["batch"])]
    past = [TensorSpec(name, "float32", ["batch", heads, "past", head_dim]) for name in _cache_names("past", n)]
    outputs = ([TensorSpec("logits", "float32", ["batch", vocab])]
               + [TensorSpec(name, "float32", ["batch", heads, "present", head_dim])
                  for name in _cache_names("present", n)])
    states = dict(zip(_cache_names("past", n), _cache_names("present", n)))
    decode = GraphSpec(
        "gpt_decode", GptDecodeGraph(gpt), fed + past, outputs,
        [example(30, 500), example(200, 600), example(9, 700)],
        formats=("openvino",), stateful=states,
    )
    # The same step for a batch of sequences prefilled to different lengths: a mask hides each shorter row's
    # padding. A graph of its own because the masked attention kernel costs a single sequence 1-2.5 ms per step
    # (full-size INT8, u8 cache, 50 / 400 positions: 10.7 / 11.8 ms masked vs 8.2 / 10.6 ms; Zen 4, 2 threads).
    batch_decode = GraphSpec(
        "gpt_batch_decode", GptBatchDecodeGraph(gpt),
        fed + [TensorSpec("past_mask", "float32", ["batch", "present"])] + past, outputs,
        [example(30, 900, rows=3, masked=True), example(200, 1000, rows=2, masked=True),
         example(9, 1100, masked=True)],
        formats=("openvino",), stateful=states,
    )
    return [decode, batch_decode]


def sovits_graphs(sovits, hubert: HubertContent, sv_trunk=None, upstream_vocoder: nn.Module | None = None,
                  sample_rate_hz: int = HUBERT_RATE) -> list[GraphSpec]:
    """`upstream_vocoder`: SoVITS's `dec` as upstream built it, where `sovits.dec` was rewritten for export (the
    vocoder graph is then checked against it)."""
    gin = sovits.gin_channels
    inter = sovits.inter_channels
    phones = sovits.phone_vocab_size
    hop = sovits.hop_length

    def wav(seconds, seed):
        return seeded_randn(1, int(seconds * sample_rate_hz), seed=seed, scale=0.1)

    def decode_example(tokens, n_phones, seed, speed=1.0, real=None):
        """`real` (tokens, phones): how many are real, the rest padding (the runtime pads to a few shapes)."""
        frames = stretched_frames(tokens, speed)
        real_tokens, real_phones = real or (tokens, n_phones)
        return (seeded_randint(1024, 1, 1, tokens, seed=seed), seeded_randint(phones, 1, n_phones, seed=seed + 1),
                seeded_randn(1, gin, 1, seed=seed + 2), seeded_randn(1, inter, frames, seed=seed + 3, scale=0.5),
                torch.tensor([real_tokens]), torch.tensor([real_phones]))

    def vocoder_example(frames, real, seed):
        return (seeded_randn(1, inter, frames, seed=seed, scale=0.7), seeded_randn(1, gin, 1, seed=seed + 1),
                torch.tensor([real]))

    sv = [sv_graph(sv_trunk)] if sv_trunk is not None else []
    return sv + [
        GraphSpec(
            "hubert_codes", HubertCodesGraph(hubert, sovits),
            [TensorSpec("wav16k", "float32", [1, "samples"])],
            [TensorSpec("prompt_tokens", "int64", [1, "tokens"])],
            [(wav(3.6, 1),), (wav(4.3, 2),), (wav(6.1, 3),)],
        ),
        reference_graph(sovits),
        GraphSpec(
            "sovits_latent", SovitsLatentGraph(sovits),
            [TensorSpec("codes", "int64", [1, 1, "tokens"]), TensorSpec("phone_ids", "int64", [1, "phones"]),
             TensorSpec("ge", "float32", [1, gin, 1]), TensorSpec("noise", "float32", [1, inter, "frames"]),
             TensorSpec("valid_tokens", "int64", [1]), TensorSpec("valid_phones", "int64", [1])],
            [TensorSpec("z", "float32", [1, inter, "frames"])],
            # speed 1 at two lengths, padded at two more, then slower and faster speech (the noise's length sets
            # the rate)
            [decode_example(23, 19, 1), decode_example(40, 31, 10), decode_example(64, 32, 40, real=(37, 21)),
             decode_example(32, 32, 50, real=(9, 5)), decode_example(11, 7, 20, speed=0.8),
             decode_example(30, 17, 30, speed=1.5)],
        ),
        GraphSpec(
            "sovits_vocoder", SovitsVocoderGraph(sovits),
            [TensorSpec("z", "float32", [1, inter, "frames"]), TensorSpec("ge", "float32", [1, gin, 1]),
             TensorSpec("valid_frames", "int64", [1])],
            [TensorSpec("audio", "float32", [1, 1, f"{hop}*frames"])],
            # whole windows at two lengths, then windows padded past the real frames
            [vocoder_example(46, 46, 60), vocoder_example(80, 80, 70), vocoder_example(64, 37, 80),
             vocoder_example(32, 9, 90)],
            reference=None if upstream_vocoder is None else SovitsVocoderGraph(sibling(sovits, dec=upstream_vocoder)),
        ),
    ]


def reference_graph(sovits) -> GraphSpec:
    """`ref_encoder`: spectrogram (+ speaker embedding for v2Pro/Plus) → `ge`."""
    inputs = [TensorSpec("refer_spec", "float32", [1, sovits.spec_channels, "frames"])]
    if sovits.pro:
        inputs.append(TensorSpec("sv", "float32", [1, sovits.sv_dim]))

    def example(frames):
        spec = seeded_randn(1, sovits.spec_channels, frames, seed=frames).abs()
        return (spec, seeded_randn(1, sovits.sv_dim, seed=frames + 1)) if sovits.pro else (spec,)

    module = ProReferenceEncoderGraph(sovits) if sovits.pro else ReferenceEncoderGraph(sovits)
    return GraphSpec("ref_encoder", module, inputs,
                     [TensorSpec("ge", "float32", [1, sovits.gin_channels, 1])], [example(n) for n in (150, 97, 251)])


def sv_graph(sv_trunk) -> GraphSpec:
    """`sv_embedding` (v2Pro/Plus): Kaldi fbank `[1, frames, 80]` of the 16 kHz reference → speaker embedding."""
    return GraphSpec(
        "sv_embedding", sv_trunk,
        [TensorSpec("fbank", "float32", [1, "frames", 80])],
        [TensorSpec("sv", "float32", [1, sv_trunk.embedding_dim])],
        [(seeded_randn(1, n, 80, seed=n, scale=3.0),) for n in (298, 151, 480)],
    )


def bert_graph(bert: BertPhoneFeatures, vocab_size: int) -> GraphSpec:
    """BERT over ids padded to a few lengths, with their mask (`BertPhoneFeatures`); checked at three lengths, one
    of them padded."""
    hidden = bert.model.config.hidden_size

    def example(n: int, real: int) -> tuple:
        return seeded_randint(vocab_size, 1, n, seed=n), (torch.arange(n) < real).long()[None]

    return GraphSpec(
        "bert", bert,
        [TensorSpec("input_ids", "int64", [1, "tokens"]), TensorSpec("attention_mask", "int64", [1, "tokens"])],
        [TensorSpec("hidden", "float32", [1, "tokens", hidden])],
        [example(19, 19), example(32, 21), example(7, 7)],
    )
