"""GPT-SoVITS v2 SoVITS ("s2", `SynthesizerTrn`) re-implemented from the spec (§4) for inference and export.

`SoVITS(config)` builds the model from a checkpoint's `config` (sections `model` and `data`) alone; its
`state_dict()` has exactly the keys upstream saves (weight-norm `weight_g`/`weight_v` pairs, quantizer
buffers, no `enc_q`). Entry points, batch B (1 in practice), sequences full length unless `decode` is told how
many tokens and phones are real (then every layer masks the rest, as upstream's length masks do, and the vocoder
too, which upstream never pads):

* `extract_latent(ssl [B,768,T_h]) -> codes [1,B,T_h//2]` (HuBERT features → semantic tokens);
* `reference_embedding(refer_spec [B,1025,F], sv [B,20480] for v2Pro/Plus) -> ge [B,gin,1]`;
* `decode(codes [1,B,T], text [B,N], ge [B,gin,1], noise [B,192,F]) -> audio [B,1,hop·F]` with
  `noise` already multiplied by the noise scale (zeros = noise scale 0); its length sets the speech rate:
  F = 2T at speed 1, upstream's `int(2T / speed) + 1` otherwise (`edgevoice.gpt_sovits.options.stretched_frames`).
  `forward` is `decode`;
* `decode_intermediates(...)` returns every intermediate the fixtures record.

Call `fold_weight_norm()` before exporting: it swaps the weight-normed convs for plain ones.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ...checkpoints import CheckpointError, config_ints, planned_shapes, require_shapes
from ...hifigan import hifigan_reach_frames
from ..checkpoints import SUPPORTED_VERSIONS, Checkpoint
from .sovits_layers import (RESBLOCKS, Flow, Generator, MelStyleEncoder, MultiHeadAttention, RelPosEncoder,
                            fold_weight_norm, masked)

# Sizes upstream hard-codes rather than reading from the config.
SSL_DIM = 768                 # HuBERT feature width
CODEBOOK_SIZE = 1024          # semantic vocabulary (one codebook)
MRTE_CHANNELS, MRTE_HEADS = 512, 4
REL_WINDOW = 4                # relative-position window of the text encoder's attention
FLOW_KERNEL, FLOW_DILATION, FLOW_WN_LAYERS, FLOW_COUPLINGS = 5, 1, 4, 4
V2_REF_BINS = 704             # v2 reference encoder sees spectrogram bins [0, 704)
PHONE_SYMBOLS = {"v1": 322, "v2": 732, "v2Pro": 732, "v2ProPlus": 732}  # rows of `enc_p.text_embedding`
PRO_VERSIONS = ("v2Pro", "v2ProPlus")  # add a speaker-verification embedding to `ge`
SV_DIM = 20480                # upstream's `sv_emb` input: ERes2NetV2's 2048 channels × 10 frequency rows
# the config's whole numbers the model is built from (checked before it is: `from_checkpoint`)
CONFIG_SIZES = ("inter_channels", "hidden_channels", "filter_channels", "n_heads", "n_layers", "kernel_size",
                "upsample_initial_channel", "gin_channels", "upsample_rates", "upsample_kernel_sizes",
                "resblock_kernel_sizes", "resblock_dilation_sizes")
CONFIG_COUNTS = ("n_heads", "n_layers")
DATA_SIZES = ("filter_length", "hop_length", "win_length", "sampling_rate")
SAMPLING_RATES = (8000, 192_000)  # the audio rates a SoVITS config may give its output


def length_mask(valid: torch.Tensor, length: int) -> torch.Tensor:
    """[B, 1, length] float: 1 at positions below `valid` ([B] or a scalar), 0 after."""
    positions = torch.arange(length, device=valid.device)
    return (positions[None, None, :] < valid.reshape(-1, 1, 1)).to(torch.float32)


class SoVITSConfigError(CheckpointError):
    """A config (or weight set) this implementation cannot build or load."""


class MRTE(nn.Module):
    """Cross-attention from SSL frames (queries) to phones (keys/values), plus the frames and `ge`."""

    def __init__(self, content_channels: int, hidden: int = MRTE_CHANNELS, n_heads: int = MRTE_HEADS):
        super().__init__()
        self.cross_attention = MultiHeadAttention(hidden, hidden, n_heads)
        self.c_pre = nn.Conv1d(content_channels, hidden, 1)
        self.text_pre = nn.Conv1d(content_channels, hidden, 1)
        self.c_post = nn.Conv1d(hidden, content_channels, 1)

    def forward(self, ssl: torch.Tensor, text: torch.Tensor, ge: torch.Tensor, ssl_mask: torch.Tensor | None = None,
                text_mask: torch.Tensor | None = None) -> torch.Tensor:
        c = self.c_pre(masked(ssl, ssl_mask))
        x = self.cross_attention(masked(c, ssl_mask), masked(self.text_pre(masked(text, text_mask)), text_mask),
                                 text_mask) + c + ge
        return self.c_post(masked(x, ssl_mask))


class TextEncoder(nn.Module):
    """`enc_p`: SSL branch + phone branch → MRTE → encoder2 → (m_p, logs_p)."""

    def __init__(self, out_channels: int, hidden_channels: int, filter_channels: int, n_heads: int, n_layers: int,
                 kernel_size: int, n_symbols: int):
        super().__init__()
        self.out_channels = out_channels
        self.ssl_proj = nn.Conv1d(SSL_DIM, hidden_channels, 1)
        encoder = (hidden_channels, filter_channels, n_heads)
        self.encoder_ssl = RelPosEncoder(*encoder, n_layers // 2, kernel_size, REL_WINDOW)
        self.encoder_text = RelPosEncoder(*encoder, n_layers, kernel_size, REL_WINDOW)
        self.text_embedding = nn.Embedding(n_symbols, hidden_channels)
        self.mrte = MRTE(hidden_channels)
        self.encoder2 = RelPosEncoder(*encoder, n_layers // 2, kernel_size, REL_WINDOW)
        self.proj = nn.Conv1d(hidden_channels, 2 * out_channels, 1)

    def forward(self, features: torch.Tensor, text: torch.Tensor, ge: torch.Tensor, frames,
                frame_mask: torch.Tensor | None = None, text_mask: torch.Tensor | None = None):
        """Masks [B, 1, T] (1 = real, 0 = padding; None = nothing padded) keep padded frames and phones out of
        every real position, as upstream's length masks do."""
        y = self.encoder_ssl(masked(self.ssl_proj(masked(features, frame_mask)), frame_mask), frame_mask)
        t = self.encoder_text(self.text_embedding(text).transpose(1, 2), text_mask)  # no √d scaling
        y = self.encoder2(self.mrte(y, t, ge, frame_mask, text_mask), frame_mask)
        # Speech rate: upstream stretches the 50 Hz features to int(2T / speed) + 1 frames (linear, half-pixel)
        # when speed != 1. Resizing to the frame count the noise carries is exactly the identity at speed 1
        # (weights 1 and 0), so one graph serves every speed and speed 1 stays bit-identical to upstream.
        y = F.interpolate(y, size=frames, mode="linear")
        stats = self.proj(y)  # upstream masks it: the caller does (the mask must be stretched like y)
        return y, stats[:, : self.out_channels], stats[:, self.out_channels:]


class Codebook(nn.Module):
    """Upstream's EuclideanCodebook buffers; only `embed` is used at inference (the rest are EMA state)."""

    def __init__(self, size: int, dim: int):
        super().__init__()
        embed = nn.init.kaiming_uniform_(torch.empty(size, dim))
        self.register_buffer("inited", torch.ones(1))  # non-zero: upstream would otherwise run k-means
        self.register_buffer("cluster_size", torch.zeros(size))
        self.register_buffer("embed", embed)
        self.register_buffer("embed_avg", embed.clone())

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Nearest row of `embed` by squared distance, `x` [..., dim] → ids [...] (upstream's formula)."""
        flat = x.reshape(-1, x.shape[-1])
        dist = -(flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.embed.t()
                 + self.embed.pow(2).sum(1, keepdim=True).t())
        return torch.argmax(dist, dim=-1).reshape(x.shape[:-1])


class _QuantizerLayer(nn.Module):
    def __init__(self, size: int, dim: int):
        super().__init__()
        self._codebook = Codebook(size, dim)


class _ResidualVQ(nn.Module):
    def __init__(self, size: int, dim: int):
        super().__init__()
        self.layers = nn.ModuleList([_QuantizerLayer(size, dim)])


class Quantizer(nn.Module):
    """One-codebook residual VQ (key path `quantizer.vq.layers.0._codebook.*`)."""

    def __init__(self, size: int = CODEBOOK_SIZE, dim: int = SSL_DIM):
        super().__init__()
        self.vq = _ResidualVQ(size, dim)

    @property
    def codebook(self) -> Codebook:
        return self.vq.layers[0]._codebook

    def encode(self, x: torch.Tensor) -> torch.Tensor:  # [B, dim, T] -> [1, B, T]
        return self.codebook.encode(x.transpose(1, 2)).unsqueeze(0)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:  # [1, B, T] -> [B, dim, T]
        return F.embedding(codes[0], self.codebook.embed).transpose(1, 2)


class SoVITS(nn.Module):
    """The v1/v2/v2Pro/v2ProPlus SoVITS generator path, built from `config["model"]` / `config["data"]` (and, for
    Pro, the width of the speaker embedding, which the file's `sv_emb` weight gives)."""

    def __init__(self, config: dict, sv_dim: int = SV_DIM):
        super().__init__()
        model, data = config["model"], config["data"]
        self.version = str(model.get("version", "v2"))
        if self.version not in SUPPORTED_VERSIONS:
            raise SoVITSConfigError(f"SoVITS version {self.version!r} is not supported (supported: {SUPPORTED_VERSIONS})")
        if model.get("semantic_frame_rate", "25hz") != "25hz":
            raise SoVITSConfigError(f"semantic_frame_rate {model['semantic_frame_rate']!r}: only '25hz' exists")
        spec_channels = data["filter_length"] // 2 + 1
        self.spec_channels = spec_channels
        self.phone_vocab_size = PHONE_SYMBOLS.get(self.version, 0)
        # 25 Hz tokens are upsampled ×2 to 50 Hz frames, each frame becomes `hop_length` samples.
        self.samples_per_token = 2 * int(data["hop_length"])
        self.hop_length = int(data["hop_length"])
        self.inter_channels = int(model["inter_channels"])
        gin = int(model["gin_channels"])
        self.pro = self.version in PRO_VERSIONS
        if gin != MRTE_CHANNELS and not self.pro:
            # v1/v2 add `ge` straight onto MRTE's 512-wide features (upstream would fail the same way).
            raise SoVITSConfigError(f"gin_channels {gin}: GPT-SoVITS {self.version} needs {MRTE_CHANNELS}")
        self.gin_channels = gin
        self.ref_bins = spec_channels if self.version == "v1" else V2_REF_BINS
        if str(model["resblock"]) not in RESBLOCKS:
            raise SoVITSConfigError(f"resblock type {model['resblock']!r} does not exist (upstream has '1' and '2')")
        if int(np.prod(model["upsample_rates"])) != self.hop_length:
            raise SoVITSConfigError(f"upsample_rates {model['upsample_rates']} do not multiply to hop_length "
                                    f"{self.hop_length}")

        self.enc_p = TextEncoder(self.inter_channels, model["hidden_channels"], model["filter_channels"],
                                 model["n_heads"], model["n_layers"], model["kernel_size"],
                                 PHONE_SYMBOLS[self.version])
        self.dec = Generator(self.inter_channels, model["upsample_initial_channel"], model["resblock"],
                             model["resblock_kernel_sizes"], model["resblock_dilation_sizes"],
                             model["upsample_rates"], model["upsample_kernel_sizes"], gin)
        self.vocoder_context_frames = hifigan_reach_frames(
            model["resblock"], model["resblock_kernel_sizes"], model["resblock_dilation_sizes"],
            model["upsample_rates"], model["upsample_kernel_sizes"])
        self.flow = Flow(self.inter_channels, model["hidden_channels"], FLOW_KERNEL, FLOW_DILATION,
                         FLOW_WN_LAYERS, FLOW_COUPLINGS, gin)
        self.ref_enc = MelStyleEncoder(self.ref_bins, gin)
        self.ssl_proj = nn.Conv1d(SSL_DIM, SSL_DIM, 2, stride=2)
        if self.pro:
            # ge = PReLU(ref_enc(spec) + sv_emb(sv)); MRTE gets ge_to512(ge), flow and vocoder the full ge
            self.sv_dim = sv_dim
            self.sv_emb = nn.Linear(sv_dim, gin)
            self.ge_to512 = nn.Linear(gin, MRTE_CHANNELS)
            self.prelu = nn.PReLU(num_parameters=gin)
        self.quantizer = Quantizer()
        self.eval()

    # -- loading ---------------------------------------------------------------------------------------------

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint) -> "SoVITS":
        """Build from the checkpoint's config and load its weights strictly (fp16 values computed in fp32)."""
        sv = checkpoint.weights.get("sv_emb.weight")
        sv_dim = SV_DIM if sv is None or sv.ndim != 2 else int(sv.shape[1])
        config = checkpoint.config
        config_ints(config.get("model"), CONFIG_SIZES, checkpoint.path, "SoVITS", counts=CONFIG_COUNTS)
        config_ints(config.get("data"), DATA_SIZES, checkpoint.path, "SoVITS data")
        data = config["data"]
        if not SAMPLING_RATES[0] <= data["sampling_rate"] <= SAMPLING_RATES[1]:  # audio at 1 Hz would be exported
            raise SoVITSConfigError(f"{checkpoint.path}: SoVITS data sampling_rate {data['sampling_rate']} Hz is no "
                                    f"audio rate ({SAMPLING_RATES[0]}–{SAMPLING_RATES[1]} Hz; upstream's are 32000 "
                                    "and 48000)")
        if not data["hop_length"] <= data.get("win_length", data["filter_length"]) <= data["filter_length"]:
            # no weight's shape depends on them, and the runtime refuses a bundle whose STFT they cannot make
            raise SoVITSConfigError(f"{checkpoint.path}: SoVITS data hop_length {data['hop_length']}, win_length "
                                    f"{data.get('win_length')} and filter_length {data['filter_length']} are not one "
                                    "STFT's sizes (hop ≤ window ≤ FFT)")
        require_shapes(planned_shapes(lambda: cls(config, sv_dim), checkpoint.path, "SoVITS"), checkpoint.weights,
                       checkpoint.path, "SoVITS")
        model = cls(config, sv_dim)
        model.load_weights(checkpoint.float32())
        return model

    def load_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Copy numpy weights in; every key must match (no missing, no unexpected, same shapes)."""
        expected = self.state_dict()
        missing = sorted(set(expected) - set(weights))
        unexpected = sorted(set(weights) - set(expected))
        if missing or unexpected:
            raise SoVITSConfigError(
                f"SoVITS weights do not match the config: {len(missing)} missing {missing[:5]}, "
                f"{len(unexpected)} unexpected {unexpected[:5]}")
        wrong = [f"{k}: {tuple(np.shape(weights[k]))} vs {tuple(v.shape)}" for k, v in expected.items()
                 if tuple(np.shape(weights[k])) != tuple(v.shape)]
        if wrong:
            raise SoVITSConfigError(f"SoVITS weights have wrong shapes for this config: {wrong[:5]}")
        state = {k: torch.from_numpy(np.ascontiguousarray(weights[k], dtype=np.float32)) for k in expected}
        self.load_state_dict(state, strict=True)
        if float(self.quantizer.codebook.inited[0]) == 0.0:
            raise SoVITSConfigError("quantizer codebook is not initialised (inited = 0): not a trained checkpoint")

    @torch.no_grad()
    def randomize_for_testing(self) -> "SoVITS":
        """Give the parts upstream initialises to constants random values, as training would.

        Upstream zero-initialises each flow coupling's `post` conv (the flow starts as the identity) and fills the
        codebook by k-means on the first batch; random-weight test models should exercise both for real.
        """
        for module in self.flow.modules():
            post = getattr(module, "post", None)
            if isinstance(post, nn.Conv1d):
                post.reset_parameters()
        codebook = self.quantizer.codebook
        codebook.embed.copy_(nn.init.kaiming_uniform_(torch.empty_like(codebook.embed)))
        codebook.embed_avg.copy_(codebook.embed)
        codebook.inited.fill_(1)
        return self

    def fold_weight_norm(self) -> "SoVITS":
        """Replace weight-normed convs by plain convs with `W = g·v/‖v‖` (in place; for export)."""
        fold_weight_norm(self)
        return self

    # -- inference -------------------------------------------------------------------------------------------

    def extract_latent(self, ssl: torch.Tensor) -> torch.Tensor:
        """HuBERT features `[B,768,T_h]` → semantic codes `[1,B,T_h//2]` (int64)."""
        return self.quantizer.encode(self.ssl_proj(ssl))

    def reference_embedding(self, refer_spec: torch.Tensor, sv: torch.Tensor | None = None) -> torch.Tensor:
        """Linear spectrogram `[B,1025,F]` (+ for v2Pro/Plus the speaker embedding `[B, 20480]`) → `ge` `[B,gin,1]`
        (v1 reads every bin, later versions bins [:704])."""
        ge = self.ref_enc(refer_spec[:, : self.ref_bins])
        if self.pro:
            if sv is None:
                raise ValueError(f"SoVITS {self.version} needs the speaker-verification embedding")
            ge = self.prelu(ge + self.sv_emb(sv).unsqueeze(-1))
        return ge

    def decode_intermediates(self, codes: torch.Tensor, text: torch.Tensor, ge: torch.Tensor,
                             noise: torch.Tensor, valid: tuple[torch.Tensor, torch.Tensor] | None = None
                             ) -> dict[str, torch.Tensor]:
        """`decode` returning every stage: quantized_upsampled, enc_p_x, m_p, logs_p, z_p, z, dec_in, o.
        `valid` (tokens, phones), each `[B]`: how many leading tokens and phones are real, the rest padding
        (speed 1 only: 2 frames per token); the samples of the real tokens then equal an unpadded decode's."""
        stages, out_mask = self._latent_stages(codes, text, ge, noise, valid)
        return dict(stages, dec_in=stages["z"], o=self.dec(stages["z"], ge, out_mask))

    def _latent_stages(self, codes, text, ge, noise, valid) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """Every stage up to the vocoder's input `z`, and the frame mask (None: nothing padded)."""
        quantized = self.quantizer.decode(codes)
        # 25 Hz → 50 Hz nearest-neighbour: repeat every frame twice
        upsampled = quantized.unsqueeze(-1).expand(*quantized.shape, 2).flatten(2)
        ge_mrte = self.ge_to512(ge.transpose(1, 2)).transpose(1, 2) if self.pro else ge
        frame_mask = text_mask = out_mask = None
        if valid is not None:
            frame_mask = length_mask(2 * valid[0], upsampled.shape[-1])
            text_mask = length_mask(valid[1], text.shape[-1])
            # stretched with the frames at speeds other than 1, as upstream's y_mask (identity at speed 1)
            out_mask = F.interpolate(frame_mask, size=noise.shape[-1], mode="nearest")
        enc_x, m_p, logs_p = self.enc_p(upsampled, text, ge_mrte, noise.shape[-1], frame_mask, text_mask)
        m_p, logs_p = masked(m_p, out_mask), masked(logs_p, out_mask)
        z_p = m_p + noise * torch.exp(logs_p)
        z = masked(self.flow.inverse(z_p, ge, out_mask), out_mask)
        return {"ge": ge, "quantized_upsampled": upsampled, "enc_p_x": enc_x, "m_p": m_p, "logs_p": logs_p,
                "z_p": z_p, "z": z}, out_mask

    def latent(self, codes: torch.Tensor, text: torch.Tensor, ge: torch.Tensor, noise: torch.Tensor,
               valid: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """The vocoder's input `z` `[B,192,F]` (zero past the real frames); arguments as `decode`."""
        return self._latent_stages(codes, text, ge, noise, valid)[0]["z"]

    def vocode(self, z: torch.Tensor, ge: torch.Tensor, valid_frames: torch.Tensor | None = None) -> torch.Tensor:
        """The vocoder alone: `z` `[B,192,F]` → audio `[B,1,hop·F]`. With `valid_frames` `[B]`, frames past them are
        padding and the real samples equal a decode of the real frames alone. The vocoder only sees a few frames
        to each side, so a window of `z` with enough context decodes to the same samples as the whole (chunking.py)."""
        mask = None if valid_frames is None else length_mask(valid_frames, z.shape[-1])
        return self.dec(masked(z, mask), ge, mask)

    def decode(self, codes: torch.Tensor, text: torch.Tensor, ge: torch.Tensor,
               noise: torch.Tensor, valid: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """codes `[1,B,T]`, phone ids `[B,N]`, ge `[B,gin,1]`, scaled noise `[B,192,F]` → audio `[B,1,hop·F]`;
        `valid`: see `decode_intermediates`."""
        return self.decode_intermediates(codes, text, ge, noise, valid)["o"]

    forward = decode
