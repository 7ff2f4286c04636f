"""What this CPU computes natively, for choosing a graph's precision (torch-free).

`/proc/cpuinfo`'s flags place the CPU in one capability class, best first:

* `amx`: AMX tiles for bf16 and int8 (Sapphire Rapids and later);
* `avx512_bf16`: AVX-512 with native bf16 dot products and VNNI (Zen 4, Zen 5, Cooper Lake);
* `avx512_vnni`, `avx_vnni`: 8-bit dot products (VNNI) but no native bf16 (Ice/Cascade Lake; Alder Lake);
* `avx512`, `avx2`: neither (Skylake-X; Zen 1-3, Haswell);
* `baseline`: none of the above.

Quantisation (`edgevoice_export.gpt_sovits.compute.compute_policies`) picks each graph's compute precision for the
class of the CPU it runs on; at load the OpenVINO backend runs a bundle's bf16 hint as f32 on a CPU without
native bf16 (`runnable_hint`, called from `OpenVINOBackend.config_for`: the one place this fallback happens).
Without native bf16 OpenVINO would either ignore the hint or emulate bf16 with f32 instructions, which only adds
conversions; the bundle's INT8 weights are kept either way.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
INT8_DOT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
REPORTED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")
CLASSES = ("amx", "avx512_bf16", "avx512_vnni", "avx_vnni", "avx512", "avx2", "baseline")


def _cpuinfo_text(cpuinfo: Path | None) -> str | None:
    try:
        return (cpuinfo or CPUINFO).read_text()
    except OSError:
        return None


def cpu_flags(cpuinfo: Path | None = None) -> set[str] | None:
    """The words of /proc/cpuinfo (its flags among them), or None where there is no such file."""
    text = _cpuinfo_text(cpuinfo)
    return None if text is None else set(text.split())


def cpu_class(flags: set[str] | frozenset[str]) -> str:
    """The capability class of a CPU with these flags (see the module docstring)."""
    if {"amx_bf16", "amx_int8"} <= flags:
        return "amx"
    for name in ("avx512_bf16", "avx512_vnni", "avx_vnni"):
        if name in flags:
            return name
    return "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else "baseline"


@dataclass(frozen=True)
class CpuInfo:
    model: str
    flags: frozenset[str]  # the flags in REPORTED_FLAGS this CPU has
    known: bool = True  # False: no /proc/cpuinfo; the class then comes from OpenVINO's capability list

    @property
    def cpu_class(self) -> str:
        return cpu_class(self.flags)

    @property
    def native_bf16(self) -> bool:
        return any(flag in self.flags for flag in NATIVE_BF16_FLAGS)

    @property
    def int8_dot(self) -> bool:
        return not self.known or any(flag in self.flags for flag in INT8_DOT_FLAGS)

    def summary(self) -> str:
        flags = ", ".join(f for f in REPORTED_FLAGS if f in self.flags) or "none of the vector extensions we use"
        return (f"{self.model}: class {self.cpu_class} ({flags}); native bf16 {'yes' if self.native_bf16 else 'no'}, "
                f"8-bit dot products {'yes' if self.int8_dot else 'no'}")


def detect(cpuinfo: Path | None = None) -> CpuInfo:
    """This machine's CPU. Without /proc/cpuinfo (macOS, Windows) OpenVINO's own list says whether bf16 is native."""
    text = _cpuinfo_text(cpuinfo)
    if text is None:
        return CpuInfo(platform.processor() or platform.machine() or "unknown CPU", _openvino_flags(), known=False)
    first = text.split("\n\n")[0]  # the first processor's block
    fields = {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in first.splitlines())}
    model = fields.get("model name") or platform.processor() or "unknown CPU"
    if "cpu family" in fields and "model" in fields:
        model += f" (family {fields['cpu family']} model {fields['model']})"
    words = set(text.split())
    return CpuInfo(model, frozenset(f for f in REPORTED_FLAGS if f in words))


def _openvino_flags() -> frozenset[str]:
    try:
        import openvino as ov

        capabilities = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except (ImportError, RuntimeError):  # no OpenVINO or no CPU plugin: assume nothing
        return frozenset()
    return frozenset({"avx512_bf16"} if "BF16" in capabilities else set())


def runnable_hint(hint: str, cpu: CpuInfo | None = None) -> str:
    """The inference precision a bundle's `hint` runs in here: bf16 only where the CPU computes it natively."""
    if hint == "bf16" and not (cpu or detect()).native_bf16:
        return "f32"
    return hint


# ------------------------------------------------------------------------------------------------ what runs here

_WEIGHTS = {"static": "int8 weights + activations", "weights": "int8 weights"}
NO_INT8_DOT_NOTE = ("no 8-bit dot products here: static INT8 can run slower than FP32 on such CPUs (2x slower for a "
                    "transformer's matmuls on an AVX2-only EPYC); quantised on this CPU, graphs where it was measured "
                    "so get weight-only INT8")


_CACHE_NAMES = {"float32": "f32", "float16": "f16"}


@dataclass(frozen=True)
class GraphPrecision:
    weights: str  # "int8 weights + activations", "int8 weights", "f32 weights", "FP32 ONNX"
    compute: str  # what the graph's float parts run in on this CPU
    why: str
    kv_cache: str = ""  # a stateful decode's KV cache precision

    def summary(self) -> str:
        return f"{self.weights}, {self.compute} compute" + (f", {self.kv_cache} KV cache" if self.kv_cache else "")


def precision_here(manifest, name: str, cpu: CpuInfo | None = None) -> GraphPrecision:
    """What graph `name` of a bundle runs in on this CPU with the OpenVINO backend, and why (the reason its
    quantiser recorded, or the load-time fallback)."""
    cpu = cpu or detect()
    graph = manifest.graphs[name]
    quantization = _section(manifest.extra, "quantization")
    if graph.engine == "onnxruntime":
        return _onnxruntime_precision(graph, name, quantization, cpu)
    if "openvino" not in graph.files:
        return GraphPrecision("FP32 ONNX", "f32", "no OpenVINO IR: onnxruntime runs it")
    return _openvino_precision(manifest, graph, name, quantization, cpu)


def _onnxruntime_precision(graph, name: str, quantization: dict, cpu: CpuInfo) -> GraphPrecision:
    """A graph the bundle runs on onnxruntime: a static-INT8 stand-in, the split vocoder's head, or the decode step
    on block weights; the reason from the quantiser's record of it."""
    # the quantiser's record for this graph: one naming it (a static-INT8 graph), else the decode engine's
    own = _engine_records(quantization, "graph", name)
    head = [r for r in _engine_records(quantization, "head", name) if r.get("beside")]
    if head:  # the 8-bit vocoder's head beside the one graph (split_vocoder)
        why = (f"the head of {head[0].get('part_of', '?')} when its float tail runs on OpenVINO: "
               f"{head[0].get('reason', 'split off')}")
        if not cpu.int8_dot:
            why += "; not run on this CPU (no VNNI)"
        return GraphPrecision(f"onnxruntime, {graph.precision} weights + activations", graph.precision,
                              _printable(why))
    record = own[0] if own else _section(quantization, "decode_engine")
    chosen_on = _section(quantization, "compute").get("cpu_class") or record.get("cpu_class", "?")
    why = f"onnxruntime runs it: {record.get('reason', 'the bundle says so')} (measured when quantised, on {chosen_on})"
    if own:  # 8-bit operators with s8 weights: only run where the CPU has 8-bit dot products
        if not cpu.int8_dot:
            why += "; not run on this CPU (no VNNI: its s8 products would saturate), the OpenVINO graph instead"
        return GraphPrecision(f"onnxruntime, {graph.precision} weights + activations", graph.precision,
                              _printable(why))
    blocks = graph.precision in ("int8", "int4")  # MatMulNBits: int8 activations and dot products either way
    if _section(record, "attention").get("fused"):
        why += "; attention fused, the cache written in place"
    if chosen_on != cpu.cpu_class:
        why += "; quantise on this CPU to time its decode engines here"
    cache = next((t.dtype for t in graph.inputs if t.name == "past_key.0"), "float32")
    return GraphPrecision("onnxruntime, " + (f"{graph.precision} block weights" if blocks
                                             else f"{graph.precision} weights"),
                          "int8 matmul / f32" if blocks else "f32", _printable(why),
                          _CACHE_NAMES.get(cache, cache) if blocks else "")


def _openvino_precision(manifest, graph, name: str, quantization: dict, cpu: CpuInfo) -> GraphPrecision:
    """A graph OpenVINO runs: its weights by the quantiser's method, the compute precision its hint asks and this
    CPU can run, and why."""
    from .bundle import openvino_options

    method = _section(_section(quantization, "policy"), name).get("method")
    weights = _WEIGHTS.get(method, "int8 weights") if graph.precision == "int8" else "f32 weights"
    options = openvino_options(graph)
    asked = str(options.get("INFERENCE_PRECISION_HINT", "f32"))
    runs = runnable_hint(asked, cpu)
    record = _section(_section(_section(quantization, "compute"), "graphs"), name)
    part = next((r for r in _engine_records(quantization, "graph", name) if r.get("part_of")), None)
    if part:  # a part split off an onnxruntime graph to run on this backend's engine
        why = f"{part.get('reason', 'split off')} (the float part of {part['part_of']})"
        if part.get("beside"):
            why += "; runs where this process loads OpenVINO anyway, else the one graph"
        if not cpu.int8_dot:
            why += f"; not run on this CPU: {part['part_of']} needs 8-bit dot products (VNNI)"
    elif runs != asked:
        why = f"the bundle asks {asked}; this CPU ({cpu.cpu_class}) has no native bf16, so it runs f32"
    elif record.get("reason"):
        chosen_on = _section(quantization, "compute").get("cpu_class", "?")
        gate = f"; checked on this bundle: {record['gate']}" if record.get("gate") else ""
        # a class's choice quotes that class's sweep (benchmarks/precision_sweep.py); a gate or a missing input
        # that overruled it was this bundle's own
        overruled = "tried" in record or str(record["reason"]).startswith("bf16 not tried")
        source = "decided on this bundle when quantised" if overruled else (
            f"the {chosen_on} class's choice, from its precision sweep" if chosen_on != "?"
            else "the CPU class's choice, from its precision sweep")
        why = f"{record['reason']} ({source}){gate}"
        if asked == "f32" and cpu.native_bf16 and chosen_on != cpu.cpu_class:
            why += "; quantise on this CPU to let it choose bf16 where that was measured faster"
    elif policy_why(_section(_section(quantization, "policy"), name)):
        why = policy_why(_section(_section(quantization, "policy"), name))
    elif asked == "bf16":
        why = "the bundle asks bf16 (a BF16 variant: the FP32 IR with a bf16 hint)"
    elif graph.precision == "int8":
        why = "INT8 weights, float parts f32 (quantised before the compute precision was chosen per CPU)"
    else:
        why = "FP32 graph"
    if method == "static" and graph.precision == "int8" and not cpu.int8_dot:
        why += f"; {NO_INT8_DOT_NOTE}"
    stand_ins = [r["graph"] for r in _engine_records(quantization, "replaces", name)
                 if r.get("taken") and r.get("graph") in manifest.graphs]
    if stand_ins and cpu.int8_dot:
        why += f"; not run on this CPU: {stand_ins[0]} runs instead (8-bit dot products here)"
    kv_cache = _printable(options.get("KV_CACHE_PRECISION", "")) if graph.states else ""
    return GraphPrecision(weights, runs, _printable(why), kv_cache)


def policy_why(record: dict) -> str:
    """Why the quantiser left a graph as it is, from its policy record (the families that record no per-CPU compute
    choice, EmotiVoice and MetaVoice): the methods that missed their accuracy gate and what was kept, else the
    policy's measured reason; "" where the record has neither."""
    attempts = record.get("attempts")
    attempts = [a for a in attempts if isinstance(a, dict)] if isinstance(attempts, list) else []
    missed = [f"{a.get('method')} missed its gate ({str(a['failed'][0])})" for a in attempts
              if isinstance(a.get("failed"), list) and a["failed"]]
    kept = record.get("applied") or record.get("method")
    if missed and kept:
        return f"{'; '.join(missed)}; {kept} kept"
    return str(record.get("reason") or "")


def _engine_records(quantization: dict, key: str, name: str) -> list[dict]:
    """The quantiser's records (e.g. `vocoder_engine`, or one nested in it) whose `key` ("graph" or "replaces") is
    graph `name`."""
    records = [r for r in quantization.values() if isinstance(r, dict)]
    records += [inner for r in records for inner in r.values() if isinstance(inner, dict)]
    return [r for r in records if r.get(key) == name]


def _section(data, key: str) -> dict:
    """`data[key]` when both are objects, else {} (a manifest's `extra` is free-form)."""
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, dict) else {}


def _printable(text: str) -> str:
    return "".join(ch if ch.isprintable() else "?" for ch in str(text))
