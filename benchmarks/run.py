"""GPT-SoVITS on the CPU against this machine's own limits: every pipeline, every stage, beside its bound.

    python benchmarks/run.py --models DIR --bundle FP32_BUNDLE [--int8-bundle DIR] [--threads 2] [--seconds 10]
                             [--rounds 1] [--json FILE] [--write-results] [--quick] [--pipelines a,b]

In one run: the machine's memory read bandwidth (a 1 GiB streaming read, `--threads` threads, best of 5) and
peak matrix-product throughput per precision (f32 / bf16 / int8 through OpenVINO, `limits.py`); what the model
costs, read from its IRs (bytes of `gpt_decode` weights read per step, GFLOP of `sovits_vocoder` per second of
audio); then per pipeline, each in fresh processes, rounds interleaved, medians kept:

* pytorch           our PyTorch reference: the exported graph modules, eager (`TorchBackend`, needs `--models`)
* openvino-fp32     the FP32 bundle, every graph f32
* openvino-bf16     the FP32 bundle compiled with the bf16 precision hint (only on CPUs with native bf16)
* openvino-int8     the INT8 bundle with f32 float parts and an f32 KV cache
* openvino-best     the INT8 bundle as `edgevoice.load` opens it: the per-CPU choices its manifest records
* onnxruntime-fp32  the FP32 bundle's ONNX graphs

Per pipeline: end-to-end seconds of compute per second of speech with a cold voice (`create_voice` + synthesis)
and with a ready one; the steady-state decode step (3 warm-up steps excluded) with 50 / 400 / 1000 cached
positions beside its bound (weights read per step + the KV cache at that position, ÷ bandwidth); prefill; the
vocoder beside its FLOP bound (GFLOP per second of audio ÷ peak GEMM rate of its precision); reference encoding;
first audio (streamed by 12-token chunks, the first of them 10 tokens + 6 of context; whole sentences in
brackets); throughput at batch 1 / 2 / 4 / 8 (eight independent sentences, the GPT batched, SoVITS per sentence);
cold start (a fresh process: import, load, a saved voice, the first audio of a short sentence); peak RSS of that
process after it also spoke `--seconds` of audio. Random weights never stop on their own, so every synthesis is
pinned to `--seconds` × 25 tokens.

Profiles: OpenVINO's per-node counters (PERF_COUNT) for gpt_prefill, gpt_decode (400 cached positions) and
SoVITS's two graphs, and py-spy over one pipeline's synthesis for the host side (`--py-spy`).

`--models` is `edgevoice make-test-model --size full` output (any version: v2, v2ProPlus, ...), `--bundle` its
export with both formats, `--int8-bundle` its `edgevoice quantize` variant. `--write-results` rewrites only the
part of `--results` (benchmarks/RESULTS.md) between `<!-- run.py:begin -->` and `<!-- run.py:end -->`, one block
per model version and CPU class, and appends that part when absent.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import importlib
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from limits import BF16_FLAGS, bandwidth_gbs, bound_ratio, cpu_info, gemm_peak, graph_gflop, weights_read_per_call
from ov_profile import by_kind, top_kinds

POSITIONS = (50, 400, 1000)
TOKENS_PER_SECOND = 25
WARMUP_STEPS = 3
PIPELINES = ("pytorch", "openvino-fp32", "openvino-bf16", "openvino-int8", "openvino-best", "onnxruntime-fp32")
TEXT = ("Every evening after work, my sister walks her small brown dog along the river and watches the boats "
        "sail past the old bridge.")
PROMPT_TEXT = "The morning light spread slowly across the quiet valley, and every bird began to sing."
COLD_TEXT = "Good morning, how are you today?"
COLD_TOKENS = 25
STREAM_CHUNK_TOKENS = 12  # first audio: the runtime's first chunk waits for 10 + 6 tokens of context whatever this is
BATCH_SIZES = (1, 2, 4, 8)
BATCH_SENTENCES = 8
PROFILED_GRAPHS = ("gpt_prefill", "gpt_decode", "sovits_latent", "sovits_vocoder")
RESULTS = Path(__file__).with_name("RESULTS.md")
BEGIN, END = "<!-- run.py:begin -->", "<!-- run.py:end -->"
SECTION_TITLE = "## GPT-SoVITS against the machine's limits (run.py)"


@dataclass(frozen=True)
class Goals:
    decode_vs_bound: float = 1.5
    vocoder_rtf: float = 0.05  # on AVX-512 BF16/VNNI CPUs
    first_audio_s: float = 0.4
    cold_start_s: float = 3.0
    peak_rss_mb: float = 600.0


GOALS = Goals()


@dataclass(frozen=True)
class Pipeline:
    name: str
    bundle: str
    backend: str  # pytorch, openvino, onnxruntime
    precision: str | None = None  # OpenVINO inference precision forced on every graph (None: the manifest's)
    kv_cache: str | None = None  # OpenVINO KV-cache precision forced (None: the manifest's)
    gemm: str = "f32"  # the GEMM peak its vocoder is held against


@dataclass(frozen=True)
class Settings:
    """What every worker needs besides its pipeline."""

    models: str | None
    threads: int
    tokens: int
    steps: int  # timed decode steps per position
    reference: str  # wav file
    voice_file: str  # written by the warm worker, read by the cold one
    profile: bool
    cache_dir: str | None = None  # OpenVINO's compile cache for this worker (None: none)


# ------------------------------------------------------------------------------------------------ workers


class _TimedSession:
    """A session whose `run` adds its seconds to a `GraphClock`; everything else is the wrapped session's."""

    def __init__(self, session, name: str, clock: "GraphClock"):
        self._session, self._name, self._clock = session, name, clock

    def run(self, feeds):
        start = time.perf_counter()
        out = self._session.run(feeds)
        self._clock.add(self._name, time.perf_counter() - start)
        return out

    def __getattr__(self, name):
        attr = getattr(self._session, name)
        if name == "bind":  # the runs of a session's bound inputs (`BoundRun`) are that graph's time too
            return lambda arrays, outputs=None: _TimedSession(attr(arrays, outputs), self._name, self._clock)
        return attr


class GraphClock:
    """Seconds and calls spent inside each graph (feeds → outputs, the backend's copies included), by wrapping
    every session the synthesizer opens, and seconds spent opening each (hash check, compile or compile-cache
    read); the rest of a synthesis is host time."""

    def __init__(self, synth):
        self.seconds: collections.Counter = collections.Counter()
        self.calls: collections.Counter = collections.Counter()
        self.opening: collections.Counter = collections.Counter()
        opened = synth._session

        def session(name):
            if name in synth._sessions:
                return synth._sessions[name]
            start = time.perf_counter()
            current = synth._sessions[name] = _TimedSession(opened(name), name, self)
            self.opening[name] += time.perf_counter() - start
            return current

        synth._session = session

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] += seconds
        self.calls[name] += 1

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()


def open_synth(pipeline: Pipeline, settings: Settings, extra_config: dict | None = None, cache: bool = True):
    import edgevoice
    from edgevoice.backends import OpenVINOBackend

    if pipeline.backend == "pytorch":
        from edgevoice.bundle import Bundle
        from edgevoice.gpt_sovits.synthesizer import Synthesizer
        from edgevoice_export.gpt_sovits.torch_backend import TorchBackend

        bundle = Bundle.load(pipeline.bundle, lazy=True)
        return Synthesizer(bundle, TorchBackend.from_folder(bundle, settings.models, settings.threads))
    if pipeline.backend == "openvino":
        config = dict(extra_config or {})
        if pipeline.kv_cache:
            config["KV_CACHE_PRECISION"] = pipeline.kv_cache
        backend = OpenVINOBackend(threads=settings.threads, precision=pipeline.precision, extra_config=config,
                                  cache_dir=settings.cache_dir if cache else None)
        return edgevoice.load(pipeline.bundle, backend=backend, threads=settings.threads)
    return edgevoice.load(pipeline.bundle, backend=pipeline.backend, threads=settings.threads)


def forced_options(tokens: int):
    """Synthesis options that generate exactly `tokens` tokens where the options allow it (`min_tokens` holds EOS
    back; random weights seldom say EOS anyway)."""
    from edgevoice import SynthesisOptions

    known = {item.name for item in fields(SynthesisOptions)}
    extra = {"min_tokens": tokens} if "min_tokens" in known else {}
    return SynthesisOptions(seed=0, max_tokens=tokens, **extra)


def speak(synth, text: str, voice, tokens: int, chunk_tokens: int | None = None) -> dict:
    """`stream` to the end: seconds to the first chunk and to the last, and the seconds of speech made (tokens ×
    samples per token, pauses between fragments not counted)."""
    start = time.perf_counter()
    first, speech = None, 0.0
    samples_per_token = synth.bundle.manifest.model["sovits"]["samples_per_token"]
    chunking = {"chunk_tokens": chunk_tokens} if chunk_tokens else {}
    for chunk in synth.stream(text, voice, "en", forced_options(tokens), **chunking):
        first = time.perf_counter() - start if first is None else first
        speech += (chunk.tokens.size * samples_per_token if chunk.tokens is not None else chunk.audio.size) \
            / synth.sample_rate
    return {"first_s": first, "total_s": time.perf_counter() - start, "speech_s": speech}


def random_prefill(synth, filled: int) -> dict[str, np.ndarray]:
    """Prefill outputs with `filled` cached positions of random keys and values."""
    gpt = synth.bundle.manifest.model["gpt"]
    heads, head_dim = gpt["heads"], gpt["hidden"] // gpt["heads"]
    rng = np.random.default_rng(0)
    out = {f"present_{kind}.{i}": rng.standard_normal((1, heads, filled, head_dim), dtype=np.float32)
           for kind in ("key", "value") for i in range(gpt["n_layer"])}
    out["logits"] = np.zeros((1, gpt["vocab_size"]), np.float32)
    return out


def decode_cache(synth, filled: int):
    """The synthesizer's own decode path (stateful `gpt_decode` or `gpt_step` with host caches), `filled` deep."""
    from edgevoice.gpt_sovits.decode_cache import StatefulCache, HostKVCache

    prefill = random_prefill(synth, filled)
    prompt = max(filled - 100, 0)  # about 100 text positions, the rest audio
    if synth._stateful_decode:
        return StatefulCache(synth._session("gpt_decode"), prefill, synth.bundle.graph("gpt_decode").states, prompt)
    return HostKVCache(synth._session("gpt_step"), prefill, synth.bundle.manifest.model["gpt"]["n_layer"], prompt)


def decode_step_ms(synth, filled: int, steps: int) -> float:
    """Median ms of one decode step from `filled` cached positions, the first `WARMUP_STEPS` excluded."""
    cache = decode_cache(synth, filled)
    times = []
    for _ in range(WARMUP_STEPS + steps):
        start = time.perf_counter()
        cache.step(5)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times[WARMUP_STEPS:])


def compiled_property(synth, graph: str, name: str) -> str | None:
    """An OpenVINO compiled graph's property (what the plugin really runs), None for other backends."""
    compiled = getattr(synth._session(graph), "_compiled", None)
    if compiled is None:
        return None
    value = compiled.get_property(name)
    return value.to_string() if hasattr(value, "to_string") else str(value)  # an element type: "f32", "u8"


def peak_rss_mb() -> float:
    """VmHWM: this process's own peak resident set (ru_maxrss would inherit the parent's across fork + exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 1e6
    return float("nan")


def node_profile(pipeline: Pipeline, settings: Settings, voice, tokens: int) -> dict:
    """Per graph, OpenVINO's per-node counters of one call, summed by (node type, kernel): a short synthesis gives
    gpt_prefill and SoVITS's two graphs, a step from 400 cached positions gpt_decode."""
    synth = open_synth(pipeline, settings, {"PERF_COUNT": True}, cache=False)
    synth.synthesize(TEXT, voice, "en", forced_options(tokens))
    names = [g for g in (synth.prefill_graph, synth.latent_graph, synth.vocoder_graph)
             if synth.bundle.graph(g).engine != "onnxruntime"]  # (onnxruntime's stand-ins have no such counters)
    profiles = {name: synth._session(name).profiling_info() for name in names}
    if synth._stateful_decode:  # (onnxruntime's step has no per-node counters of this kind)
        cache = decode_cache(synth, 400)
        for _ in range(WARMUP_STEPS + 1):
            cache.step(5)
        profiles["gpt_decode"] = synth._session("gpt_decode").profiling_info()
    out = {}
    for name, items in profiles.items():
        out[name] = {"total_ms": sum(by_kind(items)[0].values()), "top": top_kinds(items, 5)}
    return out


def batch_throughput(synth, voice, tokens: int) -> dict[str, float]:
    """Seconds of speech per second of compute for `BATCH_SENTENCES` independent requests of `tokens` tokens each
    (`synthesize_batch`), at each batch size; empty for bundles without a batch step."""
    from edgevoice.gpt_sovits.synthesizer import BatchRequest

    if not getattr(synth, "batches_tokens", False):
        return {}
    requests = [BatchRequest(TEXT, voice, "en", replace(forced_options(tokens), seed=i, split_method="cut0"))
                for i in range(BATCH_SENTENCES)]
    speech = BATCH_SENTENCES * tokens / TOKENS_PER_SECOND
    synth.synthesize_batch(requests[:2], batch_size=2)  # warm-up: the batch step compiled
    result = {}
    for size in BATCH_SIZES:
        start = time.perf_counter()
        synth.synthesize_batch(requests, batch_size=size)
        result[str(size)] = speech / (time.perf_counter() - start)
    return result


def worker_warm(pipeline: Pipeline, settings: Settings) -> dict:
    """Everything timed with compiled graphs: reference encoding, synthesis with a ready and with a cold voice,
    first audio, decode steps, where the time goes; the voice is saved for the cold-start worker."""
    start = time.perf_counter()
    synth = open_synth(pipeline, settings)
    load_s = time.perf_counter() - start
    clock = GraphClock(synth)
    voice = synth.create_voice(settings.reference, PROMPT_TEXT, "en")  # warm-up: every graph compiled, every
    speak(synth, TEXT, voice, settings.tokens)  # shape seen once
    clock.reset()
    start = time.perf_counter()
    voice = synth.create_voice(settings.reference, PROMPT_TEXT, "en")
    reference_s, reference_graphs = time.perf_counter() - start, dict(clock.seconds)
    clock.reset()
    ready = speak(synth, TEXT, voice, settings.tokens)
    graphs, calls = dict(clock.seconds), dict(clock.calls)
    start = time.perf_counter()
    cold = speak(synth, TEXT, synth.create_voice(settings.reference, PROMPT_TEXT, "en"), settings.tokens)
    cold_voice_s = time.perf_counter() - start
    speak(synth, TEXT, voice, settings.tokens, STREAM_CHUNK_TOKENS)  # warm-up: the window lengths seen once
    streamed = speak(synth, TEXT, voice, settings.tokens, STREAM_CHUNK_TOKENS)
    decode_graph = "gpt_decode" if synth._stateful_decode else "gpt_step"
    result = {
        "load_s": load_s, "reference_s": reference_s, "reference_graphs": reference_graphs,
        "ready_s": ready["total_s"], "first_audio_s": ready["first_s"], "speech_s": ready["speech_s"],
        "first_chunk_s": streamed["first_s"],
        "cold_voice_s": cold_voice_s, "cold_voice_speech_s": cold["speech_s"], "graphs": graphs, "calls": calls,
        "decode_graph": decode_graph,
        "prefill_positions": int(voice.prompt_phone_ids.size + voice.prompt_tokens.size
                                 + len(synth.phonemize(TEXT, "en")[0].phone_ids)),
        "steps_ms": {str(p): decode_step_ms(synth, p, settings.steps) for p in POSITIONS},
        "kv_cache": compiled_property(synth, decode_graph, "KV_CACHE_PRECISION") or "f32",
        "precisions": {g: compiled_property(synth, g, "INFERENCE_PRECISION_HINT") or "f32"
                       for g in (synth.prefill_graph, decode_graph, synth.latent_graph, synth.vocoder_graph)},
    }
    result["batch"] = batch_throughput(synth, voice, max(settings.tokens // 2, 10))
    voice.save(settings.voice_file)
    result["peak_rss_mb"] = peak_rss_mb()
    if settings.profile and pipeline.backend == "openvino":
        del synth, clock
        result["nodes"] = node_profile(pipeline, settings, voice, min(settings.tokens, 50))
    return result


def worker_cold(pipeline: Pipeline, settings: Settings) -> dict:
    """A fresh process: import, load, the saved voice, the first audio of a short sentence (= cold start); then
    `tokens` of speech, and this process's peak RSS. OpenVINO compiles every graph unless `settings.cache_dir`
    holds them already."""
    start = time.perf_counter()
    import edgevoice

    if pipeline.backend == "pytorch":
        importlib.import_module("edgevoice_export.gpt_sovits.torch_backend")  # torch's import: part of its start
    import_s = time.perf_counter() - start
    synth = open_synth(pipeline, settings)
    load_s = time.perf_counter() - start - import_s
    clock = GraphClock(synth)
    voice = edgevoice.Voice.load(settings.voice_file)
    first = speak(synth, COLD_TEXT, voice, COLD_TOKENS)
    cold_start_s = time.perf_counter() - start
    opening, running = sum(clock.opening.values()), sum(clock.seconds.values())
    speak(synth, TEXT, voice, settings.tokens)
    # first audio = opening the graphs it needs + running them (first inferences pack weights) + host
    return {"import_s": import_s, "load_s": load_s, "first_audio_s": first["first_s"], "cold_start_s": cold_start_s,
            "open_graphs_s": opening, "run_graphs_s": running, "peak_rss_mb": peak_rss_mb()}


def worker_host(pipeline: Pipeline, settings: Settings) -> dict:
    """One ready-voice synthesis after a warm-up, for py-spy to sample (`host_loop` marks the measured part)."""
    import edgevoice

    synth = open_synth(pipeline, settings)
    voice = edgevoice.Voice.load(settings.voice_file)
    speak(synth, TEXT, voice, settings.tokens)

    def host_loop():
        return speak(synth, TEXT, voice, settings.tokens)

    return host_loop()


def worker_limits(threads: int, quick: bool) -> dict:
    cpu = cpu_info()
    shape = (256, 2048, 2048) if quick else (512, 4096, 4096)
    precisions = ["f32", "int8"] + (["bf16"] if cpu.has_native_bf16() else [])
    peaks = {p: gemm_peak(p, threads, *shape, seconds=0.3 if quick else 1.5).to_json() for p in precisions}
    return {"cpu": asdict(cpu), "bandwidth_gbs": bandwidth_gbs(threads, 1.0, 3 if quick else 5), "gemm": peaks}


def worker_model(bundle: str) -> dict:
    """What the model costs, read from its IRs: bytes one decode step reads, vocoder GFLOP per second of audio
    (the difference between 4 s and 2 s of tokens with the same phones, so the text encoder's share cancels)."""
    from edgevoice.bundle import Bundle

    b = Bundle.load(bundle, verify=False)
    graphs = b.manifest.graphs
    out: dict = {"version": b.manifest.upstream_version, "model": b.manifest.model,
                 "precision": {name: g.precision for name, g in graphs.items()}}
    decode = graphs.get("gpt_decode")
    step = graphs["gpt_step"]
    # the decode the bundle runs: OpenVINO's stateful graph, or an INT8 bundle's onnxruntime step (OpenVINO reads
    # its MatMulNBits weights as u8 constants with their scales)
    weights = (decode.files["openvino"] if decode is not None and "openvino" in decode.files
               else step.files["onnx"] if step.engine == "onnxruntime" else None)
    if weights:
        read = weights_read_per_call(b.path / weights)
        out["decode_weights"] = {"f32": read.bytes_for("f32"), "bf16": read.bytes_for("bf16")}
    if "openvino" in graphs["sovits_vocoder"].files:
        xml = b.path / graphs["sovits_vocoder"].files["openvino"]
        channels = b.manifest.model["sovits"]["inter_channels"]

        def gflop(frames: int) -> float:
            return graph_gflop(xml, {"z": [1, channels, frames]})

        frames_per_s = 2 * TOKENS_PER_SECOND
        out["vocoder_gflop_per_s"] = (gflop(4 * frames_per_s) - gflop(2 * frames_per_s)) / 2
    return out


def run_worker_here(args) -> None:
    if args.worker == "limits":
        result = worker_limits(args.threads, args.quick)
    elif args.worker == "model":
        result = worker_model(args.bundle)
    else:
        spec = json.loads(args.spec)
        pipeline, settings = Pipeline(**spec["pipeline"]), Settings(**spec["settings"])
        result = {"warm": worker_warm, "cold": worker_cold, "host": worker_host}[args.worker](pipeline, settings)
    print(json.dumps(result))


# ------------------------------------------------------------------------------------------------ driver


@dataclass
class WorkerFailed:
    worker: str
    message: str  # the last line of its stderr


def py_spy() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def call_worker(kind: str, *extra: str, spy: Path | None = None) -> dict | WorkerFailed:
    command = [sys.executable, __file__, "--worker", kind, *extra]
    if spy is not None:
        command = [py_spy(), "record", "--idle", "--nonblocking", "--format", "raw", "--rate", "200", "-o", str(spy),
                   "--", *command]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        return WorkerFailed(kind, lines[-1] if lines else f"exit status {result.returncode}")
    # the worker's answer is its last JSON line (py-spy prints its own lines after it)
    return json.loads([line for line in result.stdout.splitlines() if line.startswith("{")][-1])


def pipeline_worker(kind: str, pipeline: Pipeline, settings: Settings, spy: Path | None = None):
    spec = json.dumps({"pipeline": asdict(pipeline), "settings": asdict(settings)})
    return call_worker(kind, "--spec", spec, spy=spy)


def has_onnx(bundle: str) -> bool:
    manifest = json.loads((Path(bundle) / "manifest.json").read_text())
    # the stateful decode graphs are OpenVINO's only (onnxruntime decodes through gpt_step)
    return all("onnx" in g["files"] for g in manifest["graphs"].values() if not g.get("states"))


def int8_defaults_are_fixed_recipe(bundle: str) -> bool:
    """True when the INT8 bundle's manifest already says f32 float parts and an f32 KV cache everywhere."""
    manifest = json.loads((Path(bundle) / "manifest.json").read_text())
    options = [g.get("runtime_options", {}).get("openvino", {}) for g in manifest["graphs"].values()]
    return all(o.get("INFERENCE_PRECISION_HINT", "f32") == "f32" and o.get("KV_CACHE_PRECISION", "f32") == "f32"
               for o in options)


def choose_pipelines(args, cpu: dict) -> tuple[list[Pipeline], dict[str, str]]:
    """The pipelines to run, and why each other one is not run."""
    candidates = {
        "pytorch": Pipeline("pytorch", args.bundle, "pytorch"),
        "openvino-fp32": Pipeline("openvino-fp32", args.bundle, "openvino", "f32"),
        "openvino-bf16": Pipeline("openvino-bf16", args.bundle, "openvino", "bf16", gemm="bf16"),
        "onnxruntime-fp32": Pipeline("onnxruntime-fp32", args.bundle, "onnxruntime"),
    }
    if args.int8_bundle:
        candidates["openvino-int8"] = Pipeline("openvino-int8", args.int8_bundle, "openvino", "f32", "f32", "int8")
        candidates["openvino-best"] = Pipeline("openvino-best", args.int8_bundle, "openvino", gemm="int8")
    wanted = args.pipelines.split(",") if args.pipelines else list(PIPELINES)
    unknown = sorted(set(wanted) - set(PIPELINES))
    if unknown:
        sys.exit(f"unknown pipelines {', '.join(unknown)}; choose from {', '.join(PIPELINES)}")
    skipped = {}
    for name in wanted:
        if name in ("openvino-int8", "openvino-best") and not args.int8_bundle:
            skipped[name] = "no --int8-bundle given"
        elif name == "pytorch" and not args.models:
            skipped[name] = "no --models given (the checkpoints the bundle was exported from)"
        elif name == "openvino-bf16" and not any(f in cpu["flags"] for f in BF16_FLAGS):
            skipped[name] = "this CPU has neither avx512_bf16 nor amx_bf16 (OpenVINO would run f32 or emulate)"
        elif name == "onnxruntime-fp32" and not has_onnx(args.bundle):
            skipped[name] = "the bundle has no ONNX graphs (exported with --format openvino)"
        elif name == "openvino-best" and "openvino-int8" in wanted and int8_defaults_are_fixed_recipe(
                args.int8_bundle):
            skipped[name] = ("same as openvino-int8: this INT8 bundle's manifest already runs f32 float parts with "
                             "an f32 KV cache (made before the per-CPU u8 KV choice, or on a CPU without AVX-512)")
    return [candidates[n] for n in wanted if n not in skipped], skipped


# ------------------------------------------------------------------------------------------------ figures


@dataclass
class StepFigure:
    ms: float
    bound_ms: float
    ratio: float


@dataclass
class Row:
    """One pipeline's figures (medians over rounds) and their bounds."""

    pipeline: str
    e2e_cold_voice_rtf: float  # seconds of compute per second of speech, voice made from the clip in the call
    e2e_ready_rtf: float  # same with a ready voice
    speedup_vs_pytorch: float | None  # cold voice, PyTorch seconds ÷ this pipeline's
    steps: dict[int, StepFigure]
    kv_cache: str
    e2e_ms_per_token: float  # decode graph time per call inside a synthesis
    prefill_ms: float
    prefill_positions: int
    vocoder_rtf: float
    vocoder_bound_rtf: float
    reference_s: float
    first_audio_s: float
    cold_start_s: float  # empty compile cache
    cold_start_cached_s: float | None  # OpenVINO with the compile cache a previous process filled
    cold_parts: dict[str, float]
    peak_rss_mb: float
    split: dict[str, float]  # seconds of a ready-voice synthesis: prefill, decode, vocoder, other graphs, host
    precisions: dict[str, str]
    first_chunk_s: float  # streaming by STREAM_CHUNK_TOKENS-token chunks
    batch: dict[str, float]  # batch size → seconds of speech per second
    nodes: dict = field(default_factory=dict)

    @property
    def warm_cold_start_s(self) -> float:
        """Cold start as the goal counts it: with the compile cache warm where the pipeline has one."""
        return self.cold_start_s if self.cold_start_cached_s is None else self.cold_start_cached_s

    @property
    def vocoder_ratio(self) -> float:
        return bound_ratio(self.vocoder_rtf, self.vocoder_bound_rtf)


def median_of(runs: list[dict], *keys: str) -> float:
    values = []
    for run in runs:
        value = run
        for key in keys:
            value = value[key]
        values.append(value)
    return statistics.median(values)


def kv_bytes(model: dict, positions: int, precision: str) -> int:
    """Bytes of the KV cache at `positions` in `precision`; a u8 cache also keeps an f32 scale and zero point per
    position, head and layer for keys and for values (OpenVINO's default grouping: one group per head)."""
    gpt = model["gpt"]
    heads, head_dim, layers = gpt["heads"], gpt["hidden"] // gpt["heads"], gpt["n_layer"]
    size = {"u8": 1, "i8": 1, "f16": 2, "bf16": 2}.get(precision, 4)
    per_row = head_dim * size + (8 if size == 1 else 0)
    return 2 * layers * heads * positions * per_row


def make_row(pipeline: Pipeline, runs: list[dict], model: dict, limits: dict) -> Row:
    warm, cold = [r["warm"] for r in runs], [r["cold"] for r in runs]
    cached = [r["cold_cached"] for r in runs if "cold_cached" in r]
    bandwidth = limits["bandwidth_gbs"] * 1e9
    # NaN without an IR of gpt_decode to count the weights in (an ONNX-only bundle)
    weights = model.get("decode_weights", {}).get("bf16" if pipeline.precision == "bf16" else "f32", float("nan"))
    kv = warm[0]["kv_cache"]
    steps = {}
    for p in POSITIONS:
        ms = median_of(warm, "steps_ms", str(p))
        bound = 1000 * (weights + kv_bytes(model["model"], p, kv)) / bandwidth
        steps[p] = StepFigure(ms, bound, bound_ratio(ms, bound))
    speech = median_of(warm, "speech_s")
    decode = warm[0]["decode_graph"]
    graph_s = {name: statistics.median(w["graphs"].get(name, 0.0) for w in warm) for name in warm[0]["graphs"]}
    ready = median_of(warm, "ready_s")
    split = {"prefill": graph_s.get("gpt_prefill", 0.0) + graph_s.get("gpt_prefill_vnni", 0.0),
             "decode": graph_s.get(decode, 0.0),
             "vocoder": graph_s.get("sovits_vocoder", 0.0) + graph_s.get("sovits_vocoder_vnni", 0.0)}
    split["other graphs"] = sum(graph_s.values()) - sum(split.values())
    split["host"] = ready - sum(graph_s.values())
    # an INT8 bundle's vocoder is held against the peak of what it computes in: int8, bf16 (`--method
    # sovits_vocoder=bf16`) or, left in float by the quantiser, f32
    vocoder = pipeline.gemm
    if pipeline.gemm == "int8":
        vocoder = {"int8": "int8", "bf16": "bf16"}.get(model["precision"]["sovits_vocoder"], "f32")
    gemm = limits["gemm"].get(vocoder, limits["gemm"]["f32"])
    return Row(
        pipeline=pipeline.name,
        e2e_cold_voice_rtf=median_of(warm, "cold_voice_s") / median_of(warm, "cold_voice_speech_s"),
        e2e_ready_rtf=ready / speech, speedup_vs_pytorch=None, steps=steps, kv_cache=kv,
        e2e_ms_per_token=1000 * split["decode"] / max(warm[0]["calls"].get(decode, 1), 1),
        prefill_ms=1000 * split["prefill"], prefill_positions=warm[0]["prefill_positions"],
        vocoder_rtf=split["vocoder"] / speech,
        vocoder_bound_rtf=model.get("vocoder_gflop_per_s", float("nan")) / gemm["gflops"],
        reference_s=median_of(warm, "reference_s"), first_audio_s=median_of(warm, "first_audio_s"),
        first_chunk_s=median_of(warm, "first_chunk_s"),
        batch={size: median_of(warm, "batch", size) for size in warm[0].get("batch", {})},
        cold_start_s=median_of(cold, "cold_start_s"),
        cold_start_cached_s=median_of(cached, "cold_start_s") if cached else None,
        cold_parts={k: median_of(cold, k) for k in ("import_s", "load_s", "open_graphs_s", "run_graphs_s")},
        peak_rss_mb=median_of(cold, "peak_rss_mb"), split=split, precisions=warm[0]["precisions"],
        nodes=warm[-1].get("nodes", {}))


def host_profile(raw: Path) -> dict:
    """py-spy's raw stacks of `host_loop`, split into time inside a graph call and host time by innermost frame."""
    inside, host, total = 0, collections.Counter(), 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if not any(f.startswith("worker_host.<locals>.host_loop ") or f.startswith("host_loop ") for f in frames):
            continue
        total += int(count)
        if any(re.match(r"\w*(Session|BoundRun)\.run \(", f) for f in frames):  # a bound decode step too
            inside += int(count)
        else:
            host[re.sub(r":\d+\)$", ")", frames[-1])] += int(count)
    return {"samples": total, "inside_graphs": inside, "host_top": host.most_common(8)}


# ------------------------------------------------------------------------------------------------ report


def fmt(value: float, digits: int = 2) -> str:
    return "–" if value is None or value != value else f"{value:.{digits}f}"


def goal_lines(rows: list[Row], cpu: dict) -> list[str]:
    avx512_dot = any(f in cpu["flags"] for f in ("avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8"))
    lines = [f"Goals: decode step ≤ {GOALS.decode_vs_bound}× its bound at {', '.join(map(str, POSITIONS))} "
             f"positions; vocoder ≤ {GOALS.vocoder_rtf} s per s of audio on AVX-512 BF16/VNNI CPUs"
             f"{'' if avx512_dot else ' (this CPU has neither: shown for reference)'}; first audio ≤ "
             f"{GOALS.first_audio_s} s; cold start ≤ {GOALS.cold_start_s} s with a warm compile cache (the issue's "
             f"wording; an empty cache where the pipeline has none); peak RSS ≤ "
             f"{GOALS.peak_rss_mb:.0f} MB; end to end with a cold voice against our PyTorch reference.", ""]
    for r in rows:
        met = {
            "decode": all(s.ratio <= GOALS.decode_vs_bound for s in r.steps.values()),
            "vocoder": r.vocoder_rtf <= GOALS.vocoder_rtf, "first audio": r.first_chunk_s <= GOALS.first_audio_s,
            "batch-8 ≥ 4× batch 1": bool(r.batch) and r.batch.get("8", 0) >= 4 * r.batch.get("1", float("inf")),
            "cold start": r.warm_cold_start_s <= GOALS.cold_start_s, "peak RSS": r.peak_rss_mb <= GOALS.peak_rss_mb,
        }
        speed = "" if r.speedup_vs_pytorch is None else f"; cold-voice e2e {r.speedup_vs_pytorch:.2f}× PyTorch"
        lines.append(f"* {r.pipeline}: met {', '.join(k for k, v in met.items() if v) or 'none'}; missed "
                     f"{', '.join(k for k, v in met.items() if not v) or 'none'}{speed}.")
    return lines


def time_lines(rows: list[Row], host: dict | None, host_pipeline: str | None) -> list[str]:
    lines = ["Where the time goes (ready-voice synthesis, seconds: prefill / decode / vocoder / other graphs / host; "
             "then OpenVINO's per-node counters, top node types with their kernels):", ""]
    for r in rows:
        total = sum(r.split.values())
        shares = " / ".join(f"{r.split[k]:.2f}" for k in ("prefill", "decode", "vocoder", "other graphs", "host"))
        lines.append(f"* {r.pipeline}: {shares} of {total:.2f} s (host {100 * r.split['host'] / total:.0f} %); "
                     f"e2e decode {r.e2e_ms_per_token:.1f} ms per token inside synthesis.")
        for graph in PROFILED_GRAPHS:
            prof = r.nodes.get(graph)
            if prof:
                top = ", ".join(f"{node} {kernel} ×{n} {ms:.1f} ms" for node, kernel, n, ms in prof["top"][:4])
                where = " (400 cached positions)" if graph == "gpt_decode" else ""
                lines.append(f"  * {graph}{where}: {prof['total_ms']:.1f} ms profiled; {top}")
    if host and "note" in host:
        lines += ["", f"Host profile: {host['note']}."]
    elif host:
        share = 100 * host["inside_graphs"] / max(host["samples"], 1)
        top = ", ".join(f"{frame} {100 * n / max(host['samples'], 1):.1f} %" for frame, n in host["host_top"][:6])
        lines += ["", f"py-spy over {host_pipeline}'s synthesis ({host['samples']} samples at 200 Hz, idle included): "
                      f"{share:.0f} % inside graph calls; host frames: {top}."]
    return lines + [""]


def header_lines(report: dict) -> list[str]:
    cpu, lim, model = report["cpu"], report["limits"], report["model"]
    key = results_key(report)
    gemm = "; ".join(f"{p} {g['gflops']:.0f} GFLOP/s ({g['kernel']})" for p, g in lim["gemm"].items())
    m, k, n = next(iter(lim["gemm"].values()))["shape"]
    return [
        f"<!-- run.py:model={key} -->",
        f"### GPT-SoVITS {model['version']}, {model['model']['gpt']['n_layer']}-layer GPT, CPU class "
        f"{key.split('/')[1]} ({report['date']})", "",
        f"`{report['command']}`", "",
        f"CPU: {cpu['model']}, {cpu['logical_cores']} logical cores, flags {' '.join(cpu['flags'])}; "
        f"{report['threads']} thread(s); load average {report['load'][0]:.1f} at the start, "
        f"{report['load_end'][0]:.1f} at the end; OpenVINO {report['versions']['openvino']}, onnxruntime "
        f"{report['versions']['onnxruntime']}.",
        f"Measured in this run: memory read bandwidth {lim['bandwidth_gbs']:.1f} GB/s (1 GiB streaming read, "
        f"{report['threads']} thread(s), best of several); peak GEMM {m}×{k}×{n}: {gemm}.",
        f"Model: gpt_decode reads {model.get('decode_weights', {}).get('f32', float('nan')) / 1e6:.0f} MB of FP32 "
        "weights per step "
        f"({report['int8_decode_mb']}); the vocoder costs {model.get('vocoder_gflop_per_s', float('nan')):.1f} "
        f"GFLOP per second of audio (from the sovits_vocoder IR). {report['tokens']} tokens "
        f"(= {report['tokens'] / TOKENS_PER_SECOND:.1f} s of speech) per synthesis, 5 s reference, median of "
        f"{report['rounds']} round(s).", "",
    ]


def table_lines(rows: list[Row]) -> list[str]:
    columns = (["pipeline", "e2e s/s cold voice", "e2e s/s ready voice", "vs PyTorch (cold voice)"]
               + [f"decode ms @ {p} (bound, ×)" for p in POSITIONS]
               + ["KV", "prefill ms (positions)", "vocoder s/s (bound, ×)", "ref. encoding s",
                  "first audio s, streamed (per sentence)",
                  "speech s/s at batch 1 / 2 / 4 / 8 (8 ÷ 1)", "cold start s (compile cache)", "peak RSS MB"])
    lines = ["| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]
    for r in rows:
        cells = [r.pipeline, f"{r.e2e_cold_voice_rtf:.3f}", f"{r.e2e_ready_rtf:.3f}",
                 "–" if r.speedup_vs_pytorch is None else f"{r.speedup_vs_pytorch:.2f}×"]
        cells += [f"{s.ms:.1f} ({s.bound_ms:.1f}, ×{s.ratio:.2f})" for s in r.steps.values()]
        cells += [r.kv_cache, f"{r.prefill_ms:.0f} ({r.prefill_positions})",
                  f"{r.vocoder_rtf:.3f} ({fmt(r.vocoder_bound_rtf, 3)}, ×{fmt(r.vocoder_ratio, 1)})",
                  f"{r.reference_s:.2f}", f"{r.first_chunk_s:.2f} ({r.first_audio_s:.2f})", batch_cell(r.batch),
                  f"{r.cold_start_s:.2f} ({fmt(r.cold_start_cached_s)})", f"{r.peak_rss_mb:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def batch_cell(batch: dict[str, float]) -> str:
    if not batch:
        return "no batch step"
    figures = " / ".join(f"{batch[str(size)]:.2f}" for size in BATCH_SIZES if str(size) in batch)
    return f"{figures} ({batch['8'] / batch['1']:.2f}×)" if "8" in batch and "1" in batch else figures


def notes_lines(report: dict, rows: list[Row]) -> list[str]:
    return [
        "", "s/s = seconds of compute per second of speech (lower is faster). Decode: one step of the synthesizer's "
        "own decode graph from N cached positions, median after 3 warm-up steps; bound = (weight bytes read per step "
        "in the precision run + the KV cache at N positions) ÷ the bandwidth above (weights that fit in the "
        "last-level cache, as a tiny model's do, can beat it). Vocoder bound = its GFLOP per second of audio ÷ the "
        "GEMM peak of its precision (int8 for a static-INT8 vocoder). Cold start = a fresh process: import, load, a "
        f"saved voice, first audio of a {COLD_TOKENS}-token sentence, with an empty OpenVINO compile cache (in "
        "brackets: with the cache a previous process filled); peak RSS (VmHWM) of that process after it also spoke "
        f"{report['tokens']} tokens. First audio: streaming by {STREAM_CHUNK_TOKENS}-token chunks (in brackets: "
        f"whole sentences). Batch: seconds of speech per second for {BATCH_SENTENCES} independent sentences of "
        f"{report['tokens'] // 2} tokens at batch 1 / 2 / 4 / 8 (`synthesize_batch`: GPT steps batched, SoVITS "
        "per sentence), and batch 8 ÷ batch 1.", "",
        "Cold start, empty compile cache (import / load / opening graphs: hash check and compile / running them: "
        "first inferences, s): " + "; ".join(
            f"{r.pipeline} {r.cold_parts['import_s']:.2f} / {r.cold_parts['load_s']:.2f} / "
            f"{r.cold_parts['open_graphs_s']:.2f} / {r.cold_parts['run_graphs_s']:.2f}" for r in rows) + ".", "",
    ]


def markdown(report: dict, rows: list[Row]) -> str:
    lines = header_lines(report) + table_lines(rows) + notes_lines(report, rows)
    lines += goal_lines(rows, report["cpu"]) + [""]
    lines += time_lines(rows, report.get("host_profile"), report.get("host_pipeline"))
    lines += [f"Not run: {name}: {why}." for name, why in report["skipped"].items()]
    lines += [f"**Failed**: {name}: {why}" for name, why in report["failed"].items()]
    return "\n".join(lines) + "\n"


def results_key(report: dict) -> str:
    """The block a run replaces in RESULTS.md: one per model version and CPU class (`edgevoice.cpu.cpu_class`), so a
    sitting on an AMX Xeon does not overwrite the one on an AVX-512 EPYC."""
    from edgevoice.cpu import cpu_class

    return f"{report['model']['version']}/{cpu_class(set(report['cpu']['flags']))}"


def write_results(path: Path, text: str, key: str) -> None:
    """Replace this model version's block inside the run.py section of `path` (other versions' blocks and
    everything outside the markers stay as they are); append the section when absent."""
    current = path.read_text() if path.exists() else ""
    if BEGIN in current and END in current.split(BEGIN, 1)[1]:
        head, rest = current.split(BEGIN, 1)
        body, tail = rest.split(END, 1)
    else:
        head, body, tail = (current.rstrip("\n") + "\n\n" if current else ""), "", "\n"
    blocks = dict(re.findall(r"(<!-- run\.py:model=[^ ]+ -->)\n(.*?)(?=<!-- run\.py:model=|\Z)", body, re.S))
    blocks[f"<!-- run.py:model={key} -->"] = text.split("\n", 1)[1].rstrip("\n") + "\n\n"
    inner = "".join(marker + "\n" + block for marker, block in blocks.items())
    path.write_text(f"{head}{BEGIN}\n{SECTION_TITLE}\n\n{inner}{END}{tail}")


# ------------------------------------------------------------------------------------------------ main


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", help="the model set the bundle was exported from (for the PyTorch reference)")
    parser.add_argument("--bundle", help="FP32 bundle, both formats")
    parser.add_argument("--int8-bundle", help="its `edgevoice quantize` variant")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of speech per synthesis (25 tokens/s)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds, medians kept (default 2)")
    parser.add_argument("--steps", type=int, default=None, help="timed decode steps per position (default 20)")
    parser.add_argument("--pipelines", help="comma-separated subset of " + ", ".join(PIPELINES))
    parser.add_argument("--json", help="also write every figure to this file")
    parser.add_argument("--write-results", action="store_true", help="rewrite this run's block in --results")
    parser.add_argument("--results", default=str(RESULTS), help="the markdown file --write-results edits")
    parser.add_argument("--quick", action="store_true", help="smoke test: 1 s of speech, 1 round, few steps")
    parser.add_argument("--py-spy", default=None, help="pipeline whose synthesis py-spy samples ('none': off; "
                        "default: openvino-best or the first OpenVINO pipeline, off with --quick)")
    parser.add_argument("--no-profile", action="store_true", help="skip OpenVINO's per-node counters")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.worker and not args.bundle:
        parser.error("--bundle is required")
    if args.quick:
        args.seconds = 1.0 if args.seconds == 10.0 else args.seconds
    args.rounds = args.rounds or (1 if args.quick else 2)
    args.steps = args.steps or (4 if args.quick else 20)
    return args


def host_pipeline(args, pipelines: list[Pipeline]) -> Pipeline | None:
    if args.py_spy == "none" or (args.quick and args.py_spy is None):
        return None
    by_name = {p.name: p for p in pipelines}
    if args.py_spy:
        return by_name.get(args.py_spy)
    return by_name.get("openvino-best") or next((p for p in pipelines if p.backend == "openvino"), None)


def measure_pipeline(pipeline: Pipeline, args, work: Path, tokens: int, round_index: int) -> dict | WorkerFailed:
    """One round of one pipeline, each part a fresh process: the warm worker (which fills a new compile cache),
    a cold start with an empty compile cache, and (OpenVINO) a cold start from the warm worker's cache."""
    base = settings_for(args, pipeline, work, tokens, not args.no_profile and round_index == args.rounds - 1)
    cache = str(work / f"cache-{pipeline.name}-{round_index}")
    plan = [("warm", replace(base, cache_dir=cache)),
            ("cold", replace(base, cache_dir=str(work / f"empty-cache-{pipeline.name}-{round_index}")))]
    if pipeline.backend == "openvino":
        plan.append(("cold_cached", replace(base, cache_dir=cache)))
    out = {}
    for key, settings in plan:
        result = pipeline_worker("warm" if key == "warm" else "cold", pipeline, settings)
        if isinstance(result, WorkerFailed):
            return WorkerFailed(pipeline.name, f"{key}: {result.message}")
        out[key] = result
        print(json.dumps({"round": round_index, "pipeline": pipeline.name, key: result}), flush=True)
    return out


def settings_for(args, pipeline: Pipeline, work: Path, tokens: int, profile: bool) -> Settings:
    return Settings(args.models and str(Path(args.models).resolve()), args.threads, tokens, args.steps,
                    str(work / "reference.wav"), str(work / f"{pipeline.name}.voice.npz"), profile)


def spy_on_host(pipeline: Pipeline, settings: Settings, work: Path) -> dict:
    """py-spy over one ready-voice synthesis of `pipeline` (its voice file made by the rounds before)."""
    if py_spy() is None:
        return {"note": "py-spy is not installed (pip install py-spy): no host profile"}
    raw = work / "py-spy.txt"
    outcome = pipeline_worker("host", pipeline, settings, spy=raw)
    if isinstance(outcome, WorkerFailed) or not raw.exists():
        return {"note": f"py-spy run failed: {getattr(outcome, 'message', 'no output')}"}
    return host_profile(raw)


def main() -> None:
    args = parse_args()
    if args.worker:
        run_worker_here(args)
        return
    started, load = time.perf_counter(), os.getloadavg()
    limits = call_worker("limits", "--threads", str(args.threads), *(["--quick"] if args.quick else []))
    models = {b: call_worker("model", "--bundle", b) for b in {args.bundle, args.int8_bundle} - {None}}
    for result in [limits, *models.values()]:
        if isinstance(result, WorkerFailed):
            sys.exit(f"{result.worker} failed: {result.message}")
    pipelines, skipped = choose_pipelines(args, limits["cpu"])
    tokens = int(round(args.seconds * TOKENS_PER_SECOND))
    work = Path(tempfile.mkdtemp(prefix="edgevoice-run-"))
    try:
        from e2e_speed import reference_clip
        from edgevoice.audio import write_wav

        write_wav(work / "reference.wav", reference_clip(), 32000)
        runs: dict[str, list[dict]] = {p.name: [] for p in pipelines}
        failed: dict[str, str] = {}
        for round_index in range(args.rounds):  # interleaved: a noisy neighbour hits every pipeline alike
            for p in pipelines:
                if p.name not in failed:
                    result = measure_pipeline(p, args, work, tokens, round_index)
                    if isinstance(result, WorkerFailed):
                        failed[p.name] = result.message
                    else:
                        runs[p.name].append(result)
        spied = host_pipeline(args, [p for p in pipelines if p.name not in failed])
        host = spy_on_host(spied, settings_for(args, spied, work, tokens, False), work) if spied else None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = [make_row(p, runs[p.name], models[p.bundle], limits) for p in pipelines if p.name not in failed]
    reference = next((r for r in rows if r.pipeline == "pytorch"), None)
    for r in rows:
        if reference is not None:
            r.speedup_vs_pytorch = reference.e2e_cold_voice_rtf / r.e2e_cold_voice_rtf
    import onnxruntime
    import openvino

    fp32_model = models[args.bundle]
    int8 = models.get(args.int8_bundle, {}).get("decode_weights", {}).get("f32")
    report = {
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "command": "python " + shlex.join([os.path.relpath(__file__), *sys.argv[1:]]),
        "cpu": limits["cpu"], "threads": args.threads, "load": load, "load_end": os.getloadavg(),
        "versions": {"openvino": openvino.__version__.split("-")[0], "onnxruntime": onnxruntime.__version__},
        "limits": limits, "model": fp32_model, "models": models, "tokens": tokens, "rounds": args.rounds,
        "int8_decode_mb": f"INT8: {int8 / 1e6:.0f} MB" if int8 else "no INT8 bundle",
        "skipped": skipped, "failed": failed, "host_profile": host, "host_pipeline": spied and spied.name,
        "rows": [asdict(r) | {"vocoder_ratio": r.vocoder_ratio} for r in rows], "runs": runs,
    }
    text = markdown(report, rows)
    report["benchmark_s"] = time.perf_counter() - started
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=str))
    if args.write_results:
        write_results(Path(args.results), text, results_key(report))
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
