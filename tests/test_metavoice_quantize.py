"""MetaVoice precision variants: INT8 / INT4 weight-only stage 1 behind the logits gate, nothing written on a miss."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("nncf")

import edgevoice  # noqa: E402
from edgevoice.errors import EdgevoiceError  # noqa: E402
from edgevoice_export.metavoice import quantize as mq  # noqa: E402
from edgevoice_export.quantize import QuantizeOptions  # noqa: E402


@pytest.mark.parametrize("precision", ["int8", "int4"])
def test_variant_is_written_with_its_accuracy_and_speaks(metavoice_bundle, tmp_path, precision):
    out = tmp_path / precision
    report = mq.quantize_metavoice(metavoice_bundle[0], out, QuantizeOptions(precision=precision, progress=False))
    logits = report.accuracy["logits"]
    gate = mq.GATES[precision]
    assert logits["top1_agreement"] >= gate.min_top1 and logits["rel_l2"]["worst"] <= gate.max_rel_l2
    assert report.sizes["variant_mb"] < report.sizes["fp32_mb"] / (3 if precision == "int8" else 4)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["graphs"]["stage1"]["precision"] == precision
    assert manifest["graphs"]["stage1_step"]["precision"] == "fp32"  # onnxruntime keeps the FP32 ONNX
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
