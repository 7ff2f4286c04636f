"""Compute precision per CPU: the class a CPU's flags put it in, the per-class policy (bf16 only with native bf16),
the quantiser's gate on a bf16 choice, the load-time fallback to f32, and what `edgevoice info` says about it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

import edgevoice.cpu as cpu
from edgevoice.backends import OpenVINOBackend
from edgevoice.bundle import Bundle, write_manifest
from edgevoice.cli import INFO_LINE_CHARS, main
from edgevoice.errors import EdgevoiceError

AVX2 = {"fpu", "sse2", "avx", "avx2", "fma"}  # Zen 1
AVX512_VNNI = AVX2 | {"avx512f", "avx512_vnni"}  # Cascade Lake
ZEN4 = AVX512_VNNI | {"avx512_bf16"}
SAPPHIRE_RAPIDS = AVX512_VNNI | {"avx512_bf16", "amx_tile", "amx_int8", "amx_bf16"}
ALDER_LAKE = AVX2 | {"avx_vnni"}


def _cpuinfo(tmp_path, flags: set[str], name: str = "cpuinfo"):
    path = tmp_path / name
    path.write_text(f"processor\t: 0\ncpu family\t: 25\nmodel\t\t: 17\nmodel name\t: Test CPU\n"
                    f"flags\t\t: {' '.join(sorted(flags))}\n\nprocessor\t: 1\nflags\t\t: {' '.join(sorted(flags))}\n")
    return path


def _info(flags: set[str]) -> cpu.CpuInfo:
    return cpu.CpuInfo("test", frozenset(flags))


@pytest.mark.parametrize("flags, expected, bf16, int8_dot", [
    (AVX2, "avx2", False, False), (AVX512_VNNI, "avx512_vnni", False, True), (ZEN4, "avx512_bf16", True, True),
    (SAPPHIRE_RAPIDS, "amx", True, True), (ALDER_LAKE, "avx_vnni", False, True), ({"sse2"}, "baseline", False, False),
    (AVX2 | {"avx512f"}, "avx512", False, False)])
def test_cpu_class_from_flags(tmp_path, flags, expected, bf16, int8_dot):
    found = cpu.detect(_cpuinfo(tmp_path, flags))
    assert (found.cpu_class, found.native_bf16, found.int8_dot) == (expected, bf16, int8_dot)
    assert found.model == "Test CPU (family 25 model 17)" and expected in found.summary()


def test_unknown_platform_asks_openvino(tmp_path):
    import openvino as ov

    found = cpu.detect(tmp_path / "missing")
    assert not found.known and found.int8_dot  # the research defaults where nothing can be read
    assert found.native_bf16 == ("BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def test_policy_picks_bf16_only_with_native_bf16():
    from edgevoice_export.gpt_sovits.compute import COMPUTE_POLICY, compute_policies

    assert set(COMPUTE_POLICY) == set(cpu.CLASSES)  # every class has a row, with a reason per graph
    for flags in (ZEN4, SAPPHIRE_RAPIDS):
        chosen = compute_policies(_info(flags))
        assert any(choice.precision == "bf16" for choice in chosen.values()), flags
        assert all(choice.reason for choice in chosen.values())
        assert all(c.precision == "f32" for c in compute_policies(_info(flags), "f32").values())
    for flags in (AVX2, AVX512_VNNI, ALDER_LAKE, AVX2 | {"avx512f"}):
        chosen = compute_policies(_info(flags))
        assert chosen and all(choice.precision == "f32" for choice in chosen.values()), flags
        assert all("no native bf16" in choice.reason for choice in chosen.values())
    with pytest.raises(EdgevoiceError, match="compute mode"):
        compute_policies(_info(ZEN4), "fp16")


@pytest.fixture(scope="module")
def ref_encoder_model(fixture_bundle):
    """The tiny bundle's ref_encoder IR and a few spectrogram inputs with their FP32 outputs."""
    import openvino as ov

    bundle = Bundle.load(fixture_bundle[0])
    session = OpenVINOBackend(threads=1, precision="f32").session(bundle, "ref_encoder")
    rng = np.random.default_rng(0)
    feeds = [{"refer_spec": rng.random((1, 1025, frames), dtype=np.float32)} for frames in (60, 90)]
    model = ov.Core().read_model(str(bundle.file(bundle.manifest.graphs["ref_encoder"].files["openvino"])))
    return model, feeds, [session.run(f) for f in feeds]


def test_bf16_choice_is_gated(ref_encoder_model, monkeypatch):
    from edgevoice_export.gpt_sovits import compute
    from edgevoice_export.quantize import Threshold

    model, feeds, reference = ref_encoder_model
    choice = compute.ComputeChoice("bf16", "measured faster")
    config = {"INFERENCE_NUM_THREADS": 1}
    taken = compute.choose_compute("ref_encoder", model, choice, feeds, reference, config)
    assert taken["precision"] == "bf16" and taken["reason"] == "measured faster" and "ge rel_l2" in taken["gate"]
    strict = (Threshold("ge", "rel_l2", -1.0, False, "nothing passes"),)
    monkeypatch.setitem(compute.COMPUTE_GATES, "ref_encoder", strict)
    refused = compute.choose_compute("ref_encoder", model, choice, feeds, reference, config)
    assert refused["precision"] == "f32" and "missed the gate" in refused["reason"] and refused["tried"] == "bf16"
    assert compute.choose_compute("ref_encoder", model, choice, [], [], config)["precision"] == "f32"


@pytest.fixture
def bf16_bundle(fixture_bundle, tmp_path):
    """The tiny bundle with ref_encoder asking bf16, as a quantiser on a bf16 CPU records it."""
    out = tmp_path / "asks-bf16"
    shutil.copytree(fixture_bundle[0], out)
    manifest = Bundle.load(out).manifest
    manifest.graphs["ref_encoder"].runtime_options.setdefault("openvino", {})["INFERENCE_PRECISION_HINT"] = "bf16"
    manifest.extra["quantization"] = {"compute": {"cpu_class": "avx512_bf16", "graphs": {"ref_encoder": {
        "precision": "bf16", "reason": "measured 1.5x vs f32", "gate": "ge rel_l2 0.01 <= 0.05"}}}}
    write_manifest(out, manifest)
    return out


def test_bundle_asking_bf16_loads_as_f32_without_native_bf16(bf16_bundle, tmp_path, monkeypatch):
    bundle = Bundle.load(bf16_bundle)
    graph = bundle.manifest.graphs["ref_encoder"]
    monkeypatch.setattr(cpu, "CPUINFO", _cpuinfo(tmp_path, AVX2))
    assert OpenVINOBackend(threads=1).config_for(graph)["INFERENCE_PRECISION_HINT"] == "f32"
    assert "32" in str(OpenVINOBackend(threads=1).session(bundle, "ref_encoder").precision())
    assert OpenVINOBackend(threads=1, precision="bf16").config_for(graph)["INFERENCE_PRECISION_HINT"] == "bf16"
    monkeypatch.setattr(cpu, "CPUINFO", _cpuinfo(tmp_path, ZEN4))
    assert OpenVINOBackend(threads=1).config_for(graph)["INFERENCE_PRECISION_HINT"] == "bf16"


def test_info_says_what_runs_here_and_why(bf16_bundle, tmp_path, monkeypatch):
    def ref_encoder_line(flags):
        monkeypatch.setattr(cpu, "CPUINFO", _cpuinfo(tmp_path, flags, f"cpuinfo-{len(flags)}"))
        result = CliRunner().invoke(main, ["info", "--no-verify", "--why", str(bf16_bundle)])
        assert result.exit_code == 0, result.output
        header = [line for line in result.output.splitlines() if line.startswith("on this CPU")]
        assert len(header) == 1 and cpu.cpu_class(frozenset(flags)) in header[0]
        lines = [line for line in result.output.splitlines() if line.split()[:1] == ["ref_encoder"]]
        return lines[-1]  # after the manifest's table

    line = ref_encoder_line(ZEN4)
    assert "bf16 compute" in line and "measured 1.5x vs f32" in line and "checked on this bundle: ge rel_l2" in line
    line = ref_encoder_line(AVX2)
    assert "f32 compute" in line and "asks bf16" in line and "no native bf16" in line
    assert json.loads(CliRunner().invoke(main, ["info", "--json", str(bf16_bundle)]).output)["graphs"]
    short = CliRunner().invoke(main, ["info", "--no-verify", str(bf16_bundle)]).output.splitlines()
    here = short[next(i for i, line in enumerate(short) if line.startswith("on this CPU")) + 1:]
    assert all(len(line) <= INFO_LINE_CHARS for line in here)
    assert any(line.endswith("…") for line in here) == any("--why prints them whole" in line for line in here)


def test_info_names_the_decode_engine_and_where_it_was_chosen():
    """A graph the quantiser moved to onnxruntime: its block weights, f32 cache, the timings, and a hint to quantise
    again on a CPU of another class."""
    from types import SimpleNamespace

    from edgevoice.bundle import GraphEntry

    step = GraphEntry("gpt_step", {"onnx": "gpt_step.int8.onnx"}, "int8", [], [], engine="onnxruntime")
    manifest = SimpleNamespace(graphs={"gpt_step": step}, extra={"quantization": {
        "decode_engine": {"reason": "measured per step on this CPU: openvino 6.00 ms, onnxruntime 4.50 ms"},
        "compute": {"cpu_class": "avx512_bf16"}}})
    zen4 = cpu.CpuInfo("zen4", frozenset({"avx2", "avx512f", "avx512_vnni", "avx512_bf16"}))
    zen1 = cpu.CpuInfo("zen1", frozenset({"avx2"}))
    here = cpu.precision_here(manifest, "gpt_step", zen4)
    assert here.summary() == "onnxruntime, int8 block weights, int8 matmul / f32 compute, f32 KV cache"
    assert "onnxruntime 4.50 ms" in here.why and "quantise on this CPU" not in here.why
    assert "quantise on this CPU to time its decode engines here" in cpu.precision_here(manifest, "gpt_step", zen1).why


def test_info_gives_the_policys_reason_where_no_compute_choice_was_recorded():
    """EmotiVoice and MetaVoice record a policy per graph (method, measured reason, the attempts that missed their
    gate) but no per-CPU compute choice: `info` says that, not that the bundle predates compute choices."""
    from types import SimpleNamespace

    from edgevoice.bundle import GraphEntry

    graphs = {name: GraphEntry(name, {"openvino": f"{name}.xml"}, "int8", [], [])
              for name in ("am", "bert", "old", "odd")}
    manifest = SimpleNamespace(graphs=graphs, extra={"quantization": {"policy": {
        "am": {"method": "static", "reason": "static INT8 2.2x FP32 at mel rel-L2 0.025"},
        "odd": {"method": "static", "attempts": None, "reason": 7},  # a free-form manifest: no traceback
        "bert": {"method": "static", "applied": "bf16", "reason": "static INT8 2.4x",
                 "attempts": [{"method": "static", "failed": ["pooled rel_l2 0.198 > 0.08"]},
                              {"method": "weights", "failed": ["pooled rel_l2 0.147 > 0.08"]},
                              {"method": "bf16", "failed": []}]}}}})
    zen4 = cpu.CpuInfo("zen4", frozenset({"avx2", "avx512f", "avx512_vnni", "avx512_bf16"}))
    assert cpu.precision_here(manifest, "am", zen4).why == "static INT8 2.2x FP32 at mel rel-L2 0.025"
    assert cpu.precision_here(manifest, "bert", zen4).why == (
        "static missed its gate (pooled rel_l2 0.198 > 0.08); weights missed its gate (pooled rel_l2 0.147 > 0.08); "
        "bf16 kept")
    assert "quantised before the compute precision" in cpu.precision_here(manifest, "old", zen4).why
    assert cpu.precision_here(manifest, "odd", zen4).why == "7"
