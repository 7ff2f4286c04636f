"""Which engine decodes an INT8 or INT4 MetaVoice stage 1 on this CPU: OpenVINO's stateful graph (u8 KV cache inside
the request) or onnxruntime's step on block weights with its attention fused and the cache written in place
(`fused_attention`).

Why (full-size random weights, AMD EPYC Zen 4, 2 threads, one sitting; benchmarks/RESULTS.md, session 16): the
stateful INT8 graph steps in 55 / 77 / 103 ms at 64 / 600 / 1500 cached positions with its u8 cache (f16: 54 / 74 /
97, bf16 57 / 85 / 121): its attention walks the cache at ~5 GB/s, so the step grows ~40 % from 64 to 600 positions
for 0.12 GB more to read. onnxruntime's step on 8-bit block weights (`MatMulNBits`, the GPT-SoVITS decode's) with
each layer's attention one `GroupQueryAttention` node: 48 / 59 / 81 ms with an f32 cache, 46 / 61 / 80 ms with a
half-precision one (its kernel converts as it reads, so half the bytes cost no time) — the same speed for half
the memory (0.8 instead of 1.6 GB for two guidance rows at the full 2048 positions), so the cache is half
precision. Its plain (unfused) step: 53 / 74 / 109 ms. INT4 the same way (4-bit blocks): 31 / 43 / 75 ms against
OpenVINO's 35 / 51 / 80 (benchmarks/results/metavoice_speed.md). Since session 22 the attention runs at scale 1
with 1/√d folded into the query projection (`fused_attention`): the full-size INT8 step, two guidance rows, half
cache, the two fusions alternating (AMX Xeon, a slower sitting), 81.4 → 78.9 / 99.4 → 90.4 / 131.1 → 114.7 ms.
`quantize` measures both engines through the runtime's own decoders and keeps one; the other's graphs leave the
bundle.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np

from edgevoice.backends import OpenVINOBackend
from edgevoice.bundle import Bundle, Manifest, write_manifest
from edgevoice.cpu import detect
from edgevoice.errors import EdgevoiceError
from edgevoice.metavoice.synthesizer import Synthesizer

from ..fused_attention import FusionError, check_fused_step, fuse_step_file, in_place_specs
from ..quantize import BlockQuantization, QuantizeOptions, quantize_matmuls_nbits, remove_graph_file

STEP = "stage1_step"
STATEFUL = "stage1"
# onnxruntime's block weights per variant: symmetric, one scale per 128 inputs, int8 activations (GPT-SoVITS' step)
STEP_NBITS = {"int8": BlockQuantization(bits=8, block_size=128, accuracy_level=4),
              "int4": BlockQuantization(bits=4, block_size=128, accuracy_level=4)}
CACHE_DTYPE = "float16"
STEP_ONNXRUNTIME_OPTIONS = {"session.intra_op.allow_spinning": "1"}  # spinning between steps: ~1 ms a step
# the fused FP32 step against the plain one before either is made 8-bit (after, their activations' 8-bit rounding
# differs: 1.8e-2 on the tiny model): a prefill from empty (7 tokens, causal among themselves) and single steps after
# 5 and 19 positions. The half cache's rounding is what this allows (measured 6.4e-4 of the logits' scale on the
# tiny model, 3.8e-7 with an f32 cache); a wrong mask or slot gives ~1
FUSED_STEP_CALLS = (((0, 0), 7), ((5, 5), 1), ((19, 19), 1))
FUSED_STEP_TOLERANCE = 5e-3
# onnxruntime is taken where it is no slower: a tie goes to it, as its process needs less memory (1.8 vs 2.5 GiB peak
# for the same synthesis: OpenVINO packs a copy of the weights while the IR is mapped; its cache is 2x smaller)
ONNXRUNTIME_MARGIN = 1.0
TIMED_POSITIONS = (64, 600)
TIMED_STEPS = 5
TIMING_ROUNDS = 2


def random_speaker(speaker_dim: int, rng: np.random.Generator) -> np.ndarray:
    """A unit-length, non-negative speaker embedding `[1, speaker_dim]` (the encoder's are: ReLU, then normalised)."""
    speaker = np.abs(rng.standard_normal((1, speaker_dim))).astype(np.float32)
    return speaker / np.linalg.norm(speaker)


def stage1_step_feeds(speaker_dim: int):
    """`check_fused_step`'s feeds for the stage-1 step: ids for both guidance rows, their start, a speaker."""
    def feeds(filled: tuple[int, ...], new: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {"ids": rng.integers(0, 1000, (1, new)).astype(np.int64), "start": np.array([filled[0]], np.int64),
                "speaker": random_speaker(speaker_dim, rng)}
    return feeds


def _sizes_mb(folder: Path, rel: str) -> float:
    files = [folder / rel, folder / (rel + ".data")]
    return round(sum(f.stat().st_size for f in files if f.exists()) / 1e6, 1)


def write_fused_step(source: Bundle, folder: Path, precision: str, threads: int) -> tuple[str, float]:
    """The fused step (`stage1_step.<precision>.onnx`) in `folder`: the source's FP32 ONNX step with its attention
    fused, checked against the plain FP32 step, then its matmuls made `STEP_NBITS[precision]`. Returns its file and
    the difference (raises FusionError where the rewrite does not apply)."""
    s1 = source.manifest.model["stage1"]
    shape = (int(s1["n_layer"]), int(s1["n_head"]), int(s1["n_embd"]) // int(s1["n_head"]))
    plain = source.file(source.graph(STEP).files["onnx"])
    fused, target = "stage1_step.fused.onnx", f"stage1_step.{precision}.onnx"
    try:
        fuse_step_file(plain, folder / fused, *shape, CACHE_DTYPE)
        feeds = stage1_step_feeds(int(source.manifest.model["speaker"]["embedding"]))
        difference = check_fused_step(plain, folder / fused, *shape, feeds, FUSED_STEP_CALLS, threads)
        if difference <= FUSED_STEP_TOLERANCE:
            quantize_matmuls_nbits(folder / fused, folder / target, STEP_NBITS[precision])
    finally:
        remove_graph_file(folder, fused)
    return target, difference


def step_ms(synth: Synthesizer) -> dict[int, float]:
    """Median ms per stage-1 step through the synthesizer's own decoder, after a prefill of each timed length
    (random text ids)."""
    rng = np.random.default_rng(0)
    speaker = random_speaker(int(synth.model["speaker"]["embedding"]), rng)
    vocab, block = int(synth.model["stage1"]["vocab_size"]), int(synth.model["stage1"]["block_size"])
    out = {}
    for position in (p for p in TIMED_POSITIONS if p + TIMED_STEPS + 2 < block):
        decoder = synth.stage1_decoder(rng.integers(0, vocab, position), speaker, TIMED_STEPS + 2)
        times = []
        for _ in range(TIMED_STEPS + 2):
            start = time.perf_counter()
            decoder.step(int(rng.integers(0, vocab)))
            times.append(time.perf_counter() - start)
        out[position] = 1000 * float(np.median(times[2:]))
    return out


def _timed_engines(folder: Path, manifest: Manifest, stateful, threads: int) -> dict[str, dict[int, float]]:
    """Both decodes through the runtime's decoders, in interleaved rounds (the best of each: noise only slows a run
    down). The bundle being written holds the fused step; `stateful` is put back for OpenVINO's synthesizer."""
    synths = {"onnxruntime": Synthesizer(Bundle.load(folder), OpenVINOBackend(threads=threads))}
    manifest.graphs[STATEFUL] = stateful
    write_manifest(folder, manifest)
    synths["openvino"] = Synthesizer(Bundle.load(folder), OpenVINOBackend(threads=threads))
    rounds = [{engine: step_ms(synth) for engine, synth in synths.items()} for _ in range(TIMING_ROUNDS)]
    return {engine: {p: round(min(r[engine][p] for r in rounds), 2) for p in rounds[0][engine]} for engine in synths}


def _install_step(manifest: Manifest, target: str, precision: str):
    """Point `stage1_step` at the fused 8-bit file and take the stateful graph out (so the synthesizer decodes
    with the step); returns (the FP32 step's entry, the stateful graph's entry)."""
    step = manifest.graphs[STEP]
    fp32_step = copy.deepcopy(step)
    step.files, step.precision, step.engine = {"onnx": target}, precision, "onnxruntime"
    step.runtime_options = {"onnxruntime": dict(STEP_ONNXRUNTIME_OPTIONS)}
    step.inputs, step.outputs = in_place_specs(step.inputs, step.outputs, CACHE_DTYPE)
    return fp32_step, manifest.graphs.pop(STATEFUL)


def choose_stage1_engine(source: Bundle, folder: Path, manifest: Manifest, options: QuantizeOptions) -> dict:
    """For a variant being written in `folder` (its stateful `stage1` already compressed): add the fused
    `stage1_step` on block weights of the same width, time both, keep the faster (`options.decode_engine` may force
    one); returns the record."""
    if options.decode_engine == "openvino":
        return {"engine": "openvino", "reason": "chosen by the caller"}
    if STEP not in source.manifest.graphs or "onnx" not in source.graph(STEP).files:
        if options.decode_engine == "onnxruntime":
            raise EdgevoiceError("the source bundle has no ONNX stage-1 step (exported with --format openvino)")
        return {"engine": "openvino", "reason": "the source bundle has no ONNX stage-1 step to quantise"}
    try:
        target, difference = write_fused_step(source, folder, options.precision, options.threads)
    except FusionError as exc:
        return {"engine": "openvino", "reason": f"the step's attention could not be fused ({exc})"}
    if not difference <= FUSED_STEP_TOLERANCE:
        return {"engine": "openvino", "reason": f"the fused step differs from the plain one by {difference:.2e} of "
                                                f"the logits' scale"}
    fp32_step, stateful = _install_step(manifest, target, options.precision)
    write_manifest(folder, manifest)
    ms = _timed_engines(folder, manifest, stateful, options.threads)
    mean = {engine: float(np.mean(list(times.values()))) for engine, times in ms.items()}
    forced = options.decode_engine == "onnxruntime"
    taken = forced or mean["onnxruntime"] <= ONNXRUNTIME_MARGIN * mean["openvino"]
    if taken:  # the FP32 step stays in the FP32 bundle, for onnxruntime on CUDA
        manifest.graphs.pop(STATEFUL)
        remove_graph_file(folder, stateful.files["openvino"])
        remove_graph_file(folder, fp32_step.files["onnx"])
    else:
        manifest.graphs[STEP] = fp32_step
        remove_graph_file(folder, target)
    write_manifest(folder, manifest)
    positions = " / ".join(str(p) for p in ms["onnxruntime"])
    times = {e: " / ".join(f"{v:.1f}" for v in t.values()) for e, t in ms.items()}
    return {"engine": "onnxruntime" if taken else "openvino", "ms_per_step": ms, "cpu_class": detect().cpu_class,
            "attention": {"fused": True, "difference": float(f"{difference:.3g}")},
            "quantization": STEP_NBITS[options.precision].to_json(), "cache": CACHE_DTYPE, "threads": options.threads,
            "weights_mb": _sizes_mb(folder, target) if taken else None,
            "reason": ("chosen by the caller; " if forced else "")
            + f"ms per step at {positions} cached positions on this CPU: onnxruntime {options.precision} blocks, fused "
              f"attention and a {CACHE_DTYPE} cache {times['onnxruntime']} vs OpenVINO's stateful graph "
              f"{times['openvino']}"}
