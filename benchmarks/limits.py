"""What this machine can do at best, measured, so benchmarks can state their figures as ratios to a bound.

* `bandwidth_gbs`: streaming read bandwidth of a large array (≥ 1 GiB, far beyond every cache), one numpy
  reduction per thread (numpy releases the GIL), best of several rounds.
* `gemm_peak`: matrix-product throughput through OpenVINO's CPU plugin per precision: f32, bf16 (precision hint)
  and int8 (FakeQuantize on both inputs, which the plugin's low-precision transformations turn into a u8 × i8
  product: the VNNI kernel where the CPU has one), with the kernel the plugin picked.
* `cpu_info`: the CPU model and the instruction-set flags these figures depend on.

Used by `run.py` (GPT-SoVITS) and `metavoice_speed.py`.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

# The flags that decide which kernels OpenVINO can use (VNNI/AMX: int8 dot products; bf16: native bf16 FMA).
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class CpuInfo:
    model: str
    logical_cores: int
    flags: tuple[str, ...]  # those of CPU_FLAGS the CPU has

    def describe(self) -> str:
        return f"{self.model}, {self.logical_cores} logical cores, {' '.join(self.flags) or 'no AVX2'}"

    def has_native_bf16(self) -> bool:
        return any(flag in self.flags for flag in BF16_FLAGS)


def cpu_info(cpuinfo: Path = Path("/proc/cpuinfo")) -> CpuInfo:
    from edgevoice_export.quantize import cpu_flags  # the project's one /proc/cpuinfo reader

    words = cpu_flags(cpuinfo) or set()
    model = "unknown"
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
                break
    return CpuInfo(model, os.cpu_count() or 1, tuple(f for f in CPU_FLAGS if f in words))


def bandwidth_gbs(threads: int, gib: float = 1.0, rounds: int = 5) -> float:
    """Streaming read bandwidth in GB/s: each thread sums its own slice of one big array, best of `rounds`."""
    data = np.ones(int(gib * (1 << 30)) // 4, np.float32)
    parts = np.array_split(data, threads)
    best = 0.0
    for _ in range(rounds):
        workers = [threading.Thread(target=np.sum, args=(p,)) for p in parts]
        start = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        best = max(best, data.nbytes / (time.perf_counter() - start) / 1e9)
    return best


@dataclass(frozen=True)
class GemmPeak:
    precision: str  # what was asked for: f32, bf16, int8
    gflops: float  # best of the timed calls, 2·M·K·N per call
    kernel: str  # the plugin's kernel for the product (from PERF_COUNT), e.g. brgemm_avx512_core_vnni_I8
    shape: tuple[int, int, int]  # M, K, N

    def to_json(self) -> dict:
        return asdict(self)


def _fake_quantize(node, low: float, high: float, levels: int):
    import openvino.opset13 as ops

    lo, hi = ops.constant(np.float32(low)), ops.constant(np.float32(high))
    return ops.fake_quantize(node, lo, hi, lo, hi, levels)


def _gemm_model(precision: str, m: int, k: int, n: int):
    """x [M, K] (a parameter) times a constant W [K, N]: the plugin runs it as a FullyConnected, as our graphs'
    projections. For int8 both sides go through FakeQuantize (u8 activations in [0, 1], i8 weights)."""
    import openvino as ov
    import openvino.opset13 as ops

    rng = np.random.default_rng(0)
    x = ops.parameter([m, k], np.float32, name="x")
    w = ops.constant(rng.uniform(-1, 1, (k, n)).astype(np.float32))
    if precision == "int8":
        product = ops.matmul(_fake_quantize(x, 0.0, 1.0, 256), _fake_quantize(w, -1.0, 1.0, 255), False, False)
    else:
        product = ops.matmul(x, w, False, False)
    return ov.Model([product], [x], f"gemm_{precision}")


def _product_kernel(request) -> str:
    """The exec type of the most expensive node of the last inference (the product itself)."""
    nodes = sorted(request.profiling_info, key=lambda item: item.real_time, reverse=True)
    return nodes[0].exec_type if nodes else "unknown"


def gemm_peak(precision: str, threads: int, m: int = 512, k: int = 4096, n: int = 4096,
              seconds: float = 1.0) -> GemmPeak:
    """Best GFLOP/s of an [M, K] × [K, N] product over about `seconds` of calls (after one warm-up call)."""
    import openvino as ov

    config = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1, "INFERENCE_NUM_THREADS": threads,
              "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32", "PERF_COUNT": True}
    compiled = ov.Core().compile_model(_gemm_model(precision, m, k, n), "CPU", config)
    request = compiled.create_infer_request()
    x = np.random.default_rng(1).uniform(0, 1, (m, k)).astype(np.float32)
    request.infer({0: x})
    kernel = _product_kernel(request)
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline or best == float("inf"):
        start = time.perf_counter()
        request.infer({0: x})
        best = min(best, time.perf_counter() - start)
    return GemmPeak(precision, 2 * m * k * n / best / 1e9, kernel, (m, k, n))


def bound_ratio(measured: float, bound: float) -> float:
    """measured ÷ bound (≥ 1; how far from the machine's limit), NaN when there is no bound."""
    return measured / bound if bound > 0 else float("nan")


# ------------------------------------------------------------------------------------------------ graph analysis

# Ops that only reshape or decompress a weight on its way to the op that reads it (INT8 IRs store u8/i8 weights
# followed by Convert → Subtract → Multiply).
_PASS_THROUGH = {"Convert", "Subtract", "Multiply", "Reshape", "Transpose", "Unsqueeze", "Squeeze", "FakeQuantize"}


@dataclass(frozen=True)
class WeightsRead:
    """Bytes of an IR's stored constants that one call reads: every weight once, an embedding table one row."""

    total: int
    f32_matmul: int  # of which f32 weights of matrix products: the plugin repacks them into bf16 when it runs bf16

    def bytes_for(self, precision: str) -> int:
        return self.total - self.f32_matmul // 2 if precision == "bf16" else self.total


def _constant_use(constant) -> str:
    """Where a constant ends up: "table" (the data of a Gather), "matmul", or "other"."""
    frontier, seen = [constant], set()
    while frontier:
        node = frontier.pop()
        for output in node.outputs():
            for target in output.get_target_inputs():
                consumer = target.get_node()
                kind = consumer.get_type_name()
                if kind == "Gather" and target.get_index() == 0:
                    return "table"
                if kind == "MatMul":
                    return "matmul"
                if kind in _PASS_THROUGH and consumer.get_friendly_name() not in seen:
                    seen.add(consumer.get_friendly_name())
                    frontier.append(consumer)
    return "other"


def weights_read_per_call(xml: str | Path) -> WeightsRead:
    """The bytes one call of a single-token graph (a decode step) must read from its IR's weights."""
    import openvino as ov

    total = f32_matmul = 0
    for op in ov.Core().read_model(str(xml)).get_ops():
        if op.get_type_name() != "Constant":
            continue
        shape = list(op.get_output_shape(0))
        size = int(np.prod(shape, dtype=np.int64)) * op.get_element_type().bitwidth // 8
        use = _constant_use(op)
        if use == "table" and shape:
            size //= max(shape[0], 1)  # one token: one row of the table
        total += size
        if use == "matmul" and op.get_element_type() == ov.Type.f32:
            f32_matmul += size
    return WeightsRead(total, f32_matmul)


def _prod(values) -> int:
    return int(np.prod(list(values), dtype=np.int64))


def _multiply_adds(op) -> int:
    """Multiply-adds of one convolution or matrix product with static shapes; 0 for other ops."""
    kind = op.get_type_name()
    if kind not in ("Convolution", "GroupConvolution", "ConvolutionBackpropData", "GroupConvolutionBackpropData",
                    "MatMul"):
        return 0
    out = op.get_output_partial_shape(0).to_shape()
    if kind == "MatMul":
        a = op.get_input_partial_shape(0).to_shape()
        inner = a[-2] if op.get_attributes().get("transpose_a") else a[-1]
        return _prod(out) * inner
    w = list(op.get_input_partial_shape(1).to_shape())
    if kind == "Convolution":  # W [Cout, Cin, k...]
        return _prod(out) * w[1] * _prod(w[2:])
    if kind == "GroupConvolution":  # W [G, Cout/G, Cin/G, k...]
        return _prod(out) * w[2] * _prod(w[3:])
    x = op.get_input_partial_shape(0).to_shape()
    if kind == "ConvolutionBackpropData":  # W [Cin, Cout, k...]: every input element feeds Cout·k outputs
        return _prod(x) * w[1] * _prod(w[2:])
    return _prod(x) * w[2] * _prod(w[3:])  # GroupConvolutionBackpropData: W [G, Cin/G, Cout/G, k...]


def graph_gflop(xml: str | Path, shapes: dict[str, list[int]]) -> float:
    """GFLOP (2 × multiply-adds of the convolutions and matrix products) of one call at the given input shapes."""
    import openvino as ov

    model = ov.Core().read_model(str(xml))
    model.reshape({name: ov.PartialShape(shape) for name, shape in shapes.items()})
    return 2 * sum(_multiply_adds(op) for op in model.get_ops()) / 1e9
