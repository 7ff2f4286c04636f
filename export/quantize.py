"""The shared INT8 (NNCF) / BF16 machinery: per-graph policies as data (`GraphPolicy`), NNCF calls and node
selection, CPU feature checks, options and the report. Each family keeps its policy table,
calibration and variant writer in `<family>/quantize.py`.

NNCF works on the OpenVINO IR (measured, research/tooling.md §4: the ONNX route quantises the attention MatMuls
and is 2× less accurate; onnxruntime runs weight-only INT8 ONNX 11× slower than FP32). So only the IR is
quantised: a quantised graph's `files["openvino"]` points to its INT8 IR, while `files["onnx"]` keeps pointing
to the unchanged FP32 ONNX, so the onnxruntime backend of an INT8 bundle runs FP32. The exception is a graph
onnxruntime runs faster than OpenVINO in INT8 on the CPU at hand, with its own block-quantised matmuls
(`MatMulNBits`, `quantize_matmuls_nbits`): GPT-SoVITS' one-token decode step, chosen per CPU by measurement
(gpt_sovits/quantize.py).

Every graph is compiled with an explicit precision: INT8 graphs say `INFERENCE_PRECISION_HINT=f32` for their
float parts (OpenVINO would otherwise pick bf16 by itself on CPUs with native bf16), or bf16 where the CPU's class
and the accuracy gate choose it (GPT-SoVITS: `gpt_sovits/compute.py`), the BF16 variant says bf16.
Random-weight models have no activation outliers: every accuracy figure must be re-measured on trained
checkpoints before a policy is trusted.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgevoice.backends import engine_message
from edgevoice.bundle import Bundle, accuracy_summary
from edgevoice.cpu import INT8_DOT_FLAGS, cpu_flags  # the one /proc/cpuinfo reader, shared with the runtime
from edgevoice.errors import BundleError


# What a graph's policy (and `--method GRAPH=METHOD`) may name: "weights" (data-free weight-only INT8), "static"
# (weights + activations), "float" (left FP32), "bf16" (the FP32 IR compiled with a bf16 hint, no INT8)
METHODS = ("weights", "static", "float", "bf16")
# OpenVINO's fused attention: NNCF leaves it in float in every family's transformer graphs
SDPA_TYPES = ("ScaledDotProductAttention",)


@dataclass(frozen=True)
class GraphPolicy:
    method: str  # one of METHODS
    reason: str  # the measurement behind the choice (research/tooling.md)
    weight_mode: str = "INT8_ASYM"  # NNCF CompressWeightsMode of the "weights" method
    transformer: bool = False  # NNCF model_type=TRANSFORMER (SmoothQuant is then switched off explicitly)
    mixed_preset: bool = False  # asymmetric activations
    ignored_types: tuple[str, ...] = ()
    float_modules: tuple[str, ...] = ()  # regexes over torch module paths, kept in float

    def to_json(self) -> dict:
        return {"method": self.method, "reason": self.reason, "weight_mode": self.weight_mode,
                "transformer": self.transformer,
                "mixed_preset": self.mixed_preset, "ignored_types": list(self.ignored_types),
                "float_modules": list(self.float_modules)}


@dataclass(frozen=True)
class Threshold:
    """One accuracy-gate limit on a graph's error against FP32 (its worst held-out figure)."""

    output: str
    metric: str  # a key of the graph's accuracy entry for `output` (`graph_errors`)
    limit: float
    higher_is_better: bool
    reason: str

    def check(self, accuracy: dict) -> tuple[bool, float]:
        value = accuracy[self.output][self.metric]
        value = value["worst"] if isinstance(value, dict) else value  # top-1 agreement is one pooled figure
        return (value >= self.limit if self.higher_is_better else value <= self.limit), value

    def to_json(self) -> dict:
        return {"output": self.output, "metric": self.metric, "worst must be": (">= " if self.higher_is_better
                                                                                 else "<= ") + str(self.limit),
                "reason": self.reason}


@dataclass
class QuantizationReport:
    bundle: Path
    precision: str
    seconds: float
    graphs: dict[str, dict] = field(default_factory=dict)  # name -> {"method", "accuracy", "seconds"}
    end_to_end: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        lines = list(self.notes)
        for name, info in self.graphs.items():
            lines.append(f"{name:14s} {info['method']:8s} {accuracy_summary(info.get('accuracy', {}), info['method'])}")
            compute = info.get("compute", {})
            if compute.get("precision") == "bf16" or "tried" in compute:
                gate = f" (gate: {compute['gate']})" if compute.get("gate") else ""
                lines.append(f"{'':14s} compute {compute['precision']}{gate}: {compute['reason']}")
            if "accuracy_control" in info:
                control = info["accuracy_control"]
                steps = ", ".join(f"+{a['also_float']} {a['log_mel_l1']:.4f}" for a in control["attempts"])
                lines.append(f"{'':14s} accuracy control (worst log-mel L1 as parts go float): {steps}; "
                             f"budget {control['max_log_mel_l1']} {'met' if control['met'] else 'NOT met'}")
        if self.end_to_end:
            e2e = self.end_to_end
            lines.append(f"end to end ({e2e['utterances']} utterances, forced tokens): logits top-1 "
                         f"{e2e['logits']['top1_agreement']:.3f}, top-5 {e2e['logits']['top5_overlap']:.3f}, "
                         f"rel-L2 worst {e2e['logits']['rel_l2']['worst']:.4f}; audio SNR worst "
                         f"{e2e['audio']['snr_db']['worst']:.1f} dB, log-mel L1 worst "
                         f"{e2e['audio']['log_mel_l1']['worst']:.4f}")
        return lines


# ------------------------------------------------------------------------------------------------ node selection


def onnx_module_paths(onnx_path: Path) -> dict[str, str]:
    """ONNX node name -> the innermost torch module path from the dynamo exporter's `namespace` metadata."""
    import onnx

    return onnx_module_paths_of(onnx.load(str(onnx_path), load_external_data=False))


def onnx_module_paths_of(model) -> dict[str, str]:
    """`onnx_module_paths` of a loaded ONNX ModelProto."""
    paths = {}
    for node in model.graph.node:
        namespace = {p.key: p.value for p in node.metadata_props}.get("namespace", "")
        scopes = [part.split(":")[0].strip() for part in namespace.split("/")]
        modules = [s for s in scopes[:-1] if s]  # the last scope is the aten op itself
        if modules:
            paths[node.name] = modules[-1]
    return paths


def float_node_names(onnx_path: Path, model, patterns: tuple[str, ...]) -> list[str]:
    """OpenVINO op names that come from torch modules matching `patterns`. OpenVINO keeps ONNX node names as
    friendly names (sometimes with a `/suffix`); a weighted op renamed on import (ConvTranspose becomes
    `ConvolutionBackpropData_N` + a bias Add named after the ONNX node) is found through that bias Add."""
    module_paths = onnx_module_paths(onnx_path)
    regexes = [re.compile(p) for p in patterns]
    onnx_nodes = {node for node, path in module_paths.items() if any(r.search(path) for r in regexes)}
    names = set()
    for op in model.get_ops():
        if op.get_friendly_name().split("/")[0] in onnx_nodes:
            names.add(op.get_friendly_name())
    for op in model.get_ops():
        consumers = [t.get_node() for t in op.output(0).get_target_inputs()] if op.get_output_size() else []
        if len(consumers) == 1 and consumers[0].get_friendly_name() in names:
            if op.get_type_name() in ("Convolution", "ConvolutionBackpropData", "MatMul", "GroupConvolution"):
                names.add(op.get_friendly_name())
    return sorted(names)


# ------------------------------------------------------------------------------------------------ NNCF


def quantize_graph(model, policy: GraphPolicy, calibration: list[dict], onnx_path: Path | None, subset_size: int):
    """Apply `policy` to one OpenVINO model with NNCF; returns the quantised model."""
    import nncf

    if policy.method == "weights":
        return nncf.compress_weights(model, mode=getattr(nncf.CompressWeightsMode, policy.weight_mode))
    if not calibration:
        raise BundleError("static INT8 needs recorded calibration inputs for this graph")
    if policy.float_modules and onnx_path is None:
        raise BundleError("keeping modules in float needs the graph's ONNX file (torch module names)")
    names = float_node_names(onnx_path, model, policy.float_modules) if policy.float_modules else []
    present = {op.get_type_name() for op in model.get_ops()}
    types = [t for t in policy.ignored_types if t in present]
    kwargs = dict(
        subset_size=min(subset_size, len(calibration)),
        preset=nncf.QuantizationPreset.MIXED if policy.mixed_preset else None,
        model_type=nncf.ModelType.TRANSFORMER if policy.transformer else None,
        ignored_scope=nncf.IgnoredScope(names=names, types=types, validate=False),
    )
    advanced = nncf.AdvancedQuantizationParameters(
        smooth_quant_alphas=nncf.AdvancedSmoothQuantParameters(matmul=-1)) if policy.transformer else None
    dataset = nncf.Dataset(calibration)
    return nncf.quantize(model, dataset, advanced_parameters=advanced, **kwargs)


def best_seconds(calls: dict[str, tuple], rounds: int = 2) -> dict[str, float]:
    """Seconds of `run_all(session, items)` per name in `calls` ({name: (session, items)}), over `rounds`
    interleaved rounds, the better of each (box noise only slows a run down)."""
    best: dict[str, float] = {}
    for _ in range(rounds):
        for name, (session, items) in calls.items():
            start = time.perf_counter()
            run_all(session, items)
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - start)
    return {name: round(seconds, 3) for name, seconds in best.items()}


# A static INT8 graph has to be faster than the FP32 graph it replaces on the CPU that quantises it. Not a given:
# OpenVINO's AMX INT8 convolutions (brgconv_avx512_amx_I8) ran GPT-SoVITS' vocoder at 0.39x FP32 on an AMX Xeon, ~6x
# slower than its AVX-512 VNNI kernel on the same machine (2026-12-07, benchmarks/results/gpt_sovits_precision_amx.md).
# Only a clear loss sends a graph back to float: a noisy neighbour moves a run by far less.
INT8_SLOWDOWN_LIMIT = 1.25


def int8_speed(fp32_session, int8_session, items: list[dict], rounds: int = 2) -> dict:
    """Held-out calls of a static INT8 graph and of its FP32 original on this CPU (`best_seconds`): whether the INT8
    one is worth keeping (`INT8_SLOWDOWN_LIMIT`), with the figures and the reason."""
    seconds = best_seconds({"fp32": (fp32_session, items), "int8": (int8_session, items)}, rounds)
    kept = seconds["int8"] <= INT8_SLOWDOWN_LIMIT * seconds["fp32"]
    ratio = seconds["fp32"] / max(seconds["int8"], 1e-9)
    reason = (f"static INT8 {seconds['int8']:.3f} s vs FP32 {seconds['fp32']:.3f} s on {len(items)} held-out calls on "
              f"this CPU ({ratio:.2f}x): " + ("kept" if kept else f"more than {INT8_SLOWDOWN_LIMIT}x slower, the FP32 "
                                                              "graph kept instead"))
    return {"kept": kept, "seconds_on_held_out": seconds, "calls": len(items), "reason": reason}


def remove_graph_file(folder: Path, rel: str) -> None:
    """Remove a graph file from the bundle being written in `folder`, with what travels with it: an ONNX file's
    external weights (`.data`), an IR's weights (`.bin`)."""
    companions = [rel + ".data"] + ([rel[: -len(".xml")] + ".bin"] if rel.endswith(".xml") else [])
    for name in (rel, *companions):
        (folder / name).unlink(missing_ok=True)


def run_all(session, items: list[dict]) -> list[dict]:
    return [session.run(item) for item in items]


def cpu_has_int8_dot(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    flags = cpu_flags(cpuinfo)
    if flags is None:
        return True  # unknown platform: keep the research defaults
    return any(flag in flags for flag in INT8_DOT_FLAGS)


@dataclass(frozen=True)
class QuantizeOptions:
    """How a variant is made, for every family. `methods` overrides the policy per graph ({"gpt_prefill":
    "weights"}); `decode_engine` (families with a token-by-token decode: GPT-SoVITS, MetaVoice): "auto" times
    OpenVINO's stateful decode against onnxruntime's block-INT8 step on this CPU and keeps the faster, "openvino" /
    "onnxruntime" take one. `family`: the family's own choices (GPT-SoVITS: `gpt_sovits.choices.GptSovitsChoices`);
    None takes its defaults, and a family refuses another's."""

    precision: str = "int8"  # or "bf16" (MetaVoice: "int4")
    subset_size: int = 300  # NNCF calibration items per graph
    methods: dict[str, str] | None = None
    overwrite: bool = False
    threads: int = 1
    progress: bool = True
    decode_engine: str = "auto"  # one of ENGINE_CHOICES
    family: object | None = None


ENGINE_CHOICES = ("auto", "openvino", "onnxruntime")


@dataclass(frozen=True)
class BlockQuantization:
    """onnxruntime weight-only block quantisation of an ONNX graph's constant-weight MatMuls (`MatMulNBits`):
    `bits`-bit symmetric weights with one scale per `block_size` inputs; `accuracy_level` 4 lets the kernel
    quantise the activations to int8 per block and use 8-bit dot products (VNNI where the CPU has them)."""

    bits: int = 8
    block_size: int = 128
    accuracy_level: int = 4

    def to_json(self) -> dict:
        return {"op": "MatMulNBits", "bits": self.bits, "block_size": self.block_size, "symmetric": True,
                "accuracy_level": self.accuracy_level}


def quantize_matmuls_nbits(source: Path, target: Path, config: BlockQuantization = BlockQuantization()) -> int:
    """Write `source` (ONNX) to `target` with its constant-weight MatMuls as `MatMulNBits`; returns how many.
    Graphs over protobuf's 2 GB keep their weights in `target` + ".data" (where the runtime looks for them)."""
    import logging

    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import (DefaultWeightOnlyQuantConfig,
                                                                  MatMulNBitsQuantizer)

    logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)
    quantizer = MatMulNBitsQuantizer(onnx.load(str(source)), algo_config=DefaultWeightOnlyQuantConfig(
        block_size=config.block_size, is_symmetric=True, accuracy_level=config.accuracy_level, bits=config.bits))
    quantizer.process()
    model = quantizer.model.model
    large = model.ByteSize() >= 2**31 - 2**20  # protobuf cannot serialise 2 GB in one message
    onnx.save_model(model, str(target), save_as_external_data=large, all_tensors_to_one_file=True,
                    location=Path(target).name + ".data")
    return sum(node.op_type == "MatMulNBits" for node in model.graph.node)


@dataclass(frozen=True)
class OnnxRuntimeStatic:
    """onnxruntime's static INT8 of an ONNX graph (QDQ, min-max calibration): `op_types` run on 8-bit tensors
    (onnxruntime fuses each into its QLinear operator), weights s8 symmetric per output channel, activations u8
    asymmetric. s8 weights need a u8·s8 dot-product instruction (VNNI): without one the CPU's `vpmaddubsw` sums two
    u8·s8 products into a saturating int16 (u8 weights avoid that but measured 2.6x slower, so none are made)."""

    op_types: tuple[str, ...] = ("Conv", "LeakyRelu", "Add")

    def to_json(self) -> dict:
        return {"format": "QDQ", "op_types": list(self.op_types), "weights": "s8 per channel",
                "activations": "u8 asymmetric", "calibration": "min-max"}


def quantize_static_onnxruntime(model, target: Path, feeds: list[dict], recipe: OnnxRuntimeStatic,
                                float_nodes: tuple[str, ...] = ()) -> int:
    """Write the ONNX `model` (a ModelProto) to `target` with onnxruntime's static INT8 per `recipe`, calibrated on
    `feeds` (one dict of named inputs per call), the nodes named in `float_nodes` left in float. Returns the number
    of operators on 8-bit tensors."""
    import logging
    import tempfile

    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Feeds(CalibrationDataReader):
        def __init__(self):
            self._items = iter(feeds)

        def get_next(self):
            return next(self._items, None)

    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))  # the quantiser warns through the root logger ("consider pre-processing")
    with tempfile.TemporaryDirectory() as tmp:  # it wants a file and writes helper models beside it
        source = Path(tmp) / "source.onnx"
        onnx.save_model(model, str(source))
        try:
            quantize_static(str(source), str(target), Feeds(), quant_format=QuantFormat.QDQ,
                            op_types_to_quantize=list(recipe.op_types), per_channel=True,
                            nodes_to_exclude=list(float_nodes),
                            activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8,
                            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
        finally:
            root.setLevel(level)
    quantised = onnx.load(str(target), load_external_data=False)
    outputs = {n.output[0] for n in quantised.graph.node if n.op_type == "DequantizeLinear"}
    return sum(n.op_type in recipe.op_types and any(i in outputs for i in n.input) for n in quantised.graph.node)


@dataclass(frozen=True)
class OnnxRuntimeDynamic:
    """onnxruntime's dynamic INT8 of an ONNX graph's constant-weight MatMuls: s8 weights per output channel, the
    activations quantised to u8 per tensor at run time (`DynamicQuantizeMatMul`), so no calibration and no
    activation range to get wrong. The same u8·s8 products as `OnnxRuntimeStatic`, so the same VNNI condition."""

    def to_json(self) -> dict:
        return {"format": "dynamic", "op_types": ["MatMul"], "weights": "s8 per channel",
                "activations": "u8 per tensor, at run time"}


def quantize_dynamic_onnxruntime(source: Path, target: Path, recipe: OnnxRuntimeDynamic = OnnxRuntimeDynamic()
                                 ) -> int:
    """Write the ONNX graph `source` to `target` with its constant-weight MatMuls as onnxruntime's dynamic INT8
    (`recipe`); returns how many."""
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))  # the quantiser warns through the root logger ("consider pre-processing")
    try:
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul"], extra_options={"MatMulConstBOnly": True})
    finally:
        root.setLevel(level)
    quantised = onnx.load(str(target), load_external_data=False)
    return sum(n.op_type in ("DynamicQuantizeMatMul", "MatMulInteger") for n in quantised.graph.node)


def read_ir(core, bundle: Bundle, xml: str):
    """A source bundle's IR as an `ov.Model`, read the way the runtime reads it (`Bundle.ir`: its weights listed,
    no link out of the folder); a file OpenVINO cannot read is a BundleError naming it."""
    path = bundle.ir(xml)
    try:
        return core.read_model(str(path))
    except RuntimeError as exc:
        raise BundleError(f"{path}: OpenVINO cannot read this IR ({engine_message(exc)})") from None
