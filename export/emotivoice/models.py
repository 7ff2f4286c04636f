"""Our PyTorch re-implementation of EmotiVoice inference (eval mode only; no dropout, no training branches).

Three models, every size taken from upstream's configuration files:

* `StyleBert`: the style encoder's BERT (`transformers.BertModel` built from the SimBERT `config.json`, weights
  from the style checkpoint's `bert.*`); token ids → `pooler_output` = tanh(W · h[:, 0] + b). Used for the prompt
  (style) and the raw text (content).
* `AcousticModel` (upstream `PromptTTS`, inference branch): token embedding → pre-LN Transformer encoder with a
  scaled sinusoidal positional encoding → projection of [encoder, speaker, style, content] → pitch / energy /
  duration predictors → pitch and energy embeddings added → Gaussian upsampling (δ = 0.1) → decoder → `to_mel`.
* `HiFiGAN` (upstream `models/hifigan/models.py` `Generator`, weight norm folded): mel → waveform in [-1, 1].

Module and parameter names follow upstream's, so a checkpoint's `am.*` / `generator.*` keys (after folding weight
norm) load directly. The forward passes avoid data-dependent Python control flow so they export with
`torch.export` under dynamic shapes.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgevoice.emotivoice.synthesizer import MAX_VOCODER_CONTEXT_FRAMES

from ..checkpoints import built_on_meta
from ..hifigan import EDGE_KERNEL, hifigan_reach_frames, measured_reach_frames
from .checkpoints import (AM_IGNORED, STYLE_IGNORED, CheckpointError, EmotiVoiceFiles, check_state, load_bert_config,
                          load_config, read_am_checkpoint, read_style_checkpoint)

LN_EPS = 1e-12  # upstream's espnet-style LayerNorm
UPSAMPLE_DELTA = 0.1  # GaussianUpsampling(delta=0.1)
LRELU_SLOPE = 0.1  # HiFi-GAN inner activations; the one before conv_post uses torch's default 0.01
DURATION_OFFSET = 1.0  # DurationPredictor(offset=1.0): durations = round(exp(d) - 1)
MASKED_SCORE = -1e9  # an attention score or upsampler energy that softmax turns into exactly 0 beside real ones


# ---------------------------------------------------------------------------------------------------------------
# Style encoder


class StyleBert(nn.Module):
    """Token ids `[1, L]` → pooled output `[1, hidden]` (token types 0, attention mask all ones)."""

    def __init__(self, bert_config: dict, attn_implementation: str = "sdpa"):
        super().__init__()
        from transformers import BertConfig, BertModel

        config = BertConfig(**{k: v for k, v in bert_config.items() if k not in ("transformers_version",)})
        config._attn_implementation = attn_implementation
        self.bert = BertModel(config, add_pooling_layer=True)
        self.hidden_size = config.hidden_size
        self.eval()

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        out = self.bert(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                        token_type_ids=torch.zeros_like(input_ids))
        return out.pooler_output

    def hidden_and_pooled(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.bert(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                        token_type_ids=torch.zeros_like(input_ids))
        return out.last_hidden_state, out.pooler_output


# ---------------------------------------------------------------------------------------------------------------
# Acoustic model


class LayerNorm(nn.LayerNorm):
    """LayerNorm with eps 1e-12, over the last axis or (`dim=1`) over the channels of a `(B, C, T)` tensor."""

    def __init__(self, size: int, dim: int = -1):
        super().__init__(size, eps=LN_EPS)
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dim == -1:
            return super().forward(x)
        return super().forward(x.transpose(self.dim, -1)).transpose(self.dim, -1)


def masked(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """`x` `(1, T, C)` (or `(1, C, T)` with the mask's axes swapped) with the padded positions zeroed (what a
    convolution's own padding reads past the end), as a select so that whatever a padded position holds (even NaN)
    cannot leak into a convolution (attention gives padded keys zero weight, which a NaN there would still spoil;
    padded positions hold finite values)."""
    return x if mask is None else torch.where(mask, x, torch.zeros((), dtype=x.dtype))


def _channels_first(mask: torch.Tensor | None) -> torch.Tensor | None:
    return None if mask is None else mask.transpose(1, 2)


def length_mask(valid: torch.Tensor | None, length: int, like: torch.Tensor) -> torch.Tensor | None:
    """`(1, length, 1)` bool, True for the first `valid` positions (`valid` int64 `(1,)`; None: no padding)."""
    if valid is None:
        return None
    return (torch.arange(length, device=like.device) < valid.reshape(1, 1)).reshape(1, length, 1)


class ScaledPositionalEncoding(nn.Module):
    """`x + alpha · pe[:T]`, pe sinusoidal (sin on even, cos on odd channels), no √D scaling. The table is made
    on the fly from the positions, so any length works (upstream precomputes 5,000 rows the same way)."""

    def __init__(self, d_model: int):
        super().__init__()
        if d_model % 2:
            raise CheckpointError(f"the positional encoding needs an even width, got {d_model}")
        self.alpha = nn.Parameter(torch.tensor(1.0))
        div_term = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * -(math.log(10000.0) / d_model))
        self.register_buffer("div_term", div_term, persistent=False)

    def table(self, length: int, like: torch.Tensor) -> torch.Tensor:
        position = torch.arange(length, device=like.device).to(torch.float32).unsqueeze(1)
        angles = position * self.div_term
        return torch.stack([torch.sin(angles), torch.cos(angles)], dim=-1).flatten(1)  # (T, D) interleaved

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.alpha * self.table(x.shape[1], x)


class MultiHeadedAttention(nn.Module):
    def __init__(self, n_head: int, n_feat: int):
        super().__init__()
        if n_feat % n_head:
            raise CheckpointError(f"attention width {n_feat} is not a multiple of {n_head} heads")
        self.h, self.d_k = n_head, n_feat // n_head
        self.linear_q = nn.Linear(n_feat, n_feat)
        self.linear_k = nn.Linear(n_feat, n_feat)
        self.linear_v = nn.Linear(n_feat, n_feat)
        self.linear_out = nn.Linear(n_feat, n_feat)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        batch = x.shape[0]
        q = self.linear_q(x).view(batch, -1, self.h, self.d_k).transpose(1, 2)
        k = self.linear_k(x).view(batch, -1, self.h, self.d_k).transpose(1, 2)
        v = self.linear_v(x).view(batch, -1, self.h, self.d_k).transpose(1, 2)
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.d_k)
        if mask is not None:  # padded keys get no weight (exp of a finite minimum: no NaN from an all-padded row)
            scores = scores.masked_fill(~mask.reshape(1, 1, 1, -1), MASKED_SCORE)
        attn = torch.softmax(scores, dim=-1)
        out = torch.matmul(attn, v).transpose(1, 2).reshape(batch, -1, self.h * self.d_k)
        return self.linear_out(out)


class ConvFeedForward(nn.Module):
    """Two Conv1d over time (same padding) with gelu between: `D → units → D`."""

    def __init__(self, channels: int, units: int, kernel_size: int):
        super().__init__()
        self.w_1 = nn.Conv1d(channels, units, kernel_size, padding=(kernel_size - 1) // 2)
        self.w_2 = nn.Conv1d(units, channels, kernel_size, padding=(kernel_size - 1) // 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = F.gelu(self.w_1(masked(x, mask).transpose(1, 2)))
        return self.w_2(masked(x, _channels_first(mask))).transpose(1, 2)


class EncoderLayer(nn.Module):
    """Pre-LN block: `x += MHA(LN1(x))`, `x += FFN(LN2(x))`."""

    def __init__(self, size: int, heads: int, units: int, kernel_size: int):
        super().__init__()
        self.self_attn = MultiHeadedAttention(heads, size)
        self.feed_forward = ConvFeedForward(size, units, kernel_size)
        self.norm1 = LayerNorm(size)
        self.norm2 = LayerNorm(size)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.self_attn(self.norm1(x), mask)
        return x + self.feed_forward(self.norm2(x), mask)


class Encoder(nn.Module):
    """Upstream's (espnet) Transformer encoder, used for both the encoder and the decoder. `mask` `(1, T, 1)`
    (True: a real position) lets a sequence padded at the end give its real positions' unpadded values."""

    def __init__(self, size: int, heads: int, layers: int, kernel_size: int):
        super().__init__()
        self.embed = nn.Sequential(ScaledPositionalEncoding(size))
        self.encoders = nn.ModuleList(EncoderLayer(size, heads, 4 * size, kernel_size) for _ in range(layers))
        self.after_norm = LayerNorm(size)

    def forward(self, x: torch.Tensor, record: dict | None = None, name: str = "enc",
                mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.embed(x)
        if record is not None:
            record[f"{name}_posenc_out"] = x
        for index, layer in enumerate(self.encoders):
            x = layer(x, mask)
            if record is not None:
                record[f"{name}_block{index}_out"] = x
        return self.after_norm(x)


class VariancePredictor(nn.Module):
    """`(B, T, idim)` → `(B, T, 1)`: per layer Conv1d → ReLU → LayerNorm over channels, then Linear → 1.
    Upstream's DurationPredictor has the same layers and names; only its inference step (rounding) differs."""

    def __init__(self, idim: int, n_layers: int, n_chans: int, kernel_size: int):
        super().__init__()
        self.conv = nn.ModuleList(
            nn.Sequential(nn.Conv1d(idim if i == 0 else n_chans, n_chans, kernel_size, padding=(kernel_size - 1) // 2),
                          nn.ReLU(), LayerNorm(n_chans, dim=1))
            for i in range(n_layers)
        )
        self.linear = nn.Linear(n_chans, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x, mask = x.transpose(1, 2), _channels_first(mask)
        for layer in self.conv:
            x = layer(masked(x, mask))
        return self.linear(x.transpose(1, 2))


def durations_from_log(log_durations: torch.Tensor) -> torch.Tensor:
    """`clamp(round(exp(d) − 1), min=0)` as int64; torch.round (and ONNX Round) round half to even."""
    return torch.clamp(torch.round(torch.exp(log_durations) - DURATION_OFFSET), min=0).to(torch.int64)


def gaussian_upsample(hs: torch.Tensor, durations: torch.Tensor, frame_index: torch.Tensor,
                      delta: float = UPSAMPLE_DELTA, tokens: torch.Tensor | None = None) -> torch.Tensor:
    """Upstream's GaussianUpsampling at inference: `hs (1, T, D)`, integer `durations (1, T)`, `frame_index (F,)`
    = 0 … F−1 → `(1, F, D)`. All-zero durations count as all ones; zero-duration tokens still get weight.
    `tokens` `(1, T)` bool: the real tokens of a padded sequence (padded ones get no frames and no weight)."""
    ds = durations.to(hs.dtype)
    ones = torch.ones_like(ds)
    if tokens is not None:
        ds, ones = torch.where(tokens, ds, torch.zeros_like(ds)), tokens.to(hs.dtype)
    ds = torch.where(ds.sum(dim=-1, keepdim=True) == 0, ones, ds)
    centres = torch.cumsum(ds, dim=-1) - ds / 2
    energy = -delta * (frame_index.to(hs.dtype).reshape(1, -1, 1) - centres.unsqueeze(1)) ** 2
    if tokens is not None:
        energy = energy.masked_fill(~tokens.unsqueeze(1), MASKED_SCORE)
    return torch.matmul(torch.softmax(energy, dim=2), hs)


def frame_count(durations) -> int:
    """Frames the upsampler makes for these durations (the host-side twin of the all-zero rule)."""
    durations = np.asarray(durations)
    total = int(durations.sum())
    return total if total > 0 else int(durations.shape[-1])


class AcousticModel(nn.Module):
    """Upstream `PromptTTS` at inference; `front` runs up to the upsampler's input, `back` from durations to mel."""

    def __init__(self, config: dict):
        super().__init__()
        m = config["model"]
        hidden = m["encoder_n_hidden"]
        if m["decoder_n_hidden"] != hidden:
            raise CheckpointError(f"decoder_n_hidden {m['decoder_n_hidden']} must equal encoder_n_hidden {hidden}")
        self.hidden = hidden
        self.n_mels = config["n_mels"]
        self.encoder = Encoder(hidden, m["encoder_n_heads"], m["encoder_n_layers"], m["encoder_kernel_size_conv_mod"])
        self.decoder = Encoder(hidden, m["decoder_n_heads"], m["decoder_n_layers"], m["decoder_kernel_size_conv_mod"])
        self.duration_predictor = VariancePredictor(hidden, m["duration_n_layers"], m["variance_n_hidden"],
                                                    m["duration_kernel_size"])
        self.pitch_predictor = VariancePredictor(hidden, m["variance_n_layers"], m["variance_n_hidden"],
                                                 m["variance_kernel_size"])
        k = m["variance_embed_kernel_size"]
        self.pitch_embed = nn.Sequential(nn.Conv1d(1, hidden, k, padding=(k - 1) // 2))
        self.energy_predictor = VariancePredictor(hidden, 2, m["variance_n_hidden"], 3)  # hard-coded upstream
        self.energy_embed = nn.Sequential(nn.Conv1d(1, hidden, k, padding=(k - 1) // 2))
        self.to_mel = nn.Linear(hidden, config["n_mels"])
        self.spk_tokenizer = nn.Embedding(config["n_speaker"], hidden)
        self.src_word_emb = nn.Embedding(config["n_vocab"], hidden)
        self.embed_projection1 = nn.Linear(2 * hidden + 2 * m["bert_embedding"], hidden)
        self.eval()

    def front(self, token_ids, speaker, style, content, record: dict | None = None, valid_phones=None):
        """ids `(1, T)`, speaker `(1,)`, style/content `(1, H)` → (hidden `(1, T, D)` = upsampler input,
        log durations `(1, T)`, durations int64 `(1, T)`). `valid_phones` `(1,)`: the ids are padded at the end
        past this many; the real positions get their unpadded values, the padded ones zeros."""
        mask = length_mask(valid_phones, token_ids.shape[1], token_ids)
        x = self.src_word_emb(token_ids)
        if record is not None:
            record["token_embed"] = x
        x = self.encoder(x, record, "enc", mask)
        if record is not None:
            record["enc_out"] = x
        speaker_embedding = self.spk_tokenizer(speaker)
        length = x.shape[1]
        parts = [x] + [v.unsqueeze(1).expand(-1, length, -1) for v in (speaker_embedding, style, content)]
        x = self.embed_projection1(torch.cat(parts, dim=-1))
        pitch = self.pitch_predictor(x, mask).squeeze(-1)
        energy = self.energy_predictor(x, mask).squeeze(-1)
        log_durations = masked(self.duration_predictor(x, mask), mask)
        durations = durations_from_log(log_durations).squeeze(-1)
        pitch_embed = self.pitch_embed(masked(pitch.unsqueeze(1), _channels_first(mask)))
        energy_embed = self.energy_embed(masked(energy.unsqueeze(1), _channels_first(mask)))
        hidden = masked(x + pitch_embed.transpose(1, 2) + energy_embed.transpose(1, 2), mask)
        if record is not None:
            record.update(spk_embed=speaker_embedding, proj_out=x,
                          pitch_pred=pitch, energy_pred=energy, dur_log=log_durations, durations=durations,
                          pitch_embed_out=pitch_embed, energy_embed_out=energy_embed, lr_in=hidden)
        return hidden, log_durations.squeeze(-1), durations

    def back(self, hidden, durations, frame_index, record: dict | None = None, valid_phones=None,
             valid_frames=None):
        """upsampler input `(1, T, D)`, durations `(1, T)`, frame index `(F,)` → mel `(1, F, n_mels)`.
        `valid_phones`, `valid_frames` `(1,)` (both or neither): the phones and frames are padded at the end past
        these counts; the real frames get their unpadded values, the padded ones zeros."""
        phones = length_mask(valid_phones, hidden.shape[1], hidden)
        x = gaussian_upsample(hidden, durations, frame_index, tokens=None if phones is None else phones[..., 0])
        if record is not None:
            record["lr_out"] = x
        frames = length_mask(valid_frames, frame_index.shape[0], x)
        x = self.decoder(x, record, "dec", frames)
        if record is not None:
            record["dec_out"] = x
        return masked(self.to_mel(x), frames)

    def stages(self, token_ids, speaker, style, content) -> dict[str, torch.Tensor]:
        """Every intermediate under the fixture's names (`am_<uid>_tiny.npz`), for stage-by-stage checks."""
        record: dict = {}
        with torch.no_grad():
            hidden, _, durations = self.front(token_ids, speaker, style, content, record)
            frames = frame_count(durations.numpy())
            record["mel"] = self.back(hidden, durations, torch.arange(frames, dtype=torch.float32), record)
        return record


# ---------------------------------------------------------------------------------------------------------------
# Vocoder


def _padding(kernel_size: int, dilation: int = 1) -> int:
    return (kernel_size * dilation - dilation) // 2


class ResBlock1(nn.Module):
    def __init__(self, channels: int, kernel_size: int, dilation):
        super().__init__()
        self.convs1 = nn.ModuleList(nn.Conv1d(channels, channels, kernel_size, 1, dilation=d,
                                              padding=_padding(kernel_size, d)) for d in dilation[:3])
        self.convs2 = nn.ModuleList(nn.Conv1d(channels, channels, kernel_size, 1, dilation=1,
                                              padding=_padding(kernel_size)) for _ in dilation[:3])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2):
            xt = c2(F.leaky_relu(c1(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
            x = xt + x
        return x


class ResBlock2(nn.Module):
    def __init__(self, channels: int, kernel_size: int, dilation):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(channels, channels, kernel_size, 1, dilation=d,
                                             padding=_padding(kernel_size, d)) for d in dilation[:2])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = conv(F.leaky_relu(x, LRELU_SLOPE)) + x
        return x


class HiFiGAN(nn.Module):
    """Upstream HiFi-GAN generator with plain (folded) weights: mel `(1, n_mels, F)` → wav `(1, 1, hop·F)`."""

    def __init__(self, model_config: dict):
        super().__init__()
        m = model_config
        if len(m["resblock_kernel_sizes"]) != len(m["resblock_dilation_sizes"]):
            raise CheckpointError("resblock_kernel_sizes and resblock_dilation_sizes differ in length")
        self.num_kernels = len(m["resblock_kernel_sizes"])
        self.upsample_rates = [int(u) for u in m["upsample_rates"]]
        self.kernel_sizes = [int(k) for k in m["upsample_kernel_sizes"]]
        self.resblock_kernel_sizes = [int(k) for k in m["resblock_kernel_sizes"]]
        self.resblock_dilation_sizes = [[int(x) for x in d] for d in m["resblock_dilation_sizes"]]
        self.initial_channel = int(m["initial_channel"])
        # as upstream: ResBlock1 only for the string "1" (yaml `resblock: 1`, an int, selects ResBlock2 there too)
        self.resblock = "1" if m["resblock"] == "1" else "2"
        block = ResBlock1 if self.resblock == "1" else ResBlock2
        base = int(m["upsample_initial_channel"])
        self.conv_pre = nn.Conv1d(self.initial_channel, base, EDGE_KERNEL, 1, padding=EDGE_KERNEL // 2)
        self.ups = nn.ModuleList(
            nn.ConvTranspose1d(base // (2 ** i), base // (2 ** (i + 1)), k, u, padding=(k - u) // 2)
            for i, (u, k) in enumerate(zip(self.upsample_rates, self.kernel_sizes))
        )
        self.resblocks = nn.ModuleList()
        channels = base
        for i in range(len(self.ups)):
            channels = base // (2 ** (i + 1))
            for k, d in zip(m["resblock_kernel_sizes"], m["resblock_dilation_sizes"]):
                self.resblocks.append(block(channels, int(k), [int(x) for x in d]))
        self.conv_post = nn.Conv1d(channels, 1, EDGE_KERNEL, 1, padding=EDGE_KERNEL // 2)
        self.eval()

    @property
    def hop(self) -> int:
        return int(np.prod(self.upsample_rates))

    @property
    def reach_frames(self) -> int:
        """Mel frames to each side that one frame moves the audio of, rounded up: the context a window of the mel
        needs for its kept samples to equal one whole call's (`vocoder_context_frames` in the manifest)."""
        return hifigan_reach_frames(self.resblock, self.resblock_kernel_sizes, self.resblock_dilation_sizes,
                                    self.upsample_rates, self.kernel_sizes)

    def check_reach(self) -> None:
        """Refuse to export a vocoder that reaches further than `reach_frames` (a configuration the calculation does
        not model): its windows would not give one whole call's samples. Measured on random mel frames with one
        thread (several may sum in another order on the two runs, and samples far away would seem to change)."""
        limit = self.reach_frames
        if limit > MAX_VOCODER_CONTEXT_FRAMES:  # before any graph is exported: the runtime's manifest check says why
            raise CheckpointError(f"the vocoder's receptive field reaches {limit} mel frames to each side (upstream's "
                                  f"reaches 15); the runtime's windows carry at most {MAX_VOCODER_CONTEXT_FRAMES} "
                                  "frames of context, so this configuration is not supported")
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with torch.no_grad():
                measured_reach_frames(lambda mel: self(torch.from_numpy(mel)).numpy(), self.initial_channel, 1, limit)
        except ValueError:
            raise CheckpointError(f"the vocoder reaches further than the {limit} mel frames worked out from its "
                                  "kernels, dilations and rates; this configuration is not supported") from None
        finally:
            torch.set_num_threads(threads)

    @property
    def exact_hop(self) -> bool:
        """Whether every transposed conv makes exactly `rate` samples per input sample (k − u even)."""
        return all((k - u) % 2 == 0 for u, k in zip(self.upsample_rates, self.kernel_sizes))

    def forward(self, x: torch.Tensor, record: dict | None = None) -> torch.Tensor:
        x = self.conv_pre(x)
        if record is not None:
            record["conv_pre_out"] = x
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            if record is not None:
                record[f"ups{i}_out"] = x
            xs = self.resblocks[i * self.num_kernels](x)
            for j in range(1, self.num_kernels):
                xs = xs + self.resblocks[i * self.num_kernels + j](x)
            x = xs / self.num_kernels
            if record is not None:
                record[f"stage{i}_out"] = x
        x = self.conv_post(F.leaky_relu(x))  # torch's default slope 0.01, as upstream
        if record is not None:
            record["conv_post_out"] = x
        return torch.tanh(x)


# ---------------------------------------------------------------------------------------------------------------
# Loading


def _expected(module: nn.Module, prefix: str = "") -> dict[str, tuple[int, ...]]:
    return {prefix + name: tuple(p.shape) for name, p in module.named_parameters()}


def _load(module: nn.Module, state: dict[str, np.ndarray], prefix: str) -> None:
    tensors = {name[len(prefix):]: torch.from_numpy(value.copy()) for name, value in state.items()
               if name.startswith(prefix)}
    result = module.load_state_dict(tensors, strict=False)
    params = set(dict(module.named_parameters()))
    missing = [k for k in result.missing_keys if k in params]
    if missing or result.unexpected_keys:  # check_state has vetted the keys already; this is a bug guard
        raise CheckpointError(f"internal: keys did not load ({(missing + list(result.unexpected_keys))[:4]})")


def build_am_and_vocoder(config: dict) -> tuple[AcousticModel, HiFiGAN]:
    try:
        return AcousticModel(config), HiFiGAN(config["model"])
    except (ValueError, TypeError, KeyError) as exc:
        raise CheckpointError(f"EmotiVoice config.yaml: cannot build the model ({exc})") from None


def load_am_and_vocoder(files: EmotiVoiceFiles, config: dict | None = None) -> tuple[AcousticModel, HiFiGAN]:
    """The g_* checkpoint into our AcousticModel and HiFiGAN (weight norm folded, keys and shapes checked before
    the model is built)."""
    config = load_config(files) if config is None else config
    planned_am, planned_vocoder = built_on_meta(lambda: build_am_and_vocoder(config), files.config_yaml, "EmotiVoice")
    expected = {**_expected(planned_am, "am."), **_expected(planned_vocoder, "generator.")}
    state = check_state(read_am_checkpoint(files.am_checkpoint), expected, files.am_checkpoint, AM_IGNORED)
    am, vocoder = build_am_and_vocoder(config)
    _load(am, state, "am.")
    _load(vocoder, state, "generator.")
    return am.eval(), vocoder.eval()


def load_style_bert(files: EmotiVoiceFiles, bert_config: dict | None = None,
                    attn_implementation: str = "sdpa") -> StyleBert:
    """The style checkpoint's `bert.*` into a BertModel built from the SimBERT config.json."""
    bert_config = load_bert_config(files.bert_dir) if bert_config is None else bert_config
    planned = built_on_meta(lambda: StyleBert(bert_config, attn_implementation), files.bert_dir / "config.json",
                            "SimBERT")
    expected = _expected(planned, "")
    state = check_state(read_style_checkpoint(files.style_checkpoint), expected, files.style_checkpoint,
                        STYLE_IGNORED)
    bert = StyleBert(bert_config, attn_implementation)
    _load(bert, state, "")
    return bert.eval()
