"""Building blocks of the SoVITS (s2) decoder, written from the spec (§4.3–§4.6) for inference and export.

Module and parameter names reproduce upstream's saved state-dict keys exactly, so the same classes load
upstream checkpoints and write random-weight ones. Everything runs at full length (no padding masks): at
batch 1 upstream's masks are all ones, and a batch here must consist of equally long sequences.

Export notes: shapes stay symbolic (sizes come from `x.shape`, never from tensor values) and the
relative-position attention uses gathers with index tensors built from `arange(T)`, which works for any T ≥ 1.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ...hifigan import EDGE_KERNEL as GENERATOR_EDGE_KERNEL

LRELU_SLOPE = 0.1  # HiFi-GAN / ResBlock slope; the generator's final activation uses torch's default 0.01


# ---------------------------------------------------------------------------------------------------------------
# Weight-normalised convolutions (upstream's old `torch.nn.utils.weight_norm`, dim 0)


class WeightNormConv1d(nn.Module):
    """Conv1d / ConvTranspose1d with `weight = g · v / ‖v‖` (norm over all axes but 0).

    Parameters are registered as `bias`, `weight_g`, `weight_v` — the order upstream's checkpoints list them.
    For a transposed conv `weight_v` is `[C_in, C_out, k]`, so axis 0 (and `weight_g`) is the input channel.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 dilation: int = 1, transposed: bool = False, init_std: float | None = None):
        super().__init__()
        self.stride, self.padding, self.dilation, self.transposed = stride, padding, dilation, transposed
        shape = (in_channels, out_channels, kernel_size) if transposed else (out_channels, in_channels, kernel_size)
        v = torch.empty(shape)
        if init_std is None:
            nn.init.kaiming_uniform_(v, a=math.sqrt(5))
        else:
            nn.init.normal_(v, 0.0, init_std)
        bound = 1.0 / math.sqrt(in_channels * kernel_size)
        self.bias = nn.Parameter(torch.empty(out_channels).uniform_(-bound, bound))
        self.weight_g = nn.Parameter(self._norm(v))
        self.weight_v = nn.Parameter(v)

    @staticmethod
    def _norm(v: torch.Tensor) -> torch.Tensor:
        return torch.linalg.vector_norm(v, dim=tuple(range(1, v.dim())), keepdim=True)

    def weight(self) -> torch.Tensor:
        # same association as torch's `_weight_norm`: v * (g / ‖v‖)
        return self.weight_v * (self.weight_g / self._norm(self.weight_v))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.transposed:
            return F.conv_transpose1d(x, self.weight(), self.bias, self.stride, self.padding)
        return F.conv1d(x, self.weight(), self.bias, self.stride, self.padding, self.dilation)

    def folded(self) -> nn.Module:
        """A plain conv with the effective weight (for export); numerically identical to this module."""
        weight = self.weight().detach()
        if self.transposed:
            conv = nn.ConvTranspose1d(weight.shape[0], weight.shape[1], weight.shape[2], self.stride, self.padding)
        else:
            conv = nn.Conv1d(weight.shape[1], weight.shape[0], weight.shape[2], self.stride, self.padding,
                             self.dilation)
        conv.weight.data.copy_(weight)
        conv.bias.data.copy_(self.bias.detach())
        return conv


def fold_weight_norm(module: nn.Module) -> int:
    """Replace every `WeightNormConv1d` below `module` by its folded plain conv; returns how many were folded."""
    count = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, WeightNormConv1d):
                setattr(parent, name, child.folded())
                count += 1
    return count


# ---------------------------------------------------------------------------------------------------------------
# Relative-position Transformer encoder (upstream `module/attentions.py`)


def masked(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """`x * mask` (mask [B, 1, T]: 1 on real positions, 0 on padding); `None` means nothing is padded."""
    return x if mask is None else x * mask


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of `[B, C, T]`; parameters named `gamma`/`beta` as upstream stores them."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.transpose(1, -1), (x.shape[1],), self.gamma, self.beta, self.eps)
        return x.transpose(1, -1)


def _relative_to_absolute(rel: torch.Tensor, window: int) -> torch.Tensor:
    """`[B,H,T,2w+1]` (entry r is offset r−w) → `[B,H,T,T]` with `out[i,j] = rel[i, j−i+w]`, 0 outside the window."""
    length = rel.shape[2]
    pos = torch.arange(length, device=rel.device)
    offset = pos[None, :] - pos[:, None]  # j − i
    inside = offset.abs() <= window
    index = (offset.clamp(-window, window) + window).expand(rel.shape[0], rel.shape[1], length, length)
    return torch.where(inside, torch.gather(rel, 3, index), torch.zeros((), dtype=rel.dtype, device=rel.device))


def _absolute_to_relative(weights: torch.Tensor, window: int) -> torch.Tensor:
    """`[B,H,T,T]` → `[B,H,T,2w+1]` with `out[i, r] = weights[i, i+r−w]`, 0 where that column is outside 0..T−1."""
    length = weights.shape[2]
    column = torch.arange(length, device=weights.device)[:, None] + (
        torch.arange(2 * window + 1, device=weights.device)[None, :] - window)
    inside = (column >= 0) & (column < length)
    index = column.clamp(0, length - 1).expand(weights.shape[0], weights.shape[1], length, 2 * window + 1)
    zero = torch.zeros((), dtype=weights.dtype, device=weights.device)
    return torch.where(inside, torch.gather(weights, 3, index), zero)


class MultiHeadAttention(nn.Module):
    """VITS multi-head attention with 1×1-conv projections and optional shared relative-position tables.

    `score[i,j] = q_i·k_j/√d + q_i·Rk[j−i]/√d`, `out_i = Σ_j p_ij (v_j + Rv[j−i])`, with `R[r] = 0` for |r| > window.
    """

    def __init__(self, channels: int, out_channels: int, n_heads: int, window_size: int | None = None):
        super().__init__()
        if channels % n_heads:
            raise ValueError(f"channels {channels} not divisible by n_heads {n_heads}")
        self.n_heads, self.k_channels, self.window_size = n_heads, channels // n_heads, window_size
        if window_size is not None:
            std = self.k_channels ** -0.5
            self.emb_rel_k = nn.Parameter(torch.randn(1, 2 * window_size + 1, self.k_channels) * std)
            self.emb_rel_v = nn.Parameter(torch.randn(1, 2 * window_size + 1, self.k_channels) * std)
        self.conv_q = nn.Conv1d(channels, channels, 1)
        self.conv_k = nn.Conv1d(channels, channels, 1)
        self.conv_v = nn.Conv1d(channels, channels, 1)
        self.conv_o = nn.Conv1d(channels, out_channels, 1)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, T] -> [B, H, T, Dk]
        return x.unflatten(1, (self.n_heads, self.k_channels)).transpose(2, 3)

    def forward(self, x: torch.Tensor, context: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        """`key_mask` [B, 1, T_context] (1 = real, 0 = padding) hides padded keys as upstream does (score −1e4,
        whose softmax weight is exactly 0 in float32); padded queries' rows are left for the caller to mask."""
        query = self._heads(self.conv_q(x)) / math.sqrt(self.k_channels)
        key = self._heads(self.conv_k(context))
        value = self._heads(self.conv_v(context))
        scores = torch.matmul(query, key.transpose(-2, -1))
        if self.window_size is not None:
            rel_logits = torch.matmul(query, self.emb_rel_k[0].transpose(0, 1))
            scores = scores + _relative_to_absolute(rel_logits, self.window_size)
        if key_mask is not None:
            scores = scores.masked_fill(key_mask.unsqueeze(1) == 0, -1e4)
        attn = torch.softmax(scores, dim=-1)
        out = torch.matmul(attn, value)
        if self.window_size is not None:
            out = out + torch.matmul(_absolute_to_relative(attn, self.window_size), self.emb_rel_v[0])
        return self.conv_o(out.transpose(2, 3).flatten(1, 2))


class FeedForward(nn.Module):
    """conv(k) → ReLU → conv(k), "same" padding (left (k−1)//2, right k//2)."""

    def __init__(self, channels: int, filter_channels: int, kernel_size: int):
        super().__init__()
        self.pad = ((kernel_size - 1) // 2, kernel_size // 2)
        self.conv_1 = nn.Conv1d(channels, filter_channels, kernel_size)
        self.conv_2 = nn.Conv1d(filter_channels, channels, kernel_size)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = torch.relu(self.conv_1(F.pad(masked(x, mask), self.pad)))
        return masked(self.conv_2(F.pad(masked(x, mask), self.pad)), mask)


class RelPosEncoder(nn.Module):
    """Post-LN Transformer: `x = LN1(x + MHA(x)); x = LN2(x + FFN(x))` per layer."""

    def __init__(self, hidden_channels: int, filter_channels: int, n_heads: int, n_layers: int, kernel_size: int,
                 window_size: int = 4):
        super().__init__()
        self.attn_layers = nn.ModuleList(
            MultiHeadAttention(hidden_channels, hidden_channels, n_heads, window_size) for _ in range(n_layers))
        self.norm_layers_1 = nn.ModuleList(ChannelLayerNorm(hidden_channels) for _ in range(n_layers))
        self.ffn_layers = nn.ModuleList(
            FeedForward(hidden_channels, filter_channels, kernel_size) for _ in range(n_layers))
        self.norm_layers_2 = nn.ModuleList(ChannelLayerNorm(hidden_channels) for _ in range(n_layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = masked(x, mask)
        for attn, norm_1, ffn, norm_2 in zip(self.attn_layers, self.norm_layers_1, self.ffn_layers,
                                             self.norm_layers_2):
            x = norm_1(x + attn(x, x, mask))
            x = norm_2(x + ffn(x, mask))
        return masked(x, mask)


# ---------------------------------------------------------------------------------------------------------------
# Flow (mean-only residual coupling layers with a WaveNet-style conditioner)


class WaveNet(nn.Module):
    """Gated dilated-conv stack conditioned on `g`; returns the sum of skip outputs."""

    def __init__(self, hidden_channels: int, kernel_size: int, dilation_rate: int, n_layers: int,
                 gin_channels: int):
        super().__init__()
        self.hidden_channels = hidden_channels
        self.in_layers = nn.ModuleList()
        self.res_skip_layers = nn.ModuleList()
        for i in range(n_layers):
            dilation = dilation_rate ** i
            padding = (kernel_size * dilation - dilation) // 2
            self.in_layers.append(WeightNormConv1d(hidden_channels, 2 * hidden_channels, kernel_size,
                                                   padding=padding, dilation=dilation))
            out = 2 * hidden_channels if i < n_layers - 1 else hidden_channels
            self.res_skip_layers.append(WeightNormConv1d(hidden_channels, out, 1))
        self.cond_layer = WeightNormConv1d(gin_channels, 2 * hidden_channels * n_layers, 1)

    def forward(self, x: torch.Tensor, g: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.hidden_channels
        cond = self.cond_layer(g)
        last = len(self.in_layers) - 1
        skip = None
        for i, (in_layer, res_skip) in enumerate(zip(self.in_layers, self.res_skip_layers)):
            a = in_layer(x) + cond[:, 2 * h * i: 2 * h * (i + 1)]
            acts = torch.tanh(a[:, :h]) * torch.sigmoid(a[:, h:])
            rs = res_skip(acts)
            if i < last:
                x = masked(x + rs[:, :h], mask)
                rs = rs[:, h:]
            skip = rs if skip is None else skip + rs
        return masked(skip, mask)


class CouplingLayer(nn.Module):
    """Mean-only affine coupling; only the inverse (inference) direction is implemented."""

    def __init__(self, channels: int, hidden_channels: int, kernel_size: int, dilation_rate: int, n_layers: int,
                 gin_channels: int):
        super().__init__()
        self.half = channels // 2
        self.pre = nn.Conv1d(self.half, hidden_channels, 1)
        self.enc = WaveNet(hidden_channels, kernel_size, dilation_rate, n_layers, gin_channels)
        self.post = nn.Conv1d(hidden_channels, self.half, 1)
        # upstream zero-initialises `post` so that a fresh flow is the identity
        nn.init.zeros_(self.post.weight)
        nn.init.zeros_(self.post.bias)

    def inverse(self, x: torch.Tensor, g: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x0, x1 = x[:, : self.half], x[:, self.half:]
        mean = masked(self.post(self.enc(masked(self.pre(x0), mask), g, mask)), mask)
        return torch.cat([x0, masked(x1 - mean, mask)], dim=1)


class Flow(nn.Module):
    """`flows` = [coupling, flip] × n; upstream keeps the parameter-free flips at the odd indices."""

    def __init__(self, channels: int, hidden_channels: int, kernel_size: int, dilation_rate: int, n_layers: int,
                 n_flows: int, gin_channels: int):
        super().__init__()
        self.flows = nn.ModuleList()
        for _ in range(n_flows):
            self.flows.append(CouplingLayer(channels, hidden_channels, kernel_size, dilation_rate, n_layers,
                                            gin_channels))
            self.flows.append(nn.Identity())  # channel flip: no parameters, applied in `inverse`

    def inverse(self, z_p: torch.Tensor, g: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = z_p
        for coupling in reversed(self.flows[0::2]):
            x = coupling.inverse(torch.flip(x, dims=(1,)), g, mask)
        return x


# ---------------------------------------------------------------------------------------------------------------
# Generator (HiFi-GAN v1 style)


class ResBlock1(nn.Module):
    def __init__(self, channels: int, kernel_size: int, dilations: list[int]):
        super().__init__()
        self.convs1 = nn.ModuleList(
            WeightNormConv1d(channels, channels, kernel_size, padding=(kernel_size * d - d) // 2, dilation=d,
                             init_std=0.01) for d in dilations)
        self.convs2 = nn.ModuleList(
            WeightNormConv1d(channels, channels, kernel_size, padding=(kernel_size - 1) // 2, init_std=0.01)
            for _ in dilations)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        for conv1, conv2 in zip(self.convs1, self.convs2):
            t = conv1(masked(F.leaky_relu(x, LRELU_SLOPE), mask))
            x = conv2(masked(F.leaky_relu(t, LRELU_SLOPE), mask)) + x
        return masked(x, mask)


class ResBlock2(nn.Module):
    """Config `resblock: "2"`: one conv per step, upstream uses only the first two dilations of each entry."""

    def __init__(self, channels: int, kernel_size: int, dilations: list[int]):
        super().__init__()
        self.convs = nn.ModuleList(
            WeightNormConv1d(channels, channels, kernel_size, padding=(kernel_size * d - d) // 2, dilation=d,
                             init_std=0.01) for d in dilations[:2])

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        for conv in self.convs:
            x = conv(masked(F.leaky_relu(x, LRELU_SLOPE), mask)) + x
        return masked(x, mask)


RESBLOCKS = {"1": ResBlock1, "2": ResBlock2}


class Generator(nn.Module):
    def __init__(self, in_channels: int, initial_channels: int, resblock: str, resblock_kernel_sizes: list[int],
                 resblock_dilation_sizes: list[list[int]], upsample_rates: list[int],
                 upsample_kernel_sizes: list[int], gin_channels: int):
        super().__init__()
        if str(resblock) not in RESBLOCKS:
            raise ValueError(f"resblock type {resblock!r} does not exist (upstream has '1' and '2')")
        block_class = RESBLOCKS[str(resblock)]
        self.num_kernels = len(resblock_kernel_sizes)
        self.upsample_rates = [int(u) for u in upsample_rates]
        self.conv_pre = nn.Conv1d(in_channels, initial_channels, GENERATOR_EDGE_KERNEL, 1,
                                  padding=GENERATOR_EDGE_KERNEL // 2)
        self.ups = nn.ModuleList(
            WeightNormConv1d(initial_channels // 2 ** i, initial_channels // 2 ** (i + 1), k, stride=u,
                             padding=(k - u) // 2, transposed=True, init_std=0.01)
            for i, (u, k) in enumerate(zip(upsample_rates, upsample_kernel_sizes)))
        self.resblocks = nn.ModuleList()
        for i in range(len(self.ups)):
            channels = initial_channels // 2 ** (i + 1)
            for k, dilations in zip(resblock_kernel_sizes, resblock_dilation_sizes):
                self.resblocks.append(block_class(channels, k, dilations))
        self.conv_post = nn.Conv1d(initial_channels // 2 ** len(self.ups), 1, GENERATOR_EDGE_KERNEL, 1,
                                   padding=GENERATOR_EDGE_KERNEL // 2, bias=False)
        self.cond = nn.Conv1d(gin_channels, initial_channels, 1)

    def forward(self, x: torch.Tensor, g: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """`mask` [B, 1, frames]: with padded frames, every convolution's input is zero past the real ones, as
        the unpadded decode's zero padding is, so the real samples come out as if decoded alone."""
        x = masked(self.conv_pre(x) + self.cond(g), mask)
        for i, (up, rate) in enumerate(zip(self.ups, self.upsample_rates)):
            x = up(F.leaky_relu(x, LRELU_SLOPE))  # zero in, zero out: LeakyReLU(0) = 0
            mask = None if mask is None else mask.unsqueeze(-1).expand(-1, -1, -1, rate).flatten(2)
            blocks = self.resblocks[i * self.num_kernels: (i + 1) * self.num_kernels]
            total = blocks[0](x, mask)
            for block in blocks[1:]:
                total = total + block(x, mask)
            x = total / self.num_kernels  # resblocks end masked
        return torch.tanh(self.conv_post(F.leaky_relu(x)))  # default slope 0.01 here, as upstream


# ---------------------------------------------------------------------------------------------------------------
# Reference encoder (MelStyleEncoder) → global embedding `ge`


class Mish(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.tanh(F.softplus(x))


class LinearNorm(nn.Module):
    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.fc = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class ConvNorm(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, padding=(kernel_size - 1) // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Conv1dGLU(nn.Module):
    def __init__(self, channels: int, kernel_size: int):
        super().__init__()
        self.channels = channels
        self.conv1 = ConvNorm(channels, 2 * channels, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x)
        return x + h[:, : self.channels] * torch.sigmoid(h[:, self.channels:])


class StyleAttention(nn.Module):
    """Self-attention of the reference encoder; scores are divided by √d_model (not √d_head), as upstream."""

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.n_heads, self.d_head, self.temperature = n_heads, d_model // n_heads, math.sqrt(d_model)
        self.w_qs = nn.Linear(d_model, d_model)
        self.w_ks = nn.Linear(d_model, d_model)
        self.w_vs = nn.Linear(d_model, d_model)
        self.fc = nn.Linear(d_model, d_model)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, D] -> [B, H, T, Dh]
        return x.unflatten(2, (self.n_heads, self.d_head)).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self._heads(self.w_qs(x)), self._heads(self.w_ks(x)), self._heads(self.w_vs(x))
        attn = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) / self.temperature, dim=-1)
        out = torch.matmul(attn, v).transpose(1, 2).flatten(2)
        return self.fc(out) + x


class MelStyleEncoder(nn.Module):
    """`[B, bins, F]` spectrogram → `[B, out_dim, 1]`; indices 0/3 of `spectral` carry weights (Mish and
    dropout slots in between, kept so the keys match upstream)."""

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int = 128, kernel_size: int = 5, n_heads: int = 2):
        super().__init__()
        self.spectral = nn.Sequential(LinearNorm(in_dim, hidden_dim), Mish(), nn.Identity(),
                                      LinearNorm(hidden_dim, hidden_dim), Mish(), nn.Identity())
        self.temporal = nn.Sequential(Conv1dGLU(hidden_dim, kernel_size), Conv1dGLU(hidden_dim, kernel_size))
        self.slf_attn = StyleAttention(hidden_dim, n_heads)
        self.fc = LinearNorm(hidden_dim, out_dim)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        x = self.spectral(spec.transpose(1, 2))
        x = self.temporal(x.transpose(1, 2)).transpose(1, 2)
        x = self.fc(self.slf_attn(x))
        # upstream's masked mean: sum over time of x / n_frames
        return (x / x.shape[1]).sum(dim=1).unsqueeze(-1)
