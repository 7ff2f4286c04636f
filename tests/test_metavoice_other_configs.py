"""MetaVoice does not depend on the fixture's or the released model's geometry: a set whose every size differs (upstream
only asks that n_embd divide by n_head) exports, passes parity, quantises to both widths and speaks on both engines.

The set is chosen to reach the two places a probe found sizes assumed: heads of 4 values (onnxruntime's fused
attention takes multiples of 8, so `quantize` keeps OpenVINO's stateful stage 1), and a SwiGLU width of 400 beside an
n_embd of 128 (4-bit groups of 128 fit the attention matrices but not the MLP's output one)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("nncf")

import edgevoice  # noqa: E402
from edgevoice_export.graph_export import ExportOptions  # noqa: E402
from edgevoice_export.metavoice import quantize as mq  # noqa: E402
from edgevoice_export.metavoice.checkpoints import MetaVoiceFiles  # noqa: E402
from edgevoice_export.metavoice.exporter import export_metavoice  # noqa: E402
from edgevoice_export.metavoice.random_model import make_test_model  # noqa: E402
from edgevoice_export.quantize import QuantizeOptions  # noqa: E402

ODD = {
    # 32 heads of 4; SwiGLU width 100·ceil(int(2·4·128/3) / 100) = 400
    "first_stage": {"n_layer": 3, "n_head": 32, "n_embd": 128, "block_size": 200, "swiglu_multiple_of": 100,
                    "rmsnorm_eps": 1e-6},
    "second_stage": {"n_layer": 3, "n_head": 4, "n_embd": 96, "block_size": 200},
    "encodec": {"n_filters": 8, "dimension": 64, "lstm": 1},
}


@pytest.fixture(scope="module")
def odd_bundle(tmp_path_factory):
    root = tmp_path_factory.mktemp("metavoice-odd")
    paths = make_test_model(root / "models", "tiny", seed=11, overrides=ODD)
    files = MetaVoiceFiles(paths["first_stage"], paths["second_stage"], paths["speaker_encoder"], paths["encodec"],
                           paths["encodec_config"])
    report = export_metavoice(files, ExportOptions(root / "fp32", progress=False))
    return root / "fp32", report


def test_the_odd_set_exports_within_parity_and_reads_its_sizes(odd_bundle):
    bundle, report = odd_bundle
    assert report.parity and all(result.max_rel < 1e-4 for result in report.parity), \
        [result.line() for result in report.parity]
    model = json.loads((bundle / "manifest.json").read_text())["model"]
    assert (model["stage1"]["n_layer"], model["stage1"]["n_head"], model["stage1"]["n_embd"],
            model["stage1"]["block_size"]) == (3, 32, 128, 200)
    assert (model["stage2"]["n_head"], model["stage2"]["block_size"]) == (4, 200)


@pytest.mark.parametrize("precision", ["int8", "int4"])
def test_the_odd_set_quantises_and_speaks_on_both_engines(odd_bundle, tmp_path, precision):
    out = tmp_path / precision
    report = mq.quantize_metavoice(odd_bundle[0], out, QuantizeOptions(precision=precision, progress=False))
    record = json.loads((out / "manifest.json").read_text())["extra"]["quantization"]["decode_engine"]
    assert record["engine"] == "openvino" and "multiple of 8" in record["reason"]
    assert report.accuracy["logits"]["top1_agreement"] >= mq.GATES[precision].min_top1
    embedding = mq.gate_speaker(256)
    for backend in ("openvino", "onnxruntime"):  # onnxruntime runs the FP32 step the variant keeps for it
        synth = edgevoice.load(out, backend=backend, threads=1)
        audio = synth.synthesize("Hello there, how are you?", embedding, seed=3, max_new_tokens=60)
        assert audio.size > 0 and np.isfinite(audio).all(), backend
