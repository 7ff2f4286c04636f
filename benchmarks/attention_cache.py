"""onnxruntime's cached attention alone: how fast `GroupQueryAttention` reads a decode step's KV cache, by position,
cache precision, threads and the node's scale, with no weights around it.

Why: the fused decode step (`export/fused_attention.py`) spends its position-dependent time in these nodes; this
shows where the cache stops fitting the last-level cache (the read rate halves there) and what a half-precision
cache trades (half the bytes against a conversion per head), figures written beside `STEP_CACHE_DTYPE` in
export/gpt_sovits/quantize.py.

    python benchmarks/attention_cache.py [--layers 24] [--heads 16] [--head-dim 32] [--rows 1]
        [--positions 100 400 800 1000 1500] [--dtypes float32 float16] [--threads 2] [--scales 1 0] [--steps 40]

One model of `--layers` nodes, each with its own key and value buffers bound as both input and output (as the
synthesizer binds them), one new token per row at slot `position`; median ms of `--steps` runs after 3 warm-up
runs. GB/s counts the keys and values read (`rows × heads × position × head_dim × 2` per layer, in the cache's
precision). `--scales 0` is the node's default scale (1/√head_dim, which the step no longer uses: it folds that
into the query).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from onnx import TensorProto, helper

from limits import cpu_info

WARMUP = 3
TYPES = {"float32": (TensorProto.FLOAT, np.float32), "float16": (TensorProto.FLOAT16, np.float16)}


def attention_model(layers: int, heads: int, head_dim: int, dtype: str, scale: float) -> bytes:
    """`layers` independent `GroupQueryAttention` nodes reading one packed q ‖ k ‖ v input."""
    elem = TYPES[dtype][0]
    inputs = [helper.make_tensor_value_info("qkv", elem, ["rows", 1, 3 * heads * head_dim]),
              helper.make_tensor_value_info("seqlens_k", TensorProto.INT32, ["rows"]),
              helper.make_tensor_value_info("total_sequence_length", TensorProto.INT32, [])]
    nodes, outputs = [], []
    for i in range(layers):
        cache = ["rows", heads, "capacity", head_dim]
        inputs += [helper.make_tensor_value_info(f"past_{kind}.{i}", elem, cache) for kind in ("key", "value")]
        out = [f"attended.{i}", f"present_key.{i}", f"present_value.{i}"]
        nodes.append(helper.make_node(
            "GroupQueryAttention", ["qkv", "", "", f"past_key.{i}", f"past_value.{i}", "seqlens_k",
                                    "total_sequence_length"], out,
            domain="com.microsoft", num_heads=heads, kv_num_heads=heads, scale=scale))
        outputs += [helper.make_tensor_value_info(name, elem, None) for name in out]
    graph = helper.make_graph(nodes, "cached_attention", inputs, outputs)
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    return model.SerializeToString()


def attention_ms(session, layers: int, heads: int, head_dim: int, rows: int, position: int, dtype: str,
                 steps: int) -> float:
    numpy_type = TYPES[dtype][1]
    rng = np.random.default_rng(0)
    binding = session.io_binding()
    binding.bind_cpu_input("qkv", rng.standard_normal((rows, 1, 3 * heads * head_dim)).astype(numpy_type))
    binding.bind_cpu_input("seqlens_k", np.full(rows, position, np.int32))
    binding.bind_cpu_input("total_sequence_length", np.array(position + 1, np.int32))
    buffers = {}
    for i in range(layers):
        binding.bind_output(f"attended.{i}")
        for kind in ("key", "value"):
            buffer = rng.standard_normal((rows, heads, position + 64, head_dim)).astype(numpy_type)
            buffers[(kind, i)] = buffer  # kept alive: the session writes into it
            binding.bind_cpu_input(f"past_{kind}.{i}", buffer)
            binding.bind_output(f"present_{kind}.{i}", "cpu", 0, numpy_type, list(buffer.shape), buffer.ctypes.data)
    times = []
    for _ in range(WARMUP + steps):
        start = time.perf_counter()
        session.run_with_iobinding(binding)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times[WARMUP:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=24)
    parser.add_argument("--heads", type=int, default=16)
    parser.add_argument("--head-dim", type=int, default=32)
    parser.add_argument("--rows", type=int, default=1)
    parser.add_argument("--positions", type=int, nargs="+", default=[100, 400, 800, 1000, 1500])
    parser.add_argument("--dtypes", nargs="+", choices=list(TYPES), default=["float32", "float16"])
    parser.add_argument("--threads", type=int, nargs="+", default=[2])
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0],
                        help="the node's scale attribute; 0 = its default 1/sqrt(head_dim)")
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()

    import onnxruntime as ort

    cpu = cpu_info()
    print(f"CPU: {cpu.model}, flags {' '.join(cpu.flags)}; {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"{args.layers} layers × {args.heads} heads × {args.head_dim}, {args.rows} row(s)\n")
    print("| cache | threads | scale | " + " | ".join(f"{p} positions" for p in args.positions) + " |")
    print("|---|---|---|" + "---|" * len(args.positions))
    for dtype in args.dtypes:
        for threads in args.threads:
            for scale in args.scales:
                options = ort.SessionOptions()
                options.intra_op_num_threads = threads
                model = attention_model(args.layers, args.heads, args.head_dim, dtype, scale)
                session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
                cells = []
                for position in args.positions:
                    ms = attention_ms(session, args.layers, args.heads, args.head_dim, args.rows, position, dtype,
                                      args.steps)
                    read = args.layers * 2 * args.rows * args.heads * position * args.head_dim
                    gbs = read * np.dtype(TYPES[dtype][1]).itemsize / ms / 1e6
                    cells.append(f"{ms:.2f} ms ({gbs:.0f} GB/s)")
                label = "1/√d (default)" if scale == 0 else f"{scale:g}"
                print(f"| {dtype} | {threads} | {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
