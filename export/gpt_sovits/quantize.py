"""GPT-SoVITS INT8/BF16 variants: the per-graph policy (decisions as data, with the measurements behind them),
calibration on real synthesis (`edgevoice_calibration.collect`), and the variant bundle with its accuracy gate.
The machinery (NNCF calls, node selection, hold-out split, options) is shared: `edgevoice_export.quantize`.

The stateful `gpt_decode`'s KV cache precision is chosen per CPU (`decode_kv_precision`): on the AVX2-only Zen 1
u8 measured 19.1 vs 19.5 ms per step (2 %, within noise) at 1.3 % logit error (tooling.md §3), so f32 stays there;
on an AVX-512 Zen 4 (OpenVINO 2026.4, full-size v2 INT8, 2 threads) a step at 50 / 400 / 1000 cached positions takes
8.8 / 7.4 / 10.4 ms with u8 against 8.7 / 12.5 / 21.1 ms with f32 (the f32 attention kernel walks the cache far
below bandwidth), logits within 1.2 % of f32 and top-1 agreeing on 99.4 % of 1000 teacher-forced steps.
What each quantised graph's float parts compute in (f32, or bf16 on CPUs with native bf16 where it was measured
faster and passes the gate) is `compute.py`'s choice, recorded per graph in the manifest.
The decode engine is chosen per CPU by measurement (`STEP_NBITS`, `choose_decode_engine`): onnxruntime's
block-INT8 `gpt_step` (then the bundle drops the OpenVINO decode graphs) or OpenVINO's stateful W8 `gpt_decode`
(then `gpt_step`, onnxruntime's own decode, stays FP32 as exported). On CPUs with 8-bit dot products the prefill
and the vocoder also get onnxruntime stand-ins where they measured worth it (`stand_ins.py`,
`vocoder_engine.py`); the OpenVINO graphs stay in the bundle for every other CPU.
"""

from __future__ import annotations

import copy
import logging
import math
import re
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from edgevoice.backends import OpenVINOBackend
from edgevoice.bundle import Bundle, GraphEntry, Manifest, atomic_folder, write_manifest
from edgevoice.cpu import CpuInfo, detect
from edgevoice.errors import BundleError
from edgevoice.gpt_sovits.decode_cache import HostKVCache, StatefulCache
from edgevoice.gpt_sovits.synthesizer import Synthesizer
from edgevoice_calibration import split_items
from edgevoice_calibration.gpt_sovits import CalibrationInputs, CalibrationSet

from ..fused_attention import FusionError, check_fused_step, fuse_step_file, in_place_specs
from ..graph_export import save_ir
from ..quant_accuracy import AUDIBLE_LOG_MEL_L1
from .accuracy import decode_errors, end_to_end, graph_errors, log_mel_l1, prefill_utterance
from ..quantize import (ENGINE_CHOICES, METHODS, SDPA_TYPES, BlockQuantization, GraphPolicy, QuantizationReport,
                        QuantizeOptions, Threshold, cpu_flags, cpu_has_int8_dot, int8_speed, onnx_module_paths,
                        quantize_graph, quantize_matmuls_nbits, read_ir, remove_graph_file, run_all)
from .choices import choices
from .compute import ComputeChoice, choose_compute, compute_policies
from .stand_ins import STAND_INS, choose_stand_in
from .vocoder_engine import choose_vocoder_engine

END_TO_END_UTTERANCES = 6

# in a policy's float modules: the vocoder's last upsampling layer and its resblocks, named after the config's
# stage count (`with_last_stage` fills the names in once the graph's module paths are known)
LAST_STAGE = "<last-stage>"
POLICY: dict[str, GraphPolicy] = {
    # One token per call reads every weight for little compute: bandwidth-bound. W8 gave 1.5x per token at 2.7 %
    # logit error; static INT8 gave no speed-up at 2-3x the error (§4).
    # Stateful, so there is nothing to calibrate static INT8 on (the cache is inside the request) - and it would
    # not pay: on the AVX2 EPYC static INT8 steps ran as jit_gemm_I8 at 49 ms vs 29 ms FP32.
    # Symmetric INT8 weights decompress with one multiply (no zero point): measured on the full-size v2 (Zen 4,
    # 2 threads, u8 KV, 400 cached positions, OpenVINO 2026.4, benchmarks/decode_profile.py setup): INT8_SYM 7.2 ms
    # per step vs INT8_ASYM 7.9 ms (both with dynamic activation quantisation off, see DECODE_OPTIONS), logits
    # rel-L2 against FP32 0.0096 vs 0.0094.
    "gpt_decode": GraphPolicy("weights", "bandwidth-bound single-token decode: W8 1.5x/token at 2.7 % logit error, "
                                         "static INT8 no faster at 2-3x the error (tooling.md §4); stateful "
                                         "W8 19.5 vs 27.0 ms FP32 on an AVX2 EPYC; symmetric W8 7.2 vs 7.9 ms "
                                         "asymmetric at 400 positions (Zen 4)",
                              weight_mode="INT8_SYM"),
    # The batched step reads the same weights (once for all rows): same recipe, stateful too. Measured (full-size v2,
    # AMX Xeon, 2 threads, session 22; `quantize --decode-engine openvino`, then `benchmarks/decode_engines.py
    # --openvino INT8_OR_FP32_BUNDLE --rows 1 2 8 --filled 50 400`, each bundle twice, alternating): ms per step at
    # 50 / 400 positions, INT8 (u8 cache) vs FP32: 2 rows 13.8 / 21.8 and 10.3 / 14.6 vs 25.6 / 34.8 and 26.3 / 35.3;
    # 8 rows 17.9 / 56.2 and 15.1 / 46.1 vs 36.0 / 70.1 and 37.1 / 70.4 (1.25-2.6x faster); held-out logits
    # rel-L2 worst 0.0128, top-1 0.993 against FP32 (gpt_decode's own: 0.0076, 0.993).
    "gpt_batch_decode": GraphPolicy("weights", "the batched decode step: gpt_decode's recipe (same weights); 8 rows "
                                               "1.2-2.5x FP32's speed at 1.3 % logit error (AMX Xeon)",
                                    weight_mode="INT8_SYM"),
    # Prefill is compute-bound: static INT8 was 2.8x faster (119 vs 333 ms at 300 tokens). SmoothQuant off
    # (6.2 % vs 8.3 % error) and SDPA left float (5.9 %, and the CPU plugin keeps its fused attention kernel).
    "gpt_prefill": GraphPolicy("static", "compute-bound: static INT8 prefill 2.8x faster; SmoothQuant off and SDPA "
                                         "float gave the lowest error (tooling.md §4)",
                               transformer=True, ignored_types=SDPA_TYPES),
    # The speed-up above was measured with AVX-512 VNNI; see `default_policies` for CPUs without it.
    # Encoders are compute-bound like prefill; same recipe (not measured separately in the research).
    "bert": GraphPolicy("static", "compute-bound encoder, prefill recipe (SmoothQuant off, SDPA float)",
                        transformer=True, ignored_types=SDPA_TYPES),
    # Its output is discrete (VQ argmin over the HuBERT features): on the tiny model static INT8 changed 57 % of
    # the prompt tokens (also with the VQ and ssl_proj in float), W8 changed 5 %. It runs once per voice, so speed
    # hardly matters.
    "hubert_codes": GraphPolicy("weights", "discrete tokens: static INT8 flipped 57 % of them on the tiny model, "
                                           "W8 5 %; runs once per voice"),
    # HiFi-GAN: MIXED preset (asymmetric u8 after LeakyReLU) cut log-mel L1 by 20 % and avoided slow f32 GEMM
    # fallbacks for ConvTranspose; keeping conv_pre/conv_post and the cheap last 32 kHz stage float was the best
    # speed/quality point (27.1 dB SNR, 2.1x faster than FP32; §6).
    "sovits_vocoder": GraphPolicy("static", "MIXED preset, last upsampling stage + conv_pre/conv_post float: best "
                                            "speed/quality point on the HiFi-GAN (tooling.md §6)",
                                  mixed_preset=True,
                                  float_modules=(r"sovits\.dec\.conv_pre$", r"sovits\.dec\.conv_post$",
                                                 LAST_STAGE)),
    # SoVITS's text encoder and flow, the recipe they had inside the one SoVITS graph before the vocoder was split
    # off: full-size v2 at 256 tokens (Zen 4, 2 threads) static INT8 49 ms vs 104 ms FP32, z rel-L2 0.054; attention
    # float as in prefill.
    "sovits_latent": GraphPolicy("static", "SoVITS's encoder and flow: static INT8 (MIXED, attention float) 49 vs "
                                           "104 ms FP32 at 256 tokens, z rel-L2 0.054",
                                 mixed_preset=True, ignored_types=SDPA_TYPES),
    # Runs once per voice and is tiny: nothing to gain.
    "ref_encoder": GraphPolicy("float", "runs once per voice creation and is tiny"),
    # v2Pro/Plus speaker embedding: once per voice, and it shifts `ge` (hence every frame) directly.
    "sv_embedding": GraphPolicy("float", "runs once per voice creation; its output moves ge directly"),
}


def decode_kv_precision(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """u8 KV cache for the INT8 decode on AVX-512 CPUs, f32 elsewhere (measurements in the module docstring)."""
    return "u8" if "avx512f" in (cpu_flags(cpuinfo) or ()) else "f32"


# OpenVINO quantises a weight-compressed FullyConnected's activations on the fly in groups of 32 by default. For
# the one-row decode step (inner sizes 512 / 2048) that costs more than it saves: measured on the full-size v2
# INT8 decode (Zen 4, 2 threads, u8 KV, 400 positions): off 7.2 ms vs 7.5 ms (group 32, the default) with symmetric
# weights, 7.9 vs 8.5 ms with asymmetric ones, and the logits' rel-L2 against FP32 drops from 0.0135 to 0.0096.
# The batched step is the other way round: with 8 rows the INT8 x INT8 products pay for the quantisation
# (gpt_batch_decode, same machine, 300 cached positions, two interleaved runs: 2 / 4 / 8 rows 11.4-11.6 / 16.1-16.5 /
# 26.0-27.9 ms per step with the default vs 12.3-13.2 / 16.4-18.4 / 30.7-36.2 ms with it off), so it keeps the
# default. Only measured on AVX-512 CPUs: elsewhere OpenVINO's default stays for both.
def decode_runtime_options(graph: str = "gpt_decode", cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, str]:
    """OpenVINO options of the INT8 stateful decode graph `graph` (gpt_decode or gpt_batch_decode) on this CPU."""
    options = {"KV_CACHE_PRECISION": decode_kv_precision(cpuinfo)}
    if graph == "gpt_decode" and "avx512f" in (cpu_flags(cpuinfo) or ()):
        options["DYNAMIC_QUANTIZATION_GROUP_SIZE"] = "0"
    return options


# The one-token decode step is bandwidth-bound, and OpenVINO 2026.4's W8 FullyConnected decompresses its weights
# to f32 inside the kernel (~19 GB/s). onnxruntime's block-quantised matmuls (`MatMulNBits`: 8-bit symmetric
# weights, one scale per 128 inputs, int8 activations per block and 8-bit dot products) run the same step much
# faster. `python benchmarks/decode_engines.py` (full-size v2, Zen 4 AVX-512 VNNI/BF16, 2 threads, one sitting), ms
# per step at 50 / 400 / 1000 cached positions: onnxruntime 3.6 / 4.7 / 7.3 (f32 host cache) against OpenVINO's
# stateful W8 4.8 / 6.2 / 8.9 (u8 cache); 8 rows 8.7 / 17.3 / 31.9 vs 12.5 / 28.9 / 56.8. Blocks of 32 were slower
# (4.2 / 5.2 / 7.1), of 256 no faster (3.7 / 4.9 / 7.8). 4-bit blocks of 128 are faster again (2.9 / 4.2 / 6.0) but
# fail any useful gate on these random weights: teacher-forced logits against the FP32 decode (3 sentences × 60
# random tokens) rel-L2 worst 0.111, top-1 0.831, against 0.012 / 0.960 for 8 bits, so they are only offered behind
# a gate measured on the model at hand (`STEP_4BIT_GATE` below). Logits against FP32 on held-out sentences: rel-L2
# worst 0.011, top-1 1.000 (W8 on OpenVINO: 0.007, 0.989). The thread pool spins between calls (with spinning off
# 4.8 / 6.4 / 9.1 ms): the host's work between steps is short and a synthesizer runs one graph at a time. Not
# measured on AVX2-only CPUs, so `quantize` times both engines on the held-out sentences on the CPU at hand and
# keeps the faster (`choose_decode_engine`). The prefill does not use these block-INT8 matmuls: 216 ms at 280
# positions against 127 ms for OpenVINO's static INT8 graph (its onnxruntime stand-in is dynamic INT8: `stand_ins.py`).
STEP_NBITS = BlockQuantization(bits=8, block_size=128, accuracy_level=4)
# 4-bit blocks of 128 read half the weight bytes and step faster again (above), at ten times 8 bits' logit error on
# random weights. `quantize` tries them on the model at hand and takes them only where its held-out decode stays
# this close to the FP32 one (a few times 8 bits' worst: rel-L2 0.011, top-1 0.989 at full size) and they are at
# least `STEP_4BIT_MARGIN` faster per step; random full-size weights miss the gate (held-out sentences in `quantize`:
# rel-L2 0.109, top-1 0.957), so this repository's own bundles keep 8 bits.
STEP_4BIT = BlockQuantization(bits=4, block_size=128, accuracy_level=4)
STEP_4BIT_GATE = (Threshold("logits", "rel_l2", 0.05, False, "a few times the 8-bit step's worst (0.011, full size)"),
                  Threshold("logits", "top1_agreement", 0.95, True, "the sampled token rarely changes"))
STEP_4BIT_MARGIN = 0.95
STEP_ONNXRUNTIME_OPTIONS = {"session.intra_op.allow_spinning": "1"}
# onnxruntime must be this much faster to be taken: near a tie the stateful graph stays (its cache is updated in
# place inside the request, with no host copies)
ONNXRUNTIME_DECODE_MARGIN = 0.9
_UNTIMED_STEPS = 3  # first steps of each utterance: first-call set-up and cache growth, not steady state


def decode_step_ms(prefill, make_cache, utterances) -> float:
    """Median ms per decode step with the caches `make_cache(prefill outputs, prompt length)` makes, teacher-forced
    through the recorded utterances."""
    times = []
    for utt in utterances:
        cache = make_cache(*prefill_utterance(prefill, utt))
        for i, token in enumerate(utt.tokens[:-1]):
            start = time.perf_counter()
            cache.step(int(token))
            if i >= _UNTIMED_STEPS:
                times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times)) if times else float("nan")


def choose_decode_engine(requested: str, ms_per_step: dict[str, float]) -> tuple[str, str]:
    """(engine, reason): the caller's engine, or onnxruntime where it measured at least 10 % faster per step."""
    measured = ", ".join(f"{engine} {ms:.2f} ms" for engine, ms in ms_per_step.items())
    if requested != "auto":
        return requested, f"chosen by the caller (per step on this CPU: {measured})"
    faster = ms_per_step["onnxruntime"] < ONNXRUNTIME_DECODE_MARGIN * ms_per_step["openvino"]
    engine = "onnxruntime" if faster else "openvino"
    return engine, (f"measured per step on this CPU: {measured}; onnxruntime needs to be "
                    f"{100 * (1 - ONNXRUNTIME_DECODE_MARGIN):.0f} % faster to be taken")


def _drop_graph(folder: Path, manifest: Manifest, name: str) -> None:
    """Remove graph `name` and its files (an IR's weights too) from the bundle being written."""
    for rel in manifest.graphs.pop(name).files.values():
        remove_graph_file(folder, rel)


# onnxruntime runs the step's attention as ~20 small nodes per layer; `fused_attention` makes it one contrib node per
# layer that also writes the new keys and values into the bound cache itself (688 -> 352 nodes after onnxruntime's
# own fusions). Full-size v2, INT8 step, Zen 4, 2 threads, both bundles quantised from one FP32 export, one process,
# blocks of 20 steps through `HostKVCache` alternating (twice; `benchmarks/decode_engines.py --attention plain
# fused` drives both the same way, one after the other), ms per step at 50 /
# 400 / 1000 cached positions: fused 4.6-4.9 / 5.4-5.8 / 7.6 against plain 5.8-6.2 / 6.6-7.3 / 8.8 (1.25 / 1.21-1.25
# / 1.16x; benchmarks/RESULTS.md, session 15). The rewrite is exact up to float rounding: the fused FP32 step must
# match the plain one this closely before it is quantised, else the plain step stays.
FUSED_STEP_TOLERANCE = 1e-4  # largest logits / new-row difference, relative to the logits' largest magnitude
# The fused step's cache stays f32. In half precision it would hold half the memory (49 instead of 98 MB at 1000
# positions, full-size v2), but onnxruntime's CPU attention converts it as it reads: the full-size 8-bit step, one
# row, every buffer bound, medians of 30-60 steps, four runs in alternating order (`benchmarks/decode_engines.py
# --variants 8:128 --cache-dtypes float32 float16`, Zen 4, 2 threads, session 20), ms at 50 / 400 / 1000
# positions: f32 4.86 / 6.39 / 11.26, 5.61 / 6.91 / 10.29, 3.77 / 5.41 / 7.86, 4.49 / 7.57 / 8.98 against f16
# 5.01 / 6.80 / 8.69, 4.81 / 7.40 / 10.69, 4.76 / 6.17 / 8.91, 6.34 / 7.58 / 10.27: f32 faster in 9 of 12 pairs,
# and the 600 MB peak-memory goal is met with it. (MetaVoice's step, 1.2 GB of weights and caches 16x larger, keeps
# f16: there memory is the limit and the time was equal, `metavoice/step_engine.py`.) Again on an AMX Xeon (session
# 22, the query pre-scaled): one row f32 3.92 / 7.91 / 12.51 and 4.35 / 8.38 / 10.65 against f16 4.58 / 8.71 / 11.77
# and 5.10 / 8.38 / 11.17 ms; 8 rows f32 13.4 / 32.9 / 56.3 against f16 20.7 / 36.7 / 50.4. The attention alone
# (24 nodes, one row, `benchmarks/attention_cache.py`) shows the trade: f32 0.52 / 1.40 / 1.95 / 3.56 / 6.01 ms at
# 100 / 400 / 600 / 800 / 1000 positions, f16 2.00 / 1.80 / 2.58 / 2.88 / 3.66 — f32 reads a cache the last-level
# cache holds at ~30 GB/s but one that spills to memory at ~15 GB/s (half this box's streaming bandwidth), where
# half the bytes win; at the positions a sentence reaches (~150-600) the conversion costs more than it saves, so
# f32 stays.
STEP_CACHE_DTYPE = "float32"
# one row, and two rows filled to different lengths (each writes its new key at its own slot); one token each
FUSED_STEP_CALLS = (((5,), 1), ((3, 19), 1))


def gpt_step_feeds(filled: tuple[int, ...], new: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """`gpt_step`'s inputs besides the caches: one token per row, at its row's position."""
    return {"token": rng.integers(0, 100, (len(filled), new)).astype(np.int64), "position": np.array(filled, np.int64)}


def step_to_quantise(source: Bundle, folder: Path, threads: int) -> tuple[Path, dict]:
    """The FP32 step `quantize` makes 8-bit: its attention fused (`fused_attention`, written to `folder`) where the
    rewrite applies and matches the plain step within `FUSED_STEP_TOLERANCE`, else the plain one; and the record."""
    plain = source.file(source.graph("gpt_step").files["onnx"])
    gpt = source.manifest.model["gpt"]
    shape = (gpt["n_layer"], gpt["heads"], gpt["hidden"] // gpt["heads"])
    fused = folder / "gpt_step.fused.onnx"
    try:
        fuse_step_file(plain, fused, *shape, cache_dtype=STEP_CACHE_DTYPE)
    except FusionError as exc:
        return plain, {"fused": False, "reason": f"attention not fused: {exc}"}
    difference = check_fused_step(plain, fused, *shape, gpt_step_feeds, FUSED_STEP_CALLS, threads=threads)
    if not difference <= FUSED_STEP_TOLERANCE:
        fused.unlink()
        return plain, {"fused": False, "reason": f"attention not fused: the fused step differs from the plain one "
                                                  f"by {difference:.2e} of the logits' scale"}
    return fused, {"fused": True, "difference": float(f"{difference:.3g}"),
                   "reason": "attention fused into one GroupQueryAttention per layer, the cache written in place "
                             f"(against the plain FP32 step: {difference:.2e} of the logits' scale)"}


def choose_step_engine(source: Bundle, folder: Path, manifest: Manifest, utterances, options: QuantizeOptions,
                       fp32_backend: OpenVINOBackend) -> dict:
    """Write `gpt_step` as onnxruntime block-INT8 (its attention fused where that holds), time it against the
    quantised stateful `gpt_decode` on the held-out `utterances`, and keep one decode: the other's graphs leave
    the bundle. Returns the record."""
    entry = manifest.graphs["gpt_step"]
    original = copy.deepcopy(entry)
    target = "gpt_step.int8.onnx"
    fp32_step, attention = step_to_quantise(source, folder, options.threads)
    matmuls = quantize_matmuls_nbits(fp32_step, folder / target, STEP_NBITS)
    entry.files, entry.precision, entry.engine = {"onnx": target}, "int8", "onnxruntime"
    entry.runtime_options, entry.accuracy = {"onnxruntime": dict(STEP_ONNXRUNTIME_OPTIONS)}, {}
    if attention["fused"]:
        entry.inputs, entry.outputs = in_place_specs(entry.inputs, entry.outputs)
    write_manifest(folder, manifest)
    test = Bundle.load(folder)
    backend = OpenVINOBackend(threads=options.threads)
    decode, step = backend.session(test, "gpt_decode"), backend.session(test, "gpt_step")
    caches = {"openvino": cache_maker(decode, test.graph("gpt_decode")),
              "onnxruntime": cache_maker(step, test.graph("gpt_step"))}
    prefill = fp32_backend.session(source, "gpt_prefill")
    rounds = [{engine: decode_step_ms(prefill, make, utterances) for engine, make in caches.items()}
              for _ in range(2)]  # two interleaved rounds, the better of each: box noise only slows a run down
    ms_per_step = {engine: round(min(r[engine] for r in rounds), 3) for engine in caches}
    engine, reason = choose_decode_engine(options.decode_engine, ms_per_step)
    record = {"engine": engine, "reason": reason, "ms_per_step": ms_per_step, "matmuls": matmuls,
              "quantization": STEP_NBITS.to_json(), "attention": attention, "threads": options.threads}
    if engine == "onnxruntime":
        for name in ("gpt_decode", "gpt_batch_decode"):
            if name in manifest.graphs:
                _drop_graph(folder, manifest, name)
        (folder / original.files["onnx"]).unlink()  # the FP32 step
        record["four_bits"] = try_four_bit_step(source, fp32_step, folder, manifest, utterances, options, fp32_backend,
                                                ms_per_step["onnxruntime"])
        if record["four_bits"]["taken"]:
            record["quantization"] = STEP_4BIT.to_json()
    else:
        manifest.graphs["gpt_step"] = original
        (folder / target).unlink()
    if attention["fused"]:
        fp32_step.unlink()
    return record


def four_bit_note(record: dict, ms_per_step: dict) -> str:
    gate = "; ".join(f"{g['output']} {g['metric']} {g['value']:.4g} (must be {g['worst must be']})"
                     for g in record["gate"])
    timing = f"{record['ms_per_step']:.2f} vs {ms_per_step['onnxruntime']:.2f} ms" if "ms_per_step" in record else ""
    if record["taken"]:
        return f"decode: 4-bit weights taken ({timing}; {gate})"
    timing = f", {timing}" if timing else ""
    return f"decode: 4-bit weights not taken ({gate}{timing}); 8 bits kept"


def try_four_bit_step(source: Bundle, fp32_step: Path, folder: Path, manifest: Manifest, utterances,
                      options: QuantizeOptions, fp32_backend: OpenVINOBackend, eight_bit_ms: float) -> dict:
    """Quantise the FP32 step `fp32_step` to `STEP_4BIT` and keep it in place of the 8-bit one where its held-out
    decode passes `STEP_4BIT_GATE` against the FP32 decode and it is at least `STEP_4BIT_MARGIN` faster. Returns the
    record."""
    entry = manifest.graphs["gpt_step"]
    eight_bit = entry.files["onnx"]
    target = "gpt_step.int4.onnx"
    quantize_matmuls_nbits(fp32_step, folder / target, STEP_4BIT)
    entry.files, entry.precision = {"onnx": target}, "int4"
    write_manifest(folder, manifest)
    test = Bundle.load(folder)
    step = cache_maker(OpenVINOBackend(threads=options.threads).session(test, "gpt_step"), test.graph("gpt_step"))
    prefill = fp32_backend.session(source, "gpt_prefill")
    reference = cache_maker(fp32_backend.session(source, "gpt_decode"), source.graph("gpt_decode"))
    accuracy = decode_errors(prefill, reference, step, utterances)
    checks = [(threshold, *threshold.check(accuracy)) for threshold in STEP_4BIT_GATE]
    record = {"accuracy": accuracy, "gate": [dict(t.to_json(), value=value, passed=ok) for t, ok, value in checks],
              "taken": False}
    if all(ok for _, ok, _ in checks):
        record["ms_per_step"] = round(decode_step_ms(prefill, step, utterances), 3)
        record["taken"] = record["ms_per_step"] < STEP_4BIT_MARGIN * eight_bit_ms
    if record["taken"]:
        (folder / eight_bit).unlink()
    else:
        entry.files, entry.precision = {"onnx": eight_bit}, "int8"
        (folder / target).unlink()
    write_manifest(folder, manifest)
    return record


def vocoder_stages(module_paths: dict[str, str]) -> list[list[str]]:
    """Per upsampling stage of SoVITS's HiFi-GAN (input side first): patterns for its `ups.i` layer and resblocks."""
    ups = {int(m.group(1)) for p in module_paths.values() if (m := re.match(r"sovits\.dec\.ups\.(\d+)$", p))}
    blocks = {int(m.group(1)) for p in module_paths.values()
              if (m := re.match(r"sovits\.dec\.resblocks\.(\d+)", p))}
    if not ups:
        return []
    per_stage = (max(blocks) + 1) // (max(ups) + 1) if blocks else 0
    return [[rf"sovits\.dec\.ups\.{i}$"]
            + [rf"sovits\.dec\.resblocks\.{b}(\.|$)" for b in range(i * per_stage, (i + 1) * per_stage)]
            for i in range(max(ups) + 1)]


def with_last_stage(policy: GraphPolicy, stages: list[list[str]]) -> GraphPolicy:
    """`policy` with `LAST_STAGE` in its float modules replaced by the last stage's patterns (`vocoder_stages`)."""
    patterns = [p for pattern in policy.float_modules
                for p in ((stages[-1] if stages else []) if pattern == LAST_STAGE else [pattern])]
    return replace(policy, float_modules=tuple(patterns))


def quantize_within_budget(model, policy: GraphPolicy, calibration: list[dict], onnx_path: Path, subset_size: int,
                           validation: list[dict], reference_audio: list[np.ndarray], max_log_mel_l1: float,
                           threads: int = 1):
    """Accuracy-controlled static INT8 for SoVITS: quantise with `policy`; while the worst held-out log-mel L1
    against FP32 exceeds the budget, put one more part back into float, from the output side (the most sensitive,
    research/tooling.md §6): the vocoder's glue ops, then its upsampling stages; quantise again.
    Returns (model, record of every attempt).

    NNCF's own `quantize_with_accuracy_control` ranks every quantised op with one validation each (312 on the
    tiny vocoder) and had not finished ranking after 24 min on one core, so it is not used."""
    import openvino as ov


    stages = vocoder_stages(onnx_module_paths(onnx_path))
    kept_float = 1 if LAST_STAGE in policy.float_modules else 0
    policy = with_last_stage(policy, stages)
    # Output side first. The ops the vocoder runs between its stages (LeakyReLU, the resblock sum and its average)
    # belong to no stage module; they go first: on the tiny model the stages alone moved log-mel L1 only from 0.139
    # to 0.132, while with them the whole SoVITS in float except 20 quantisers reached 0.006.
    groups = [("dec glue", [r"sovits\.dec$"])]
    groups += [(f"dec stage {i}", stages[i]) for i in reversed(range(len(stages) - kept_float))]
    extra: list[str] = []
    attempts = []
    for more in range(len(groups) + 1):
        if more:
            extra.extend(groups[more - 1][1])
        candidate = quantize_graph(model.clone(), replace(policy, float_modules=policy.float_modules + tuple(extra)),
                                   calibration, onnx_path, subset_size)
        compiled = ov.Core().compile_model(candidate, "CPU", {"INFERENCE_PRECISION_HINT": "f32",
                                                              "INFERENCE_NUM_THREADS": threads})
        worst = max(log_mel_l1(ref, compiled(feeds)[compiled.outputs[0]])
                    for feeds, ref in zip(validation, reference_audio))
        attempts.append({"also_float": groups[more - 1][0] if more else "policy", "log_mel_l1": worst})
        if worst <= max_log_mel_l1:
            return candidate, {"max_log_mel_l1": max_log_mel_l1, "met": True, "attempts": attempts}
    return candidate, {"max_log_mel_l1": max_log_mel_l1, "met": False, "attempts": attempts}


def _compute(name: str, model, source: Bundle, entry, held: list[dict], computes: dict[str, ComputeChoice],
             fp32_backend: OpenVINOBackend) -> dict:
    """The compute precision of quantised graph `name` (`choose_compute`: the CPU's choice, if it passes the gate)."""
    choice = computes.get(name, ComputeChoice("f32", "f32: bf16 not chosen for this graph on this CPU"))
    if choice.precision == "f32":
        return {"precision": "f32", "reason": choice.reason}
    if entry.states:
        return {"precision": "f32", "reason": "bf16 not tried: a stateful graph's inputs live in its request state"}
    reference = run_all(fp32_backend.session(source, name), held)
    return choose_compute(name, model, choice, held, reference, fp32_backend.config_for(entry))


def _gate(name: str, source: Bundle, test: Bundle, calibration: CalibrationSet, held_utterances,
          fp32_backend: OpenVINOBackend, test_backend: OpenVINOBackend) -> dict:
    """Graph `name`'s error against FP32: held-out recorded feeds, or for a decode graph (whose cache inputs are
    not recorded) the held-out utterances replayed against the FP32 stateful decode."""
    entry = test.graph(name)
    if not (entry.states or name == "gpt_step"):
        _, held = split_items(calibration.items.get(name, []))
        return _graph_accuracy(fp32_backend, test_backend, source, test, name, held)
    reference = name if entry.states else "gpt_decode"
    return decode_errors(fp32_backend.session(source, "gpt_prefill"),
                         cache_maker(fp32_backend.session(source, reference), source.graph(reference)),
                         cache_maker(test_backend.session(test, name), entry), held_utterances)


def cache_maker(session, entry: GraphEntry):
    """`(prefill outputs, prompt length) -> cache` over a decode session: stateful graphs keep the cache in their
    request, `gpt_step` in host buffers."""
    if entry.states:
        return lambda out, prompt_len: StatefulCache(session, out, entry.states, prompt_len)
    n_layer = sum(t.name.startswith("past_key.") for t in entry.inputs)
    return lambda out, prompt_len: HostKVCache(session, out, n_layer, prompt_len)


def _graph_accuracy(backend_fp32, backend_test, source: Bundle, test: Bundle, name: str, held_out: list[dict]):
    if not held_out:
        return {}
    reference = run_all(backend_fp32.session(source, name), held_out)
    return graph_errors(name, reference, run_all(backend_test.session(test, name), held_out))


def _check_source(bundle: Bundle) -> None:
    if bundle.manifest.family != "gpt-sovits":
        raise BundleError(f"{bundle.path}: only gpt-sovits bundles can be quantised")
    not_fp32 = [n for n, g in bundle.manifest.graphs.items() if g.precision != "fp32"]
    if not_fp32:
        raise BundleError(f"{bundle.path}: graphs {', '.join(not_fp32)} are not FP32; quantise the FP32 bundle")


# Static INT8 pays off only where the CPU has 8-bit dot-product instructions (VNNI, AMX). Measured on an
# AVX2-only EPYC (tiny model, 1 thread): static INT8 prefill 216 vs 112 ms FP32, bert 18 vs 8 ms, i.e. 2× slower,
# while weight-only kept FP32 speed at 16× lower logit error (full size, one core: prefill at 275 positions 1494 vs
# 1473 ms, bert 727 vs 741 ms). Without VNNI these graphs therefore default to W8, for its 4× smaller weights.
STATIC_NEEDS_INT8_DOT = ("gpt_prefill", "bert")


def default_policies(has_int8_dot: bool | None = None) -> dict[str, GraphPolicy]:
    policies = dict(POLICY)
    if not (cpu_has_int8_dot() if has_int8_dot is None else has_int8_dot):
        for name in STATIC_NEEDS_INT8_DOT:
            policies[name] = replace(policies[name], method="weights",
                                     reason="no VNNI/AMX on this CPU: static INT8 measured 2x slower than FP32; "
                                            "weight-only INT8 runs at FP32 speed (prefill 0.99x, bert 1.02x, one "
                                            "AVX2 core) with 4x smaller weights")
    return policies


# `--method GRAPH=bf16` (METHODS): the FP32 IR with a bf16 hint, no INT8 at all. Measured on an AMX Xeon
# (benchmarks/results/gpt_sovits_precision_amx.md): the vocoder so is 3.55x FP32 (0.042 s per s of audio, ~2x
# onnxruntime's 8-bit vocoder), SNR 55 dB, but log-mel L1 1.06 against FP32 on random weights, over the audible level
# `quantize` warns at (0.3): the caller's choice, never the default.


def _policies(bundle: Bundle, methods: dict[str, str] | None) -> dict[str, GraphPolicy]:
    policies = default_policies()
    for name, method in (methods or {}).items():
        if name not in bundle.manifest.graphs:
            raise BundleError(f"{bundle.path}: no graph {name!r} (graphs: {', '.join(bundle.manifest.graphs)})")
        if method not in METHODS:
            raise BundleError(f"unknown method {method!r} for {name} (choose {', '.join(METHODS)})")
        if "openvino" not in bundle.manifest.graphs[name].files:
            raise BundleError(f"{name} has no OpenVINO IR in this bundle (onnxruntime runs it in FP32)")
        if method == "static" and bundle.manifest.graphs[name].states:
            raise BundleError(f"{name} is stateful: its cache inputs cannot be recorded, use weights or float")
        base = policies.get(name, GraphPolicy("float", ""))
        policies[name] = replace(base, method=method, reason=f"chosen by the caller (default: {base.method})")
    for name, policy in policies.items():
        entry = bundle.manifest.graphs.get(name)
        if entry and policy.method == "static" and policy.float_modules and "onnx" not in entry.files:
            # the float parts are found by torch module names, which only the ONNX file records
            raise BundleError(f"{bundle.path}: {name} keeps some layers in float, found through its ONNX file, "
                              "which this bundle does not ship (--format openvino): export with both formats to "
                              f"quantise, or pass --method {name}=weights")
    return policies


@dataclass
class _Job:
    """One `quantize_bundle` call: what its stages read, and the bundle (`folder`, `manifest`) and report they write."""

    source: Bundle
    folder: Path
    manifest: Manifest
    calibration: CalibrationSet
    options: QuantizeOptions
    policies: dict[str, GraphPolicy]
    report: QuantizationReport
    cpu: CpuInfo
    computes: dict[str, ComputeChoice]  # what each graph's float parts compute in on this CPU (`compute.py`)
    fp32_backend: OpenVINOBackend
    bar: tqdm  # the graphs' bar, then the checks' (`step`)

    def step(self, what: str) -> None:
        """After the graphs: name the check now running (engine timings, the gate), each on its own count."""
        self.bar.update(1)
        self.bar.set_postfix_str(what)


def quantize_bundle(source: str | Path | Bundle, out: str | Path, calibration: CalibrationSet,
                    options: QuantizeOptions = QuantizeOptions()) -> QuantizationReport:
    """Write the `options.precision` ("int8" or "bf16") variant of the FP32 bundle `source` to `out`: each graph's
    IR quantised by its policy, then (INT8) the per-CPU engine choices, the accuracy gate on the written bundle and
    the record of it all in the manifest."""
    import nncf

    _check_options(options)
    nncf.set_log_level(logging.WARNING)
    start = time.perf_counter()
    source = source if isinstance(source, Bundle) else Bundle.load(source)
    _check_source(source)
    policies = _policies(source, options.methods)  # a wrong --method fails before anything is written
    cpu = detect()
    computes = compute_policies(cpu, choices(options).compute)
    manifest: Manifest = copy.deepcopy(source.manifest)
    report = QuantizationReport(Path(out), options.precision, 0.0)
    with atomic_folder(out, overwrite=options.overwrite, keep=[source.path]) as folder:
        for rel in source.manifest.files:
            shutil.copyfile(source.file(rel), folder / rel)
        names = [n for n in POLICY if n in manifest.graphs] + [n for n in manifest.graphs if n not in POLICY]
        bar = tqdm(names, desc=f"{options.precision} graphs", unit="graph", disable=not options.progress)
        job = _Job(source, folder, manifest, calibration, options, policies, report, cpu, computes,
                   OpenVINOBackend(threads=options.threads, precision="f32"), bar)
        for name in bar:
            bar.set_postfix_str(name)
            _quantize_graph(job, name)
        _drop_replaced_irs(folder, manifest)
        write_manifest(folder, manifest)
        _, held_utterances = split_items(calibration.utterances)
        held_utterances = held_utterances[:END_TO_END_UTTERANCES]
        # the choices below time and compare whole graphs on this CPU (minutes at full size): a bar says which runs
        job.bar = tqdm(desc="engines and accuracy", unit="check", disable=not options.progress,
                       bar_format="{desc}, check {n_fmt} [{elapsed}{postfix}]")
        engines = _choose_engines(job, held_utterances) if options.precision == "int8" else {}
        if options.precision == "int8":
            engines["int8_speed"] = _check_int8_speed(job, engines)
        test_backend = OpenVINOBackend(threads=options.threads)  # the manifest's hint decides, as in production
        _accuracy_gate(job, held_utterances, test_backend)
        job.bar.close()
        manifest.extra["quantization"] = _record(job, engines)
        report.seconds = time.perf_counter() - start
        manifest.extra["quantization"]["seconds"] = round(report.seconds, 1)
        write_manifest(folder, manifest)
    return report


def _check_options(options: QuantizeOptions) -> None:
    if options.precision not in ("int8", "bf16"):
        raise BundleError(f"unknown precision {options.precision!r} (choose int8 or bf16)")
    if options.decode_engine not in ENGINE_CHOICES:
        raise BundleError(f"unknown decode engine {options.decode_engine!r} (choose {', '.join(ENGINE_CHOICES)})")
    choices(options)  # another family's choices are refused before anything is written


def _policy_with_data(job: _Job, name: str) -> GraphPolicy:
    """`name`'s policy, made weight-only (data-free) where it is static INT8 but the calibration never ran the graph
    (BERT runs only for Chinese text: an English-only --calibration-texts), instead of failing the whole run; the
    manifest records the policy used."""
    policy = job.policies.get(name, GraphPolicy("float", "no policy for this graph"))
    if policy.method != "static" or job.calibration.items.get(name):
        return policy
    job.policies[name] = replace(policy, method="weights", reason=f"weight-only: the calibration never ran {name} "
                                                                  f"(static INT8 needs its inputs; {policy.reason})")
    hint = " (BERT runs for Chinese text only: add Chinese sentences to calibrate it)" if name == "bert" else ""
    tqdm.write(f"{name}: the calibration sentences never ran it; weight-only INT8 instead of static{hint}")
    return job.policies[name]


def _quantize_graph(job: _Job, name: str) -> None:
    """Graph `name`'s IR in the variant's precision: the bf16 hint, or its policy's NNCF quantisation (the
    vocoder's under accuracy control with `--accuracy-drop`) with the compute precision chosen for this CPU."""
    entry = job.manifest.graphs[name]
    if "openvino" not in entry.files:
        return  # ONNX-only graph: onnxruntime runs it unchanged
    if job.options.precision == "bf16":
        entry.precision = "bf16"
        entry.runtime_options.setdefault("openvino", {})["INFERENCE_PRECISION_HINT"] = "bf16"
        job.report.graphs[name] = {"method": "bf16-hint"}
        return
    import openvino as ov

    graph_start = time.perf_counter()
    policy = _policy_with_data(job, name)
    info = job.report.graphs[name] = {"method": policy.method, "reason": policy.reason}
    if policy.method == "float":  # the FP32 IR as exported, in f32
        info["compute"] = {"precision": "f32", "reason": policy.reason}
        return
    if policy.method == "bf16":  # the FP32 IR as exported, computed in bf16 (f32 where the CPU has no native bf16)
        entry.precision = "bf16"
        entry.runtime_options.setdefault("openvino", {})["INFERENCE_PRECISION_HINT"] = "bf16"
        info["compute"] = {"precision": "bf16", "reason": policy.reason}
        return
    calib, held = split_items(job.calibration.items.get(name, []))
    model = read_ir(ov.Core(), job.source, entry.files["openvino"])
    onnx_path = job.source.file(entry.files["onnx"]) if "onnx" in entry.files else None
    max_drop = choices(job.options).max_drop
    if max_drop is not None and name == "sovits_vocoder" and policy.method == "static" and held:
        job.bar.set_postfix_str(f"{name}, accuracy control")
        fp32_session = job.fp32_backend.session(job.source, name)
        reference_audio = [fp32_session.run(item)["audio"] for item in held]
        quantised, control = quantize_within_budget(model, policy, calib, onnx_path, job.options.subset_size, held,
                                                    reference_audio, max_drop, job.options.threads)
        info["accuracy_control"] = control
        if not control["met"]:
            job.report.notes.append(f"note: sovits_vocoder stays above the log-mel L1 budget {max_drop} even with "
                                    f"every part in float but the posterior-free glue "
                                    f"({control['attempts'][-1]['log_mel_l1']:.4f}); kept the last attempt")
    else:
        if LAST_STAGE in policy.float_modules:
            policy = with_last_stage(policy, vocoder_stages(onnx_module_paths(onnx_path)))
        quantised = quantize_graph(model, policy, calib, onnx_path, job.options.subset_size)
    info["compute"] = _compute(name, quantised, job.source, entry, held, job.computes, job.fp32_backend)
    xml = f"{name}.int8.xml"
    ov_options = dict(entry.runtime_options.get("openvino", {}), INFERENCE_PRECISION_HINT=info["compute"]["precision"])
    if name in ("gpt_decode", "gpt_batch_decode"):
        ov_options.update(decode_runtime_options(name))
    for key, value in ov_options.items():
        quantised.set_rt_info(str(value), ["runtime_options", key])
    save_ir(quantised, job.folder / xml)
    entry.files = dict(entry.files, openvino=xml)  # any ONNX stays FP32 (see module doc)
    entry.precision = "int8"
    entry.runtime_options["openvino"] = ov_options
    parity = entry.accuracy.get("fp32_vs_torch", {})
    entry.accuracy = {"fp32_vs_torch": {k: v for k, v in parity.items() if k == "onnxruntime"}}
    info["seconds"] = round(time.perf_counter() - graph_start, 1)
    info["calibration_items"] = len(calib) if policy.method == "static" else 0


def _drop_replaced_irs(folder: Path, manifest: Manifest) -> None:
    """Remove the FP32 IR of every graph that now ships a quantised one."""
    irs = [g.files["openvino"] for g in manifest.graphs.values() if "openvino" in g.files]
    for rel in [f for f in list(manifest.files) if f.endswith((".xml", ".bin"))]:
        if not any(rel in (xml, xml[:-4] + ".bin") for xml in irs):
            (folder / rel).unlink()


def _choose_engines(job: _Job, held_utterances: list) -> dict:
    """INT8 only: which engine runs the decode, the vocoder and the stand-in graphs on this CPU (each measured;
    `quantize`'s --*-engine options force one); returns their records, by manifest key."""
    options, report, manifest = job.options, job.report, job.manifest
    engines = {}
    if (options.decode_engine != "openvino" and "gpt_step" in manifest.graphs and "gpt_decode" in report.graphs
            and held_utterances):
        job.step("decode engine")
        record = engines["decode_engine"] = choose_step_engine(job.source, job.folder, manifest, held_utterances,
                                                               options, job.fp32_backend)
        if record["engine"] == "onnxruntime":
            report.graphs = {n: info for n, info in report.graphs.items() if n in manifest.graphs}
            report.graphs["gpt_step"] = {"method": "nbits", "reason": record["reason"]}
        report.notes.append(f"decode: {record['engine']} ({record['reason']})")
        if "four_bits" in record:
            report.notes.append(four_bit_note(record["four_bits"], record["ms_per_step"]))
        write_manifest(job.folder, manifest)
    if report.graphs.get("sovits_vocoder", {}).get("method") == "static":
        job.step("vocoder engine")
        record = engines["vocoder_engine"] = choose_vocoder_engine(job.source, job.folder, manifest, job.calibration,
                                                                   options, job.cpu, job.fp32_backend)
        where = "onnxruntime on CPUs with VNNI, OpenVINO elsewhere" if record["taken"] else "OpenVINO"
        report.notes.append(f"vocoder: {where} ({record['reason']})")
        if "float_tail" in record:
            report.notes.append(f"vocoder's float stages: {record['float_tail']['reason']}")
        for graph, layout in record.get("layout", {}).items():
            report.notes.append(f"{graph} layout: {layout['reason']}")
    for spec in STAND_INS:
        if report.graphs.get(spec.replaces, {}).get("method") == "static":
            job.step(spec.graph)
            record = engines[spec.option] = choose_stand_in(spec, job.source, job.folder, manifest, job.calibration,
                                                            options, job.cpu, job.fp32_backend)
            where = "onnxruntime on CPUs with VNNI, OpenVINO elsewhere" if record["taken"] else "OpenVINO"
            report.notes.append(f"{spec.replaces}: {where} ({record['reason']})")
    return engines


def _check_int8_speed(job: _Job, engines: dict) -> dict:
    """Every static INT8 graph OpenVINO runs on this CPU (no onnxruntime stand-in taken in its place) against its
    FP32 IR on the held-out calls (`int8_speed`); one clearly slower goes back to the FP32 IR. Returns the records."""
    replaced = {record.get("replaces") for record in engines.values() if record.get("taken")}
    static = [n for n, info in job.report.graphs.items() if info["method"] == "static" and n not in replaced]
    bundle, records = Bundle.load(job.folder), {}
    for name in static:
        _, held = split_items(job.calibration.items.get(name, []))
        if not held:
            continue
        job.step(f"{name} speed")
        # a backend per graph, dropped after it: at most one INT8 graph compiled at a time (OpenVINO's AMX INT8
        # vocoder alone took +3.6 GiB on its first call)
        int8_session = OpenVINOBackend(threads=job.options.threads).session(bundle, name)
        record = records[name] = int8_speed(job.fp32_backend.session(job.source, name), int8_session, held)
        if not record["kept"]:
            _back_to_fp32(job, name, record["reason"])
            job.report.notes.append(f"{name}: FP32 ({record['reason']})")
    write_manifest(job.folder, job.manifest)
    return records


def _back_to_fp32(job: _Job, name: str, reason: str) -> None:
    """Graph `name` as the FP32 bundle has it (IR, hints, parity record), in place of its INT8 IR."""
    entry, original = job.manifest.graphs[name], job.source.manifest.graphs[name]
    remove_graph_file(job.folder, entry.files["openvino"])
    xml = original.files["openvino"]
    for rel in (xml, xml[: -len(".xml")] + ".bin"):
        shutil.copyfile(job.source.file(rel), job.folder / rel)
    job.manifest.graphs[name] = copy.deepcopy(original)
    job.report.graphs[name] = {"method": "float", "reason": reason, "compute": {"precision": "f32", "reason": reason}}


def _accuracy_gate(job: _Job, held_utterances: list, test_backend: OpenVINOBackend) -> None:
    """Each quantised graph's error against FP32 and the end-to-end figures, on the written bundle exactly as the
    runtime will load it (into the report and each graph's manifest entry)."""
    test = Bundle.load(job.folder)
    for name, info in job.report.graphs.items():
        if info["method"] == "float":
            continue
        job.step(f"{name} accuracy")
        accuracy = _gate(name, job.source, test, job.calibration, held_utterances, job.fp32_backend, test_backend)
        info["accuracy"] = accuracy
        job.manifest.graphs[name].accuracy[f"{job.manifest.graphs[name].precision}_vs_fp32"] = accuracy
    job.step("end-to-end accuracy")
    job.report.end_to_end = end_to_end(Synthesizer(job.source, backend=job.fp32_backend),
                                       Synthesizer(test, backend=test_backend), held_utterances)
    job.report.notes += audio_warnings(job.report)
    if job.options.precision == "bf16":
        compiled = test_backend.session(test, "gpt_decode" if "gpt_decode" in test.manifest.graphs
                                        else "gpt_prefill").precision()
        if "bf16" not in compiled:
            # OpenVINO silently runs f32 on CPUs without native bf16 (e.g. AVX2-only): say so.
            job.report.notes.append(f"note: this CPU compiled the bf16 bundle as {compiled}; the hint only takes "
                                    "effect on CPUs with native bf16 (AVX512_BF16 / AMX)")


def audio_warnings(report: QuantizationReport) -> list[str]:
    """A note for each graph (and the end-to-end run) whose worst held-out audio is over `AUDIBLE_LOG_MEL_L1`."""
    worst = {name: info.get("accuracy", {}).get("audio", {}).get("log_mel_l1", {}).get("worst")
             for name, info in report.graphs.items()}
    worst["end to end"] = report.end_to_end.get("audio", {}).get("log_mel_l1", {}).get("worst")
    remedy = {"sovits_vocoder": f"; `--accuracy-drop {AUDIBLE_LOG_MEL_L1}` puts its parts back in float until it holds"}
    return [f"note: {name}'s audio differs from FP32 by log-mel L1 {value:.2f} on held-out calls (mel bands off by "
            f"x{math.exp(value):.1f} on average, over {AUDIBLE_LOG_MEL_L1}): listen to it before shipping"
            + remedy.get(name, "") for name, value in worst.items() if value is not None and value > AUDIBLE_LOG_MEL_L1]


def _record(job: _Job, engines: dict) -> dict:
    """The manifest's `quantization` record: policy, calibration, every engine choice and the end-to-end gate."""
    import nncf
    import openvino as ov

    options, report = job.options, job.report
    int8 = options.precision == "int8"
    not_measured = {"taken": False, "reason": "not measured"}
    return {
        "precision": options.precision, "source_bundle_hash": job.source.bundle_hash,
        "policy": {n: job.policies[n].to_json() for n in report.graphs if n in job.policies} if int8 else
                  {"all": "same FP32 IR, INFERENCE_PRECISION_HINT=bf16"},
        "calibration": {"utterances": len(job.calibration.utterances), "items": job.calibration.counts(),
                        "subset_size": options.subset_size, "collect_seconds": round(job.calibration.seconds, 1)},
        "accuracy_control": report.graphs.get("sovits_vocoder", {}).get("accuracy_control"),
        "decode_engine": engines.get("decode_engine") or {
            "engine": "openvino", "reason": "chosen by the caller" if options.decode_engine == "openvino"
            else "not measured"},
        "vocoder_engine": engines.get("vocoder_engine", not_measured),
        "int8_speed": engines.get("int8_speed", {}),  # static INT8 against FP32 where OpenVINO runs it
        **{spec.option: engines.get(spec.option, not_measured) for spec in STAND_INS},
        "compute": {"cpu": job.cpu.summary(), "cpu_class": job.cpu.cpu_class,
                    "graphs": {n: info["compute"] for n, info in report.graphs.items() if "compute" in info}},
        "end_to_end_vs_fp32": report.end_to_end,
        "tools": {"nncf": nncf.__version__, "openvino": ov.__version__},
        "note": "random-weight accuracy is not a proxy for trained checkpoints: re-measure on real models",
    }


def calibrate_and_quantize(bundle: str | Path, out: str | Path, inputs: CalibrationInputs,
                           options: QuantizeOptions = QuantizeOptions()) -> QuantizationReport:
    """Record calibration inputs on the FP32 bundle (see `edgevoice_calibration.collect`), then quantise."""
    from edgevoice_calibration.gpt_sovits import DEFAULT_MAX_TOKENS, CollectOptions, collect_calibration

    source = Bundle.load(bundle)
    _check_source(source)
    _policies(source, options.methods)
    if Path(out).resolve() == source.path.resolve():
        raise BundleError(f"{out}: the output must not be the source bundle")
    if Path(out).exists() and not options.overwrite:
        raise BundleError(f"{out}: already exists (pass --overwrite to replace it)")
    calibration = collect_calibration(source, inputs, CollectOptions(
        max_tokens=choices(options).max_tokens or DEFAULT_MAX_TOKENS, threads=options.threads,
        progress=options.progress))
    return quantize_bundle(source, out, calibration, options)
