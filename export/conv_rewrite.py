"""Export-time rewrite of `ConvTranspose1d` into a plain strided-phase `Conv1d` (shared; knows no family).

Why: OpenVINO's CPU plugin (2026.4) runs a 1-d transposed convolution as `ConvolutionBackpropData` on its
generic `jit_gemm_f32` path and never in INT8. Profiled on the full-size GPT-SoVITS v2 INT8 vocoder (Zen 4, 2 threads,
10.24 s of audio): its five upsampling layers took 170 of 1140 ms for 17 of 432 GFLOP (the second one ~63 GFLOP/s),
while the INT8 convolutions around them ran near the machine's INT8 peak. The same map written as one `Conv1d` with
`stride × C_out` outputs (one group of output channels per output phase) followed by an interleave is a regular
convolution: it is quantised like the others and runs on the fast convolution kernels.

The algebra: a transposed conv with kernel `w[c_in, c_out, k]`, stride `s` and padding `p` writes
`y[t] = Σ_i x[i] · w[t + p − i·s]`. Output `t` has phase `r = (t + p) mod s` and reads only the taps `j = r + m·s`,
from `x[q − m]` with `q = (t + p) div s`. So for every phase `r` a plain convolution over `x` with the taps
`w[r + m·s]` in reverse order (kernel `M = ⌈k / s⌉`, zero-padded by `M − 1`) gives `z_r[q]`, and `y` is the
interleave `z[q·s + r]` cut to start at `p`. The cut's end is a constant offset from the end (independent of the
length), so the exported graph keeps a dynamic time axis with no shape arithmetic.
Equal to the transposed conv up to float summation order (tests: ≤ 1e-6 of the output's scale), zero input → bias
output as before (the padding masks rely on that).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PhaseConvTranspose1d(nn.Module):
    """A `ConvTranspose1d` (groups 1, dilation 1, no output padding) computed as a strided-phase `Conv1d`."""

    def __init__(self, source: nn.ConvTranspose1d):
        super().__init__()
        if source.groups != 1 or source.dilation[0] != 1 or source.output_padding[0] != 0:
            raise ValueError("only ConvTranspose1d with groups=1, dilation=1 and no output_padding can be rewritten")
        weight = source.weight.detach()  # [c_in, c_out, k]
        c_in, c_out, kernel = weight.shape
        self.stride, self.padding = source.stride[0], source.padding[0]
        self.taps = -(-kernel // self.stride)  # M = ceil(k / s)
        padded = F.pad(weight, (0, self.taps * self.stride - kernel))  # taps past k are zero
        # [c_in, c_out, m, r] -> reversed m (cross-correlation order) -> [c_out, r, c_in, m] -> [c_out*s, c_in, M]
        phases = padded.reshape(c_in, c_out, self.taps, self.stride).flip(2).permute(1, 3, 0, 2)
        self.register_buffer("weight", phases.reshape(c_out * self.stride, c_in, self.taps).contiguous())
        bias = source.bias.detach() if source.bias is not None else torch.zeros(c_out)
        self.register_buffer("bias", bias.repeat_interleave(self.stride))
        self.out_channels = c_out
        # Interleaved length is (T + M - 1)·s; the transposed conv's is (T - 1)·s - 2p + k: a constant difference.
        self.cut_end = kernel - self.stride - self.padding - (self.taps - 1) * self.stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = F.conv1d(x, self.weight, self.bias, padding=self.taps - 1)  # [B, c_out*s, T + M - 1]
        batch, _, frames = z.shape
        y = z.reshape(batch, self.out_channels, self.stride, frames).transpose(2, 3)
        y = y.reshape(batch, self.out_channels, frames * self.stride)
        return y[:, :, self.padding:] if self.cut_end == 0 else y[:, :, self.padding:self.cut_end]


def rewrite_conv_transpose(module: nn.Module) -> int:
    """Swap every `nn.ConvTranspose1d` below `module` for its `PhaseConvTranspose1d`; returns how many."""
    count = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.ConvTranspose1d):
                setattr(parent, name, PhaseConvTranspose1d(child))
                count += 1
    return count
