"""Does the padding mask decide OpenVINO's layouts in an INT8 HiFi-GAN resblock? A synthetic study.

    python benchmarks/vocoder_layouts.py [--channels 128] [--samples 40960] [--threads 2]

Builds one resblock (three dilated kernel-11 convolutions, dilations 1/3/5, each followed by a kernel-11 one, with
residual adds; INT8 through FakeQuantize on weights and activations, as NNCF's output looks) directly in OpenVINO's
opset, in four variants: no mask; the mask `[1, 1, T]` multiplied after each LeakyReLU (as the exported vocoder
does); before it; and broadcast to the full tensor first. Prints per variant the best of five calls and the node
types that took the most time: what benchmarks/RESULTS.md (session 8) cites for "the reorders are the plugin's
layout choice, not the masks'".
"""

from __future__ import annotations

import argparse

import numpy as np

from ov_profile import best_call_s, by_kind

MODES = ("none", "mask-after", "mask-before", "mask-full")


def _quantised_activation(op, x, bound: float = 4.0):
    low, high = op.constant(np.float32(-bound)), op.constant(np.float32(bound))
    return op.fake_quantize(x, low, high, low, high, 256)


def _conv(op, rng, x, channels: int, kernel: int, dilation: int):
    weight = (rng.standard_normal((channels, channels, kernel)) * 0.02).astype(np.float32)
    high = np.abs(weight).max(axis=(1, 2), keepdims=True)
    quantised = op.fake_quantize(op.constant(weight), op.constant(-high), op.constant(high), op.constant(-high),
                                 op.constant(high), 255)
    pad = (kernel * dilation - dilation) // 2
    y = op.convolution(_quantised_activation(op, x), quantised, [1], [pad], [pad], [dilation])
    return op.add(y, op.constant((rng.standard_normal((1, channels, 1)) * 0.01).astype(np.float32)))


def build(mode: str, channels: int):
    import openvino as ov
    from openvino import opset13 as op

    rng = np.random.default_rng(0)
    x = op.parameter([1, channels, -1], np.float32, name="x")
    m = op.parameter([1, 1, -1], np.float32, name="mask")
    mask = op.broadcast(m, op.shape_of(x)) if mode == "mask-full" else m
    slope = op.constant(np.float32([0.1]))

    def act(t):
        if mode == "none":
            return op.prelu(t, slope)
        if mode == "mask-before":
            return op.prelu(op.multiply(t, mask), slope)
        return op.multiply(op.prelu(t, slope), mask)

    h = x
    for dilation in (1, 3, 5):
        t = _conv(op, rng, act(h), channels, 11, dilation)
        h = op.add(_conv(op, rng, act(t), channels, 11, 1), h)
    out = h if mode == "none" else op.multiply(h, mask)
    return ov.Model([out], [x, m])


def run(mode: str, channels: int, samples: int, threads: int) -> tuple[float, list]:
    import openvino as ov

    compiled = ov.Core().compile_model(build(mode, channels), "CPU", {"INFERENCE_NUM_THREADS": threads,
                                                                      "PERF_COUNT": True,
                                                                      "INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    rng = np.random.default_rng(1)
    inputs = {"x": rng.standard_normal((1, channels, samples)).astype(np.float32),
              "mask": np.ones((1, 1, samples), np.float32)}
    seconds = best_call_s(request, inputs, repeats=5)
    return seconds, by_kind(request.profiling_info)[0].most_common(6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=128)
    parser.add_argument("--samples", type=int, default=40960)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    for mode in MODES:
        seconds, top = run(mode, args.channels, args.samples, args.threads)
        parts = ", ".join(f"{node}/{kernel} {ms:.1f}" for (node, kernel), ms in top)
        print(f"{mode:12s} {seconds * 1000:6.1f} ms   {parts}")


if __name__ == "__main__":
    main()
