"""GPT-SoVITS compute precision per CPU class: which graphs run their float parts in bf16, with the measurements
behind each choice (`COMPUTE_POLICY`), and the accuracy gate every choice has to pass (`COMPUTE_GATES`).

A graph's weights (INT8 or float: `POLICY` in quantize.py) and its compute precision are separate choices. The
compute precision is OpenVINO's `INFERENCE_PRECISION_HINT`: what every op that is not an INT8 matmul/convolution
runs in (for weight-only INT8, the matmuls themselves after dequantisation), stored in the graph's
`runtime_options` and applied by the runtime.

* Quantise time: `compute_policies` gives the row of the CPU at hand (`edgevoice.cpu.detect`); `choose_compute`
  compiles a graph whose row says bf16 with a bf16 hint and runs its held-out inputs next to FP32: bf16 is kept only
  within `COMPUTE_GATES`, otherwise the graph stays f32 and the report says which limit it missed.
* Load time: a bundle's bf16 choice runs as f32 on a CPU without native bf16 (`edgevoice.cpu.runnable_hint`, called
  from `OpenVINOBackend.config_for`), i.e. as the INT8/f32 bundles measured on the AVX2-only Zen 1.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgevoice.cpu import CLASSES, CpuInfo, detect
from edgevoice.errors import EdgevoiceError

from .accuracy import graph_errors
from ..quantize import Threshold


@dataclass(frozen=True)
class ComputeChoice:
    precision: str  # INFERENCE_PRECISION_HINT for the graph's float parts: "f32" or "bf16"
    reason: str  # the measurement behind it

    def to_json(self) -> dict:
        return {"precision": self.precision, "reason": self.reason}


# ------------------------------------------------------------------------------------------------ policy
# Measured with `benchmarks/precision_sweep.py` (benchmarks/results/gpt_sovits_precision.md): full-size random-weight
# v2 (make_test_model size="full"), its INT8 variant from `edgevoice quantize`, AMD EPYC Zen 4 (avx512_bf16,
# avx512_vnni, no AMX), 2 threads, OpenVINO 2026.4.1; speed-ups are medians of interleaved rounds against the FP32
# IR in f32, accuracy the worst input against it.
NATIVE_BF16: dict[str, ComputeChoice] = {
    # Re-measured on the vocoder as it is now (its own graph, no transposed convolutions), 2026-12-06:
    # `python benchmarks/vocoder_engines.py --fp32 FP32 --int8 INT8 --frames 128 256 500` (RESULTS.md, session 13).
    # At 500 frames (10 s): FP32 2.20 s, all-bf16 1.12 s, INT8 + f32 1.02 s, INT8 + bf16 0.97 s (5 % faster) at
    # 15x its log-mel L1 (1.64 vs 0.11; SNR 40.5 vs 49.5 dB); all-bf16 L1 1.01. On CPUs with VNNI the synthesizer
    # runs onnxruntime's 8-bit vocoder anyway (1.04 s, L1 0.014).
    "sovits_vocoder": ComputeChoice("f32", "INT8 + bf16 0.97 s vs INT8 + f32 1.02 s for 10 s of audio (5 %) at 15x "
                                          "the log-mel L1 (1.64 vs 0.11); all-bf16 1.12 s, L1 1.01 (session 13; "
                                          "first measured on SoVITS with its transposed convolutions: no gain)"),
    "sovits_latent": ComputeChoice("f32", "not swept: kept f32 (SoVITS's encoder and flow, ~5 % of its INT8 time)"),
    "gpt_decode": ComputeChoice("f32", "INT8 + bf16 2.36-2.42x vs INT8 + f32 2.38-2.44x FP32 per step (u8 KV cache "
                                       "both, two sweeps): no gain, twice the logit error (rel-L2 0.027 vs 0.013)"),
    "gpt_batch_decode": ComputeChoice("f32", "the batched decode step reads gpt_decode's weights: as gpt_decode "
                                             "(not swept separately)"),
    "gpt_prefill": ComputeChoice("f32", "INT8 + bf16 2.19-2.53x vs INT8 + f32 2.17-2.62x FP32 in three sweeps: no "
                                        "gain (static INT8 leaves little in float), same logits"),
    "bert": ComputeChoice("bf16", "INT8 + bf16 3.05-3.20x FP32 vs INT8 + f32 2.71-3.07x in three sweeps (4-14 % "
                                  "faster), same error (hidden rel-L2 0.040)"),
    "hubert_codes": ComputeChoice("bf16", "weight-only INT8 is dequantised into the compute precision: INT8 + bf16 "
                                          "2.00-2.19x FP32 vs INT8 + f32 1.46-1.51x in three sweeps, prompt tokens "
                                          "agreeing 0.942 vs 0.914"),
    "ref_encoder": ComputeChoice("f32", "kept float (runs once per voice for ~10 ms; its ge moves every frame)"),
    "sv_embedding": ComputeChoice("f32", "kept float (runs once per voice; its output moves ge directly); not "
                                         "measured"),
}

# No native bf16: OpenVINO ignores a bf16 hint or emulates bf16 with f32 instructions, which only adds conversions.
# These CPUs keep what was measured on the AVX2-only Zen 1 (research/tooling.md, quantize.py): INT8 weights, f32.
NO_NATIVE_BF16 = {name: ComputeChoice("f32", "no native bf16 on this CPU class: f32 float parts, the INT8 policy as "
                                             "measured on an AVX2-only EPYC (Zen 1)") for name in NATIVE_BF16}

# Measured on an Intel Xeon with AMX (family 6 model 167; amx_bf16, amx_int8, avx512_bf16, avx512_vnni), 2 threads,
# OpenVINO 2026.4.1, 2026-12-07: `python benchmarks/precision_sweep.py --rounds 3`
# (benchmarks/results/gpt_sovits_precision_amx.md). The same choices as on AVX512_BF16, now measured: AMX's bf16
# tiles make bf16 alone 1.9-3.6x FP32, but where a graph is INT8 the INT8 kernels decide.
AMX: dict[str, ComputeChoice] = {
    "sovits_vocoder": ComputeChoice("f32", "the INT8 IR runs 0.39x FP32 whatever its float parts (1536 ms with bf16 vs "
                                          "1556 f32 at 100 tokens: OpenVINO's AMX INT8 convolutions, "
                                          "brgconv_avx512_amx_I8, are ~6x slower than its AVX-512 VNNI ones on these "
                                          "1-d convolutions and add ~3.6 GiB on their first call); this CPU runs "
                                          "onnxruntime's 8-bit vocoder instead (vocoder_engine.py). The FP32 IR in "
                                          "bf16 is 3.55x FP32 (0.042 s per s of audio) but log-mel L1 1.06"),
    "sovits_latent": NATIVE_BF16["sovits_latent"],
    "gpt_decode": ComputeChoice("f32", "not swept: onnxruntime's block-INT8 step is taken on this CPU (6.47 vs 9.25 ms "
                                       "per step for OpenVINO's INT8 decode, quantize's own measurement)"),
    "gpt_batch_decode": NATIVE_BF16["gpt_batch_decode"],
    "gpt_prefill": ComputeChoice("f32", "INT8 + bf16 2.30x FP32 vs INT8 + f32 2.52x (74 vs 81 ms at the sweep's "
                                        "prompts), same logits (rel-L2 0.205 vs 0.204); bf16 alone 1.94x"),
    "bert": ComputeChoice("bf16", "INT8 + bf16 3.69x FP32 vs INT8 + f32 3.51x, same error (hidden rel-L2 0.039)"),
    "hubert_codes": ComputeChoice("bf16", "INT8 + bf16 2.27x FP32 vs INT8 + f32 1.30x, prompt tokens agreeing 0.928 "
                                          "both (the FP32 IR in bf16: 2.94x at 0.964, with 4x the weights)"),
    "ref_encoder": ComputeChoice("f32", "kept float (once per voice, 3.2 ms; bf16 1.41x at ge rel-L2 0.0034)"),
    "sv_embedding": NATIVE_BF16["sv_embedding"],
}

COMPUTE_POLICY: dict[str, dict[str, ComputeChoice]] = {
    "avx512_bf16": NATIVE_BF16,
    "amx": AMX,
    **{name: NO_NATIVE_BF16 for name in CLASSES if name not in ("avx512_bf16", "amx")},
}
COMPUTE_MODES = ("auto", "f32")


def compute_policies(cpu: CpuInfo | None = None, mode: str = "auto") -> dict[str, ComputeChoice]:
    """Per graph, the compute precision for `cpu`'s class (default: this machine's). `mode` "f32": f32 everywhere,
    as INT8 bundles were made before the choice was per CPU."""
    if mode not in COMPUTE_MODES:
        raise EdgevoiceError(f"unknown compute mode {mode!r} (choose {' or '.join(COMPUTE_MODES)})")
    if mode == "f32":
        return {name: ComputeChoice("f32", "f32 asked for (--compute f32)") for name in NATIVE_BF16}
    return dict(COMPUTE_POLICY[(cpu or detect()).cpu_class])


# ------------------------------------------------------------------------------------------------ gate
# Worst held-out input against FP32. The audio and logits limits are the INT8 gates of `edgevoice parity`
# (docs/parity.md), which an INT8 bundle has to pass end to end anyway; the feature limits keep a bf16 choice near
# what the INT8 policy already accepts for that graph (figures in benchmarks/results/gpt_sovits_precision.md).
COMPUTE_GATES: dict[str, tuple[Threshold, ...]] = {
    "sovits_vocoder": (Threshold("audio", "snr_db", 35.0, True, "the INT8/BF16 parity gate on audio SNR"),
                       Threshold("audio", "log_mel_l1", 2.0, False, "the INT8/BF16 parity gate on log-mel L1")),
    "gpt_decode": (Threshold("logits", "rel_l2", 0.3, False, "the INT8 parity gate on logits"),
                   Threshold("logits", "top1_agreement", 0.85, True, "the INT8/BF16 parity gate on top-1")),
    "gpt_prefill": (Threshold("logits", "rel_l2", 0.3, False, "the INT8 parity gate on logits"),
                    Threshold("logits", "top1_agreement", 0.85, True, "the INT8/BF16 parity gate on top-1")),
    "bert": (Threshold("hidden", "rel_l2", 0.1, False,
                       "static INT8 with f32 compute, which the INT8 policy accepts, measured 0.040 at full size (its "
                       "prefill then passed the logits gate); bf16 may add to that, not multiply it by more than 2.5"),),
    "hubert_codes": (Threshold("prompt_tokens", "agreement", 0.9, True,
                               "weight-only INT8 with f32 compute already changes 9 % of the prompt tokens at full "
                               "size (0.914): bf16 may not change more than that"),),
    "ref_encoder": (Threshold("ge", "rel_l2", 0.05, False,
                              "ge moves every frame: BF16 measured 0.003; not chosen (kept float) anyway"),),
}


def gate_checks(graph: str, accuracy: dict) -> list[tuple[Threshold, bool, float]]:
    return [(threshold, *threshold.check(accuracy)) for threshold in COMPUTE_GATES.get(graph, ())]


def gate_failures(graph: str, accuracy: dict) -> list[str]:
    """The `COMPUTE_GATES` limits of `graph` that `accuracy` (`graph_errors`) misses, as short texts."""
    return [_limit_text(t, passed, value) for t, passed, value in gate_checks(graph, accuracy) if not passed]


def gate_summary(graph: str, accuracy: dict) -> str:
    return "; ".join(_limit_text(t, passed, value) for t, passed, value in gate_checks(graph, accuracy))


def _limit_text(threshold: Threshold, passed: bool, value: float) -> str:
    sign = (">=" if passed else "<") if threshold.higher_is_better else ("<=" if passed else ">")
    return f"{threshold.output} {threshold.metric} {value:.4g} {sign} {threshold.limit:g}"


# ------------------------------------------------------------------------------------------------ quantise time


def choose_compute(name: str, model, choice: ComputeChoice, held_out: list[dict], reference: list[dict],
                   config: dict) -> dict:
    """The compute precision `name` gets: `choice`, if bf16 keeps `model` (compiled with `config` and a bf16 hint)
    within `COMPUTE_GATES` on `held_out` against the FP32 `reference` outputs; else f32. Returns the record the
    manifest keeps (precision, reason, the gate's figures)."""
    import openvino as ov

    record = {"precision": "f32", "reason": choice.reason}
    if choice.precision != "bf16":
        return record
    if not held_out:
        return {"precision": "f32", "reason": "bf16 not tried: no held-out inputs to check it on"}
    compiled = ov.Core().compile_model(model, "CPU", dict(config, INFERENCE_PRECISION_HINT="bf16"))
    request = compiled.create_infer_request()
    outputs = []
    for feeds in held_out:
        request.infer(feeds)
        outputs.append({port.get_any_name(): request.get_tensor(port).data.copy() for port in compiled.outputs})
    accuracy = graph_errors(name, reference, outputs)
    failures = gate_failures(name, accuracy)
    if failures:
        return {"precision": "f32", "reason": f"bf16 missed the gate ({'; '.join(failures)}): kept f32",
                "tried": "bf16"}
    return {"precision": "bf16", "reason": choice.reason, "gate": gate_summary(name, accuracy)}
