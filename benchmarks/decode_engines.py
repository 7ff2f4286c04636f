"""The GPT-SoVITS decode step on its two engines: OpenVINO's stateful INT8 `gpt_decode` against onnxruntime's
block-quantised `gpt_step` (`MatMulNBits`), at several cached positions and rows, in one process and one sitting.

Why: `edgevoice quantize --decode-engine auto` keeps whichever is faster on the CPU at hand; this shows the whole
trade (block sizes, 4-bit weights, the thread pool's spinning, batched rows) behind the numbers written next to
`STEP_NBITS` in export/gpt_sovits/quantize.py.

    python benchmarks/decode_engines.py --fp32 FP32_BUNDLE [--openvino INT8_BUNDLE] [--filled 50 400 1000]
        [--rows 1 8] [--variants 8:128 8:32 8:256 4:128] [--steps 30] [--threads 2] [--attention plain fused]
        [--cache-dtypes float32 float16]

FP32_BUNDLE: an exported bundle (its `gpt_step.onnx` is quantised here for each variant BITS:BLOCK); INT8_BUNDLE:
a quantised one that keeps the stateful `gpt_decode` (`quantize --decode-engine openvino`). Each figure is the
median of `--steps` steps after 3 warm-up steps, from random caches `filled` deep (OpenVINO's u8 cache holds the
same values); "spin 0" is onnxruntime with its thread pool's spinning off (the backend's default for other graphs).
`--attention fused` adds, per variant, the step whose attention `quantize` fuses (`edgevoice_export.fused_attention`)
and the plain step beside it, both driven as the synthesizer drives them (`HostKVCache`, buffers bound, the fused
step writing its new rows in place); the other rows pass every buffer on every call. `--cache-dtypes` adds, per
variant, the fused step with its cache buffers in each type (`fuse_cached_attention(cache_dtype=...)`: float16
halves the cache's memory), every buffer bound in place and only the token fed, the same driver for each type.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from limits import cpu_info

WARMUP = 3


def ortsession(path: Path, threads: int, spin: bool):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def step_ms(run, steps: int) -> float:
    times = []
    for _ in range(WARMUP + steps):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times[WARMUP:])


def onnxruntime_ms(session, model: dict, filled: int, rows: int, steps: int) -> float:
    """One step of `gpt_step` over host caches `filled` deep (as `HostKVCache` feeds them), `rows` rows."""
    gpt = model["gpt"]
    heads, head_dim = gpt["heads"], gpt["hidden"] // gpt["heads"]
    rng = np.random.default_rng(0)
    feeds = {"token": np.full((rows, 1), 5, np.int64), "position": np.full(rows, filled, np.int64),
             "past_mask": np.zeros((rows, filled), np.float32)}
    for kind in ("key", "value"):
        for i in range(gpt["n_layer"]):
            feeds[f"past_{kind}.{i}"] = rng.standard_normal((rows, heads, filled, head_dim), dtype=np.float32)
    return step_ms(lambda: session.run(None, feeds), steps)


def host_cache_ms(session, bundle, filled: int, rows: int, steps: int) -> float:
    """One step as the synthesizer runs it: `HostKVCache` over the session, `rows` rows prefilled `filled` deep."""
    from edgevoice.backends import OnnxRuntimeSession
    from edgevoice.gpt_sovits.decode_cache import HostKVCache

    from gpt_step_speed import random_caches

    gpt = bundle.manifest.model["gpt"]
    prefill = {f"present_{name}": value for name, value in random_caches(bundle, filled).items()}
    prefill["logits"] = np.zeros((1, gpt["vocab_size"]), np.float32)
    cache = HostKVCache.of_rows(OnnxRuntimeSession(session, "gpt_step"), [prefill] * rows, gpt["n_layer"],
                                [filled] * rows)
    tokens = np.full(rows, 5, np.int64)
    return step_ms(lambda: cache.step_rows(tokens), steps)


def bound_fused_ms(session, model: dict, filled: int, rows: int, steps: int, dtype: str) -> float:
    """One step of a fused step whose cache buffers (`dtype`) are bound as both its inputs and its outputs, as the
    synthesizer binds them; each step writes its row at slot `filled` again, so every step reads the same depth."""
    from edgevoice.backends import BoundRun, OnnxRuntimeSession

    gpt = model["gpt"]
    heads, head_dim = gpt["heads"], gpt["hidden"] // gpt["heads"]
    rng = np.random.default_rng(0)
    buffers, outputs = {}, {"logits": np.zeros((rows, gpt["vocab_size"]), np.float32)}
    for kind in ("key", "value"):
        for i in range(gpt["n_layer"]):
            buffer = rng.standard_normal((rows, heads, filled + 64, head_dim), dtype=np.float32).astype(dtype)
            buffers[f"past_{kind}.{i}"] = outputs[f"present_{kind}.{i}"] = buffer
    run = BoundRun(OnnxRuntimeSession(session, "gpt_step"), buffers, outputs)
    feeds = {"token": np.full((rows, 1), 5, np.int64), "position": np.full(rows, filled, np.int64),
             "seqlens_k": np.full(rows, filled, np.int32), "total_sequence_length": np.array([filled + 1], np.int32)}
    return step_ms(lambda: run.run(feeds), steps)


def openvino_ms(bundle: str, threads: int, filled_list: list[int], rows_list: list[int], steps: int) -> dict:
    """The stateful graphs through the synthesizer's own `StatefulCache` (as benchmarks/run.py drives them)."""
    import edgevoice
    from edgevoice.gpt_sovits.decode_cache import StatefulCache

    from run import random_prefill

    synth = edgevoice.load(bundle, threads=threads)
    if not synth._stateful_decode:
        sys.exit(f"{bundle} has no stateful gpt_decode (quantise with --decode-engine openvino)")
    out = {}
    for rows in rows_list:
        graph = "gpt_decode" if rows == 1 else "gpt_batch_decode"
        session, states = synth._session(graph), synth.bundle.graph(graph).states
        for filled in filled_list:
            prefills = [random_prefill(synth, filled) for _ in range(rows)]
            cache = StatefulCache.of_rows(session, prefills, states, [max(filled - 100, 0)] * rows)
            tokens = np.full(rows, 5, np.int64)
            out[(rows, filled)] = step_ms(lambda: cache.step_rows(tokens), steps)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fp32", required=True, help="FP32 bundle (its gpt_step.onnx is quantised per variant)")
    parser.add_argument("--openvino", help="INT8 bundle with the stateful gpt_decode (its row is left out without)")
    parser.add_argument("--filled", type=int, nargs="+", default=[50, 400, 1000])
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--variants", nargs="+", default=["8:128", "8:32", "8:256", "4:128"],
                        help="BITS:BLOCK of onnxruntime's block quantisation")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--attention", nargs="+", choices=["plain", "fused"], default=["plain"],
                        help="fused: also the step with its attention fused, beside the plain one, via HostKVCache")
    parser.add_argument("--cache-dtypes", nargs="+", choices=["float32", "float16"], default=[],
                        help="also the fused step with its cache in each of these types, every buffer bound")
    args = parser.parse_args()

    from edgevoice.bundle import Bundle
    from edgevoice_export.fused_attention import fuse_step_file
    from edgevoice_export.quantize import BlockQuantization, quantize_matmuls_nbits

    source = Bundle.load(args.fp32, verify=False)
    model = source.manifest.model
    cpu = cpu_info()
    print(f"CPU: {cpu.model}, flags {' '.join(cpu.flags)}; {args.threads} threads; "
          f"{time.strftime('%Y-%m-%d %H:%M')}")
    print(f"`python benchmarks/decode_engines.py {' '.join(sys.argv[1:])}`\n")
    columns = [(rows, filled) for rows in args.rows for filled in args.filled]
    print("| decode | " + " | ".join(f"{r} row{'s' * (r > 1)} @ {f}" for r, f in columns) + " |")
    print("|---|" + "---|" * len(columns))
    if args.openvino:
        ov = openvino_ms(args.openvino, args.threads, args.filled, args.rows, args.steps)
        print("| OpenVINO stateful INT8 (the bundle's options) | " + " | ".join(f"{ov[c]:.2f}" for c in columns)
              + " |")
    plain = source.file(source.graph("gpt_step").files["onnx"])
    with tempfile.TemporaryDirectory(prefix="decode-engines-") as scratch:
        fused = Path(scratch) / "step-fused.onnx"
        if "fused" in args.attention:
            gpt = model["gpt"]
            fuse_step_file(plain, fused, gpt["n_layer"], gpt["heads"], gpt["hidden"] // gpt["heads"])
        for variant in args.variants:
            bits, block = (int(x) for x in variant.split(":"))
            label = f"onnxruntime MatMulNBits {bits}-bit, blocks of {block}"
            path = Path(scratch) / f"step-{bits}-{block}.onnx"
            quantize_matmuls_nbits(plain, path, BlockQuantization(bits=bits, block_size=block))
            spins = (True, False) if variant == args.variants[0] else (True,)
            for spin in spins:
                session = ortsession(path, args.threads, spin)
                figures = [onnxruntime_ms(session, model, f, r, args.steps) for r, f in columns]
                print(f"| {label}{'' if spin else ', spin 0'} | " + " | ".join(f"{ms:.2f}" for ms in figures) + " |")
            if "fused" in args.attention:
                fused_path = Path(scratch) / f"step-fused-{bits}-{block}.onnx"
                quantize_matmuls_nbits(fused, fused_path, BlockQuantization(bits=bits, block_size=block))
                for name, graph in (("plain attention", path), ("fused attention", fused_path)):
                    session = ortsession(graph, args.threads, True)
                    figures = [host_cache_ms(session, source, f, r, args.steps) for r, f in columns]
                    print(f"| {label}, {name}, host cache | " + " | ".join(f"{ms:.2f}" for ms in figures) + " |")
            for dtype in args.cache_dtypes:
                typed = Path(scratch) / f"step-fused-{dtype}.onnx"
                gpt = model["gpt"]
                fuse_step_file(plain, typed, gpt["n_layer"], gpt["heads"], gpt["hidden"] // gpt["heads"],
                               cache_dtype=dtype)
                typed_path = Path(scratch) / f"step-fused-{dtype}-{bits}-{block}.onnx"
                quantize_matmuls_nbits(typed, typed_path, BlockQuantization(bits=bits, block_size=block))
                session = ortsession(typed_path, args.threads, True)
                figures = [bound_fused_ms(session, model, f, r, args.steps, dtype) for r, f in columns]
                print(f"| {label}, fused attention, {dtype} cache, bound | "
                      + " | ".join(f"{ms:.2f}" for ms in figures) + " |")
    print("\nms per step (median). OpenVINO's cache is u8 with the bundle's options; onnxruntime's is the host's "
          "f32 buffers.")


if __name__ == "__main__":
    main()
