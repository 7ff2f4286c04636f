"""MetaVoice precision variants: INT8 / INT4 weight-only stage 1 behind the logits gate, nothing written on a miss."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("nncf")

import edgevoice  # noqa: E402
from edgevoice.errors import EdgevoiceError  # noqa: E402
from edgevoice_export.metavoice import quantize as mq  # noqa: E402
from edgevoice_export.metavoice import step_engine  # noqa: E402
from edgevoice_export.quantize import QuantizeOptions  # noqa: E402


@pytest.mark.parametrize("precision, engine", [("int8", "openvino"), ("int8", "onnxruntime"), ("int4", "onnxruntime"),
                                               ("int4", "openvino")])
def test_variant_is_written_with_its_accuracy_and_speaks(metavoice_bundle, tmp_path, precision, engine):
    """One stage-1 decode per variant: OpenVINO's stateful graph (the FP32 ONNX step stays for onnxruntime), or
    onnxruntime's step on block weights of the variant's width with its attention fused and a half-precision cache
    written in place (the stateful graph leaves the bundle); either passes the gate and speaks."""
    out = tmp_path / precision
    options = QuantizeOptions(precision=precision, progress=False, decode_engine=engine)
    report = mq.quantize_metavoice(metavoice_bundle[0], out, options)
    logits = report.accuracy["logits"]
    gate = mq.GATES[precision]
    assert logits["top1_agreement"] >= gate.min_top1 and logits["rel_l2"]["worst"] <= gate.max_rel_l2
    manifest = json.loads((out / "manifest.json").read_text())
    record = manifest["extra"]["quantization"]["decode_engine"]
    graphs = manifest["graphs"]
    if engine == "onnxruntime":
        assert "stage1" not in graphs and not list(out.glob("stage1.*"))
        step = graphs["stage1_step"]
        assert (step["precision"], step["engine"], step["files"]) == (precision, "onnxruntime",
                                                                      {"onnx": f"stage1_step.{precision}.onnx"})
        inputs = {t["name"]: t["dtype"] for t in step["inputs"]}
        assert "past_mask" not in inputs and inputs["seqlens_k"] == "int32" and inputs["past_key.0"] == "float16"
        assert record["engine"] == "onnxruntime" and record["attention"]["fused"]
        assert record["quantization"]["bits"] == int(precision[3:])
        assert 0 < record["attention"]["difference"] <= step_engine.FUSED_STEP_TOLERANCE
        assert set(record["ms_per_step"]) == {"openvino", "onnxruntime"}
        assert step["accuracy"][f"{precision}_vs_fp32"]["logits"] == logits
        assert not list(out.glob("stage1_step.onnx*"))  # the FP32 step is not shipped beside it
    else:
        assert graphs["stage1"]["precision"] == precision
        assert graphs["stage1_step"]["precision"] == "fp32"  # onnxruntime keeps the FP32 ONNX
        assert record["engine"] == "openvino"
        assert report.sizes["variant_mb"] < report.sizes["fp32_mb"] / (3 if precision == "int8" else 4)
    synth = edgevoice.load(out)
    embedding = mq.gate_speaker(256)
    audio = synth.synthesize("Hello there.", embedding, seed=1, max_new_tokens=20)
    assert audio.size > 0 and np.isfinite(audio).all()


def test_a_missed_gate_writes_nothing(metavoice_bundle, tmp_path, monkeypatch):
    monkeypatch.setitem(mq.GATES, "int8", mq.Gate(min_top1=1.01, max_rel_l2=0.0))
    out = tmp_path / "int8"
    with pytest.raises(EdgevoiceError, match="misses its accuracy gate"):
        mq.quantize_metavoice(metavoice_bundle[0], out, QuantizeOptions(progress=False))
    assert not out.exists() and not list(tmp_path.glob(".int8*"))


def test_only_fp32_metavoice_bundles_are_compressed(metavoice_bundle, tmp_path):
    with pytest.raises(EdgevoiceError, match="int8 or int4"):
        mq.quantize_metavoice(metavoice_bundle[0], tmp_path / "x", QuantizeOptions(precision="bf16"))
