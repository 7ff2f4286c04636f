"""How EmotiVoice is cut into graphs: style BERT, acoustic model front (to durations) and back (from durations to
mel), and the HiFi-GAN vocoder. The host tokenises, runs BERT twice (prompt → style, text → content), sums the
durations (all zero → all one) to make `frame_index = 0 … F−1`, and converts the waveform to int16.

The acoustic model's graphs take their phones and frames padded at the end to a few lengths, with the real counts
(`valid_phones`, `valid_frames`) as inputs: OpenVINO prepares kernels for every new input length and keeps them,
which cost ~50 ms and ~10 MiB for each new sentence (`edgevoice/emotivoice/synthesizer.py` AM_SMALLEST_LENGTH)."""

from __future__ import annotations

import copy

import torch
from torch import nn

from edgevoice.bundle import TensorSpec
from edgevoice_export.conv_rewrite import rewrite_conv_transpose
from edgevoice_export.graphs import GraphSpec, seeded_randint, seeded_randn

from .models import AcousticModel, HiFiGAN, StyleBert, frame_count


class AmFrontGraph(nn.Module):
    """ids (padded past `valid_phones`), speaker, style, content → upsampler input, log durations, durations (int64,
    rounded in the graph; zero at padded phones)."""

    def __init__(self, am: AcousticModel):
        super().__init__()
        self.am = am

    def forward(self, token_ids, speaker, style, content, valid_phones=None):  # None: older bundles' inputs
        return self.am.front(token_ids, speaker, style, content, valid_phones=valid_phones)


class AmBackGraph(nn.Module):
    """upsampler input, durations, frame index, the real phone and frame counts → mel (zero at padded frames; the
    all-zero rule is applied in the graph too)."""

    def __init__(self, am: AcousticModel):
        super().__init__()
        self.am = am

    def forward(self, hidden, durations, frame_index, valid_phones=None, valid_frames=None):
        return self.am.back(hidden, durations, frame_index, valid_phones=valid_phones, valid_frames=valid_frames)


class HifiganGraph(nn.Module):
    """mel `[1, n_mels, frames]` → wav `[1, samples]` (tanh output)."""

    def __init__(self, vocoder: HiFiGAN):
        super().__init__()
        self.vocoder = vocoder

    def forward(self, mel):
        return self.vocoder(mel)[:, 0, :]


def _durations(n: int, seed: int, zeros: int = 1) -> torch.Tensor:
    """Realistic durations: mostly 1–7 frames per phone, `zeros` of them 0."""
    ds = seeded_randint(7, 1, n, seed=seed) + 1
    positions = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 1))[:zeros]
    ds[0, positions] = 0
    return ds


def style_bert_graph(bert: StyleBert) -> GraphSpec:
    config = bert.bert.config
    vocab = config.vocab_size

    def example(n, seed):
        ids = seeded_randint(vocab, 1, n, seed=seed)
        ids[0, 0], ids[0, -1] = min(2, vocab - 1), min(3, vocab - 1)  # [CLS] … [SEP] in SimBERT-style vocabularies
        return (ids,)

    return GraphSpec(
        "style_bert", bert,
        [TensorSpec("input_ids", "int64", [1, "tokens"])],
        [TensorSpec("pooled", "float32", [1, config.hidden_size])],
        [example(9, 11), example(23, 12), example(4, 13)],
    )


def am_front_graph(am: AcousticModel, bert_hidden: int) -> GraphSpec:
    vocab = am.src_word_emb.num_embeddings
    speakers = am.spk_tokenizer.num_embeddings

    def example(n, seed, padded=0):
        ids = torch.nn.functional.pad(seeded_randint(vocab, 1, n, seed=seed), (0, padded))
        return (ids, seeded_randint(speakers, 1, seed=seed + 1),
                torch.tanh(seeded_randn(1, bert_hidden, seed=seed + 2, scale=2.0)),
                torch.tanh(seeded_randn(1, bert_hidden, seed=seed + 3, scale=2.0)), torch.tensor([n]))

    return GraphSpec(
        "am_front", AmFrontGraph(am),
        [TensorSpec("token_ids", "int64", [1, "phones"]), TensorSpec("speaker", "int64", [1]),
         TensorSpec("style", "float32", [1, bert_hidden]), TensorSpec("content", "float32", [1, bert_hidden]),
         TensorSpec("valid_phones", "int64", [1])],
        [TensorSpec("hidden", "float32", [1, "phones", am.hidden]),
         TensorSpec("log_durations", "float32", [1, "phones"]),
         TensorSpec("durations", "int64", [1, "phones"])],
        [example(23, 21, padded=9), example(41, 22), example(7, 23, padded=9)],
    )


def am_back_graph(am: AcousticModel) -> GraphSpec:
    def example(n, seed, zeros=1, all_zero=False, padded=(0, 0)):
        ds = torch.zeros(1, n, dtype=torch.int64) if all_zero else _durations(n, seed, zeros)
        frames = frame_count(ds.numpy())
        hidden = seeded_randn(1, n + padded[0], am.hidden, seed=seed + 2)
        return (hidden, torch.nn.functional.pad(ds, (0, padded[0])),
                torch.arange(frames + padded[1], dtype=torch.float32), torch.tensor([n]), torch.tensor([frames]))

    return GraphSpec(
        "am_back", AmBackGraph(am),
        [TensorSpec("hidden", "float32", [1, "phones", am.hidden]), TensorSpec("durations", "int64", [1, "phones"]),
         TensorSpec("frame_index", "float32", ["frames"]), TensorSpec("valid_phones", "int64", [1]),
         TensorSpec("valid_frames", "int64", [1])],
        [TensorSpec("mel", "float32", [1, "frames", am.n_mels])],
        [example(19, 31, zeros=2, padded=(5, 20)), example(33, 32, zeros=4), example(6, 33, all_zero=True,
                                                                                      padded=(2, 10)),
         example(11, 34, zeros=0)],
    )


def hifigan_graph(vocoder: HiFiGAN) -> GraphSpec:
    samples = f"{vocoder.hop}*frames" if vocoder.exact_hop else "samples"

    def example(frames, seed):  # mel-like values: log-magnitudes around -2 ± 1.5
        return (seeded_randn(1, vocoder.initial_channel, frames, seed=seed, scale=1.5) - 2.0,)

    # Upsampling layers as plain convolutions (OpenVINO runs transposed ones slowly and never in INT8:
    # conv_rewrite.py), on a copy: the graph is checked against upstream's transposed layers (`reference`).
    exported = copy.deepcopy(vocoder)
    rewrite_conv_transpose(exported)
    return GraphSpec(
        "hifigan", HifiganGraph(exported),
        [TensorSpec("mel", "float32", [1, vocoder.initial_channel, "frames"])],
        [TensorSpec("wav", "float32", [1, samples])],
        [example(24, 41), example(37, 42), example(5, 43)],
        reference=HifiganGraph(vocoder),
    )


def emotivoice_graphs(bert: StyleBert, am: AcousticModel, vocoder: HiFiGAN) -> list[GraphSpec]:
    return [style_bert_graph(bert), am_front_graph(am, bert.hidden_size), am_back_graph(am), hifigan_graph(vocoder)]
