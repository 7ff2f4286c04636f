"""Our PyTorch re-implementation of EnCodec 24 kHz *decoding* (the `encodec` package, facebookresearch/encodec,
v0.1.1), MetaVoice-1B's waveform stage: codes → residual-VQ decode → SEANet decoder → 24 kHz audio.

Built from the package's plain state dict (`encodec_24khz-d7cc33bc.th` layout: `decoder.model.*` with weight-norm
`weight_g`/`weight_v`, `quantizer.vq.layers.N._codebook.embed`) and its constructor arguments
(`EncodecModel._get_model`: `SEANetDecoder(channels, norm='weight_norm', causal=True)` with every other SEANet
argument at its default, `ResidualVectorQuantizer(dimension, n_q, bins=1024)`). The encoder and the codebooks'
training statistics are not needed and are ignored.

* RVQ decode: the sum of one codebook row per codebook, in codebook order (upstream's order, so bit-exact).
* SEANet decoder: causal conv k7 (dimension → 2^len(ratios)·n_filters) → SLSTM (nn.LSTM over time, plus the input)
  → per ratio r: ELU, causal ConvTranspose1d (kernel 2r, stride r), residual block(s) (ELU, causal conv k3
  dilated, ELU, conv k1, plus a k1 conv shortcut — `true_skip` is False by default in `SEANetDecoder`) → ELU →
  causal conv k7 → 1 channel. Weight norm is folded once at load with torch's own `_weight_norm` (what
  upstream evaluates every forward call, so the weights are bit-identical).
* Causal padding as encodec's `SConv1d`: reflect padding of (k−1)·dilation on the left. Every decoder conv has
  stride 1, so encodec's "extra padding" (`get_extra_padding_for_conv1d`) is always 0. `pad1d` zero-extends an
  input no longer than the padding before reflecting; `reflect_pad_left` gets the same values without a
  length-dependent branch. `SConvTranspose1d` trims k − stride samples, ⌈(k − stride)·trim_right_ratio⌉ of them
  on the right (all of them for the default 1.0), so each upsampler gives exactly r·T samples: hop·frames in all.

Dynamic-length export and the LSTM: torch.onnx (2.13, dynamo) lowers `nn.LSTM` to an ONNX `LSTM` node but takes
the output shape from a trace that unrolls the recurrence, so the last layer's output Reshape is baked to the
example length (onnxruntime then fails at any other length; measured). While exporting (`torch.compiler.
is_exporting()`), `SLSTM` therefore runs the same cell equations through torch's `scan` higher-order op, which
exports as one ONNX `Scan` over time (onnxruntime and OpenVINO both run it at any length; agreement with
`nn.LSTM` ≤ 3e-7 on unit-scale inputs). Eager PyTorch keeps `nn.LSTM`, so the export's parity check compares the
two implementations. Fixed-length chunks with overlap were not needed: they would be approximate (the LSTM state
never fully forgets) and cost a host loop; the Scan costs ~0.03 s per second of audio at full width (512).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgevoice.bundle import TensorSpec
from edgevoice.errors import EdgevoiceError

from ..checkpoints import CheckpointError, built_on_meta, read_torch_archive
from ..graphs import GraphSpec, seeded_randint
from .checkpoints import check_weights

METAVOICE_CODEBOOKS = 8  # upstream inference.Model._num_encodec_codebooks: the 6 kbps subset of the 32

# `EncodecModel.encodec_model_24khz()`: `_get_model`'s arguments, then the SEANetDecoder defaults it leaves alone.
ENCODEC_24KHZ: dict[str, Any] = {
    "sample_rate": 24000, "channels": 1, "causal": True, "model_norm": "weight_norm", "audio_normalize": False,
    "segment": None, "target_bandwidths": [1.5, 3.0, 6.0, 12.0, 24.0], "n_filters": 32, "dimension": 128,
    "bins": 1024,
    "ratios": [8, 5, 4, 2], "n_residual_layers": 1, "kernel_size": 7, "last_kernel_size": 7,
    "residual_kernel_size": 3, "dilation_base": 2, "compress": 2, "lstm": 2, "true_skip": False,
    "pad_mode": "reflect", "trim_right_ratio": 1.0, "activation": "ELU", "activation_params": {"alpha": 1.0},
    "final_activation": None,
}
# Settings this implementation does not generalise over: other values are refused, not approximated.
_FIXED = ("channels", "causal", "model_norm", "audio_normalize", "segment", "pad_mode", "activation",
          "final_activation")
# Keys of the fixture's encodec_config.json beside "kwargs": derived values (cross-checked) and notes (ignored).
_DERIVED = ("n_q", "hop_length", "frame_rate")
_NOTES = ("constructor", "full_size_reference")
_IGNORED = re.compile(r"encoder\..*|quantizer\.vq\.layers\.\d+\._codebook\.(inited|cluster_size|embed_avg)")


# ---------------------------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class EncodecConfig:
    """The constructor arguments the decoder depends on (defaults: the released 24 kHz model)."""

    sample_rate: int = 24000
    dimension: int = 128
    n_filters: int = 32
    bins: int = 1024
    target_bandwidths: tuple[float, ...] = (1.5, 3.0, 6.0, 12.0, 24.0)
    ratios: tuple[int, ...] = (8, 5, 4, 2)
    n_residual_layers: int = 1
    kernel_size: int = 7
    last_kernel_size: int = 7
    residual_kernel_size: int = 3
    dilation_base: int = 2
    compress: int = 2
    lstm: int = 2
    true_skip: bool = False
    elu_alpha: float = 1.0
    trim_right_ratio: float = 1.0

    @property
    def hop_length(self) -> int:
        return math.prod(self.ratios)

    @property
    def frame_rate(self) -> int:
        return math.ceil(self.sample_rate / self.hop_length)

    @property
    def n_q(self) -> int:
        """Codebooks in the model: `_get_model`'s formula for the highest target bandwidth (kbps)."""
        return int(1000 * self.target_bandwidths[-1] // (self.frame_rate * 10))

    @property
    def width(self) -> int:
        """Channels after the first conv and through the SLSTM."""
        return 2 ** len(self.ratios) * self.n_filters


def _bad(key: str, value: Any, what: str) -> CheckpointError:
    return CheckpointError(f"EnCodec config: {key} = {value!r} is not {what}")


def _positive_int(kwargs: dict, key: str, minimum: int = 1) -> int:
    value = kwargs[key]
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value < 1 << 20:
        raise _bad(key, value, f"an integer ≥ {minimum}")
    return value


def _number(kwargs: dict, key: str, low: float, high: float) -> float:
    value = kwargs[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise _bad(key, value, f"a number in [{low:g}, {high:g}]")
    return float(value)


def _list(kwargs: dict, key: str, kind) -> tuple:
    value = kwargs[key]
    if not isinstance(value, (list, tuple)) or not value or len(value) > 16:
        raise _bad(key, value, "a non-empty list")
    return tuple(_positive_int({key: v}, key) if kind is int else _number({key: v}, key, 1e-3, 1e4) for v in value)


def _split(config: Mapping) -> tuple[dict, dict]:
    """(constructor kwargs, derived values) from either the fixture layout {"kwargs": {...}, "n_q": …} or a flat
    dict of constructor arguments."""
    if "kwargs" not in config:
        return ({k: v for k, v in config.items() if k not in _DERIVED},
                {k: v for k, v in config.items() if k in _DERIVED})
    unknown = sorted(set(config) - {"kwargs", *_DERIVED, *_NOTES})
    if unknown:
        raise CheckpointError(f"EnCodec config: unknown top-level key {unknown[0]!r}")
    if not isinstance(config["kwargs"], Mapping):
        raise CheckpointError("EnCodec config: 'kwargs' is not an object")
    return dict(config["kwargs"]), {k: config[k] for k in _DERIVED if k in config}


def encodec_config(config: Mapping | None = None) -> EncodecConfig:
    """Validated `EncodecConfig` from constructor arguments (None: `ENCODEC_24KHZ`); missing keys take the
    released model's values. Every problem is a one-line CheckpointError."""
    if config is None:
        config = ENCODEC_24KHZ
    if not isinstance(config, Mapping):
        raise CheckpointError(f"EnCodec config is a {type(config).__name__}, not an object")
    given, derived = _split(config)
    unknown = sorted(str(k) for k in set(given) - set(ENCODEC_24KHZ))
    if unknown:
        raise CheckpointError(f"EnCodec config: unknown setting {unknown[0]!r}")
    kwargs = {**ENCODEC_24KHZ, **given}
    for key in _FIXED:
        if kwargs[key] != ENCODEC_24KHZ[key]:
            raise CheckpointError(f"EnCodec config: {key} = {kwargs[key]!r} is not supported (only "
                                  f"{ENCODEC_24KHZ[key]!r}, as in the 24 kHz model)")
    params = kwargs["activation_params"]
    if not isinstance(params, Mapping) or set(params) != {"alpha"}:
        raise _bad("activation_params", params, "{'alpha': <number>}")
    if not isinstance(kwargs["true_skip"], bool):
        raise _bad("true_skip", kwargs["true_skip"], "true/false")
    parsed = EncodecConfig(
        sample_rate=_positive_int(kwargs, "sample_rate"), dimension=_positive_int(kwargs, "dimension"),
        n_filters=_positive_int(kwargs, "n_filters"), bins=_positive_int(kwargs, "bins"),
        target_bandwidths=_list(kwargs, "target_bandwidths", float), ratios=_list(kwargs, "ratios", int),
        n_residual_layers=_positive_int(kwargs, "n_residual_layers", 0),
        kernel_size=_positive_int(kwargs, "kernel_size"), last_kernel_size=_positive_int(kwargs, "last_kernel_size"),
        residual_kernel_size=_positive_int(kwargs, "residual_kernel_size"),
        dilation_base=_positive_int(kwargs, "dilation_base"), compress=_positive_int(kwargs, "compress"),
        lstm=_positive_int(kwargs, "lstm", 0), true_skip=kwargs["true_skip"],
        elu_alpha=_number(params, "alpha", 0.0, 100.0), trim_right_ratio=_number(kwargs, "trim_right_ratio", 0, 1),
    )
    _check_derived(parsed, derived)
    return parsed


def _check_derived(config: EncodecConfig, derived: dict) -> None:
    if config.n_filters // config.compress < 1:
        raise CheckpointError(f"EnCodec config: compress {config.compress} leaves no channels of n_filters "
                              f"{config.n_filters} in the residual blocks")
    if config.n_q < 1:
        raise CheckpointError(f"EnCodec config: target_bandwidths {list(config.target_bandwidths)} give no codebook "
                              f"at {config.frame_rate} frames/s")
    actual = {"n_q": config.n_q, "hop_length": config.hop_length, "frame_rate": config.frame_rate}
    for key, value in derived.items():
        if value != actual[key]:
            raise CheckpointError(f"EnCodec config: {key} = {value!r} does not follow from the constructor arguments "
                                  f"(they give {actual[key]})")


def read_encodec_config(path: str | Path | None) -> EncodecConfig:
    """`encodec_config.json` (None: the released 24 kHz model's arguments)."""
    if path is None:
        return encodec_config(None)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: cannot read the EnCodec config ({exc})") from None
    try:
        return encodec_config(data)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None


# ---------------------------------------------------------------------------------------------------------------
# Layers


def reflect_pad_left(x: torch.Tensor, pad: int) -> torch.Tensor:
    """encodec's `pad1d(x, (pad, 0), 'reflect')`: x[pad], …, x[1] in front of x, where samples past the end
    of a short input (length ≤ pad) read as zeros. Zero-extending by `pad` always is equivalent, so the exported
    graph needs no length-dependent branch."""
    if pad == 0:
        return x
    head = F.pad(x[..., : pad + 1], (0, pad))[..., 1: pad + 1]
    return torch.cat([head.flip(-1), x], dim=-1)


def padding_fact(config: EncodecConfig) -> dict:
    """`pad_exact_from_frames` for the manifest: the fewest code frames from which codes padded at the end leave
    every real sample unchanged (the runtime pads them to a few lengths on OpenVINO). No sample depends on a later
    code (causal convolutions, a one-way LSTM, transposed convolutions trimmed on the right only, i.e.
    `trim_right_ratio` 1; else no fact), except that each causal convolution reflects its input's start into its
    left padding, and an input no longer than that padding reflects its end too. Every convolution runs at the frame
    rate or faster, so the widest padding counted in frames bounds them all (7 for upstream's 24 kHz model)."""
    if config.trim_right_ratio != 1.0:
        return {}
    pads = [config.kernel_size - 1, config.last_kernel_size - 1] + [
        (config.residual_kernel_size - 1) * config.dilation_base ** j for j in range(config.n_residual_layers)]
    return {"pad_exact_from_frames": max(pads) + 1}


class CausalConv1d(nn.Module):
    """encodec's `SConv1d` with causal=True, stride 1 (all the decoder has)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, dilation=dilation)
        self.pad = (kernel_size - 1) * dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(reflect_pad_left(x, self.pad))


class CausalConvTranspose1d(nn.Module):
    """encodec's `SConvTranspose1d` with causal=True: kernel 2·stride, k − stride samples trimmed."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, trim_right_ratio: float):
        super().__init__()
        self.convtr = nn.ConvTranspose1d(in_channels, out_channels, 2 * stride, stride)
        total = stride  # kernel − stride
        self.trim_right = math.ceil(total * trim_right_ratio)
        self.trim_left = total - self.trim_right

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.convtr(x)
        return y[..., self.trim_left: y.shape[-1] - self.trim_right]


class ResnetBlock(nn.Module):
    """`SEANetResnetBlock` with kernel sizes [k, 1] and dilations [d, 1]."""

    def __init__(self, dim: int, kernel_size: int, dilation: int, config: EncodecConfig):
        super().__init__()
        hidden = dim // config.compress
        self.block = nn.Sequential(nn.ELU(config.elu_alpha), CausalConv1d(dim, hidden, kernel_size, dilation),
                                   nn.ELU(config.elu_alpha), CausalConv1d(hidden, dim, 1))
        self.shortcut = nn.Identity() if config.true_skip else CausalConv1d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.block(x)


def _scan_lstm_layer(x: torch.Tensor, w_ih, w_hh, b_ih, b_hh) -> torch.Tensor:
    """One nn.LSTM layer (gates i, f, g, o) over `x [T, B, C]` as a `scan`: exports to an ONNX Scan of any T."""
    from torch._higher_order_ops.scan import scan

    inputs = F.linear(x, w_ih, b_ih)  # every step's input projection at once
    h0 = x.new_zeros(x.shape[1], w_hh.shape[1])

    def step(carry, gates_x):
        h, c = carry
        i, f, g, o = (gates_x + F.linear(h, w_hh, b_hh)).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return (h, c), h.clone()  # a scan output may not alias its carry

    _, out = scan(step, (h0, h0.clone()), inputs)
    return out


class SLSTM(nn.Module):
    """encodec's `SLSTM`: an nn.LSTM over time on `(B, C, T)` features, plus the input (skip)."""

    def __init__(self, dim: int, layers: int):
        super().__init__()
        self.lstm = nn.LSTM(dim, dim, layers)

    def forward(self, x: torch.Tensor, scan: bool = False) -> torch.Tensor:
        """`scan=True` (always while exporting) runs our Scan formulation instead of nn.LSTM's kernel."""
        x = x.permute(2, 0, 1)
        if scan or torch.compiler.is_exporting():
            y = x
            for layer in range(self.lstm.num_layers):
                y = _scan_lstm_layer(y, *(getattr(self.lstm, f"{name}_l{layer}")
                                          for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")))
        else:
            y, _ = self.lstm(x)
        return (y + x).permute(1, 2, 0)


class SEANetDecoder(nn.Module):
    """latent `(B, dimension, T)` → audio `(B, 1, hop·T)`. Layer indices follow upstream's `decoder.model`."""

    def __init__(self, config: EncodecConfig):
        super().__init__()
        c = config
        width = c.width
        layers: list[nn.Module] = [CausalConv1d(c.dimension, width, c.kernel_size)]
        if c.lstm:
            layers.append(SLSTM(width, c.lstm))
        self.lstm_index = len(layers) - 1
        for ratio in c.ratios:
            layers += [nn.ELU(c.elu_alpha), CausalConvTranspose1d(width, width // 2, ratio, c.trim_right_ratio)]
            layers += [ResnetBlock(width // 2, c.residual_kernel_size, c.dilation_base ** j, c)
                       for j in range(c.n_residual_layers)]
            width //= 2
        layers += [nn.ELU(c.elu_alpha), CausalConv1d(c.n_filters, 1, c.last_kernel_size)]
        self.model = nn.Sequential(*layers)

    def forward(self, latent: torch.Tensor, record: dict | None = None) -> torch.Tensor:
        x = latent
        for index, layer in enumerate(self.model):
            x = layer(x)
            if record is not None and index == self.lstm_index:
                record["after_lstm"] = x
        return x


def dequantize(codebooks: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Residual VQ decode: codes `(B, n, T)` → latent `(B, dimension, T)`, summed in codebook order."""
    latent = F.embedding(codes[:, 0], codebooks[0])
    for i in range(1, codes.shape[1]):
        latent = latent + F.embedding(codes[:, i], codebooks[i])
    return latent.transpose(1, 2)


# ---------------------------------------------------------------------------------------------------------------
# The model


def _upstream_key(name: str) -> str:
    """Our parameter name → the encodec package's (its NormConv wrappers nest `conv.conv` / `convtr.convtr`)."""
    return re.sub(r"\.(conv|convtr)\.", r".\1.\1.", "decoder." + name)


def _codebook_key(index: int) -> str:
    return f"quantizer.vq.layers.{index}._codebook.embed"


class EncodecDecoder(nn.Module):
    """codes `[B, n, T]` (the first n ≤ n_q codebooks, values < bins) → 24 kHz waveform `[B, hop·T]`."""

    def __init__(self, config: EncodecConfig):
        super().__init__()
        self.config = config
        self.register_buffer("codebooks", torch.zeros(config.n_q, config.bins, config.dimension))
        self.decoder = SEANetDecoder(config)
        self.eval()

    @classmethod
    def from_state_dict(cls, weights: Mapping[str, np.ndarray], config: EncodecConfig | Mapping | None = None,
                        source: str | Path = "EnCodec state dict") -> "EncodecDecoder":
        """The encodec package's state dict (numpy arrays, e.g. from `read_torch_archive`) → decoder, every key
        and shape checked against `config` (an EncodecConfig, constructor arguments, or None: ENCODEC_24KHZ)."""
        config = config if isinstance(config, EncodecConfig) else encodec_config(config)
        if not isinstance(weights, Mapping) or not all(isinstance(k, str) for k in weights):
            raise CheckpointError(f"{source}: not a state dict (a mapping of names to tensors)")
        if not any(k.startswith("decoder.model.") for k in weights):
            raise CheckpointError(f"{source}: not an EnCodec state dict (no decoder.model.* weights)")
        _count_codebooks(weights, config, source)
        ignored = tuple(k for k in weights if _IGNORED.fullmatch(k))
        # names and shapes from a decoder built on torch's meta device: a config's sizes (e.g. n_filters 1024) ask
        # for gigabytes that the real decoder would allocate before its first shape check
        planned = built_on_meta(lambda: cls(config), Path(source), "EnCodec").upstream_shapes()
        state = check_weights(dict(weights), planned, Path(source), ignored)
        model = cls(config)
        model.load_state_dict(_our_state(model, state), strict=True)
        return model.eval()

    def upstream_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every tensor the decoder reads, by its name in the encodec package's state dict, with its shape."""
        shapes = {_codebook_key(i): (self.config.bins, self.config.dimension) for i in range(self.config.n_q)}
        for name, param in self.decoder.named_parameters():
            key = _upstream_key(name)
            if key.endswith(".weight") and param.dim() == 3:  # a conv: weight norm over all axes but 0
                shapes[key + "_g"] = (param.shape[0], 1, 1)
                shapes[key + "_v"] = tuple(param.shape)
            else:
                shapes[key] = tuple(param.shape)
        return shapes

    def upstream_state_dict(self) -> dict[str, np.ndarray]:
        """Our weights in the encodec package's layout (g = ‖w‖, v = w): for random test models and round trips."""
        state = {_codebook_key(i): book.numpy().copy() for i, book in enumerate(self.codebooks)}
        for name, param in self.decoder.named_parameters():
            key, value = _upstream_key(name), param.detach().numpy().copy()
            if key.endswith(".weight") and param.dim() == 3:
                state[key + "_g"] = np.sqrt((value.astype(np.float64) ** 2).sum(axis=(1, 2), keepdims=True)
                                            ).astype(np.float32)
                state[key + "_v"] = value
            else:
                state[key] = value
        return state

    def _check_codes(self, codes: torch.Tensor) -> None:
        if codes.dim() != 3 or not 1 <= codes.shape[1] <= self.config.n_q or codes.dtype != torch.int64:
            raise EdgevoiceError(f"EnCodec codes must be int64 [batch, 1..{self.config.n_q}, frames], got "
                                 f"{codes.dtype} {list(codes.shape)}")

    def dequantize(self, codes: torch.Tensor) -> torch.Tensor:
        self._check_codes(codes)
        return dequantize(self.codebooks, codes)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.dequantize(codes))[:, 0]

    def stages(self, codes: torch.Tensor) -> dict[str, torch.Tensor]:
        """latent `(B, D, T)`, after_lstm `(B, width, T)` and wav `(B, 1, hop·T)`, as upstream's modules see them."""
        record = {"latent": self.dequantize(codes)}
        record["wav"] = self.decoder(record["latent"], record)
        return record


def _count_codebooks(weights: Mapping, config: EncodecConfig, source) -> None:
    found = sum(1 for k in weights if re.fullmatch(r"quantizer\.vq\.layers\.\d+\._codebook\.embed", k))
    if found != config.n_q:
        raise CheckpointError(f"{source}: {found} codebooks, the configuration (target_bandwidths "
                              f"{list(config.target_bandwidths)}) implies {config.n_q}")


def _our_state(model: EncodecDecoder, state: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Checked upstream tensors → our state dict, weight norm folded as torch's `weight_norm` computes it."""
    ours = {"codebooks": torch.tensor(np.stack([state[_codebook_key(i)] for i in range(model.config.n_q)]))}
    for name, param in model.decoder.named_parameters():
        key = _upstream_key(name)
        if key + "_v" in state:
            v, g = torch.tensor(state[key + "_v"]), torch.tensor(state[key + "_g"])
            ours["decoder." + name] = torch._weight_norm(v, g, 0)
        else:
            ours["decoder." + name] = torch.tensor(state[key])
    return ours


def load_encodec(path: str | Path, config: EncodecConfig | Mapping | None = None) -> EncodecDecoder:
    """An `encodec_24khz*.th` state dict, read with the restricted unpickler (no code runs), → EncodecDecoder."""
    return EncodecDecoder.from_state_dict(read_torch_archive(Path(path)), config, source=path)


# ---------------------------------------------------------------------------------------------------------------
# Export


class EncodecGraph(nn.Module):
    """codes `[1, n, frames]` → wav `[1, hop·frames]`; holds only the n codebooks it reads."""

    def __init__(self, decoder: EncodecDecoder, codebooks: int):
        super().__init__()
        self.register_buffer("codebooks", decoder.codebooks[:codebooks].clone())
        self.decoder = decoder.decoder

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.decoder(dequantize(self.codebooks, codes))[:, 0]


def encodec_graph(decoder: EncodecDecoder, codebooks: int | None = None) -> GraphSpec:
    """The `encodec_decode` graph for the first `codebooks` codebooks (default: MetaVoice's 8, or all if fewer).
    Examples cover 1 (shorter than every causal padding), 4 and longer lengths."""
    config = decoder.config
    n = min(METAVOICE_CODEBOOKS, config.n_q) if codebooks is None else codebooks
    if not 1 <= n <= config.n_q:
        raise EdgevoiceError(f"the EnCodec model has {config.n_q} codebooks, cannot decode with {n}")

    def example(frames, seed):
        return (seeded_randint(config.bins, 1, n, frames, seed=seed),)

    return GraphSpec(
        "encodec_decode", EncodecGraph(decoder, n).eval(),
        [TensorSpec("codes", "int64", [1, n, "frames"])],
        [TensorSpec("wav", "float32", [1, f"{config.hop_length}*frames"])],
        [example(150, 51), example(37, 52), example(75, 53), example(4, 54), example(1, 55)],
    )
